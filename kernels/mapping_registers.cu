// mapping_registers.cu — the registers mapping (kernels/mapping.hpp: registers_2x1, registers_5x2):
// (n, m) = (2, 1) and (5, 2), a warp per model, W, b, their AdamW moments, this lane's partial
// gradients and the sample in registers (≤ 15 parameters: every lane keeps its own copy and
// updates it after each cub::WarpReduce), no spills (tests/check_ptxas.py). Fixed data's training
// rows are read from shared memory when they fit (rows_fit_on_chip).
#include "kernels/mapping_kernels.cuh"
#include "kernels/step_common.cuh"

namespace sp::cuda {

namespace {

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
  // The output's ReLU only: a group with the neuron model's hidden ReLU goes to the global or tiled
  // mapping (kernels/mapping.hpp: hidden), and the tied models' loop keeps its instructions.
  const Activation act{(d.activation[model] & 1u) != 0, false};
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
          return accumulate_sample(N, M, act, params, params + M * N, importance, row, grad_scale,
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

// A block's dynamic shared memory for rows on chip: its four models' training rows.
size_t on_chip_bytes(int n, int train_rows) {
  return static_cast<size_t>(kWarpsPerBlock) * train_rows * n * sizeof(float);
}

// The kernel a launch of `count` steps runs: rows on chip where the chunk allows it and the launch
// has more than one step to reuse them (one step reads each row once: a copy is no gain).
template <int N, int M>
TrainKernel registers_kernel(const DeviceChunk& d, int count) {
  static_assert((N == 2 && M == 1) || (N == 5 && M == 2), "the names below");
  constexpr const char* kOnChip =
      N == 2 ? "train_steps_registers<2, 1, true>" : "train_steps_registers<5, 2, true>";
  constexpr const char* kInMemory =
      N == 2 ? "train_steps_registers<2, 1, false>" : "train_steps_registers<5, 2, false>";
  if (d.rows_on_chip && count > 1)
    return {train_steps_registers<N, M, true>, kOnChip, on_chip_bytes(N, d.train_rows)};
  return {train_steps_registers<N, M, false>, kInMemory, 0};
}

template <int N, int M>
void train(const DeviceChunk& d, int first_step, int count, cudaStream_t stream) {
  launch_train_kernel(registers_kernel<N, M>(d, count), d, first_step, count, stream);
}

template <int N, int M>
TrainKernelInfo info(const DeviceChunk& d, int count) {
  return info_of(registers_kernel<N, M>(d, count));
}

// Whether its four models' train_rows × n floats and the kernel's static shared memory
// (cudaFuncGetAttributes: cub's temp storage, 0 bytes on sm_90 with nvcc 13, which no one should
// have to rely on) fit kOnChipBytesPerBlock ((2, 1): up to 1536 rows; (5, 2): 614).
template <int N, int M>
bool rows_fit(int n, int train_rows) {
  cudaFuncAttributes attributes{};
  if (cudaFuncGetAttributes(&attributes, train_steps_registers<N, M, true>) != cudaSuccess) {
    cudaGetLastError();
    return false;  // the kernel cannot run here; whoever launches it says so
  }
  return attributes.sharedSizeBytes <= kOnChipBytesPerBlock &&
         on_chip_bytes(n, train_rows) <= kOnChipBytesPerBlock - attributes.sharedSizeBytes;
}

const char* image_error() { return image_error_of(train_steps_registers<2, 1, false>); }

}  // namespace

const MappingKernels kernels_registers_2x1 = {train<2, 1>,    evaluate_2x1, no_scratch,
                                              rows_fit<2, 1>, info<2, 1>,   image_error};
const MappingKernels kernels_registers_5x2 = {train<5, 2>,    evaluate_5x2, no_scratch,
                                              rows_fit<5, 2>, info<5, 2>,   image_error};

}  // namespace sp::cuda
