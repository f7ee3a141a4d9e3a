// bench_kernels — the CUDA kernel variants side by side, in the manner of llm.c's dev/cuda: each
// variant (the shape's own mapping or the global mapping; K = 1 or 100 steps per launch) is first
// validated against the cpu backend (the kernels' own arithmetic on the host, itself checked
// against the double reference in CI), then timed with CUDA events after a warm-up, median of
// repeats, and reported as sample-steps/s, model-steps/s and the fraction of the instruction-issue
// ceiling worked out in bench/CEILING.md. Results: a table and JSON (--out) with the device name.
//
// Timed: the cuda backend's whole train() of a sweep (upload, every launch, download), between
// two events on the default stream — what a user waits for, not the kernel alone.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench_group.hpp"
#include "host/backend.hpp"
#include "host/run_dir.hpp"
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
  std::string name;  // the mapping: registers, shared, global (+ where fixed rows come from)
  sp::CudaOptions options;
  bool fixed_only = false;  // a variant of how fixed data is read
};

// The training kernel a run of the variant launches (kernels/fused_step.cu decides it, from the
// mapping and the chunk's rows-on-chip flag the cuda backend sets as here).
sp::cuda::TrainKernelInfo kernel_of(const Variant& variant, int n, int m, sp::DataMode mode,
                                    int train_rows, int steps) {
  sp::cuda::Mapping mapping = sp::cuda::mapping_for(n, m);
  if (variant.options.mapping == "global") mapping = sp::cuda::Mapping::global;
  if (variant.options.mapping == "shared") mapping = sp::cuda::shared_mapping_for(n, m);
  const bool rows_on_chip = mode == sp::DataMode::fixed && variant.options.fixed_rows == "auto" &&
                            sp::cuda::rows_fit_on_chip(mapping, n, train_rows);
  return sp::cuda::train_kernel_info(mapping, rows_on_chip, n, train_rows,
                                     std::min(steps, variant.options.steps_per_launch));
}

