// sweep_run.cpp — running a sweep (host/sweep.hpp): the chunk plan, the chunks trained and checked,
// shards of one sweep sharing a directory, several devices pulling chunks, and the merge into one
// results.csv.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "host/job.hpp"
#include "host/sweep.hpp"

namespace sp {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxChunkModels = 65536;

struct Chunk {
  int64_t first = 0, count = 0;
  int steps = 0;
  std::string name() const { return fmt::format("{:012d}", first); }  // under chunks/
  std::string dir() const { return "chunks/" + name(); }
  std::string lock() const { return fmt::format(".{:012d}.lock", first); }  // under chunks/
};

// Models per chunk when the user does not say: about 2e9 feature-sample-steps of work (a few
// seconds on 2 CPU cores), between 1 and 65,536 models: from the sweep's options alone, so that
// every shard, on any backend, plans the same chunks.
int64_t default_chunk_models(const SweepSpec& spec, int steps) {
  const double work = static_cast<double>(steps) * spec.base.train_rows() *
                      (spec.base.n_features + spec.base.n_hidden);
  return static_cast<int64_t>(
      std::clamp(2e9 / std::max(work, 1.0), 1.0, static_cast<double>(kMaxChunkModels)));
}

std::vector<Chunk> plan_chunks(const SweepSpec& spec) {
  std::vector<Chunk> chunks;
  const int64_t total = spec.model_count();
  for (int64_t id = 0; id < total;) {
    const int steps = spec.steps_of(id);
    const int64_t limit =
        spec.chunk_models > 0 ? spec.chunk_models : default_chunk_models(spec, steps);
    Chunk chunk{id, 0, steps};
    while (id < total && chunk.count < limit && spec.steps_of(id) == steps) {
      ++chunk.count;
      ++id;
    }
    chunks.push_back(chunk);
  }
  return chunks;
}

const char* importance_rule_name(ImportanceRule rule) {
  return rule == ImportanceRule::vector  ? "vector"
         : rule == ImportanceRule::decay ? "decay"
                                         : "relative";
}

}  // namespace

nlohmann::json sweep_identity(const SweepSpec& spec, const std::string& command,
                              const std::string& arithmetic) {
  GroupSpec base = spec.base;
  base.models.clear();
  nlohmann::json axes = nlohmann::json::array();
  for (const Axis& axis : spec.axes) axes.push_back(axis_json(axis));
  nlohmann::json sweep = {{"command", command},
                          {"version", SUPERPOSE_VERSION},
                          {"arithmetic", arithmetic},
                          {"group", group_json(base)},
                          {"axes", axes},
                          {"shape", spec.shape()},
                          {"models", spec.model_count()},
                          {"importance_rule", importance_rule_name(spec.importance_rule)},
                          {"chunk_models", spec.chunk_models}};
  sweep["group"].erase("models");
  sweep["group"].erase("steps");
  if (spec.importance_rule == ImportanceRule::vector) sweep["importance"] = spec.importance;
  if (spec.importance_rule == ImportanceRule::relative)
    sweep["relative_feature"] = spec.relative_feature;
  if (!spec.feature_sparsity.empty()) sweep["feature_sparsity"] = spec.feature_sparsity;
  if (spec.varied_feature >= 0) sweep["varied_feature"] = spec.varied_feature;
  return sweep;
}

