// bench_kernels — the CUDA kernel variants side by side, in the manner of llm.c's dev/cuda: each
// variant (the shape's own mapping, the shared or global mapping; fixed rows on chip, in device
// memory or drawn again; K = 1 or 100 steps per launch) is first validated against the cpu backend
// (the kernels' own arithmetic on the host, itself checked against the double reference in CI) —
// valid only when every bit agrees —, then timed with CUDA events after a warm-up, median of
// repeats, and reported as sample-steps/s, model-steps/s, the fraction of the instruction-issue
// ceiling worked out in bench/CEILING.md and the resident warps per SM. Results: a table and JSON
// (--out) with the device name, rewritten after every result.
//
// Timed: the training launches only — CUDA events around the cuda backend's loop of launches
// (CudaOptions::timings), not allocation, upload, dataset generation or download; the whole
// train() is reported beside it (wall_s).
//
// Plans: `essential` — what a lent GPU's few minutes must measure first, each shape's own mapping
// at 10,000 models, batch 1024, K = 100: (2,1) fresh and fixed (on chip, memory, drawn), (5,2)
// fresh and fixed, (20,5) fresh and fixed; then TMS's large shapes, fresh, on the tiled mapping
// (train_steps_tiled) at 1,000 models — (400,30), (200,20), (100,20) — and at (400,30) the
// tiled-split launches with 1,000 and with 10 models; `extra` — the rest (the shared mapping at
// 5 x 2, the global mapping, K = 1, other sweep sizes, the large shapes' fixed data, last (400,30)
// with 10 models on train_steps_tiled and on the global mapping); `all` — both.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_group.hpp"
#include "host/backends/backend.hpp"
#include "host/backends/mapping.hpp"
#include "host/core/ulps.hpp"
#include "host/io/run_dir.hpp"
#include "kernels/fused_step.cuh"

namespace {

void check(cudaError_t error, const char* what) {
  if (error != cudaSuccess)
    throw std::runtime_error(fmt::format("{} failed: {}", what, cudaGetErrorString(error)));
}

// Thread-instructions per sample-step of a kernel and data mode: the per-sample loop's length in
// the SASS, as bench/sass_report.py counted it (bench/results/sass-sm_90.json; bench/CEILING.md).
// 0 where the report has no such kernel (the global mapping's loops have run-time bounds).
class SassCounts {
 public:
  explicit SassCounts(const std::string& path) {
    std::ifstream in(path);
    if (in) report_ = nlohmann::json::parse(in);
  }
  bool loaded() const { return !report_.is_null(); }
  std::string arch() const { return loaded() ? report_.value("arch", "") : ""; }
  // rows: "drawn" (fresh data, or fixed data drawn again), "loaded" (fixed data in device memory)
  // or "on chip" (fixed data in shared memory).
  double per_sample(const std::string& kernel, const std::string& rows) const {
    if (!loaded() || !report_["kernels"].contains(kernel)) return 0;
    for (const auto& loop : report_["kernels"][kernel]["sample_loops"])
      if (loop["rows"] == rows) return loop["instructions"].get<double>();
    return 0;
  }

