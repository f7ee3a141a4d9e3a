// fuzz_axis — libFuzzer target for the sweep axis parser (host/sweep/axes.cpp: parse_axis, what every
// sweep option's value goes through). Any text must end in values or a UsageError: never a crash,
// a sanitizer report, another exception, no values, or more than the accepted 10,000,000.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "host/core/config.hpp"
#include "host/sweep/sweep.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256) return 0;  // an option's value, not a file
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<double> values = sp::parse_axis(text, "--seed");
    if (values.empty() || values.size() > 10'000'000) std::abort();
  } catch (const sp::UsageError&) {
  }
  return 0;
}