SweepSpec sweep_from_identity(const nlohmann::json& j) {
  if (!j.is_object()) throw std::runtime_error("it is not a JSON object");
  auto text = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_string())
      throw std::runtime_error(fmt::format("its field '{}' is missing or not text", key));
    return j[key].get<std::string>();
  };
  auto numbers = [&](const char* key, size_t count, double lo, double hi) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() != count)
      throw std::runtime_error(
          fmt::format("its field '{}' is not a list of {} numbers", key, count));
    std::vector<double> values;
    for (const auto& v : j[key]) {
      if (!v.is_number() || !(v.get<double>() >= lo && v.get<double>() <= hi))
        throw std::runtime_error(
            fmt::format("its field '{}' holds a value outside [{}, {}]", key, lo, hi));
      values.push_back(v.get<double>());
    }
    return values;
  };
  auto integer = [&](const char* key, int64_t lo, int64_t hi) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < lo ||
        j[key].get<int64_t>() > hi)
      throw std::runtime_error(
          fmt::format("its field '{}' is not a whole number in [{}, {}]", key, lo, hi));
    return j[key].get<int64_t>();
  };
  const std::string command = text("command"), arithmetic = text("arithmetic");
  text("version");
  if (command != "sweep" && command != "phase-diagram" && command != "tms")
    throw std::runtime_error(fmt::format("its command '{}' is not a sweep's", command));
  if (arithmetic != "float32" && arithmetic != "float64")
    throw std::runtime_error(
        fmt::format("its arithmetic '{}' is not float32 or float64", arithmetic));
  SweepSpec spec;
  if (!j.contains("group")) throw std::runtime_error("its field 'group' is missing");
  spec.base = group_from_json(j["group"], {"steps"});
  spec.base.steps = spec.base.warmup_steps + 1;  // unused: each model's steps are its axis's
  const int n = spec.base.n_features;
  const std::string rule = text("importance_rule");
  if (rule == "vector") {
    spec.importance_rule = ImportanceRule::vector;
    spec.importance = numbers("importance", static_cast<size_t>(n), 0, 1e30);
  } else if (rule == "decay") {
    spec.importance_rule = ImportanceRule::decay;
  } else if (rule == "relative") {
    spec.importance_rule = ImportanceRule::relative;
    spec.relative_feature = static_cast<int>(integer("relative_feature", 0, n - 1));
  } else {
    throw std::runtime_error(fmt::format("its importance rule '{}' is unknown", rule));
  }
  if (j.contains("feature_sparsity"))
    spec.feature_sparsity = numbers("feature_sparsity", static_cast<size_t>(n), 0, 1);
  if (j.contains("varied_feature"))
    spec.varied_feature = static_cast<int>(integer("varied_feature", 0, n - 1));
  spec.chunk_models = integer("chunk_models", 0, 100000000);
  if (!j.contains("axes") || !j["axes"].is_array())
    throw std::runtime_error("its field 'axes' is missing or not a list");
  std::vector<std::string> expected = {"model", "steps", "lr", "weight_decay"};
  std::vector<std::string> names;
  double total = 1;
  for (const auto& a : j["axes"]) {
    spec.axes.push_back(axis_from_json(a));
    try {
      check_axis(spec, spec.axes.back());
    } catch (const UsageError& error) {
      throw std::runtime_error(fmt::format("axis {}: {}", spec.axes.back().name, error.what()));
    }
    names.push_back(spec.axes.back().name);
    total *= static_cast<double>(spec.axes.back().size());
  }
  // The axes a sweep of these options has, in their order.
  auto one_of = [&](size_t at, const char* a, const char* b) {
    expected.push_back(at < names.size() && names[at] == b ? b : a);
  };
  if (spec.feature_sparsity.empty()) one_of(expected.size(), "sparsity", "density");
  if (spec.varied_feature >= 0) one_of(expected.size(), "varied_sparsity", "varied_density");
  if (spec.importance_rule == ImportanceRule::decay) expected.push_back("importance_decay");
  if (spec.importance_rule == ImportanceRule::relative) expected.push_back("relative_importance");
  expected.push_back("seed");
  if (names != expected)
    throw std::runtime_error(fmt::format("its axes are {}, where this sweep has {}",
                                         fmt::join(names, ", "), fmt::join(expected, ", ")));
  if (total > 1e8) throw std::runtime_error("its axes give more than 100,000,000 models");
  try {
    GroupSpec probe = spec.base;
    probe.models.push_back(spec.model(0, &probe.steps));
    validate(probe);
  } catch (const UsageError& error) {
    throw std::runtime_error(error.what());
  }
  nlohmann::json rebuilt = sweep_identity(spec, command, arithmetic);
  rebuilt["version"] = j["version"];
  if (rebuilt != j)
    throw std::runtime_error(
        "it is not as superpose writes it for the options it holds (a field was edited?)");
  return spec;
}

std::string chunk_record_problem(const nlohmann::json& record, int64_t first_id, int64_t models,
                                 const std::string& sweep_digest, const std::string& arithmetic,
                                 bool want_trajectories,
                                 std::vector<std::pair<std::string, FileDigest>>* files) {
  auto text = [&](const char* key) -> const std::string* {
    const auto it = record.find(key);
    return it != record.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto integer = [&](const char* key, int64_t* value) {
    const auto it = record.find(key);
    if (it == record.end() || !it->is_number_integer()) return false;
    *value = it->get<int64_t>();
    return true;
  };
  if (!record.is_object() || !record.contains("files") || !record["files"].is_object())
    return "its chunk.json is damaged";
  const std::string* backend = text("backend");
  const std::string family = backend ? arithmetic_of(*backend) : "";
  if (family != arithmetic)
    return fmt::format(
        "it was trained by the {} backend, in {} arithmetic, and this sweep is {} (results of "
        "different arithmetic are never mixed)",
        backend && !backend->empty() ? *backend : "?", family.empty() ? "unknown" : family,
        arithmetic);
  const std::string* sweep = text("sweep");
  if (!sweep || *sweep != sweep_digest) return "its chunk.json is another sweep's";
  int64_t first = -1, count = 0;
  if (!integer("first_id", &first) || !integer("models", &count))
    return "its chunk.json is damaged";
  if (first != first_id || count != models)
    return fmt::format("its chunk.json is for models {} to {}", first,
                       count > 0 && first <= INT64_MAX - count ? first + count - 1 : first);
  const auto trajectories = record.find("trajectories");
  if (trajectories == record.end() || !trajectories->is_boolean())
    return "its chunk.json is damaged";
  if (want_trajectories && !trajectories->get<bool>())
    return "it has no trajectories, and --trajectories asks for them";
  if (!record["files"].contains("results.csv")) return "its chunk.json lists no results.csv";
  for (const auto& [name, expected] : record["files"].items()) {
    if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos || name == "chunk.json" || name == ".." ||
        !superpose_writes(name))
      return "its chunk.json lists a file superpose does not write";
    const auto bytes = expected.find("bytes");
    const auto xxh3 = expected.find("xxh3");
    if (!expected.is_object() || bytes == expected.end() || !bytes->is_number_unsigned() ||
        xxh3 == expected.end() || !xxh3->is_string())
      return "its chunk.json is damaged";
    if (files) files->push_back({name, {bytes->get<uint64_t>(), xxh3->get<std::string>()}});
  }
  return "";
}

