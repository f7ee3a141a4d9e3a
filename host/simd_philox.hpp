// simd_philox.hpp — kernels/philox.hpp's Philox4x32-10 for a pack of counters at once (16 with
// AVX-512, 8 with AVX2), used by the CPU's SIMD path to draw a pack of fresh rows: lane i computes
// exactly philox4x32_10 of its own counter (same multiplies, xors and key schedule), and
// uniform_from_bits' conversion is the same correctly rounded integer-to-float conversion, float
// multiply and add, so every lane's bits equal the scalar generator's (tested, path by path). The
// generic path draws row by row with the scalar generator (SP_SIMD_PHILOX 0).
#pragma once

// Included by host/cpu_simd.inc only, inside its instruction set's namespace: the types here differ
// from one set to the next (a 16-float zmm pack, an 8-float ymm pack), so one namespace for all
// would be one name with three definitions, and the linker would mix them.
#ifndef SP_SIMD_ISA
#error "host/cpu_simd.inc includes this, with SP_SIMD_ISA defined"
#endif

#include <cstdint>

#include "host/simd_lanes.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define SP_SIMD_PHILOX 1  // generate_samples is defined
#include <immintrin.h>

#include "kernels/philox.hpp"

namespace sp::cpu::SP_SIMD_ISA {

// The instruction set's primitives on a pack of 32-bit words (Bits) — a broadcast, the 32 × 32 →
// 64-bit products' halves, a three-way xor — and on the floats made of them: float_from_bits (the
// correctly rounded conversion of each word, as static_cast<float>), feature_masks (1 where the
// feature is on) and feature_values, lane by lane as kernels/toy_model.hpp's feature_mask and
// feature_value compute them.
#if defined(__AVX512F__)
using Bits = __m512i;
inline Bits splat(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
inline Bits load_bits(const uint32_t* p) { return _mm512_loadu_si512(p); }
// Lane i: the products of a[i] and b, split into their low and high words. vpmuludq multiplies the
// low word of each 64-bit pair: the even lanes as they are, the odd ones after swapping the words
// of each pair; the halves are put back in place by a masked swap each (5 instructions; shifting
// and blending took 7). The zero-masked and merge-masked forms with the lanes selected are the same
// instructions as the plain ones (GCC 12 warns falsely about the plain forms' undefined
// pass-through operand).
inline void mulhilo(uint32_t b, Bits a, Bits& lo, Bits& hi) {
  constexpr __mmask8 all = 0xFF;
  constexpr _MM_PERM_ENUM kSwapWords = static_cast<_MM_PERM_ENUM>(0xB1);  // words 1, 0, 3, 2
  const Bits factor = splat(b);
  const Bits even = _mm512_maskz_mul_epu32(all, a, factor);  // lanes 0, 2, …: lo, hi
  const Bits odd =
      _mm512_maskz_mul_epu32(all, _mm512_maskz_shuffle_epi32(0xFFFF, a, kSwapWords), factor);
  lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, kSwapWords);  // odd lanes: odd's low word
  hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, kSwapWords);  // even lanes: even's high word
}
// a ^ b ^ c in one instruction (vpternlogd's truth table 0x96).
inline Bits xor3(Bits a, Bits b, Bits c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
inline Lanes float_from_bits(Bits bits) { return Lanes(_mm512_maskz_cvtepu32_ps(0xFFFF, bits)); }
inline Lanes feature_masks(Lanes u, float threshold) {  // u <= threshold: off
  const __mmask16 off = _mm512_cmp_ps_mask(u.r, _mm512_set1_ps(threshold), _CMP_LE_OQ);
  return Lanes(_mm512_mask_blend_ps(off, _mm512_set1_ps(1.0f), _mm512_setzero_ps()));
}
inline Lanes feature_values(Lanes mask, Lanes u) {
  return Lanes(
      _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mask.r, _mm512_setzero_ps(), _CMP_NEQ_UQ), u.r));
}
#else
using Bits = __m256i;
inline Bits splat(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
inline Bits load_bits(const uint32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
// As above with vpmuludq on the even lanes and on the odd ones shifted down; each half is then one
// shift and one blend from its place.
inline void mulhilo(uint32_t b, Bits a, Bits& lo, Bits& hi) {
  const Bits factor = splat(b);
  const Bits even = _mm256_mul_epu32(a, factor);                        // lanes 0, 2, …: lo, hi
  const Bits odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), factor);  // lanes 1, 3, …
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
inline Bits xor3(Bits a, Bits b, Bits c) { return _mm256_xor_si256(_mm256_xor_si256(a, b), c); }
// AVX2 converts only signed words: float(bits) is float(bits >> 16) · 2¹⁶ + float(bits & 0xFFFF),
// where the conversions and the product are exact and the sum rounds once — the same correctly
// rounded value as the scalar conversion (tested).
inline Lanes float_from_bits(Bits bits) {
  const __m256 high =
      _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(bits, 16)), _mm256_set1_ps(65536.0f));
  const __m256 low = _mm256_cvtepi32_ps(_mm256_and_si256(bits, _mm256_set1_epi32(0xFFFF)));
  return Lanes(_mm256_add_ps(high, low));
}
inline Lanes feature_masks(Lanes u, float threshold) {  // u <= threshold: off
  const __m256 off = _mm256_cmp_ps(u.r, _mm256_set1_ps(threshold), _CMP_LE_OQ);
  return Lanes(_mm256_andnot_ps(off, _mm256_set1_ps(1.0f)));
}
inline Lanes feature_values(Lanes mask, Lanes u) {
  return Lanes(_mm256_and_ps(_mm256_cmp_ps(mask.r, _mm256_setzero_ps(), _CMP_NEQ_UQ), u.r));
}
#endif
static_assert(sizeof(Bits) == sizeof(Lanes), "one word per lane");

