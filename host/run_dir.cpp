#include "host/run_dir.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "host/npy.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

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
  // The pid and a random part: shards on different machines (or pid namespaces) that write the
  // same file of a shared directory at once never share a temporary.
  static thread_local std::mt19937_64 random(std::random_device{}() ^
                                             static_cast<uint64_t>(::getpid()));
  const fs::path temporary =
      final_path.parent_path() / fmt::format(".{}.tmp-{}-{:08x}", final_path.filename().string(),
                                             ::getpid(), static_cast<uint32_t>(random()));
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

namespace {

std::string hex64(uint64_t value) { return fmt::format("{:016x}", value); }

constexpr const char* kLockFile = ".superpose.lock";

// A temporary of write_file_atomically: .<name>.tmp-<pid>-<8 hex digits>.
bool is_temporary(const std::string& name) {
  const size_t at = name.rfind(".tmp-");
  if (name.size() < 2 || name[0] != '.' || at == std::string::npos) return false;
  const std::string tail = name.substr(at + 5);
  const size_t dash = tail.find('-');
  return dash != std::string::npos && dash > 0 && tail.size() == dash + 9 &&
         tail.find_first_not_of("0123456789") == dash &&
         tail.find_first_not_of("0123456789abcdef", dash + 1) == std::string::npos;
}

// Whether `path` is a run directory's identity file superpose wrote (run.json, sweep.json,
// manifest.json): a JSON object naming a superpose command — not merely a file of that name,
// which another program's directory may hold too.
bool superpose_identity(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return false;
  try {
    nlohmann::json j;
    in >> j;
    static const std::set<std::string> commands = {"train", "experiments", "sweep",
                                                   "phase-diagram"};
    return j.is_object() && j.contains("command") && j["command"].is_string() &&
           commands.count(j["command"].get<std::string>()) > 0;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

FileDigest digest_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read '{}'", path));
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buffer(1 << 16);
  FileDigest digest;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<size_t>(in.gcount());
    XXH3_64bits_update(state, buffer.data(), got);
    digest.bytes += got;
  }
  digest.xxh3 = hex64(XXH3_64bits_digest(state));
  XXH3_freeState(state);
  return digest;
}

std::string digest_text(const std::string& bytes) {
  return hex64(XXH3_64bits(bytes.data(), bytes.size()));
}

RunClaim::~RunClaim() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(dir, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error) && is_temporary(it->path().filename().string()))
      fs::remove(it->path(), error);
  }
}

std::unique_ptr<RunClaim> try_lock_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw std::runtime_error(fmt::format("cannot open '{}' ({})", path, std::strerror(errno)));
  auto lock = std::make_unique<RunClaim>(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return lock;
  if (errno == EWOULDBLOCK) return nullptr;  // another process holds it
  throw std::runtime_error(fmt::format(
      "cannot lock '{}' ({}): superpose needs flock, which this file system does not give", path,
      std::strerror(errno)));
}

