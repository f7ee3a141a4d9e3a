#include "host/sweep.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "host/analysis.hpp"

namespace sp {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxAxisValues = 10'000'000;
constexpr int64_t kMaxModels = 100'000'000;

std::string trim(const std::string& text) {
  const size_t a = text.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  const size_t b = text.find_last_not_of(" \t");
  return text.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& text, char delimiter) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(delimiter, start);
    parts.push_back(
        trim(text.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

double parse_number(const std::string& text, const std::string& option, const std::string& whole) {
  char* end = nullptr;
  const double value = text.empty() ? 0.0 : std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value))
    throw UsageError(
        fmt::format("{}: '{}' is not a finite number in '{}' (accepted: a value, a list a,b,c, "
                    "linspace(a,b,k), logspace(a,b,k), range(a,b[,step]))",
                    option, text, whole));
  return value;
}

int64_t parse_count(const std::string& text, const std::string& option, const std::string& whole) {
  const double k = parse_number(text, option, whole);
  if (k != std::floor(k) || k < 1 || k > static_cast<double>(kMaxAxisValues))
    throw UsageError(fmt::format("{}: the count {} in '{}' is outside the accepted range [1, {}]",
                                 option, text, whole, kMaxAxisValues));
  return static_cast<int64_t>(k);
}

}  // namespace

std::vector<double> parse_axis(const std::string& raw, const std::string& option) {
  const std::string text = trim(raw);
  if (text.empty()) throw UsageError(fmt::format("{}: the value is empty", option));
  const size_t open = text.find('(');
  if (open != std::string::npos) {
    const std::string function = trim(text.substr(0, open));
    if (text.back() != ')')
      throw UsageError(fmt::format("{}: '{}' lacks its closing parenthesis", option, text));
    const std::vector<std::string> args = split(text.substr(open + 1, text.size() - open - 2), ',');
    std::vector<double> values;
    if (function == "linspace" || function == "logspace") {
      if (args.size() != 3)
        throw UsageError(fmt::format("{}: {} takes 3 arguments (start, stop, count), got '{}'",
                                     option, function, text));
      const double a = parse_number(args[0], option, text), b = parse_number(args[1], option, text);
      const int64_t k = parse_count(args[2], option, text);
      for (int64_t i = 0; i < k; ++i) {
        // numpy's formula: start + i * step, with the last value exactly stop.
        const double x =
            k == 1
                ? a
                : (i == k - 1 ? b
                              : a + static_cast<double>(i) * (b - a) / static_cast<double>(k - 1));
        values.push_back(function == "linspace" ? x : std::pow(10.0, x));
      }
      return values;
    }
    if (function == "range") {
      if (args.size() != 2 && args.size() != 3)
        throw UsageError(
            fmt::format("{}: range takes 2 or 3 arguments (start, stop[, step]), got "
                        "'{}'",
                        option, text));
      // Whole decimal integers, counted exactly (through double, 2^53 + 1 would be 2^53 again).
      auto integer = [&](const std::string& arg) {
        const std::string digits = arg.substr(!arg.empty() && arg[0] == '-' ? 1 : 0);
        if (digits.empty() || digits.size() > 16 ||
            digits.find_first_not_of("0123456789") != std::string::npos)
          throw UsageError(fmt::format(
              "{}: range needs whole decimal integers of at most 16 digits, got '{}' in '{}'",
              option, arg, text));
        return std::stoll(arg);
      };
      const int64_t a = integer(args[0]), b = integer(args[1]);
      const int64_t step = args.size() == 3 ? integer(args[2]) : 1;
      if (step == 0)
        throw UsageError(fmt::format("{}: range's step may not be 0, in '{}'", option, text));
      const int64_t count = step > 0 ? (b > a ? (b - a + step - 1) / step : 0)
                                     : (a > b ? (a - b - step - 1) / -step : 0);
      if (count < 1 || count > kMaxAxisValues)
        throw UsageError(fmt::format("{}: '{}' gives {} values (accepted: 1 to {})", option, text,
                                     count, kMaxAxisValues));
      constexpr int64_t kExact = int64_t{1} << 53;  // doubles hold every integer up to here
      for (int64_t i = 0; i < count; ++i) {
        const int64_t value = a + i * step;
        if (value > kExact || value < -kExact)
          throw UsageError(fmt::format(
              "{}: '{}' reaches {}, beyond 2^53, where numbers are not told apart exactly", option,
              text, value));
        values.push_back(static_cast<double>(value));
      }
      return values;
    }
    throw UsageError(
        fmt::format("{}: unknown function '{}' in '{}' (accepted: linspace, logspace, range)",
                    option, function, text));
  }
  std::vector<double> values;
  for (const std::string& part : split(text, ','))
    values.push_back(parse_number(part, option, text));
  return values;
}

