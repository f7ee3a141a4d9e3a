// fuzz_npy — libFuzzer target for the .npy reader (host/io/npy.cpp: npy::parse, what --data, --init-W
// and --init-b go through). Any input must end in an array or a UsageError: never a crash, a
// sanitizer report, another exception, or an array whose values disagree with its shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "host/core/config.hpp"
#include "host/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const sp::npy::Array array = sp::npy::parse(bytes, "--data", "fuzz input");
    size_t count = 1;
    for (size_t d : array.shape) count *= d;
    if (array.values.size() != count) std::abort();
  } catch (const sp::UsageError&) {
  }
  return 0;
}
