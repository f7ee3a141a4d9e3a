// run.cpp — running a sweep (host/sweep/sweep.hpp: run_sweep): the directory claimed, this shard's
// chunks found done or to train, batched for the backends, trained by a host thread per device
// pulling batches, and, for the whole sweep, merged. Shards (parse_shard) share the directory.
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "host/core/job.hpp"
#include "host/sweep/plan.hpp"

namespace sp {

using namespace sweep_internal;

namespace {

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds)) return "?";
  if (seconds < 60) return fmt::format("{:.0f} s", seconds);
  if (seconds < 3600)
    return fmt::format("{:.0f} min {:02.0f} s", std::floor(seconds / 60), std::fmod(seconds, 60));
  return fmt::format("{:.0f} h {:02.0f} min", std::floor(seconds / 3600),
                     std::fmod(seconds / 60, 60));
}

// How many lock files this process may hold open at once: the soft limit on open files, raised
// to the hard one, less a margin for everything else.
size_t open_files_allowed() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 256;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  const rlim_t usable = limit.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : limit.rlim_cur;
  return usable > 128 ? static_cast<size_t>(std::min<rlim_t>(usable - 128, rlim_t{1} << 20)) : 16;
}

int environment_int(const char* name, bool* present) {
  const char* text = std::getenv(name);
  *present = text && *text;
  if (!*present) return 0;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > 100000000)
    throw UsageError(fmt::format("--shard: auto found {}='{}', not a whole number", name, text));
  return static_cast<int>(value);
}

}  // namespace

