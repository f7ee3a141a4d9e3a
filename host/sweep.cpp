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
#include <tuple>

#include "host/analysis.hpp"
#include "host/data.hpp"  // kWeightDecay

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

  Axis weight_decay{"weight_decay", parse_axis(text.weight_decay, "--weight-decay"), {}};
  require_each(weight_decay.values, "--weight-decay", 0, 1e3, false, "[0, 1000]");
  spec.axes.push_back(weight_decay);

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
  if (!text.varied_density.empty() && !text.varied_sparsity.empty())
    throw UsageError(
        "--varied-density: give either --varied-density or --varied-sparsity, not both");
  for (const auto& [option, name, axis_text] :
       {std::tuple<const char*, const char*, const std::string*>{
            "--varied-sparsity", "varied_sparsity", &text.varied_sparsity},
        {"--varied-density", "varied_density", &text.varied_density}}) {
    if (axis_text->empty()) continue;
    Axis varied{name, parse_axis(*axis_text, option), {}};
    require_each(varied.values, option, 0, 1, false, "[0, 1]");
    spec.axes.push_back(varied);
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

std::vector<std::string> split_csv_line(const std::string& line) { return split(line, ','); }

}  // namespace sp
