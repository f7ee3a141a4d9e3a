// simd_lanes.hpp — a pack of V lanes for the CPU's SIMD path: V consecutive rows of a batch, one
// per lane, pushed through kernels/toy_model.hpp's per-sample templates at once. Every operation is
// the float operation of the scalar code applied to each lane (fma as one fused multiply-add, with
// no other contraction), so each lane's bits are exactly those of the float path and of the
// kernels. AVX-512: 16 lanes in a zmm register; AVX2 + FMA: 8 in a ymm; elsewhere 8 lanes as a
// loop.
#pragma once

// Included by host/backends/cpu_simd.inc only, inside its instruction set's namespace: the types
// here differ from one set to the next (a 16-float zmm pack, an 8-float ymm pack), so one namespace
// for all would be one name with three definitions, and the linker would mix them.
#ifndef SP_SIMD_ISA
#error "host/backends/cpu_simd.inc includes this, with SP_SIMD_ISA defined"
#endif

#include <cmath>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace sp::cpu::SP_SIMD_ISA {

#if defined(__AVX512F__)
struct Lanes {
  static constexpr int kWidth = 16;
  __m512 r;
  Lanes() = default;
  Lanes(float x) : r(_mm512_set1_ps(x)) {}  // NOLINT: a scalar broadcasts, as in the float code
  explicit Lanes(__m512 v) : r(v) {}
  static Lanes load(const float* p) { return Lanes(_mm512_loadu_ps(p)); }
  void store(float* p) const { _mm512_storeu_ps(p, r); }
  Lanes& operator+=(Lanes o) {
    r = _mm512_add_ps(r, o.r);
    return *this;
  }
  // Lane i holds lane (i + K) mod kWidth of this; first() is lane 0.
  template <int K>
  Lanes rotated() const {
    const __m512i index = _mm512_setr_epi32(
        K % 16, (K + 1) % 16, (K + 2) % 16, (K + 3) % 16, (K + 4) % 16, (K + 5) % 16, (K + 6) % 16,
        (K + 7) % 16, (K + 8) % 16, (K + 9) % 16, (K + 10) % 16, (K + 11) % 16, (K + 12) % 16,
        (K + 13) % 16, (K + 14) % 16, (K + 15) % 16);
    return Lanes(_mm512_mask_permutexvar_ps(r, 0xFFFF, index, r));  // masked: no undefined source
  }
  float first() const { return _mm512_cvtss_f32(r); }
};
inline Lanes operator+(Lanes a, Lanes b) { return Lanes(_mm512_add_ps(a.r, b.r)); }
inline Lanes operator-(Lanes a, Lanes b) { return Lanes(_mm512_sub_ps(a.r, b.r)); }
inline Lanes operator*(Lanes a, Lanes b) { return Lanes(_mm512_mul_ps(a.r, b.r)); }
inline Lanes operator/(Lanes a, Lanes b) { return Lanes(_mm512_div_ps(a.r, b.r)); }
// The zero-masked form with every lane selected is the plain instruction (GCC 12 warns falsely
// about the plain form's undefined pass-through operand).
inline Lanes sqrt_f(Lanes a) { return Lanes(_mm512_maskz_sqrt_ps(0xFFFF, a.r)); }
inline Lanes operator*(float a, Lanes b) { return Lanes(_mm512_mul_ps(_mm512_set1_ps(a), b.r)); }
inline Lanes fma_f(float a, Lanes b, Lanes c) {
  return Lanes(_mm512_fmadd_ps(_mm512_set1_ps(a), b.r, c.r));
}
inline Lanes fma_f(Lanes a, Lanes b, Lanes c) { return Lanes(_mm512_fmadd_ps(a.r, b.r, c.r)); }
inline Lanes relu_forward(Lanes z) {  // z where z > 0 or z is NaN, else 0
  const __mmask16 keep = _mm512_cmp_ps_mask(z.r, _mm512_setzero_ps(), _CMP_GT_OQ) |
                         _mm512_cmp_ps_mask(z.r, z.r, _CMP_UNORD_Q);
  return Lanes(_mm512_maskz_mov_ps(keep, z.r));
}
inline Lanes relu_backward(Lanes z, Lanes g) {  // g where z > 0, else 0
  return Lanes(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z.r, _mm512_setzero_ps(), _CMP_GT_OQ), g.r));
}

