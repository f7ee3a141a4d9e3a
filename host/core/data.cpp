#include "host/core/data.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace sp {

std::vector<float> to_float(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

std::vector<float> initial_W(const GroupSpec& group, const ModelSpec& model) {
  if (model.init_W) return to_float(*model.init_W);
  const int n = group.n_features, m = group.n_hidden;
  const double std_dev = std::sqrt(2.0 / static_cast<double>(n + m));
  const double two_pi = 6.283185307179586476925286766559;
  std::vector<float> W(static_cast<size_t>(m) * n);
  for (size_t e = 0; e < W.size(); ++e) {
    const double u1 = stream_uniform(model.seed, kInitBase, 2 * e);  // in (0, 1]: log is finite
    const double u2 = stream_uniform(model.seed, kInitBase, 2 * e + 1);
    W[e] = static_cast<float>(std_dev * std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2));
  }
  return W;
}

std::vector<float> initial_b(const GroupSpec& group, const ModelSpec& model) {
  if (model.init_b) return to_float(*model.init_b);
  return std::vector<float>(static_cast<size_t>(group.n_features), 0.0f);
}

std::vector<float> mask_thresholds(const ModelSpec& model, const FeatureGroups& groups) {
  std::vector<float> threshold = to_float(model.sparsity);
  // validate() refuses these from the command line; a caller building a GroupSpec itself is told
  // here rather than writing past the vector (found by ASan in a test that did).
  if (groups.any() && (groups.size < 1 || groups.correlated < 0 || groups.anticorrelated < 0 ||
                       groups.grouped() > static_cast<int>(threshold.size())))
    throw UsageError(fmt::format(
        "feature groups: {} correlated and {} anticorrelated groups of {} need more than the {} "
        "features there are",
        groups.correlated, groups.anticorrelated, groups.size, threshold.size()));
  const int correlated = groups.correlated * groups.size;
  for (int lead = correlated; lead < groups.grouped(); lead += groups.size) {
    const double on = std::min(1.0, groups.size * (1.0 - model.sparsity[lead]));
    for (int i = 0; i < groups.size; ++i)
      threshold[lead + i] = static_cast<float>(1.0 - on + i * on / groups.size);
  }
  return threshold;
}

std::vector<float> generate_rows(const ModelSpec& model, int n, uint64_t base, int rows,
                                 const FeatureGroups& groups) {
  const std::vector<float> threshold = mask_thresholds(model, groups);
  std::vector<float> x(static_cast<size_t>(rows) * n);
  for (int r = 0; r < rows; ++r)
    generate_sample(model.seed, base + static_cast<uint64_t>(r), n, threshold.data(),
                    &x[static_cast<size_t>(r) * n], groups);
  return x;
}

std::vector<float> fixed_dataset(const GroupSpec& group, const ModelSpec& model) {
  if (model.data) return to_float(*model.data);
  return generate_rows(model, group.n_features, 0, group.points, group.groups);
}

std::vector<float> eval_set(const GroupSpec& group, const ModelSpec& model) {
  const int n = group.n_features;
  if (group.mode == DataMode::fresh) {
    ModelSpec keyed = model;  // the model's sparsity, the run's evaluation key
    keyed.seed = group.eval_seed;
    return generate_rows(keyed, n, kEvalBase, group.eval_points, group.groups);
  }
  std::vector<float> data = fixed_dataset(group, model);
  data.erase(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(group.train_rows()) * n);
  return data;
}

double AdamWSchedule::bias1(int step) { return 1.0 - std::pow(0.9, step); }

float AdamWSchedule::bias2_sqrt(int step) {
  return static_cast<float>(std::sqrt(1.0 - std::pow(0.999, step)));
}

float AdamWSchedule::decay(double lr, double weight_decay) {
  return static_cast<float>(1.0 - lr * weight_decay);
}

double AdamWSchedule::lr_factor(LrSchedule schedule, int warmup, int steps, int step) {
  const int s = step - 1;
  if (s < warmup) return static_cast<double>(s + 1) / warmup;
  const double u = s - warmup, total = steps - warmup;
  switch (schedule) {
    case LrSchedule::linear:
      return 1.0 - u / total;
    case LrSchedule::cosine:
      return total > 1 ? std::cos(0.5 * M_PI * u / (total - 1)) : 1.0;
    case LrSchedule::constant:
      break;
  }
  return 1.0;
}

// The cuda kernels compute these on the device from the same doubles, in the same order
// (kernels/step_common.cuh: step_scalars), so the bits agree.
AdamWStep AdamWSchedule::at(double lr, double weight_decay, double factor, int step) {
  const double lr_t = lr * factor;
  return AdamWStep{decay(lr_t, weight_decay), static_cast<float>(lr_t / bias1(step)),
                   bias2_sqrt(step)};
}

}  // namespace sp
