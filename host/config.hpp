// config.hpp — what a run trains: the per-model options, the options a launch shares, the results.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/toy_model.hpp"

namespace sp {

// A user's mistake: reported as one line naming the option and the accepted range, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class ModelKind { linear, relu };
enum class DataMode { fixed, fresh };
// The learning rate over the steps (host/data.hpp: AdamWSchedule::lr_factor): constant, or after a
// linear warm-up decaying linearly to 0 or along a quarter cosine to 0 — the toy-models notebook's
// constant_lr, linear_lr and cosine_decay_lr.
enum class LrSchedule { constant, linear, cosine };

const char* to_string(ModelKind kind);
const char* to_string(DataMode mode);
const char* to_string(LrSchedule schedule);
ModelKind parse_model_kind(const std::string& text, const std::string& option);
DataMode parse_data_mode(const std::string& text, const std::string& option);
LrSchedule parse_lr_schedule(const std::string& text, const std::string& option);

// One independent toy autoencoder and its own options.
struct ModelSpec {
  uint64_t seed = 0;
  ModelKind kind = ModelKind::relu;
  double lr = 1e-3;
  double weight_decay = 0.01;      // AdamW's; 0 is Adam (torch.optim.AdamW's default is 0.01)
  std::vector<double> sparsity;    // one per feature
  std::vector<double> importance;  // one per feature
  // Replay of another tool's run (train --data / --init-W / --init-b); empty when generated.
  std::shared_ptr<const std::vector<double>> data;    // points x n, row-major
  std::shared_ptr<const std::vector<double>> init_W;  // m x n, row-major
  std::shared_ptr<const std::vector<double>> init_b;  // n
};

// Everything the models trained together share: shape, data rules, schedule.
struct GroupSpec {
  int n_features = 2;
  int n_hidden = 1;
  DataMode mode = DataMode::fixed;
  int points = 1000;           // fixed: dataset size
  double eval_fraction = 0.2;  // fixed: the last share of the dataset evaluates
  int batch = 1024;            // fresh: samples per step
  int eval_points = 10000;     // fresh: size of the separate evaluation set (docs/math.md)
  // fresh: the evaluation set's key. Every model of a run is evaluated on the same uniforms
  // (Philox(eval_seed, kEvalBase + j)), each with its own sparsity: common random numbers, so
  // that best-of-N compares models, not evaluation sets (docs/math.md).
  uint64_t eval_seed = 0;
  FeatureGroups groups;  // correlated and anticorrelated feature groups (kernels/toy_model.hpp)
  int steps = 1000;
  LrSchedule lr_schedule = LrSchedule::constant;
  int warmup_steps = 0;    // steps of linear warm-up before the schedule (0: none)
  int eval_every = 50;     // 0: only the final evaluation
  int snapshot_every = 0;  // W, b snapshots in trajectories; 0: only the final parameters
  bool record_trajectories = false;
  std::vector<ModelSpec> models;

  int train_rows() const;  // rows per training step
  int eval_rows() const;   // rows of the evaluation set
  int parameter_count() const { return n_hidden * n_features + n_features; }
  std::vector<int> eval_steps() const;      // 0-based steps after whose update eval runs
  std::vector<int> snapshot_steps() const;  // 0-based steps after whose update W, b are kept
  // How many steps each lists, without listing them (what a resource estimate needs).
  int64_t eval_step_count() const;
  int64_t snapshot_step_count() const;
};

// Checks a group and all its models; throws UsageError naming the option.
void validate(const GroupSpec& group);

struct ModelResult {
  std::vector<double> W;  // m x n
  std::vector<double> b;  // n
  double train_loss = 0;  // fixed: final parameters on the training rows; fresh: last batch's loss
  double eval_loss = 0;   // final parameters on the evaluation rows (NaN when there are none)
  bool finite = true;     // false when any loss or parameter became NaN/Inf
  // Trajectories (only when GroupSpec::record_trajectories).
  std::vector<float> loss_curve;   // steps: training loss before each update
  std::vector<float> eval_curve;   // eval_steps()
  std::vector<float> W_snapshots;  // snapshot_steps() x m x n
  std::vector<float> b_snapshots;  // snapshot_steps() x n
};

}  // namespace sp