std::string Axis::label(size_t k) const {
  return labels.empty() ? format_number(values[k]) : labels[k];
}

namespace {

const Axis* find_axis(const std::vector<Axis>& axes, const std::string& name) {
  for (const Axis& axis : axes)
    if (axis.name == name) return &axis;
  return nullptr;
}

void require_each(const std::vector<double>& values, const std::string& option, double lo,
                  double hi, bool integer, const std::string& range_text) {
  for (double v : values)
    if (!(v >= lo && v <= hi) || (integer && v != std::floor(v)))
      throw UsageError(fmt::format("{}: {} is outside the accepted range {}", option,
                                   format_number(v), range_text));
}

}  // namespace

void set_axes(SweepSpec& spec, const SweepAxesText& text) {
  spec.axes.clear();
  Axis model{"model", {}, {}};
  for (const std::string& name : split(text.model, ',')) {
    const ModelKind kind = parse_model_kind(name, "--model");
    model.values.push_back(kind == ModelKind::relu ? 1.0 : 0.0);
    model.labels.push_back(to_string(kind));
  }
  spec.axes.push_back(model);

  Axis steps{"steps", parse_axis(text.steps, "--steps"), {}};
  require_each(steps.values, "--steps", 1, 1e9, true, "[1, 1000000000] (integers)");
  spec.axes.push_back(steps);

  Axis lr{"lr", parse_axis(text.lr, "--lr"), {}};
  require_each(lr.values, "--lr", 0, 1e3, false, "[0, 1000]");
  spec.axes.push_back(lr);

  if (!text.density.empty() && !text.sparsity.empty())
    throw UsageError("--density: give either --density or --sparsity, not both");
  if (!text.density.empty()) {
    Axis density{"density", parse_axis(text.density, "--density"), {}};
    require_each(density.values, "--density", 0, 1, false, "[0, 1]");
    spec.axes.push_back(density);
  } else if (spec.feature_sparsity.empty()) {
    Axis sparsity{
        "sparsity", parse_axis(text.sparsity.empty() ? "0" : text.sparsity, "--sparsity"), {}};
    require_each(sparsity.values, "--sparsity", 0, 1, false, "[0, 1]");
    spec.axes.push_back(sparsity);
  }

  if (spec.importance_rule == ImportanceRule::decay) {
    Axis decay{"importance_decay", parse_axis(text.importance_decay, "--importance-decay"), {}};
    require_each(decay.values, "--importance-decay", 0, 1e6, false, "[0, 1000000]");
    for (double d : decay.values)  // importance_f = d^f must be a float for every feature
      if (std::pow(d, spec.base.n_features - 1) > static_cast<double>(FLT_MAX))
        throw UsageError(fmt::format(
            "--importance-decay: {} gives feature {} the importance {}^{}, beyond float32's "
            "range (at most {:g})",
            format_number(d), spec.base.n_features - 1, format_number(d), spec.base.n_features - 1,
            static_cast<double>(FLT_MAX)));
    spec.axes.push_back(decay);
  } else if (spec.importance_rule == ImportanceRule::relative) {
    Axis relative{
        "relative_importance", parse_axis(text.relative_importance, "--relative-importance"), {}};
    require_each(relative.values, "--relative-importance", 0, 1e6, false, "[0, 1000000]");
    spec.axes.push_back(relative);
  }

  Axis seed{"seed", parse_axis(text.seed, "--seed"), {}};
  require_each(seed.values, "--seed", 0, 9007199254740992.0, true, "[0, 2^53] (integers)");
  spec.axes.push_back(seed);

  double total = 1;
  for (const Axis& axis : spec.axes) total *= static_cast<double>(axis.size());
  if (total > static_cast<double>(kMaxModels))
    throw UsageError(fmt::format(
        "--seed: the axes give {} models, more than the accepted {} per sweep (split it into "
        "several sweeps)",
        total, kMaxModels));
}