// uniform_from_bits lane by lane: float(bits) · 2⁻³² + 2⁻³³, two roundings as in the scalar code.
inline Lanes uniforms_from_bits(Bits bits) {
  Lanes u = kTwoPowMinus32 * float_from_bits(bits);
  u += Lanes(kTwoPowMinus32 / 2.0f);
  return u;
}

// Philox4x32-10 of blocks `block` and block + 1 — counters (block, c2[i], c3[i]) and (block + 1,
// c2[i], c3[i]), 64-bit block numbers in the low words, under key (k0, k1) — for every lane: out[w]
// holds word w of the first block's lanes, out[4 + w] of the second's. Two independent chains of
// rounds in one loop keep the multipliers busy (measured on AVX-512: +6 % fresh rows at 20 -> 5,
// one thread).
inline void philox4x32_10_pair(uint64_t block, Bits c2, Bits c3, uint32_t k0, uint32_t k1,
                               Bits out[8]) {
  const uint64_t next = block + 1;
  Bits a0 = splat(static_cast<uint32_t>(block)), a1 = splat(static_cast<uint32_t>(block >> 32));
  Bits b0 = splat(static_cast<uint32_t>(next)), b1 = splat(static_cast<uint32_t>(next >> 32));
  Bits a2 = c2, a3 = c3, b2 = c2, b3 = c3;
  for (int round = 0; round < 10; ++round) {
    Bits alo0, ahi0, alo1, ahi1, blo0, bhi0, blo1, bhi1;
    mulhilo(0xD2511F53u, a0, alo0, ahi0);
    mulhilo(0xD2511F53u, b0, blo0, bhi0);
    mulhilo(0xCD9E8D57u, a2, alo1, ahi1);
    mulhilo(0xCD9E8D57u, b2, blo1, bhi1);
    const Bits key0 = splat(k0), key1 = splat(k1);
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

// generate_sample (independent features) for the Lanes::kWidth rows first_subsequence, + 1, …
// of model `seed`: x[f] receives feature f of the rows (mask from uniform f, value from uniform
// n + f).
inline void generate_samples(uint64_t seed, uint64_t first_subsequence, int n,
                             const float* sparsity, Lanes* x) {
  constexpr int kWidth = Lanes::kWidth;
  uint32_t lo[kWidth], hi[kWidth];
  for (int i = 0; i < kWidth; ++i) {
    const uint64_t subsequence = first_subsequence + static_cast<uint64_t>(i);
    lo[i] = static_cast<uint32_t>(subsequence);
    hi[i] = static_cast<uint32_t>(subsequence >> 32);
  }
  const Bits c2 = load_bits(lo), c3 = load_bits(hi);
  const int uniforms = 2 * n;
  // Two blocks at a time: their rounds are independent chains, interleaved in one loop.
  for (int first = 0; first < uniforms; first += 8) {
    Bits words[8];
    const uint64_t block = static_cast<uint64_t>(first / 4);
    philox4x32_10_pair(block, c2, c3, static_cast<uint32_t>(seed),
                       static_cast<uint32_t>(seed >> 32), words);
    for (int w = 0; w < 8 && first + w < uniforms; ++w) {
      const int k = first + w;
      const Lanes u = uniforms_from_bits(words[w]);
      if (k < n)  // the mask first (1 stands for "on" until the value)
        x[k] = feature_masks(u, sparsity[k]);
      else
        x[k - n] = feature_values(x[k - n], u);
    }
  }
}

}  // namespace sp::cpu::SP_SIMD_ISA

#else
#define SP_SIMD_PHILOX 0
#endif
