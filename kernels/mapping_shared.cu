// mapping_shared.cu — the shared-weights mapping (kernels/mapping.hpp: shared_5x2, shared_20x5).
// For shapes whose P = m n + n parameters are too many for a copy per lane (20 x 5: P = 120):
// W and b live once per warp in shared memory, read by every lane at the same address (a
// broadcast); each lane keeps only its partial gradients (and loss) in registers. The reduction is
// a butterfly that scatters the totals over the lanes, 31 shuffles per 32 entries instead of
// cub::WarpReduce's 5 per entry plus a broadcast, and each lane then updates the parameters it
// owns (their AdamW moments in shared memory too). A transposed copy of W gives the backward pass
// W's columns from memory of their own (kernels/toy_model.hpp, WColumns).
#include "kernels/mapping_kernels.cuh"
#include "kernels/step_common.cuh"

namespace sp::cuda {

namespace {

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
  // The output's ReLU only: a group with the neuron model's hidden ReLU goes to the global or tiled
  // mapping (kernels/mapping.hpp: hidden), and the tied models' loop keeps its instructions.
  const Activation act{(d.activation[model] & 1u) != 0, false};
  const float grad_scale = 2.0f * mean_scale(d.train_rows, N);

  for (int step = first_step; step < first_step + count; ++step) {
    float v[E], x[N], hidden[M], grad_hidden[M];
    v[P] = lane_batch(d, model, step, N, P, sparsity, v, x, [&](float* row) {
      return accumulate_sample_streaming(N, M, act, params, transposed_columns(transposed_W, M),
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

template <int N, int M>
TrainKernel shared_kernel(const DeviceChunk&, int) {
  static_assert((N == 5 && M == 2) || (N == 20 && M == 5), "the names below");
  return {train_steps_shared<N, M>,
          N == 5 ? "train_steps_shared<5, 2>" : "train_steps_shared<20, 5>", 0};
}

template <int N, int M>
void train(const DeviceChunk& d, int first_step, int count, cudaStream_t stream) {
  launch_train_kernel(shared_kernel<N, M>(d, count), d, first_step, count, stream);
}

template <int N, int M>
TrainKernelInfo info(const DeviceChunk& d, int count) {
  return info_of(shared_kernel<N, M>(d, count));
}

const char* image_error() { return image_error_of(train_steps_shared<20, 5>); }

}  // namespace

// Both 5 x 2 mappings evaluate with one kernel.
const MappingKernels kernels_shared_5x2 = {train<5, 2>,   evaluate_5x2, no_scratch,
                                           never_on_chip, info<5, 2>,   image_error};
const MappingKernels kernels_shared_20x5 = {train<20, 5>,  evaluate_20x5, no_scratch,
                                            never_on_chip, info<20, 5>,   image_error};

}  // namespace sp::cuda
