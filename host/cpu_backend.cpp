#include "host/cpu_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <thread>

#include "host/backend.hpp"
#include "host/recorder.hpp"
#include "host/simd_lanes.hpp"
#include "host/simd_philox.hpp"
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

// The shapes researchers use most get their sizes as compile-time constants, so the compiler
// unrolls the per-sample loops exactly as nvcc does in the kernels; others run the same code with
// run-time sizes. N = 0 means "run-time".
template <int N, int M>
struct Dims {
  int runtime_n, runtime_m;
  constexpr int n() const { return N ? N : runtime_n; }
  constexpr int m() const { return M ? M : runtime_m; }
};

template <class F>
decltype(auto) with_dims(int n, int m, F&& body) {
  if (n == 2 && m == 1) return body(Dims<2, 1>{n, m});
  if (n == 5 && m == 2) return body(Dims<5, 2>{n, m});
  if (n == 20 && m == 5) return body(Dims<20, 5>{n, m});
  return body(Dims<0, 0>{n, m});
}

template <class D>
float step_sums(D dims, bool relu, const float* W, const float* b, const float* importance,
                const float* x, int rows, float* grad_W, float* grad_b, LaneScratch& s) {
  const int n = dims.n(), m = dims.m(), params = m * n + n;
  std::fill(s.partial.begin(), s.partial.end(), 0.0f);
  std::fill(s.partial_loss.begin(), s.partial_loss.end(), 0.0f);
  const float grad_scale = 2.0f * mean_scale(rows, n);
  for (int r = 0; r < rows; ++r) {
    const int lane = r % kLanes;
    float* lane_grads = &s.partial[static_cast<size_t>(lane) * params];
    s.partial_loss[lane] += accumulate_sample(
        n, m, relu, W, b, importance, x + static_cast<size_t>(r) * n, grad_scale, lane_grads,
        lane_grads + m * n, s.hidden.data(), s.grad_hidden.data(), s.grad_z.data());
  }
  for (int k = 0; k < m * n; ++k) grad_W[k] = lane_tree_sum(&s.partial[k], params);
  for (int f = 0; f < n; ++f) grad_b[f] = lane_tree_sum(&s.partial[m * n + f], params);
  return lane_tree_sum(s.partial_loss.data()) * mean_scale(rows, n);
}

template <class D>
float loss_sums(D dims, bool relu, const float* W, const float* b, const float* importance,
                const float* x, int rows, LaneScratch& s) {
  const int n = dims.n(), m = dims.m();
  std::fill(s.partial_loss.begin(), s.partial_loss.end(), 0.0f);
  for (int r = 0; r < rows; ++r)
    s.partial_loss[r % kLanes] +=
        sample_loss(n, m, relu, W, b, importance, x + static_cast<size_t>(r) * n, s.hidden.data());
  return lane_tree_sum(s.partial_loss.data()) * mean_scale(rows, n);
}

}  // namespace

float loss_and_gradients(int n, int m, bool relu, const float* W, const float* b,
                         const float* importance, const float* x, int rows, float* grad_W,
                         float* grad_b, LaneScratch& scratch) {
  return with_dims(n, m, [&](auto dims) {
    return step_sums(dims, relu, W, b, importance, x, rows, grad_W, grad_b, scratch);
  });
}

float loss(int n, int m, bool relu, const float* W, const float* b, const float* importance,
           const float* x, int rows, LaneScratch& scratch) {
  if (rows == 0) return std::nanf("");
  return with_dims(
      n, m, [&](auto dims) { return loss_sums(dims, relu, W, b, importance, x, rows, scratch); });
}

// ------------------------------------------------------------------------------- SIMD path
using Pack = Lanes;
constexpr int kSimdWidth = Lanes::kWidth;
constexpr int kGroups = kLanes / kSimdWidth;  // packs per warp-width of lanes
static_assert(kLanes % kSimdWidth == 0, "a pack must tile the 32 lanes");
// Packs whose ∂W contributions are added together, per lane group in row order, while the
// accumulators sit in registers (a multiple of kGroups; small enough to stay in L1).
constexpr int kBlockPacks = 8;
static_assert(kBlockPacks % kGroups == 0, "a block holds whole rounds of the lane groups");