// Each shape's own mapping first, then the ones it can be forced onto.
std::vector<Variant> variants_for(int n, int m, int steps_per_launch) {
  sp::CudaOptions own, shared, global;
  own.steps_per_launch = shared.steps_per_launch = global.steps_per_launch = steps_per_launch;
  shared.mapping = "shared";
  global.mapping = "global";
  std::vector<Variant> variants;
  if (n == 20 && m == 5) {
    variants.push_back({"shared (own)", own});
  } else {
    variants.push_back({"registers (own)", own});
    if (n == 5 && m == 2) variants.push_back({"shared", shared});
  }
  // Fixed data drawn again each step, or read from device memory each step, instead of the own
  // choice (on chip where the rows fit, bench/CEILING.md): which is faster is a question for the
  // GPU, asked of each shape's own mapping.
  Variant drawn = variants.front();
  drawn.name = drawn.name.substr(0, drawn.name.find(' ')) + " (drawn)";
  drawn.options.fixed_rows = "regenerate";
  drawn.fixed_only = true;
  variants.push_back(drawn);
  if (n != 20) {
    Variant memory = variants.front();
    memory.name = memory.name.substr(0, memory.name.find(' ')) + " (memory)";
    memory.options.fixed_rows = "memory";
    memory.fixed_only = true;
    variants.push_back(memory);
  }
  variants.push_back({"global", global});
  return variants;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_kernels: the CUDA kernel variants, validated, then timed with CUDA events"};
  std::string out, sass = std::string(SUPERPOSE_SOURCE_DIR) + "/bench/results/sass-sm_90.json";
  int repeats = 5;
  bool quick = false, smoke = false;
  app.add_option("--out", out, "JSON results file");
  app.add_option("--repeats", repeats, "timed runs per configuration (median)")
      ->capture_default_str();
  app.add_option("--sass", sass, "instruction counts per sample (bench/sass_report.py --out)")
      ->capture_default_str();
  app.add_flag("--quick", quick, "models up to 10,000 only");
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

  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  auto cpu = sp::make_cpu_backend(0);
  nlohmann::json results = nlohmann::json::array();
  fmt::print("{:>7} {:>18} {:>4} {:>7} {:>6} {:>7} {:>6} {:>12} {:>14} {:>13} {:>8} {:>8}\n",
             "(n,m)", "variant", "K", "models", "data", "rows", "steps", "max rel err",
             "sample-steps/s", "model-steps/s", "ceiling", "warps/SM");
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
        {"timing",
         "CUDA events around the cuda backend's train(): upload, launches, download; "
         "median of repeats after a warm-up"},
        {"ceiling",
         "bench/CEILING.md: issue rate / thread-instructions per sample-step (SASS counts from "
         "bench/sass_report.py, " +
             counts.arch() + ")"},
        {"smoke", smoke},
        {"complete", complete},
        {"results", results}};
    sp::write_file_atomically(out, [&](std::ostream& file) { file << doc.dump(2) << "\n"; });
  };
  struct Shape {
    int n, m;
  };
  if (smoke) repeats = 1;
  bool all_valid = true;
  for (Shape shape : {Shape{2, 1}, Shape{5, 2}, Shape{20, 5}}) {
    std::vector<Variant> variants;
    for (int K : {1, 100})
      for (const Variant& variant : variants_for(shape.n, shape.m, K)) variants.push_back(variant);
    for (const Variant& variant : variants) {
      auto gpu = sp::make_cuda_backend(variant.options);
      for (sp::DataMode mode : {sp::DataMode::fresh, sp::DataMode::fixed}) {
        if (variant.fixed_only && mode != sp::DataMode::fixed) continue;
        // Validate: 64 models, 20 steps, against the cpu backend (a few ulps expected).
        const sp::GroupSpec check_group =
            sp::bench::make_group(shape.n, shape.m, mode, smoke ? 64 : 1024, 64, smoke ? 3 : 20);
        const auto expected = cpu->train(check_group);
        const auto got = gpu->train(check_group);
        double max_rel = 0;
        for (size_t i = 0; i < got.size(); ++i)
          for (size_t k = 0; k < got[i].W.size(); ++k)
            max_rel = std::max(max_rel, std::abs(got[i].W[k] - expected[i].W[k]) /
                                            std::max(1e-6, std::abs(expected[i].W[k])));
        const bool valid = max_rel <= 1e-5;
        all_valid = all_valid && valid;
        for (int models : {1, 100, 1000, 10000, 100000}) {
          if ((quick && models > 10000) || (smoke && models > 100)) continue;
          const int batch = smoke ? 64 : 1024;
          const double per_step = static_cast<double>(batch) * models;
          const int steps =
              smoke ? 2 : static_cast<int>(std::clamp(4e10 / per_step, 200.0, 10000.0));
          const sp::GroupSpec g =
              sp::bench::make_group(shape.n, shape.m, mode, batch, models, steps);
          gpu->train(g);  // warm-up
          std::vector<float> ms;
          for (int r = 0; r < repeats; ++r) {
            check(cudaEventRecord(start), "cudaEventRecord");
            gpu->train(g);
            check(cudaEventRecord(stop), "cudaEventRecord");
            check(cudaEventSynchronize(stop), "cudaEventSynchronize");
            float elapsed = 0;
            check(cudaEventElapsedTime(&elapsed, start, stop), "cudaEventElapsedTime");
            ms.push_back(elapsed);
          }
          std::sort(ms.begin(), ms.end());
          const double seconds = ms[ms.size() / 2] / 1e3;
          const double sample_steps = per_step * steps / seconds;
          const sp::cuda::TrainKernelInfo kernel =
              kernel_of(variant, shape.n, shape.m, mode, g.train_rows(), steps);
          const bool drawn =
              mode == sp::DataMode::fresh || variant.options.fixed_rows == "regenerate";
          const std::string rows = drawn ? "drawn" : kernel.rows_on_chip ? "on chip" : "loaded";
          const double instructions = counts.per_sample(kernel.name, rows);
          const double ceiling = instructions > 0 ? issue_per_s / instructions : 0;
          fmt::print(
              "{:>7} {:>18} {:>4} {:>7} {:>6} {:>7} {:>6} {:>12.2e} {:>14.3e} {:>13.3e} {:>8} "
              "{:>8}{}\n",
              fmt::format("({},{})", shape.n, shape.m), variant.name,
              variant.options.steps_per_launch, models, sp::to_string(mode), rows, steps, max_rel,
              sample_steps, models * steps / seconds,
              ceiling > 0 ? fmt::format("{:.1f}%", 100 * sample_steps / ceiling) : "-",
              kernel.warps_per_sm > 0 ? std::to_string(kernel.warps_per_sm) : "-",
              valid ? "" : "  INVALID");
          std::fflush(stdout);
          results.push_back({{"n", shape.n},
                             {"m", shape.m},
                             {"variant", variant.name},
                             {"steps_per_launch", variant.options.steps_per_launch},
                             {"models", models},
                             {"data_mode", sp::to_string(mode)},
                             {"rows", rows},
                             {"kernel", kernel.name},
                             {"resident_warps_per_sm", kernel.warps_per_sm},
                             {"batch", batch},
                             {"steps", steps},
                             {"median_s", seconds},
                             {"validated_max_rel_err_vs_cpu", max_rel},
                             {"valid", valid},
                             {"sample_steps_per_s", sample_steps},
                             {"model_steps_per_s", models * steps / seconds},
                             {"instructions_per_sample", instructions},
                             {"ceiling_sample_steps_per_s", ceiling},
                             {"fraction_of_ceiling", ceiling > 0 ? sample_steps / ceiling : 0.0}});
          save(false);
        }
      }
    }
  }
  save(true);
  check(cudaEventDestroy(start), "cudaEventDestroy");
  check(cudaEventDestroy(stop), "cudaEventDestroy");
  if (!all_valid) fmt::print(stderr, "bench_kernels: a variant disagrees with the cpu backend\n");
  return all_valid ? 0 : 1;
}
