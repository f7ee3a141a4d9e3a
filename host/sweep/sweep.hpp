// sweep.hpp — many models as the Cartesian product of option axes (docs/design.md §4 `sweep`),
// trained in chunks that are written as they finish, so that an interrupted sweep resumes where it
// stopped.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "host/backends/backend.hpp"
#include "host/core/config.hpp"
#include "host/io/npy.hpp"
#include "host/io/results.hpp"
#include "host/io/run_dir.hpp"

namespace sp {

// Parses one axis given on the command line:
//   a value           0.5
//   a list            0.1,0.5,0.9
//   linspace(a,b,k)   k values from a to b, evenly spaced (numpy.linspace)
//   logspace(a,b,k)   k values from 10^a to 10^b, evenly spaced in the exponent (numpy.logspace)
//   range(a,b[,step]) integers a, a+step, … below b (Python's range)
// Throws UsageError naming `option` on anything else. `integers`: a list's items are whole decimal
// numbers (the one grammar of host/core/parse.hpp). `generator`: where a function generated the
// values, its canonical text (what the run's records keep instead of the values; "" for a list).
std::vector<double> parse_axis(const std::string& text, const std::string& option,
                               bool integers = false, std::string* generator = nullptr);

// One axis of a sweep. `labels` name the values where they are not numbers (the model kind).
struct Axis {
  std::string name;
  std::vector<double> values;
  std::vector<std::string> labels;  // empty, or one per value
  std::string generator;            // linspace/logspace/range text that generated the values
  size_t size() const { return values.size(); }
  std::string label(size_t k) const;
};
// As sweep.json and the manifest keep it: name, size, and the generator's text or the values (and
// labels) — a range of ten million seeds is a line, not ten million numbers. axis_from_json takes
// back only what axis_json writes (std::runtime_error otherwise).
nlohmann::json axis_json(const Axis& axis);
Axis axis_from_json(const nlohmann::json& j);

// How a model's importance vector is built.
enum class ImportanceRule {
  vector,    // the fixed vector `importance` (one per feature)
  decay,     // importance_f = d^f, d from the axis "importance_decay"
  relative,  // all 1, except feature `relative_feature` = r, r from the axis "relative_importance"
};

struct SweepSpec {
  GroupSpec base;  // shape, data rules, evaluation, trajectories; its models and steps are unused
  // Axes in row-major order (the first varies slowest, the last fastest): model, steps, lr,
  // weight_decay, sparsity | density, varied_sparsity | varied_density, importance_decay |
  // relative_importance, seed. Every axis is present (varied_*, importance_*: when given), with
  // one value where it is not swept; model ids count through their product.
  std::vector<Axis> axes;
  std::vector<double> feature_sparsity;  // non-empty: this per-feature vector, no sparsity axis
  // The axis varied_sparsity | varied_density (after sparsity | density): feature varied_feature's
  // own sparsity, over the others' (TMS's pentagon collapsing as one feature gets sparser).
  int varied_feature = -1;
  ImportanceRule importance_rule = ImportanceRule::vector;
  std::vector<double> importance;  // ImportanceRule::vector: one per feature
  int relative_feature = 1;        // ImportanceRule::relative
  int64_t chunk_models = 0;        // models per chunk; 0: chosen from the backend and work size
  // The random streams of a seed across the cells (a cell: one value of every axis but the seed).
  // false (the default): seed s keys the same streams — initial W and data — in every cell
  // (common random numbers: paired comparisons across settings, correlated outcome counts).
  // true (--cell-streams independent): model (cell c, seed s) is keyed cell_stream_seed(s, c),
  // its own streams; results.csv's seed is that key (train --seed replays it).
  bool independent_cells = false;
  // Replayed arrays every model takes its slice of (sweep --init-W, --init-b, --data; given:
  // non-empty shape): init_W (..., m, n), init_b (..., n), data (..., points, n) — the leading
  // dimensions broadcast against the sweep's shape as numpy broadcasts (right-aligned, each equal
  // or 1; none: every model the same). The identity keeps each one's shape and digest, not its
  // values (a resume must be given the same arrays; a merge needs none).
  struct Array {
    std::vector<size_t> shape;
    size_t model_rank = 0;  // the trailing dimensions that are one model's: 2 (W, data), 1 (b)
    // One model's values for each index of the leading dimensions (shared by the models that
    // broadcast to it); empty when read back from an identity.
    std::vector<std::shared_ptr<const std::vector<double>>> slices;
    std::string digest;  // of the values, as doubles
    bool given() const { return !shape.empty(); }
  };
  Array init_W, init_b, data;

