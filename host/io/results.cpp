// results.cpp — what a run writes of its models (host/io/results.hpp): results.csv, the group's
// record (derived from the field table), the trajectories as .npy.
#include "host/io/results.hpp"

#include <fmt/format.h>

#include <cmath>
#include <set>
#include <stdexcept>

#include "host/io/npy.hpp"

namespace sp {

// ------------------------------------------------------------------------------- results

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

std::string status_of(const ModelResult& result) { return result.finite ? "ok" : "diverged"; }

std::string results_header(int n, int m, const std::vector<std::string>& extra_names) {
  std::string out = "model_id,seed,model,n_features,n_hidden,data_mode,sparsity";
  for (int f = 0; f < n; ++f) out += fmt::format(",sparsity_{}", f);
  for (int f = 0; f < n; ++f) out += fmt::format(",importance_{}", f);
  out += ",lr,weight_decay,steps,train_loss,eval_loss";
  for (int j = 0; j < m; ++j)
    for (int f = 0; f < n; ++f) out += fmt::format(",W_{}_{}", j, f);
  for (int f = 0; f < n; ++f) out += fmt::format(",b_{}", f);
  out += ",status";
  for (const std::string& name : extra_names) out += "," + name;
  return out;
}

std::string results_csv(const std::vector<ResultRow>& rows) {
  if (rows.empty()) return "model_id\n";
  const int n = rows.front().group->n_features, m = rows.front().group->n_hidden;
  std::vector<std::string> extra_names;
  for (const auto& column : rows.front().extra) extra_names.push_back(column.first);
  std::string out = results_header(n, m, extra_names) + '\n';
  for (const ResultRow& row : rows) {
    const GroupSpec& g = *row.group;
    const ModelSpec& model = *row.model;
    const ModelResult& r = *row.result;
    if (g.n_features != n || g.n_hidden != m)
      throw std::logic_error("results_csv: rows of different shapes");
    double mean_sparsity = 0;
    for (double s : model.sparsity) mean_sparsity += s / n;
    out += fmt::format("{},{},{},{},{},{},{}", row.model_id, model.seed, to_string(model.kind), n,
                       m, to_string(g.mode), format_number(mean_sparsity));
    for (double s : model.sparsity) out += "," + format_number(s);
    for (double i : model.importance) out += "," + format_number(i);
    out +=
        fmt::format(",{},{},{},{},{}", format_number(model.lr), format_number(model.weight_decay),
                    g.steps, format_number(r.train_loss), format_number(r.eval_loss));
    for (double w : r.W) out += "," + format_number(w);
    for (double b : r.b) out += "," + format_number(b);
    out += "," + status_of(r);
    for (const auto& column : row.extra) out += "," + column.second;
    out += '\n';
  }
  return out;
}

namespace {

// Whether a row of the field table is kept in the records of this group (host/core/config.hpp:
// Kept).
bool kept(Kept rule, const GroupSpec& g) {
  switch (rule) {
    case Kept::always:
      return true;
    case Kept::fixed:
      return g.mode == DataMode::fixed;
    case Kept::fresh:
      return g.mode == DataMode::fresh;
    case Kept::groups:
      return g.groups.any();
    case Kept::never:
      return false;
  }
  return true;
}

nlohmann::json field_json(int value) { return value; }
nlohmann::json field_json(uint64_t value) { return value; }
nlohmann::json field_json(double value) { return value; }
nlohmann::json field_json(bool value) { return value; }
nlohmann::json field_json(DataMode value) { return to_string(value); }
nlohmann::json field_json(LrSchedule value) { return to_string(value); }
nlohmann::json field_json(const FeatureGroups& groups) {
  return {{"correlated", groups.correlated},
          {"anticorrelated", groups.anticorrelated},
          {"size", groups.size}};
}

}  // namespace

nlohmann::json group_json(const GroupSpec& g) {
  nlohmann::json j = nlohmann::json::object();
#define SP_FIELD_JSON(type, member, initial, option, lo, hi, key, rule, help) \
  if (kept(Kept::rule, g)) j[key] = field_json(g.member);
  SP_GROUP_FIELDS(SP_FIELD_JSON)
#undef SP_FIELD_JSON
  j["train_rows"] = g.train_rows();  // what follows from them, for readers of the manifest
  j["eval_rows"] = g.eval_rows();
  j["models"] = g.models.size();
  return j;
}

namespace {

// A field of a record superpose wrote, as its writer wrote it: present (unless optional), of the
// type, within the range; std::runtime_error naming it otherwise.
template <class T>
T field(const nlohmann::json& j, const char* key, double lo, double hi) {
  const auto it = j.find(key);
  if (it == j.end()) throw std::runtime_error(fmt::format("its field '{}' is missing", key));
  const bool integral = std::is_integral_v<T>;
  if (!it->is_number() || (integral && !it->is_number_integer() && !it->is_number_unsigned()))
    throw std::runtime_error(
        fmt::format("its field '{}' is not a {}", key, integral ? "whole number" : "number"));
  const double value = it->get<double>();
  if (!(value >= lo && value <= hi))
    throw std::runtime_error(fmt::format("its field '{}' is outside [{}, {}]", key, lo, hi));
  return it->get<T>();
}

std::string text_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw std::runtime_error(fmt::format("its field '{}' is missing or not text", key));
  return it->get<std::string>();
}

}  // namespace

