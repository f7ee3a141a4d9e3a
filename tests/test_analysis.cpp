// The analyses on hand-made W with known answers.
#include <gtest/gtest.h>

#include <cmath>

#include "host/core/analysis.hpp"
#include "host/studies/tms.hpp"

namespace sp::analysis {
namespace {

TEST(Phase2to1, Classifies) {
  EXPECT_EQ(phase_2to1(1.0, 0.02), "ignored");
  EXPECT_EQ(phase_2to1(0.01, -0.9), "dedicated");
  EXPECT_EQ(phase_2to1(0.9, -1.1), "antipodal");
  EXPECT_EQ(phase_2to1(0.7, 0.7), "other");   // "confused": same sign
  EXPECT_EQ(phase_2to1(0.9, -0.3), "other");  // opposite signs, too unequal
  EXPECT_EQ(phase_2to1(0.01, 0.0), "other");  // collapsed
  EXPECT_EQ(phase_2to1(std::nan(""), 1.0), "other");
}

TEST(FeatureGeometry, AntipodalPair) {
  const FeatureGeometry g = feature_geometry({1.0, -1.0}, 2, 1);
  for (int f = 0; f < 2; ++f) {
    EXPECT_DOUBLE_EQ(g.norm[f], 1.0);
    EXPECT_DOUBLE_EQ(g.interference[f], 1.0);
    EXPECT_DOUBLE_EQ(g.dimensionality[f], 0.5);
  }
  EXPECT_DOUBLE_EQ(g.dimensions_per_feature, 0.5);
}

TEST(FeatureGeometry, OrthogonalBasisAndIgnoredFeature) {
  // m = 2, n = 3: features 0 and 1 dedicated, feature 2 ignored.
  const FeatureGeometry g = feature_geometry({1, 0, 0, 0, 2, 0}, 3, 2);
  EXPECT_DOUBLE_EQ(g.norm[1], 2.0);
  EXPECT_DOUBLE_EQ(g.interference[0], 0.0);
  EXPECT_DOUBLE_EQ(g.dimensionality[0], 1.0);
  EXPECT_DOUBLE_EQ(g.dimensionality[1], 1.0);
  EXPECT_DOUBLE_EQ(g.norm[2], 0.0);
  EXPECT_DOUBLE_EQ(g.dimensionality[2], 0.0);
  EXPECT_DOUBLE_EQ(g.dimensions_per_feature, 2.0 / 5.0);
}

TEST(FeatureGeometry, PentagonFiveIntoTwo) {
  std::vector<double> W(10);
  const double pi = std::acos(-1.0);
  for (int f = 0; f < 5; ++f) {
    W[f] = std::cos(2 * pi * f / 5);
    W[5 + f] = std::sin(2 * pi * f / 5);
  }
  const FeatureGeometry g = feature_geometry(W, 5, 2);
  for (int f = 0; f < 5; ++f) {
    EXPECT_NEAR(g.norm[f], 1.0, 1e-12);
    EXPECT_NEAR(g.dimensionality[f], 0.4, 1e-12);  // 1 / Σ_j cos²(2π(j−f)/5) = 1 / 2.5
    EXPECT_NEAR(g.interference[f], 1.5, 1e-12);
  }
  EXPECT_NEAR(g.dimensions_per_feature, 0.4, 1e-12);
}

// The measurements `superpose tms` judges by: angle gaps around the circle (m = 2) count only
// represented features (‖W_f‖ > 0.5); cosines between columns.
TEST(TmsGeometry, AngleGapsAndCosines) {
  const double pi = 3.14159265358979323846;
  std::vector<double> pentagon(10);  // 2 x 5, row-major, radius 1, starting at 10°
  for (int f = 0; f < 5; ++f) {
    pentagon[f] = std::cos((10 + 72 * f) * pi / 180);
    pentagon[5 + f] = std::sin((10 + 72 * f) * pi / 180);
  }
  const std::vector<double> gaps = tms::angle_gaps(pentagon, 5);
  ASSERT_EQ(gaps.size(), 5u);
  for (double gap : gaps) EXPECT_NEAR(gap, 72.0, 1e-9);
  // A cross of four features, the fifth too short to count.
  const std::vector<double> cross = {1, 0, -1, 0, 0.1, 0, 1, 0, -1, 0.1};
  const std::vector<double> cross_gaps = tms::angle_gaps(cross, 5);
  ASSERT_EQ(cross_gaps.size(), 4u);
  for (double gap : cross_gaps) EXPECT_NEAR(gap, 90.0, 1e-9);
  EXPECT_NEAR(tms::column_cosine(cross, 5, 2, 0, 2), -1.0, 1e-12);
  EXPECT_NEAR(tms::column_cosine(cross, 5, 2, 0, 1), 0.0, 1e-12);
  EXPECT_NEAR(tms::column_norm(cross, 5, 2, 4), std::sqrt(0.02), 1e-12);
  EXPECT_EQ(tms::angle_gaps(std::vector<double>(10, 0.0), 5).size(), 0u);
}

// The neuron model's neurons: row j of W (2 x 3 here). A row with one large weight is
// monosemantic; one spread over features is not; a row of tiny weights is dead.
TEST(TmsGeometry, ANeuronsFeaturesAreItsRowOfW) {
  const std::vector<double> W = {0.05, 1.2, -0.2,  // neuron 0: feature 1, 96% of Σ w²
                                 0.8,  0.7, 0.0};  // neuron 1: features 0 and 1
  const tms::NeuronFeatures mono = tms::neuron_features(W, 3, 0);
  EXPECT_EQ(mono.top_feature, 1);
  EXPECT_NEAR(mono.top_share, 1.44 / (0.0025 + 1.44 + 0.04), 1e-12);
  EXPECT_GE(mono.top_share, tms::kMonosemantic);
  EXPECT_FALSE(mono.dead);
  const tms::NeuronFeatures poly = tms::neuron_features(W, 3, 1);
  EXPECT_EQ(poly.top_feature, 0);
  EXPECT_LT(poly.top_share, tms::kMonosemantic);
  EXPECT_TRUE(tms::neuron_features({0.01, 0.02, 0.0}, 3, 0).dead);
}

}  // namespace
}  // namespace sp::analysis