namespace {

// The results.csv header every chunk of a sweep with this base group must have.
std::string expected_header(const GroupSpec& base) {
  ModelResult zero;
  zero.W.assign(static_cast<size_t>(base.n_features) * base.n_hidden, 0.0);
  zero.b.assign(static_cast<size_t>(base.n_features), 0.0);
  std::vector<std::string> names;
  for (const auto& column : analysis_columns(base, zero)) names.push_back(column.first);
  return results_header(base.n_features, base.n_hidden, names);
}

// The files a chunk has: results.csv, and its trajectories when recorded (not its record, its
// record of files, or temporaries).
std::vector<std::string> chunk_files(const RunDir& dir) {
  std::vector<std::string> names;
  for (const std::string& name : dir.list())
    if (name != "chunk.json" && name[0] != '.' && dir.kind(name) == EntryKind::file)
      names.push_back(name);
  return names;
}

// chunk.json, written after every other file of the chunk: whose chunk it is (the sweep's digest,
// its ids), each file's size and checksum as written, and what trained it. A chunk without it
// never finished.
void write_chunk_record(const RunDir& dir, const Chunk& chunk, const std::string& sweep_digest,
                        bool trajectories, const Backend& backend, double seconds) {
  nlohmann::json files = nlohmann::json::object();
  for (const std::string& name : chunk_files(dir)) {
    const FileDigest digest = dir.digest(name);
    files[name] = {{"bytes", digest.bytes}, {"xxh3", digest.xxh3}};
  }
  const nlohmann::json record = {
      {"sweep", sweep_digest},      {"first_id", chunk.first},      {"models", chunk.count},
      {"steps", chunk.steps},       {"trajectories", trajectories}, {"backend", backend.name()},
      {"device", backend.device()}, {"train_seconds", seconds},     {"files", files}};
  dir.write("chunk.json", record.dump(2) + "\n");
}

// A directory a check found a moment ago; gone now, it is an error naming it.
RunDir subdir_or_throw(const RunDir& dir, const std::string& name) {
  std::optional<RunDir> sub = dir.existing_subdir(name);
  if (!sub) throw RunDirError(fmt::format("'{}' went away during the merge", dir.path_of(name)));
  return *sub;
}

// What a sweep's chunks are checked against: its digest, its arithmetic, its results' columns.
struct ChunkRules {
  std::string sweep_digest, arithmetic, header;
};

// Why a chunk found in the directory cannot be trusted ("" when it can): it must prove whole and
// its own — its record present and this sweep's, for these ids, trained in this sweep's
// arithmetic, every file with the size and checksum it was written with, its results.csv the
// sweep's columns and exactly its ids, once each and in order — and hold what this run asks for
// (trajectories).
std::string check_chunk_record(const RunDir& root, const Chunk& chunk, const ChunkRules& rules,
                               bool want_trajectories);

std::string check_chunk(const RunDir& root, const Chunk& chunk, const ChunkRules& rules,
                        bool want_trajectories) {
  try {
    return check_chunk_record(root, chunk, rules, want_trajectories);
  } catch (const nlohmann::json::exception&) {  // valid JSON, but not a record's fields
    return "its chunk.json is damaged";
  } catch (const RunDirError& error) {  // a link, a FIFO, something unreadable
    return error.what();
  }
}

std::string check_chunk_record(const RunDir& root, const Chunk& chunk, const ChunkRules& rules,
                               bool want_trajectories) {
  const std::optional<RunDir> found = root.existing_subdir(chunk.dir());
  if (!found) return "it is missing";
  const RunDir& dir = *found;
  if (dir.kind("chunk.json") == EntryKind::none)
    return "it has no chunk.json (it was interrupted before it was complete)";
  std::vector<std::pair<std::string, FileDigest>> files;
  const std::string problem =
      chunk_record_problem(dir.read_json("chunk.json"), chunk.first, chunk.count,
                           rules.sweep_digest, rules.arithmetic, want_trajectories, &files);
  if (!problem.empty()) return problem;
  if (!dir.wrote("chunk.json")) return "its chunk.json is not the file superpose wrote there";
  std::vector<std::string> listed;
  for (const auto& [name, expected] : files) {
    listed.push_back(name);
    if (dir.kind(name) != EntryKind::file) return fmt::format("{} is missing", name);
    const FileDigest digest = dir.digest(name);
    if (!(digest == expected))
      return fmt::format(
          "{} is not the file that was written ({} bytes now, {} then; checksum "
          "{})",
          name, digest.bytes, expected.bytes, digest.xxh3 == expected.xxh3 ? "equal" : "differs");
  }
  std::sort(listed.begin(), listed.end());
  if (listed != chunk_files(dir)) return "it holds files its chunk.json does not list";
  const std::unique_ptr<std::istream> in = dir.open("results.csv");
  std::string line;
  if (!std::getline(*in, line) || line != rules.header)
    return "its results.csv does not have this sweep's columns";
  const size_t columns = std::count(rules.header.begin(), rules.header.end(), ',') + 1;
  int64_t expected_id = chunk.first;
  while (std::getline(*in, line)) {
    const std::vector<std::string> fields = split_csv_line(line);
    if (fields.size() != columns)
      return fmt::format("its results.csv has a row of {} fields, not {}", fields.size(), columns);
    if (expected_id >= chunk.first + chunk.count)
      return "its results.csv has more rows than the chunk has models";
    if (fields[0] != std::to_string(expected_id))
      return fmt::format("its results.csv has model id '{}' where {} belongs", fields[0],
                         expected_id);
    ++expected_id;
  }
  if (expected_id != chunk.first + chunk.count)
    return fmt::format("its results.csv has {} rows, not {}", expected_id - chunk.first,
                       chunk.count);
  return "";
}

// Before a chunk is trained (again), under its lock: what superpose wrote there, as it wrote it, is
// removed; anything else (a file it did not write, or one changed since — damage it was told
// about) is kept, the chunk's directory moved aside to chunks/<first id>.kept-<k>. Returns where it
// went ("" when nothing was kept).
std::string clear_chunk(const RunDir& chunks, const Chunk& chunk) {
  const std::string name = chunk.name();
  const EntryKind kind = chunks.kind(name);
  if (kind == EntryKind::none) return "";
  bool keep = kind != EntryKind::directory;
  if (!keep) {
    const std::optional<RunDir> dir = chunks.existing_subdir(name);
    if (!dir) return "";  // gone meanwhile
    remove_holdings(*dir, survey(*dir, superpose_writes));
    const std::vector<std::string> left = dir->list();
    keep = !(left.empty() || (left.size() == 1 && left[0] == kLedgerFile));
    if (!keep) {
      ::unlinkat(dir->descriptor(), kLedgerFile, 0);
      chunks.remove_empty_subdir(name);
    }
  }
  if (!keep) return "";
  for (int k = 1;; ++k) {
    const std::string aside = fmt::format("{}.kept-{}", name, k);
    if (chunks.kind(aside) == EntryKind::none) {
      chunks.rename(name, aside);
      return "chunks/" + aside;
    }
  }
}

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds)) return "?";
  if (seconds < 60) return fmt::format("{:.0f} s", seconds);
  if (seconds < 3600)
    return fmt::format("{:.0f} min {:02.0f} s", std::floor(seconds / 60), std::fmod(seconds, 60));
  return fmt::format("{:.0f} h {:02.0f} min", std::floor(seconds / 3600),
                     std::fmod(seconds / 60, 60));
}

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
               const nlohmann::json& extra) {
  Plan plan;
  plan.command = command;
  plan.identity = sweep_identity(spec, command, arithmetic);
  plan.extra = extra;
  plan.rules = {digest_text(plan.identity.dump()), arithmetic, expected_header(spec.base)};
  plan.chunks = plan_chunks(spec);
  return plan;
}

