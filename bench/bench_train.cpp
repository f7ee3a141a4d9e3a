// bench_train — sample-steps/s of one backend over the shapes and sweep sizes researchers use.
// Each configuration: one warm-up run, then the median of --repeats timed runs of the whole
// backend->train() (upload, all steps, download), so the figures are end-to-end per sweep.
// Results: a table on stdout and JSON (--out) with the machine, backend and device.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "bench/bench_group.hpp"
#include "host/backends/backend.hpp"
#include "host/io/run_dir.hpp"

int main(int argc, char** argv) {
  CLI::App app{"bench_train: sample-steps/s of a superpose backend"};
  std::string backend_name = "cpu", out, model_name = "relu";
  int repeats = 3, threads = 0;
  double work = 2e8;  // sample-steps per timed run (steps are derived from it)
  int one_n = 0, one_m = 0, one_batch = 1024, one_models = 0;
  std::string one_mode = "fixed";
  double sparsity = 0.9;
  app.add_option("--backend", backend_name, "cpu | cuda | reference")->capture_default_str();
  app.add_option("--out", out, "JSON results file");
  app.add_option("--repeats", repeats, "timed runs per configuration")->capture_default_str();
  app.add_option("--threads", threads, "cpu threads (0: all)")->capture_default_str();
  app.add_option("--work", work, "sample-steps per timed run")->capture_default_str();
  app.add_option("--n", one_n, "one configuration only: features (with --m, --models)");
  app.add_option("--m", one_m, "one configuration only: hidden dimensions");
  app.add_option("--batch", one_batch, "one configuration only: rows per step")
      ->capture_default_str();
  app.add_option("--models", one_models, "one configuration only: models");
  app.add_option("--data-mode", one_mode, "one configuration only: fixed | fresh")
      ->capture_default_str();
  app.add_option("--model", model_name, "linear | relu | neuron (every model)")
      ->capture_default_str();
  app.add_option("--sparsity", sparsity, "every feature's sparsity (probability of a zero)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<sp::Backend> backend;
  sp::ModelKind kind = sp::ModelKind::relu;
  try {
    backend = sp::make_backend(sp::parse_backend_kind(backend_name, "--backend"), threads);
    kind = sp::parse_model_kind(model_name, "--model");
  } catch (const sp::UsageError& e) {
    fmt::print(stderr, "bench_train: error: {}\n", e.what());
    return 2;
  }
  struct Config {
    int n, m, batch, models;
    sp::DataMode mode;
  };
  std::vector<Config> configs;
  if (one_models > 0) {
    if (one_n < 1 || one_m < 1 || one_batch < 1) {
      fmt::print(stderr, "bench_train: error: --n, --m and --batch must be at least 1\n");
      return 2;
    }
    configs.push_back(
        {one_n, one_m, one_batch, one_models, sp::parse_data_mode(one_mode, "--data-mode")});
  }
  if (configs.empty()) {
    for (int models : {1, 100, 1000, 10000})
      for (sp::DataMode mode : {sp::DataMode::fixed, sp::DataMode::fresh})
        configs.push_back({2, 1, 1024, models, mode});
    for (int models : {1, 100, 1000}) configs.push_back({5, 2, 1024, models, sp::DataMode::fresh});
    for (int models : {1, 100, 1000}) configs.push_back({20, 5, 1024, models, sp::DataMode::fresh});
  }

  nlohmann::json results = nlohmann::json::array();
  fmt::print("{:>4} {:>4} {:>6} {:>7} {:>6} {:>6} {:>14} {:>14}\n", "n", "m", "batch", "models",
             "data", "steps", "sample-steps/s", "model-steps/s");
  for (const Config& c : configs) {
    const double per_step = static_cast<double>(c.batch) * c.models;
    const int steps = static_cast<int>(std::clamp(work / per_step, 5.0, 2000.0));
    const sp::GroupSpec g =
        sp::bench::make_group(c.n, c.m, c.mode, c.batch, c.models, steps, sparsity, kind);
    backend->train(g);  // warm-up
    std::vector<double> seconds;
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      backend->train(g);
      seconds.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    const double sample_steps = per_step * steps / median, model_steps = c.models * steps / median;
    fmt::print("{:>4} {:>4} {:>6} {:>7} {:>6} {:>6} {:>14.3e} {:>14.3e}\n", c.n, c.m, c.batch,
               c.models, sp::to_string(c.mode), steps, sample_steps, model_steps);
    results.push_back({{"n", c.n},
                       {"m", c.m},
                       {"batch", c.batch},
                       {"models", c.models},
                       {"data_mode", sp::to_string(c.mode)},
                       {"model", sp::to_string(kind)},
                       {"steps", steps},
                       {"median_s", median},
                       {"sample_steps_per_s", sample_steps},
                       {"model_steps_per_s", model_steps}});
  }
  if (!out.empty()) {
    const nlohmann::json doc = {{"tool", "bench_train"},
                                {"version", SUPERPOSE_VERSION},
                                {"backend", backend->name()},
                                {"device", backend->device()},
                                {"repeats", repeats},
                                {"sparsity", sparsity},
                                {"timing", "median wall time of backend->train(), end to end"},
                                {"results", results}};
    sp::write_file_atomically(out, [&](std::ostream& file) { file << doc.dump(2) << "\n"; });
  }
  return 0;
}
