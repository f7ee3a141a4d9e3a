#include "host/run_dir.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "host/npy.hpp"

namespace sp {

namespace fs = std::filesystem;

RunDir::RunDir(std::string path, const std::string& option) : path_(std::move(path)) {
  if (path_.empty()) throw UsageError(fmt::format("{}: the directory name is empty", option));
  std::error_code error;
  fs::create_directories(path_, error);
  if (error || !fs::is_directory(path_))
    throw UsageError(fmt::format("{}: cannot create directory '{}' ({})", option, path_,
                                 error ? error.message() : "a file of that name exists"));
  if (::access(path_.c_str(), W_OK | X_OK) != 0)
    throw UsageError(fmt::format("{}: directory '{}' is not writable ({})", option, path_,
                                 std::strerror(errno)));
}

void RunDir::write(const std::string& name, const std::string& bytes) const {
  write_with(name, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

void RunDir::write_with(const std::string& name,
                        const std::function<void(std::ostream&)>& fill) const {
  write_file_atomically((fs::path(path_) / name).string(), fill);
}

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& fill) {
  const fs::path final_path(path);
  const fs::path temporary = final_path.parent_path() /
                             fmt::format(".{}.tmp-{}", final_path.filename().string(), ::getpid());
  try {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    fill(out);
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("cannot write '{}'", final_path.string()));
  } catch (...) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw;
  }
  fs::rename(temporary, final_path);
}

RunDir RunDir::subdir(const std::string& name) const {
  return RunDir((fs::path(path_) / name).string());
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

std::string status_of(const ModelResult& result) { return result.finite ? "ok" : "diverged"; }

std::string results_csv(const std::vector<ResultRow>& rows) {
  if (rows.empty()) return "model_id\n";
  const int n = rows.front().group->n_features, m = rows.front().group->n_hidden;
  std::string out = "model_id,seed,model,n_features,n_hidden,data_mode,sparsity";
  for (int f = 0; f < n; ++f) out += fmt::format(",sparsity_{}", f);
  for (int f = 0; f < n; ++f) out += fmt::format(",importance_{}", f);
  out += ",lr,steps,train_loss,eval_loss";
  for (int j = 0; j < m; ++j)
    for (int f = 0; f < n; ++f) out += fmt::format(",W_{}_{}", j, f);
  for (int f = 0; f < n; ++f) out += fmt::format(",b_{}", f);
  out += ",status";
  for (const auto& [name, value] : rows.front().extra) out += "," + name;
  out += '\n';
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
    out += fmt::format(",{},{},{},{}", format_number(model.lr), g.steps,
                       format_number(r.train_loss), format_number(r.eval_loss));
    for (double w : r.W) out += "," + format_number(w);
    for (double b : r.b) out += "," + format_number(b);
    out += "," + status_of(r);
    for (const auto& column : row.extra) out += "," + column.second;
    out += '\n';
  }
  return out;
}

nlohmann::json group_json(const GroupSpec& g) {
  nlohmann::json j = {{"n_features", g.n_features},     {"n_hidden", g.n_hidden},
                      {"data_mode", to_string(g.mode)}, {"steps", g.steps},
                      {"eval_every", g.eval_every},     {"snapshot_every", g.snapshot_every},
                      {"train_rows", g.train_rows()},   {"eval_rows", g.eval_rows()},
                      {"models", g.models.size()}};
  if (g.mode == DataMode::fixed) {
    j["points"] = g.points;
    j["eval_fraction"] = g.eval_fraction;
  } else {
    j["batch"] = g.batch;
    j["eval_points"] = g.eval_points;
  }
  return j;
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