Shard parse_shard(const std::string& text) {
  Shard shard;
  if (text == "auto") {
    bool a = false, b = false, c = false;
    // A Slurm job array: its tasks are the shards (ids MIN, MIN + STEP, ...).
    const int id = environment_int("SLURM_ARRAY_TASK_ID", &a);
    const int count = environment_int("SLURM_ARRAY_TASK_COUNT", &b);
    const int min = environment_int("SLURM_ARRAY_TASK_MIN", &c);
    if (a && b && c) {
      bool has_step = false;
      const int step = environment_int("SLURM_ARRAY_TASK_STEP", &has_step);
      shard = {(id - min) / (has_step && step > 0 ? step : 1) + 1, count};
    } else if (const int size = environment_int("SLURM_NTASKS", &b),
               rank = environment_int("SLURM_PROCID", &a);
               a && b && size > 1) {  // the tasks of one Slurm step (srun --ntasks)
      shard = {rank + 1, size};
    } else if (const int size2 = environment_int("OMPI_COMM_WORLD_SIZE", &b),
               rank2 = environment_int("OMPI_COMM_WORLD_RANK", &a);
               a && b) {  // Open MPI's mpirun
      shard = {rank2 + 1, size2};
    } else if (const int size3 = environment_int("PMI_SIZE", &b),
               rank3 = environment_int("PMI_RANK", &a);
               a && b) {  // MPICH, Intel MPI, or Slurm's PMI
      shard = {rank3 + 1, size3};
    } else {
      throw UsageError(
          "--shard: auto finds no Slurm job array (SLURM_ARRAY_TASK_ID), Slurm tasks "
          "(SLURM_PROCID with SLURM_NTASKS > 1) or MPI launcher (OMPI_COMM_WORLD_RANK, PMI_RANK) "
          "in the environment; give --shard K/N");
    }
  } else {
    const size_t slash = text.find('/');
    auto whole = [&](const std::string& part) {
      if (part.empty() || part.size() > 6 ||
          part.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError(fmt::format(
            "--shard: '{}' is not accepted (K/N with 1 <= K <= N <= 100000, or auto)", text));
      return std::stoi(part);
    };
    if (slash == std::string::npos)
      throw UsageError(fmt::format(
          "--shard: '{}' is not accepted (K/N with 1 <= K <= N <= 100000, or auto)", text));
    shard = {whole(text.substr(0, slash)), whole(text.substr(slash + 1))};
  }
  if (shard.count < 1 || shard.count > 100000 || shard.index < 1 || shard.index > shard.count)
    throw UsageError(
        fmt::format("--shard: {} of {} is not accepted (K/N with 1 <= K <= N <= 100000{})",
                    shard.index, shard.count, text == "auto" ? ", from the environment" : ""));
  return shard;
}

namespace {

// The directory taken for this sweep (alone, or shared by its shards; never another sweep's), its
// plan.json written under the claim (the same bytes from every shard).
std::shared_ptr<RunClaim> claim_sweep(const Plan& plan, const RunDir& dir, const SweepRun& run) {
  const bool sharded = run.shard.count > 1;
  const std::string& arithmetic = plan.rules.arithmetic;
  return claim_run_dir(
      dir, "sweep.json", plan.identity, run.overwrite,
      [&](const nlohmann::json& existing) {
        nlohmann::json same_but_arithmetic = existing;
        if (existing.is_object()) same_but_arithmetic["arithmetic"] = arithmetic;
        if (same_but_arithmetic == plan.identity)
          throw UsageError(fmt::format(
              "--out: '{}' holds this sweep trained in {} arithmetic, and the {} backend trains "
              "in {}: results of different arithmetic are never mixed (the cpu and cuda backends "
              "are float32 and give the same bits; the reference is float64); use a backend of "
              "its arithmetic, choose another --out, or add --overwrite to replace it",
              dir.path(), existing.value("arithmetic", "?"), run.backends.front()->name(),
              arithmetic));
        throw UsageError(fmt::format(
            "--out: '{}' holds a different sweep (see its sweep.json){}; rerun that sweep's own "
            "command to resume it, choose another --out, or add --overwrite to replace it",
            dir.path(), sharded ? ": this shard is not one of its shards" : ""));
      },
      sharded,
      [&] {
        dir.write("plan.json", plan_json(plan).dump(2) + "\n");
        dir.subdir("chunks");  // created now: each chunk's lock file (Chunk::lock) lives in it
      });
}

// This shard's chunks still to train: a chunk found whole and its own is kept (counted resumed);
// any other is to be trained (again), with why, when it was found.
struct Pending {
  std::vector<Chunk> chunks;
  std::vector<std::string> problems;  // "" for a chunk never started
  int64_t models = 0;
};

Pending find_pending(const Plan& plan, const Shard& shard, const RunDir& dir,
                     const RunDir& chunks_dir, bool want_trajectories, SweepOutcome& outcome) {
  Pending pending;
  for (size_t c = static_cast<size_t>(shard.index - 1); c < plan.chunks.size();
       c += static_cast<size_t>(shard.count)) {
    const Chunk& chunk = plan.chunks[c];
    ++outcome.shard_chunks;
    std::string problem;
    if (chunks_dir.kind(chunk.name()) != EntryKind::none) {
      problem = check_chunk(dir, chunk, plan.rules, want_trajectories);
      if (problem.empty()) {
        ++outcome.chunks_resumed;
        continue;
      }
    }
    pending.chunks.push_back(chunk);
    pending.problems.push_back(problem);
    pending.models += chunk.count;
  }
  return pending;
}

// Batches of the pending chunks (indices) of one steps value, as many models as the backends take
// in one call (0: a chunk at a time), every device given work, and no more chunks than this
// process may hold lock files open at once.
std::vector<std::vector<size_t>> batches_of(const Pending& pending,
                                            const std::vector<Backend*>& backends) {
  int64_t per_call = 0;
  for (const Backend* backend : backends) {
    const int64_t models = backend->models_per_call();
    per_call = per_call == 0 ? models : std::min(per_call, models == 0 ? per_call : models);
  }
  const auto devices = static_cast<int64_t>(backends.size());
  if (devices > 1) {  // every device gets work: at most half a device's share a call
    const int64_t share = std::max<int64_t>(1, (pending.models + 2 * devices - 1) / (2 * devices));
    per_call = per_call == 0 ? share : std::min(per_call, share);
  }
  const size_t chunks_per_call =
      std::max<size_t>(1, open_files_allowed() / 2 / std::max<size_t>(1, backends.size()));
  const std::vector<Chunk>& chunks = pending.chunks;
  std::vector<std::vector<size_t>> batches;
  for (size_t p = 0; p < chunks.size(); ++p) {
    if (!batches.empty()) {
      const std::vector<size_t>& last = batches.back();
      int64_t in_batch = 0;
      for (size_t q : last) in_batch += chunks[q].count;
      if (chunks[last.back()].steps == chunks[p].steps && per_call > 0 &&
          in_batch + chunks[p].count <= per_call && last.size() < chunks_per_call) {
        batches.back().push_back(p);
        continue;
      }
    }
    batches.push_back({p});
  }
  return batches;
}

// The batches trained: every backend (a device each) pulls batches on its own host thread, locks
// their chunks, leaves any another process holds (or has meanwhile finished), clears what a
// damaged or unfinished one left, and trains the rest in one call. Progress with an ETA on stderr
// where it is a terminal.
class BatchTraining {
 public:
  BatchTraining(const SweepSpec& spec, const Plan& plan, const Pending& pending,
                std::vector<std::vector<size_t>> batches, const RunDir& dir,
                const RunDir& chunks_dir, const std::string& label, SweepOutcome& outcome)
      : spec_(spec),
        plan_(plan),
        pending_(pending),
        batches_(std::move(batches)),
        dir_(dir),
        chunks_dir_(chunks_dir),
        label_(label),
        outcome_(outcome) {}

  void run(const std::vector<Backend*>& backends) {
    const int64_t pending_work = work_of(pending_.chunks);
    progress().start(pending_.models, pending_work);
    if (progress().outer) {  // the outer totals count this sweep's chunks done before, too
      progress().done += spec_.model_count() - pending_.models;
      progress().work_done += work_of(plan_.chunks) - pending_work;
    }
    start_ = std::chrono::steady_clock::now();
    std::vector<std::thread> others;
    for (size_t d = 1; d < backends.size(); ++d)
      others.emplace_back([this, backend = backends[d]] { work(*backend); });
    work(*backends.front());
    for (std::thread& thread : others) thread.join();
    if (show_progress_ && trained_models_ > 0) print_err("\n");
    if (failure_) std::rethrow_exception(failure_);
    outcome_.chunks_trained = trained_chunks_;
    outcome_.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  void work(Backend& backend) {
    for (size_t b = next_++; b < batches_.size() && !failed_; b = next_++) {
      std::vector<Chunk> mine;
      std::vector<std::unique_ptr<RunClaim>> locks;
      int64_t skipped_models = 0;
      try {
        check_cancelled();
        for (size_t p : batches_[b]) {
          const Chunk& chunk = pending_.chunks[p];
          std::unique_ptr<RunClaim> lock = chunks_dir_.try_lock(chunk.lock());
          // Under its lock, checked again: another process of this shard may have finished it.
          const bool done_meanwhile =
              lock && chunks_dir_.kind(chunk.name()) != EntryKind::none &&
              check_chunk(dir_, chunk, plan_.rules, spec_.base.record_trajectories).empty();
          if (!lock || done_meanwhile) {
            std::lock_guard<std::mutex> guard(mutex_);
            ++(lock ? outcome_.chunks_resumed : outcome_.chunks_elsewhere);
            skipped_models += chunk.count;
            report_steps(chunk.count * chunk.steps);
            continue;
          }
          // What a damaged or unfinished chunk left: superpose's own files go, anything else is
          // moved aside with the chunk's directory.
          const std::string kept = clear_chunk(chunks_dir_, chunk);
          if (!pending_.problems[p].empty()) {
            print_err("superpose: {} (models {} to {}) is trained again: {}{}\n", chunk.dir(),
                      chunk.first, chunk.first + chunk.count - 1, pending_.problems[p],
                      kept.empty()
                          ? ""
                          : fmt::format("; what superpose cannot vouch for is kept in {}", kept));
            std::lock_guard<std::mutex> guard(mutex_);
            ++outcome_.chunks_retrained;
          }
          mine.push_back(chunk);
          locks.push_back(std::move(lock));
        }
        if (!mine.empty()) train_chunks(backend, spec_, mine, dir_, plan_.rules.sweep_digest);
      } catch (...) {
        std::lock_guard<std::mutex> guard(mutex_);
        if (!failed_.exchange(true)) failure_ = std::current_exception();
        return;
      }
      locks.clear();
      finished(mine, skipped_models);
    }
  }

  void finished(const std::vector<Chunk>& mine, int64_t skipped_models) {
    std::lock_guard<std::mutex> guard(mutex_);
    int64_t trained = 0;
    for (const Chunk& c : mine) trained += c.count;
    trained_models_ += trained;
    trained_chunks_ += static_cast<int64_t>(mine.size());
    done_models_ += skipped_models;
    progress().done += trained + skipped_models;
    if (show_progress_ && !mine.empty()) {
      const double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const double eta = elapsed / static_cast<double>(trained_models_) *
                         static_cast<double>(pending_.models - trained_models_ - done_models_);
      print_err("\r{}: {}/{} models, chunk {}/{}, {} elapsed, ETA {}    ", label_,
                trained_models_ + done_models_, pending_.models, trained_chunks_,
                pending_.chunks.size(), duration_text(elapsed), duration_text(eta));
    }
  }

  const SweepSpec& spec_;
  const Plan& plan_;
  const Pending& pending_;
  const std::vector<std::vector<size_t>> batches_;
  const RunDir& dir_;
  const RunDir& chunks_dir_;
  const std::string label_;
  SweepOutcome& outcome_;
  const bool show_progress_ = progress_on_terminal();
  std::chrono::steady_clock::time_point start_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr failure_;
  std::mutex mutex_;
  int64_t trained_models_ = 0, trained_chunks_ = 0, done_models_ = 0;
};

}  // namespace

SweepOutcome run_sweep(const SweepSpec& spec, const RunDir& dir, const std::string& command,
                       const SweepRun& run) {
  if (run.backends.empty()) throw std::logic_error("run_sweep: no backend");
  const Shard shard = run.shard;
  const bool sharded = shard.count > 1;
  const std::string arithmetic = run.backends.front()->arithmetic();
  for (const Backend* backend : run.backends)
    if (backend->arithmetic() != arithmetic)
      throw std::logic_error("run_sweep: backends of different arithmetic");
  const Plan plan = make_plan(spec, command, arithmetic, run.extra_manifest);

  SweepOutcome outcome;
  outcome.claim = claim_sweep(plan, dir, run);
  if (run.after_claim) run.after_claim();
  const RunDir chunks_dir = dir.subdir("chunks");
  outcome.models = spec.model_count();
  outcome.chunks = static_cast<int64_t>(plan.chunks.size());

  // Each chunk is locked only while this process trains it (a lock file per chunk, taken when its
  // batch is: a process of the same shard started twice skips what the other holds).
  const Pending pending =
      find_pending(plan, shard, dir, chunks_dir, spec.base.record_trajectories, outcome);
  const std::string label =
      command + (sharded ? fmt::format(" shard {}/{}", shard.index, shard.count) : "");
  BatchTraining(spec, plan, pending, batches_of(pending, run.backends), dir, chunks_dir, label,
                outcome)
      .run(run.backends);

  if (!sharded) merge_chunks(dir, plan, outcome);  // the whole sweep: every chunk is here
  return outcome;
}

SweepOutcome run_sweep(Backend& backend, const SweepSpec& spec, const RunDir& dir,
                       const std::string& command, const nlohmann::json& extra_manifest,
                       bool overwrite) {
  SweepRun run;
  run.backends = {&backend};
  run.overwrite = overwrite;
  run.extra_manifest = extra_manifest;
  return run_sweep(spec, dir, command, run);
}

}  // namespace sp
