// Philox4x32-10 on the host: Random123's known-answer vectors, and the stream layout of philox.hpp.
#include <gtest/gtest.h>

#include "kernels/philox.hpp"

namespace sp {
namespace {

// Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors), which cuRAND implements.
TEST(Philox, KnownAnswerZeros) {
  const PhiloxBlock out = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(out.word[0], 0x6627e8d5u);
  EXPECT_EQ(out.word[1], 0xe169c58du);
  EXPECT_EQ(out.word[2], 0xbc57ac4cu);
  EXPECT_EQ(out.word[3], 0x9b00dbd8u);
}

TEST(Philox, KnownAnswerOnes) {
  const uint32_t f = 0xffffffffu;
  const PhiloxBlock out = philox4x32_10(f, f, f, f, f, f);
  EXPECT_EQ(out.word[0], 0x408f276du);
  EXPECT_EQ(out.word[1], 0x41c83b0eu);
  EXPECT_EQ(out.word[2], 0xa20bc7c6u);
  EXPECT_EQ(out.word[3], 0x6d5451fdu);
}

TEST(Philox, KnownAnswerPi) {
  const PhiloxBlock out =
      philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(out.word[0], 0xd16cfe09u);
  EXPECT_EQ(out.word[1], 0x94fdccebu);
  EXPECT_EQ(out.word[2], 0x5001e420u);
  EXPECT_EQ(out.word[3], 0x24126ea1u);
}

TEST(Philox, CounterAndKeyLayout) {
  // Uniform k of (seed, subsequence): block k / 4 in the counter's low words, the subsequence in
  // its high words, the seed as the key.
  const uint64_t seed = 0x0123456789abcdefull, subsequence = 0xfedcba9876543210ull;
  const PhiloxBlock block = philox4x32_10(5, 0, 0x76543210u, 0xfedcba98u, 0x89abcdefu, 0x01234567u);
  for (int w = 0; w < 4; ++w)
    EXPECT_EQ(stream_uniform(seed, subsequence, 20 + w), uniform_from_bits(block.word[w]));
}

TEST(Philox, UniformConversionEndpoints) {
  EXPECT_GT(uniform_from_bits(0), 0.0f);                  // never exactly 0
  EXPECT_FLOAT_EQ(uniform_from_bits(0), 1.1641532e-10f);  // 2^-33
  EXPECT_EQ(uniform_from_bits(0xffffffffu), 1.0f);        // 1 is reachable
}

}  // namespace
}  // namespace sp
