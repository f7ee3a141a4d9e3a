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
#include <tuple>

#include "host/core/analysis.hpp"
#include "host/core/data.hpp"  // kWeightDecay
#include "host/core/parse.hpp"
#include "host/sweep/sweep.hpp"

namespace sp {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxAxisValues = 10'000'000;
constexpr int64_t kMaxModels = 100'000'000;

std::string accepted_forms() {
  return "accepted: a value, a list a,b,c, linspace(a,b,k), logspace(a,b,k), range(a,b[,step])";
}

double parse_number(const std::string& text, const std::string& option, const std::string& whole) {
  double value = 0;
  const std::string problem = real_problem(text, &value);
  if (!problem.empty())
    throw UsageError(fmt::format("{}: {} in '{}' ({})", option, problem, whole, accepted_forms()));
  return value;
}

int64_t parse_count(const std::string& text, const std::string& option, const std::string& whole) {
  long double k = 0;
  const std::string problem = whole_problem(text, 1, kMaxAxisValues, nullptr, &k);
  if (!problem.empty())
    throw UsageError(
        fmt::format("{}: the count {} in '{}' is not accepted (a whole number in "
                    "[1, {}])",
                    option, text, whole, kMaxAxisValues));
  return static_cast<int64_t>(k);
}

}  // namespace

std::vector<double> parse_axis(const std::string& raw, const std::string& option, bool integers,
                               std::string* generator) {
  const std::string text = trim(raw);
  if (generator) generator->clear();
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
      if (generator)
        *generator = fmt::format("{}({},{},{})", function, format_number(a), format_number(b), k);
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
        long double value = 0;
        const std::string digits = arg.substr(!arg.empty() && arg[0] == '-' ? 1 : 0);
        if (digits.size() > 16 || !whole_problem(arg, -1e16L, 1e16L, nullptr, &value).empty() ||
            arg[0] == '+')
          throw UsageError(fmt::format(
              "{}: range needs whole decimal integers of at most 16 digits, got '{}' in '{}'",
              option, arg, text));
        return static_cast<int64_t>(value);
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
      if (generator) *generator = fmt::format("range({},{},{})", a, b, step);
      return values;
    }
    throw UsageError(
        fmt::format("{}: unknown function '{}' in '{}' (accepted: linspace, logspace, range)",
                    option, function, text));
  }
  try {
    return parse_list(text, option, integers);
  } catch (const UsageError& error) {
    throw UsageError(fmt::format("{} ({})", error.what(), accepted_forms()));
  }
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

std::string option_of(const std::string& axis_name) {
  std::string option = "--" + axis_name;
  std::replace(option.begin(), option.end(), '_', '-');
  return option;
}

void require_each(const std::vector<double>& values, const std::string& option, double lo,
                  double hi, bool integer, const std::string& range_text) {
  for (double v : values)
    if (!(v >= lo && v <= hi) || (integer && v != std::floor(v)))
      throw UsageError(fmt::format("{}: {} is outside the accepted range {}", option,
                                   format_number(v), range_text));
}

// Whole-number axes: their lists take whole decimal numbers only, as train's options do.
bool integer_axis(const std::string& name) { return name == "steps" || name == "seed"; }

Axis make_axis(const SweepSpec& spec, const std::string& name, const std::string& text) {
  Axis axis{name, {}, {}, {}};
  axis.values = parse_axis(text, option_of(name), integer_axis(name), &axis.generator);
  check_axis(spec, axis);
  return axis;
}

}  // namespace

void check_axis(const SweepSpec& spec, const Axis& axis) {
  const std::string option = option_of(axis.name);
  const std::string& name = axis.name;
  if (axis.values.empty()) throw UsageError(fmt::format("{}: the axis has no values", option));
  if (name == "model") {
    if (axis.labels.size() != axis.values.size())
      throw UsageError("--model: every value needs its label");
    for (size_t k = 0; k < axis.values.size(); ++k) {
      const ModelKind kind = parse_model_kind(axis.labels[k], "--model");
      if (axis.values[k] != static_cast<double>(kind))
        throw UsageError("--model: a value does not match its label");
    }
    return;
  }
  if (!axis.labels.empty()) throw UsageError(fmt::format("{}: the axis has no labels", option));
  if (name == "steps") {
    require_each(axis.values, option, 1, 1e9, true, "[1, 1000000000] (integers)");
  } else if (name == "lr" || name == "weight_decay") {
    require_each(axis.values, option, 0, 1e3, false, "[0, 1000]");
  } else if (name == "density" || name == "sparsity" || name == "varied_sparsity" ||
             name == "varied_density") {
    require_each(axis.values, option, 0, 1, false, "[0, 1]");
  } else if (name == "importance_decay") {
    require_each(axis.values, option, 0, 1e6, false, "[0, 1000000]");
    for (double d : axis.values)  // importance_f = d^f must be a float for every feature
      if (std::pow(d, spec.base.n_features - 1) > static_cast<double>(FLT_MAX))
        throw UsageError(fmt::format(
            "--importance-decay: {} gives feature {} the importance {}^{}, beyond float32's "
            "range (at most {:g})",
            format_number(d), spec.base.n_features - 1, format_number(d), spec.base.n_features - 1,
            static_cast<double>(FLT_MAX)));
  } else if (name == "relative_importance") {
    require_each(axis.values, option, 0, 1e6, false, "[0, 1000000]");
  } else if (name == "seed") {
    require_each(axis.values, option, 0, 9007199254740992.0, true, "[0, 2^53] (integers)");
  } else {
    throw UsageError(fmt::format("{}: not an axis superpose sweeps", option));
  }
}