// plan.json: the sweep's digest, its chunk count, and what the manifest adds. Nothing in it is
// trusted: a merge derives the plan from sweep.json again and compares.
nlohmann::json plan_json(const Plan& plan) {
  return {{"command", plan.command},
          {"sweep_digest", plan.rules.sweep_digest},
          {"chunks", plan.chunks.size()},
          {"extra", plan.extra}};
}

// The manifest's additions a sweep may carry: the recipe's name, the tms result it is, the phase
// diagram's options — each of its type, none of the manifest's own fields.
std::string extra_problem(const std::string& command, const nlohmann::json& extra) {
  if (!extra.is_object()) return "its 'extra' is not an object";
  for (const auto& [key, value] : extra.items()) {
    if (key == "recipe" && value.is_string() && command != "phase-diagram") continue;
    if (key == "tms" && value.is_string() && command == "tms") continue;
    if (key == "phase_diagram" && value.is_object() && command == "phase-diagram") continue;
    return fmt::format("its 'extra' has a field '{}' superpose does not write for a {}", key,
                       command);
  }
  return "";
}

// The sweep of a directory a merge is given, from its own records, every one checked: sweep.json
// (as superpose wrote it, and what it says consistent), plan.json (as superpose wrote it, this
// sweep's, its chunk count the plan's, its additions of the kinds superpose writes).
Plan read_plan(const RunDir& dir) {
  auto damaged = [&](const std::string& file, const std::string& why) {
    return UsageError(
        fmt::format("merge: '{}' {}; rerun the sweep's command (without --shard) to write it again",
                    dir.path_of(file), why));
  };
  if (dir.kind("sweep.json") == EntryKind::none)
    throw UsageError(fmt::format(
        "merge: '{}' holds no sweep (no sweep.json): give the --out of a sweep or phase-diagram",
        dir.path()));
  for (const char* file : {"sweep.json", "plan.json"}) {
    if (dir.kind(file) == EntryKind::none) throw damaged(file, "is missing");
    if (!dir.wrote(file))
      throw damaged(file, dir.kind(file) == EntryKind::file
                              ? "is not the file superpose wrote (it was changed since)"
                              : "is not a regular file superpose wrote");
  }
  const nlohmann::json identity = dir.read_json("sweep.json");
  SweepSpec spec;
  try {
    spec = sweep_from_identity(identity);
  } catch (const std::runtime_error& error) {
    throw damaged("sweep.json", fmt::format("is damaged: {}", error.what()));
  }
  const nlohmann::json j = dir.read_json("plan.json");
  if (!j.is_object() || !j.contains("extra")) throw damaged("plan.json", "is damaged");
  Plan plan = make_plan(spec, identity["command"].get<std::string>(),
                        identity["arithmetic"].get<std::string>(), j["extra"]);
  plan.identity = identity;  // its version too
  plan.rules.sweep_digest = digest_text(identity.dump());
  if (const std::string problem = extra_problem(plan.command, j["extra"]); !problem.empty())
    throw damaged("plan.json", problem);
  if (j != plan_json(plan)) throw damaged("plan.json", "does not agree with sweep.json");
  return plan;
}

