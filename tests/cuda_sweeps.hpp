// cuda_sweeps.hpp — the small sweeps the GPU tests (tests/test_cuda.cpp) and the CUDA emulator's
// backend tests (tests/emulator/test_emulated_backend.cpp) train, and how they compare numbers.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "host/core/config.hpp"
#include "host/core/ulps.hpp"

namespace sp {

// `models` models of shape (n, m): seeds 77, 78, ..., linear and ReLU alternating (with_neuron:
// linear, ReLU and neuron in turn — the neuron model trains on the global and tiled mappings only),
// sparsity
// 0, 0.1, ..., 0.9 in turn, importance 0.9^f, lr 1e-2; eval every 10 steps.
inline GroupSpec sweep(int n, int m, DataMode mode, int models, int steps,
                       bool with_neuron = false) {
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
    model.kind =
        with_neuron ? static_cast<ModelKind>(i % 3) : (i % 2 ? ModelKind::relu : ModelKind::linear);
    model.lr = 1e-2;
    model.sparsity.assign(n, 0.1 * (i % 10));
    for (int f = 0; f < n; ++f) model.importance.push_back(std::pow(0.9, f));
    g.models.push_back(model);
  }
  return g;
}

// Every entry of two float series has the same bits (docs/design.md §3: the kernels and the cpu
// backend run the same operations in the same order). On a difference: how many entries differ,
// the first, and the largest distance in ulps — what a report of a GPU run needs.
template <class A, class B>
inline ::testing::AssertionResult same_bits(const A& got, const B& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " entries against " << want.size();
  size_t differing = 0, first = 0;
  int64_t largest = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    const int64_t distance = ulp_distance(static_cast<float>(got[k]), static_cast<float>(want[k]));
    if (distance == 0) continue;
    if (differing++ == 0) first = k;
    largest = std::max(largest, distance);
  }
  if (differing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << differing << " of " << want.size() << " entries differ; the first [" << first
         << "]: " << got[first] << " against " << want[first] << "; the largest distance "
         << largest << " ulps";
}

struct Shape {
  int n, m;
};

// Two runs of the same group agree in every bit: parameters, losses and trajectories.
inline void expect_identical_results(const std::vector<ModelResult>& a,
                                     const std::vector<ModelResult>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string model = what + ", model " + std::to_string(i);
    EXPECT_TRUE(same_bits(a[i].W, b[i].W)) << model << " W";
    EXPECT_TRUE(same_bits(a[i].b, b[i].b)) << model << " b";
    EXPECT_EQ(std::memcmp(&a[i].train_loss, &b[i].train_loss, sizeof(double)), 0)
        << model << " train loss " << a[i].train_loss << " against " << b[i].train_loss;
    EXPECT_EQ(std::memcmp(&a[i].eval_loss, &b[i].eval_loss, sizeof(double)), 0)
        << model << " eval loss " << a[i].eval_loss << " against " << b[i].eval_loss;
    EXPECT_TRUE(same_bits(a[i].loss_curve, b[i].loss_curve)) << model << " loss curve";
    EXPECT_TRUE(same_bits(a[i].eval_curve, b[i].eval_curve)) << model << " eval curve";
    EXPECT_TRUE(same_bits(a[i].W_snapshots, b[i].W_snapshots)) << model << " W snapshots";
    EXPECT_TRUE(same_bits(a[i].b_snapshots, b[i].b_snapshots)) << model << " b snapshots";
  }
}

}  // namespace sp