int64_t SweepSpec::model_count() const {
  int64_t total = 1;
  for (const Axis& axis : axes) total *= static_cast<int64_t>(axis.size());
  return total;
}

std::vector<size_t> SweepSpec::shape() const {
  std::vector<size_t> out;
  for (const Axis& axis : axes) out.push_back(axis.size());
  return out;
}

double SweepSpec::axis_value(int64_t id, const std::string& name, double fallback) const {
  int64_t stride = 1;  // the last axis varies fastest
  for (size_t k = axes.size(); k-- > 0;) {
    const auto size = static_cast<int64_t>(axes[k].size());
    if (axes[k].name == name) return axes[k].values[static_cast<size_t>((id / stride) % size)];
    stride *= size;
  }
  return fallback;
}

ModelSpec SweepSpec::model(int64_t id, int* steps) const {
  auto value = [&](const std::string& name, double fallback) {
    return axis_value(id, name, fallback);
  };
  const int n = base.n_features;
  ModelSpec m;
  m.seed = static_cast<uint64_t>(value("seed", 0));
  m.kind = value("model", 1) != 0 ? ModelKind::relu : ModelKind::linear;
  m.lr = value("lr", 1e-3);
  if (!feature_sparsity.empty())
    m.sparsity = feature_sparsity;
  else if (find_axis(axes, "density"))
    m.sparsity.assign(n, 1.0 - value("density", 1.0));
  else
    m.sparsity.assign(n, value("sparsity", 0.0));
  switch (importance_rule) {
    case ImportanceRule::vector:
      m.importance = importance;
      break;
    case ImportanceRule::decay: {
      const double d = value("importance_decay", 1.0);
      for (int f = 0; f < n; ++f) m.importance.push_back(std::pow(d, f));
      break;
    }
    case ImportanceRule::relative:
      m.importance.assign(n, 1.0);
      m.importance[relative_feature] = value("relative_importance", 1.0);
      break;
  }
  if (steps) *steps = steps_of(id);
  return m;
}

int SweepSpec::steps_of(int64_t id) const {
  return static_cast<int>(axis_value(id, "steps", base.steps));
}

std::vector<std::pair<std::string, std::string>> analysis_columns(const GroupSpec& group,
                                                                  const ModelResult& result) {
  const int n = group.n_features, m = group.n_hidden;
  std::vector<std::pair<std::string, std::string>> columns;
  if (n == 2 && m == 1)
    columns.push_back({"phase", analysis::phase_2to1(result.W[0], result.W[1])});
  const analysis::FeatureGeometry g = analysis::feature_geometry(result.W, n, m);
  for (int f = 0; f < n; ++f)
    columns.push_back({fmt::format("norm_{}", f), format_number(g.norm[f])});
  for (int f = 0; f < n; ++f)
    columns.push_back({fmt::format("interference_{}", f), format_number(g.interference[f])});
  for (int f = 0; f < n; ++f)
    columns.push_back({fmt::format("dimensionality_{}", f), format_number(g.dimensionality[f])});
  columns.push_back({"dimensions_per_feature", format_number(g.dimensions_per_feature)});
  return columns;
}

int Table::column(const std::string& name) const {
  for (size_t k = 0; k < header.size(); ++k)
    if (header[k] == name) return static_cast<int>(k);
  throw std::runtime_error(fmt::format("results table has no column '{}'", name));
}

Table read_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", path));
  Table table;
  std::string line;
  if (std::getline(in, line)) table.header = split(line, ',');
  while (std::getline(in, line))
    if (!line.empty()) table.rows.push_back(split(line, ','));
  return table;
}

