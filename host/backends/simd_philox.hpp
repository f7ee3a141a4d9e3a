// simd_philox.hpp — kernels/philox.hpp's Philox4x32-10 for a pack of counters at once (16 with
// AVX-512, 8 with AVX2), used by the CPU's SIMD path to draw a pack of fresh rows: lane i computes
// exactly philox4x32_10 of its own counter (same multiplies, xors and key schedule), and
// uniform_from_bits' conversion is the same correctly rounded integer-to-float conversion, float
// multiply and add, so every lane's bits equal the scalar generator's (tested, path by path). The
// generic path draws row by row with the scalar generator (SP_SIMD_PHILOX 0).
#pragma once

// Included by host/backends/cpu_simd.inc only, inside its instruction set's namespace: the types
// here differ from one set to the next (a 16-float zmm pack, an 8-float ymm pack), so one namespace
// for all would be one name with three definitions, and the linker would mix them.
#ifndef SP_SIMD_ISA
#error "host/backends/cpu_simd.inc includes this, with SP_SIMD_ISA defined"
#endif

#include <algorithm>
#include <cstdint>
#include <vector>

#include "host/backends/simd_lanes.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define SP_SIMD_PHILOX 1  // generate_samples is defined
#include <immintrin.h>

#include "kernels/philox.hpp"
#include "kernels/toy_model.hpp"  // FeatureGroups

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

// Philox4x32-10 of two packs of counters, a and b (word w of each lane's counter in a[w], b[w]),
// under key (k0, k1), for every lane: out[w] holds word w of a's blocks, out[4 + w] of b's. Two
// independent chains of rounds in one loop keep the multipliers busy (measured on AVX-512: +6 %
// fresh rows at 20 -> 5, one thread).
inline void philox4x32_10_pair(const Bits a_in[4], const Bits b_in[4], uint32_t k0, uint32_t k1,
                               Bits out[8]) {
  Bits a0 = a_in[0], a1 = a_in[1], a2 = a_in[2], a3 = a_in[3];
  Bits b0 = b_in[0], b1 = b_in[1], b2 = b_in[2], b3 = b_in[3];
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

// Blocks block_a and block_b of every lane's row: counters (block, c2[i], c3[i]), 64-bit block
// numbers in the low words.
inline void philox4x32_10_blocks(uint64_t block_a, uint64_t block_b, Bits c2, Bits c3,
                                 uint64_t seed, Bits out[8]) {
  const Bits a[4] = {splat(static_cast<uint32_t>(block_a)),
                     splat(static_cast<uint32_t>(block_a >> 32)), c2, c3};
  const Bits b[4] = {splat(static_cast<uint32_t>(block_b)),
                     splat(static_cast<uint32_t>(block_b >> 32)), c2, c3};
  philox4x32_10_pair(a, b, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), out);
}

// 0, 1, …, kWidth − 1: a constant in memory (a static Bits would be made by wide instructions when
// the program starts, on CPUs that may not have them).
struct LaneIndex {
  alignas(64) uint32_t index[Lanes::kWidth];
  constexpr LaneIndex() : index() {
    for (int i = 0; i < Lanes::kWidth; ++i) index[i] = static_cast<uint32_t>(i);
  }
};
inline constexpr LaneIndex kLaneIndex{};

