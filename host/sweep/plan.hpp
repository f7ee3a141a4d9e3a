// plan.hpp — the parts of a sweep (host/sweep/): its chunk plan and identity (identity.cpp), its
// chunks' records, checks and training (chunks.cpp), the merge (merge.cpp), shared by them and by
// the run (run.cpp). Internal to host/sweep/: the rest of the program uses host/sweep/sweep.hpp.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/backends/backend.hpp"
#include "host/io/run_dir.hpp"
#include "host/sweep/sweep.hpp"

namespace sp::sweep_internal {

// Models per chunk at most, when the user does not say (--chunk-models 0).
constexpr int64_t kMaxChunkModels = 65536;

// A chunk of the plan: models [first, first + count), all trained for `steps` steps.
struct Chunk {
  int64_t first = 0, count = 0;
  int steps = 0;
  std::string name() const { return fmt::format("{:012d}", first); }  // under chunks/
  std::string dir() const { return "chunks/" + name(); }
  std::string lock() const { return fmt::format(".{:012d}.lock", first); }  // under chunks/
};

// The model-steps chunks train (what a sweep's progress counts).
inline int64_t work_of(const std::vector<Chunk>& chunks) {
  int64_t work = 0;
  for (const Chunk& chunk : chunks) work += chunk.count * chunk.steps;
  return work;
}

// Models per chunk when the user does not say: about 2e9 feature-sample-steps of work (a few
// seconds on 2 CPU cores), between 1 and 65,536 models: from the sweep's options alone, so that
// every shard, on any backend, plans the same chunks.
int64_t default_chunk_models(const SweepSpec& spec, int steps);
// The chunk plan: a pure function of the sweep's options (its identity), never of the backend,
// the device, the thread count or the shard.
std::vector<Chunk> plan_chunks(const SweepSpec& spec);
// The results.csv header every chunk of a sweep with this base group must have.
std::string expected_header(const GroupSpec& base);

// What a sweep's chunks are checked against: its digest, its arithmetic, its results' columns.
struct ChunkRules {
  std::string sweep_digest, arithmetic, header;
};

// A sweep as a run or a merge sees it: its identity (sweep.json) and what follows from it — the
// digest chunks carry, the chunk plan, the results' columns — and what the manifest adds
// (plan.json, for `superpose merge`).
struct Plan {
  std::string command;
  nlohmann::json identity, extra;
  ChunkRules rules;
  std::vector<Chunk> chunks;
};

Plan make_plan(const SweepSpec& spec, const std::string& command, const std::string& arithmetic,
               const nlohmann::json& extra);
// plan.json: the sweep's digest, its chunk count, and what the manifest adds. Nothing in it is
// trusted: a merge derives the plan from sweep.json again and compares.
nlohmann::json plan_json(const Plan& plan);

// ---------------------------------------------------------------- chunks (chunks.cpp)
// Why a chunk found in the directory cannot be trusted ("" when it can): it must prove whole and
// its own — its record present, as superpose wrote it and this sweep's, for these ids, trained in
// this sweep's arithmetic, every file with the size and checksum it was written with, its
// results.csv the sweep's columns and exactly its ids, once each and in order — and hold what this
// run asks for (trajectories).
std::string check_chunk(const RunDir& root, const Chunk& chunk, const ChunkRules& rules,
                        bool want_trajectories);
// Before a chunk is trained (again), under its lock: what superpose wrote there, as it wrote it, is
// removed; anything else (a file it did not write, or one changed since — damage it was told
// about) is kept, the chunk's directory moved aside to chunks/<first id>.kept-<k>. Returns where it
// went ("" when nothing was kept).
std::string clear_chunk(const RunDir& chunks, const Chunk& chunk);
// The models of consecutive chunks of the plan, trained in one call of `backend` (a GPU wants
// many at once), each chunk then written on its own: its results.csv, its trajectories, and last
// its record.
void train_chunks(Backend& backend, const SweepSpec& spec, const std::vector<Chunk>& chunks,
                  const RunDir& dir, const std::string& sweep_digest);
// A directory a check found a moment ago; gone now, it is an error naming it.
RunDir subdir_or_throw(const RunDir& dir, const std::string& name);

// ---------------------------------------------------------------- merge (merge.cpp)
// The sweep of a directory a merge is given, from its own records, every one checked.
Plan read_plan(const RunDir& dir);
// Every chunk checked; all present: results.csv (their rows, by id) and manifest.json written.
// Otherwise MergeIncomplete naming the missing model-id ranges, nothing written.
void merge_chunks(const RunDir& dir, const Plan& plan, SweepOutcome& outcome);

}  // namespace sp::sweep_internal
