// cpu_backend.hpp — float32 on all cores, built from the kernels' own __host__ __device__
// per-sample math and lane decomposition (kernels/toy_model.hpp), so CI runs the GPU's arithmetic.
#pragma once

#include <cstdint>
#include <vector>

#include "host/core/config.hpp"
#include "host/core/data.hpp"

namespace sp::cpu {

// Scratch for one model's step: one partial sum per lane for every gradient entry and the loss.
struct LaneScratch {
  std::vector<float> partial;  // kLanes x (m n + n), lane-major
  std::vector<float> partial_loss;
  std::vector<float> hidden, grad_hidden, grad_z;
  void resize(int n, int m);
};

// One step's loss and gradients over `rows` samples (rows x n), in the kernel's order: lane l
// accumulates rows l, l + 32, ...; then the lanes are summed by cub::WarpReduce's tree.
// Returns L; writes ∂W (m x n) and ∂b (n).
float loss_and_gradients(int n, int m, Activation act, const float* W, const float* b,
                         const float* importance, const float* x, int rows, float* grad_W,
                         float* grad_b, LaneScratch& scratch);

// L alone, in the same order (NaN for zero rows).
float loss(int n, int m, Activation act, const float* W, const float* b, const float* importance,
           const float* x, int rows, LaneScratch& scratch);

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

// The SIMD paths: host/backends/cpu_simd.inc compiled once per instruction set, in one binary that
// runs on any x86-64 CPU. `generic` is 8 lanes as a loop (std::fma: one instruction where the CPU
// has FMA, exact software otherwise); `avx2` 8 lanes in a ymm register (AVX2 + FMA, x86-64-v3);
// `avx512` 16 in a zmm register and 16 Philox counters at once (x86-64-v4). All give the same bits.
enum class SimdPath { generic, avx2, avx512 };
const char* to_string(SimdPath path);
bool simd_path_supported(SimdPath path);  // by this CPU
// The path the cpu backend takes: the widest this CPU supports, or the one the environment
// variable SUPERPOSE_SIMD names (generic, avx2, avx512; one the CPU lacks is an error).
SimdPath simd_path();

// One instruction set's step (host/backends/cpu_simd.inc).
class SimdStepImpl {
 public:
  virtual ~SimdStepImpl() = default;
  virtual void set_rows(const float* x, int rows) = 0;
  virtual void generate_rows(const ModelSpec& model, const float* threshold,
                             const FeatureGroups& groups, uint64_t first_subsequence, int rows) = 0;
  virtual float loss_and_gradients(Activation act, const float* W, const float* b,
                                   const float* importance, float* grad_W, float* grad_b) = 0;
  virtual int set_threads(int threads) = 0;
  virtual void adamw(float* param, float* adam_m, float* adam_v, const float* grad, int count,
                     AdamWStep scalars) = 0;
};

// The same step, V rows at a time (V = a vector register's floats: 16 on avx512, 8 on avx2 and
// generic; rows r .. r+V-1 belong to lanes r mod 32 .. r mod 32 + V-1), through
// forward_backward_sample and accumulate_grad_W on packs of V floats (the latter over blocks of
// packs for shapes with many ∂W entries); the rows left over at the end go through the float path
// into their lanes. Same lanes, same order within every gradient entry, so the same bits as
// loss_and_gradients above on every path (tested), several times faster.
class SimdStep {
 public:
  SimdStep(int n, int m, SimdPath path = simd_path());
  ~SimdStep();
  SimdStep(const SimdStep&) = delete;
  SimdStep& operator=(const SimdStep&) = delete;
  // The rows every following step uses (rows x n, row-major; transposed into the lanes' layout
  // here: call again when they change).
  void set_rows(const float* x, int rows) { impl_->set_rows(x, rows); }
  // Fresh rows first_subsequence .. + rows - 1 of `model`, drawn straight into the lanes' layout
  // (16 rows per Philox call on the avx512 path; elsewhere generate_rows, then set_rows): the same
  // values as generate_rows(model, n, first_subsequence, rows, groups), bit for bit (tested).
  // `threshold`: mask_thresholds(model, groups).
  void generate_rows(const ModelSpec& model, const float* threshold, const FeatureGroups& groups,
                     uint64_t first_subsequence, int rows) {
    impl_->generate_rows(model, threshold, groups, first_subsequence, rows);
  }
  float loss_and_gradients(Activation act, const float* W, const float* b, const float* importance,
                           float* grad_W, float* grad_b) {
    return impl_->loss_and_gradients(act, W, b, importance, grad_W, grad_b);
  }
  // Splits each step's lanes over up to `threads` threads (its own, started here and kept until
  // the next call or the end): lane groups of V lanes, whole, so at most 32 / V threads (2 on
  // avx512, 4 on avx2 and generic), as many as divide the groups evenly. Each lane's partial sums
  // are its own rows in order whoever computes them: the same bits (tested). Returns how many.
  int set_threads(int threads) { return impl_->set_threads(threads); }
  // adamw_update on param[k], adam_m[k], adam_v[k] with grad[k] for k < count, V at a time: the
  // float code's bits (tested).
  void adamw(float* param, float* adam_m, float* adam_v, const float* grad, int count,
             AdamWStep scalars) {
    impl_->adamw(param, adam_m, adam_v, grad, count, scalars);
  }

 private:
  SimdStepImpl* impl_;
};

// From this many ∂W entries (m n) on, a step runs as GEMM-like passes over blocks of packs
// (host/backends/cpu_simd.inc; measured with bench_train, one thread, fixed rows: equal at 37 -> 7,
// +14 % at 40 -> 8, +46 % at 200 -> 20, +69 % at 400 -> 30; at 20 -> 5 the per-pack form is 30 %
// faster), and one model's step may be split over threads (train: a step is then long enough, ≥ 0.1
// ms at batch 1024, for two thread hand-offs a step not to matter).
constexpr int kBlockedEntries = 256;

// One model, trained whole. threads > 1: its steps split over that many threads where the shape
// is large enough to gain (kBlockedEntries; SimdStep::set_threads), with the same bits.
ModelResult train(const GroupSpec& group, const ModelSpec& model, int threads = 1);

}  // namespace sp::cpu
