// fused_step.cuh — the fused CUDA training step over a chunk of models (docs/design.md, "Kernel
// mappings"): what the host passes to the kernels (device pointers, one chunk) and the launchers
// host/backends/cuda_backend.cu calls. Per launch, for every model of the chunk and for K steps:
// sample generation (cuRAND's Philox), forward, ReLU, importance-weighted MSE, analytic gradients,
// the reduction over the batch (cub::WarpReduce's tree, no atomics) and the AdamW update.
//
// How the models map onto threads is the chunk's Mapping (kernels/mapping.hpp: the table of
// mappings and the dispatcher's choice); each mapping's kernels are in a file of their own —
//   kernels/mapping_registers.cu  (2, 1) and (5, 2): everything in registers, a warp per model
//   kernels/mapping_shared.cu     (20, 5) (and 5 x 2, to compare): W and b in shared memory
//   kernels/mapping_global.cu     any other shape: parameters and lanes' partials in memory
//   kernels/mapping_tiled.cu      large shapes: GEMM-like passes, a block per model (tiled) or
//                                 a launch per pass over every model's tiles (tiled_split)
//   kernels/evaluate.cu           the evaluation kernel and the fixed datasets' generation
// behind kernels/mapping_kernels.cuh's contract, routed by kernels/dispatch.cu. All run the shared
// math of kernels/toy_model.hpp in the lane order the cpu backend mirrors, so a model's bits
// depend neither on its neighbours nor on the mapping.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/mapping.hpp"
#include "kernels/toy_model.hpp"

namespace sp::cuda {

struct DeviceChunk {
  int models = 0, n = 0, m = 0;
  int train_rows = 0;  // rows per step (fixed: the dataset's first rows; fresh: the batch)
  int points = 0;      // fixed: dataset rows per model
  // Training rows drawn with Philox in the kernel — fresh data, or fixed data drawn again from its
  // counters (no dataset in memory) — rather than read from `dataset`. Row r of step t is stream
  // row draw_stride · t + r: the batch for fresh data, 0 for fixed data (the same rows each step).
  bool draw_rows = false;
  // Fixed rows kept on chip: the registers mapping's launches of K > 1 steps copy each model's
  // training rows from `dataset` into shared memory once and read them there (rows_fit_on_chip).
  bool rows_on_chip = false;
  const uint64_t* seed = nullptr;        // [models]
  const uint8_t* activation = nullptr;   // [models]: Activation::code (kernels/toy_model.hpp)
  const double* lr = nullptr;            // [models]
  const double* weight_decay = nullptr;  // [models]
  const float* sparsity = nullptr;       // [models][n]: mask_thresholds (host/core/data.hpp)
  const float* importance = nullptr;     // [models][n]
  float* params = nullptr;               // [models][m n + n]: W row-major, then b
  float* adam_m = nullptr;               // same layout
  float* adam_v = nullptr;               // same layout
  const float* dataset = nullptr;        // fixed: [models][points][n] (null when regenerated)
  // AdamW's per-step scalars for a window of steps: entry k is step schedule_first + k (0-based;
  // the host uploads the next window before the launches that need it, so no table grows with
  // the steps).
  const double* bias1 = nullptr;      // 1 − β1ᵗ
  const float* bias2_sqrt = nullptr;  // sqrt(1 − β2ᵗ)
  const double* lr_factor = nullptr;  // the schedule's factor of the learning rate
  float* loss_curve = nullptr;        // [models][steps] or null
  int loss_curve_stride = 0;          // steps
  float* last_loss = nullptr;         // [models] the latest step's training loss
  float* scratch = nullptr;           // global and tiled mappings: [models][scratch_per_model]
  int draw_stride = 0;
  // Which kernels train this chunk (mapping_for, or forced). Last: placed first, it moved the
  // other fields' offsets and cost the register kernels 20 and 6 registers (ptxas).
  Mapping mapping = Mapping::global;
  int schedule_first = 0;        // the step bias1[0] and bias2_sqrt[0] are for
  uint64_t eval_seed = 0;        // fresh data's evaluation rows: the stream every model shares
  FeatureGroups groups;          // correlated and anticorrelated features (generate_sample)
  size_t scratch_per_model = 0;  // floats of `scratch` per model (scratch_floats_per_model)
};

// Dynamic shared memory a block may take for rows on chip: the 48 KiB a launch gets without
// opting in (an H100 SM has 228 KiB and reserves 1 KiB a block: at (2, 1), 1024 rows, 32 KiB a
// block leaves room for 6 blocks, 24 warps, where the kernel's 64 registers allow 8).
constexpr size_t kOnChipBytesPerBlock = 48 << 10;
// Whether the mapping can keep fixed training rows on chip: the registers mapping, with its four
// models' train_rows × n floats and the kernel's static shared memory (cudaFuncGetAttributes)
// within kOnChipBytesPerBlock ((2, 1): up to 1536 rows; (5, 2): 614, with no static part).
bool rows_fit_on_chip(Mapping mapping, int n, int train_rows);
// Scratch floats per model the mapping needs with `train_rows` rows per step: the global mapping's
// per-lane slices, the tiled mapping's pass results, room for the evaluation's per-lane sample
// (both) — 0 for the per-shape mappings.
size_t scratch_floats_per_model(int n, int m, int train_rows, Mapping mapping);

// Why the kernels cannot run on device 0 (the runtime's error text: no kernel image for its
// architecture, typically), or null when they can.
const char* kernel_image_error();

// Models a chunk of a tiled shape needs to fill the device on train_steps_tiled, a block per model:
// multiprocessors × the blocks of it an SM of device 0 holds (the runtime's occupancy calculator;
// 2, its ptxas launch bounds, where the runtime cannot tell). Fewer train on tiled_split.
int tiled_models_to_fill(int multiprocessors);

// Trains steps first_step .. first_step + count − 1 (0-based) of every model in one launch.
void launch_train_steps(const DeviceChunk& chunk, int first_step, int count, void* stream);

// The training kernel launch_train_steps runs for `count` steps of a chunk of this mapping (with
// DeviceChunk::rows_on_chip and train_rows as given): its name, as bench/sass_report.py names it;
// whether it reads the rows on chip; the warps of it an SM of device 0 holds at once
// (cudaOccupancyMaxActiveBlocksPerMultiprocessor: registers, shared memory, threads; 0 where the
// runtime cannot tell). For the benchmark's report.
struct TrainKernelInfo {
  const char* name;
  bool rows_on_chip;
  int warps_per_sm;
};
TrainKernelInfo train_kernel_info(Mapping mapping, bool rows_on_chip, int n, int train_rows,
                                  int count);

// Evaluation losses into out[models]: fixed — dataset rows [row_offset, row_offset + rows);
// fresh — generated rows kEvalBase + j for j < rows of the stream keyed eval_seed (row_offset
// ignored).
void launch_evaluate(const DeviceChunk& chunk, bool fresh_eval_rows, int row_offset, int rows,
                     float* out, void* stream);

// Fixed mode: fills chunk.dataset ([models][points][n]) from each model's seed.
void launch_generate_dataset(const DeviceChunk& chunk, float* dataset, void* stream);

}  // namespace sp::cuda
