// results.hpp — what a run writes of its models (docs/run-directory.md): results.csv, the group's
// record in the manifest and a sweep's identity (derived from the field table,
// host/core/config.hpp), the trajectories as .npy — every file through a RunDir.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "host/core/config.hpp"
#include "host/io/run_dir.hpp"

namespace sp {

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
// Its header line (without the newline) for a group's shape and the analyses' column names.
std::string results_header(int n, int m, const std::vector<std::string>& extra_names);

// The options a group shares, as the manifest and a sweep's identity record them — derived from
// the field table (host/core/config.hpp: SP_GROUP_FIELDS) — and back: group_from_json takes only
// what group_json writes, every field checked (std::runtime_error naming it otherwise); `may_lack`:
// keys the record may leave out (a sweep's identity leaves out the steps, which are an axis).
nlohmann::json group_json(const GroupSpec& group);
GroupSpec group_from_json(const nlohmann::json& j, const std::set<std::string>& may_lack = {});

// train_loss.npy (models x steps), eval_loss.npy + eval_steps.npy, W.npy (models x snapshots x m x
// n), b.npy, snapshot_steps.npy — for a group trained with record_trajectories.
void write_trajectories(const RunDir& dir, const GroupSpec& group,
                        const std::vector<ModelResult>& results);

std::string status_of(const ModelResult& result);  // "ok" or "diverged"
std::string format_number(double value);           // shortest round-trip text, "nan", "inf"

}  // namespace sp