struct SimdStep::State {
  int n, m, params, rows = 0;
  std::vector<Pack> x_packs;       // (rows / V) x n: pack k holds feature f of rows kV .. kV+V-1
  std::vector<float> tail;         // the rows after the last whole pack, row-major
  std::vector<float> fresh;        // generate_rows' rows where there is no SIMD Philox
  std::vector<Pack> partial;       // kGroups x params: lanes gV .. gV+V-1 of each gradient entry
  std::vector<Pack> partial_loss;  // kGroups
  // One block of packs' per-sample values between the two parts of the step: h, g_h (m each)
  // and g_z (n) per pack.
  std::vector<Pack> block_hidden, block_grad_hidden, block_grad_z;
  std::vector<float> lane_values, one_lane, scalar_hidden, scalar_grad_hidden, scalar_grad_z;
};

SimdStep::SimdStep(int n, int m) : state_(new State) {
  State& s = *state_;
  s.n = n;
  s.m = m;
  s.params = m * n + n;
  s.partial.resize(static_cast<size_t>(kGroups) * s.params);
  s.partial_loss.resize(kGroups);
  s.block_hidden.resize(static_cast<size_t>(kBlockPacks) * m);
  s.block_grad_hidden.resize(static_cast<size_t>(kBlockPacks) * m);
  s.block_grad_z.resize(static_cast<size_t>(kBlockPacks) * n);
  s.lane_values.resize(kLanes);
  s.one_lane.resize(s.params);
  s.scalar_hidden.resize(m);
  s.scalar_grad_hidden.resize(m);
  s.scalar_grad_z.resize(n);
}

SimdStep::~SimdStep() { delete state_; }

void SimdStep::set_rows(const float* x, int rows) {
  State& s = *state_;
  s.rows = rows;
  const int packs = rows / kSimdWidth;
  s.x_packs.resize(static_cast<size_t>(packs) * s.n);
  float lane_values[kSimdWidth];
  for (int k = 0; k < packs; ++k)
    for (int f = 0; f < s.n; ++f) {
      for (int i = 0; i < kSimdWidth; ++i)
        lane_values[i] = x[(static_cast<size_t>(k) * kSimdWidth + i) * s.n + f];
      s.x_packs[static_cast<size_t>(k) * s.n + f] = Pack::load(lane_values);
    }
  s.tail.assign(x + static_cast<size_t>(packs) * kSimdWidth * s.n,
                x + static_cast<size_t>(rows) * s.n);
}

void SimdStep::generate_rows(const ModelSpec& model, const float* sparsity,
                             uint64_t first_subsequence, int rows) {
  State& s = *state_;
#if defined(__AVX512F__)
  static_assert(kSimdPhilox && kSimdWidth == 16, "AVX-512: 16 lanes, 16 Philox counters");
  const int n = s.n, packs = rows / kSimdWidth;
  s.rows = rows;
  s.x_packs.resize(static_cast<size_t>(packs) * n);
  for (int k = 0; k < packs; ++k)
    generate_samples_x16(model.seed, first_subsequence + static_cast<uint64_t>(k) * kSimdWidth, n,
                         sparsity, &s.x_packs[static_cast<size_t>(k) * n].r);
  s.tail.resize(static_cast<size_t>(rows - packs * kSimdWidth) * n);
  for (int r = packs * kSimdWidth; r < rows; ++r)
    generate_sample(model.seed, first_subsequence + static_cast<uint64_t>(r), n, sparsity,
                    &s.tail[static_cast<size_t>(r - packs * kSimdWidth) * n]);
#else
  (void)sparsity;  // generate_rows reads the model's own
  s.fresh = sp::generate_rows(model, s.n, first_subsequence, rows);
  set_rows(s.fresh.data(), rows);
#endif
}

