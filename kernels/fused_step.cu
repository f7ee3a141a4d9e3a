// fused_step.cu — the fused training step: per launch, for every model of the chunk and for K
// steps, sample generation (cuRAND's Philox), forward, ReLU, importance-weighted MSE, analytic
// gradients, the reduction over the batch (cub::WarpReduce) and the AdamW update.
// The arithmetic is kernels/toy_model.hpp's, in the lane order host/cpu_backend.cpp mirrors.
#include <cstdlib>
#include <cstring>
#include <cub/warp/warp_reduce.cuh>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/fused_step.cuh"
#include "kernels/toy_model.hpp"

namespace sp::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kThreads = kWarpsPerBlock * kLanes;
constexpr unsigned kFullMask = 0xffffffffu;

// Every launch goes through cudaLaunchKernelEx: the arguments are type-checked against the kernel's
// parameters, and a failure names the kernel (and is consumed, so that no later check reports it
// again). With SUPERPOSE_CHECK_LAUNCHES=1 in the environment every launch is also waited for and
// checked, so that a fault inside a kernel (an illegal address, say), which a device reports only
// at the next synchronisation, names the kernel that caused it; off by default (it serialises the
// host with the device). scripts/gpu-check runs the GPU tests with it on.
bool check_every_launch() {
  const char* value = std::getenv("SUPERPOSE_CHECK_LAUNCHES");
  return value && *value && std::string(value) != "0";
}

template <class... Params, class... Args>
void launch(const char* kernel_name, void (*kernel)(Params...), unsigned blocks, unsigned threads,
            size_t dynamic_shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = dynamic_shared_bytes;
  config.stream = stream;
  auto fail = [&](const char* what, cudaError_t error) {
    cudaGetLastError();
    throw std::runtime_error(std::string(__FILE__) + ": " + kernel_name + " (" +
                             std::to_string(blocks) + " blocks of " + std::to_string(threads) +
                             ", " + std::to_string(dynamic_shared_bytes) +
                             " bytes of dynamic shared memory) " + what + ": " +
                             cudaGetErrorName(error) + ", " + cudaGetErrorString(error));
  };
  const cudaError_t error = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (error != cudaSuccess) fail("failed to launch", error);
  if (check_every_launch()) {
    if (const cudaError_t run = cudaStreamSynchronize(stream); run != cudaSuccess)
      fail("failed while running (SUPERPOSE_CHECK_LAUNCHES)", run);
  }
}

using WarpSum = cub::WarpReduce<float>;

// The lanes' sum (cub's pairwise tree, valid in lane 0), broadcast to every lane.
__device__ __forceinline__ float warp_sum(WarpSum::TempStorage& temp, float value) {
  const float total = WarpSum(temp).Sum(value);
  __syncwarp();  // temp storage is reused by the next call
  return __shfl_sync(kFullMask, total, 0);
}

// The block's dynamic shared memory (the launch's dynamicSmemBytes), as floats. The emulator
// (tests/emulator) gives each block its own buffer: `extern __shared__` has no C++ spelling.
__device__ __forceinline__ float* dynamic_shared_floats() {
#if defined(SUPERPOSE_CUDA_EMULATOR)
  return static_cast<float*>(::sp_emu::dynamic_shared_memory());
#else
  extern __shared__ float dynamic_shared[];
  return dynamic_shared;
#endif
}

// Row `row` of this model's fixed dataset in device memory, n features, into x.
__device__ __forceinline__ void dataset_row(const DeviceChunk& d, int model, int row, int n,
                                            float* x) {
  const float* values = d.dataset + (static_cast<size_t>(model) * d.points + row) * n;
  for (int f = 0; f < n; ++f) x[f] = values[f];
}

// Row r of this model's training data at `step` (0-based), n features, into x: drawn (fresh data,
// or fixed data drawn again: DeviceChunk::draw_rows) or read from the dataset in memory.
// kGroups: draw with the chunk's feature groups (the global mapping); the per-shape kernels draw
// independent features only — with FeatureGroups{} a constant, the groups' branches fold away and
// their per-sample loops stay as bench/CEILING.md counts them.
template <bool kGroups>
__device__ __forceinline__ void load_row(const DeviceChunk& d, int model, int step, int r, int n,
                                         const float* sparsity, float* x) {
  if (d.draw_rows) {
    const uint64_t subsequence =
        static_cast<uint64_t>(step) * static_cast<uint64_t>(d.draw_stride) +
        static_cast<uint64_t>(r);
    generate_sample(d.seed[model], subsequence, n, sparsity, x,
                    kGroups ? d.groups : FeatureGroups{});
  } else {
    dataset_row(d, model, r, n, x);
  }
}

__device__ __forceinline__ AdamWStep step_scalars(const DeviceChunk& d, int model, int step) {
  // Computed as AdamWSchedule::at does on the host, from the same doubles in the same order
  // (-fmad=false: nothing contracts): lr_t = lr · factor, decay 1 − lr_t · wd, step size
  // lr_t / (1 − β1ᵗ), each rounded once to float.
  const int k = step - d.schedule_first;
  const double lr = d.lr[model] * d.lr_factor[k];
  return AdamWStep{static_cast<float>(1.0 - lr * d.weight_decay[model]),
                   static_cast<float>(lr / d.bias1[k]), d.bias2_sqrt[k]};
}

// The global mapping's scratch per lane: partial gradients (m n + n), x (n), hidden (m),
// grad_hidden (m), grad_z (n).
__host__ __device__ __forceinline__ size_t lane_scratch_floats(int n, int m) {
  return static_cast<size_t>(m) * n + n + n + 2 * static_cast<size_t>(m) + n;
}

// This lane's share of one step: zeroes grads[0..P), feeds rows lane, lane + 32, ... of the step's
// batch to accumulate(x) — one sample's contribution to grads, returning its Σ I (x − y)² — and
// returns the lane's sum of those. The order cpu_backend mirrors. kRowsOnChip: the rows are read
// from rows_on_chip (the training rows, n floats each, in shared memory) instead of load_row's.
template <bool kRowsOnChip = false, bool kGroups = false, class Accumulate>
__device__ __forceinline__ float lane_batch(const DeviceChunk& d, int model, int step, int n, int P,
                                            const float* sparsity, float* grads, float* x,
                                            Accumulate&& accumulate,
                                            const float* rows_on_chip = nullptr) {
  const int lane = threadIdx.x % kLanes;
  for (int k = 0; k < P; ++k) grads[k] = 0.0f;
  float lane_loss = 0.0f;
  for (int r = lane; r < d.train_rows; r += kLanes) {
    // Nothing in this loop writes memory, so the compiler would hoist every read of W out of it
    // and keep W in registers for all samples: with W in shared memory at 20 x 5, 120 registers
    // beside 120 partial gradients — spills. An empty asm with a memory clobber (no instruction)
    // makes it read W anew per sample; where W is in registers it changes nothing.
    asm volatile("" ::: "memory");
    if constexpr (kRowsOnChip) {
      for (int f = 0; f < n; ++f) x[f] = rows_on_chip[r * n + f];
    } else {
      load_row<kGroups>(d, model, step, r, n, sparsity, x);
    }
    lane_loss += accumulate(x);
  }
  return lane_loss;
}

// The step's training loss: the latest, and the curve when one is recorded (one lane calls it).
__device__ __forceinline__ void store_loss(const DeviceChunk& d, int model, int step, float loss) {
  d.last_loss[model] = loss;
  if (d.loss_curve) d.loss_curve[static_cast<size_t>(model) * d.loss_curve_stride + step] = loss;
}

// Lane 0 keeps the loss (every lane holds it after warp_sum).
__device__ __forceinline__ void record_loss(const DeviceChunk& d, int model, int step, float loss) {
  if (threadIdx.x % kLanes == 0) store_loss(d, model, step, loss);
}