std::unique_ptr<RunClaim> claim_run_dir(
    const RunDir& dir, const std::string& identity_file, const nlohmann::json& identity,
    bool overwrite, const std::function<void(const nlohmann::json&)>& explain_other, bool shared) {
  const fs::path root(dir.path());
  // What the directory holds besides the lock (and temporaries of interrupted writes).
  auto holdings = [&] {
    std::vector<std::string> entries;
    for (const auto& entry : fs::directory_iterator(root)) {
      const std::string name = entry.path().filename().string();
      if (name != kLockFile && name != ".superpose.claim" && !is_temporary(name))
        entries.push_back(name);
    }
    std::sort(entries.begin(), entries.end());
    return entries;
  };
  auto superpose_file = [&]() -> std::string {
    for (const char* name : {"run.json", "sweep.json", "manifest.json"})
      if (superpose_identity(root / name)) return name;
    return "";
  };
  auto refuse_foreign = [&](const std::vector<std::string>& entries) {
    throw UsageError(fmt::format(
        "--out: '{}' holds files superpose did not write (such as '{}'); choose an empty or new "
        "directory{}",
        dir.path(), entries.front(),
        overwrite ? " (--overwrite replaces only superpose's own run directories)" : ""));
  };
  // Nothing is created in a directory that is not superpose's: checked before the lock file.
  if (const auto entries = holdings(); !entries.empty() && superpose_file().empty())
    refuse_foreign(entries);

  const std::string lock_path = (root / kLockFile).string();
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw UsageError(fmt::format("--out: cannot open '{}' ({})", lock_path, std::strerror(errno)));
  auto claim = std::make_unique<RunClaim>(fd);
  if (shared && overwrite)
    throw UsageError("--overwrite: not with --shard (shards share a directory; replace it first)");
  if (::flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK)
      throw UsageError(fmt::format(
          "--out: cannot lock '{}' ({}): superpose needs flock, which this file system does not "
          "give",
          lock_path, std::strerror(errno)));
    char holder[256] = {};
    const ssize_t got = ::pread(fd, holder, sizeof holder - 1, 0);
    std::string who = got > 0 ? std::string(holder, static_cast<size_t>(got)) : "";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    throw UsageError(fmt::format(
        "--out: '{}' is in use by another superpose ({}{}); wait for it to finish, or choose "
        "another --out",
        dir.path(), who.empty() ? "its process id unknown" : who,
        shared ? ", which has it alone" : ""));
  }
  // Shards check and write the identity one at a time (a second lock, held only for that).
  std::unique_ptr<RunClaim> identity_lock;
  if (shared) {
    const std::string path = (root / ".superpose.claim").string();
    const int claim_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (claim_fd < 0 || ::flock(claim_fd, LOCK_EX) != 0)
      throw std::runtime_error(fmt::format("cannot lock '{}'", path));
    identity_lock = std::make_unique<RunClaim>(claim_fd);
  }
  const std::string holder = fmt::format("pid {}, {}\n", ::getpid(), identity.value("command", ""));
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) < 0) {
    // The lock holds either way; the holder's description is a courtesy.
  }
  // Under the lock, what the directory holds is settled.
  const std::vector<std::string> entries = holdings();
  const std::string existing_file = superpose_file();
  if (!entries.empty() && existing_file.empty()) refuse_foreign(entries);
  if (!shared) remove_stale_temporaries(dir.path());  // a superpose directory, or empty
  if (entries.empty()) {
    dir.write(identity_file, identity.dump(2) + "\n");
    return claim;
  }
  nlohmann::json existing;
  try {
    std::ifstream(root / existing_file) >> existing;
  } catch (const std::exception&) {
    existing = nlohmann::json::object();  // a superpose file, damaged: another run's
  }
  if (!overwrite) {
    if (existing_file == identity_file && existing == identity) return claim;  // the same run
    if (explain_other && existing_file == identity_file) explain_other(existing);
    throw UsageError(fmt::format(
        "--out: '{}' holds another run ({} of {}); choose another --out, or add --overwrite to "
        "replace it",
        dir.path(), existing_file, existing.is_object() ? existing.value("command", "?") : "?"));
  }
  for (const std::string& name : entries) fs::remove_all(root / name);
  dir.write(identity_file, identity.dump(2) + "\n");
  return claim;
}

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

nlohmann::json group_json(const GroupSpec& g) {
  nlohmann::json j = {{"n_features", g.n_features},
                      {"n_hidden", g.n_hidden},
                      {"data_mode", to_string(g.mode)},
                      {"steps", g.steps},
                      {"lr_schedule", to_string(g.lr_schedule)},
                      {"warmup_steps", g.warmup_steps},
                      {"eval_every", g.eval_every},
                      {"snapshot_every", g.snapshot_every},
                      {"train_rows", g.train_rows()},
                      {"eval_rows", g.eval_rows()},
                      {"models", g.models.size()}};
  if (g.groups.any())
    j["feature_groups"] = {{"correlated", g.groups.correlated},
                           {"anticorrelated", g.groups.anticorrelated},
                           {"size", g.groups.size}};
  if (g.mode == DataMode::fixed) {
    j["points"] = g.points;
    j["eval_fraction"] = g.eval_fraction;
  } else {
    j["batch"] = g.batch;
    j["eval_points"] = g.eval_points;
    j["eval_seed"] = g.eval_seed;
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
