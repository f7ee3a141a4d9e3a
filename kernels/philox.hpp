// philox.hpp — Philox4x32-10 and the random-number layout of every model's data and parameters.
//
// Bit-exact with cuRAND's device generator: uniform number k of the stream
// `curand_init(seed, subsequence, offset = 0)` is word k % 4 of
// Philox4x32_10(counter = {k / 4 (64-bit, low words)}, {subsequence (64-bit, high words)}, key =
// seed), converted by curand_uniform's `u = bits * 2^-32 + 2^-33`, a float in (0, 1].
// tests/test_philox.cpp proves this against cuRAND's own header code (compiled for the host).
//
// Layout (docs/design.md §2), for a model with seed `seed`:
//   data sample i (fixed: dataset row i; fresh: step t, batch row r -> i = t * batch + r)
//        -> subsequence i; uniforms 0..n-1 decide the masks, n..2n-1 the values
//   fresh-mode evaluation row j          -> subsequence kEvalBase + j
//   initial W (Xavier normal, row-major) -> subsequence kInitBase, uniforms 2e and 2e+1 for entry e
#pragma once

#include "kernels/hd.hpp"

#if defined(__CUDACC__)
#include <curand_philox4x32_x.h>
#endif

namespace sp {

constexpr uint64_t kEvalBase = uint64_t{1} << 62;
constexpr uint64_t kInitBase = uint64_t{3} << 62;

struct PhiloxBlock {
  uint32_t word[4];
};

SP_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& lo, uint32_t& hi) {
#if defined(__CUDA_ARCH__)
  hi = __umulhi(a, b);
  lo = a * b;
#else
  const uint64_t product = uint64_t{a} * uint64_t{b};
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
#endif
}

// Ten rounds of Philox4x32 (Salmon et al., SC'11), the same constants and word order as cuRAND.
SP_HD PhiloxBlock philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t lo0, hi0, lo1, hi1;
    mulhilo32(0xD2511F53u, c0, lo0, hi0);
    mulhilo32(0xCD9E8D57u, c2, lo1, hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return PhiloxBlock{{c0, c1, c2, c3}};
}

// The block holding uniforms 4*block .. 4*block+3 of stream (seed, subsequence).
// On the device this is cuRAND's own curand_Philox4x32_10; on the host, philox4x32_10 above
// (tests/test_curand_host.cu proves the two equal, and equal to curand_init + curand_uniform).
SP_HD PhiloxBlock philox_block(uint64_t seed, uint64_t subsequence, uint64_t block) {
#if defined(__CUDA_ARCH__)
  const uint4 out = curand_Philox4x32_10(
      make_uint4(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                 static_cast<uint32_t>(subsequence), static_cast<uint32_t>(subsequence >> 32)),
      make_uint2(static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)));
  return PhiloxBlock{{out.x, out.y, out.z, out.w}};
#else
  return philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                       static_cast<uint32_t>(subsequence), static_cast<uint32_t>(subsequence >> 32),
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
#endif
}

// curand_uniform's conversion: exact product by 2^-32, then + 2^-33; the result lies in (0, 1].
constexpr float kTwoPowMinus32 = 2.3283064e-10f;  // CURAND_2POW32_INV

SP_HD float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits) * kTwoPowMinus32 + kTwoPowMinus32 / 2.0f;
}

// Uniform number k of stream (seed, subsequence), as curand_uniform would return it as its k-th
// call.
SP_HD float stream_uniform(uint64_t seed, uint64_t subsequence, uint64_t k) {
  return uniform_from_bits(philox_block(seed, subsequence, k / 4).word[k % 4]);
}

}  // namespace sp
