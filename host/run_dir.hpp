// run_dir.hpp — the run directory of DESIGN.md §4: manifest.json, results.csv, trajectories as
// .npy. Every file appears whole or not at all: it is written beside its final name, then renamed.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "host/config.hpp"

namespace sp {

// Writes `path` whole or not at all: `fill` writes a temporary beside it, which is then renamed
// into place (removed, and the error thrown, when writing fails).
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& fill);

class RunDir {
 public:
  // Creates DIR and its parents and proves it writable; throws UsageError naming `option`.
  explicit RunDir(std::string path, const std::string& option = "--out");
  const std::string& path() const { return path_; }
  void write(const std::string& name, const std::string& bytes) const;
  // Streams a large file: `fill` writes it beside its name, then it is renamed into place.
  void write_with(const std::string& name, const std::function<void(std::ostream&)>& fill) const;
  RunDir subdir(const std::string& name) const;

 private:
  std::string path_;
};

// One row of results.csv: a model, its result, and the columns analyses add.
struct ResultRow {
  int64_t model_id = 0;
  const GroupSpec* group = nullptr;
  const ModelSpec* model = nullptr;
  const ModelResult* result = nullptr;
  std::vector<std::pair<std::string, std::string>> extra;  // appended in order, same for all rows
};

// results.csv text: model_id, seed, model, n_features, n_hidden, data_mode, sparsity,
// sparsity_<f>, importance_<f>, lr, steps, train_loss, eval_loss, W_<j>_<f>, b_<f>, status, extras.
// All rows must share n and m.
std::string results_csv(const std::vector<ResultRow>& rows);

// The options a group shares, as the manifest records them.
nlohmann::json group_json(const GroupSpec& group);

// train_loss.npy (models x steps), eval_loss.npy + eval_steps.npy, W.npy (models x snapshots x m x
// n), b.npy, snapshot_steps.npy — for a group trained with record_trajectories.
void write_trajectories(const RunDir& dir, const GroupSpec& group,
                        const std::vector<ModelResult>& results);

std::string status_of(const ModelResult& result);  // "ok" or "diverged"
std::string format_number(double value);           // shortest round-trip text, "nan", "inf"

}  // namespace sp