// ---------------------------------------------------------------- registers mapping
// kRowsOnChip: fixed data whose training rows fit in shared memory (rows_fit_on_chip) and a launch
// of more than one step: each warp copies its model's rows there once, and every step of the
// launch reads them from there instead of from device memory (once per step, all models' datasets
// together are larger than L2 in a big sweep). The dynamic shared memory: on_chip_bytes.
template <int N, int M, bool kRowsOnChip>
__global__ void __launch_bounds__(kThreads)
    train_steps_registers(DeviceChunk d, int first_step, int count) {
  constexpr int P = M * N + N;
  __shared__ WarpSum::TempStorage temp[kWarpsPerBlock];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int model = blockIdx.x * kWarpsPerBlock + warp;
  if (model >= d.models) return;  // the whole warp leaves together

  float params[P], adam_m[P], adam_v[P], sparsity[N], importance[N];
#pragma unroll
  for (int k = 0; k < P; ++k) {
    params[k] = d.params[static_cast<size_t>(model) * P + k];
    adam_m[k] = d.adam_m[static_cast<size_t>(model) * P + k];
    adam_v[k] = d.adam_v[static_cast<size_t>(model) * P + k];
  }
#pragma unroll
  for (int f = 0; f < N; ++f) {
    sparsity[f] = d.sparsity[model * N + f];
    importance[f] = d.importance[model * N + f];
  }
  const bool relu = d.relu[model] != 0;
  const float grad_scale = 2.0f * mean_scale(d.train_rows, N);
  float* rows_on_chip = nullptr;
  if constexpr (kRowsOnChip) {
    rows_on_chip = dynamic_shared_floats() + static_cast<size_t>(warp) * d.train_rows * N;
    const float* rows = d.dataset + static_cast<size_t>(model) * d.points * N;
    for (int k = lane; k < d.train_rows * N; k += kLanes) rows_on_chip[k] = rows[k];
    __syncwarp();  // every lane reads rows the others copied
  }

  for (int step = first_step; step < first_step + count; ++step) {
    float grads[P], x[N], hidden[M], grad_hidden[M], grad_z[N];
    const float lane_loss = lane_batch<kRowsOnChip>(
        d, model, step, N, P, sparsity, grads, x,
        [&](float* row) {
          return accumulate_sample(N, M, relu, params, params + M * N, importance, row, grad_scale,
                                   grads, grads + M * N, hidden, grad_hidden, grad_z);
        },
        rows_on_chip);
    const float loss = warp_sum(temp[warp], lane_loss) * mean_scale(d.train_rows, N);
    const AdamWStep scalars = step_scalars(d, model, step);
#pragma unroll
    for (int k = 0; k < P; ++k)  // every lane updates its own identical copy
      adamw_update(params[k], adam_m[k], adam_v[k], warp_sum(temp[warp], grads[k]), scalars);
    record_loss(d, model, step, loss);
  }
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < P; ++k) {
      d.params[static_cast<size_t>(model) * P + k] = params[k];
      d.adam_m[static_cast<size_t>(model) * P + k] = adam_m[k];
      d.adam_v[static_cast<size_t>(model) * P + k] = adam_v[k];
    }
  }
}

// ---------------------------------------------------------------- shared-weights mapping
// For shapes whose P = m n + n parameters are too many for a copy per lane (20 x 5: P = 120):
// W and b live once per warp in shared memory, read by every lane at the same address (a
// broadcast); each lane keeps only its partial gradients (and loss) in registers. The reduction is
// a butterfly that scatters the totals over the lanes, 31 shuffles per 32 entries instead of
// cub::WarpReduce's 5 per entry plus a broadcast, and each lane then updates the parameters it
// owns (their AdamW moments in shared memory too). A transposed copy of W gives the backward pass
// W's columns from memory of their own (kernels/toy_model.hpp, WColumns).

// Entries a lane reduces: the P partial gradients, the loss, padding to a multiple of 32.
__host__ __device__ constexpr int reduced_entries(int P) {
  return (P + 1 + kLanes - 1) / kLanes * kLanes;
}

// The entries lane `lane` holds after butterfly_reduce_scatter<E>: E / 32 of them from this one.
// At stage s the lanes with bit s set keep the upper half of what they hold.
__host__ __device__ constexpr int owned_base(int E, int lane) {
  int base = 0;
  for (int stage = 0; stage < 5; ++stage)
    if ((lane >> stage) & 1) base += (E >> stage) / 2;
  return base;
}

// The warp's totals of v[0..E) (E a multiple of 32), lane l ending with those of entries
// owned_base(E, l) + j in v[j], j < E / 32. At offsets 1, 2, 4, 8, 16 each lane keeps one half of
// its entries and adds its partner's (lane ^ offset) copy of that half: at offset o the sums over
// aligned blocks of o lanes are added pairwise — the tree cub::WarpReduce computes in lane 0, and
// float addition is commutative, so every total has the bits of lane_tree_sum on the host.
template <int E, int Stage = 0>
__device__ __forceinline__ void butterfly_reduce_scatter(float (&v)[E], int lane) {
  static_assert(E % kLanes == 0, "whole rounds of the lanes");
  // Compile-time sizes at every stage, so that v stays in registers (a run-time bound would put
  // it in local memory).
  constexpr int kOffset = 1 << Stage, kHalf = (E >> Stage) / 2;
  const bool upper = ((lane >> Stage) & 1) != 0;
#pragma unroll
  for (int i = 0; i < kHalf; ++i) {
    const float send = upper ? v[i] : v[i + kHalf];
    const float keep = upper ? v[i + kHalf] : v[i];
    v[i] = keep + __shfl_xor_sync(kFullMask, send, kOffset);
  }
  if constexpr (Stage < 4) butterfly_reduce_scatter<E, Stage + 1>(v, lane);
}

template <int N, int M>
__global__ void __launch_bounds__(kThreads)
    train_steps_shared(DeviceChunk d, int first_step, int count) {
  constexpr int P = M * N + N, E = reduced_entries(P), kOwned = E / kLanes;
  __shared__ float shared_params[kWarpsPerBlock][P];
  __shared__ float shared_transposed_W[kWarpsPerBlock][M * N];  // Wᵀ, n x m: its columns
  // The AdamW moments too: their owner lanes use them once per step; held in registers they sit
  // through the sample loop, which needs every register (they were spilled there).
  __shared__ float shared_adam_m[kWarpsPerBlock][P], shared_adam_v[kWarpsPerBlock][P];
  __shared__ float shared_sparsity[kWarpsPerBlock][N], shared_importance[kWarpsPerBlock][N];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int model = blockIdx.x * kWarpsPerBlock + warp;
  if (model >= d.models) return;  // the whole warp leaves together

  float* params = shared_params[warp];
  float* transposed_W = shared_transposed_W[warp];
  float* sparsity = shared_sparsity[warp];
  float* importance = shared_importance[warp];
  const size_t first = static_cast<size_t>(model) * P;
  for (int k = lane; k < P; k += kLanes) params[k] = d.params[first + k];
  for (int k = lane; k < M * N; k += kLanes)
    transposed_W[(k % N) * M + k / N] = d.params[first + k];
  for (int f = lane; f < N; f += kLanes) {
    sparsity[f] = d.sparsity[static_cast<size_t>(model) * N + f];
    importance[f] = d.importance[static_cast<size_t>(model) * N + f];
  }
  // This lane's entries after the reduction: owned + j for j < kOwned, of which j < parameters
  // are parameters and j == loss_slot (if any) the loss. Two counts compared with the constant j,
  // rather than owned + j per j: those sums were kept through the sample loop, and spilled.
  const int owned = owned_base(E, lane);
  const int loss_slot = P - owned;
  const int parameters = loss_slot <= 0 ? 0 : loss_slot >= kOwned ? kOwned : loss_slot;
  float* own_params = params + owned;
  float* adam_m = shared_adam_m[warp] + owned;
  float* adam_v = shared_adam_v[warp] + owned;
#pragma unroll
  for (int j = 0; j < kOwned; ++j)
    if (j < parameters) {
      adam_m[j] = d.adam_m[first + owned + j];
      adam_v[j] = d.adam_v[first + owned + j];
    }
  __syncwarp();  // the parameters and Wᵀ in shared memory are read by every lane
  const bool relu = d.relu[model] != 0;
  const float grad_scale = 2.0f * mean_scale(d.train_rows, N);

  for (int step = first_step; step < first_step + count; ++step) {
    float v[E], x[N], hidden[M], grad_hidden[M];
    v[P] = lane_batch(d, model, step, N, P, sparsity, v, x, [&](float* row) {
      return accumulate_sample_streaming(N, M, relu, params, transposed_columns(transposed_W, M),
                                         params + M * N, importance, row, grad_scale, v, v + M * N,
                                         hidden, grad_hidden);
    });
#pragma unroll
    for (int k = P + 1; k < E; ++k) v[k] = 0.0f;
    butterfly_reduce_scatter<E>(v, lane);
    // Every lane read W, b and Wᵀ in the sample loop; the owners now overwrite them. Shuffles
    // order no memory between lanes: without this the update could land before another lane's
    // last read. (The race check builds the kernel once without it, and must report the race:
    // tests/emulator/CMakeLists.txt.)
#if !defined(SUPERPOSE_OMIT_UPDATE_SYNCWARP)
    __syncwarp();
#endif
    const AdamWStep scalars = step_scalars(d, model, step);
#pragma unroll
    for (int j = 0; j < kOwned; ++j) {
      if (j < parameters) adamw_update(own_params[j], adam_m[j], adam_v[j], v[j], scalars);
      if (j == loss_slot) store_loss(d, model, step, v[j] * mean_scale(d.train_rows, N));
    }
    __syncwarp();  // the updated W, then its transposed copy: lane f < n copies column f (two
    // addresses per lane; copying entry by entry kept four index pairs in registers through the
    // sample loop — spills. Using this same loop before the step loop spills too: ptxas's
    // allocation here turns on such details, and tests/check_ptxas.py says when a change tips it.)
    static_assert(N <= kLanes, "one lane per column of W");
    if (lane < N) {
#pragma unroll
      for (int j = 0; j < M; ++j) transposed_W[lane * M + j] = params[j * N + lane];
    }
    __syncwarp();  // both are read by every lane in the next step
  }
#pragma unroll
  for (int j = 0; j < kOwned; ++j)
    if (j < parameters) {
      d.params[first + owned + j] = own_params[j];
      d.adam_m[first + owned + j] = adam_m[j];
      d.adam_v[first + owned + j] = adam_v[j];
    }
}

