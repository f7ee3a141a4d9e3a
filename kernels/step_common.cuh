// step_common.cuh — what every kernel mapping shares (docs/design.md, "Kernel mappings"): the
// checked launch, the warp's sums (cub::WarpReduce's tree, and the butterfly that scatters the
// totals over the lanes), a training row drawn or read, a lane's share of a step's batch, AdamW's
// scalars for a step, and where a step's loss goes. Included by each kernels/mapping_*.cu (each
// its own translation unit: these are internal to each).
//
// The arithmetic is kernels/toy_model.hpp's, in the lane order host/backends/cpu_backend.cpp
// mirrors.
#pragma once

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

// A warp per model, kWarpsPerBlock models a block: the blocks a chunk's models take.
inline unsigned blocks_for(int models) {
  return static_cast<unsigned>((models + kWarpsPerBlock - 1) / kWarpsPerBlock);
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

// A training kernel a launch of `count` steps runs (each mapping picks one: its shape's, with rows
// on chip or not), its name as bench/sass_report.py names it, and its launch's geometry.
struct TrainKernel {
  void (*kernel)(DeviceChunk, int, int);
  const char* name;
  size_t dynamic_shared_bytes;
  int threads = kThreads;                 // a block's
  int models_per_block = kWarpsPerBlock;  // a warp each; the tiled mapping: a block each
};

inline void launch_train_kernel(const TrainKernel& chosen, const DeviceChunk& d, int first_step,
                                int count, cudaStream_t stream) {
  const unsigned blocks =
      static_cast<unsigned>((d.models + chosen.models_per_block - 1) / chosen.models_per_block);
  launch(chosen.name, chosen.kernel, blocks, static_cast<unsigned>(chosen.threads),
         chosen.dynamic_shared_bytes, stream, d, first_step, count);
}

// What the benchmark reports of a training kernel: its name, whether it reads the rows on chip
// (rows on chip are the only dynamic shared memory a training kernel takes), the warps of it an
// SM holds.
inline TrainKernelInfo info_of(const TrainKernel& chosen) {
  const int blocks = blocks_per_sm(chosen.kernel, chosen.threads, chosen.dynamic_shared_bytes);
  return {chosen.name, chosen.dynamic_shared_bytes > 0, blocks * (chosen.threads / kLanes)};
}

// Why `kernel` cannot run on the current device, or null when it can (MappingKernels::image_error).
template <class... Params>
const char* image_error_of(void (*kernel)(Params...)) {
  cudaFuncAttributes attributes{};
  const cudaError_t error = cudaFuncGetAttributes(&attributes, kernel);
  if (error == cudaSuccess) return nullptr;
  cudaGetLastError();
  return cudaGetErrorString(error);
}

inline size_t no_scratch(int, int, int) { return 0; }
inline bool never_on_chip(int, int) { return false; }

}  // namespace

}  // namespace sp::cuda
