// The data and initial parameters of DESIGN.md §2: distribution, layout, purity.
#include <gtest/gtest.h>

#include <cmath>

#include "host/data.hpp"

namespace sp {
namespace {

ModelSpec model_with(uint64_t seed, std::vector<double> sparsity) {
  ModelSpec m;
  m.seed = seed;
  m.sparsity = std::move(sparsity);
  m.importance.assign(m.sparsity.size(), 1.0);
  return m;
}

TEST(Data, SparsityAndUniformValuesPerFeature) {
  const ModelSpec model = model_with(7, {0.0, 0.3, 0.8, 1.0});
  const int rows = 40000, n = 4;
  const std::vector<float> x = generate_rows(model, n, 0, rows);
  for (int f = 0; f < n; ++f) {
    int zeros = 0;
    double sum = 0;
    for (int r = 0; r < rows; ++r) {
      const float v = x[static_cast<size_t>(r) * n + f];
      ASSERT_GE(v, 0.0f);
      ASSERT_LE(v, 1.0f);
      if (v == 0.0f) ++zeros;
      sum += v;
    }
    const double s = model.sparsity[f], zero_share = static_cast<double>(zeros) / rows;
    // Binomial standard error at 40,000 rows is at most 0.0025.
    EXPECT_NEAR(zero_share, s, 0.01) << "feature " << f;
    if (s < 1) {
      EXPECT_NEAR(sum / (rows - zeros), 0.5, 0.01) << "feature " << f;
    }
  }
}

TEST(Data, RowsArePureFunctionsOfSeedAndIndex) {
  const ModelSpec model = model_with(99, {0.5, 0.5, 0.5});
  const std::vector<float> all = generate_rows(model, 3, 0, 100);
  const std::vector<float> tail = generate_rows(model, 3, 60, 40);  // rows 60..99 alone
  for (size_t k = 0; k < tail.size(); ++k) EXPECT_EQ(tail[k], all[60 * 3 + k]);
  const std::vector<float> other = generate_rows(model_with(100, {0.5, 0.5, 0.5}), 3, 0, 100);
  EXPECT_NE(other, all);
}

TEST(Data, FreshEvaluationRowsAreDisjointFromTraining) {
  GroupSpec g;
  g.n_features = 2;
  g.mode = DataMode::fresh;
  g.eval_points = 50;
  const ModelSpec model = model_with(5, {0.0, 0.0});
  EXPECT_EQ(eval_set(g, model), generate_rows(model, 2, kEvalBase, 50));
  EXPECT_NE(eval_set(g, model), generate_rows(model, 2, 0, 50));
}

TEST(Data, FixedEvaluationIsTheDatasetTail) {
  GroupSpec g;
  g.n_features = 2;
  g.points = 1000;
  g.eval_fraction = 0.2;
  const ModelSpec model = model_with(5, {0.0, 0.0});
  EXPECT_EQ(g.train_rows(), 800);
  EXPECT_EQ(eval_set(g, model), generate_rows(model, 2, 800, 200));
}

TEST(Init, XavierNormalStandardDeviation) {
  GroupSpec g;
  g.n_features = 20;
  g.n_hidden = 5;
  double sum = 0, sum_sq = 0;
  int count = 0;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    for (float w : initial_W(g, model_with(seed, std::vector<double>(20, 0.0)))) {
      sum += w;
      sum_sq += static_cast<double>(w) * w;
      ++count;
    }
  }
  const double mean = sum / count, std_dev = std::sqrt(sum_sq / count - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std_dev, std::sqrt(2.0 / 25.0), 0.005);  // 40,000 draws: s.e. of std ≈ 0.001
  EXPECT_EQ(initial_b(g, model_with(1, std::vector<double>(20, 0.0))),
            std::vector<float>(20, 0.0f));
}

TEST(AdamWSchedule, TorchsScalars) {
  const AdamWStep s = AdamWSchedule::at(1e-3, 2);
  EXPECT_FLOAT_EQ(s.decay, static_cast<float>(1 - 1e-3 * 0.01));
  EXPECT_FLOAT_EQ(s.step_size, static_cast<float>(1e-3 / (1 - 0.9 * 0.9)));
  EXPECT_FLOAT_EQ(s.bias2_sqrt, static_cast<float>(std::sqrt(1 - 0.999 * 0.999)));
}

// The counts a resource estimate uses are the sizes of the lists training records.
TEST(GroupSpec, StepCountsAreTheListsSizes) {
  GroupSpec g;
  for (int steps : {1, 2, 3, 9, 10, 11, 100, 101, 1000})
    for (int every : {0, 1, 2, 3, 7, 10, 50, 100, 2000}) {
      g.steps = steps;
      g.eval_every = every;
      g.snapshot_every = every;
      EXPECT_EQ(g.eval_step_count(), static_cast<int64_t>(g.eval_steps().size()))
          << "steps " << steps << ", every " << every;
      EXPECT_EQ(g.snapshot_step_count(), static_cast<int64_t>(g.snapshot_steps().size()))
          << "steps " << steps << ", every " << every;
    }
  g.steps = 2147483647;  // listed nowhere: counted
  g.eval_every = 1000;
  EXPECT_EQ(g.eval_step_count(), 2147484 + 1);
}

}  // namespace
}  // namespace sp