#elif defined(__AVX2__) && defined(__FMA__)
struct Lanes {
  static constexpr int kWidth = 8;
  __m256 r;
  Lanes() = default;
  Lanes(float x) : r(_mm256_set1_ps(x)) {}  // NOLINT: a scalar broadcasts, as in the float code
  explicit Lanes(__m256 v) : r(v) {}
  static Lanes load(const float* p) { return Lanes(_mm256_loadu_ps(p)); }
  void store(float* p) const { _mm256_storeu_ps(p, r); }
  Lanes& operator+=(Lanes o) {
    r = _mm256_add_ps(r, o.r);
    return *this;
  }
  template <int K>
  Lanes rotated() const {
    const __m256i index = _mm256_setr_epi32(K % 8, (K + 1) % 8, (K + 2) % 8, (K + 3) % 8,
                                            (K + 4) % 8, (K + 5) % 8, (K + 6) % 8, (K + 7) % 8);
    return Lanes(_mm256_permutevar8x32_ps(r, index));
  }
  float first() const { return _mm256_cvtss_f32(r); }
};
inline Lanes operator+(Lanes a, Lanes b) { return Lanes(_mm256_add_ps(a.r, b.r)); }
inline Lanes operator-(Lanes a, Lanes b) { return Lanes(_mm256_sub_ps(a.r, b.r)); }
inline Lanes operator*(Lanes a, Lanes b) { return Lanes(_mm256_mul_ps(a.r, b.r)); }
inline Lanes operator/(Lanes a, Lanes b) { return Lanes(_mm256_div_ps(a.r, b.r)); }
inline Lanes sqrt_f(Lanes a) { return Lanes(_mm256_sqrt_ps(a.r)); }
inline Lanes operator*(float a, Lanes b) { return Lanes(_mm256_mul_ps(_mm256_set1_ps(a), b.r)); }
inline Lanes fma_f(float a, Lanes b, Lanes c) {
  return Lanes(_mm256_fmadd_ps(_mm256_set1_ps(a), b.r, c.r));
}
inline Lanes fma_f(Lanes a, Lanes b, Lanes c) { return Lanes(_mm256_fmadd_ps(a.r, b.r, c.r)); }
inline Lanes relu_forward(Lanes z) {
  const __m256 keep = _mm256_or_ps(_mm256_cmp_ps(z.r, _mm256_setzero_ps(), _CMP_GT_OQ),
                                   _mm256_cmp_ps(z.r, z.r, _CMP_UNORD_Q));
  return Lanes(_mm256_and_ps(keep, z.r));
}
inline Lanes relu_backward(Lanes z, Lanes g) {
  return Lanes(_mm256_and_ps(_mm256_cmp_ps(z.r, _mm256_setzero_ps(), _CMP_GT_OQ), g.r));
}

#else
struct Lanes {
  static constexpr int kWidth = 8;
  float v[kWidth];
  Lanes() = default;
  Lanes(float x) {  // NOLINT: a scalar broadcasts, as in the float code
    for (float& lane : v) lane = x;
  }
  static Lanes load(const float* p) {
    Lanes l;
    for (int i = 0; i < kWidth; ++i) l.v[i] = p[i];
    return l;
  }
  void store(float* p) const {
    for (int i = 0; i < kWidth; ++i) p[i] = v[i];
  }
  Lanes& operator+=(Lanes o) {
    for (int i = 0; i < kWidth; ++i) v[i] += o.v[i];
    return *this;
  }
  template <int K>
  Lanes rotated() const {
    Lanes l;
    for (int i = 0; i < kWidth; ++i) l.v[i] = v[(i + K) % kWidth];
    return l;
  }
  float first() const { return v[0]; }
};
inline Lanes operator+(Lanes a, Lanes b) {
  for (int i = 0; i < Lanes::kWidth; ++i) a.v[i] += b.v[i];
  return a;
}
inline Lanes operator-(Lanes a, Lanes b) {
  for (int i = 0; i < Lanes::kWidth; ++i) a.v[i] -= b.v[i];
  return a;
}
inline Lanes operator*(Lanes a, Lanes b) {
  for (int i = 0; i < Lanes::kWidth; ++i) a.v[i] *= b.v[i];
  return a;
}
inline Lanes operator/(Lanes a, Lanes b) {
  for (int i = 0; i < Lanes::kWidth; ++i) a.v[i] /= b.v[i];
  return a;
}
inline Lanes sqrt_f(Lanes a) {
  for (float& lane : a.v) lane = std::sqrt(lane);
  return a;
}
inline Lanes operator*(float a, Lanes b) {
  for (float& lane : b.v) lane = a * lane;
  return b;
}
inline Lanes fma_f(float a, Lanes b, Lanes c) {
  for (int i = 0; i < Lanes::kWidth; ++i) c.v[i] = std::fma(a, b.v[i], c.v[i]);
  return c;
}
inline Lanes fma_f(Lanes a, Lanes b, Lanes c) {
  for (int i = 0; i < Lanes::kWidth; ++i) c.v[i] = std::fma(a.v[i], b.v[i], c.v[i]);
  return c;
}
inline Lanes relu_forward(Lanes z) {
  for (float& lane : z.v) lane = (lane > 0.0f || lane != lane) ? lane : 0.0f;
  return z;
}
inline Lanes relu_backward(Lanes z, Lanes g) {
  for (int i = 0; i < Lanes::kWidth; ++i) g.v[i] = z.v[i] > 0.0f ? g.v[i] : 0.0f;
  return g;
}
#endif

}  // namespace sp::cpu::SP_SIMD_ISA
