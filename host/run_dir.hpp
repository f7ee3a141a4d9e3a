// run_dir.hpp — the run directory of DESIGN.md §4: manifest.json, results.csv, trajectories as
// .npy. Every file appears whole or not at all: it is written beside its final name, then renamed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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

// A file's size and XXH3-64 checksum (16 hex digits): what a chunk's record says of each of its
// files when they are written, and what a resumed run finds again before it trusts them.
struct FileDigest {
  uint64_t bytes = 0;
  std::string xxh3;
  bool operator==(const FileDigest& other) const {
    return bytes == other.bytes && xxh3 == other.xxh3;
  }
};
FileDigest digest_file(const std::string& path);  // throws std::runtime_error when unreadable
std::string digest_text(const std::string& bytes);

// A run directory belongs to one run at a time (DESIGN.md §4). claim_run_dir takes it for this
// process: an advisory lock (flock) on DIR/.superpose.lock, held until the returned object is
// destroyed — another process holding it makes this a UsageError at once, naming --out —; then
// stale temporaries of interrupted writes are removed, and what DIR holds is checked against
// `identity` (the command and its configuration, kept in DIR/<identity_file>: run.json, or
// sweep.json for sweeps):
//   empty, or the same run          → taken (the caller resumes or rewrites it)
//   another superpose run           → UsageError naming --out and --overwrite; with `overwrite`,
//                                     its contents are removed first
//   files superpose did not write   → UsageError, even with `overwrite`
// `explain_other` may throw a more precise UsageError for another run's identity before the
// generic one. `shared`: shards of one sweep (run_sweep) hold the lock together — a shared flock,
// the identity checked under a second, brief exclusive lock — while a process that wants DIR alone
// is refused, and is refused by them; stale temporaries are then left to whoever holds the chunk.
class RunClaim {
 public:
  explicit RunClaim(int fd) : fd_(fd) {}
  RunClaim(const RunClaim&) = delete;
  RunClaim& operator=(const RunClaim&) = delete;
  ~RunClaim();

 private:
  int fd_;
};
std::unique_ptr<RunClaim> claim_run_dir(
    const RunDir& dir, const std::string& identity_file, const nlohmann::json& identity,
    bool overwrite,
    const std::function<void(const nlohmann::json& existing)>& explain_other = nullptr,
    bool shared = false);
// An exclusive, non-blocking flock on `path` (created if absent), or null when another process
// holds it: a chunk being trained (run_sweep), the directory for a merge.
std::unique_ptr<RunClaim> try_lock_file(const std::string& path);
// Removes DIR/.../.<name>.tmp-<pid> files that interrupted writes left (under a claim only).
void remove_stale_temporaries(const std::string& dir);

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

// The options a group shares, as the manifest records them.
nlohmann::json group_json(const GroupSpec& group);

// train_loss.npy (models x steps), eval_loss.npy + eval_steps.npy, W.npy (models x snapshots x m x
// n), b.npy, snapshot_steps.npy — for a group trained with record_trajectories.
void write_trajectories(const RunDir& dir, const GroupSpec& group,
                        const std::vector<ModelResult>& results);

std::string status_of(const ModelResult& result);  // "ok" or "diverged"
std::string format_number(double value);           // shortest round-trip text, "nan", "inf"

}  // namespace sp