namespace {

struct Chunk {
  int64_t first = 0, count = 0;
  int steps = 0;
  std::string dir() const { return fmt::format("chunks/{:012d}", first); }
};

// Models per chunk when the user does not say: on the GPU as many as one launch plan takes; on the
// CPU about 2e9 feature-sample-steps (some seconds on 2 cores), so that progress and resume have
// a useful grain.
int64_t default_chunk_models(const Backend& backend, const SweepSpec& spec, int steps) {
  if (backend.name() == "cuda") return 1 << 18;
  const double work = static_cast<double>(steps) * spec.base.train_rows() *
                      (spec.base.n_features + spec.base.n_hidden);
  return static_cast<int64_t>(std::clamp(2e9 / std::max(work, 1.0), 1.0, 65536.0));
}

std::vector<Chunk> plan_chunks(const Backend& backend, const SweepSpec& spec) {
  std::vector<Chunk> chunks;
  const int64_t total = spec.model_count();
  for (int64_t id = 0; id < total;) {
    const int steps = spec.steps_of(id);
    const int64_t limit =
        spec.chunk_models > 0 ? spec.chunk_models : default_chunk_models(backend, spec, steps);
    Chunk chunk{id, 0, steps};
    while (id < total && chunk.count < limit && spec.steps_of(id) == steps) {
      ++chunk.count;
      ++id;
    }
    chunks.push_back(chunk);
  }
  return chunks;
}

nlohmann::json axes_json(const SweepSpec& spec) {
  nlohmann::json axes = nlohmann::json::array();
  for (const Axis& axis : spec.axes) {
    nlohmann::json a = {{"name", axis.name}, {"values", axis.values}};
    if (!axis.labels.empty()) a["labels"] = axis.labels;
    axes.push_back(a);
  }
  return axes;
}

// The results.csv header every chunk of a sweep with this base group must have.
std::string expected_header(const GroupSpec& base) {
  ModelResult zero;
  zero.W.assign(static_cast<size_t>(base.n_features) * base.n_hidden, 0.0);
  zero.b.assign(static_cast<size_t>(base.n_features), 0.0);
  std::vector<std::string> names;
  for (const auto& column : analysis_columns(base, zero)) names.push_back(column.first);
  return results_header(base.n_features, base.n_hidden, names);
}

// The files a chunk has: results.csv, and its trajectories when recorded.
std::vector<std::string> chunk_files(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "chunk.json" && entry.is_regular_file() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// chunk.json, written after every other file of the chunk: whose chunk it is (the sweep's digest,
// its ids) and each file's size and checksum as written. A chunk without it never finished.
void write_chunk_record(const RunDir& dir, const Chunk& chunk, const std::string& sweep_digest,
                        bool trajectories) {
  nlohmann::json files = nlohmann::json::object();
  for (const std::string& name : chunk_files(dir.path())) {
    const FileDigest digest = digest_file((fs::path(dir.path()) / name).string());
    files[name] = {{"bytes", digest.bytes}, {"xxh3", digest.xxh3}};
  }
  const nlohmann::json record = {{"sweep", sweep_digest},        {"first_id", chunk.first},
                                 {"models", chunk.count},        {"steps", chunk.steps},
                                 {"trajectories", trajectories}, {"files", files}};
  dir.write("chunk.json", record.dump(2) + "\n");
}

// Why a chunk found in the directory cannot be trusted ("" when it can): it must prove whole and
// its own — its record present and this sweep's, for these ids, every file with the size and
// checksum it was written with, its results.csv the sweep's columns and exactly its ids, once each
// and in order — and hold what this run asks for (trajectories).
std::string check_chunk(const fs::path& dir, const Chunk& chunk, const std::string& sweep_digest,
                        const std::string& header, bool want_trajectories) {
  nlohmann::json record;
  {
    std::ifstream in(dir / "chunk.json");
    if (!in) return "it has no chunk.json (it was interrupted before it was complete)";
    try {
      in >> record;
    } catch (const std::exception&) {
      return "its chunk.json is damaged";
    }
  }
  if (!record.is_object() || !record.contains("files") || !record["files"].is_object())
    return "its chunk.json is damaged";
  if (record.value("sweep", "") != sweep_digest) return "its chunk.json is another sweep's";
  if (record.value("first_id", int64_t{-1}) != chunk.first ||
      record.value("models", int64_t{-1}) != chunk.count)
    return fmt::format(
        "its chunk.json is for models {} to {}", record.value("first_id", int64_t{-1}),
        record.value("first_id", int64_t{-1}) + record.value("models", int64_t{0}) - 1);
  if (want_trajectories && !record.value("trajectories", false))
    return "it has no trajectories, and --trajectories asks for them";
  if (!record["files"].contains("results.csv")) return "its chunk.json lists no results.csv";
  std::vector<std::string> listed;
  for (const auto& [name, expected] : record["files"].items()) {
    listed.push_back(name);
    if (!fs::is_regular_file(dir / name)) return fmt::format("{} is missing", name);
    try {
      const FileDigest digest = digest_file((dir / name).string());
      if (digest.bytes != expected.value("bytes", uint64_t{0}) ||
          digest.xxh3 != expected.value("xxh3", ""))
        return fmt::format(
            "{} is not the file that was written ({} bytes now, {} then; checksum "
            "{})",
            name, digest.bytes, expected.value("bytes", uint64_t{0}),
            digest.xxh3 == expected.value("xxh3", "") ? "equal" : "differs");
    } catch (const std::exception& error) {
      return error.what();
    }
  }
  std::sort(listed.begin(), listed.end());
  if (listed != chunk_files(dir)) return "it holds files its chunk.json does not list";
  std::ifstream in(dir / "results.csv");
  std::string line;
  if (!std::getline(in, line) || line != header)
    return "its results.csv does not have this sweep's columns";
  const size_t columns = std::count(header.begin(), header.end(), ',') + 1;
  int64_t expected_id = chunk.first;
  while (std::getline(in, line)) {
    const std::vector<std::string> fields = split(line, ',');
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

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds)) return "?";
  if (seconds < 60) return fmt::format("{:.0f} s", seconds);
  if (seconds < 3600)
    return fmt::format("{:.0f} min {:02.0f} s", std::floor(seconds / 60), std::fmod(seconds, 60));
  return fmt::format("{:.0f} h {:02.0f} min", std::floor(seconds / 3600),
                     std::fmod(seconds / 60, 60));
}

}  // namespace

