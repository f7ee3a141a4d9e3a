#include "host/core/config.hpp"

#include <fmt/format.h>

#include <cfloat>
#include <cmath>

namespace sp {

const char* to_string(ModelKind kind) {
  return kind == ModelKind::neuron ? "neuron" : kind == ModelKind::relu ? "relu" : "linear";
}
const char* to_string(DataMode mode) { return mode == DataMode::fixed ? "fixed" : "fresh"; }
const char* to_string(LrSchedule schedule) {
  return schedule == LrSchedule::linear   ? "linear"
         : schedule == LrSchedule::cosine ? "cosine"
                                          : "constant";
}

LrSchedule parse_lr_schedule(const std::string& text, const std::string& option) {
  for (LrSchedule schedule : {LrSchedule::constant, LrSchedule::linear, LrSchedule::cosine})
    if (text == to_string(schedule)) return schedule;
  throw UsageError(
      fmt::format("{}: unknown schedule '{}' (accepted: constant, linear, cosine)", option, text));
}

ModelKind parse_model_kind(const std::string& text, const std::string& option) {
  for (ModelKind kind : {ModelKind::linear, ModelKind::relu, ModelKind::neuron})
    if (text == to_string(kind)) return kind;
  throw UsageError(
      fmt::format("{}: unknown model kind '{}' (accepted: linear, relu, neuron)", option, text));
}

DataMode parse_data_mode(const std::string& text, const std::string& option) {
  if (text == "fixed") return DataMode::fixed;
  if (text == "fresh") return DataMode::fresh;
  throw UsageError(
      fmt::format("{}: unknown data mode '{}' (accepted: fixed, fresh)", option, text));
}

int GroupSpec::train_rows() const {
  if (mode == DataMode::fresh) return batch;
  // As the essay's Python: int(len(x) * (1 - train_eval_split)).
  return static_cast<int>(static_cast<double>(points) * (1.0 - eval_fraction));
}

bool GroupSpec::any_hidden_relu() const {
  for (const ModelSpec& model : models)
    if (activation_of(model.kind).hidden) return true;
  return false;
}

int GroupSpec::eval_rows() const {
  return mode == DataMode::fresh ? eval_points : points - train_rows();
}

static std::vector<int> every_and_last(int every, int steps) {
  std::vector<int> out;
  if (every > 0)  // 64-bit: t + every must not wrap past INT_MAX at the last step
    for (int64_t t = 0; t < steps; t += every) out.push_back(static_cast<int>(t));
  if (steps > 0 && (out.empty() || out.back() != steps - 1)) out.push_back(steps - 1);
  return out;
}

// every_and_last's size: the steps 0, every, 2 every, ... below `steps`, and the last step if
// that is not one of them.
static int64_t every_and_last_count(int every, int steps) {
  if (steps <= 0) return 0;
  if (every <= 0) return 1;
  return (steps - 1) / every + 1 + ((steps - 1) % every != 0 ? 1 : 0);
}

std::vector<int> GroupSpec::eval_steps() const { return every_and_last(eval_every, steps); }
std::vector<int> GroupSpec::snapshot_steps() const { return every_and_last(snapshot_every, steps); }
int64_t GroupSpec::eval_step_count() const { return every_and_last_count(eval_every, steps); }
int64_t GroupSpec::snapshot_step_count() const {
  return every_and_last_count(snapshot_every, steps);
}

namespace {
constexpr int kMaxFeatures = 4096;
constexpr int kMaxHidden = 1024;
constexpr int kMaxRows = 1 << 24;

void require(bool ok, const std::string& message) {
  if (!ok) throw UsageError(message);
}

void validate_vector(const std::vector<double>& values, int n, const char* option, double lo,
                     double hi) {
  require(static_cast<int>(values.size()) == n,
          fmt::format("{}: expected {} value{} (one per feature, or one to broadcast), got {}",
                      option, n, n == 1 ? "" : "s", values.size()));
  for (double v : values)
    require(std::isfinite(v) && v >= lo && v <= hi,
            fmt::format("{}: {} is outside the accepted range [{}, {}]", option, v, lo, hi));
}

}  // namespace

void validate_floats(const std::vector<double>& values, const std::string& option) {
  for (double v : values) {  // the messages formatted only for a value that fails
    if (!std::isfinite(v))
      throw UsageError(fmt::format("{}: the array holds a NaN or infinite value", option));
    if (std::abs(v) > FLT_MAX)
      throw UsageError(fmt::format(
          "{}: the array holds {}, beyond float32's range (|x| <= {:g}), in which superpose "
          "trains",
          option, v, static_cast<double>(FLT_MAX)));
  }
}

void validate(const GroupSpec& g) {
  require(g.n_features >= 1 && g.n_features <= kMaxFeatures,
          fmt::format("--features: {} is outside the accepted range [1, {}]", g.n_features,
                      kMaxFeatures));
  require(
      g.n_hidden >= 1 && g.n_hidden <= kMaxHidden,
      fmt::format("--hidden: {} is outside the accepted range [1, {}]", g.n_hidden, kMaxHidden));
  require(g.steps >= 1, fmt::format("--steps: {} is not accepted (at least 1)", g.steps));
  require(g.warmup_steps >= 0 && g.warmup_steps < g.steps,
          fmt::format("--warmup-steps: {} is outside the accepted range [0, {}] (fewer than "
                      "--steps)",
                      g.warmup_steps, g.steps - 1));
  require(
      g.eval_every >= 0,
      fmt::format("--eval-every: {} is not accepted (0 or more; 0 = final only)", g.eval_every));
  require(g.snapshot_every >= 0,
          fmt::format("--snapshot-every: {} is not accepted (0 or more)", g.snapshot_every));
  if (g.mode == DataMode::fixed) {
    require(g.points >= 1 && g.points <= kMaxRows,
            fmt::format("--points: {} is outside the accepted range [1, {}]", g.points, kMaxRows));
    require(
        std::isfinite(g.eval_fraction) && g.eval_fraction >= 0.0 && g.eval_fraction < 1.0,
        fmt::format("--eval-fraction: {} is outside the accepted range [0, 1)", g.eval_fraction));
    require(g.train_rows() >= 1,
            fmt::format("--eval-fraction: {} leaves no training rows out of {} points",
                        g.eval_fraction, g.points));
  } else {
    require(g.batch >= 1 && g.batch <= kMaxRows,
            fmt::format("--batch: {} is outside the accepted range [1, {}]", g.batch, kMaxRows));
    require(g.eval_points >= 0 && g.eval_points <= kMaxRows,
            fmt::format("--eval-points: {} is outside the accepted range [0, {}]", g.eval_points,
                        kMaxRows));
  }
  const int n = g.n_features, m = g.n_hidden;
  const FeatureGroups& groups = g.groups;
  require(groups.size >= 1 && (groups.size <= n || !groups.any()),
          fmt::format("--group-size: {} is outside the accepted range [1, {}] (--features)",
                      groups.size, n));
  const int64_t grouped_features =
      (int64_t{groups.correlated} + groups.anticorrelated) * groups.size;
  require(groups.correlated >= 0 && groups.anticorrelated >= 0 && grouped_features <= n,
          fmt::format("--correlated-groups, --anticorrelated-groups: {} + {} groups of {} "
                      "features need {} features, and there are {} (--features)",
                      groups.correlated, groups.anticorrelated, groups.size, grouped_features, n));
  for (const ModelSpec& model : g.models) {
    require(std::isfinite(model.lr) && model.lr >= 0.0 && model.lr <= 1e3,
            fmt::format("--lr: {} is outside the accepted range [0, 1000]", model.lr));
    require(
        std::isfinite(model.weight_decay) && model.weight_decay >= 0.0 && model.weight_decay <= 1e3,
        fmt::format("--weight-decay: {} is outside the accepted range [0, 1000]",
                    model.weight_decay));
    validate_vector(model.sparsity, n, "--sparsity", 0.0, 1.0);
    validate_vector(model.importance, n, "--importance", 0.0, static_cast<double>(FLT_MAX));
    if (model.data) {
      require(g.mode == DataMode::fixed, "--data: a dataset file needs --data-mode fixed");
      require(!groups.any(),
              "--data: a dataset file brings its own features; feature groups "
              "(--correlated-groups, --anticorrelated-groups) apply to generated data only");
      require(
          model.data->size() == static_cast<size_t>(g.points) * static_cast<size_t>(n),
          fmt::format("--data: expected {} x {} values, got {}", g.points, n, model.data->size()));
      validate_floats(*model.data, "--data");
    }
    if (model.init_W) {
      require(model.init_W->size() == static_cast<size_t>(m) * static_cast<size_t>(n),
              fmt::format("--init-W: expected shape ({}, {}), got {} values", m, n,
                          model.init_W->size()));
      validate_floats(*model.init_W, "--init-W");
    }
    if (model.init_b) {
      require(
          model.init_b->size() == static_cast<size_t>(n),
          fmt::format("--init-b: expected shape ({},), got {} values", n, model.init_b->size()));
      validate_floats(*model.init_b, "--init-b");
    }
  }
}

}  // namespace sp
