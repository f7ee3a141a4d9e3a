// The cpu backend (float, the kernels' shared math and lane order) against the double reference,
// and its determinism: same bits at any thread count and whatever models train beside it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <utility>

#include "host/backends/backend.hpp"
#include "host/backends/cpu_backend.hpp"
#include "host/backends/reference.hpp"
#include "host/core/ulps.hpp"
#include "kernels/toy_model.hpp"

namespace sp {
namespace {

GroupSpec group_of(int n, int m, ModelKind kind, double sparsity, DataMode mode, int models) {
  GroupSpec g;
  g.n_features = n;
  g.n_hidden = m;
  g.mode = mode;
  g.points = 1000;
  g.batch = 256;
  g.eval_points = 300;
  g.steps = 40;
  g.eval_every = 10;
  for (int i = 0; i < models; ++i) {
    ModelSpec model;
    model.seed = 1000 + static_cast<uint64_t>(i);
    model.kind = kind;
    model.lr = 1e-2;
    model.sparsity.assign(n, sparsity);
    for (int f = 0; f < n; ++f) model.importance.push_back(std::pow(0.9, f));
    g.models.push_back(model);
  }
  return g;
}

double max_abs(const std::vector<double>& v) {
  double out = 0;
  for (double x : v) out = std::max(out, std::abs(x));
  return out;
}

using Case = std::tuple<int, int, ModelKind, double>;
class CpuOneStep : public ::testing::TestWithParam<Case> {};

TEST_P(CpuOneStep, GradientsMatchReferenceWithin1e5Relative) {
  const auto [n, m, kind, sparsity] = GetParam();
  const Activation act = activation_of(kind);
  const GroupSpec g = group_of(n, m, kind, sparsity, DataMode::fixed, 1);
  const ModelSpec& model = g.models[0];
  std::vector<float> W = initial_W(g, model);
  const std::vector<float> b = initial_b(g, model);
  // A neuron model's hidden unit j is dead for every x >= 0 when row j of W has no positive entry
  // (then, with b = 0, nothing has a gradient): row 0 gets alternating signs, so that its
  // pre-activation takes both signs over the rows — the hidden mask passes some and stops others.
  if (act.hidden)
    for (int f = 0; f < n; ++f) W[f] = (f % 2 ? -1.0f : 1.0f) * std::abs(W[f]);
  const std::vector<float> x = fixed_dataset(g, model), importance = to_float(model.importance);
  const int rows = g.train_rows();
  std::vector<float> grad_W(W.size()), grad_b(b.size());
  cpu::LaneScratch scratch;
  scratch.resize(n, m);
  const float loss = cpu::loss_and_gradients(n, m, act, W.data(), b.data(), importance.data(),
                                             x.data(), rows, grad_W.data(), grad_b.data(), scratch);
  const reference::Gradients ref = reference::loss_and_gradients(
      n, m, act, std::vector<double>(W.begin(), W.end()), std::vector<double>(b.begin(), b.end()),
      model.importance, std::vector<double>(x.begin(), x.end()), rows);
  EXPECT_NEAR(loss, ref.loss, 1e-5 * ref.loss);
  // Relative to the gradient's largest entry: entries near 0 carry the sum's absolute error.
  const double scale = std::max(max_abs(ref.grad_W), max_abs(ref.grad_b));
  ASSERT_GT(scale, 0.0);
  for (size_t k = 0; k < W.size(); ++k)
    EXPECT_NEAR(grad_W[k], ref.grad_W[k], 1e-5 * scale) << "grad_W[" << k << "]";
  for (size_t f = 0; f < b.size(); ++f)
    EXPECT_NEAR(grad_b[f], ref.grad_b[f], 1e-5 * scale) << "grad_b[" << f << "]";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuOneStep,
    ::testing::Combine(::testing::Values(2, 5, 20, 7), ::testing::Values(1, 2, 5),
                       ::testing::Values(ModelKind::linear, ModelKind::relu, ModelKind::neuron),
                       ::testing::Values(0.0, 0.8)));

// Independent features, then correlated and anticorrelated pairs (both backends draw the same
// rows: the groups change the data, not the arithmetic).
TEST(CpuBackend, ShortTrajectoryFollowsReference) {
  for (FeatureGroups groups : {FeatureGroups{}, FeatureGroups{1, 1, 2}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      GroupSpec g = group_of(5, 2, ModelKind::relu, 0.5, mode, 2);
      g.groups = groups;
      g.eval_seed = 3;
      const auto cpu_results = make_cpu_backend(1)->train(g);
      const auto ref_results = make_reference_backend()->train(g);
      for (size_t i = 0; i < g.models.size(); ++i) {
        // 40 AdamW steps of lr 1e-2 from identical float inputs: float rounding moves W by ~1e-6.
        for (size_t k = 0; k < cpu_results[i].W.size(); ++k)
          EXPECT_NEAR(cpu_results[i].W[k], ref_results[i].W[k], 1e-4);
        EXPECT_NEAR(cpu_results[i].train_loss, ref_results[i].train_loss,
                    1e-4 * ref_results[i].train_loss);
        EXPECT_NEAR(cpu_results[i].eval_loss, ref_results[i].eval_loss,
                    1e-4 * ref_results[i].eval_loss);
      }
    }
}

bool same_bits(const ModelResult& a, const ModelResult& b) {
  return a.W == b.W && a.b == b.b &&
         std::memcmp(&a.train_loss, &b.train_loss, sizeof(double)) == 0 &&
         std::memcmp(&a.eval_loss, &b.eval_loss, sizeof(double)) == 0;
}

TEST(CpuBackend, SameBitsAtAnyThreadCount) {
  const GroupSpec g = group_of(5, 2, ModelKind::relu, 0.7, DataMode::fresh, 7);
  const auto one = make_cpu_backend(1)->train(g);
  for (int threads : {2, 3, 8}) {
    const auto many = make_cpu_backend(threads)->train(g);
    for (size_t i = 0; i < one.size(); ++i)
      EXPECT_TRUE(same_bits(one[i], many[i])) << "model " << i << " with " << threads << " threads";
  }
}

TEST(CpuBackend, AModelIsTheSameAloneOrInASweep) {
  GroupSpec sweep = group_of(2, 1, ModelKind::relu, 0.8, DataMode::fixed, 6);
  sweep.models[2].lr = 3e-3;  // neighbours with other options
  sweep.models[4].kind = ModelKind::linear;
  GroupSpec alone = sweep;
  alone.models = {sweep.models[3]};
  const auto in_sweep = make_cpu_backend(2)->train(sweep);
  const auto by_itself = make_cpu_backend(1)->train(alone);
  EXPECT_TRUE(same_bits(in_sweep[3], by_itself[0]));
}

TEST(CpuBackend, DivergenceIsReportedNotHidden) {
  GroupSpec g = group_of(2, 1, ModelKind::linear, 0.0, DataMode::fixed, 1);
  g.models[0].lr = 1e3;  // AdamW at lr 1000 on a quartic loss blows up
  g.models[0].importance = {1e30, 1e30};
  g.steps = 200;
  const auto results = make_cpu_backend(1)->train(g);
  EXPECT_FALSE(results[0].finite);
}

TEST(LaneTree, IsCubsPairwiseTree) {
  // Values whose float sum depends on the order: the tree must be ((v0+v1)+(v2+v3))+... .
  float values[kLanes];
  for (int i = 0; i < kLanes; ++i) values[i] = (i % 3 == 0) ? 1e8f : 1.0f + static_cast<float>(i);
  std::function<float(int, int)> tree = [&](int first, int count) -> float {
    if (count == 1) return values[first];
    return tree(first, count / 2) + tree(first + count / 2, count / 2);
  };
  const float expected = tree(0, kLanes);
  EXPECT_EQ(lane_tree_sum(values), expected);
}

// The shared-weights kernels' per-sample code (kernels/mapping_shared.cu): W's columns read from a
// transposed copy and ∂W's two terms added at different points of the sample. Every entry takes
// the same fused multiply-adds in the same order, so the bits must be accumulate_sample's —
// proven here on the host, for the shapes the kernels use and others, ReLU and linear, with
// inputs (sparse x, negative z) that exercise every branch.
TEST(StreamingSample, SameBitsAsAccumulateSample) {
  std::mt19937 random(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const auto& [n, m] : {std::pair{2, 1}, {5, 2}, {20, 5}, {7, 3}, {40, 9}})
    for (ModelKind kind : {ModelKind::linear, ModelKind::relu, ModelKind::neuron}) {
      const Activation act = activation_of(kind);
      const int P = m * n + n;
      std::vector<float> params(P), transposed(m * n), importance(n), x(n);
      for (float& value : params) value = uniform(random);
      for (int j = 0; j < m; ++j)
        for (int f = 0; f < n; ++f) transposed[f * m + j] = params[j * n + f];
      for (float& value : importance) value = 0.5f + uniform(random);
      std::vector<float> plain(P), streaming(P), hidden(m), grad_hidden(m), grad_z(n);
      for (int sample = 0; sample < 50; ++sample) {
        for (float& value : x) value = uniform(random) < 0.0f ? 0.0f : uniform(random) + 1.0f;
        const float a = accumulate_sample(
            n, m, act, params.data(), params.data() + m * n, importance.data(), x.data(), 0.01f,
            plain.data(), plain.data() + m * n, hidden.data(), grad_hidden.data(), grad_z.data());
        const float b = accumulate_sample_streaming(
            n, m, act, params.data(), transposed_columns(transposed.data(), m),
            params.data() + m * n, importance.data(), x.data(), 0.01f, streaming.data(),
            streaming.data() + m * n, hidden.data(), grad_hidden.data());
        ASSERT_EQ(std::memcmp(&a, &b, sizeof a), 0) << n << "x" << m << " sample " << sample;
      }
      EXPECT_EQ(std::memcmp(plain.data(), streaming.data(), P * sizeof(float)), 0)
          << n << "x" << m << " " << to_string(kind);
    }
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// The SIMD paths this CPU has (generic, avx2, avx512: host/backends/cpu_simd.inc compiled per
// instruction set), each named in the failure messages.
std::vector<cpu::SimdPath> simd_paths_here() {
  std::vector<cpu::SimdPath> paths;
  for (cpu::SimdPath path : {cpu::SimdPath::generic, cpu::SimdPath::avx2, cpu::SimdPath::avx512})
    if (cpu::simd_path_supported(path)) paths.push_back(path);
  return paths;
}

// Every SIMD path (packs of 16 or 8 rows through accumulate_sample on packs) gives the float
// path's bits exactly, for every dims specialisation and for row counts with a leftover tail.
TEST(CpuSimd, SameBitsAsTheFloatPath) {
  struct Shape {
    int n, m;
  };
  for (cpu::SimdPath path : simd_paths_here())
    // (37, 7) and (41, 9): the GEMM-like passes of large shapes, with edge tiles on both sides.
    for (Shape shape : {Shape{2, 1}, Shape{5, 2}, Shape{20, 5}, Shape{3, 2}, Shape{7, 1},
                        Shape{9, 4}, Shape{6, 7}, Shape{37, 7}, Shape{41, 9}})
      for (int rows : {1, 15, 16, 37, 800, 1023})
        for (ModelKind kind : {ModelKind::linear, ModelKind::relu, ModelKind::neuron}) {
          const Activation act = activation_of(kind);
          const int n = shape.n, m = shape.m;
          GroupSpec g;
          g.n_features = n;
          g.n_hidden = m;
          ModelSpec model;
          model.seed = static_cast<uint64_t>(rows * 7 + n);
          model.sparsity.assign(n, 0.5);
          model.importance.assign(n, 1.0);
          for (int f = 0; f < n; ++f) model.importance[f] = 1.0 / (1 + f);
          const std::vector<float> x = generate_rows(model, n, 0, rows);
          std::vector<float> W = initial_W(g, model), b(n);
          for (int f = 0; f < n; ++f) b[f] = 0.1f * static_cast<float>(f % 3) - 0.1f;
          const std::vector<float> importance = to_float(model.importance);
          std::vector<float> gW(W.size()), gb(n), sW(W.size()), sb(n);
          cpu::LaneScratch scratch;
          scratch.resize(n, m);
          const float loss =
              cpu::loss_and_gradients(n, m, act, W.data(), b.data(), importance.data(), x.data(),
                                      rows, gW.data(), gb.data(), scratch);
          cpu::SimdStep simd(n, m, path);
          simd.set_rows(x.data(), rows);
          const float simd_loss = simd.loss_and_gradients(act, W.data(), b.data(),
                                                          importance.data(), sW.data(), sb.data());
          SCOPED_TRACE(::testing::Message() << cpu::to_string(path) << " n " << n << " m " << m
                                            << " rows " << rows << " " << to_string(kind));
          EXPECT_EQ(loss, simd_loss);
          for (size_t k = 0; k < W.size(); ++k) EXPECT_EQ(gW[k], sW[k]) << "dW " << k;
          for (int f = 0; f < n; ++f) EXPECT_EQ(gb[f], sb[f]) << "db " << f;
          // The step split over threads (whole lane groups each: 2 on avx512, up to 4 on avx2
          // and generic), twice in a row (the team's threads are reused): the same bits.
          for (int threads : {2, 4}) {
            cpu::SimdStep split(n, m, path);
            const int used = split.set_threads(threads);
            EXPECT_GE(used, 2) << threads << " threads asked for";
            split.set_rows(x.data(), rows);
            for (int repeat = 0; repeat < 2; ++repeat) {
              std::fill(sW.begin(), sW.end(), 0.0f);
              std::fill(sb.begin(), sb.end(), 0.0f);
              EXPECT_EQ(loss, split.loss_and_gradients(act, W.data(), b.data(), importance.data(),
                                                       sW.data(), sb.data()))
                  << used << " threads";
              for (size_t k = 0; k < W.size(); ++k)
                EXPECT_EQ(gW[k], sW[k]) << "dW " << k << ", " << used << " threads";
              for (int f = 0; f < n; ++f)
                EXPECT_EQ(gb[f], sb[f]) << "db " << f << ", " << used << " threads";
            }
          }
        }
}

// Fewer models than threads: each model's steps are split over threads / models of them (large
// shapes), and every bit is what one thread computes — fresh and fixed data, a tail of rows.
TEST(CpuBackend, AModelSplitOverThreadsHasTheBitsOfOneThread) {
  for (DataMode mode : {DataMode::fresh, DataMode::fixed}) {
    GroupSpec g = group_of(37, 7, ModelKind::relu, 0.7, mode, 2);
    g.models[0].kind = ModelKind::linear;
    g.batch = 200;  // 12 packs of 16 rows and a tail of 8
    g.points = 250;
    g.steps = 15;
    g.eval_every = 5;
    g.record_trajectories = true;
    const auto one = make_cpu_backend(1)->train(g);
    const auto split = make_cpu_backend(4)->train(g);  // 2 threads a model
    ASSERT_EQ(one.size(), split.size());
    for (size_t i = 0; i < one.size(); ++i) {
      EXPECT_EQ(one[i].W, split[i].W) << to_string(mode) << " model " << i;
      EXPECT_EQ(one[i].b, split[i].b) << to_string(mode) << " model " << i;
      EXPECT_EQ(one[i].loss_curve, split[i].loss_curve) << to_string(mode) << " model " << i;
      EXPECT_EQ(one[i].eval_loss, split[i].eval_loss) << to_string(mode) << " model " << i;
    }
  }
}

// The SIMD AdamW update (V parameters at a time, and the float code for the rest) gives the float
// code's bits on every path: values across many magnitudes, zero and subnormal gradients, a second
// moment of zero (sqrt(0)), a count that leaves a tail.
TEST(CpuSimd, AdamWUpdateHasTheBitsOfTheFloatCode) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 10);
  const int count = 1000 + 13;
  std::vector<float> param(count), adam_m(count), adam_v(count), grad(count);
  for (int k = 0; k < count; ++k) {
    param[k] = std::ldexp(unit(rng), exponent(rng));
    adam_m[k] = std::ldexp(unit(rng), exponent(rng));
    adam_v[k] = k % 17 == 0 ? 0.0f : std::ldexp(std::fabs(unit(rng)), exponent(rng));
    grad[k] = k % 23 == 0 ? 0.0f : k % 29 == 0 ? 1e-40f : std::ldexp(unit(rng), exponent(rng));
  }
  for (cpu::SimdPath path : simd_paths_here())
    for (AdamWStep scalars : {AdamWStep{0.99999f, 1e-3f, 0.0316f}, AdamWStep{0.9f, 0.37f, 1.0f}}) {
      std::vector<float> p = param, m = adam_m, v = adam_v, fp = param, fm = adam_m, fv = adam_v;
      cpu::SimdStep step(4, 2, path);
      for (int t = 0; t < 3; ++t) {
        step.adamw(p.data(), m.data(), v.data(), grad.data(), count, scalars);
        for (int k = 0; k < count; ++k) adamw_update(fp[k], fm[k], fv[k], grad[k], scalars);
      }
      for (int k = 0; k < count; ++k) {
        ASSERT_EQ(ulp_distance(p[k], fp[k]), 0) << cpu::to_string(path) << " param " << k;
        ASSERT_EQ(ulp_distance(m[k], fm[k]), 0) << cpu::to_string(path) << " m " << k;
        ASSERT_EQ(ulp_distance(v[k], fv[k]), 0) << cpu::to_string(path) << " v " << k;
      }
    }
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Rows first .. first + rows − 1 of `model` drawn straight into the lanes (alone, and by a team of
// 4 threads) step exactly as the scalar generator's rows do: the same loss and gradients, bit for
// bit.
void expect_lane_rows_equal_scalar_rows(cpu::SimdPath path, const ModelSpec& model, int m,
                                        const FeatureGroups& groups, uint64_t first, int rows) {
  const int n = static_cast<int>(model.sparsity.size());
  GroupSpec g;
  g.n_features = n;
  g.n_hidden = m;
  const std::vector<float> W = initial_W(g, model), b(n, 0.05f), importance(n, 1.0f);
  const std::vector<float> threshold = mask_thresholds(model, groups);
  const std::vector<float> x = generate_rows(model, n, first, rows, groups);
  cpu::SimdStep scalar_rows(n, m, path), lane_rows(n, m, path), team_rows(n, m, path);
  scalar_rows.set_rows(x.data(), rows);
  lane_rows.generate_rows(model, threshold.data(), groups, first, rows);
  team_rows.set_threads(4);
  team_rows.generate_rows(model, threshold.data(), groups, first, rows);
  std::vector<float> gW1(W.size()), gb1(n), gW2(W.size()), gb2(n), gW3(W.size()), gb3(n);
  const float l1 = scalar_rows.loss_and_gradients(Activation{}, W.data(), b.data(),
                                                  importance.data(), gW1.data(), gb1.data());
  const float l2 = lane_rows.loss_and_gradients(Activation{}, W.data(), b.data(), importance.data(),
                                                gW2.data(), gb2.data());
  const float l3 = team_rows.loss_and_gradients(Activation{}, W.data(), b.data(), importance.data(),
                                                gW3.data(), gb3.data());
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(gW1, gW2);
  EXPECT_EQ(gb1, gb2);
  EXPECT_EQ(l1, l3);
  EXPECT_EQ(gW1, gW3);
  EXPECT_EQ(gb1, gb3);
}

// Fresh rows drawn straight into the lanes (a pack of Philox counters at once: 16 with AVX-512, 8
// with AVX2) step exactly as the scalar generator's rows do: same loss and gradients, bit for bit —
// across a subsequence that crosses 2^32 and with a leftover tail.
TEST(CpuSimd, FreshRowsInTheLanesEqualTheScalarGenerator) {
  for (cpu::SimdPath path : simd_paths_here())
    for (int n : {1, 2, 3, 5, 20})
      for (uint64_t first : {uint64_t{0}, uint64_t{(1ull << 32) - 20}, kEvalBase + 5})
        for (int rows : {16, 37, 1024}) {
          ModelSpec model;
          model.seed = 0x1234567890abcdefull + static_cast<uint64_t>(n);
          model.sparsity.assign(n, 0.0);
          for (int f = 0; f < n; ++f) model.sparsity[f] = 0.15 * (f % 7);
          model.importance.assign(n, 1.0);
          // Independent features, then (n >= 4) correlated and anticorrelated pairs, groups of
          // one kind, triples, groups covering every feature — drawn a pack at a time (avx2,
          // avx512) as generate_sample draws them.
          for (FeatureGroups groups :
               {FeatureGroups{}, FeatureGroups{1, 1, 2}, FeatureGroups{2, 0, 2},
                FeatureGroups{0, 2, 2}, FeatureGroups{1, 1, 3}, FeatureGroups{0, 5, 4},
                FeatureGroups{3, 2, 4}}) {
            if (groups.grouped() > n) continue;
            SCOPED_TRACE(::testing::Message()
                         << cpu::to_string(path) << " n " << n << " first " << first << " rows "
                         << rows << " groups " << groups.grouped());
            expect_lane_rows_equal_scalar_rows(path, model, n > 2 ? 2 : 1, groups, first, rows);
          }
        }
}

// Sparse rows draw a value block only for the rows that use one of its values (packed across rows,
// then spread back), with or without feature groups: the same rows, bit for bit — with 35 features
// (an odd number of mask blocks, the next drawn for every row; n mod 4 = 3), 37 (the last block
// holds two values), 64, 150 (32 packed blocks, then 5 too few to pack) and 200 (two rounds of
// blocks), at sparsities that take the packed draw (0.9, 0.99, every feature off) and the full one
// (0.5), with features that are always on or never on among sparse ones; across 2^32, on the
// evaluation rows' base, and drawn by a team of threads.
TEST(CpuSimd, SparseFreshRowsDrawOnlyTheValuesTheyUseAndEqualTheScalarGenerator) {
  for (cpu::SimdPath path : simd_paths_here())
    for (int n : {35, 37, 64, 150, 200})
      for (int profile = 0; profile < 5; ++profile) {
        ModelSpec model;
        model.seed = 0xfeedbeef00ull + static_cast<uint64_t>(n);
        model.importance.assign(n, 1.0);
        model.sparsity.assign(n, 0.0);
        for (int f = 0; f < n; ++f) {
          const double graded[] = {0.9, 0.99, 0.999};
          switch (profile) {
            case 0:
              model.sparsity[f] = 0.9;
              break;
            case 1:
              model.sparsity[f] = 0.99;
              break;
            case 2:
              model.sparsity[f] = f % 11 == 0 ? 0.0 : f % 7 == 0 ? 1.0 : graded[f % 3];
              break;
            case 3:
              model.sparsity[f] = 1.0;
              break;
            default:
              model.sparsity[f] = 0.5;
              break;
          }
        }
        for (uint64_t first : {uint64_t{0}, uint64_t{(1ull << 32) - 700}, kEvalBase + 3})
          for (int rows : {16, 1024 + 7}) {
            SCOPED_TRACE(::testing::Message() << cpu::to_string(path) << " n " << n << " profile "
                                              << profile << " first " << first << " rows " << rows);
            expect_lane_rows_equal_scalar_rows(path, model, 3, FeatureGroups{}, first, rows);
            // With feature groups before the independent features (3 correlated and 2
            // anticorrelated triples): the group masks decide which value blocks are needed.
            expect_lane_rows_equal_scalar_rows(path, model, 3, FeatureGroups{3, 2, 3}, first, rows);
          }
      }
}

}  // namespace
}  // namespace sp
