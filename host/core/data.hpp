// data.hpp — a model's inputs as pure functions of its seed (docs/design.md §2): the fixed dataset,
// the fresh-mode evaluation set and the Xavier-normal initial W, all float32 as every backend sees
// them; plus the AdamW schedule of per-step scalars.
#pragma once

#include <vector>

#include "host/core/config.hpp"
#include "kernels/toy_model.hpp"

namespace sp {

// Xavier normal, std sqrt(2 / (n + m)), from Box–Muller on uniforms 2e, 2e+1 of subsequence
// kInitBase, computed in double and rounded once to float. Or the replayed --init-W.
std::vector<float> initial_W(const GroupSpec& group, const ModelSpec& model);
// Zeros, or the replayed --init-b.
std::vector<float> initial_b(const GroupSpec& group, const ModelSpec& model);

// What generate_sample compares each mask uniform with (kernels/toy_model.hpp): the model's
// sparsity as float, except in an anticorrelated group, whose member i has the lower end of its
// interval, 1 − a + i·a/S with a = min(1, S·p) and p the group's first feature's density,
// computed in double and rounded once.
std::vector<float> mask_thresholds(const ModelSpec& model, const FeatureGroups& groups);
// Rows base..base+rows-1 of the stream keyed by the model's seed, each n floats, row-major.
std::vector<float> generate_rows(const ModelSpec& model, int n, uint64_t base, int rows,
                                 const FeatureGroups& groups = FeatureGroups{});
// The fixed-mode dataset (points x n): generated rows 0..points-1, or the replayed --data.
std::vector<float> fixed_dataset(const GroupSpec& group, const ModelSpec& model);
// The rows that evaluate: fixed mode, the dataset's tail; fresh mode, rows kEvalBase + j of the
// stream keyed by the group's eval_seed (shared by every model), with the model's sparsity.
std::vector<float> eval_set(const GroupSpec& group, const ModelSpec& model);

std::vector<float> to_float(const std::vector<double>& values);

constexpr double kWeightDecay = 0.01;  // torch.optim.AdamW's default, and superpose's

// torch.optim.AdamW's per-step scalars, computed for each step as torch does in Python (double
// pow, then rounded once to float): no table that grows with the steps. With a schedule, step t's
// learning rate is lr · lr_factor(t), and both the decay and the step size use it:
// p ← p·(1 − lr_t·wd), step_size = lr_t / (1 − β1ᵗ) — as torch.optim.AdamW does with a LambdaLR
// setting lr_t before each step. All in double, rounded once to float.
struct AdamWSchedule {
  static double bias1(int step);      // 1 − 0.9ᵗ, t 1-based
  static float bias2_sqrt(int step);  // sqrt(1 − 0.999ᵗ)
  // The factor at step t (1-based) of `steps`: for the first `warmup` steps (s + 1) / warmup
  // (s = t − 1); then constant 1, linear 1 − u / U, or cosine cos(π/2 · u / (U − 1)), with
  // u = s − warmup and U = steps − warmup (the toy-models notebook's linear_lr and
  // cosine_decay_lr when warmup is 0).
  static double lr_factor(LrSchedule schedule, int warmup, int steps, int step);
  static AdamWStep at(double lr, double weight_decay, double factor, int step);
  static AdamWStep at(double lr, int step) { return at(lr, kWeightDecay, 1.0, step); }
  static float decay(double lr, double weight_decay = kWeightDecay);  // 1 − lr · weight_decay
};

}  // namespace sp