nlohmann::json axis_json(const Axis& axis) {
  nlohmann::json j = {{"name", axis.name}, {"size", axis.size()}};
  if (!axis.generator.empty())
    j["generator"] = axis.generator;
  else
    j["values"] = axis.values;
  if (!axis.labels.empty()) j["labels"] = axis.labels;
  return j;
}

Axis axis_from_json(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("size") ||
      !j["size"].is_number_unsigned())
    throw std::runtime_error("an axis lacks its name or size");
  Axis axis{j["name"].get<std::string>(), {}, {}, {}};
  for (const auto& [key, value] : j.items())
    if (key != "name" && key != "size" && key != "generator" && key != "values" && key != "labels")
      throw std::runtime_error(fmt::format("axis {} has a field '{}'", axis.name, key));
  try {
    if (j.contains("generator") == j.contains("values"))
      throw std::runtime_error("needs its generator or its values");
    if (j.contains("generator")) {
      if (!j["generator"].is_string()) throw std::runtime_error("its generator is not text");
      std::string canonical;
      axis.values = parse_axis(j["generator"].get<std::string>(), axis.name, false, &canonical);
      if (canonical != j["generator"].get<std::string>())
        throw std::runtime_error("its generator is not written as superpose writes it");
      axis.generator = canonical;
    } else {
      if (!j["values"].is_array()) throw std::runtime_error("its values are not a list");
      for (const auto& value : j["values"]) {
        if (!value.is_number()) throw std::runtime_error("a value is not a number");
        axis.values.push_back(value.get<double>());
      }
    }
    if (j.contains("labels")) {
      if (!j["labels"].is_array()) throw std::runtime_error("its labels are not a list");
      for (const auto& label : j["labels"]) {
        if (!label.is_string()) throw std::runtime_error("a label is not text");
        axis.labels.push_back(label.get<std::string>());
      }
    }
  } catch (const std::exception& error) {  // UsageError from the parser, or the checks above
    throw std::runtime_error(fmt::format("axis {}: {}", axis.name, error.what()));
  }
  if (axis.size() != j["size"].get<size_t>())
    throw std::runtime_error(fmt::format("axis {} has {} values, not its size {}", axis.name,
                                         axis.size(), j["size"].get<size_t>()));
  return axis;
}

