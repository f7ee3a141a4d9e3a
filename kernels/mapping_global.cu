// mapping_global.cu — the global mapping (kernels/mapping.hpp: global): every shape without a
// mapping of its own (up to n = 4096, m = 1024), and feature groups below the tiled size: a warp
// per model, parameters and moments in global memory, each lane's partial gradients and sample in
// a global scratch slice; the AdamW update spread over the lanes. Correct for any shape, slower.
#include "kernels/mapping_kernels.cuh"
#include "kernels/step_common.cuh"

namespace sp::cuda {

namespace {

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
  const Activation act = Activation::of(d.activation[model]);
  const float grad_scale = 2.0f * mean_scale(d.train_rows, n);

  for (int step = first_step; step < first_step + count; ++step) {
    const float lane_loss =
        lane_batch<false, true>(d, model, step, n, P, sparsity, grads, x, [&](float* row) {
          return accumulate_sample(n, m, act, params, params + m * n, importance, row, grad_scale,
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

TrainKernel global_kernel(const DeviceChunk&, int) {
  return {train_steps_global, "train_steps_global", 0};
}

void train(const DeviceChunk& d, int first_step, int count, cudaStream_t stream) {
  launch_train_kernel(global_kernel(d, count), d, first_step, count, stream);
}

TrainKernelInfo info(const DeviceChunk& d, int count) { return info_of(global_kernel(d, count)); }

// Every lane's slice; it holds the evaluation's per-lane sample too (n + m <= the slice).
size_t scratch_floats(int n, int m, int) { return kLanes * lane_scratch_floats(n, m); }

const char* image_error() { return image_error_of(train_steps_global); }

}  // namespace

const MappingKernels kernels_global = {train,         evaluate_any, scratch_floats,
                                       never_on_chip, info,         image_error};

}  // namespace sp::cuda
