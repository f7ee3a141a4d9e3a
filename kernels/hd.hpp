// hd.hpp — the one macro that lets the shared math compile for host and device alike.
#pragma once

#if defined(__CUDACC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif

#include <cmath>
#include <cstdint>

namespace sp {
// fmaf that is one rounding on every platform: the CUDA intrinsic on the device, std::fma on the
// host (one instruction with FMA hardware, exact software emulation without).
SP_HD float fma_f(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
}  // namespace sp
