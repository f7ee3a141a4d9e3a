// hd.hpp — the one macro that lets the shared math compile for host and device alike.
#pragma once

#if defined(__CUDACC__)
#define SP_HD __host__ __device__ __forceinline__
#else
#define SP_HD inline
#endif

// The per-sample functions' pointers never alias (weights, one sample, its gradient accumulators
// and scratch are separate arrays everywhere they are called), and saying so lets the compilers
// keep values in registers across the accumulator stores.
#if defined(__CUDACC__)
#define SP_RESTRICT __restrict__
#else
#define SP_RESTRICT __restrict
#endif

// Host compilers get told to unroll the per-sample loops over features and hidden dimensions (for
// the shapes that are compile-time constants they then vanish, and the CPU's SIMD path keeps its
// packs in registers); nvcc unrolls those loops on its own.
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define SP_UNROLL _Pragma("GCC unroll 32")
#else
#define SP_UNROLL
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
