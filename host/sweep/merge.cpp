// merge.cpp — `superpose merge DIR` (host/sweep/sweep.hpp: merge_sweep) and the merge that ends a
// whole sweep: the sweep read back from its own records, every chunk checked, results.csv written
// from their rows by id, or nothing.
#include <fmt/format.h>

#include <set>

#include "host/core/job.hpp"
#include "host/sweep/plan.hpp"

namespace sp {

namespace sweep_internal {

namespace {

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

}  // namespace

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

namespace {

// Every chunk of the plan checked (as a resume checks it): what was found of each — the devices
// that trained them, each results.csv's digest — or MergeIncomplete naming the missing ids.
struct Checked {
  std::set<std::pair<std::string, std::string>> devices;  // backend, device
  std::vector<FileDigest> results;                        // each chunk's results.csv, in order
};

Checked check_every_chunk(const RunDir& dir, const Plan& plan) {
  Checked found;
  std::set<std::pair<std::string, std::string>>& devices = found.devices;
  std::vector<FileDigest>& checked = found.results;
  std::vector<std::string> missing;
  std::string first_reason;
  int64_t missing_chunks = 0, expected_first = 0;
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

  return found;
}

// The manifest, whole before anything is written: the identity, what trained the chunks, the
// chunks, the manifest's additions.
nlohmann::json merged_manifest(const Plan& plan, const Checked& found) {
  const std::set<std::pair<std::string, std::string>>& devices = found.devices;
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

  return manifest;
}

// All rows, by id, streamed from the chunks into one file written then renamed: every id of
// [0, total) once, in order, the bytes copied the bytes checked — or nothing is written.
int64_t write_rows(const RunDir& dir, const Plan& plan, const std::vector<FileDigest>& checked) {
  int64_t diverged = 0;
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
        if (status_column >= 0 && fields.at(static_cast<size_t>(status_column)) != "ok") ++diverged;
      }
      if (id != chunk.first + chunk.count || !(copied.result() == checked[c]))
        throw std::runtime_error(chunk.dir() + "/results.csv changed during the merge");
    }
  });
  return diverged;
}

}  // namespace

void merge_chunks(const RunDir& dir, const Plan& plan, SweepOutcome& outcome) {
  const Checked found = check_every_chunk(dir, plan);
  nlohmann::json manifest = merged_manifest(plan, found);
  outcome.diverged = write_rows(dir, plan, found.results);
  manifest["diverged"] = outcome.diverged;
  manifest["timings_s"] = {{"train", outcome.train_seconds},
                           {"chunks_resumed", outcome.chunks_resumed},
                           {"chunks_retrained", outcome.chunks_retrained}};
  dir.write("manifest.json", manifest.dump(2) + "\n");
  outcome.manifest = manifest;
  outcome.merged = true;
}

}  // namespace sweep_internal

using namespace sweep_internal;

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
