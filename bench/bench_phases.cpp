// bench_phases — where one CPU step's time goes, for tuning host/backends/cpu_simd.inc and
// host/backends/simd_philox.hpp: on each SIMD path this CPU has (or the one --simd names), one
// model, one thread, `--rows` fresh rows, the fastest of --repeats calls of each phase:
//   draw   SimdStep::generate_rows (Philox, masks and values, into the lanes)
//   step   SimdStep::loss_and_gradients on those rows (forward, backward, ∂W, ∂b, the lane tree)
//   adamw  SimdStep::adamw over W's m·n parameters
// and the step's rate in FMAs (5·m·n a row: H, Z, G_h and the two halves of ∂W). bench_train times
// whole sweeps end to end; this separates the parts, so a change to one of them can be measured
// without the noise of the others (alternate an old and a new binary: single figures move ±10 %
// on a shared VM).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "host/backends/cpu_backend.hpp"
#include "host/core/data.hpp"
#include "host/io/run_dir.hpp"

namespace {

template <class F>
double fastest(int repeats, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f(r);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_phases: where one CPU step's time goes (draw, step, AdamW)"};
  std::vector<int> features = {20, 100, 200, 400}, hidden = {5, 20, 20, 30};
  std::vector<double> sparsities = {0.9};
  int rows = 1024, repeats = 50;
  std::string simd, out;
  app.add_option("--n", features, "features, one per shape")->capture_default_str();
  app.add_option("--m", hidden, "hidden dimensions, one per shape")->capture_default_str();
  app.add_option("--sparsity", sparsities, "every feature's sparsity (one run each)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--rows", rows, "rows a step")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--repeats", repeats, "calls of each phase; the fastest is kept")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--simd", simd, "generic | avx2 | avx512 (default: every path this CPU has)");
  app.add_option("--out", out, "JSON results file");
  CLI11_PARSE(app, argc, argv);
  if (features.size() != hidden.size()) {
    fmt::print(stderr, "bench_phases: error: --n and --m need as many values each\n");
    return 2;
  }
  for (size_t i = 0; i < features.size(); ++i)
    if (features[i] < 1 || hidden[i] < 1) {
      fmt::print(stderr, "bench_phases: error: --n and --m must be at least 1\n");
      return 2;
    }

  using sp::cpu::SimdPath;
  std::vector<SimdPath> paths;
  for (SimdPath path : {SimdPath::generic, SimdPath::avx2, SimdPath::avx512}) {
    if (!simd.empty() && simd != sp::cpu::to_string(path)) continue;
    if (!simd.empty() && !sp::cpu::simd_path_supported(path)) {
      fmt::print(stderr, "bench_phases: error: this CPU has no {} path\n", simd);
      return 2;
    }
    if (sp::cpu::simd_path_supported(path)) paths.push_back(path);
  }
  if (paths.empty()) {
    fmt::print(stderr, "bench_phases: error: --simd must be generic, avx2 or avx512\n");
    return 2;
  }

  nlohmann::json results = nlohmann::json::array();
  fmt::print("{:>7} {:>4} {:>4} {:>8} {:>10} {:>10} {:>10} {:>11} {:>12}\n", "path", "n", "m",
             "sparsity", "draw µs", "step µs", "adamw µs", "draw share", "step GFMA/s");
  for (SimdPath path : paths)
    for (size_t shape = 0; shape < features.size(); ++shape)
      for (double sparsity : sparsities) {
        const int n = features[shape], m = hidden[shape];
        sp::GroupSpec group;
        group.n_features = n;
        group.n_hidden = m;
        sp::ModelSpec model;
        model.seed = 7;
        model.sparsity.assign(n, sparsity);
        model.importance.assign(n, 1.0);
        const sp::FeatureGroups independent{};
        const std::vector<float> threshold = sp::mask_thresholds(model, independent);
        std::vector<float> W = sp::initial_W(group, model), b(n, 0.0f), importance(n, 1.0f),
                           grad_W(W.size()), grad_b(n), adam_m(W.size()), adam_v(W.size());
        sp::cpu::SimdStep step(n, m, path);
        const double draw = fastest(repeats, [&](int r) {
          step.generate_rows(model, threshold.data(), independent,
                             static_cast<uint64_t>(r) * static_cast<uint64_t>(rows), rows);
        });
        float loss = 0.0f;
        const double gradients = fastest(repeats, [&](int) {
          loss += step.loss_and_gradients(sp::Activation{}, W.data(), b.data(), importance.data(),
                                          grad_W.data(), grad_b.data());
        });
        const double update = fastest(repeats, [&](int) {
          step.adamw(W.data(), adam_m.data(), adam_v.data(), grad_W.data(),
                     static_cast<int>(W.size()), sp::AdamWStep{0.999f, 1e-3f, 0.5f});
        });
        const double fmas = 5.0 * n * m * rows, share = draw / (draw + gradients + update);
        fmt::print("{:>7} {:>4} {:>4} {:>8} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.0f}% {:>12.1f}\n",
                   sp::cpu::to_string(path), n, m, sparsity, draw * 1e6, gradients * 1e6,
                   update * 1e6, 100.0 * share, fmas / gradients * 1e-9);
        if (!(loss == loss)) fmt::print(stderr, "bench_phases: warning: the loss is NaN\n");
        results.push_back({{"path", sp::cpu::to_string(path)},
                           {"n", n},
                           {"m", m},
                           {"sparsity", sparsity},
                           {"rows", rows},
                           {"draw_s", draw},
                           {"step_s", gradients},
                           {"adamw_s", update},
                           {"step_fma_per_s", fmas / gradients}});
      }
  if (!out.empty()) {
    const nlohmann::json doc = {{"tool", "bench_phases"},
                                {"version", SUPERPOSE_VERSION},
                                {"repeats", repeats},
                                {"timing", "fastest of the repeats, one thread, one model"},
                                {"results", results}};
    sp::write_file_atomically(out, [&](std::ostream& file) { file << doc.dump(2) << "\n"; });
  }
  return 0;
}