 private:
  nlohmann::json report_;
};

struct Variant {
  std::string name;  // the mapping: registers, shared, tiled, tiled-split, global (+ where
                     // fixed rows come from)
  sp::CudaOptions options;
  bool fixed_only = false;  // a variant of how fixed data is read
};

// The training kernel a run of the variant launches (the dispatcher decides it, from the mapping
// and the chunk's rows-on-chip flag the cuda backend sets as here: host/backends/mapping.hpp).
sp::cuda::TrainKernelInfo kernel_of(const Variant& variant, int n, int m, sp::DataMode mode,
                                    int train_rows, int steps) {
  const sp::cuda::Mapping mapping = sp::cuda::choose_mapping(
      n, m, false, false, sp::cuda::parse_mapping_choice(variant.options.mapping, "mapping"));
  const bool rows_on_chip =
      mode == sp::DataMode::fixed &&
      sp::cuda::parse_fixed_rows(variant.options.fixed_rows, "--fixed-rows") ==
          sp::cuda::FixedRows::automatic &&
      sp::cuda::rows_fit_on_chip(mapping, n, train_rows);
  return sp::cuda::train_kernel_info(mapping, rows_on_chip, n, train_rows,
                                     std::min(steps, variant.options.steps_per_launch));
}

sp::CudaOptions options(const std::string& mapping, const std::string& fixed_rows, int K) {
  sp::CudaOptions o;
  o.mapping = mapping;
  o.fixed_rows = fixed_rows;
  o.steps_per_launch = K;
  return o;
}

struct Case {
  int n, m;
  Variant variant;
  sp::DataMode mode;
  int models;
};

// The plan's cases, in the order they run: the essential ones first.
std::vector<Case> plan(const std::string& which, bool smoke) {
  using sp::DataMode;
  const int many = smoke ? 20 : 10000;
  std::vector<Case> essential, extra;
  auto own = [](int n, int) { return n == 20 ? std::string("shared (own)") : "registers (own)"; };
  struct Shape {
    int n, m;
  };
  for (Shape s : {Shape{2, 1}, Shape{5, 2}, Shape{20, 5}}) {
    const std::string base = own(s.n, s.m).substr(0, own(s.n, s.m).find(' '));
    essential.push_back(
        {s.n, s.m, {own(s.n, s.m), options("", "auto", 100)}, DataMode::fresh, many});
    essential.push_back(
        {s.n, s.m, {own(s.n, s.m), options("", "auto", 100)}, DataMode::fixed, many});
    if (s.n == 2) {  // where fixed rows come from: which is fastest is the GPU's to say
      essential.push_back(
          {s.n, s.m, {base + " (memory)", options("", "memory", 100)}, DataMode::fixed, many});
      essential.push_back(
          {s.n, s.m, {base + " (drawn)", options("", "regenerate", 100)}, DataMode::fixed, many});
    }
    std::vector<Variant> others;
    if (s.n != 2) {
      others.push_back({base + " (drawn)", options("", "regenerate", 100), true});
      if (s.n == 5) others.push_back({base + " (memory)", options("", "memory", 100), true});
    }
    if (s.n == 5) others.push_back({"shared", options("shared", "auto", 100)});
    others.push_back({"global", options("global", "auto", 100)});
    others.push_back({own(s.n, s.m) + " K=1", options("", "auto", 1)});
    for (const Variant& v : others)
      for (DataMode mode : {DataMode::fresh, DataMode::fixed}) {
        if (v.fixed_only && mode != DataMode::fixed) continue;
        extra.push_back({s.n, s.m, v, mode, many});
      }
    for (int models : {1, 100, 1000, 100000}) {
      if (smoke && models > 100) continue;
      for (DataMode mode : {DataMode::fresh, DataMode::fixed})
        extra.push_back({s.n, s.m, {own(s.n, s.m), options("", "auto", 100)}, mode, models});
    }
  }
  // The large shapes: 1,000 models (the issue's goal at (400,30)) on train_steps_tiled, a block
  // per model (the cuda backend's choice from 2 models an SM up); at (400,30) also the same passes
  // launched one by one over the models' tiles (tiled-split, its choice below that), with 1,000
  // and with 10 models. Last in extra, the global mapping at (400,30) with 10: on an H200 it did
  // not finish 100 models in the two minutes the essential plan had left (2026-11-27).
  const int large = smoke ? 3 : 1000, fewer = smoke ? 2 : 10;
  for (Shape s : {Shape{400, 30}, Shape{200, 20}, Shape{100, 20}}) {
    essential.push_back(
        {s.n, s.m, {"tiled", options("tiled", "auto", 100)}, DataMode::fresh, large});
    extra.push_back({s.n, s.m, {"tiled", options("tiled", "auto", 100)}, DataMode::fixed, large});
  }
  essential.push_back(
      {400, 30, {"tiled-split", options("tiled-split", "auto", 100)}, DataMode::fresh, large});
  essential.push_back(
      {400, 30, {"tiled-split", options("tiled-split", "auto", 100)}, DataMode::fresh, fewer});
  // A block per model with 10 models: about 4 ms a step on an H200, and the plan's steps grow as
  // 1 / models (some 2,000 here): 40 s or more, so in extra (bench/compare's (400,30) x 10 on the
  // H200 gives its figure meanwhile: 2.77e6 sample-steps/s, the whole command).
  extra.push_back({400, 30, {"tiled", options("tiled", "auto", 100)}, DataMode::fresh, fewer});
  extra.push_back({400, 30, {"global", options("global", "auto", 100)}, DataMode::fresh, fewer});
  if (which == "essential") return essential;
  if (which == "extra") return extra;
  essential.insert(essential.end(), extra.begin(), extra.end());
  return essential;
}

// The largest distance in ulps between the bits of two runs' W, b and losses (0: identical).
int64_t largest_ulp_distance(const std::vector<sp::ModelResult>& got,
                             const std::vector<sp::ModelResult>& want) {
  // Results hold the float parameters and losses as doubles: compare them as the floats they are.
  auto distance = [](double a, double b) {
    return sp::ulp_distance(static_cast<float>(a), static_cast<float>(b));
  };
  int64_t largest = got.size() == want.size() ? 0 : int64_t{1} << 32;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    for (size_t k = 0; k < want[i].W.size(); ++k)
      largest = std::max(largest, distance(got[i].W[k], want[i].W[k]));
    for (size_t k = 0; k < want[i].b.size(); ++k)
      largest = std::max(largest, distance(got[i].b[k], want[i].b[k]));
    largest = std::max(largest, distance(got[i].train_loss, want[i].train_loss));
    largest = std::max(largest, distance(got[i].eval_loss, want[i].eval_loss));
  }
  return largest;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: the CUDA kernel variants, validated, then timed with CUDA events"};
  std::string out, which = "all",
                   sass = std::string(SUPERPOSE_SOURCE_DIR) + "/bench/results/sass-sm_90.json";
  int repeats = 3;
  bool smoke = false;
  app.add_option("--out", out, "JSON results file (rewritten after every result)");
  app.add_option("--plan", which, "essential | extra | all")
      ->check(CLI::IsMember({"essential", "extra", "all"}))
      ->capture_default_str();
  app.add_option("--repeats", repeats, "timed runs per configuration (median)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--sass", sass, "instruction counts per sample (bench/sass_report.py --out)")
      ->capture_default_str();
  app.add_flag("--smoke", smoke,
               "a few models and steps, one repeat: checks that the harness runs (the CUDA "
               "emulator's test does; its times mean nothing)");
  CLI11_PARSE(app, argc, argv);
  const SassCounts counts(sass);
  if (!counts.loaded())
    fmt::print(stderr, "bench_kernels: no SASS counts at {}: no ceiling fractions\n", sass);