// ---------------------------------------------------------------- global mapping
// Scratch per lane (lane_scratch_floats): partial gradients (P), then x (n), hidden (m),
// grad_hidden (m), grad_z (n).
__global__ void __launch_bounds__(kThreads)
    train_steps_global(DeviceChunk d, int first_step, int count) {
  __shared__ WarpSum::TempStorage temp[kWarpsPerBlock];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int model = blockIdx.x * kWarpsPerBlock + warp;
  if (model >= d.models) return;
  const int n = d.n, m = d.m, P = m * n + n;
  float* lane_scratch = d.scratch + static_cast<size_t>(model) * d.scratch_per_model +
                        static_cast<size_t>(lane) * lane_scratch_floats(n, m);
  float* grads = lane_scratch;
  float* x = grads + P;
  float* hidden = x + n;
  float* grad_hidden = hidden + m;
  float* grad_z = grad_hidden + m;
  float* params = d.params + static_cast<size_t>(model) * P;
  float* adam_m = d.adam_m + static_cast<size_t>(model) * P;
  float* adam_v = d.adam_v + static_cast<size_t>(model) * P;
  const float* sparsity = d.sparsity + static_cast<size_t>(model) * n;
  const float* importance = d.importance + static_cast<size_t>(model) * n;
  const bool relu = d.relu[model] != 0;
  const float grad_scale = 2.0f * mean_scale(d.train_rows, n);

  for (int step = first_step; step < first_step + count; ++step) {
    const float lane_loss =
        lane_batch<false, true>(d, model, step, n, P, sparsity, grads, x, [&](float* row) {
          return accumulate_sample(n, m, relu, params, params + m * n, importance, row, grad_scale,
                                   grads, grads + m * n, hidden, grad_hidden, grad_z);
        });
    const float loss = warp_sum(temp[warp], lane_loss) * mean_scale(d.train_rows, n);
    const AdamWStep scalars = step_scalars(d, model, step);
    // Reduce every entry (all lanes take part), then lane k % 32 updates parameter k.
    for (int k = 0; k < P; ++k) {
      const float grad = warp_sum(temp[warp], grads[k]);
      if (lane == k % kLanes) adamw_update(params[k], adam_m[k], adam_v[k], grad, scalars);
    }
    __syncwarp();  // the updated parameters are read by every lane in the next step
    record_loss(d, model, step, loss);
  }
}

// ---------------------------------------------------------------- tiled mapping
// One block of kTiledThreads per model. A step is five passes over the whole batch of `rows` rows,
// __syncthreads between them, each pass's results in the model's global scratch (row-major):
//   0. X: the rows drawn (a Philox block a thread: draw_rows_in_parallel; with feature groups
//      generate_sample, a row a thread) — or the dataset's rows in place.
//   1. H = X Wᵀ               h_j = Σ_f W_jf x_f, from 0, f in order
//   2. Z = H W + b            z_f = b_f + Σ_j W_jf h_j, j in order; then per (row, f) the output's
//                             error parts and g_z (toy_model.hpp: output_error), and each row's
//                             loss Σ_f I_f (y_f − x_f)², f in order, by one thread per row
//   3. G_h = G_z Wᵀ           g_h,j = Σ_f W_jf g_z,f, from 0, f in order
//   4. ∂W, ∂b                 for each entry, 32 lane partials: lane l takes rows l, l + 32, ... in
//                             order, fma(h_j, g_z,f) then fma(g_h,j, x_f) (∂b: the row j = m of
//                             the tile, h = 1 and no second term: fma(1, g, s) is s + g); the
//                             warp's butterfly sums the partials in cub's tree, each lane updates
//                             the entry it ends with (AdamW), and warp 0 sums the rows' losses.
// Every sum is the per-sample step's (kernels/toy_model.hpp: forward_backward_sample,
// accumulate_grad_W, lane_batch, lane_tree_sum) in the same order, so the bits are the cpu
// backend's, whatever the tiles. Passes 1–3 are tiled GEMMs: 128 rows × 32 outputs a tile, each
// thread 4 rows × 4 outputs in registers, the reduction index in tiles of 32 staged in shared
// memory and read 4 floats at a time (LDS.128); pass 4 gives each warp 8 × 8 entries (64 partials a
// lane; 4 × 8 in train_steps_tiled) and stages 64 rows at a time. The shared-memory layouts are
// chosen so that the inner loops' reads have no bank conflict (bench/CEILING.md counts the
// cycles of shared memory).
constexpr int kTiledThreads = 256, kTiledWarps = kTiledThreads / kLanes;
constexpr int kGemmRows = 128, kTileOut = 32, kTileK = 32;
// Row strides of the shared tiles, in floats: multiples of 4 (16-byte rows for LDS.128/STS.128)
// whose quarter-warp accesses fall in distinct 16-byte bank groups.
constexpr int kInStride = kGemmRows + 4, kWeightStride = kTileOut + 4, kLossStride = kTileOut + 4;
// Pass 4: rows staged a round, and the block's entry tile (rows of W, then b, × features): warps
// 2 (rows of W) × 4 (features), each kWarpJ × 8 entries, lane l holding their partials over rows
// l, l + 32, ... — 8 × 8 (64 partials a lane) in tiled_split's launch, where that takes 128
// registers; 4 × 8 in train_steps_tiled, where the other passes' state leaves no room for 64
// (ptxas spills there).
constexpr int kGradRows = 64, kGradF = 32, kWarpF = 8;
template <int kWarpJ>
struct GradTile {
  static constexpr int kWarpRows = kWarpJ, kGradJ = 2 * kWarpJ, kEntries = kWarpJ * kWarpF;
  static_assert(2 * (kGradF / kWarpF) == kTiledWarps, "the warps cover the tile");
  static_assert(kEntries % kLanes == 0, "whole rounds of the lanes in the butterfly");
  static_assert(kWarpJ % 4 == 0 && kWarpF % 4 == 0, "the warp tile is read 4 floats at a time");
};
using SplitGrad = GradTile<8>;
using FusedGrad = GradTile<4>;
constexpr int kGradJMax = SplitGrad::kGradJ;
constexpr int kGradJStride = kGradJMax + 4, kGradFStride = kGradF + 4;

