#include "host/io/resources.hpp"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>

namespace sp {

namespace fs = std::filesystem;

namespace {

// A whole number of bytes from the environment (tests), or 0.
uint64_t from_environment(const char* name) {
  const char* text = std::getenv(name);
  if (!text || !*text) return 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  return end && *end == '\0' ? value : 0;
}

uint64_t first_number_in(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::strtoull(text.c_str(), nullptr, 10);
}

// The cgroup path of this process for the memory controller ("" for cgroup v2's unified tree).
std::string own_cgroup(bool* v2) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, unified;
  while (std::getline(in, line)) {
    const size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers.empty()) unified = path;
    if ((',' + controllers + ',').find(",memory,") != std::string::npos) {
      *v2 = false;
      return path;
    }
  }
  *v2 = true;
  return unified;
}

uint64_t memory_stat(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value)
    if (name == key) return value;
  return 0;
}

// The smallest room left under a memory limit, this process's cgroup and every one above it
// (0: no limit found).
uint64_t cgroup_memory_available() {
  bool v2 = true;
  fs::path path = own_cgroup(&v2);
  const fs::path root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
  uint64_t best = 0;
  for (;;) {
    const fs::path dir = root / path.relative_path();
    const uint64_t limit =
        first_number_in((dir / (v2 ? "memory.max" : "memory.limit_in_bytes")).string());
    if (limit > 0 && limit < (uint64_t{1} << 60)) {
      uint64_t usage =
          first_number_in((dir / (v2 ? "memory.current" : "memory.usage_in_bytes")).string());
      const uint64_t reclaimable =
          memory_stat((dir / "memory.stat").string(), v2 ? "inactive_file" : "total_inactive_file");
      usage -= std::min(usage, reclaimable);
      const uint64_t room = limit - std::min(limit, usage);
      if (best == 0 || room < best) best = room;
    }
    if (!path.has_relative_path() || path == path.parent_path()) break;
    path = path.parent_path();
  }
  return best;
}

}  // namespace

uint64_t available_memory_bytes() {
  if (const uint64_t limit = from_environment("SUPERPOSE_MEMORY_LIMIT")) return limit;
  uint64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") available = kib * 1024;
  // The memory limit of this process's own cgroup and of every cgroup above it (a Slurm job's, a
  // container's), less what it already holds that cannot be reclaimed (page cache can).
  if (const uint64_t cgroup = cgroup_memory_available(); cgroup > 0 && cgroup < available)
    available = cgroup;
  return available ? available : uint64_t{1} << 34;  // unknown: assume 16 GiB
}

uint64_t free_disk_bytes(const std::string& path) {
  if (const uint64_t limit = from_environment("SUPERPOSE_DISK_LIMIT")) return limit;
  fs::path at = fs::absolute(path.empty() ? "." : path);
  std::error_code error;
  while (!fs::exists(at, error) && at.has_parent_path() && at != at.parent_path())
    at = at.parent_path();
  struct statvfs stats {};
  if (::statvfs(at.c_str(), &stats) != 0) return UINT64_MAX;  // unknown: nothing to refuse
  return static_cast<uint64_t>(stats.f_bavail) * stats.f_frsize;
}