// Every chunk checked; all present: results.csv (their rows, by id) and manifest.json written.
// Otherwise MergeIncomplete naming the missing model-id ranges, nothing written.
void merge_chunks(const RunDir& dir, const Plan& plan, SweepOutcome& outcome) {
  std::vector<std::string> missing;
  std::string first_reason;
  int64_t missing_chunks = 0, expected_first = 0;
  std::set<std::pair<std::string, std::string>> devices;
  std::vector<FileDigest> checked;  // each chunk's results.csv, as its check found it
  for (const Chunk& chunk : plan.chunks) {
    if (chunk.first != expected_first)  // the plan covers [0, total) in order, by construction
      throw std::logic_error("merge: the chunk plan has a gap or an overlap");
    expected_first = chunk.first + chunk.count;
    const std::string problem = check_chunk(dir, chunk, plan.rules, false);
    if (!problem.empty()) {
      ++missing_chunks;
      if (first_reason.empty()) first_reason = chunk.dir() + ": " + problem;
      const std::string range = fmt::format("{}-{}", chunk.first, chunk.first + chunk.count - 1);
      // Adjacent missing chunks read as one range.
      if (!missing.empty()) {
        const size_t dash = missing.back().find('-');
        if (std::stoll(missing.back().substr(dash + 1)) + 1 == chunk.first) {
          missing.back() =
              missing.back().substr(0, dash + 1) + std::to_string(chunk.first + chunk.count - 1);
          continue;
        }
      }
      missing.push_back(range);
      continue;
    }
    // What it was found to be, for the copy below to prove again byte for byte.
    const nlohmann::json record = subdir_or_throw(dir, chunk.dir()).read_json("chunk.json");
    std::vector<std::pair<std::string, FileDigest>> files;
    chunk_record_problem(record, chunk.first, chunk.count, plan.rules.sweep_digest,
                         plan.rules.arithmetic, false, &files);
    for (const auto& [name, digest] : files)
      if (name == "results.csv") checked.push_back(digest);
    devices.insert({record.value("backend", "?"), record.value("device", "?")});
  }
  if (checked.size() != plan.chunks.size() && missing_chunks == 0)
    throw std::runtime_error("merge: a chunk's record changed during the merge");
  if (expected_first != plan.identity.value("models", int64_t{-1}))
    throw std::logic_error("merge: the chunk plan does not cover the sweep");
  if (missing_chunks > 0) {
    std::string ranges;
    for (size_t k = 0; k < missing.size() && k < 20; ++k) ranges += (k ? ", " : "") + missing[k];
    if (missing.size() > 20) ranges += fmt::format(" and {} more ranges", missing.size() - 20);
    throw MergeIncomplete(fmt::format(
        "merge: {} of {} chunks are missing or not to be trusted, model ids {} (the first, {}); "
        "run the shards that train them (or the sweep without --shard), then merge again",
        missing_chunks, plan.chunks.size(), ranges, first_reason));
  }

  // The manifest, whole before anything is written.
  nlohmann::json manifest = plan.identity;
  nlohmann::json trained_by = nlohmann::json::array();
  for (const auto& [backend, device] : devices)
    trained_by.push_back({{"backend", backend}, {"device", device}});
  manifest["trained_by"] = trained_by;
  if (devices.size() == 1) {
    manifest["backend"] = devices.begin()->first;
    manifest["device"] = devices.begin()->second;
  }
  manifest["chunks"] = nlohmann::json::array();
  for (const Chunk& chunk : plan.chunks)
    manifest["chunks"].push_back({{"dir", chunk.dir()},
                                  {"first_id", chunk.first},
                                  {"models", chunk.count},
                                  {"steps", chunk.steps}});
  manifest["ids_are"] =
      "row-major over axes (the first varies slowest): results.csv rows reshape to `shape`";
  for (const auto& [key, value] : plan.extra.items())
    if (!manifest.contains(key)) manifest[key] = value;

  // All rows, by id, streamed from the chunks into one file written then renamed: every id of
  // [0, total) once, in order, or nothing is written.
  outcome.diverged = 0;
  dir.write_with("results.csv", [&](std::ostream& out) {
    int status_column = -1;
    for (size_t c = 0; c < plan.chunks.size(); ++c) {
      const Chunk& chunk = plan.chunks[c];
      const std::unique_ptr<std::istream> in =
          subdir_or_throw(dir, chunk.dir()).open("results.csv");
      // The bytes copied are the bytes checked: their digest is compared at the end.
      Digester copied;
      auto read_line = [&](std::string& line) {
        if (!std::getline(*in, line)) return false;
        copied.update(line.data(), line.size());
        if (!in->eof()) copied.update("\n", 1);
        return true;
      };
      std::string line;
      if (!read_line(line) || line != plan.rules.header)
        throw std::runtime_error(chunk.dir() + "/results.csv changed during the merge");
      if (c == 0) {
        out << line << '\n';
        const std::vector<std::string> names = split_csv_line(line);
        for (size_t k = 0; k < names.size(); ++k)
          if (names[k] == "status") status_column = static_cast<int>(k);
      }
      int64_t id = chunk.first;
      while (read_line(line)) {
        const std::vector<std::string> fields = split_csv_line(line);
        if (id >= chunk.first + chunk.count || fields.empty() || fields[0] != std::to_string(id))
          throw std::runtime_error(chunk.dir() + "/results.csv changed during the merge");
        out << line << '\n';
        ++id;
        if (status_column >= 0 && fields.at(static_cast<size_t>(status_column)) != "ok")
          ++outcome.diverged;
      }
      if (id != chunk.first + chunk.count || !(copied.result() == checked[c]))
        throw std::runtime_error(chunk.dir() + "/results.csv changed during the merge");
    }
  });
  manifest["diverged"] = outcome.diverged;
  manifest["timings_s"] = {{"train", outcome.train_seconds},
                           {"chunks_resumed", outcome.chunks_resumed},
                           {"chunks_retrained", outcome.chunks_retrained}};
  dir.write("manifest.json", manifest.dump(2) + "\n");
  outcome.manifest = manifest;
  outcome.merged = true;
}

