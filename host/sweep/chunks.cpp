// chunks.cpp — a sweep's chunks (host/sweep/plan.hpp): trained and written, their records, what a
// resume and a merge check of them, and what a retrain clears.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "host/sweep/plan.hpp"

namespace sp {

using namespace sweep_internal;

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

namespace sweep_internal {

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

}  // namespace sweep_internal

}  // namespace sp