// Shared memory of a pass (one union: the passes, and pass 2's GEMM and loss parts, never overlap).
struct alignas(16) TiledShared {
  union {
    struct {                                // passes 1–3
      float in[kTileK][kInStride];          // the input's tile, transposed: [k][row]
      float weight[kTileK][kWeightStride];  // W's tile: [k][output]
    } gemm;
    struct {  // pass 2 after a tile's product: I (y − x) and y − x per (row, feature)
      float weighted[kGemmRows][kLossStride], error[kGemmRows][kLossStride];
    } loss;
    struct {  // pass 4: rows [R0, R0 + 64) of the entry tile
      float hidden[kGradRows][kGradJStride],
          grad_hidden[kGradRows][kGradJStride];  // kGradJ columns used
      float grad_z[kGradRows][kGradFStride], x[kGradRows][kGradFStride];
    } grad;
  };
};

// The model's scratch: the passes' results, row-major over the batch's rows.
struct TiledRows {
  const float* x;  // [rows][n]: in the scratch when drawn, else the dataset's training rows
  float *hidden, *grad_z, *grad_hidden, *row_loss;  // [rows][m], [rows][n], [rows][m], [rows]
};

// tiled_split's launches: blocks of kGemmRows rows a model (passes 0–3), entry tiles a model
// (pass 4: rows 0..m of W and b by SplitGrad::kGradJ, features by kGradF) — the kernels read their
// block's tile from these, the launcher sizes the grids with them.
__host__ __device__ __forceinline__ int tiled_row_tiles(int rows) {
  return (rows + kGemmRows - 1) / kGemmRows;
}
__host__ __device__ __forceinline__ int tiled_feature_tiles(int n) {
  return (n + kGradF - 1) / kGradF;
}
__host__ __device__ __forceinline__ int tiled_entry_tiles(int n, int m) {
  return (m + SplitGrad::kGradJ) / SplitGrad::kGradJ * tiled_feature_tiles(n);
}

__host__ __device__ __forceinline__ size_t tiled_scratch_floats(int n, int m, int rows) {
  return static_cast<size_t>(rows) * (2 * static_cast<size_t>(n) + 2 * static_cast<size_t>(m) + 1);
}

// Four consecutive floats of shared memory, 16-byte aligned: one LDS.128 / STS.128 on the device
// (the emulator, which has no vector types, copies them one by one).
__device__ __forceinline__ void load4(const float* p, float* out) {
#ifdef __CUDA_ARCH__
  const float4 v = *reinterpret_cast<const float4*>(p);
  out[0] = v.x;
  out[1] = v.y;
  out[2] = v.z;
  out[3] = v.w;
#else
  for (int i = 0; i < 4; ++i) out[i] = p[i];
#endif
}
__device__ __forceinline__ void store4(float* p, const float* in) {
#ifdef __CUDA_ARCH__
  *reinterpret_cast<float4*>(p) = make_float4(in[0], in[1], in[2], in[3]);
#else
  for (int i = 0; i < 4; ++i) p[i] = in[i];
#endif
}

// The passes take the thread's index t as an argument: threadIdx.x in tiled_split's launches;
// pass_thread() in train_steps_tiled, where each pass reads it anew, so that the index arithmetic
// derived from it is not hoisted out of the step loop and held in registers through the other
// passes (train_steps_tiled spilled with them at 128 registers; the split launches spill with
// pass_thread, so they keep threadIdx.x).
__device__ __forceinline__ int pass_thread() {
#ifdef __CUDA_ARCH__
  int t;
  asm volatile("mov.u32 %0, %%tid.x;" : "=r"(t));
  return t;
#else
  return static_cast<int>(threadIdx.x);
#endif
}

// Thread t's 4 rows and 4 outputs of a pass-1/2/3 tile: warp w takes rows 32 (w / 2) .. + 31 and
// outputs 16 (w % 2) .. + 15; within them lane l takes row group a (4 rows) and output group c
// (4 outputs) from its bits: bit 0 and bit 2 are c's, bits 1, 3 and 4 a's. Shared memory returns
// 128 bytes a cycle, one register a lane, so an LDS.128 takes 4 cycles — or 2 where every lane
// reads the address of lane l ^ 1, or every lane that of lane l ^ 2. Lanes l and l ^ 1 differ only
// in c (the same rows: the input's read pairs them), lanes l and l ^ 2 only in a (the same outputs:
// W's read pairs them), so a step of k is 2 + 2 cycles of shared memory for 16 FFMA a warp.
__device__ __forceinline__ int gemm_row(int t) {
  const int l = t % kLanes, a = ((l >> 1) & 1) | ((l >> 3) & 1) << 1 | ((l >> 4) & 1) << 2;
  return 32 * (t / kLanes / 2) + 4 * a;
}
__device__ __forceinline__ int gemm_output(int t) {
  const int l = t % kLanes, c = (l & 1) | ((l >> 2) & 1) << 1;
  return 16 * (t / kLanes % 2) + 4 * c;
}
static_assert(kTiledThreads == 256 && kGemmRows == 128 && kTileOut == 32 && kTileK == 32,
              "gemm_row and gemm_output cover 128 rows x 32 outputs with 8 warps; the staging "
              "maps of tile_product take 8 k of 4 rows or outputs a warp");
static_assert(kTiledThreads >= kGemmRows, "pass 2: a thread for each row's loss");

// Where element e (lane e % 32 of its warp) of a tile_product staging loop goes: each warp's 32
// elements are 8 consecutive k of 4 rows (or of 4 outputs of W[c][k]) — 8 floats of each of the
// rows in global memory; banks 4 k + row in shared: all 32 distinct.
struct StagedElement {
  int k, row;
};
__device__ __forceinline__ StagedElement staged_element(int e, int lane) {
  const int g = e / kLanes;
  return StagedElement{(g % 4) * 8 + lane % 8, (g / 4) * 4 + lane / 8};
}

// One tile of a pass-1/2/3 product for this thread: rows r0 + gemm_row(t) + i, outputs
// c0 + gemm_output(t) + q, acc (initialised by the caller) += in[row][k] · weight(c, k) for k = 0,
// 1, ..., K − 1 in order, where weight(c, k) is W[c n + k] (kByRows: H and G_h, c = j, k = f) or
// W[k n + c] (Z, c = f, k = j). Rows ≥ rows and outputs ≥ outputs compute on zeros and are not
// the caller's to store. Every thread of the block calls it.
// (No __restrict__ on in and W: both are written by this kernel — by the earlier passes and by
// the previous step's update — and a restrict-qualified const pointer lets nvcc read through the
// non-coherent cache, which need not see those writes. The SASS has no LDG.E.CONSTANT.)
template <bool kByRows>
__device__ __forceinline__ void tile_product(TiledShared& s, int t, const float* in, int rows,
                                             int K, const float* W, int n, int outputs, int r0,
                                             int c0, float (&acc)[4][4]) {
  const int lane = t % kLanes;
  const int rr = gemm_row(t), cc = gemm_output(t);
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    __syncthreads();  // the previous tile's readers are done
    for (int e = t; e < kGemmRows * kTileK; e += kTiledThreads) {
      const auto [k, r] = staged_element(e, lane);
      s.gemm.in[k][r] =
          (r0 + r < rows && k0 + k < K) ? in[static_cast<size_t>(r0 + r) * K + k0 + k] : 0.0f;
    }
    for (int e = t; e < kTileOut * kTileK; e += kTiledThreads) {
      if (kByRows) {  // W[c][k]: 8 consecutive k of 4 outputs, as the input's tile
        const auto [k, c] = staged_element(e, lane);
        s.gemm.weight[k][c] =
            (c0 + c < outputs && k0 + k < K) ? W[static_cast<size_t>(c0 + c) * n + k0 + k] : 0.0f;
      } else {  // W[k][c]: consecutive c
        const int k = e / kTileOut, c = e % kTileOut;
        s.gemm.weight[k][c] =
            (c0 + c < outputs && k0 + k < K) ? W[static_cast<size_t>(k0 + k) * n + c0 + c] : 0.0f;
      }
    }
    __syncthreads();
    const int k_end = K - k0 < kTileK ? K - k0 : kTileK;  // no padded k: fma(0, 0, -0) is +0
    for (int k = 0; k < k_end; ++k) {
      float a[4], w[4];
      load4(&s.gemm.in[k][rr], a);
      load4(&s.gemm.weight[k][cc], w);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[i][q] = fma_f(w[q], a[i], acc[i][q]);
    }
  }
}