// The models of consecutive chunks of the plan, trained in one call of `backend` (a GPU wants
// many at once), each chunk then written on its own: its results.csv, its trajectories, and last
// its record.
void train_chunks(Backend& backend, const SweepSpec& spec, const std::vector<Chunk>& chunks,
                  const RunDir& dir, const std::string& sweep_digest) {
  GroupSpec group = spec.base;
  group.steps = chunks.front().steps;
  group.models.clear();
  for (const Chunk& chunk : chunks)
    for (int64_t id = chunk.first; id < chunk.first + chunk.count; ++id)
      group.models.push_back(spec.model(id, nullptr));
  validate(group);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ModelResult> results = backend.train(group);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t offset = 0;
  for (const Chunk& chunk : chunks) {
    const RunDir chunk_dir = dir.subdir(chunk.dir());
    const auto count = static_cast<size_t>(chunk.count);
    if (group.record_trajectories)
      write_trajectories(
          chunk_dir, group,
          std::vector<ModelResult>(results.begin() + offset, results.begin() + offset + count));
    std::vector<ResultRow> rows;
    rows.reserve(count);
    for (size_t i = offset; i < offset + count; ++i)
      rows.push_back({chunk.first + static_cast<int64_t>(i - offset), &group, &group.models[i],
                      &results[i], analysis_columns(group, results[i])});
    chunk_dir.write("results.csv", results_csv(rows));
    write_chunk_record(chunk_dir, chunk, sweep_digest, group.record_trajectories, backend,
                       seconds * static_cast<double>(count) / static_cast<double>(results.size()));
    offset += count;
  }
}

// How many lock files this process may hold open at once: the soft limit on open files, raised
// to the hard one, less a margin for everything else.
size_t open_files_allowed() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 256;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t usable = limit.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : limit.rlim_cur;
  return usable > 128 ? static_cast<size_t>(std::min<rlim_t>(usable - 128, rlim_t{1} << 20)) : 16;
}

int environment_int(const char* name, bool* present) {
  const char* text = std::getenv(name);
  *present = text && *text;
  if (!*present) return 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > 100000000)
    throw UsageError(fmt::format("--shard: auto found {}='{}', not a whole number", name, text));
  return static_cast<int>(value);
}

}  // namespace

