// fused_step.cu — the fused training step: per launch, for every model of the chunk and for K
// steps, sample generation (cuRAND's Philox), forward, ReLU, importance-weighted MSE, analytic
// gradients, the reduction over the batch (cub::WarpReduce) and the AdamW update.
// The arithmetic is kernels/toy_model.hpp's, in the lane order host/cpu_backend.cpp mirrors.
#include <cstdlib>
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
  float* lane_scratch =
      d.scratch + (static_cast<size_t>(model) * kLanes + lane) * lane_scratch_floats(n, m);
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
  if (!kStatic) {
    x = d.scratch + (static_cast<size_t>(model) * kLanes + lane) * lane_scratch_floats(n, m) + P;
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
      break;
  }
  return {evaluate_kernel<0, 0>, "evaluate_kernel<0, 0>"};
}

}  // namespace

Mapping mapping_for(int n, int m) {
  if (n == 2 && m == 1) return Mapping::registers_2x1;
  if (n == 5 && m == 2) return Mapping::registers_5x2;
  if (n == 20 && m == 5) return Mapping::shared_20x5;
  return Mapping::global;
}

Mapping shared_mapping_for(int n, int m) {
  if (n == 5 && m == 2) return Mapping::shared_5x2;
  if (n == 20 && m == 5) return Mapping::shared_20x5;
  return Mapping::global;
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

size_t scratch_floats_per_lane(int n, int m, Mapping mapping) {
  return mapping == Mapping::global ? lane_scratch_floats(n, m) : 0;
}

void launch_train_steps(const DeviceChunk& d, int first_step, int count, void* stream) {
  if (d.models == 0 || count == 0) return;
  const TrainKernel chosen = train_kernel_for(d, count);
  launch(chosen.name, chosen.kernel, blocks_for(d.models), kThreads, chosen.dynamic_shared_bytes,
         static_cast<cudaStream_t>(stream), d, first_step, count);
}

TrainKernelInfo train_kernel_info(Mapping mapping, bool rows_on_chip, int n, int train_rows,
                                  int count) {
  DeviceChunk d;
  d.mapping = mapping;
  d.rows_on_chip = rows_on_chip;
  d.train_rows = train_rows;
  d.n = n;
  const TrainKernel chosen = train_kernel_for(d, count);
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, chosen.kernel, kThreads,
                                                    chosen.dynamic_shared_bytes) != cudaSuccess) {
    cudaGetLastError();
    blocks = 0;
  }
  // Rows on chip are the only dynamic shared memory a training kernel takes.
  return {chosen.name, chosen.dynamic_shared_bytes > 0, blocks * kWarpsPerBlock};
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
