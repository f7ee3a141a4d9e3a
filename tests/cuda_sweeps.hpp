// cuda_sweeps.hpp — the small sweeps the GPU tests (tests/test_cuda.cpp) and the CUDA emulator's
// backend tests (tests/emulator/test_emulated_backend.cpp) train, and how they compare numbers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "host/config.hpp"

namespace sp {

// `models` models of shape (n, m): seeds 77, 78, ..., linear and ReLU alternating, sparsity
// 0, 0.1, ..., 0.9 in turn, importance 0.9^f, lr 1e-2; eval every 10 steps.
inline GroupSpec sweep(int n, int m, DataMode mode, int models, int steps) {
  GroupSpec g;
  g.n_features = n;
  g.n_hidden = m;
  g.mode = mode;
  g.points = 1000;
  g.batch = 512;
  g.eval_points = 500;
  g.steps = steps;
  g.eval_every = 10;
  for (int i = 0; i < models; ++i) {
    ModelSpec model;
    model.seed = 77 + static_cast<uint64_t>(i);
    model.kind = i % 2 ? ModelKind::relu : ModelKind::linear;
    model.lr = 1e-2;
    model.sparsity.assign(n, 0.1 * (i % 10));
    for (int f = 0; f < n; ++f) model.importance.push_back(std::pow(0.9, f));
    g.models.push_back(model);
  }
  return g;
}

// Within `ulps` units in the last place (float), or both tiny.
inline ::testing::AssertionResult close_in_ulps(double a, double b, int ulps) {
  const double scale = std::max(std::abs(a), std::abs(b));
  if (std::abs(a - b) <= ulps * scale * 1.1920929e-7 + 1e-30) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs " << b;
}

struct Shape {
  int n, m;
};

// Every entry of two series within `ulps` (and of the same length).
template <class A, class B>
inline void expect_close_series(const A& gpu, const B& cpu, int ulps, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t k = 0; k < cpu.size(); ++k)
    EXPECT_TRUE(close_in_ulps(gpu[k], cpu[k], ulps)) << what << " [" << k << "]";
}

// Two runs of the same group agree in every bit: parameters, losses and trajectories.
inline void expect_identical_results(const std::vector<ModelResult>& a,
                                     const std::vector<ModelResult>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string model = what + ", model " + std::to_string(i);
    EXPECT_EQ(a[i].W, b[i].W) << model;
    EXPECT_EQ(a[i].b, b[i].b) << model;
    EXPECT_EQ(std::memcmp(&a[i].train_loss, &b[i].train_loss, sizeof(double)), 0) << model;
    EXPECT_EQ(std::memcmp(&a[i].eval_loss, &b[i].eval_loss, sizeof(double)), 0) << model;
    expect_close_series(a[i].loss_curve, b[i].loss_curve, 0, model + " loss curve");
    expect_close_series(a[i].eval_curve, b[i].eval_curve, 0, model + " eval curve");
    EXPECT_EQ(a[i].W_snapshots, b[i].W_snapshots) << model;
    EXPECT_EQ(a[i].b_snapshots, b[i].b_snapshots) << model;
  }
}

}  // namespace sp