// Passes 1 and 3: out[row][j] = Σ_f W_jf in[row][f] (H from X, G_h from G_z).
__device__ __forceinline__ void rows_times_W_transposed(TiledShared& s, int t, const float* in,
                                                        int rows, const float* W, int n, int m,
                                                        float* out) {
  const int rr = gemm_row(t), cc = gemm_output(t);
  for (int r0 = 0; r0 < rows; r0 += kGemmRows)
    for (int c0 = 0; c0 < m; c0 += kTileOut) {
      float acc[4][4] = {};
      tile_product<true>(s, t, in, rows, n, W, n, m, r0, c0, acc);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          if (r0 + rr + i < rows && c0 + cc + q < m)
            out[static_cast<size_t>(r0 + rr + i) * m + c0 + cc + q] = acc[i][q];
    }
}

// Pass 2: z, the output's error parts, g_z into grad_z and each row's loss into row_loss.
__device__ __forceinline__ void outputs_and_gradients(TiledShared& s, int t,
                                                      const TiledRows& rows_of, int rows,
                                                      const float* W, const float* b,
                                                      const float* importance, int n, int m,
                                                      bool relu, float grad_scale) {
  const int rr = gemm_row(t), cc = gemm_output(t);
  for (int r0 = 0; r0 < rows; r0 += kGemmRows) {
    float row_loss = 0.0f;  // thread t < 128: row r0 + t's Σ_f I_f (y_f − x_f)², f in order
    for (int c0 = 0; c0 < n; c0 += kTileOut) {
      float acc[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q) acc[i][q] = c0 + cc + q < n ? b[c0 + cc + q] : 0.0f;
      tile_product<false>(s, t, rows_of.hidden, rows, m, W, n, n, r0, c0, acc);
      __syncthreads();  // the product's reads of the GEMM tiles are done: the loss tiles reuse them
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float weighted[4], error[4];  // zeros outside the batch and the features
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int row = r0 + rr + i, f = c0 + cc + q;
          weighted[q] = error[q] = 0.0f;
          if (row >= rows || f >= n) continue;
          const float z = acc[i][q];
          const OutputError<float> e =
              output_error(relu, z, rows_of.x[static_cast<size_t>(row) * n + f], importance[f]);
          weighted[q] = e.weighted;
          error[q] = e.error;
          rows_of.grad_z[static_cast<size_t>(row) * n + f] =
              gradient_from_error(relu, z, e, grad_scale);
        }
        store4(&s.loss.weighted[rr + i][cc], weighted);
        store4(&s.loss.error[rr + i][cc], error);
      }
      __syncthreads();  // the tile's error parts, for the row owners
      if (t < kGemmRows && r0 + t < rows) {
        const int c_end = n - c0 < kTileOut ? n - c0 : kTileOut;
        for (int c4 = 0; c4 < c_end; c4 += 4) {
          float weighted[4], error[4];
          load4(&s.loss.weighted[t][c4], weighted);
          load4(&s.loss.error[t][c4], error);
#pragma unroll
          for (int q = 0; q < 4; ++q)
            if (c4 + q < c_end) row_loss = fma_f(weighted[q], error[q], row_loss);
        }
      }
      // The next tile's GEMM tiles are written after tile_product's first __syncthreads.
    }
    if (t < kGemmRows && r0 + t < rows) rows_of.row_loss[r0 + t] = row_loss;
  }
}

// Pass 4 for one entry tile (rows J0 .. J0 + 2 kWarpJ − 1 of W — row m is b — × features
// F0 .. F0 + 31): each warp's kWarpJ × 8 entries, and the AdamW update of each entry by the lane
// that ends with its total.
template <int kWarpJ>
__device__ __forceinline__ void gradient_tile_and_update(TiledShared& s, int t,
                                                         const TiledRows& rows_of, int rows, int n,
                                                         int m, float* params, float* adam_m,
                                                         float* adam_v, AdamWStep scalars, int J0,
                                                         int F0) {
  const int warp = t / kLanes, lane = t % kLanes;
  const int wj = (warp / (kGradF / kWarpF)) * kWarpJ, wf = (warp % (kGradF / kWarpF)) * kWarpF;
  constexpr int kGradJ = GradTile<kWarpJ>::kGradJ, kEntries = GradTile<kWarpJ>::kEntries;
  float v[kEntries];  // entry (a, c) of the warp's tile: v[a kWarpF + c]
#pragma unroll
  for (int k = 0; k < kEntries; ++k) v[k] = 0.0f;
  for (int R0 = 0; R0 < rows; R0 += kGradRows) {
    __syncthreads();  // the previous rows' readers are done
    for (int e = t; e < kGradRows * kGradJ; e += kTiledThreads) {
      const int r = e / kGradJ, a = e % kGradJ, row = R0 + r, j = J0 + a;
      const bool in_W = row < rows && j < m;
      s.grad.hidden[r][a] = in_W ? rows_of.hidden[static_cast<size_t>(row) * m + j]
                                 : (row < rows && j == m ? 1.0f : 0.0f);
      s.grad.grad_hidden[r][a] =
          in_W ? rows_of.grad_hidden[static_cast<size_t>(row) * m + j] : 0.0f;
    }
    for (int e = t; e < kGradRows * kGradF; e += kTiledThreads) {
      const int r = e / kGradF, c = e % kGradF, row = R0 + r, f = F0 + c;
      const bool in = row < rows && f < n;
      s.grad.grad_z[r][c] = in ? rows_of.grad_z[static_cast<size_t>(row) * n + f] : 0.0f;
      s.grad.x[r][c] = in ? rows_of.x[static_cast<size_t>(row) * n + f] : 0.0f;
    }
    __syncthreads();
#pragma unroll 1
    for (int r = lane; r < kGradRows && R0 + r < rows; r += kLanes) {  // rows in order
      float h[kWarpJ], gh[kWarpJ];
#pragma unroll
      for (int a4 = 0; a4 < kWarpJ; a4 += 4) {
        load4(&s.grad.hidden[r][wj + a4], &h[a4]);
        load4(&s.grad.grad_hidden[r][wj + a4], &gh[a4]);
      }
#pragma unroll
      for (int c4 = 0; c4 < kWarpF; c4 += 4) {  // 4 features at a time: fewer live registers
        float gz[4], x[4];
        load4(&s.grad.grad_z[r][wf + c4], gz);
        load4(&s.grad.x[r][wf + c4], x);
#pragma unroll
        for (int a = 0; a < kWarpJ; ++a) {
          const bool weight_row = J0 + wj + a < m;  // the same for the whole warp
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            float partial = fma_f(h[a], gz[c], v[a * kWarpF + c4 + c]);
            if (weight_row) partial = fma_f(gh[a], x[c], partial);
            v[a * kWarpF + c4 + c] = partial;
          }
        }
      }
    }
  }
  butterfly_reduce_scatter<kEntries>(v, lane);
  const int owned = owned_base(kEntries, lane);
#pragma unroll
  for (int i = 0; i < kEntries / kLanes; ++i) {
    const int entry = owned + i;
    const int j = J0 + wj + entry / kWarpF, f = F0 + wf + entry % kWarpF;
    if (j <= m && f < n) {
      const size_t p = static_cast<size_t>(j) * n + f;  // b_f is entry m n + f
      adamw_update(params[p], adam_m[p], adam_v[p], v[i], scalars);
    }
  }
}