void set_axes(SweepSpec& spec, const SweepAxesText& text) {
  spec.axes.clear();
  Axis model{"model", {}, {}, {}};
  for (const std::string& name : split(text.model, ',')) {
    const ModelKind kind = parse_model_kind(name, "--model");
    model.values.push_back(static_cast<double>(kind));
    model.labels.push_back(to_string(kind));
  }
  spec.axes.push_back(model);
  spec.axes.push_back(make_axis(spec, "steps", text.steps));
  spec.axes.push_back(make_axis(spec, "lr", text.lr));
  spec.axes.push_back(make_axis(spec, "weight_decay", text.weight_decay));

  if (!text.density.empty() && !text.sparsity.empty())
    throw UsageError("--density: give either --density or --sparsity, not both");
  if (!text.density.empty())
    spec.axes.push_back(make_axis(spec, "density", text.density));
  else if (spec.feature_sparsity.empty())
    spec.axes.push_back(make_axis(spec, "sparsity", text.sparsity.empty() ? "0" : text.sparsity));
  if (!text.varied_density.empty() && !text.varied_sparsity.empty())
    throw UsageError(
        "--varied-density: give either --varied-density or --varied-sparsity, not both");
  if (!text.varied_sparsity.empty())
    spec.axes.push_back(make_axis(spec, "varied_sparsity", text.varied_sparsity));
  if (!text.varied_density.empty())
    spec.axes.push_back(make_axis(spec, "varied_density", text.varied_density));

  if (spec.importance_rule == ImportanceRule::decay)
    spec.axes.push_back(make_axis(spec, "importance_decay", text.importance_decay));
  else if (spec.importance_rule == ImportanceRule::relative)
    spec.axes.push_back(make_axis(spec, "relative_importance", text.relative_importance));

  spec.axes.push_back(make_axis(spec, "seed", text.seed));

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

namespace {
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
}  // namespace

uint64_t cell_stream_seed(uint64_t seed, int64_t cell) {
  return splitmix64(splitmix64(static_cast<uint64_t>(cell)) ^ seed);
}

ModelSpec SweepSpec::model(int64_t id, int* steps) const {
  auto value = [&](const std::string& name, double fallback) {
    return axis_value(id, name, fallback);
  };
  const int n = base.n_features;
  ModelSpec m;
  if (!init_W.slices.empty() || !init_b.slices.empty() || !data.slices.empty()) {
    const std::vector<size_t> sweep_shape = shape();  // replayed arrays: this model's slices
    if (!init_W.slices.empty()) m.init_W = slice_of(init_W, sweep_shape, id);
    if (!init_b.slices.empty()) m.init_b = slice_of(init_b, sweep_shape, id);
    if (!data.slices.empty()) m.data = slice_of(data, sweep_shape, id);
  }
  m.seed = static_cast<uint64_t>(value("seed", 0));
  if (independent_cells) {  // the seed axis is the last: a cell is a run of its values
    const Axis* seed = find_axis(axes, "seed");
    m.seed = cell_stream_seed(m.seed, id / static_cast<int64_t>(seed ? seed->size() : 1));
  }
  m.kind = static_cast<ModelKind>(static_cast<int>(value("model", 1)));
  m.lr = value("lr", 1e-3);
  m.weight_decay = value("weight_decay", kWeightDecay);
  if (!feature_sparsity.empty())
    m.sparsity = feature_sparsity;
  else if (find_axis(axes, "density"))
    m.sparsity.assign(n, 1.0 - value("density", 1.0));
  else
    m.sparsity.assign(n, value("sparsity", 0.0));
  if (find_axis(axes, "varied_sparsity"))
    m.sparsity[varied_feature] = value("varied_sparsity", 0.0);
  else if (find_axis(axes, "varied_density"))
    m.sparsity[varied_feature] = 1.0 - value("varied_density", 1.0);
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

Table read_csv(const RunDir& dir, const std::string& name) {
  const std::unique_ptr<std::istream> in = dir.open(name);
  Table table;
  std::string line;
  if (std::getline(*in, line)) table.header = split(line, ',');
  while (std::getline(*in, line))
    if (!line.empty()) table.rows.push_back(split(line, ','));
  return table;
}

std::vector<std::string> split_csv_line(const std::string& line) { return split(line, ','); }

namespace {

std::vector<double> parse_vector(const std::string& text, const std::string& option, int n) {
  std::vector<double> values = parse_axis(text, option);
  if (values.size() == 1) values.assign(static_cast<size_t>(n), values[0]);  // one broadcasts
  if (static_cast<int>(values.size()) != n)
    throw UsageError(
        fmt::format("{}: expected {} values (one per feature, or one to broadcast), "
                    "got {}",
                    option, n, values.size()));
  return values;
}

}  // namespace

SweepSpec make_sweep_spec(const GroupSpec& group, const SweepOptionsText& o) {
  SweepSpec spec;
  spec.base = group;
  GroupSpec& g = spec.base;
  if (g.snapshot_every != 0 && !g.record_trajectories)
    throw UsageError("--snapshot-every: goes with --trajectories, which is not given");
  // The shape first: the vectors below depend on it. (A sweep's steps are its --steps axis, each
  // value checked against --warmup-steps below; the base group's own steps are not used.)
  g.steps = std::max(g.steps, g.warmup_steps + 1);
  // Replayed data sets the points, which the checks below read: its file first.
  npy::Array data_file;
  if (!o.data_file.empty()) {
    if (g.mode != DataMode::fixed)
      throw UsageError("--data: replayed data trains in the fixed data mode (--data-mode fixed)");
    data_file = read_sweep_array(o.data_file, "--data");
    const size_t rank = data_file.shape.size();
    const size_t rows = rank >= 2 ? data_file.shape[rank - 2] : 0;
    if (rows < 1 || rows > static_cast<size_t>(1 << 24))
      throw UsageError(
          fmt::format("--data: expected shape (..., points, {}) with 1 to {} points, "
                      "got ({})",
                      g.n_features, 1 << 24, fmt::join(data_file.shape, ", ")));
    g.points = static_cast<int>(rows);
  }
  validate(g);
  const int n = g.n_features;
  const int rules = !o.importance.empty() + !o.axes.importance_decay.empty() +
                    !o.axes.relative_importance.empty();
  if (rules > 1)
    throw UsageError(
        "--importance: give one of --importance, --importance-decay, --relative-importance");
  if (o.relative_feature >= 0 && o.axes.relative_importance.empty())
    throw UsageError("--relative-feature: goes with --relative-importance, which is not given");
  if (!o.axes.importance_decay.empty()) {
    spec.importance_rule = ImportanceRule::decay;
  } else if (!o.axes.relative_importance.empty()) {
    spec.importance_rule = ImportanceRule::relative;
    spec.relative_feature = o.relative_feature < 0 ? n - 1 : o.relative_feature;
    if (spec.relative_feature >= n)
      throw UsageError(fmt::format("--relative-feature: {} is outside the accepted range [0, {}]",
                                   spec.relative_feature, n - 1));
  } else {
    spec.importance = o.importance.empty() ? std::vector<double>(n, 1.0)
                                           : parse_vector(o.importance, "--importance", n);
  }
  const bool varied = !o.axes.varied_sparsity.empty() || !o.axes.varied_density.empty();
  if (o.varied_feature >= 0 && !varied)
    throw UsageError(
        "--varied-feature: goes with --varied-sparsity or --varied-density, neither is given");
  if (varied) {
    spec.varied_feature = o.varied_feature < 0 ? n - 1 : o.varied_feature;
    if (spec.varied_feature >= n)
      throw UsageError(fmt::format("--varied-feature: {} is outside the accepted range [0, {}]",
                                   spec.varied_feature, n - 1));
  }
  if (!o.feature_sparsity.empty()) {
    if (!o.axes.density.empty() || !o.axes.sparsity.empty())
      throw UsageError(
          "--feature-sparsity: give either it or --sparsity/--density (an axis), not both");
    spec.feature_sparsity = parse_vector(o.feature_sparsity, "--feature-sparsity", n);
    for (double value : spec.feature_sparsity)
      if (!(value >= 0 && value <= 1))
        throw UsageError(fmt::format("--feature-sparsity: {} is outside the accepted range [0, 1]",
                                     format_number(value)));
  }
  if (o.chunk_models < 0)
    throw UsageError(
        fmt::format("--chunk-models: {} is not accepted (0 = automatic, or more)", o.chunk_models));
  spec.chunk_models = o.chunk_models;
  if (o.cell_streams != "shared" && o.cell_streams != "independent")
    throw UsageError(fmt::format(
        "--cell-streams: '{}' is not accepted (shared: a seed's streams the same in every cell; "
        "independent: each cell's own)",
        o.cell_streams));
  spec.independent_cells = o.cell_streams == "independent";
  set_axes(spec, o.axes);  // every value of every axis checked: each model is a combination
  const std::vector<size_t> sweep_shape = spec.shape();
  std::vector<std::string> axis_names;
  for (const Axis& axis : spec.axes) axis_names.push_back(axis.name);
  const auto features = static_cast<size_t>(g.n_features), hidden = static_cast<size_t>(g.n_hidden);
  if (!o.init_W_file.empty())
    spec.init_W = make_sweep_array(read_sweep_array(o.init_W_file, "--init-W"), "--init-W",
                                   sweep_shape, axis_names, {hidden, features});
  if (!o.init_b_file.empty())
    spec.init_b = make_sweep_array(read_sweep_array(o.init_b_file, "--init-b"), "--init-b",
                                   sweep_shape, axis_names, {features});
  if (!o.data_file.empty())
    spec.data = make_sweep_array(std::move(data_file), "--data", sweep_shape, axis_names,
                                 {static_cast<size_t>(g.points), features});
  for (const Axis& axis : spec.axes)
    if (axis.name == "steps")
      for (double steps : axis.values)
        if (g.warmup_steps >= steps)
          throw UsageError(fmt::format(
              "--warmup-steps: {} is not fewer than the {} steps of some models (--steps)",
              g.warmup_steps, format_number(steps)));
  GroupSpec probe = g;
  probe.models.push_back(spec.model(0, nullptr));
  validate(probe);
  return spec;
}

}  // namespace sp
