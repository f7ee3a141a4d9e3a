// cuRAND's own device generator code, compiled for the host (no GPU needed): the project's host
// Philox equals curand_Philox4x32_10, and stream_uniform(seed, subsequence, k) equals the k-th
// curand_uniform after curand_init(seed, subsequence, 0) — the layout kernels/philox.hpp documents.
#define QUALIFIERS static __forceinline__ __host__ __device__
#include <curand_kernel.h>
#include <gtest/gtest.h>

#include "kernels/philox.hpp"
#include "kernels/toy_model.hpp"

namespace sp {
namespace {

TEST(CurandOnHost, PhiloxBlocksMatchCurand) {
  const uint64_t seeds[] = {0, 44, 0xdeadbeefcafef00dull};
  const uint64_t subsequences[] = {0, 1, 799, kEvalBase + 3, kInitBase};
  for (uint64_t seed : seeds)
    for (uint64_t subsequence : subsequences)
      for (uint64_t block = 0; block < 6; ++block) {
        const uint4 expected = curand_Philox4x32_10(
            make_uint4(static_cast<unsigned>(block), static_cast<unsigned>(block >> 32),
                       static_cast<unsigned>(subsequence), static_cast<unsigned>(subsequence >> 32)),
            make_uint2(static_cast<unsigned>(seed), static_cast<unsigned>(seed >> 32)));
        const PhiloxBlock got = philox_block(seed, subsequence, block);
        EXPECT_EQ(got.word[0], expected.x);
        EXPECT_EQ(got.word[1], expected.y);
        EXPECT_EQ(got.word[2], expected.z);
        EXPECT_EQ(got.word[3], expected.w);
      }
}

TEST(CurandOnHost, StreamUniformIsCurandUniformAfterCurandInit) {
  for (uint64_t seed : {uint64_t{7}, uint64_t{44}, uint64_t{1} << 40})
    for (uint64_t subsequence : {uint64_t{0}, uint64_t{12345}, kEvalBase, kInitBase + 1}) {
      curandStatePhilox4_32_10_t state;
      curand_init(seed, subsequence, 0, &state);
      for (uint64_t k = 0; k < 40; ++k)
        EXPECT_EQ(stream_uniform(seed, subsequence, k), curand_uniform(&state))
            << "seed " << seed << " subsequence " << subsequence << " k " << k;
    }
}

TEST(CurandOnHost, SampleGenerationUsesTheDocumentedUniforms) {
  // generate_sample: uniforms 0..n-1 are masks (u <= s => 0), n..2n-1 the values.
  const int n = 5;
  const float sparsity[n] = {0.0f, 0.5f, 0.5f, 1.0f, 0.3f};
  float x[n];
  generate_sample(44, 17, n, sparsity, x);
  curandStatePhilox4_32_10_t state;
  curand_init(44, 17, 0, &state);
  float u[2 * n];
  for (float& v : u) v = curand_uniform(&state);
  for (int f = 0; f < n; ++f) EXPECT_EQ(x[f], u[f] <= sparsity[f] ? 0.0f : u[n + f]) << f;
}

}  // namespace
}  // namespace sp
