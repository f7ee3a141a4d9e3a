// fused_step.cu — the fused training step: per launch, for every model of the chunk and for K
// steps, sample generation (cuRAND's Philox), forward, ReLU, importance-weighted MSE, analytic
// gradients, the reduction over the batch (cub::WarpReduce) and the AdamW update.
// The arithmetic is kernels/toy_model.hpp's, in the lane order host/cpu_backend.cpp mirrors.
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
// again).
template <class... Params, class... Args>
void launch(const char* kernel_name, void (*kernel)(Params...), unsigned blocks, unsigned threads,
            cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.stream = stream;
  const cudaError_t error = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
  if (error != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string(__FILE__) + ": launch of " + kernel_name + " (" +
                             std::to_string(blocks) + " blocks of " + std::to_string(threads) +
                             ") failed: " + cudaGetErrorString(error));
  }
}

using WarpSum = cub::WarpReduce<float>;

// The lanes' sum (cub's pairwise tree, valid in lane 0), broadcast to every lane.
__device__ __forceinline__ float warp_sum(WarpSum::TempStorage& temp, float value) {
  const float total = WarpSum(temp).Sum(value);
  __syncwarp();  // temp storage is reused by the next call
  return __shfl_sync(kFullMask, total, 0);
}

// Row r of this model's training data at `step` (0-based), n features, into x.
__device__ __forceinline__ void load_row(const DeviceChunk& d, int model, int step, int r, int n,
                                         const float* sparsity, float* x) {
  if (d.fresh) {
    const uint64_t subsequence = static_cast<uint64_t>(step) * static_cast<uint64_t>(d.train_rows) +
                                 static_cast<uint64_t>(r);
    generate_sample(d.seed[model], subsequence, n, sparsity, x);
  } else {
    const float* row = d.dataset + (static_cast<size_t>(model) * d.points + r) * n;
    for (int f = 0; f < n; ++f) x[f] = row[f];
  }
}

__device__ __forceinline__ AdamWStep step_scalars(const DeviceChunk& d, int model, int step) {
  // Computed as AdamWSchedule::at does on the host: double division, rounded once to float.
  return AdamWStep{d.decay[model], static_cast<float>(d.lr[model] / d.bias1[step]),
                   d.bias2_sqrt[step]};
}

// The global mapping's scratch per lane: partial gradients (m n + n), x (n), hidden (m),
// grad_hidden (m), grad_z (n).
__host__ __device__ __forceinline__ size_t lane_scratch_floats(int n, int m) {
  return static_cast<size_t>(m) * n + n + n + 2 * static_cast<size_t>(m) + n;
}

// This lane's share of one step: zeroes `grads` (P entries), accumulates rows lane, lane + 32, ...
// of the step's batch into them and returns the lane's Σ I (x − y)². The order cpu_backend mirrors.
__device__ __forceinline__ float lane_batch(const DeviceChunk& d, int model, int step, int n, int m,
                                            bool relu, const float* params, const float* sparsity,
                                            const float* importance, float grad_scale, float* grads,
                                            float* x, float* hidden, float* grad_hidden,
                                            float* grad_z) {
  const int lane = threadIdx.x % kLanes;
  for (int k = 0; k < m * n + n; ++k) grads[k] = 0.0f;
  float lane_loss = 0.0f;
  for (int r = lane; r < d.train_rows; r += kLanes) {
    load_row(d, model, step, r, n, sparsity, x);
    lane_loss += accumulate_sample(n, m, relu, params, params + m * n, importance, x, grad_scale,
                                   grads, grads + m * n, hidden, grad_hidden, grad_z);
  }
  return lane_loss;
}

// Lane 0 keeps the step's training loss: the latest, and the curve when one is recorded.
__device__ __forceinline__ void record_loss(const DeviceChunk& d, int model, int step, float loss) {
  if (threadIdx.x % kLanes != 0) return;
  d.last_loss[model] = loss;
  if (d.loss_curve) d.loss_curve[static_cast<size_t>(model) * d.loss_curve_stride + step] = loss;
}

// ---------------------------------------------------------------- registers mapping
template <int N, int M>
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

  for (int step = first_step; step < first_step + count; ++step) {
    float grads[P], x[N], hidden[M], grad_hidden[M], grad_z[N];
    const float lane_loss = lane_batch(d, model, step, N, M, relu, params, sparsity, importance,
                                       grad_scale, grads, x, hidden, grad_hidden, grad_z);
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
    const float lane_loss = lane_batch(d, model, step, n, m, relu, params, sparsity, importance,
                                       grad_scale, grads, x, hidden, grad_hidden, grad_z);
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
    if (fresh_rows) {
      generate_sample(d.seed[model], kEvalBase + static_cast<uint64_t>(r), n, sparsity, x);
    } else {
      const float* row = d.dataset + (static_cast<size_t>(model) * d.points + row_offset + r) * n;
      for (int f = 0; f < n; ++f) x[f] = row[f];
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
                  d.sparsity + static_cast<size_t>(model) * d.n, dataset + index * d.n);
}

unsigned blocks_for(int models) {
  return static_cast<unsigned>((models + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

Mapping mapping_for(int n, int m) {
  if (n == 2 && m == 1) return Mapping::registers_2x1;
  if (n == 5 && m == 2) return Mapping::registers_5x2;
  return Mapping::global;
}

size_t scratch_floats_per_lane(int n, int m, Mapping mapping) {
  return mapping == Mapping::global ? lane_scratch_floats(n, m) : 0;
}

void launch_train_steps(const DeviceChunk& d, int first_step, int count, void* stream) {
  if (d.models == 0 || count == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  switch (d.mapping) {
    case Mapping::registers_2x1:
      launch("train_steps_registers<2, 1>", train_steps_registers<2, 1>, blocks_for(d.models),
             kThreads, s, d, first_step, count);
      break;
    case Mapping::registers_5x2:
      launch("train_steps_registers<5, 2>", train_steps_registers<5, 2>, blocks_for(d.models),
             kThreads, s, d, first_step, count);
      break;
    case Mapping::global:
      launch("train_steps_global", train_steps_global, blocks_for(d.models), kThreads, s, d,
             first_step, count);
      break;
  }
}

void launch_evaluate(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                     void* stream) {
  if (d.models == 0) return;
  const auto s = static_cast<cudaStream_t>(stream);
  switch (d.mapping) {
    case Mapping::registers_2x1:
      launch("evaluate_kernel<2, 1>", evaluate_kernel<2, 1>, blocks_for(d.models), kThreads, s, d,
             fresh_rows, row_offset, rows, out);
      break;
    case Mapping::registers_5x2:
      launch("evaluate_kernel<5, 2>", evaluate_kernel<5, 2>, blocks_for(d.models), kThreads, s, d,
             fresh_rows, row_offset, rows, out);
      break;
    case Mapping::global:
      launch("evaluate_kernel<0, 0>", evaluate_kernel<0, 0>, blocks_for(d.models), kThreads, s, d,
             fresh_rows, row_offset, rows, out);
      break;
  }
}

void launch_generate_dataset(const DeviceChunk& d, float* dataset, void* stream) {
  const size_t total = static_cast<size_t>(d.models) * d.points;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
  launch("generate_dataset_kernel", generate_dataset_kernel, blocks, 256,
         static_cast<cudaStream_t>(stream), d, dataset);
}

}  // namespace sp::cuda