int64_t largest_chunk(const Backend& backend, const SweepSpec& spec) {
  int64_t largest = 0;
  for (const Chunk& chunk : plan_chunks(backend, spec)) largest = std::max(largest, chunk.count);
  return largest;
}

int most_steps(const SweepSpec& spec) {
  for (const Axis& axis : spec.axes)
    if (axis.name == "steps")
      return static_cast<int>(*std::max_element(axis.values.begin(), axis.values.end()));
  return spec.base.steps;
}

SweepOutcome run_sweep(Backend& backend, const SweepSpec& spec, const RunDir& dir,
                       const std::string& command, const nlohmann::json& extra_manifest,
                       bool overwrite, const std::function<void()>& after_claim) {
  const int64_t total = spec.model_count();
  // Validate every distinct combination cheaply: the first model of each chunk carries all but the
  // seed, and validate() checks the values that the axes produce.
  const std::vector<Chunk> chunks = plan_chunks(backend, spec);

  GroupSpec base = spec.base;
  base.models.clear();
  nlohmann::json sweep = {
      {"command", command},
      {"version", SUPERPOSE_VERSION},
      {"backend", backend.name()},
      {"group", group_json(base)},
      {"axes", axes_json(spec)},
      {"shape", spec.shape()},
      {"models", total},
      {"importance_rule", spec.importance_rule == ImportanceRule::vector  ? "vector"
                          : spec.importance_rule == ImportanceRule::decay ? "decay"
                                                                          : "relative"},
      {"chunk_models", chunks.front().count}};
  sweep["group"].erase("models");
  sweep["group"].erase("steps");
  if (spec.importance_rule == ImportanceRule::vector) sweep["importance"] = spec.importance;
  if (spec.importance_rule == ImportanceRule::relative)
    sweep["relative_feature"] = spec.relative_feature;
  if (!spec.feature_sparsity.empty()) sweep["feature_sparsity"] = spec.feature_sparsity;

  // The directory is this sweep's alone while it runs (a lock), and resumes only the same sweep.
  const fs::path root(dir.path());
  SweepOutcome outcome;
  outcome
      .claim = claim_run_dir(dir, "sweep.json", sweep, overwrite, [&](const nlohmann::json& old) {
    if (old.is_object() && old.value("backend", "") != backend.name()) {
      nlohmann::json same_backend = old;
      same_backend["backend"] = backend.name();
      if (same_backend == sweep)
        throw UsageError(fmt::format(
            "--backend: '{}' holds this sweep's chunks trained by the {} backend; resume with "
            "--backend {} or choose another --out",
            dir.path(), old.value("backend", ""), old.value("backend", "")));
    }
    throw UsageError(fmt::format(
        "--out: '{}' holds a different sweep (see its sweep.json); rerun that sweep's own command "
        "to resume it, choose another --out, or add --overwrite to replace it",
        dir.path()));
  });
  if (after_claim) after_claim();
  const std::string sweep_digest = digest_text(sweep.dump());
  const std::string header = expected_header(spec.base);

  outcome.models = total;
  outcome.chunks = static_cast<int64_t>(chunks.size());
  const bool show_progress = ::isatty(STDERR_FILENO) == 1;
  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0, trained = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Chunk& chunk = chunks[c];
    if (fs::exists(root / chunk.dir())) {
      const std::string problem = check_chunk(root / chunk.dir(), chunk, sweep_digest, header,
                                              spec.base.record_trajectories);
      if (problem.empty()) {
        ++outcome.chunks_resumed;
        done += chunk.count;
        continue;
      }
      fmt::print(stderr, "superpose: {} (models {} to {}) is trained again: {}\n", chunk.dir(),
                 chunk.first, chunk.first + chunk.count - 1, problem);
      fs::remove_all(root / chunk.dir());
      ++outcome.chunks_retrained;
    }
    GroupSpec group = spec.base;
    group.steps = chunk.steps;
    group.models.clear();
    group.models.reserve(static_cast<size_t>(chunk.count));
    for (int64_t id = chunk.first; id < chunk.first + chunk.count; ++id)
      group.models.push_back(spec.model(id, nullptr));
    validate(group);
    const std::vector<ModelResult> results = backend.train(group);
    const RunDir chunk_dir = dir.subdir(chunk.dir());
    if (group.record_trajectories) write_trajectories(chunk_dir, group, results);
    std::vector<ResultRow> rows;
    rows.reserve(results.size());
    for (size_t i = 0; i < results.size(); ++i)
      rows.push_back({chunk.first + static_cast<int64_t>(i), &group, &group.models[i], &results[i],
                      analysis_columns(group, results[i])});
    chunk_dir.write("results.csv", results_csv(rows));
    write_chunk_record(chunk_dir, chunk, sweep_digest, group.record_trajectories);  // last
    done += chunk.count;
    trained += chunk.count;
    if (show_progress) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double eta = elapsed / static_cast<double>(trained) * static_cast<double>(total - done);
      fmt::print(stderr, "\r{}: {}/{} models, chunk {}/{}, {} elapsed, ETA {}    ", command, done,
                 total, c + 1, chunks.size(), duration_text(elapsed), duration_text(eta));
      std::fflush(stderr);
    }
  }
  if (show_progress && trained > 0) fmt::print(stderr, "\n");
  outcome.train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // All rows, by id, streamed from the chunks into one file written then renamed.
  dir.write_with("results.csv", [&](std::ostream& out) {
    int status_column = -1;
    for (size_t c = 0; c < chunks.size(); ++c) {
      std::ifstream in(root / chunks[c].dir() / "results.csv");
      std::string line;
      // Every chunk was checked (or just written) under this run's lock: its header is the
      // sweep's, its rows its own ids in order. Counted again here, as the merge's last guard.
      if (!std::getline(in, line) || line != header)
        throw std::runtime_error(chunks[c].dir() + "/results.csv changed during the run");
      if (c == 0) {
        out << line << '\n';
        const std::vector<std::string> names = split(line, ',');
        for (size_t k = 0; k < names.size(); ++k)
          if (names[k] == "status") status_column = static_cast<int>(k);
      }
      int64_t rows = 0;
      while (std::getline(in, line)) {
        out << line << '\n';
        ++rows;
        const std::vector<std::string> fields = split(line, ',');
        if (status_column >= 0 && fields.at(static_cast<size_t>(status_column)) != "ok")
          ++outcome.diverged;
      }
      if (rows != chunks[c].count)
        throw std::runtime_error(chunks[c].dir() + "/results.csv changed during the run");
    }
  });

  nlohmann::json manifest = sweep;
  manifest["device"] = backend.device();
  manifest["diverged"] = outcome.diverged;
  manifest["chunks"] = nlohmann::json::array();
  for (const Chunk& chunk : chunks)
    manifest["chunks"].push_back({{"dir", chunk.dir()},
                                  {"first_id", chunk.first},
                                  {"models", chunk.count},
                                  {"steps", chunk.steps}});
  manifest["timings_s"] = {{"train", outcome.train_seconds},
                           {"chunks_resumed", outcome.chunks_resumed},
                           {"chunks_retrained", outcome.chunks_retrained}};
  manifest["ids_are"] =
      "row-major over axes (the first varies slowest): results.csv rows reshape to `shape`";
  manifest.update(extra_manifest);
  dir.write("manifest.json", manifest.dump(2) + "\n");
  outcome.manifest = manifest;
  return outcome;
}

}  // namespace sp
