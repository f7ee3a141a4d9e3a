// mapping_kernels.cuh — the contract every kernel mapping's file exports (docs/design.md, "Kernel
// mappings"): one MappingKernels per row of SP_MAPPINGS (kernels/mapping.hpp), named
// kernels_<id>, which the dispatcher (kernels/dispatch.cu) looks up by the mapping. A new mapping
// is a new kernels/mapping_<family>.cu defining its MappingKernels, and its row.
#pragma once

#include <cstddef>

#include "kernels/fused_step.cuh"

namespace sp::cuda {

struct MappingKernels {
  // Trains steps first_step .. first_step + count − 1 of every model of the chunk: one launch, or
  // (tiled_split) a launch per pass and step, queued on `stream`.
  void (*train)(const DeviceChunk& d, int first_step, int count, cudaStream_t stream);
  // launch_evaluate's contract (kernels/fused_step.cuh), for this mapping's chunks.
  void (*evaluate)(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                   cudaStream_t stream);
  // Scratch floats per model it needs with `train_rows` rows a step (0: none): its own, and room
  // for the evaluation's per-lane sample.
  size_t (*scratch_floats)(int n, int m, int train_rows);
  // Whether fixed training rows can be kept on chip (in shared memory) for a launch's steps.
  bool (*rows_fit_on_chip)(int n, int train_rows);
  // The training kernel a launch of `count` steps runs, for the benchmark's report.
  TrainKernelInfo (*info)(const DeviceChunk& d, int count);
  // Why its kernels cannot run on the current device (no kernel image for its architecture,
  // typically), or null when they can.
  const char* (*image_error)();
};

#define SP_MAPPING_KERNELS(id, n, m, groups, hidden, own) extern const MappingKernels kernels_##id;
SP_MAPPINGS(SP_MAPPING_KERNELS)
#undef SP_MAPPING_KERNELS

// The evaluation kernels (kernels/evaluate.cu): the shapes with registers of their own, and any.
void evaluate_2x1(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream);
void evaluate_5x2(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream);
void evaluate_20x5(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                   cudaStream_t stream);
void evaluate_any(const DeviceChunk& d, bool fresh_rows, int row_offset, int rows, float* out,
                  cudaStream_t stream);
const char* evaluate_image_error();  // the evaluation's and the datasets' kernels

}  // namespace sp::cuda
