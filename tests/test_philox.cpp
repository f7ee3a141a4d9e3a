#include <gtest/gtest.h>

#include "kernels/philox.hpp"
TEST(Philox, Builds) { EXPECT_GT(sp::stream_uniform(1, 2, 3), 0.0f); }