// Pass 4: every entry tile of ∂W and ∂b in turn.
__device__ __forceinline__ void gradients_and_update(TiledShared& s, const TiledRows& rows_of,
                                                     int rows, int n, int m, float* params,
                                                     float* adam_m, float* adam_v,
                                                     AdamWStep scalars) {
  for (int J0 = 0; J0 <= m; J0 += FusedGrad::kGradJ)  // rows 0..m − 1 of W, then m: b
    for (int F0 = 0; F0 < n; F0 += kGradF)
      gradient_tile_and_update<FusedGrad::kWarpRows>(s, pass_thread(), rows_of, rows, n, m, params,
                                                     adam_m, adam_v, scalars, J0, F0);
}

// Pass 0 for independent features: rows [0, rows) of stream rows first_subsequence + r, drawn by
// all the block's threads, one Philox block (4 uniforms) a thread at a time — first the blocks
// holding mask uniforms (0 .. n − 1), then, after a barrier, those holding value uniforms
// (n .. 2n − 1; a block holding both is drawn in each phase, each taking its own). Every feature
// gets generate_sample's value (kernels/toy_model.hpp: feature_mask, then feature_value): the
// same bits, with 2n / 4 Philox blocks a row spread over 256 threads instead of one.
__device__ __forceinline__ void draw_rows_in_parallel(uint64_t seed, uint64_t first_subsequence,
                                                      int rows, int n, const float* threshold,
                                                      float* x) {
  const int t = threadIdx.x;
  const int mask_blocks = (n + 3) / 4, first_value_block = n / 4;
  const int value_blocks = (2 * n + 3) / 4 - first_value_block;
  for (int e = t; e < rows * mask_blocks; e += kTiledThreads) {
    const int r = e / mask_blocks, block = e % mask_blocks;
    const PhiloxBlock words = philox_block(seed, first_subsequence + static_cast<uint64_t>(r),
                                           static_cast<uint64_t>(block));
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const int k = 4 * block + w;
      if (k < n)
        x[static_cast<size_t>(r) * n + k] =
            feature_mask(uniform_from_bits(words.word[w]), threshold[k]);
    }
  }
  __syncthreads();  // every mask, before the values that read them
  for (int e = t; e < rows * value_blocks; e += kTiledThreads) {
    const int r = e / value_blocks, block = first_value_block + e % value_blocks;
    const PhiloxBlock words = philox_block(seed, first_subsequence + static_cast<uint64_t>(r),
                                           static_cast<uint64_t>(block));
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const int k = 4 * block + w;
      if (k >= n && k < 2 * n) {
        float& value = x[static_cast<size_t>(r) * n + (k - n)];
        value = feature_value(value, uniform_from_bits(words.word[w]));
      }
    }
  }
}

// One model of a tiled chunk: its parameters, moments and per-feature constants, and where its
// rows and the passes' results are (the scratch: X when drawn, H, G_z, G_h, the rows' losses).
struct TiledModel {
  float *params, *adam_m, *adam_v;
  const float *sparsity, *importance;
  bool relu;
  float* drawn_x;
  TiledRows rows_of;
};

__device__ __forceinline__ TiledModel tiled_model(const DeviceChunk& d, int model) {
  const int n = d.n, m = d.m, rows = d.train_rows;
  const size_t P = static_cast<size_t>(m) * n + n;
  TiledModel v;
  v.params = d.params + model * P;
  v.adam_m = d.adam_m + model * P;
  v.adam_v = d.adam_v + model * P;
  v.sparsity = d.sparsity + static_cast<size_t>(model) * n;
  v.importance = d.importance + static_cast<size_t>(model) * n;
  v.relu = d.relu[model] != 0;
  float* scratch = d.scratch + model * d.scratch_per_model;
  v.drawn_x = scratch;
  v.rows_of.x = d.draw_rows ? scratch : d.dataset + static_cast<size_t>(model) * d.points * n;
  v.rows_of.hidden = scratch + static_cast<size_t>(rows) * n;
  v.rows_of.grad_z = v.rows_of.hidden + static_cast<size_t>(rows) * m;
  v.rows_of.grad_hidden = v.rows_of.grad_z + static_cast<size_t>(rows) * n;
  v.rows_of.row_loss = v.rows_of.grad_hidden + static_cast<size_t>(rows) * m;
  return v;
}

// Pass 0 for rows [r0, r0 + count) of a step: drawn by the block's threads into the scratch.
__device__ __forceinline__ void draw_tiled_rows(const DeviceChunk& d, const TiledModel& v,
                                                int model, int step, int r0, int count) {
  const int n = d.n;
  if (d.groups.any()) {  // a group's features share a uniform: one thread a row
    for (int r = r0 + static_cast<int>(threadIdx.x); r < r0 + count; r += kTiledThreads)
      load_row<true>(d, model, step, r, n, v.sparsity, v.drawn_x + static_cast<size_t>(r) * n);
  } else {
    draw_rows_in_parallel(d.seed[model],
                          static_cast<uint64_t>(step) * static_cast<uint64_t>(d.draw_stride) +
                              static_cast<uint64_t>(r0),
                          count, n, v.sparsity, v.drawn_x + static_cast<size_t>(r0) * n);
  }
}

// The step's loss from the rows' losses (warp 0: its lanes' rows in order, then the tree).
// loss_scale: mean_scale(rows, n), which the fused kernel holds for the whole launch.
__device__ __forceinline__ void tiled_step_loss(const DeviceChunk& d, const TiledModel& v,
                                                WarpSum::TempStorage& temp, int model, int step,
                                                float loss_scale) {
  const int t = threadIdx.x, rows = d.train_rows;
  if (t < kLanes) {
    float lane_loss = 0.0f;
    for (int r = t; r < rows; r += kLanes) lane_loss += v.rows_of.row_loss[r];
    record_loss(d, model, step, warp_sum(temp, lane_loss) * loss_scale);
  }
}

__global__ void __launch_bounds__(kTiledThreads, 2)
    train_steps_tiled(DeviceChunk d, int first_step, int count) {
  __shared__ TiledShared s;
  __shared__ WarpSum::TempStorage temp;
  const int model = blockIdx.x;
  if (model >= d.models) return;  // the whole block leaves together
  const int n = d.n, m = d.m, rows = d.train_rows;
  const TiledModel v = tiled_model(d, model);
  // One float live through the launch, not two (ptxas spilled the second): 2 · loss_scale is
  // exact, the gradient scale.
  const float loss_scale = mean_scale(rows, n);

  for (int step = first_step; step < first_step + count; ++step) {
    if (d.draw_rows) draw_tiled_rows(d, v, model, step, 0, rows);  // pass 0
    __syncthreads();  // X, and the previous step's updates of W and b
    rows_times_W_transposed(s, pass_thread(), v.rows_of.x, rows, v.params, n, m, v.rows_of.hidden);
    __syncthreads();
    outputs_and_gradients(s, pass_thread(), v.rows_of, rows, v.params, v.params + m * n,
                          v.importance, n, m, v.relu, 2.0f * loss_scale);
    __syncthreads();
    rows_times_W_transposed(s, pass_thread(), v.rows_of.grad_z, rows, v.params, n, m,
                            v.rows_of.grad_hidden);
    __syncthreads();
    const AdamWStep scalars = step_scalars(d, model, step);
    gradients_and_update(s, v.rows_of, rows, n, m, v.params, v.adam_m, v.adam_v, scalars);
    tiled_step_loss(d, v, temp, model, step, loss_scale);
    __syncthreads();  // every update lands before the next step reads W, b and the scratch
  }
}

// ------------------------------------------------- the tiled mapping, one launch per pass
// Mapping::tiled_split: the same passes as train_steps_tiled, each a launch of its own over every
// model's tiles — passes 0–3 a block per kGemmRows rows of a model, pass 4 a block per entry tile
// (which also sums the step's loss in its first tile) — so that a few models fill the device
// (train_steps_tiled has one block per model) and each pass runs at its own occupancy. The launches
// of a stream run in order, so a pass sees the previous one's results and a step the previous
// step's updates. Every output is the same function of the same inputs in the same order: the
// bits of train_steps_tiled.

// Block b of a launch over (model, tile): model b / tiles, tile b % tiles.
struct TileOfModel {
  int model, tile;
};
__device__ __forceinline__ TileOfModel tile_of_model(int tiles) {
  return {static_cast<int>(blockIdx.x) / tiles, static_cast<int>(blockIdx.x) % tiles};
}

