// identity.cpp — what a sweep is (host/sweep/plan.hpp): its identity (sweep.json), read back
// exactly, and the chunk plan that follows from it.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "host/sweep/plan.hpp"

namespace sp {

using namespace sweep_internal;

namespace sweep_internal {

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

}  // namespace sweep_internal

namespace {

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
  if (spec.independent_cells) sweep["cell_streams"] = "independent";  // absent: shared (older)
  // Replayed arrays: their shape and digest (a resume must be given the same values).
  for (const auto& [key, array] :
       {std::pair{"init_W", &spec.init_W}, {"init_b", &spec.init_b}, {"data", &spec.data}})
    if (array->given())
      sweep[key] = {
          {"shape", array->shape}, {"model_rank", array->model_rank}, {"digest", array->digest}};
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
  for (const auto& [key, array] :
       {std::pair{"init_W", &spec.init_W}, {"init_b", &spec.init_b}, {"data", &spec.data}})
    if (j.contains(key)) {
      const nlohmann::json& a = j[key];
      if (!a.is_object() || !a.contains("shape") || !a.contains("model_rank") ||
          !a.contains("digest") || !a["shape"].is_array() || !a["digest"].is_string() ||
          !a["model_rank"].is_number_unsigned())
        throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
      array->shape = a["shape"].get<std::vector<size_t>>();
      array->model_rank = a["model_rank"].get<size_t>();
      array->digest = a["digest"].get<std::string>();
      if (array->shape.empty() || array->model_rank > array->shape.size())
        throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
    }
  if (j.contains("cell_streams")) {
    if (j["cell_streams"] != "independent")
      throw std::runtime_error("its field 'cell_streams' is not \"independent\"");
    spec.independent_cells = true;
  }
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

int64_t chunk_count(const SweepSpec& spec) {
  return static_cast<int64_t>(plan_chunks(spec).size());
}

int64_t sweep_work(const SweepSpec& spec) { return work_of(plan_chunks(spec)); }

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

namespace sweep_internal {

// The results.csv header every chunk of a sweep with this base group must have.
std::string expected_header(const GroupSpec& base) {
  ModelResult zero;
  zero.W.assign(static_cast<size_t>(base.n_features) * base.n_hidden, 0.0);
  zero.b.assign(static_cast<size_t>(base.n_features), 0.0);
  std::vector<std::string> names;
  for (const auto& column : analysis_columns(base, zero)) names.push_back(column.first);
  return results_header(base.n_features, base.n_hidden, names);
}

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

}  // namespace sweep_internal

}  // namespace sp
