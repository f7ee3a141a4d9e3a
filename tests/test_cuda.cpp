// GPU tests: the cuda backend against the cpu backend (same shared math, same lane order), and
// determinism inside large sweeps. They skip, saying why, where no CUDA device is present. The same
// source is built a second time against the CUDA emulator (tests/emulator), where every test but
// the device's own random numbers runs, on the CPU, in CI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "host/backends/backend.hpp"
#include "tests/cuda_sweeps.hpp"

namespace sp {
namespace {

#define SKIP_WITHOUT_GPU()                                                  \
  if (const CudaStatus status = cuda_status(); !status.problem.empty())     \
  GTEST_SKIP() << status.problem                                            \
               << ": GPU test skipped (run scripts/gpu-check on a machine " \
                  "with one)"

class CudaVsCpu : public ::testing::TestWithParam<std::tuple<Shape, DataMode>> {};

TEST_P(CudaVsCpu, OneStepAndShortTrajectoriesMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  const auto [shape, mode] = GetParam();
  for (int steps : {1, 50}) {
    GroupSpec g = sweep(shape.n, shape.m, mode, 8, steps);
    g.record_trajectories = true;
    g.snapshot_every = 7;
    const auto gpu = make_cuda_backend()->train(g);
    const auto cpu = make_cpu_backend(0)->train(g);
    // The same fmaf-explicit arithmetic in the same order, IEEE division and square root, and
    // cub's tree for the lanes: every bit must agree (a difference reports its size in ulps).
    expect_identical_results(gpu, cpu, std::to_string(steps) + " steps");
    for (size_t i = 0; i < g.models.size(); ++i)
      EXPECT_EQ(gpu[i].W_snapshots.size(), g.snapshot_steps().size() * g.n_hidden * g.n_features);
  }
}

INSTANTIATE_TEST_SUITE_P(Mappings, CudaVsCpu,
                         ::testing::Combine(::testing::Values(Shape{2, 1}, Shape{5, 2},
                                                              Shape{20, 5}, Shape{7, 3}),
                                            ::testing::Values(DataMode::fixed, DataMode::fresh)),
                         [](const auto& param_info) {
                           const Shape shape = std::get<0>(param_info.param);
                           return "n" + std::to_string(shape.n) + "_m" + std::to_string(shape.m) +
                                  "_" + to_string(std::get<1>(param_info.param));
                         });

TEST(Cuda, AModelIsBitIdenticalAloneAndInsideATenThousandModelSweep) {
  SKIP_WITHOUT_GPU();
  for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
    const GroupSpec big = sweep(2, 1, mode, 10000, 30);
    GroupSpec alone = big;
    alone.models = {big.models[4321]};
    const auto in_sweep = make_cuda_backend()->train(big);
    const auto by_itself = make_cuda_backend()->train(alone);
    expect_identical_results({in_sweep[4321]}, by_itself, "model 4321 alone and in the sweep");
  }
}

TEST(Cuda, RepeatRunsAreBitIdentical) {
  SKIP_WITHOUT_GPU();
  const GroupSpec g = sweep(20, 5, DataMode::fresh, 64, 20);
  const auto first = make_cuda_backend()->train(g);
  const auto second = make_cuda_backend()->train(g);
  expect_identical_results(first, second, "a repeat run");
}

// K (steps per launch), the mapping and where fixed rows come from (on chip, device memory, or
// drawn again) change how the work is done, never a model's bits: each variant equals the default,
// which equals the cpu backend.
TEST(CudaDevice, StepsPerLaunchAndMappingDoNotChangeResults) {
  SKIP_WITHOUT_GPU();
  struct Variant {
    int steps_per_launch;
    std::string mapping, fixed_rows;
    int schedule_window = 1 << 16;
  };
  for (Shape shape : {Shape{2, 1}, Shape{5, 2}, Shape{20, 5}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      const bool big = shape.n == 20;
      // No trajectories: their evaluations would cut every launch at 10 steps, and K = 100 must
      // run whole launches (230 steps: two of 100 and one of 30).
      const GroupSpec g = sweep(shape.n, shape.m, mode, big ? 12 : 24, big ? 60 : 230);
      const auto base = make_cuda_backend()->train(g);
      expect_identical_results(base, make_cpu_backend(0)->train(g),
                               std::to_string(shape.n) + "x" + std::to_string(shape.m) + " " +
                                   to_string(mode) + ", K 100 against the cpu backend");
      std::vector<Variant> variants = {{1, "", "auto"},
                                       {64, "global", "auto"},
                                       {100, "", "regenerate"},
                                       {100, "", "memory"},
                                       {100, "", "auto", 7}};  // AdamW's scalars 7 steps at a time
      if (shape.n != 2) variants.push_back({7, "shared", "auto"});  // 5 x 2: not its own mapping
      for (const Variant& variant : variants) {
        CudaOptions options;
        options.steps_per_launch = variant.steps_per_launch;
        options.mapping = variant.mapping;
        options.fixed_rows = variant.fixed_rows;
        options.schedule_window = variant.schedule_window;
        expect_identical_results(
            base, make_cuda_backend(options)->train(g),
            std::to_string(shape.n) + "x" + std::to_string(shape.m) + " " + to_string(mode) +
                ", K " + std::to_string(variant.steps_per_launch) + ", mapping '" +
                variant.mapping + "', fixed rows '" + variant.fixed_rows + "', schedule window " +
                std::to_string(variant.schedule_window));
      }
    }
}

// The optimiser knobs (weight decay per model, a learning-rate schedule with warm-up) change the
// per-step scalars the host and the kernels compute from the same doubles: the same bits.
TEST(Cuda, WeightDecayAndScheduleMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  for (LrSchedule schedule : {LrSchedule::linear, LrSchedule::cosine})
    for (Shape shape : {Shape{2, 1}, Shape{20, 5}, Shape{7, 3}}) {
      GroupSpec g = sweep(shape.n, shape.m, DataMode::fresh, 6, 40);
      g.lr_schedule = schedule;
      g.warmup_steps = 7;
      for (size_t i = 0; i < g.models.size(); ++i)
        g.models[i].weight_decay = 0.05 * static_cast<double>(i % 3);
      CudaOptions options;
      options.schedule_window = 9;  // windows of the factors too
      expect_identical_results(make_cuda_backend(options)->train(g), make_cpu_backend(0)->train(g),
                               std::string(to_string(schedule)) + " " + std::to_string(shape.n) +
                                   "x" + std::to_string(shape.m));
    }
}

// Correlated and anticorrelated feature groups (drawn by the global mapping's kernels) and an
// evaluation set keyed by its own seed: the same bits as the cpu backend, in both data modes, with
// fixed rows in memory and drawn again; a per-shape mapping forced on grouped data is refused.
TEST(Cuda, FeatureGroupsAndTheSharedEvaluationSetMatchTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  for (Shape shape : {Shape{5, 2}, Shape{20, 5}, Shape{7, 3}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      GroupSpec g = sweep(shape.n, shape.m, mode, 6, 30);
      // 5: a pair of each; 7: a triple of each and one independent; 20: 3 triples and 11 others.
      g.groups = shape.n == 5 ? FeatureGroups{1, 1, 2}
                              : (shape.n == 7 ? FeatureGroups{1, 1, 3} : FeatureGroups{2, 1, 3});
      g.eval_seed = 987654321;
      g.record_trajectories = true;
      const std::string what = std::to_string(shape.n) + "x" + std::to_string(shape.m) + " " +
                               to_string(mode) + " with feature groups";
      const auto cpu = make_cpu_backend(0)->train(g);
      expect_identical_results(make_cuda_backend()->train(g), cpu, what);
      CudaOptions regenerate;
      regenerate.fixed_rows = "regenerate";
      expect_identical_results(make_cuda_backend(regenerate)->train(g), cpu,
                               what + ", fixed rows drawn again");
      CudaOptions shared;
      shared.mapping = "shared";
      EXPECT_THROW(make_cuda_backend(shared)->train(g), UsageError) << what;
    }
}

// Anthropic's geometry runs go up to n = 400, m = 30: the tiled mapping (the shape's own: a block
// per model, or its passes launched one by one over the models' tiles) and the global one,
// against the cpu backend.
TEST(Cuda, ALargeShapeOnTheTiledAndGlobalMappingsMatchesTheCpuBackend) {
  SKIP_WITHOUT_GPU();
  GroupSpec g = sweep(400, 30, DataMode::fresh, 2, 3);
  g.batch = 64;
  g.eval_points = 64;
  g.record_trajectories = true;
  const auto cpu = make_cpu_backend(0)->train(g);
  expect_identical_results(make_cuda_backend()->train(g), cpu, "400 x 30");
  for (const char* tiled : {"tiled", "tiled-split"}) {
    CudaOptions forced;
    forced.mapping = tiled;
    expect_identical_results(make_cuda_backend(forced)->train(g), cpu,
                             std::string("400 x 30, ") + tiled);
  }
  CudaOptions global;
  global.mapping = "global";
  expect_identical_results(make_cuda_backend(global)->train(g), cpu, "400 x 30, global mapping");
}

// The tiled mapping (one block per model, GEMM-like passes over the batch:
// kernels/mapping_tiled.cu) at shapes that leave partial tiles everywhere — features and hidden
// units not multiples of the tiles, more than 32 hidden units (two tiles of the reduction in Z = H
// W + b), 1000 features and one hidden unit, batches that are not a multiple of 32, 64 or 128 and
// span three of the GEMM passes' 128-row tiles (37 × 7, batch 300) — in both data modes, with fixed
// rows in memory and drawn again, feature groups, and on shapes that have their own mapping
// (forced): the cpu backend's bits in every case — a block per model (train_steps_tiled) and the
// passes launched one by one over the models' row and entry tiles (tiled-split) alike.
TEST(Cuda, TheTiledMappingMatchesTheCpuBackendAtAnyShape) {
  SKIP_WITHOUT_GPU();
  struct Case {
    Shape shape;
    int batch;
    bool forced;
  };
  for (const Case& c : {Case{{37, 7}, 300, false}, Case{{41, 9}, 33, false},
                        Case{{70, 40}, 70, false}, Case{{1000, 1}, 40, false},
                        Case{{20, 5}, 130, true}, Case{{7, 3}, 64, true}, Case{{2, 1}, 31, true}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      GroupSpec g = sweep(c.shape.n, c.shape.m, mode, 3, 6);
      g.batch = c.batch;
      g.points = c.batch * 5 / 4;  // fixed: (1 − 0.2) · points = batch training rows
      g.eval_points = 50;
      g.record_trajectories = true;
      g.eval_every = 3;
      const std::string what = std::to_string(c.shape.n) + "x" + std::to_string(c.shape.m) + " " +
                               to_string(mode) + ", batch " + std::to_string(c.batch);
      const auto cpu = make_cpu_backend(0)->train(g);
      for (const char* launches : {"tiled", "tiled-split"}) {
        CudaOptions tiled;
        tiled.mapping = launches;
        const std::string how = what + ", " + launches;
        expect_identical_results(make_cuda_backend(tiled)->train(g), cpu, how);
        if (mode == DataMode::fixed) {
          CudaOptions regenerate = tiled;
          regenerate.fixed_rows = "regenerate";
          expect_identical_results(make_cuda_backend(regenerate)->train(g), cpu,
                                   how + ", fixed rows drawn again");
        }
      }
      if (!c.forced)  // the shape's own choice
        expect_identical_results(make_cuda_backend()->train(g), cpu, what + ", its own mapping");
      if (c.shape.n >= 7) {
        g.groups = FeatureGroups{1, 1, 3};
        const auto cpu_groups = make_cpu_backend(0)->train(g);
        for (const char* launches : {"tiled", "tiled-split"}) {
          CudaOptions tiled;
          tiled.mapping = launches;
          expect_identical_results(make_cuda_backend(tiled)->train(g), cpu_groups,
                                   what + " with feature groups, " + launches);
        }
      }
    }
}

// The neuron model (h = ReLU(W x): kernels/toy_model.hpp, Activation::hidden) trains on the global
// and tiled mappings (kernels/mapping.hpp: hidden); a group of it at a shape with its own per-shape
// kernel goes to global, mixed with the tied models. Every model the cpu backend's bits, in both
// data modes, at shapes with partial tiles, on every mapping that takes it; a per-shape mapping
// forced on it is refused.
TEST(Cuda, TheNeuronModelMatchesTheCpuBackendOnTheGlobalAndTiledMappings) {
  SKIP_WITHOUT_GPU();
  struct Case {
    Shape shape;
    int batch;
  };
  for (const Case& c : {Case{{2, 1}, 64}, Case{{5, 2}, 100}, Case{{10, 5}, 64}, Case{{37, 7}, 300},
                        Case{{41, 9}, 33}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      GroupSpec g = sweep(c.shape.n, c.shape.m, mode, 6, 8, /*with_neuron=*/true);
      g.batch = c.batch;
      g.points = c.batch * 5 / 4;
      g.eval_points = 50;
      g.record_trajectories = true;
      g.eval_every = 3;
      const std::string what = std::to_string(c.shape.n) + "x" + std::to_string(c.shape.m) + " " +
                               to_string(mode) + " with the neuron model";
      const auto cpu = make_cpu_backend(0)->train(g);
      expect_identical_results(make_cuda_backend()->train(g), cpu, what + ", its own mapping");
      for (const char* mapping : {"global", "tiled", "tiled-split"}) {
        CudaOptions forced;
        forced.mapping = mapping;
        expect_identical_results(make_cuda_backend(forced)->train(g), cpu, what + ", " + mapping);
      }
      if (c.shape.n == 5) {
        CudaOptions shared;
        shared.mapping = "shared";
        EXPECT_THROW(make_cuda_backend(shared)->train(g), UsageError) << what;
      }
    }
}

}  // namespace
}  // namespace sp

#if defined(SUPERPOSE_HAVE_CUDA)
#include "host/core/data.hpp"
#include "kernels/philox.hpp"
#include "kernels/rng_check.cuh"

namespace sp {
namespace {

// The chosen layout, proven on the device: cuRAND's own curand_init + curand_uniform stream equals
// the host Philox, and the kernels' generate_sample (curand_Philox4x32_10) equals the host's.
TEST(CudaDevice, CurandStreamEqualsHostPhiloxBitForBit) {
  SKIP_WITHOUT_GPU();
  for (uint64_t seed : {uint64_t{0}, uint64_t{44}, uint64_t{0xfedcba9876543210ull}})
    for (uint64_t subsequence : {uint64_t{0}, uint64_t{12345}, kEvalBase + 7, kInitBase}) {
      const std::vector<float> device = cuda::device_curand_uniforms(seed, subsequence, 41);
      for (int k = 0; k < 41; ++k)
        EXPECT_EQ(device[k], stream_uniform(seed, subsequence, static_cast<uint64_t>(k)))
            << "seed " << seed << " subsequence " << subsequence << " uniform " << k;
    }
  for (int n : {1, 2, 5, 20}) {
    ModelSpec model;
    model.seed = 1234 + static_cast<uint64_t>(n);
    for (int f = 0; f < n; ++f) model.sparsity.push_back(0.1 * (f % 9));
    const std::vector<float> host = generate_rows(model, n, (1ull << 32) - 50, 300);
    EXPECT_EQ(cuda::device_rows(model.seed, (1ull << 32) - 50, 300, n, to_float(model.sparsity)),
              host)
        << "n " << n;
    // Feature groups: correlated and anticorrelated groups of 2 and 3 beside independent features.
    for (FeatureGroups groups : {FeatureGroups{1, 0, 2}, FeatureGroups{0, 1, 2},
                                 FeatureGroups{2, 3, 3}, FeatureGroups{1, 1, 1}}) {
      if (groups.grouped() > n) continue;
      const std::vector<float> grouped = generate_rows(model, n, 77, 300, groups);
      EXPECT_EQ(cuda::device_rows(model.seed, 77, 300, n, mask_thresholds(model, groups), groups),
                grouped)
          << "n " << n << ", groups " << groups.correlated << " + " << groups.anticorrelated
          << " of " << groups.size;
    }
  }
}

}  // namespace
}  // namespace sp
#endif
