// recorder.hpp — what every backend keeps of a model's run: the trajectories (loss curve, eval
// losses, W/b snapshots, at the steps GroupSpec names) and the final row of results.csv.
#pragma once

#include <cmath>
#include <vector>

#include "host/core/config.hpp"

namespace sp {

class TrajectoryRecorder {
 public:
  TrajectoryRecorder(const GroupSpec& group, ModelResult& result)
      : enabled_(group.record_trajectories),
        // Listed only when recorded: --eval-every 1 over 1e8 steps would be 400 MB a model.
        eval_steps_(enabled_ ? group.eval_steps() : std::vector<int>{}),
        snapshot_steps_(enabled_ ? group.snapshot_steps() : std::vector<int>{}),
        result_(result) {}

  // After step t's update: `loss` is the step's training loss (before the update); `evaluate()`
  // returns the loss of the updated parameters on the evaluation rows.
  template <class Params, class Evaluate>
  void after_step(int t, double loss, const Params& W, const Params& b, Evaluate&& evaluate) {
    if (!enabled_) return;
    result_.loss_curve.push_back(static_cast<float>(loss));
    if (next_eval_ < eval_steps_.size() && eval_steps_[next_eval_] == t) {
      result_.eval_curve.push_back(static_cast<float>(evaluate()));
      ++next_eval_;
    }
    if (next_snapshot_ < snapshot_steps_.size() && snapshot_steps_[next_snapshot_] == t) {
      result_.W_snapshots.insert(result_.W_snapshots.end(), W.begin(), W.end());
      result_.b_snapshots.insert(result_.b_snapshots.end(), b.begin(), b.end());
      ++next_snapshot_;
    }
  }

  bool enabled_;
  std::vector<int> eval_steps_, snapshot_steps_;
  size_t next_eval_ = 0, next_snapshot_ = 0;
  ModelResult& result_;
};

// Fills the final parameters and losses, and whether everything stayed finite.
template <class Params>
void finish_result(ModelResult& result, const Params& W, const Params& b, double train_loss,
                   double eval_loss, bool has_eval_rows) {
  result.W.assign(W.begin(), W.end());
  result.b.assign(b.begin(), b.end());
  result.train_loss = train_loss;
  result.eval_loss = has_eval_rows ? eval_loss : std::nan("");
  result.finite = std::isfinite(train_loss) && (!has_eval_rows || std::isfinite(eval_loss));
  for (double v : result.W) result.finite = result.finite && std::isfinite(v);
  for (double v : result.b) result.finite = result.finite && std::isfinite(v);
}

}  // namespace sp
