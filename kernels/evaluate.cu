// evaluate.cu — the evaluation kernel every mapping uses (a warp per model: the loss of the final
// or a recorded step's parameters on the evaluation rows), one instance per shape with registers
// of its own and one for any shape, and the kernel that draws fixed datasets.
#include "kernels/mapping_kernels.cuh"
#include "kernels/step_common.cuh"

namespace sp::cuda {

namespace {

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
  const Activation act = Activation::of(d.activation[model]);
  float lane_loss = 0.0f;
  for (int r = lane; r < rows; r += kLanes) {
    if (fresh_rows || d.draw_rows) {  // fresh data's evaluation rows, or fixed rows drawn again
      const uint64_t first = fresh_rows ? kEvalBase : static_cast<uint64_t>(row_offset);
      generate_sample(fresh_rows ? d.eval_seed : d.seed[model], first + static_cast<uint64_t>(r), n,
                      sparsity, x, kStatic ? FeatureGroups{} : d.groups);
    } else {
      dataset_row(d, model, row_offset + r, n, x);
    }
    lane_loss += sample_loss(n, m, act, params, params + m * n, importance, x, hidden);
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

template <int N, int M>
void evaluate_with(const char* name, const DeviceChunk& d, bool fresh_rows, int row_offset,
                   int rows, float* out, cudaStream_t stream) {
  launch(name, evaluate_kernel<N, M>, blocks_for(d.models), kThreads, 0, stream, d, fresh_rows,
         row_offset, rows, out);
}

}  // namespace

void evaluate_2x1(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream) {
  evaluate_with<2, 1>("evaluate_kernel<2, 1>", d, fresh_rows, row_offset, rows, out, stream);
}
void evaluate_5x2(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream) {
  evaluate_with<5, 2>("evaluate_kernel<5, 2>", d, fresh_rows, row_offset, rows, out, stream);
}
void evaluate_20x5(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                   cudaStream_t stream) {
  evaluate_with<20, 5>("evaluate_kernel<20, 5>", d, fresh_rows, row_offset, rows, out, stream);
}
void evaluate_any(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream) {
  evaluate_with<0, 0>("evaluate_kernel<0, 0>", d, fresh_rows, row_offset, rows, out, stream);
}

void launch_generate_dataset(const DeviceChunk& d, float* dataset, void* stream) {
  const size_t total = static_cast<size_t>(d.models) * d.points;
  if (total == 0) return;
  const unsigned blocks = static_cast<unsigned>((total + 255) / 256);
  launch("generate_dataset_kernel", generate_dataset_kernel, blocks, 256, 0,
         static_cast<cudaStream_t>(stream), d, dataset);
}

const char* evaluate_image_error() { return image_error_of(generate_dataset_kernel); }

}  // namespace sp::cuda