namespace {

// accumulate_grad_W for the packs first, first + kGroups, ... < count of a block, into grad_W,
// a tile of up to 5 x 4 entries at a time held in registers across the packs.
template <class D>
void block_grad_W(D dims, const Pack* hidden, const Pack* grad_z, const Pack* grad_hidden,
                  const Pack* x, int first, int count, Pack* grad_W) {
  constexpr int kTileJ = 5, kTileF = 4;
  const int n = dims.n(), m = dims.m();
  SP_UNROLL for (int j0 = 0; j0 < m; j0 += kTileJ) {
    const int tile_j = std::min(kTileJ, m - j0);
    SP_UNROLL for (int f0 = 0; f0 < n; f0 += kTileF) {
      const int tile_f = std::min(kTileF, n - f0);
      Pack tile[kTileJ][kTileF];
      SP_UNROLL for (int j = 0; j < tile_j; ++j) SP_UNROLL for (int f = 0; f < tile_f; ++f)
          tile[j][f] = grad_W[(j0 + j) * n + f0 + f];
      for (int i = first; i < count; i += kGroups) {
        const Pack* h = hidden + i * m + j0;
        const Pack* gh = grad_hidden + i * m + j0;
        const Pack* gz = grad_z + i * n + f0;
        const Pack* xi = x + static_cast<size_t>(i) * n + f0;
        SP_UNROLL for (int j = 0; j < tile_j; ++j) SP_UNROLL for (int f = 0; f < tile_f; ++f)
            tile[j][f] = fma_f(gh[j], xi[f], fma_f(h[j], gz[f], tile[j][f]));
      }
      SP_UNROLL for (int j = 0; j < tile_j; ++j) SP_UNROLL for (int f = 0; f < tile_f; ++f)
          grad_W[(j0 + j) * n + f0 + f] = tile[j][f];
    }
  }
}

template <class D>
float simd_step_sums(D dims, SimdStep::State& s, bool relu, const float* W, const float* b,
                     const float* importance, float* grad_W, float* grad_b) {
  const int n = dims.n(), m = dims.m(), params = m * n + n, rows = s.rows;
  for (Pack& p : s.partial) p = 0.0f;
  for (Pack& p : s.partial_loss) p = 0.0f;
  const float grad_scale = 2.0f * mean_scale(rows, n);
  const int packs = rows / kSimdWidth;
  // Many ∂W entries: accumulate_sample's two parts, reordered across samples but never within a
  // gradient entry:
  // per block of packs, first every pack's forward_backward_sample (loss, ∂b, and h, g_h, g_z kept
  // per pack), then accumulate_grad_W entry by entry over the block's packs of each lane group in
  // row order — the same operations in the same order for every lane as the float path (tested),
  // with a tile of ∂W accumulators in registers instead of in memory for every sample.
  if (m * n < 16) {  // few ∂W entries: they stay in L1 anyway, and the direct form is faster
    for (int k = 0; k < packs; ++k) {
      const int g = k % kGroups;
      Pack* grads = &s.partial[static_cast<size_t>(g) * params];
      s.partial_loss[g] += accumulate_sample<Pack>(
          n, m, relu, W, b, importance, &s.x_packs[static_cast<size_t>(k) * n], grad_scale, grads,
          grads + m * n, s.block_hidden.data(), s.block_grad_hidden.data(), s.block_grad_z.data());
    }
  } else {
    for (int k0 = 0; k0 < packs; k0 += kBlockPacks) {
      const int count = std::min(kBlockPacks, packs - k0);
      const Pack* x_block = &s.x_packs[static_cast<size_t>(k0) * n];
      for (int i = 0; i < count; ++i) {
        const int g = (k0 + i) % kGroups;
        s.partial_loss[g] += forward_backward_sample<Pack>(
            n, m, relu, W, b, importance, x_block + static_cast<size_t>(i) * n, grad_scale,
            &s.partial[static_cast<size_t>(g) * params + m * n], &s.block_hidden[i * m],
            &s.block_grad_hidden[i * m], &s.block_grad_z[i * n]);
      }
      for (int g = 0; g < kGroups; ++g)  // k0 is a multiple of kGroups: packs g, g + kGroups, ...
        block_grad_W(dims, s.block_hidden.data(), s.block_grad_z.data(), s.block_grad_hidden.data(),
                     x_block, g, count, &s.partial[static_cast<size_t>(g) * params]);
    }
  }
  float lane_values[kSimdWidth];
  for (int r = packs * kSimdWidth; r < rows; ++r) {  // the rows left over, one lane each
    const int lane = r % kLanes, g = lane / kSimdWidth, i = lane % kSimdWidth;
    Pack* grads = &s.partial[static_cast<size_t>(g) * params];
    for (int p = 0; p < params; ++p) {
      grads[p].store(lane_values);
      s.one_lane[p] = lane_values[i];
    }
    const float sq = accumulate_sample<float>(
        n, m, relu, W, b, importance, &s.tail[static_cast<size_t>(r - packs * kSimdWidth) * n],
        grad_scale, s.one_lane.data(), s.one_lane.data() + m * n, s.scalar_hidden.data(),
        s.scalar_grad_hidden.data(), s.scalar_grad_z.data());
    for (int p = 0; p < params; ++p) {
      grads[p].store(lane_values);
      lane_values[i] = s.one_lane[p];
      grads[p] = Pack::load(lane_values);
    }
    s.partial_loss[g].store(lane_values);
    lane_values[i] += sq;
    s.partial_loss[g] = Pack::load(lane_values);
  }
  auto tree = [&](const Pack* packs_of_entry, int stride) {
    for (int g = 0; g < kGroups; ++g)
      packs_of_entry[static_cast<size_t>(g) * stride].store(&s.lane_values[g * kSimdWidth]);
    return lane_tree_sum(s.lane_values.data());
  };
  for (int k = 0; k < m * n; ++k) grad_W[k] = tree(&s.partial[k], params);
  for (int f = 0; f < n; ++f) grad_b[f] = tree(&s.partial[m * n + f], params);
  return tree(s.partial_loss.data(), 1) * mean_scale(rows, n);
}

}  // namespace

