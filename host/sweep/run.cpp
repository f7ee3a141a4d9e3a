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

  // The directory is this sweep's: alone, or shared by its shards; never another sweep's. Its
  // plan.json is written under the claim (the same bytes from every shard).
  SweepOutcome outcome;
  outcome.claim = claim_run_dir(
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
  if (run.after_claim) run.after_claim();
  const RunDir chunks_dir = dir.subdir("chunks");
  outcome.models = spec.model_count();
  outcome.chunks = static_cast<int64_t>(plan.chunks.size());

  // This shard's chunks: one found whole and its own is kept; any other is to be trained (again).
  // Each is locked only while this process trains it (a lock file per chunk, taken when its batch
  // is: a process of the same shard started twice skips what the other holds).
  std::vector<Chunk> pending;
  int64_t pending_models = 0;
  std::vector<std::string> problems;  // why each pending chunk found in the directory is retrained
  for (size_t c = static_cast<size_t>(shard.index - 1); c < plan.chunks.size();
       c += static_cast<size_t>(shard.count)) {
    const Chunk& chunk = plan.chunks[c];
    ++outcome.shard_chunks;
    std::string problem;
    if (chunks_dir.kind(chunk.name()) != EntryKind::none) {
      problem = check_chunk(dir, chunk, plan.rules, spec.base.record_trajectories);
      if (problem.empty()) {
        ++outcome.chunks_resumed;
        continue;
      }
    }
    pending.push_back(chunk);
    problems.push_back(problem);
    pending_models += chunk.count;
  }

  // Batches of this shard's pending chunks of one steps value, as many models as the backends
  // take in one call (0: a chunk at a time), every device given work, and no more chunks than
  // this process may hold lock files open at once.
  int64_t per_call = 0;
  for (const Backend* backend : run.backends) {
    const int64_t models = backend->models_per_call();
    per_call = per_call == 0 ? models : std::min(per_call, models == 0 ? per_call : models);
  }
  if (run.backends.size() > 1) {  // every device gets work: at most half a device's share a call
    const int64_t share =
        std::max<int64_t>(1, (pending_models + 2 * static_cast<int64_t>(run.backends.size()) - 1) /
                                 (2 * static_cast<int64_t>(run.backends.size())));
    per_call = per_call == 0 ? share : std::min(per_call, share);
  }
  const size_t chunks_per_call =
      std::max<size_t>(1, open_files_allowed() / 2 / std::max<size_t>(1, run.backends.size()));
  std::vector<std::vector<size_t>> batches;  // indices into `pending`
  for (size_t p = 0; p < pending.size(); ++p) {
    if (!batches.empty()) {
      const std::vector<size_t>& last = batches.back();
      int64_t in_batch = 0;
      for (size_t q : last) in_batch += pending[q].count;
      if (pending[last.back()].steps == pending[p].steps && per_call > 0 &&
          in_batch + pending[p].count <= per_call && last.size() < chunks_per_call) {
        batches.back().push_back(p);
        continue;
      }
    }
    batches.push_back({p});
  }

  // Every backend (a device each) pulls batches on its own host thread: locks its chunks, leaves
  // any another process holds (or has meanwhile finished), clears what a damaged or unfinished
  // one left, and trains the rest in one call.
  const bool show_progress = progress_on_terminal();
  progress().total = pending_models;
  progress().done = 0;
  const auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr failure;
  std::mutex progress_mutex;
  int64_t trained_models = 0, trained_chunks = 0, done_models = 0;
  auto worker = [&](Backend& backend) {
    for (size_t b = next++; b < batches.size() && !failed; b = next++) {
      std::vector<Chunk> mine;
      std::vector<std::unique_ptr<RunClaim>> locks;
      int64_t skipped_models = 0;
      try {
        check_cancelled();
        for (size_t p : batches[b]) {
          const Chunk& chunk = pending[p];
          std::unique_ptr<RunClaim> lock = chunks_dir.try_lock(chunk.lock());
          // Under its lock, checked again: another process of this shard may have finished it.
          const bool done_meanwhile =
              lock && chunks_dir.kind(chunk.name()) != EntryKind::none &&
              check_chunk(dir, chunk, plan.rules, spec.base.record_trajectories).empty();
          if (!lock || done_meanwhile) {
            std::lock_guard<std::mutex> guard(progress_mutex);
            ++(lock ? outcome.chunks_resumed : outcome.chunks_elsewhere);
            skipped_models += chunk.count;
            continue;
          }
          // What a damaged or unfinished chunk left: superpose's own files go, anything else is
          // moved aside with the chunk's directory.
          const std::string kept = clear_chunk(chunks_dir, chunk);
          if (!problems[p].empty()) {
            print_err("superpose: {} (models {} to {}) is trained again: {}{}\n", chunk.dir(),
                      chunk.first, chunk.first + chunk.count - 1, problems[p],
                      kept.empty()
                          ? ""
                          : fmt::format("; what superpose cannot vouch for is kept in {}", kept));
            std::lock_guard<std::mutex> guard(progress_mutex);
            ++outcome.chunks_retrained;
          }
          mine.push_back(chunk);
          locks.push_back(std::move(lock));
        }
        if (!mine.empty()) train_chunks(backend, spec, mine, dir, plan.rules.sweep_digest);
      } catch (...) {
        std::lock_guard<std::mutex> guard(progress_mutex);
        if (!failed.exchange(true)) failure = std::current_exception();
        return;
      }
      locks.clear();
      std::lock_guard<std::mutex> guard(progress_mutex);
      for (const Chunk& c : mine) trained_models += c.count;
      trained_chunks += static_cast<int64_t>(mine.size());
      done_models += skipped_models;
      progress().done = trained_models + done_models;
      if (show_progress && !mine.empty()) {
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double eta = elapsed / static_cast<double>(trained_models) *
                           static_cast<double>(pending_models - trained_models - done_models);
        print_err("\r{}{}: {}/{} models, chunk {}/{}, {} elapsed, ETA {}    ", command,
                  sharded ? fmt::format(" shard {}/{}", shard.index, shard.count) : "",
                  trained_models + done_models, pending_models, trained_chunks, pending.size(),
                  duration_text(elapsed), duration_text(eta));
      }
    }
  };
  std::vector<std::thread> others;
  for (size_t d = 1; d < run.backends.size(); ++d)
    others.emplace_back(worker, std::ref(*run.backends[d]));
  worker(*run.backends.front());
  for (std::thread& thread : others) thread.join();
  if (show_progress && trained_models > 0) print_err("\n");
  if (failure) std::rethrow_exception(failure);
  outcome.chunks_trained = trained_chunks;
  outcome.train_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

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
