#include "host/backends/cpu_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "host/backends/backend.hpp"
#include "host/core/job.hpp"
#include "host/core/recorder.hpp"
#include "kernels/toy_model.hpp"

namespace sp::cpu {

void LaneScratch::resize(int n, int m) {
  partial.assign(static_cast<size_t>(kLanes) * (m * n + n), 0.0f);
  partial_loss.assign(kLanes, 0.0f);
  hidden.assign(m, 0.0f);
  grad_hidden.assign(m, 0.0f);
  grad_z.assign(n, 0.0f);
}

namespace {

template <class D>
float step_sums(D dims, Activation act, const float* W, const float* b, const float* importance,
                const float* x, int rows, float* grad_W, float* grad_b, LaneScratch& s) {
  const int n = dims.n(), m = dims.m(), params = m * n + n;
  std::fill(s.partial.begin(), s.partial.end(), 0.0f);
  std::fill(s.partial_loss.begin(), s.partial_loss.end(), 0.0f);
  const float grad_scale = 2.0f * mean_scale(rows, n);
  for (int r = 0; r < rows; ++r) {
    const int lane = r % kLanes;
    float* lane_grads = &s.partial[static_cast<size_t>(lane) * params];
    s.partial_loss[lane] += accumulate_sample(
        n, m, act, W, b, importance, x + static_cast<size_t>(r) * n, grad_scale, lane_grads,
        lane_grads + m * n, s.hidden.data(), s.grad_hidden.data(), s.grad_z.data());
  }
  for (int k = 0; k < m * n; ++k) grad_W[k] = lane_tree_sum(&s.partial[k], params);
  for (int f = 0; f < n; ++f) grad_b[f] = lane_tree_sum(&s.partial[m * n + f], params);
  return lane_tree_sum(s.partial_loss.data()) * mean_scale(rows, n);
}

template <class D>
float loss_sums(D dims, Activation act, const float* W, const float* b, const float* importance,
                const float* x, int rows, LaneScratch& s) {
  const int n = dims.n(), m = dims.m();
  std::fill(s.partial_loss.begin(), s.partial_loss.end(), 0.0f);
  for (int r = 0; r < rows; ++r)
    s.partial_loss[r % kLanes] +=
        sample_loss(n, m, act, W, b, importance, x + static_cast<size_t>(r) * n, s.hidden.data());
  return lane_tree_sum(s.partial_loss.data()) * mean_scale(rows, n);
}

}  // namespace

float loss_and_gradients(int n, int m, Activation act, const float* W, const float* b,
                         const float* importance, const float* x, int rows, float* grad_W,
                         float* grad_b, LaneScratch& scratch) {
  return with_dims(n, m, [&](auto dims) {
    return step_sums(dims, act, W, b, importance, x, rows, grad_W, grad_b, scratch);
  });
}

float loss(int n, int m, Activation act, const float* W, const float* b, const float* importance,
           const float* x, int rows, LaneScratch& scratch) {
  if (rows == 0) return std::nanf("");
  return with_dims(
      n, m, [&](auto dims) { return loss_sums(dims, act, W, b, importance, x, rows, scratch); });
}

// ------------------------------------------------------------------------------- SIMD paths
// host/cpu_simd_<set>.cpp: one make_simd_step per instruction set, each in its own namespace.
namespace avx512 {
SimdStepImpl* make_simd_step(int n, int m);
}  // namespace avx512
namespace avx2 {
SimdStepImpl* make_simd_step(int n, int m);
}  // namespace avx2
namespace generic {
SimdStepImpl* make_simd_step(int n, int m);
}  // namespace generic

const char* to_string(SimdPath path) {
  switch (path) {
    case SimdPath::avx512:
      return "avx512";
    case SimdPath::avx2:
      return "avx2";
    case SimdPath::generic:
      break;
  }
  return "generic";
}

bool simd_path_supported(SimdPath path) {
  __builtin_cpu_init();
  // What -march=x86-64-v3 and -v4 let the compiler use (the flags of
  // host/backends/cpu_simd_avx2.cpp and _avx512.cpp), feature by feature: GCC names the levels,
  // clang 14 does not.
  const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                  __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  switch (path) {
    case SimdPath::avx512:
      return v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case SimdPath::avx2:
      return v3;
    case SimdPath::generic:
      break;
  }
  return true;
}

namespace {
SimdPath choose_simd_path() {
  if (const char* named = std::getenv("SUPERPOSE_SIMD"); named && *named) {
    for (SimdPath path : {SimdPath::generic, SimdPath::avx2, SimdPath::avx512})
      if (std::string(named) == to_string(path)) {
        if (!simd_path_supported(path))
          throw UsageError(fmt::format(
              "SUPERPOSE_SIMD: this CPU ({}) has no {} (accepted here: {})", cpu_model_name(),
              named, simd_path_supported(SimdPath::avx2) ? "generic, avx2" : "generic"));
        return path;
      }
    throw UsageError(fmt::format(
        "SUPERPOSE_SIMD: '{}' is not a SIMD path (accepted: generic, avx2, avx512, or unset for "
        "the widest this CPU has)",
        named));
  }
  for (SimdPath path : {SimdPath::avx512, SimdPath::avx2})
    if (simd_path_supported(path)) return path;
  return SimdPath::generic;
}
}  // namespace

SimdPath simd_path() {
  static const SimdPath chosen = choose_simd_path();
  return chosen;
}

SimdStep::SimdStep(int n, int m, SimdPath path) {
  if (!simd_path_supported(path))
    throw std::invalid_argument(std::string("SimdStep: this CPU has no ") + to_string(path));
  switch (path) {
    case SimdPath::avx512:
      impl_ = avx512::make_simd_step(n, m);
      return;
    case SimdPath::avx2:
      impl_ = avx2::make_simd_step(n, m);
      return;
    case SimdPath::generic:
      break;
  }
  impl_ = generic::make_simd_step(n, m);
}

SimdStep::~SimdStep() { delete impl_; }

ModelResult train(const GroupSpec& group, const ModelSpec& model, int threads) {
  const int n = group.n_features, m = group.n_hidden;
  const Activation act = activation_of(model.kind);
  const int rows = group.train_rows();
  std::vector<float> W = initial_W(group, model), b = initial_b(group, model);
  std::vector<float> m_W(W.size(), 0.0f), v_W(W.size(), 0.0f), m_b(n, 0.0f), v_b(n, 0.0f);
  std::vector<float> grad_W(W.size()), grad_b(n);
  const std::vector<float> importance = to_float(model.importance);
  const std::vector<float> threshold = mask_thresholds(model, group.groups);
  const std::vector<float> dataset =
      group.mode == DataMode::fixed ? fixed_dataset(group, model) : std::vector<float>{};
  const std::vector<float> evaluation = eval_set(group, model);
  LaneScratch scratch;
  scratch.resize(n, m);
  SimdStep simd(n, m);
  if (threads > 1 && n * m >= kBlockedEntries) simd.set_threads(threads);
  if (group.mode == DataMode::fixed) simd.set_rows(dataset.data(), rows);
  auto evaluate = [&] {
    return loss(n, m, act, W.data(), b.data(), importance.data(), evaluation.data(),
                group.eval_rows(), scratch);
  };

  ModelResult result;
  TrajectoryRecorder recorder(group, result);
  float last_batch_loss = 0;
  for (int t = 0; t < group.steps; ++t) {
    if (t % 64 == 0) {
      check_cancelled();  // a stop asked for (the Python module's Ctrl-C)
      report_steps(std::min(64, group.steps - t));
    }
    if (group.mode == DataMode::fresh)
      simd.generate_rows(model, threshold.data(), group.groups, static_cast<uint64_t>(t) * rows,
                         rows);
    const float step_loss = simd.loss_and_gradients(act, W.data(), b.data(), importance.data(),
                                                    grad_W.data(), grad_b.data());
    const AdamWStep scalars = AdamWSchedule::at(
        model.lr, model.weight_decay,
        AdamWSchedule::lr_factor(group.lr_schedule, group.warmup_steps, group.steps, t + 1), t + 1);
    simd.adamw(W.data(), m_W.data(), v_W.data(), grad_W.data(), m * n, scalars);
    simd.adamw(b.data(), m_b.data(), v_b.data(), grad_b.data(), n, scalars);
    last_batch_loss = step_loss;
    recorder.after_step(t, step_loss, W, b, evaluate);
  }
  const float train_loss =
      group.mode == DataMode::fixed
          ? loss(n, m, act, W.data(), b.data(), importance.data(), dataset.data(), rows, scratch)
          : last_batch_loss;
  finish_result(result, W, b, train_loss, evaluate(), group.eval_rows() > 0);
  return result;
}

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads) : threads_(threads > 0 ? threads : usable_cpus()) {
    simd_path();  // a SUPERPOSE_SIMD this CPU cannot run is an error now, not in a worker
  }
  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return fmt::format("{} ({} thread{}, float, {})", cpu_model_name(), threads_,
                       threads_ == 1 ? "" : "s", to_string(simd_path()));
  }

  // A sweep's chunks of few large models (one model per chunk at 200 -> 20) are batched into one
  // call until every thread has a model (host/sweep/run.cpp); the chunk plan does not change.
  int64_t models_per_call() const override { return threads_; }

  // Models are independent: each is trained whole by one thread — or, when there are fewer
  // models than threads, by threads / models of them together (cpu::train: large shapes) — so
  // its bits do not depend on the thread count or on the other models.
  std::vector<ModelResult> train(const GroupSpec& group) override {
    std::vector<ModelResult> results(group.models.size());
    const int per_model = static_cast<int>(
        std::max<size_t>(1, static_cast<size_t>(threads_) / std::max<size_t>(1, results.size())));
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    auto worker = [&] {
      for (size_t i = next++; i < results.size() && !failed; i = next++) {
        try {
          results[i] = cpu::train(group, group.models[i], per_model);
        } catch (...) {
          if (!failed.exchange(true)) failure = std::current_exception();
        }
      }
    };
    const int count = static_cast<int>(std::min<size_t>(threads_, results.size()));
    std::vector<std::thread> pool;
    for (int i = 1; i < count; ++i) pool.emplace_back(worker);
    worker();
    for (auto& thread : pool) thread.join();
    if (failure) std::rethrow_exception(failure);
    return results;
  }

 private:
  int threads_;
};

}  // namespace
}  // namespace sp::cpu

namespace sp {
std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<cpu::CpuBackend>(threads);
}
}  // namespace sp