float SimdStep::loss_and_gradients(bool relu, const float* W, const float* b,
                                   const float* importance, float* grad_W, float* grad_b) {
  return with_dims(state_->n, state_->m, [&](auto dims) {
    return simd_step_sums(dims, *state_, relu, W, b, importance, grad_W, grad_b);
  });
}

ModelResult train(const GroupSpec& group, const ModelSpec& model, const AdamWSchedule& schedule) {
  const int n = group.n_features, m = group.n_hidden;
  const bool relu = model.kind == ModelKind::relu;
  const int rows = group.train_rows();
  std::vector<float> W = initial_W(group, model), b = initial_b(group, model);
  std::vector<float> m_W(W.size(), 0.0f), v_W(W.size(), 0.0f), m_b(n, 0.0f), v_b(n, 0.0f);
  std::vector<float> grad_W(W.size()), grad_b(n);
  const std::vector<float> importance = to_float(model.importance);
  const std::vector<float> sparsity = to_float(model.sparsity);
  const std::vector<float> dataset =
      group.mode == DataMode::fixed ? fixed_dataset(group, model) : std::vector<float>{};
  const std::vector<float> evaluation = eval_set(group, model);
  LaneScratch scratch;
  scratch.resize(n, m);
  SimdStep simd(n, m);
  if (group.mode == DataMode::fixed) simd.set_rows(dataset.data(), rows);
  auto evaluate = [&] {
    return loss(n, m, relu, W.data(), b.data(), importance.data(), evaluation.data(),
                group.eval_rows(), scratch);
  };

  ModelResult result;
  TrajectoryRecorder recorder(group, result);
  float last_batch_loss = 0;
  for (int t = 0; t < group.steps; ++t) {
    if (group.mode == DataMode::fresh)
      simd.generate_rows(model, sparsity.data(), static_cast<uint64_t>(t) * rows, rows);
    const float step_loss = simd.loss_and_gradients(relu, W.data(), b.data(), importance.data(),
                                                    grad_W.data(), grad_b.data());
    const AdamWStep scalars = schedule.at(model.lr, t + 1);
    for (size_t k = 0; k < W.size(); ++k) adamw_update(W[k], m_W[k], v_W[k], grad_W[k], scalars);
    for (int f = 0; f < n; ++f) adamw_update(b[f], m_b[f], v_b[f], grad_b[f], scalars);
    last_batch_loss = step_loss;
    recorder.after_step(t, step_loss, W, b, evaluate);
  }
  const float train_loss =
      group.mode == DataMode::fixed
          ? loss(n, m, relu, W.data(), b.data(), importance.data(), dataset.data(), rows, scratch)
          : last_batch_loss;
  finish_result(result, W, b, train_loss, evaluate(), group.eval_rows() > 0);
  return result;
}

namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads)
      : threads_(threads > 0
                     ? threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {}
  std::string name() const override { return "cpu"; }
  std::string device() const override {
    return fmt::format("{} ({} thread{}, float)", cpu_model_name(), threads_,
                       threads_ == 1 ? "" : "s");
  }

  // Models are independent: each is trained whole by one thread, so its bits do not depend on
  // the thread count or on the other models.
  std::vector<ModelResult> train(const GroupSpec& group) override {
    const AdamWSchedule schedule(group.steps);
    std::vector<ModelResult> results(group.models.size());
    std::atomic<size_t> next{0};
    std::exception_ptr failure;
    std::atomic<bool> failed{false};
    auto worker = [&] {
      for (size_t i = next++; i < results.size() && !failed; i = next++) {
        try {
          results[i] = cpu::train(group, group.models[i], schedule);
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