// Lane i's bit: x's lane i is not 0 (as feature_values tests a mask). compress_store: the lanes of
// v whose bits are set in `lanes`, in order, to out[0], out[1], … (a whole pack is written).
// expand_index: lane l's place among the lanes whose bits are set in `lanes` (0 where its bit is
// clear), for permute — p[0], p[1], … to those lanes in order. shift_right, permute: the words of a
// pack shifted, and a pack's lanes by an index a lane.
#if defined(__AVX512F__)
inline uint32_t nonzero_lanes(Lanes x) {
  return _mm512_cmp_ps_mask(x.r, _mm512_setzero_ps(), _CMP_NEQ_UQ);
}
inline void compress_store(uint32_t lanes, Bits v, uint32_t* out) {  // vpcompressd, then a store
  _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(static_cast<__mmask16>(lanes), v));
}
inline Bits expand_index(uint32_t lanes) {
  return _mm512_maskz_expand_epi32(static_cast<__mmask16>(lanes), load_bits(kLaneIndex.index));
}
template <int kBits>
Bits shift_right(Bits v) {
  return _mm512_maskz_srli_epi32(0xFFFF, v, kBits);
}
// The zero-masked forms with every lane selected are the plain instructions (GCC 12 warns falsely
// about the plain forms' undefined pass-through operand).
inline Bits permute(Bits v, Bits index) { return _mm512_maskz_permutexvar_epi32(0xFFFF, index, v); }
inline Lanes permute(Lanes v, Bits index) {
  return Lanes(_mm512_maskz_permutexvar_ps(0xFFFF, index, v.r));
}
#else
inline uint32_t nonzero_lanes(Lanes x) {
  return static_cast<uint32_t>(
      _mm256_movemask_ps(_mm256_cmp_ps(x.r, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
}
// AVX2 has neither compress nor expand: a permutation of the 8 lanes from a table of the 256 masks.
// compress[m], byte k: the lane that goes to place k; expand[m], byte l: the place lane l takes (0
// where its bit is clear).
struct LanePermutations {
  uint64_t compress[256], expand[256];
  constexpr LanePermutations() : compress(), expand() {
    for (int m = 0; m < 256; ++m) {
      uint64_t to = 0, from = 0;
      int place = 0;
      for (int lane = 0; lane < 8; ++lane) {
        if (m & (1 << lane)) {
          to |= static_cast<uint64_t>(lane) << (8 * place);
          from |= static_cast<uint64_t>(place) << (8 * lane);
          ++place;
        }
      }
      compress[m] = to;
      expand[m] = from;
    }
  }
};
inline constexpr LanePermutations kLanePermutations{};
inline __m256i permutation(uint64_t bytes) {  // 8 bytes → 8 words
  return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(bytes)));
}
inline void compress_store(uint32_t lanes, Bits v, uint32_t* out) {
  _mm256_storeu_si256(
      reinterpret_cast<__m256i*>(out),
      _mm256_permutevar8x32_epi32(v, permutation(kLanePermutations.compress[lanes])));
}
inline Bits expand_index(uint32_t lanes) { return permutation(kLanePermutations.expand[lanes]); }
template <int kBits>
Bits shift_right(Bits v) {
  return _mm256_srli_epi32(v, kBits);
}
inline Bits permute(Bits v, Bits index) { return _mm256_permutevar8x32_epi32(v, index); }
inline Lanes permute(Lanes v, Bits index) { return Lanes(_mm256_permutevar8x32_ps(v.r, index)); }
#endif

// Value blocks first .. end − 1 (past the masks) of every lane's row, in place: x[f] = the value
// where the mask in x[f] is on (1), 0 where it is off.
inline void dense_values(uint64_t seed, int n, int first, int end, Bits c2, Bits c3, Lanes* x) {
  for (int block = first; block < end; block += 2) {
    Bits words[8];
    const auto a = static_cast<uint64_t>(block);
    philox4x32_10_blocks(a, block + 1 < end ? a + 1 : a, c2, c3, seed, words);
    for (int w = 0; w < 8; ++w) {
      const int f = 4 * (block + w / 4) + w % 4 - n;
      if (f < n && block + w / 4 < end) x[f] = feature_values(x[f], uniforms_from_bits(words[w]));
    }
  }
}

// The same, but each block drawn only for the rows that use one of its values. A block past the
// masks holds the values of (up to) four features; a row whose masks are all off there uses none
// of its words, and the generator is counter-based, so that block is simply not computed for that
// row: the bits of every value that is used do not change. The (block, row) pairs that are needed
// are packed together (compress; one word each: block · 2⁸ + lane) and drawn a pack of counters at
// a time, whichever rows and blocks they come from; then each block's values are spread back over
// the lanes of the rows that drew them (a permutation), times the mask (1 · value is the value;
// 0 · value is 0). At most kSparseBlocks blocks a call.
constexpr int kSparseBlocks = 32;
constexpr float kPackBelow = 0.65f;  // see ValueRounds
constexpr int kPackFrom = 8;         // blocks
inline void sparse_values(uint64_t seed, int n, int first, int end, Bits c2, Bits c3, Lanes* x,
                          const uint32_t* need) {
  constexpr int kWidth = Lanes::kWidth, kPair = 2 * kWidth;
  constexpr int kRoom = kSparseBlocks * kWidth + kPair;  // the pairs, padded to whole pairs
  alignas(64) uint32_t queue[kRoom];
  const Bits lane_index = load_bits(kLaneIndex.index);
  int queued = 0;
  for (int block = first; block < end; ++block) {
    const uint32_t lanes = need[block - first];
    compress_store(lanes, splat(static_cast<uint32_t>(block) << 8) | lane_index, queue + queued);
    queued += __builtin_popcount(lanes);
  }
  const int padded = (queued + kPair - 1) / kPair * kPair;
  std::fill(queue + queued, queue + padded, 0u);  // drawn, never read
  alignas(64) float drawn[4][kRoom + kWidth];     // word w of each pair; a pack of 0 past the last
  for (int i = 0; i < padded; i += kPair) {
    Bits a[4], b[4], words[8];
    for (int half = 0; half < 2; ++half) {
      Bits* counter = half == 0 ? a : b;
      const Bits entry = load_bits(queue + i + half * kWidth);
      const Bits lane = entry & splat(0xFF);
      counter[0] = shift_right<8>(entry);
      counter[1] = splat(0);  // packed only where a row's blocks are fewer than 2^24
      counter[2] = permute(c2, lane);
      counter[3] = permute(c3, lane);
    }
    philox4x32_10_pair(a, b, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), words);
    for (int w = 0; w < 4; ++w) {
      uniforms_from_bits(words[w]).store(drawn[w] + i);
      uniforms_from_bits(words[4 + w]).store(drawn[w] + i + kWidth);
    }
  }
  for (int w = 0; w < 4; ++w) Lanes(0.0f).store(drawn[w] + padded);
  int at = 0;
  for (int block = first; block < end; ++block) {
    const uint32_t lanes = need[block - first];
    if (lanes == 0) continue;
    const Bits from = expand_index(lanes);
    for (int w = 0; w < 4; ++w) {
      const int f = 4 * block + w - n;
      if (f < n) x[f] = x[f] * permute(Lanes::load(drawn[w] + at), from);
    }
    at += __builtin_popcount(lanes);
  }
}

