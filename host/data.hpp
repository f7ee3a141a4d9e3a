// data.hpp — a model's inputs as pure functions of its seed (DESIGN.md §2): the fixed dataset, the
// fresh-mode evaluation set and the Xavier-normal initial W, all float32 as every backend sees
// them; plus the AdamW schedule of per-step scalars.
#pragma once

#include <vector>

#include "host/config.hpp"
#include "kernels/toy_model.hpp"

namespace sp {

// Xavier normal, std sqrt(2 / (n + m)), from Box–Muller on uniforms 2e, 2e+1 of subsequence
// kInitBase, computed in double and rounded once to float. Or the replayed --init-W.
std::vector<float> initial_W(const GroupSpec& group, const ModelSpec& model);
// Zeros, or the replayed --init-b.
std::vector<float> initial_b(const GroupSpec& group, const ModelSpec& model);

// Rows first..first+rows-1 of subsequence base + row, each n floats, row-major.
std::vector<float> generate_rows(const ModelSpec& model, int n, uint64_t base, int rows);
// The fixed-mode dataset (points x n): generated rows 0..points-1, or the replayed --data.
std::vector<float> fixed_dataset(const GroupSpec& group, const ModelSpec& model);
// The rows that evaluate: fixed mode, the dataset's tail; fresh mode, rows kEvalBase + j.
std::vector<float> eval_set(const GroupSpec& group, const ModelSpec& model);

std::vector<float> to_float(const std::vector<double>& values);

// torch.optim.AdamW's per-step scalars, computed for each step as torch does in Python (double
// pow, then rounded once to float): no table that grows with the steps.
struct AdamWSchedule {
  static double bias1(int step);             // 1 − 0.9ᵗ, t 1-based
  static float bias2_sqrt(int step);         // sqrt(1 − 0.999ᵗ)
  static AdamWStep at(double lr, int step);  // step is 1-based
  static float decay(double lr);             // 1 − lr · weight_decay, weight_decay = 0.01
};

constexpr double kWeightDecay = 0.01;

}  // namespace sp