std::string bytes_text(double bytes) {
  if (bytes >= 1024.0 * 1024 * 1024)
    return fmt::format("{:.1f} GiB", bytes / (1024.0 * 1024 * 1024));
  if (bytes >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", bytes / (1024.0 * 1024));
  return fmt::format("{:.0f} KiB", std::max(1.0, bytes / 1024.0));
}

std::vector<Need> training_memory(const GroupSpec& g, int64_t models_at_once, int threads,
                                  const std::string& models_option) {
  const double n = g.n_features, m = g.n_hidden, P = m * n + n,
               models = static_cast<double>(models_at_once);
  const double workers = static_cast<double>(
      std::min<int64_t>(std::max(1, threads), std::max<int64_t>(1, models_at_once)));
  const bool fixed = g.mode == DataMode::fixed;
  std::vector<Need> needs;
  // Per worker: the dataset or the batch (several copies: generated, laid out in lanes), the
  // evaluation rows, the lanes' partial gradients.
  if (fixed) {
    needs.push_back({workers * 3 * g.points * n * 4, "--points",
                     fmt::format("the fixed dataset, {} points x {} features, per thread", g.points,
                                 g.n_features)});
  } else {
    needs.push_back(
        {workers * 3 * g.batch * n * 4, "--batch",
         fmt::format("a batch of {} rows x {} features, per thread", g.batch, g.n_features)});
    needs.push_back({workers * g.eval_points * n * 4, "--eval-points",
                     fmt::format("{} evaluation rows per thread", g.eval_points)});
  }
  needs.push_back({workers * 3 * 32 * P * 4, "--features",
                   fmt::format("the partial gradients of {} parameters, per thread", P)});
  // Per model of the chunk: its options, results and results.csv row, and its trajectories.
  const double row = 24.0 * (20 + 6 * n + m * n);
  needs.push_back({models * (4 * n * 8 + 2 * P * 8 + row + 256), models_option,
                   fmt::format("{} models' options and results at once", models_at_once)});
  if (g.record_trajectories) {
    const double evals = static_cast<double>(g.eval_step_count()),
                 snapshots = static_cast<double>(g.snapshot_step_count());
    // Each curve and snapshot: as trained, gathered for its .npy file, and that file's bytes.
    needs.push_back(
        {models * 3 * 4 * (g.steps + evals), "--steps",
         fmt::format("loss curves of {} steps for {} models", g.steps, models_at_once)});
    needs.push_back({models * 3 * 4 * snapshots * P, "--snapshot-every",
                     fmt::format("{} snapshots of W, b for {} models",
                                 static_cast<int64_t>(snapshots), models_at_once)});
  }
  return needs;
}

std::vector<Need> output_disk(const GroupSpec& g, int64_t models_count, bool sweep,
                              const std::string& models_option) {
  const double n = g.n_features, m = g.n_hidden, P = m * n + n,
               models = static_cast<double>(models_count);
  std::vector<Need> needs;
  const double row = 24.0 * (20 + 6 * n + m * n);  // about 24 characters a number
  needs.push_back({(sweep ? 2 : 1) * models * row, models_option,
                   fmt::format("results.csv for {} models", models_count)});
  if (g.record_trajectories) {
    const double evals = static_cast<double>(g.eval_step_count()),
                 snapshots = static_cast<double>(g.snapshot_step_count());
    needs.push_back({models * 4 * (g.steps + evals), "--steps",
                     fmt::format("loss curves of {} steps", g.steps)});
    needs.push_back({models * 4 * snapshots * P, "--snapshot-every",
                     fmt::format("{} snapshots of W, b", static_cast<int64_t>(snapshots))});
  }
  if (!sweep && g.mode == DataMode::fixed)
    needs.push_back({static_cast<double>(g.points) * n * 4, "--points", "the dataset, data.npy"});
  return needs;
}

namespace {
const Need& largest(const std::vector<Need>& needs) {
  return *std::max_element(needs.begin(), needs.end(),
                           [](const Need& a, const Need& b) { return a.bytes < b.bytes; });
}
double total(const std::vector<Need>& needs) {
  return std::accumulate(needs.begin(), needs.end(), 0.0,
                         [](double sum, const Need& need) { return sum + need.bytes; });
}
}  // namespace

void require_memory(const std::vector<Need>& needs) {
  const double need = total(needs) + 64.0 * 1024 * 1024;  // the program itself
  const double available = static_cast<double>(available_memory_bytes());
  if (need <= available) return;
  const Need& big = largest(needs);
  throw UsageError(fmt::format(
      "{}: this run needs about {} of memory, most of it for {} ({}), and this machine has {} "
      "available; make {} smaller",
      big.option, bytes_text(need), big.what, bytes_text(big.bytes), bytes_text(available),
      big.option));
}

void require_disk(const std::vector<Need>& needs, const std::string& out) {
  const double need = total(needs);
  const double free_bytes = static_cast<double>(free_disk_bytes(out));
  if (need <= free_bytes) return;
  const Need& big = largest(needs);
  throw UsageError(fmt::format(
      "{}: this run writes about {}, most of it {} ({}), and the file system of '{}' has {} "
      "free; make {} smaller or choose another --out",
      big.option, bytes_text(need), big.what, bytes_text(big.bytes), out, bytes_text(free_bytes),
      big.option));
}

}  // namespace sp