// How a draw of n features takes its blocks: the first `with_masks` (those with a mask word, and
// the next when they are odd in number) for every row, then rounds of kSparseBlocks value blocks,
// packed (sparse_values) or drawn for every row (dense_values). The choice depends only on the
// sparsities, so it is made once a draw, not once a pack of rows. Measured on a Zen 4 core,
// packing pays where fewer than about 65 % of the (block, row) pairs are needed (both instruction
// sets): at 200 features, sparsity 0.9 (34 %) the draw takes 11 % less time with AVX-512 and 19 %
// less with AVX2; at 0.99, 25 % and 32 % less. Fewer than 8 blocks (20 features: 4 past the
// masks) do not pay for the packing. (A packed pair holds its block in 24 bits: 2^25 features and
// more are drawn for every row.)
struct ValueRounds {
  int blocks = 0, with_masks = 0;
  std::vector<uint8_t> packed;  // one a round
  // The features whose values block `block` (past the masks) holds: [first_feature, end_feature).
  static int first_feature(int block, int n) { return 4 * block - n; }
  static int end_feature(int block, int n) { return std::min(n, 4 * block + 4 - n); }
  void plan(int n, const float* sparsity) {
    blocks = (2 * n + 3) / 4;
    const int mask_blocks = (n + 3) / 4;
    with_masks = std::min(blocks, mask_blocks + mask_blocks % 2);
    packed.clear();
    for (int first = with_masks; first < blocks; first += kSparseBlocks) {
      const int end = std::min(blocks, first + kSparseBlocks);
      float expected = 0.0f;  // the blocks a row is expected to need: 1 − Π P(off)
      for (int block = first; block < end; ++block) {
        float off = 1.0f;
        for (int f = first_feature(block, n); f < end_feature(block, n); ++f) off *= sparsity[f];
        expected += 1.0f - off;
      }
      packed.push_back(end - first >= kPackFrom && blocks < (1 << 24) &&
                       expected <= kPackBelow * static_cast<float>(end - first));
    }
  }
};