namespace {

void field_from(const nlohmann::json& j, const char* key, int& out, long double lo,
                long double hi) {
  out = field<int>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, uint64_t& out, long double lo,
                long double hi) {
  out = field<uint64_t>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, double& out, long double lo,
                long double hi) {
  out = field<double>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, bool& out, long double, long double) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_boolean())
    throw std::runtime_error(fmt::format("its field '{}' is missing or not true/false", key));
  out = it->get<bool>();
}
void field_from(const nlohmann::json& j, const char* key, DataMode& out, long double, long double) {
  try {
    out = parse_data_mode(text_field(j, key), key);
  } catch (const UsageError& error) {
    throw std::runtime_error(error.what());
  }
}
void field_from(const nlohmann::json& j, const char* key, LrSchedule& out, long double,
                long double) {
  try {
    out = parse_lr_schedule(text_field(j, key), key);
  } catch (const UsageError& error) {
    throw std::runtime_error(error.what());
  }
}
void field_from(const nlohmann::json& j, const char* key, FeatureGroups& out, long double lo,
                long double hi) {
  const nlohmann::json& groups = j.at(key);
  if (!groups.is_object() || groups.size() != 3)
    throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
  out = FeatureGroups{
      field<int>(groups, "correlated", static_cast<double>(lo), static_cast<double>(hi)),
      field<int>(groups, "anticorrelated", static_cast<double>(lo), static_cast<double>(hi)),
      field<int>(groups, "size", 1, static_cast<double>(hi))};
  if (!out.any()) throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
}

}  // namespace

GroupSpec group_from_json(const nlohmann::json& j, const std::set<std::string>& may_lack) {
  if (!j.is_object()) throw std::runtime_error("its group is not an object");
  std::set<std::string> known = {"train_rows", "eval_rows", "models"};
#define SP_FIELD_KEY(type, member, initial, option, lo, hi, key, rule, help) known.insert(key);
  SP_GROUP_FIELDS(SP_FIELD_KEY)
#undef SP_FIELD_KEY
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) throw std::runtime_error(fmt::format("its group has a field '{}'", key));
  // Row by row, in the table's order (the data mode before the fields it decides on); a field kept
  // only with feature groups is there exactly when they are.
  GroupSpec g;
#define SP_FIELD_FROM(type, member, initial, option, lo, hi, key, rule, help)                \
  if (Kept::rule == Kept::groups ? j.contains(key) : kept(Kept::rule, g)) {                  \
    if (!j.contains(key) && may_lack.count(key) == 0)                                        \
      throw std::runtime_error(fmt::format("its field '{}' is missing", key));               \
    if (j.contains(key)) field_from(j, key, g.member, lo, hi);                               \
  } else if (j.contains(key)) {                                                              \
    throw std::runtime_error(                                                                \
        fmt::format("its group has '{}', which a run of these options does not keep", key)); \
  }
  SP_GROUP_FIELDS(SP_FIELD_FROM)
#undef SP_FIELD_FROM
  if (field<int64_t>(j, "train_rows", 0, 1 << 24) != g.train_rows() ||
      field<int64_t>(j, "eval_rows", 0, 1 << 24) != g.eval_rows())
    throw std::runtime_error("its fields 'train_rows' and 'eval_rows' do not follow from the rest");
  return g;
}

void write_trajectories(const RunDir& dir, const GroupSpec& g,
                        const std::vector<ModelResult>& results) {
  const size_t models = results.size(), n = g.n_features, m = g.n_hidden;
  const std::vector<int> eval_steps = g.eval_steps(), snapshot_steps = g.snapshot_steps();
  std::vector<float> loss, eval, W, b;
  for (const ModelResult& r : results) {
    loss.insert(loss.end(), r.loss_curve.begin(), r.loss_curve.end());
    eval.insert(eval.end(), r.eval_curve.begin(), r.eval_curve.end());
    W.insert(W.end(), r.W_snapshots.begin(), r.W_snapshots.end());
    b.insert(b.end(), r.b_snapshots.begin(), r.b_snapshots.end());
  }
  auto steps_array = [](const std::vector<int>& steps) {
    return npy::encode(std::vector<int64_t>(steps.begin(), steps.end()), {steps.size()});
  };
  dir.write("train_loss.npy", npy::encode(loss, {models, static_cast<size_t>(g.steps)}));
  dir.write("eval_steps.npy", steps_array(eval_steps));
  dir.write("snapshot_steps.npy", steps_array(snapshot_steps));
  if (g.eval_rows() > 0) dir.write("eval_loss.npy", npy::encode(eval, {models, eval_steps.size()}));
  dir.write("W.npy", npy::encode(W, {models, snapshot_steps.size(), m, n}));
  dir.write("b.npy", npy::encode(b, {models, snapshot_steps.size(), n}));
}

}  // namespace sp