  int64_t model_count() const;
  std::vector<size_t> shape() const;
  // The model with row-major id `id`, and the steps it trains for.
  ModelSpec model(int64_t id, int* steps) const;
  int steps_of(int64_t id) const;  // the same steps, without building the model
  // The value of axis `name` at the row-major id (`fallback` where there is no such axis).
  double axis_value(int64_t id, const std::string& name, double fallback) const;
};

// Builds the standard axes from command-line strings (see parse_axis); validates every value and
// throws UsageError naming the option.
struct SweepAxesText {
  // sparsity: empty means "0"; give at most one of sparsity and density.
  std::string model = "relu", steps = "1000", lr = "1e-3", weight_decay = "0.01", sparsity, density,
              seed = "0", importance_decay, relative_importance, varied_sparsity, varied_density;
};
void set_axes(SweepSpec& spec, const SweepAxesText& text);

// A sweep's options as the command line (or Python, through it) gives them, beside the group's:
// the axes, and the rules that pick the importance and sparsity ("", -1: not given).
// The key of seed `seed` in cell `cell` with independent cells (SweepSpec::independent_cells):
// splitmix64 of the cell, xor the seed, through splitmix64 again — distinct for distinct cells and
// seeds in practice, and a pure function of the two (docs/math.md#random-numbers).
uint64_t cell_stream_seed(uint64_t seed, int64_t cell);

struct SweepOptionsText {
  SweepAxesText axes;
  std::string cell_streams = "shared";              // shared | independent
  std::string init_W_file, init_b_file, data_file;  // .npy (SweepSpec::Array)
  std::string importance, feature_sparsity;
  int relative_feature = -1, varied_feature = -1;
  int64_t chunk_models = 0;
};
// The sweep those options describe over the group — which importance rule, the varied and relative
// features, every axis and every rule checked (UsageError naming the option), the first model
// validated.
SweepSpec make_sweep_spec(const GroupSpec& group, const SweepOptionsText& text);
// host/sweep/arrays.cpp: an array option's file read (read_sweep_array), then checked against the
// sweep (its trailing dimensions `model_shape`, 0 for any size ≥ 1; its leading ones broadcast
// against the sweep's shape, whose axes `axis_names` name in messages; every value within
// float32's range), its digest taken and its slices made; and model `id`'s slice.
npy::Array read_sweep_array(const std::string& path, const std::string& option);
SweepSpec::Array make_sweep_array(npy::Array file, const std::string& option,
                                  const std::vector<size_t>& sweep_shape,
                                  const std::vector<std::string>& axis_names,
                                  const std::vector<size_t>& model_shape);
std::shared_ptr<const std::vector<double>> slice_of(const SweepSpec::Array& array,
                                                    const std::vector<size_t>& sweep_shape,
                                                    int64_t id);
// Checks one axis's values against what its option accepts (set_axes, and a sweep read back).
void check_axis(const SweepSpec& spec, const Axis& axis);

// sweep.json: what the sweep is — the command, the arithmetic it is trained in (float32: the cpu
// and cuda backends, which give the same bits; float64: the reference), the options every model
// shares, the axes, the plan's rule (--chunk-models) — and nothing of how it is run (backend,
// device, shard), which chunks record. Every chunk plan is a pure function of it.
nlohmann::json sweep_identity(const SweepSpec& spec, const std::string& command,
                              const std::string& arithmetic);
// The sweep a sweep.json describes, every field checked, or std::runtime_error saying which is
// wrong: the identity rebuilt from it must equal `identity` exactly.
SweepSpec sweep_from_identity(const nlohmann::json& identity);

// Whether a chunk's record (chunk.json) can describe the chunk of ids [first_id, first_id +
// models) of the sweep with this digest and arithmetic: "" (and the files it lists, with their
// sizes and checksums as written) or why not. Any JSON value is safe to give it (the fuzzer does).
std::string chunk_record_problem(const nlohmann::json& record, int64_t first_id, int64_t models,
                                 const std::string& sweep_digest, const std::string& arithmetic,
                                 bool want_trajectories,
                                 std::vector<std::pair<std::string, FileDigest>>* files = nullptr);

// Which share of a sweep's chunks a process trains: shard `index` of `count` (1-based) takes the
// chunks c with c mod count == index − 1. 1 of 1 is the whole sweep.
struct Shard {
  int index = 1, count = 1;
};
// --shard: "K/N" (1 <= K <= N <= 100,000), or "auto": from the environment of the engine that
// started the process — a Slurm job array (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT), the tasks
// of one Slurm step (SLURM_PROCID, SLURM_NTASKS), or an MPI launcher (OMPI_COMM_WORLD_RANK/SIZE,
// PMI_RANK/SIZE); anywhere else a UsageError naming --shard.
Shard parse_shard(const std::string& text);

// How a sweep is run: on which devices (one backend each, every one trained by its own host
// thread pulling chunks from the plan), whether another run's directory may be replaced, which
// shard, what runs once the directory is this run's (the command line announces the backend), and
// what the manifest adds (kept in plan.json, for `superpose merge`).
struct SweepRun {
  std::vector<Backend*> backends;
  bool overwrite = false;
  Shard shard;
  std::function<void()> after_claim;
  nlohmann::json extra_manifest = nlohmann::json::object();
};

struct SweepOutcome {
  // chunks_resumed: found whole and this sweep's, kept; chunks_retrained: found but not
  // trustworthy (damaged, another's, incomplete, without the trajectories asked for), trained
  // again; chunks_elsewhere: this shard's, but being trained by another process at the time.
  int64_t models = 0, diverged = 0, chunks = 0, chunks_resumed = 0, chunks_retrained = 0,
          chunks_trained = 0, chunks_elsewhere = 0, shard_chunks = 0;
  double train_seconds = 0;         // this invocation's training time (resumed chunks cost nothing)
  bool merged = false;              // results.csv and manifest.json written (every chunk present)
  nlohmann::json manifest;          // as written to DIR/manifest.json, when merged
  std::shared_ptr<RunClaim> claim;  // DIR stays this process's while the caller holds it
};

// Trains the sweep into DIR, one chunk at a time or, on a GPU, several chunks per call:
// DIR/chunks/<first id>/results.csv (+ trajectories when asked), then chunk.json (its files' sizes
// and checksums, the backend and device that trained it), as each chunk finishes. The chunk plan
// (plan.json) depends only on the sweep's options — --chunk-models, or 0: as many models as about
// 2e9 feature-sample-steps of work (steps × training rows × (n + m) per model), between 1 and
// 65,536 — never on the backend, the device, the thread count or the shard, so that shards on
// different machines share one plan.
// DIR is claimed first (claim_run_dir): the whole sweep takes it alone; shards of one sweep share
// it (a shared lock), each chunk locked by the process training it. A DIR holding chunks of the
// same sweep resumes: a chunk is kept only when it proves whole and its own; any other is trained
// again, saying why on stderr, never merged. The whole sweep then merges (merge_sweep); a shard
// leaves that to `superpose merge DIR` (or a plain rerun) once every shard is done.
// Progress with an ETA goes to stderr when stderr is a terminal.
SweepOutcome run_sweep(const SweepSpec& spec, const RunDir& dir, const std::string& command,
                       const SweepRun& run);
// The same on one backend (tests).
SweepOutcome run_sweep(Backend& backend, const SweepSpec& spec, const RunDir& dir,
                       const std::string& command,
                       const nlohmann::json& extra_manifest = nlohmann::json::object(),
                       bool overwrite = false);

// `superpose merge DIR`: with DIR to itself (no shard still running), the sweep read back from its
// own records and checked (sweep.json and plan.json as superpose wrote them, consistent, the chunk
// plan derived from sweep.json again, never read), every chunk of the plan checked; all present:
// DIR/results.csv (the chunks' rows by id: byte for byte what one process writes) and
// DIR/manifest.json, and the outcome; any missing or not to be trusted: a MergeIncomplete naming
// the missing model-id ranges, nothing written. `check_extra` sees the identity and the manifest's
// additions before anything is written (the phase diagram checks its options against them).
struct MergeIncomplete : std::runtime_error {
  using std::runtime_error::runtime_error;
};
SweepOutcome merge_sweep(
    const RunDir& dir,
    const std::function<void(const nlohmann::json& identity, const nlohmann::json& extra)>&
        check_extra = nullptr);

// The most models one chunk of the sweep's plan holds, and the most steps a model trains: what
// the memory a sweep needs at once turns on (host/io/resources.hpp).
int64_t largest_chunk(const SweepSpec& spec);
int64_t chunk_count(const SweepSpec& spec);
// The model-steps the whole sweep trains (what its progress counts).
int64_t sweep_work(const SweepSpec& spec);
int most_steps(const SweepSpec& spec);

// The analyses' columns for one trained model (host/core/analysis.hpp): `phase` for 2→1, and for
// every shape norm_<f>, interference_<f>, dimensionality_<f>, dimensions_per_feature.
std::vector<std::pair<std::string, std::string>> analysis_columns(const GroupSpec& group,
                                                                  const ModelResult& result);

// Reads a results.csv that superpose wrote: the header and the rows as text fields.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name) const;  // throws std::runtime_error when absent
};
Table read_csv(const RunDir& dir, const std::string& name);        // RunDirError when unreadable
std::vector<std::string> split_csv_line(const std::string& line);  // fields of one line

}  // namespace sp