// generate_sample for the Lanes::kWidth rows first_subsequence, + 1, … of model `seed`: x[f]
// receives feature f of the rows (mask from uniform f, value from uniform n + f), its blocks taken
// as `rounds` planned (ValueRounds::plan(n, sparsity)). `sparsity`: the thresholds
// (mask_thresholds). Feature groups as generate_sample decides them: a group's members all from
// its first member's mask uniform, the lead — correlated member k on where lead > threshold[k],
// anticorrelated member k also where lead <= threshold[k + 1] (not the last member) — each
// comparison lane by lane as the float code's, so the same masks (tested).
inline void generate_samples(uint64_t seed, uint64_t first_subsequence, int n,
                             const float* sparsity, const ValueRounds& rounds, Lanes* x,
                             const FeatureGroups& groups = FeatureGroups{}) {
  const int grouped = groups.grouped(), correlated = groups.correlated * groups.size;
  Lanes lead(0.0f);  // the current group's uniform
  int member = 0;    // k's place in its group
  constexpr int kWidth = Lanes::kWidth;
  alignas(64) uint32_t lo[kWidth], hi[kWidth];
  for (int i = 0; i < kWidth; ++i) {
    const uint64_t subsequence = first_subsequence + static_cast<uint64_t>(i);
    lo[i] = static_cast<uint32_t>(subsequence);
    hi[i] = static_cast<uint32_t>(subsequence >> 32);
  }
  const Bits c2 = load_bits(lo), c3 = load_bits(hi);
  // The blocks with a mask word, two at a time: their rounds are independent chains, interleaved
  // in one loop (the second of the last pair may hold values only).
  for (int first = 0; first < 4 * rounds.with_masks; first += 8) {
    Bits words[8];
    const uint64_t block = static_cast<uint64_t>(first / 4);
    philox4x32_10_blocks(block, block + 1, c2, c3, seed, words);
    for (int w = 0; w < 8 && first + w < 2 * n; ++w) {
      const int k = first + w;
      const Lanes u = uniforms_from_bits(words[w]);
      if (k >= n) {
        x[k - n] = feature_values(x[k - n], u);
      } else if (k >= grouped) {  // the mask first (1 stands for "on" until the value)
        x[k] = feature_masks(u, sparsity[k]);
      } else {
        if (member == 0) lead = u;
        Lanes on = feature_masks(lead, sparsity[k]);      // lead > threshold[k]
        if (k >= correlated && member + 1 < groups.size)  // and lead <= threshold[k + 1]
          on = on * (Lanes(1.0f) - feature_masks(lead, sparsity[k + 1 < n ? k + 1 : k]));
        x[k] = on;
        member = (member + 1 == groups.size) ? 0 : member + 1;
      }
    }
  }
  for (size_t round = 0; round < rounds.packed.size(); ++round) {
    const int first = rounds.with_masks + static_cast<int>(round) * kSparseBlocks,
              end = std::min(rounds.blocks, first + kSparseBlocks);
    if (!rounds.packed[round]) {
      dense_values(seed, n, first, end, c2, c3, x);
      continue;
    }
    uint32_t need[kSparseBlocks];
    for (int block = first; block < end; ++block) {
      uint32_t lanes = 0;
      for (int f = rounds.first_feature(block, n); f < rounds.end_feature(block, n); ++f)
        lanes |= nonzero_lanes(x[f]);
      need[block - first] = lanes;
    }
    sparse_values(seed, n, first, end, c2, c3, x, need);
  }
}

}  // namespace sp::cpu::SP_SIMD_ISA

#else
#define SP_SIMD_PHILOX 0
#endif
