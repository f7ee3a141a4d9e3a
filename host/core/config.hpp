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

// linear: y = Wᵀ W x + b; relu: y = ReLU(Wᵀ W x + b) (docs/design.md §1); neuron: a ReLU hidden
// layer too, h = ReLU(W x), y = ReLU(Wᵀ h + b) — TMS's privileged basis (§9). The value is the
// model axis's (a sweep's identity keeps 0, 1, 2 and the label).
enum class ModelKind { linear = 0, relu = 1, neuron = 2 };
// The ReLUs a kind applies (kernels/toy_model.hpp).
inline Activation activation_of(ModelKind kind) {
  return Activation{kind != ModelKind::linear, kind == ModelKind::neuron};
}
enum class DataMode { fixed, fresh };
// The learning rate over the steps (host/core/data.hpp: AdamWSchedule::lr_factor): constant, or
// after a linear warm-up decaying linearly to 0 or along a quarter cosine to 0 — the toy-models
// notebook's constant_lr, linear_lr and cosine_decay_lr.
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

// ---------------------------------------------------------------- the field table
// The settings every model of a group shares, one row each (docs/design.md §8):
//   type, member, default  GroupSpec's member, declared from this row
//   option, lo, hi         the command-line option that sets it in every command with group options
//                          (host/cli/options.cpp: add_group_options; "" where each command sets it
//                          its own way), with its accepted range [lo, hi] for numbers
//   key, kept              the key the manifest's "group" and a sweep's identity (sweep.json: what
//   a
//                          resume and a merge trust) keep it under, and when: always; fixed or
//                          fresh (only in that data mode: the other has no use for it); groups
//                          (only with feature groups); never (how results are kept, not what they
//                          are: never part of an identity)
//   help                   the option's help
// group_json and group_from_json (host/io/results.cpp) and the command line's group options are
// derived from the rows, so a new setting is a row here: it cannot be left out of the identity a
// resumed sweep trusts (tests/test_sweep.cpp checks every row changes it).
enum class Kept { always, fixed, fresh, groups, never };
// clang-format off
#define SP_GROUP_FIELDS(X)                                                                        \
  X(int, n_features, 2, "--features", 1, 4096, "n_features", always, "n, features")              \
  X(int, n_hidden, 1, "--hidden", 1, 1024, "n_hidden", always, "m, hidden dimensions")           \
  X(DataMode, mode, DataMode::fixed, "--data-mode", 0, 0, "data_mode", always,                    \
    "fixed (the essay's) | fresh (Anthropic's)")                                                  \
  X(int, points, 1000, "--points", 1, 1 << 24, "points", fixed, "fixed: dataset size")           \
  X(double, eval_fraction, 0.2, "--eval-fraction", 0, 1, "eval_fraction", fixed,                  \
    "fixed: share of points that evaluate")                                                        \
  X(int, batch, 1024, "--batch", 1, 1 << 24, "batch", fresh, "fresh: samples per step")          \
  X(int, eval_points, 10000, "--eval-points", 0, 1 << 24, "eval_points", fresh,                   \
    "fresh: evaluation set size")                                                                  \
  X(uint64_t, eval_seed, 0, "--eval-seed", 0, 18446744073709551615.0L, "eval_seed", fresh,        \
    "fresh: the evaluation set's seed, shared by every model (common random numbers: best-of-N "  \
    "compares models, not evaluation sets)")                                                       \
  X(FeatureGroups, groups, FeatureGroups{}, "--correlated-groups", 0, 4096, "feature_groups",     \
    groups, "the first G x S features form G groups of S that switch on together")               \
  X(int, steps, 1000, "", 1, 2147483647, "steps", always, "training steps")                       \
  X(LrSchedule, lr_schedule, LrSchedule::constant, "--lr-schedule", 0, 0, "lr_schedule", always,  \
    "the learning rate over the steps: constant | linear (to 0) | cosine (a quarter cosine to "   \
    "0), as the toy-models notebook's")                                                            \
  X(int, warmup_steps, 0, "--warmup-steps", 0, 2147483647, "warmup_steps", always,                \
    "steps of linear warm-up before the schedule: at 0-based step s < W the learning rate is "    \
    "(s+1)/W of its value; the schedule then runs over the remaining steps - W steps")           \
  X(int, eval_every, 50, "--eval-every", 0, 2147483647, "eval_every", always,                     \
    "steps between evaluations (0: final only)")                                                   \
  X(int, snapshot_every, 0, "--snapshot-every", 0, 2147483647, "snapshot_every", always,          \
    "steps between W, b snapshots (0: final)")                                                     \
  X(bool, record_trajectories, false, "", 0, 1, "trajectories", never,                            \
    "loss curves and W, b snapshots kept")
// clang-format on

// Everything the models trained together share: shape, data rules, schedule — the field table's
// rows, and the models. (fixed: the last eval_fraction of the dataset evaluates; fresh: a separate
// evaluation set of eval_points rows, Philox(eval_seed, kEvalBase + j), every model on the same
// uniforms with its own sparsity — docs/math.md. groups: correlated and anticorrelated features,
// kernels/toy_model.hpp. warmup_steps: 0 none; eval_every: 0 only the final evaluation;
// snapshot_every: 0 only the final parameters.)
struct GroupSpec {
#define SP_GROUP_MEMBER(type, member, initial, option, lo, hi, key, kept, help) \
  type member = initial;
  SP_GROUP_FIELDS(SP_GROUP_MEMBER)
#undef SP_GROUP_MEMBER
  std::vector<ModelSpec> models;

  int train_rows() const;  // rows per training step
  int eval_rows() const;   // rows of the evaluation set
  int parameter_count() const { return n_hidden * n_features + n_features; }
  bool any_hidden_relu() const;             // a model of the group is the neuron model
  std::vector<int> eval_steps() const;      // 0-based steps after whose update eval runs
  std::vector<int> snapshot_steps() const;  // 0-based steps after whose update W, b are kept
  // How many steps each lists, without listing them (what a resource estimate needs).
  int64_t eval_step_count() const;
  int64_t snapshot_step_count() const;
};

// Every member of GroupSpec is a row of the field table (or the models): a member declared there
// by hand, outside the table, would be left out of the identity a resumed sweep trusts. A
// structured binding of exactly the table's members does not compile when GroupSpec has another.
inline void every_group_member_is_a_row(GroupSpec& g) {
#define SP_GROUP_NAME(type, member, initial, option, lo, hi, key, kept, help) member,
  [[maybe_unused]] auto& [SP_GROUP_FIELDS(SP_GROUP_NAME) models] = g;
#undef SP_GROUP_NAME
}

// Checks a group and all its models; throws UsageError naming the option.
void validate(const GroupSpec& group);
// Replayed arrays train as float32: every value finite and within float's range, else a
// UsageError naming the option (train's and a sweep's --data, --init-W, --init-b).
void validate_floats(const std::vector<double>& values, const std::string& option);

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
