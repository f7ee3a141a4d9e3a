// ulps.hpp — how far apart two floats are, in units in the last place: the measure the exact-bits
// contract (docs/design.md §3) is reported in, by the GPU tests (tests/cuda_sweeps.hpp) and by
// bench_kernels' validation alike.
#pragma once

#include <cstdint>
#include <cstring>

namespace sp {

// 0 for the same bits; a NaN against anything else, or two values of different signs, count as
// far apart as floats get (2^32).
inline int64_t ulp_distance(float a, float b) {
  uint32_t x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  if (x == y) return 0;
  if (a != a || b != b || (x >> 31) != (y >> 31)) return int64_t{1} << 32;
  return x > y ? int64_t{x} - int64_t{y} : int64_t{y} - int64_t{x};
}

}  // namespace sp