// Passes 0–3: block b's model and its rows [r0, r0 + count), kGemmRows a block.
struct RowTile {
  int model, r0, count;
};
__device__ __forceinline__ RowTile row_tile(const DeviceChunk& d) {
  const TileOfModel at = tile_of_model(tiled_row_tiles(d.train_rows));
  const int r0 = at.tile * kGemmRows, left = d.train_rows - r0;
  return {at.model, r0, left < kGemmRows ? left : kGemmRows};
}

// Rows [r0, r0 + count) of the model's batch: its TiledRows shifted to start at r0.
__device__ __forceinline__ TiledRows rows_from(const TiledRows& all, int r0, int n, int m) {
  TiledRows shifted;
  shifted.x = all.x + static_cast<size_t>(r0) * n;
  shifted.hidden = all.hidden + static_cast<size_t>(r0) * m;
  shifted.grad_z = all.grad_z + static_cast<size_t>(r0) * n;
  shifted.grad_hidden = all.grad_hidden + static_cast<size_t>(r0) * m;
  shifted.row_loss = all.row_loss + r0;
  return shifted;
}

// Pass 0 (drawn rows only).
__global__ void __launch_bounds__(kTiledThreads) tiled_draw_rows(DeviceChunk d, int step) {
  const RowTile at = row_tile(d);
  if (at.model >= d.models) return;
  draw_tiled_rows(d, tiled_model(d, at.model), at.model, step, at.r0, at.count);
}

// Passes 1 (H = X Wᵀ) and 3 (G_h = G_z Wᵀ, kGradient).
template <bool kGradient>
__global__ void __launch_bounds__(kTiledThreads) tiled_rows_times_W_transposed(DeviceChunk d) {
  __shared__ TiledShared s;
  const RowTile at = row_tile(d);
  if (at.model >= d.models) return;
  const TiledModel v = tiled_model(d, at.model);
  const TiledRows rows_of = rows_from(v.rows_of, at.r0, d.n, d.m);
  rows_times_W_transposed(s, threadIdx.x, kGradient ? rows_of.grad_z : rows_of.x, at.count,
                          v.params, d.n, d.m, kGradient ? rows_of.grad_hidden : rows_of.hidden);
}

// Pass 2: z, g_z and each row's loss.
__global__ void __launch_bounds__(kTiledThreads) tiled_outputs_and_gradients(DeviceChunk d) {
  __shared__ TiledShared s;
  const RowTile at = row_tile(d);
  if (at.model >= d.models) return;
  const int n = d.n, m = d.m;
  const TiledModel v = tiled_model(d, at.model);
  outputs_and_gradients(s, threadIdx.x, rows_from(v.rows_of, at.r0, n, m), at.count, v.params,
                        v.params + m * n, v.importance, n, m, v.relu,
                        2.0f * mean_scale(d.train_rows, n));
}

// Pass 4: one entry tile of ∂W and ∂b a block, updated; the first tile's block sums the loss.
__global__ void __launch_bounds__(kTiledThreads, 2)
    tiled_gradients_and_update(DeviceChunk d, int step) {
  __shared__ TiledShared s;
  __shared__ WarpSum::TempStorage temp;
  const int n = d.n, m = d.m, f_tiles = tiled_feature_tiles(n);
  const TileOfModel at = tile_of_model(tiled_entry_tiles(n, m));
  if (at.model >= d.models) return;
  const TiledModel v = tiled_model(d, at.model);
  gradient_tile_and_update<SplitGrad::kWarpRows>(
      s, threadIdx.x, v.rows_of, d.train_rows, n, m, v.params, v.adam_m, v.adam_v,
      step_scalars(d, at.model, step), (at.tile / f_tiles) * SplitGrad::kGradJ,
      (at.tile % f_tiles) * kGradF);
  if (at.tile == 0) tiled_step_loss(d, v, temp, at.model, step, mean_scale(d.train_rows, n));
}

void launch_tiled_split(const DeviceChunk& d, int first_step, int count, cudaStream_t stream) {
  const unsigned row_blocks =
      static_cast<unsigned>(d.models) * static_cast<unsigned>(tiled_row_tiles(d.train_rows));
  const unsigned entry_blocks =
      static_cast<unsigned>(d.models) * static_cast<unsigned>(tiled_entry_tiles(d.n, d.m));
  for (int step = first_step; step < first_step + count; ++step) {
    if (d.draw_rows)
      launch("tiled_draw_rows", tiled_draw_rows, row_blocks, kTiledThreads, 0, stream, d, step);
    launch("tiled_rows_times_W_transposed<false>", tiled_rows_times_W_transposed<false>, row_blocks,
           kTiledThreads, 0, stream, d);
    launch("tiled_outputs_and_gradients", tiled_outputs_and_gradients, row_blocks, kTiledThreads, 0,
           stream, d);
    launch("tiled_rows_times_W_transposed<true>", tiled_rows_times_W_transposed<true>, row_blocks,
           kTiledThreads, 0, stream, d);
    launch("tiled_gradients_and_update", tiled_gradients_and_update, entry_blocks, kTiledThreads, 0,
           stream, d, step);
  }
}

// ---------------------------------------------------------------- evaluation
template <int N, int M>
__global__ void __launch_bounds__(kThreads)
    evaluate_kernel(DeviceChunk d, bool fresh_rows, int row_offset, int rows, float* out) {
  constexpr bool kStatic = N > 0;
  __shared__ WarpSum::TempStorage temp[kWarpsPerBlock];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int model = blockIdx.x * kWarpsPerBlock + warp;
  if (model >= d.models) return;
  const int n = kStatic ? N : d.n, m = kStatic ? M : d.m, P = m * n + n;
  float x_registers[kStatic ? N : 1], hidden_registers[kStatic ? M : 1];
  float* x = x_registers;
  float* hidden = hidden_registers;
  if (!kStatic) {  // the global and tiled mappings: n + m floats a lane in the model's scratch
    x = d.scratch + static_cast<size_t>(model) * d.scratch_per_model +
        static_cast<size_t>(lane) * (n + m);
    hidden = x + n;
  }
  const float* params = d.params + static_cast<size_t>(model) * P;
  const float* sparsity = d.sparsity + static_cast<size_t>(model) * n;
  const float* importance = d.importance + static_cast<size_t>(model) * n;
  const bool relu = d.relu[model] != 0;
  float lane_loss = 0.0f;
  for (int r = lane; r < rows; r += kLanes) {
    if (fresh_rows || d.draw_rows) {  // fresh data's evaluation rows, or fixed rows drawn again
      const uint64_t first = fresh_rows ? kEvalBase : static_cast<uint64_t>(row_offset);
      generate_sample(fresh_rows ? d.eval_seed : d.seed[model], first + static_cast<uint64_t>(r), n,
                      sparsity, x, kStatic ? FeatureGroups{} : d.groups);
    } else {
      dataset_row(d, model, row_offset + r, n, x);
    }
    lane_loss += sample_loss(n, m, relu, params, params + m * n, importance, x, hidden);
  }
  const float total = WarpSum(temp[warp]).Sum(lane_loss);
  if (lane == 0) out[model] = total * mean_scale(rows, n);
}

__global__ void generate_dataset_kernel(DeviceChunk d, float* dataset) {
  const size_t index = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t total = static_cast<size_t>(d.models) * d.points;
  if (index >= total) return;
  const int model = static_cast<int>(index / d.points), row = static_cast<int>(index % d.points);
  generate_sample(d.seed[model], static_cast<uint64_t>(row), d.n,
                  d.sparsity + static_cast<size_t>(model) * d.n, dataset + index * d.n, d.groups);
}