Shard parse_shard(const std::string& text) {
  Shard shard;
  if (text == "auto") {
    bool a = false, b = false, c = false;
    // A Slurm job array: its tasks are the shards (ids MIN, MIN + STEP, ...).
    const int id = environment_int("SLURM_ARRAY_TASK_ID", &a);
    const int count = environment_int("SLURM_ARRAY_TASK_COUNT", &b);
    const int min = environment_int("SLURM_ARRAY_TASK_MIN", &c);
    if (a && b && c) {
      bool has_step = false;
      const int step = environment_int("SLURM_ARRAY_TASK_STEP", &has_step);
      shard = {(id - min) / (has_step && step > 0 ? step : 1) + 1, count};
    } else if (const int size = environment_int("SLURM_NTASKS", &b),
               rank = environment_int("SLURM_PROCID", &a);
               a && b && size > 1) {  // the tasks of one Slurm step (srun --ntasks)
      shard = {rank + 1, size};
    } else if (const int size2 = environment_int("OMPI_COMM_WORLD_SIZE", &b),
               rank2 = environment_int("OMPI_COMM_WORLD_RANK", &a);
               a && b) {  // Open MPI's mpirun
      shard = {rank2 + 1, size2};
    } else if (const int size3 = environment_int("PMI_SIZE", &b),
               rank3 = environment_int("PMI_RANK", &a);
               a && b) {  // MPICH, Intel MPI, or Slurm's PMI
      shard = {rank3 + 1, size3};
    } else {
      throw UsageError(
          "--shard: auto finds no Slurm job array (SLURM_ARRAY_TASK_ID), Slurm tasks "
          "(SLURM_PROCID with SLURM_NTASKS > 1) or MPI launcher (OMPI_COMM_WORLD_RANK, PMI_RANK) "
          "in the environment; give --shard K/N");
    }
  } else {
    const size_t slash = text.find('/');
    auto whole = [&](const std::string& part) {
      if (part.empty() || part.size() > 6 ||
          part.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError(fmt::format(
            "--shard: '{}' is not accepted (K/N with 1 <= K <= N <= 100000, or auto)", text));
      return std::stoi(part);
    };
    if (slash == std::string::npos)
      throw UsageError(fmt::format(
          "--shard: '{}' is not accepted (K/N with 1 <= K <= N <= 100000, or auto)", text));
    shard = {whole(text.substr(0, slash)), whole(text.substr(slash + 1))};
  }
  if (shard.count < 1 || shard.count > 100000 || shard.index < 1 || shard.index > shard.count)
    throw UsageError(
        fmt::format("--shard: {} of {} is not accepted (K/N with 1 <= K <= N <= 100000{})",
                    shard.index, shard.count, text == "auto" ? ", from the environment" : ""));
  return shard;
}

int64_t chunk_count(const SweepSpec& spec) {
  return static_cast<int64_t>(plan_chunks(spec).size());
}

int64_t largest_chunk(const SweepSpec& spec) {
  int64_t largest = 0;
  for (const Chunk& chunk : plan_chunks(spec)) largest = std::max(largest, chunk.count);
  return largest;
}

int most_steps(const SweepSpec& spec) {
  for (const Axis& axis : spec.axes)
    if (axis.name == "steps")
      return static_cast<int>(*std::max_element(axis.values.begin(), axis.values.end()));
  return spec.base.steps;
}

SweepOutcome run_sweep(const SweepSpec& spec, const RunDir& dir, const std::string& command,
                       const SweepRun& run) {
  if (run.backends.empty()) throw std::logic_error("run_sweep: no backend");
  const Shard shard = run.shard;
  const bool sharded = shard.count > 1;
  const std::string arithmetic = run.backends.front()->arithmetic();
  for (const Backend* backend : run.backends)
    if (backend->arithmetic() != arithmetic)
      throw std::logic_error("run_sweep: backends of different arithmetic");
  const Plan plan = make_plan(spec, command, arithmetic, run.extra_manifest);

  // The directory is this sweep's: alone, or shared by its shards; never another sweep's. Its
  // plan.json is written under the claim (the same bytes from every shard).
  SweepOutcome outcome;
  outcome.claim = claim_run_dir(
      dir, "sweep.json", plan.identity, run.overwrite,
      [&](const nlohmann::json& existing) {
        nlohmann::json same_but_arithmetic = existing;
        if (existing.is_object()) same_but_arithmetic["arithmetic"] = arithmetic;
        if (same_but_arithmetic == plan.identity)
          throw UsageError(fmt::format(
              "--out: '{}' holds this sweep trained in {} arithmetic, and the {} backend trains "
              "in {}: results of different arithmetic are never mixed (the cpu and cuda backends "
              "are float32 and give the same bits; the reference is float64); use a backend of "
              "its arithmetic, choose another --out, or add --overwrite to replace it",
              dir.path(), existing.value("arithmetic", "?"), run.backends.front()->name(),
              arithmetic));
        throw UsageError(fmt::format(
            "--out: '{}' holds a different sweep (see its sweep.json){}; rerun that sweep's own "
            "command to resume it, choose another --out, or add --overwrite to replace it",
            dir.path(), sharded ? ": this shard is not one of its shards" : ""));
      },
      sharded,
      [&] {
        dir.write("plan.json", plan_json(plan).dump(2) + "\n");
        dir.subdir("chunks");  // created now: each chunk's lock file (Chunk::lock) lives in it
      });
  if (run.after_claim) run.after_claim();
  const RunDir chunks_dir = dir.subdir("chunks");
  outcome.models = spec.model_count();
  outcome.chunks = static_cast<int64_t>(plan.chunks.size());

  // This shard's chunks: one found whole and its own is kept; any other is to be trained (again).
  // Each is locked only while this process trains it (a lock file per chunk, taken when its batch
  // is: a process of the same shard started twice skips what the other holds).
  std::vector<Chunk> pending;
  int64_t pending_models = 0;
  std::vector<std::string> problems;  // why each pending chunk found in the directory is retrained
  for (size_t c = static_cast<size_t>(shard.index - 1); c < plan.chunks.size();
       c += static_cast<size_t>(shard.count)) {
    const Chunk& chunk = plan.chunks[c];
    ++outcome.shard_chunks;
    std::string problem;
    if (chunks_dir.kind(chunk.name()) != EntryKind::none) {
      problem = check_chunk(dir, chunk, plan.rules, spec.base.record_trajectories);
      if (problem.empty()) {
        ++outcome.chunks_resumed;
        continue;
      }
    }
    pending.push_back(chunk);
    problems.push_back(problem);
    pending_models += chunk.count;
  }

  // Batches of this shard's pending chunks of one steps value, as many models as the backends
  // take in one call (0: a chunk at a time), every device given work, and no more chunks than
  // this process may hold lock files open at once.
  int64_t per_call = 0;
  for (const Backend* backend : run.backends) {
    const int64_t models = backend->models_per_call();
    per_call = per_call == 0 ? models : std::min(per_call, models == 0 ? per_call : models);
  }
  if (run.backends.size() > 1) {  // every device gets work: at most half a device's share a call
    const int64_t share =
        std::max<int64_t>(1, (pending_models + 2 * static_cast<int64_t>(run.backends.size()) - 1) /
                                 (2 * static_cast<int64_t>(run.backends.size())));
    per_call = per_call == 0 ? share : std::min(per_call, share);
  }
  const size_t chunks_per_call =
      std::max<size_t>(1, open_files_allowed() / 2 / std::max<size_t>(1, run.backends.size()));
  std::vector<std::vector<size_t>> batches;  // indices into `pending`
  for (size_t p = 0; p < pending.size(); ++p) {
    if (!batches.empty()) {
      const std::vector<size_t>& last = batches.back();
      int64_t in_batch = 0;
      for (size_t q : last) in_batch += pending[q].count;
      if (pending[last.back()].steps == pending[p].steps && per_call > 0 &&
          in_batch + pending[p].count <= per_call && last.size() < chunks_per_call) {
        batches.back().push_back(p);
        continue;
      }
    }
    batches.push_back({p});
  }

  // Every backend (a device each) pulls batches on its own host thread: locks its chunks, leaves
  // any another process holds (or has meanwhile finished), clears what a damaged or unfinished
  // one left, and trains the rest in one call.
  const bool show_progress = progress_on_terminal();
  progress().total = pending_models;
  progress().done = 0;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;
  std::mutex progress_mutex;
  int64_t trained_models = 0, trained_chunks = 0, done_models = 0;
  auto worker = [&](Backend& backend) {
    for (size_t b = next++; b < batches.size() && !failed; b = next++) {
      std::vector<Chunk> mine;
      std::vector<std::unique_ptr<RunClaim>> locks;
      int64_t skipped_models = 0;
      try {
        check_cancelled();
        for (size_t p : batches[b]) {
          const Chunk& chunk = pending[p];
          std::unique_ptr<RunClaim> lock = chunks_dir.try_lock(chunk.lock());
          // Under its lock, checked again: another process of this shard may have finished it.
          const bool done_meanwhile =
              lock && chunks_dir.kind(chunk.name()) != EntryKind::none &&
              check_chunk(dir, chunk, plan.rules, spec.base.record_trajectories).empty();
          if (!lock || done_meanwhile) {
            std::lock_guard<std::mutex> guard(progress_mutex);
            ++(lock ? outcome.chunks_resumed : outcome.chunks_elsewhere);
            skipped_models += chunk.count;
            continue;
          }
          // What a damaged or unfinished chunk left: superpose's own files go, anything else is
          // moved aside with the chunk's directory.
          const std::string kept = clear_chunk(chunks_dir, chunk);
          if (!problems[p].empty()) {
            print_err("superpose: {} (models {} to {}) is trained again: {}{}\n", chunk.dir(),
                      chunk.first, chunk.first + chunk.count - 1, problems[p],
                      kept.empty()
                          ? ""
                          : fmt::format("; what superpose cannot vouch for is kept in {}", kept));
            std::lock_guard<std::mutex> guard(progress_mutex);
            ++outcome.chunks_retrained;
          }
          mine.push_back(chunk);
          locks.push_back(std::move(lock));
        }
        if (!mine.empty()) train_chunks(backend, spec, mine, dir, plan.rules.sweep_digest);
      } catch (...) {
        std::lock_guard<std::mutex> guard(progress_mutex);
        if (!failed.exchange(true)) failure = std::current_exception();
        return;
      }
      locks.clear();
      std::lock_guard<std::mutex> guard(progress_mutex);
      for (const Chunk& c : mine) trained_models += c.count;
      trained_chunks += static_cast<int64_t>(mine.size());
      done_models += skipped_models;
      progress().done = trained_models + done_models;
      if (show_progress && !mine.empty()) {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = elapsed / static_cast<double>(trained_models) *
                           static_cast<double>(pending_models - trained_models - done_models);
        print_err("\r{}{}: {}/{} models, chunk {}/{}, {} elapsed, ETA {}    ", command,
                  sharded ? fmt::format(" shard {}/{}", shard.index, shard.count) : "",
                  trained_models + done_models, pending_models, trained_chunks, pending.size(),
                  duration_text(elapsed), duration_text(eta));
      }
    }
  };
  std::vector<std::thread> others;
  for (size_t d = 1; d < run.backends.size(); ++d)
    others.emplace_back(worker, std::ref(*run.backends[d]));
  worker(*run.backends.front());
  for (std::thread& thread : others) thread.join();
  if (show_progress && trained_models > 0) print_err("\n");
  if (failure) std::rethrow_exception(failure);
  outcome.chunks_trained = trained_chunks;
  outcome.train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (!sharded) merge_chunks(dir, plan, outcome);  // the whole sweep: every chunk is here
  return outcome;
}

SweepOutcome run_sweep(Backend& backend, const SweepSpec& spec, const RunDir& dir,
                       const std::string& command, const nlohmann::json& extra_manifest,
                       bool overwrite) {
  SweepRun run;
  run.backends = {&backend};
  run.overwrite = overwrite;
  run.extra_manifest = extra_manifest;
  return run_sweep(spec, dir, command, run);
}

SweepOutcome merge_sweep(
    const RunDir& dir,
    const std::function<void(const nlohmann::json&, const nlohmann::json&)>& check_extra) {
  try {
    if (dir.kind("sweep.json") == EntryKind::none)
      throw UsageError(
          fmt::format("merge: '{}' holds no sweep (no sweep.json): give the --out of a sweep or "
                      "phase-diagram",
                      dir.path()));
    std::unique_ptr<RunClaim> alone = dir.try_lock(kLockFile);
    if (!alone)
      throw UsageError(fmt::format(
          "merge: '{}' is in use by another superpose (a shard still training?); merge once "
          "every shard has finished",
          dir.path()));
    const Plan plan = read_plan(dir);
    if (check_extra) check_extra(plan.identity, plan.extra);
    SweepOutcome outcome;
    outcome.models = plan.identity.value("models", int64_t{0});
    outcome.chunks = static_cast<int64_t>(plan.chunks.size());
    outcome.chunks_resumed = outcome.chunks;
    merge_chunks(dir, plan, outcome);
    outcome.claim = std::move(alone);
    return outcome;
  } catch (const RunDirError& error) {
    throw UsageError(std::string("merge: ") + error.what());
  }
}

}  // namespace sp