  if (!sp::cuda_available()) {
    fmt::print(stderr, "bench_kernels: no CUDA device on this machine\n");
    return 2;
  }
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  int clock_khz = 0;
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0), "cudaDeviceGetAttribute");
  // One warp-instruction per scheduler per cycle, 4 schedulers per SM, 32 lanes.
  const double issue_per_s = properties.multiProcessorCount * 4.0 * clock_khz * 1e3 * 32.0;
  fmt::print("device: {} ({} SMs, {:.2f} GHz): {:.3e} thread-instructions/s\n", properties.name,
             properties.multiProcessorCount, clock_khz / 1e6, issue_per_s);

  auto cpu = sp::make_cpu_backend(0);
  nlohmann::json results = nlohmann::json::array();
  fmt::print("{:>7} {:>18} {:>4} {:>7} {:>6} {:>7} {:>6} {:>9} {:>14} {:>13} {:>8} {:>8} {:>8}\n",
             "(n,m)", "variant", "K", "models", "data", "rows", "steps", "max ulps",
             "sample-steps/s", "model-steps/s", "ceiling", "warps/SM", "wall s");
  // The JSON is rewritten after every result (to a temporary, then renamed: never half a file),
  // so that a run cut short — a lent GPU's time limit — keeps what it measured; "complete" says
  // whether it ran to the end.
  auto save = [&](bool complete) {
    if (out.empty()) return;
    const nlohmann::json doc = {
        {"tool", "bench_kernels"},
        {"version", SUPERPOSE_VERSION},
        {"device", properties.name},
        {"sms", properties.multiProcessorCount},
        {"clock_ghz", clock_khz / 1e6},
        {"thread_instructions_per_s", issue_per_s},
        {"plan", which},
        {"timing",
         "CUDA events around the cuda backend's loop of training launches (not allocation, "
         "upload, dataset generation or download), median of repeats after a warm-up; wall_s: the "
         "whole train()"},
        {"validation",
         "64 models x 20 steps against the cpu backend: valid only with identical bits (W, b, "
         "train and eval loss); max_ulps is the largest distance"},
        {"ceiling",
         "bench/CEILING.md: issue rate / thread-instructions per sample-step (SASS counts from "
         "bench/sass_report.py, " +
             counts.arch() + ")"},
        {"smoke", smoke},
        {"complete", complete},
        {"results", results}};
    sp::write_file_atomically(out, [&](std::ostream& file) { file << doc.dump(2) << "\n"; });
  };
  if (smoke) repeats = 1;
  bool all_valid = true;
  for (const Case& c : plan(which, smoke)) {
    sp::CudaOptions::Timings timings;
    sp::CudaOptions timed = c.variant.options;
    timed.timings = &timings;
    auto gpu = sp::make_cuda_backend(timed);
    const int batch = smoke ? 64 : 1024;
    // Validate: 64 models, 20 steps (3 in a smoke run, of 4 models at the large shapes: the
    // emulator is slow there), against the cpu backend, bit for bit.
    const bool large_shape = c.n * c.m >= sp::cuda::kTiledMinEntries;
    const sp::GroupSpec check_group = sp::bench::make_group(
        c.n, c.m, c.mode, batch, smoke && large_shape ? 4 : 64, smoke ? 3 : 20);
    const int64_t ulps = largest_ulp_distance(gpu->train(check_group), cpu->train(check_group));
    const bool valid = ulps == 0;
    all_valid = all_valid && valid;

    const double per_step = static_cast<double>(batch) * c.models;
    // About 2e10 sample-steps a case; for the large shapes as many fused multiply-adds (5 m n a
    // sample-step) as 2e10 sample-steps of 60, and at least 20 steps (20 at (400,30), 1,000
    // models).
    const double work = large_shape ? 60.0 / (5.0 * c.n * c.m) : 1.0;
    const int steps = smoke ? 2
                            : static_cast<int>(std::clamp(2e10 * work / per_step,
                                                          large_shape ? 20.0 : 200.0, 10000.0));
    const sp::GroupSpec g = sp::bench::make_group(c.n, c.m, c.mode, batch, c.models, steps);
    gpu->train(g);  // warm-up
    std::vector<double> training_ms, wall_s;
    for (int r = 0; r < repeats; ++r) {
      timings = {};
      const auto start = std::chrono::steady_clock::now();
      gpu->train(g);
      wall_s.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      training_ms.push_back(timings.training_ms);
    }
    std::sort(training_ms.begin(), training_ms.end());
    std::sort(wall_s.begin(), wall_s.end());
    const double seconds = training_ms[training_ms.size() / 2] / 1e3;
    const double wall = wall_s[wall_s.size() / 2];
    const double sample_steps = per_step * steps / seconds;
    const sp::cuda::TrainKernelInfo kernel =
        kernel_of(c.variant, c.n, c.m, c.mode, g.train_rows(), steps);
    const bool drawn =
        c.mode == sp::DataMode::fresh || c.variant.options.fixed_rows == "regenerate";
    const std::string rows = drawn ? "drawn" : kernel.rows_on_chip ? "on chip" : "loaded";
    const double instructions = counts.per_sample(kernel.name, rows);
    const double ceiling = instructions > 0 ? issue_per_s / instructions : 0;
    fmt::print(
        "{:>7} {:>18} {:>4} {:>7} {:>6} {:>7} {:>6} {:>9} {:>14.3e} {:>13.3e} {:>8} {:>8} "
        "{:>8.3f}{}\n",
        fmt::format("({},{})", c.n, c.m), c.variant.name, c.variant.options.steps_per_launch,
        c.models, sp::to_string(c.mode), rows, steps, ulps, sample_steps,
        c.models * steps / seconds,
        ceiling > 0 ? fmt::format("{:.1f}%", 100 * sample_steps / ceiling) : "-",
        kernel.warps_per_sm > 0 ? std::to_string(kernel.warps_per_sm) : "-", wall,
        valid ? "" : "  INVALID: differs from the cpu backend");
    std::fflush(stdout);
    results.push_back({{"n", c.n},
                       {"m", c.m},
                       {"variant", c.variant.name},
                       {"steps_per_launch", c.variant.options.steps_per_launch},
                       {"models", c.models},
                       {"data_mode", sp::to_string(c.mode)},
                       {"rows", rows},
                       {"kernel", kernel.name},
                       {"resident_warps_per_sm", kernel.warps_per_sm},
                       {"batch", batch},
                       {"steps", steps},
                       {"median_s", seconds},
                       {"wall_s", wall},
                       {"max_ulps_vs_cpu", ulps},
                       {"valid", valid},
                       {"sample_steps_per_s", sample_steps},
                       {"model_steps_per_s", c.models * steps / seconds},
                       {"instructions_per_sample", instructions},
                       {"ceiling_sample_steps_per_s", ceiling},
                       {"fraction_of_ceiling", ceiling > 0 ? sample_steps / ceiling : 0.0}});
    save(false);
  }
  save(true);
  if (!all_valid) fmt::print(stderr, "bench_kernels: a variant disagrees with the cpu backend\n");
  return all_valid ? 0 : 1;
}
