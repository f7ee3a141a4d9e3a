// simd_philox.hpp — kernels/philox.hpp's Philox4x32-10 for 16 counters at once (AVX-512), used by
// the CPU's SIMD path to draw a pack of 16 fresh rows: lane i computes exactly philox4x32_10 of its
// own counter (same multiplies, xors and key schedule), and uniform_from_bits' conversion is the
// same float multiply then add, so every lane's bits equal the scalar generator's (tested).
#pragma once

// Included by host/cpu_simd.inc only, inside its instruction set's namespace: the types here differ
// from one set to the next (a 16-float zmm pack, an 8-float ymm pack), so one namespace for all
// would be one name with three definitions, and the linker would mix them.
#ifndef SP_SIMD_ISA
#error "host/cpu_simd.inc includes this, with SP_SIMD_ISA defined"
#endif

#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>

#include "kernels/philox.hpp"

namespace sp::cpu::SP_SIMD_ISA {

constexpr bool kSimdPhilox = true;

// Lane i: 32 × 32 → 64-bit products of a[i] and b, split into their low and high words.
// vpmuludq multiplies the low word of each 64-bit pair: the even lanes as they are, the odd ones
// after swapping the words of each pair; the halves are put back in place by a masked swap each
// (5 instructions; shifting and blending took 7). The zero-masked and merge-masked forms with the
// lanes selected are the same instructions as the plain ones (GCC 12 warns falsely about the plain
// forms' undefined pass-through operand).
inline void mulhilo32x16(uint32_t b, __m512i a, __m512i& lo, __m512i& hi) {
  constexpr __mmask8 all = 0xFF;
  constexpr _MM_PERM_ENUM kSwapWords = static_cast<_MM_PERM_ENUM>(0xB1);  // words 1, 0, 3, 2
  const __m512i factor = _mm512_set1_epi32(static_cast<int>(b));
  const __m512i even = _mm512_maskz_mul_epu32(all, a, factor);  // lanes 0, 2, …: lo, hi
  const __m512i odd =
      _mm512_maskz_mul_epu32(all, _mm512_maskz_shuffle_epi32(0xFFFF, a, kSwapWords), factor);
  lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, kSwapWords);  // odd lanes: odd's low word
  hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, kSwapWords);  // even lanes: even's high word
}

// a ^ b ^ c in one instruction (vpternlogd's truth table 0x96).
inline __m512i xor3(__m512i a, __m512i b, __m512i c) {
  return _mm512_ternarylogic_epi32(a, b, c, 0x96);
}

// Philox4x32-10 of blocks `block` and block + 1 — counters (block, c2[i], c3[i]) and (block + 1,
// c2[i], c3[i]), 64-bit block numbers in the low words, under key (k0, k1) — for 16 lanes: out[w]
// holds word w of the first block's 16, out[4 + w] of the second's. Two independent chains of
// rounds in one loop keep the multipliers busy (measured: +6 % fresh rows at 20 -> 5, one thread).
inline void philox4x32_10_x16_pair(uint64_t block, __m512i c2, __m512i c3, uint32_t k0, uint32_t k1,
                                   __m512i out[8]) {
  const uint64_t next = block + 1;
  __m512i a0 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(block))),
          a1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(block >> 32)));
  __m512i b0 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(next))),
          b1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(next >> 32)));
  __m512i a2 = c2, a3 = c3, b2 = c2, b3 = c3;
  for (int round = 0; round < 10; ++round) {
    __m512i alo0, ahi0, alo1, ahi1, blo0, bhi0, blo1, bhi1;
    mulhilo32x16(0xD2511F53u, a0, alo0, ahi0);
    mulhilo32x16(0xD2511F53u, b0, blo0, bhi0);
    mulhilo32x16(0xCD9E8D57u, a2, alo1, ahi1);
    mulhilo32x16(0xCD9E8D57u, b2, blo1, bhi1);
    const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0)),
                  key1 = _mm512_set1_epi32(static_cast<int>(k1));
    a0 = xor3(ahi1, a1, key0);
    b0 = xor3(bhi1, b1, key0);
    a1 = alo1;
    b1 = blo1;
    a2 = xor3(ahi0, a3, key1);
    b2 = xor3(bhi0, b3, key1);
    a3 = alo0;
    b3 = blo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
  out[4] = b0;
  out[5] = b1;
  out[6] = b2;
  out[7] = b3;
}

// uniform_from_bits for 16 words: float(bits) · 2⁻³² + 2⁻³³, two roundings as in the scalar code.
inline __m512 uniforms_from_bits_x16(__m512i bits) {
  return _mm512_add_ps(
      _mm512_mul_ps(_mm512_maskz_cvtepu32_ps(0xFFFF, bits), _mm512_set1_ps(kTwoPowMinus32)),
      _mm512_set1_ps(kTwoPowMinus32 / 2.0f));
}

// generate_sample for the 16 rows first_subsequence .. first_subsequence + 15 of model `seed`:
// x[f] receives feature f of the 16 rows (mask from uniform f, value from uniform n + f).
inline void generate_samples_x16(uint64_t seed, uint64_t first_subsequence, int n,
                                 const float* sparsity, __m512* x) {
  alignas(64) uint32_t lo[16], hi[16];
  for (int i = 0; i < 16; ++i) {
    const uint64_t subsequence = first_subsequence + static_cast<uint64_t>(i);
    lo[i] = static_cast<uint32_t>(subsequence);
    hi[i] = static_cast<uint32_t>(subsequence >> 32);
  }
  const __m512i c2 = _mm512_load_si512(lo), c3 = _mm512_load_si512(hi);
  const int uniforms = 2 * n;
  // Two blocks at a time: their rounds are independent chains, interleaved in one loop.
  for (int first = 0; first < uniforms; first += 8) {
    __m512i words[8];
    const uint64_t block = static_cast<uint64_t>(first / 4);
    philox4x32_10_x16_pair(block, c2, c3, static_cast<uint32_t>(seed),
                           static_cast<uint32_t>(seed >> 32), words);
    for (int w = 0; w < 8 && first + w < uniforms; ++w) {
      const int k = first + w;
      const __m512 u = uniforms_from_bits_x16(words[w]);
      if (k < n) {  // mask: u <= s means "this feature is off" (1 stands for "on" until the value)
        const __mmask16 off = _mm512_cmp_ps_mask(u, _mm512_set1_ps(sparsity[k]), _CMP_LE_OQ);
        x[k] = _mm512_mask_blend_ps(off, _mm512_set1_ps(1.0f), _mm512_setzero_ps());
      } else {
        const __mmask16 on = _mm512_cmp_ps_mask(x[k - n], _mm512_setzero_ps(), _CMP_NEQ_UQ);
        x[k - n] = _mm512_maskz_mov_ps(on, u);
      }
    }
  }
}

}  // namespace sp::cpu::SP_SIMD_ISA

#else
namespace sp::cpu::SP_SIMD_ISA {
constexpr bool kSimdPhilox = false;
}
#endif