unsigned blocks_for(int models) {
  return static_cast<unsigned>((models + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

// A block's dynamic shared memory for rows on chip: its four models' training rows.
size_t on_chip_bytes(int n, int train_rows) {
  return static_cast<size_t>(kWarpsPerBlock) * train_rows * n * sizeof(float);
}

// The training kernel a launch of `count` steps of the chunk runs, its name and its dynamic shared
// memory: the mapping's, with rows on chip where the chunk allows it and the launch has more than
// one step to reuse them (one step reads each row once: a copy is no gain).
struct TrainKernel {
  void (*kernel)(DeviceChunk, int, int);
  const char* name;
  size_t dynamic_shared_bytes;
  int threads = kThreads;                 // a block's
  int models_per_block = kWarpsPerBlock;  // a warp each; the tiled mapping: a block each
};

TrainKernel train_kernel_for(const DeviceChunk& d, int count) {
  const bool on_chip = d.rows_on_chip && count > 1;
  switch (d.mapping) {
    case Mapping::registers_2x1:
      if (on_chip)
        return {train_steps_registers<2, 1, true>, "train_steps_registers<2, 1, true>",
                on_chip_bytes(2, d.train_rows)};
      return {train_steps_registers<2, 1, false>, "train_steps_registers<2, 1, false>", 0};
    case Mapping::registers_5x2:
      if (on_chip)
        return {train_steps_registers<5, 2, true>, "train_steps_registers<5, 2, true>",
                on_chip_bytes(5, d.train_rows)};
      return {train_steps_registers<5, 2, false>, "train_steps_registers<5, 2, false>", 0};
    case Mapping::shared_5x2:
      return {train_steps_shared<5, 2>, "train_steps_shared<5, 2>", 0};
    case Mapping::shared_20x5:
      return {train_steps_shared<20, 5>, "train_steps_shared<20, 5>", 0};
    case Mapping::tiled:
    case Mapping::tiled_split:  // launched pass by pass (launch_tiled_split), not through here
      return {train_steps_tiled, "train_steps_tiled", 0, kTiledThreads, 1};
    case Mapping::global:
      break;
  }
  return {train_steps_global, "train_steps_global", 0};
}

using EvaluateKernel = void (*)(DeviceChunk, bool, int, int, float*);

// The evaluation kernel of the chunk's shape (both 5 x 2 mappings share one), and its name.
std::pair<EvaluateKernel, const char*> evaluate_kernel_for(Mapping mapping) {
  switch (mapping) {
    case Mapping::registers_2x1:
      return {evaluate_kernel<2, 1>, "evaluate_kernel<2, 1>"};
    case Mapping::registers_5x2:
    case Mapping::shared_5x2:
      return {evaluate_kernel<5, 2>, "evaluate_kernel<5, 2>"};
    case Mapping::shared_20x5:
      return {evaluate_kernel<20, 5>, "evaluate_kernel<20, 5>"};
    case Mapping::global:
    case Mapping::tiled:
    case Mapping::tiled_split:
      break;
  }
  return {evaluate_kernel<0, 0>, "evaluate_kernel<0, 0>"};
}

}  // namespace

Mapping mapping_for(int n, int m) {
  if (n == 2 && m == 1) return Mapping::registers_2x1;
  if (n == 5 && m == 2) return Mapping::registers_5x2;
  if (n == 20 && m == 5) return Mapping::shared_20x5;
  if (static_cast<int64_t>(n) * m >= kTiledMinEntries) return Mapping::tiled;
  return Mapping::global;
}

Mapping shared_mapping_for(int n, int m) {
  if (n == 5 && m == 2) return Mapping::shared_5x2;
  if (n == 20 && m == 5) return Mapping::shared_20x5;
  return Mapping::global;
}

Mapping mapping_named(const char* name, int n, int m) {
  if (std::strcmp(name, "global") == 0) return Mapping::global;
  if (std::strcmp(name, "tiled") == 0) return Mapping::tiled;
  if (std::strcmp(name, "tiled-split") == 0) return Mapping::tiled_split;
  if (std::strcmp(name, "shared") == 0) return shared_mapping_for(n, m);
  return mapping_for(n, m);
}

bool rows_fit_on_chip(Mapping mapping, int n, int train_rows) {
  void (*kernel)(DeviceChunk, int, int) = nullptr;
  if (mapping == Mapping::registers_2x1) kernel = train_steps_registers<2, 1, true>;
  if (mapping == Mapping::registers_5x2) kernel = train_steps_registers<5, 2, true>;
  if (!kernel) return false;
  // The block's shared memory is the kernel's static part (cub's temp storage: 0 bytes on sm_90
  // with nvcc 13, which no one should have to rely on) plus the rows: both within the limit.
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;  // the kernel cannot run here; whoever launches it says so
  }
  return attributes.sharedSizeBytes <= kOnChipBytesPerBlock &&
         on_chip_bytes(n, train_rows) <= kOnChipBytesPerBlock - attributes.sharedSizeBytes;
}

const char* kernel_image_error() {
  cudaFuncAttributes attributes{};
  const cudaError_t error = cudaFuncGetAttributes(&attributes, train_steps_registers<2, 1, false>);
  if (error == cudaSuccess) return nullptr;
  cudaGetLastError();
  return cudaGetErrorString(error);
}

size_t scratch_floats_per_model(int n, int m, int train_rows, Mapping mapping) {
  const size_t evaluation = static_cast<size_t>(kLanes) * (static_cast<size_t>(n) + m);
  if (mapping == Mapping::global) return kLanes * lane_scratch_floats(n, m);  // >= evaluation's
  if (mapping == Mapping::tiled || mapping == Mapping::tiled_split) {
    const size_t passes = tiled_scratch_floats(n, m, train_rows);
    return passes > evaluation ? passes : evaluation;
  }
  return 0;
}

// Blocks of `kernel` an SM of the current device holds (the runtime's occupancy calculator), or 0
// where the runtime cannot tell.
template <class... Params>
int blocks_per_sm(void (*kernel)(Params...), int threads, size_t dynamic_shared_bytes) {
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads,
                                                    dynamic_shared_bytes) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return blocks;
}

int tiled_models_to_fill(int multiprocessors) {
  const int blocks = blocks_per_sm(train_steps_tiled, kTiledThreads, 0);
  return multiprocessors * (blocks > 0 ? blocks : 2);
}

void launch_train_steps(const DeviceChunk& d, int first_step, int count, void* stream) {
  if (d.models == 0 || count == 0) return;
  if (d.mapping == Mapping::tiled_split)
    return launch_tiled_split(d, first_step, count, static_cast<cudaStream_t>(stream));
  const TrainKernel chosen = train_kernel_for(d, count);
  const unsigned blocks =
      static_cast<unsigned>((d.models + chosen.models_per_block - 1) / chosen.models_per_block);
  launch(chosen.name, chosen.kernel, blocks, static_cast<unsigned>(chosen.threads),
         chosen.dynamic_shared_bytes, static_cast<cudaStream_t>(stream), d, first_step, count);
}

TrainKernelInfo train_kernel_info(Mapping mapping, bool rows_on_chip, int n, int train_rows,
                                  int count) {
  DeviceChunk d;
  d.mapping = mapping;
  d.rows_on_chip = rows_on_chip;
  d.train_rows = train_rows;
  d.n = n;
  if (mapping == Mapping::tiled_split)  // its longest pass, ∂W and ∂b, stands for it
    return {"tiled_gradients_and_update", false,
            blocks_per_sm(tiled_gradients_and_update, kTiledThreads, 0) * (kTiledThreads / kLanes)};
  const TrainKernel chosen = train_kernel_for(d, count);
  const int blocks = blocks_per_sm(chosen.kernel, chosen.threads, chosen.dynamic_shared_bytes);
  // Rows on chip are the only dynamic shared memory a training kernel takes.
  return {chosen.name, chosen.dynamic_shared_bytes > 0, blocks * (chosen.threads / kLanes)};
}

void launch_evaluate(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                     void* stream) {
  if (d.models == 0) return;
  const auto [kernel, name] = evaluate_kernel_for(d.mapping);
  launch(name, kernel, blocks_for(d.models), kThreads, 0, static_cast<cudaStream_t>(stream), d,
         fresh_rows, row_offset, rows, out);
}

void launch_generate_dataset(const DeviceChunk& d, float* dataset, void* stream) {
  const size_t total = static_cast<size_t>(d.models) * d.points;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
  launch("generate_dataset_kernel", generate_dataset_kernel, blocks, 256, 0,
         static_cast<cudaStream_t>(stream), d, dataset);
}

}  // namespace sp::cuda
