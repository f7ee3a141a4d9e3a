// mapping_tiled.cu — the tiled mapping and its split launch (kernels/mapping.hpp: tiled,
// tiled_split): large shapes (m n >= kTiledMinEntries: TMS's 100 x 20 ... 400 x 30), the step as
// GEMM-like passes over the whole batch, in one block of 8 warps per model (train_steps_tiled), or
// each pass a launch of its own over every model's tiles (tiled_split: a few models fill the
// device). The same bits either way, and the cpu backend's.
#include "kernels/mapping_kernels.cuh"
#include "kernels/step_common.cuh"

namespace sp::cuda {

namespace {

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

// Passes 1 and 3: out[row][j] = Σ_f W_jf in[row][f] (H from X, G_h from G_z). For the neuron model
// (kernels/toy_model.hpp: Activation::hidden) pass 1 stores ReLU(h_j) (relu_out) and pass 3 g_h,j
// masked by [h_j > 0] (mask_by: H, as pass 1 stored it; null otherwise).
__device__ __forceinline__ void rows_times_W_transposed(TiledShared& s, int t, const float* in,
                                                        int rows, const float* W, int n, int m,
                                                        float* out, bool relu_out = false,
                                                        const float* mask_by = nullptr) {
  const int rr = gemm_row(t), cc = gemm_output(t);
  for (int r0 = 0; r0 < rows; r0 += kGemmRows)
    for (int c0 = 0; c0 < m; c0 += kTileOut) {
      float acc[4][4] = {};
      tile_product<true>(s, t, in, rows, n, W, n, m, r0, c0, acc);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q)
          if (r0 + rr + i < rows && c0 + cc + q < m) {
            const size_t at = static_cast<size_t>(r0 + rr + i) * m + c0 + cc + q;
            float v = acc[i][q];
            if (relu_out) v = relu_forward(v);
            if (mask_by != nullptr) v = relu_backward(mask_by[at], v);
            out[at] = v;
          }
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
  Activation act;
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
  v.act = Activation::of(d.activation[model]);
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
    rows_times_W_transposed(s, pass_thread(), v.rows_of.x, rows, v.params, n, m, v.rows_of.hidden,
                            v.act.hidden);
    __syncthreads();
    outputs_and_gradients(s, pass_thread(), v.rows_of, rows, v.params, v.params + m * n,
                          v.importance, n, m, v.act.output, 2.0f * loss_scale);
    __syncthreads();
    rows_times_W_transposed(s, pass_thread(), v.rows_of.grad_z, rows, v.params, n, m,
                            v.rows_of.grad_hidden, false,
                            v.act.hidden ? v.rows_of.hidden : nullptr);
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
                          v.params, d.n, d.m, kGradient ? rows_of.grad_hidden : rows_of.hidden,
                          !kGradient && v.act.hidden,
                          kGradient && v.act.hidden ? rows_of.hidden : nullptr);
}

// Pass 2: z, g_z and each row's loss.
__global__ void __launch_bounds__(kTiledThreads) tiled_outputs_and_gradients(DeviceChunk d) {
  __shared__ TiledShared s;
  const RowTile at = row_tile(d);
  if (at.model >= d.models) return;
  const int n = d.n, m = d.m;
  const TiledModel v = tiled_model(d, at.model);
  outputs_and_gradients(s, threadIdx.x, rows_from(v.rows_of, at.r0, n, m), at.count, v.params,
                        v.params + m * n, v.importance, n, m, v.act.output,
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

TrainKernel tiled_kernel(const DeviceChunk&, int) {
  return {train_steps_tiled, "train_steps_tiled", 0, kTiledThreads, 1};
}

void train_tiled(const DeviceChunk& d, int first_step, int count, cudaStream_t stream) {
  launch_train_kernel(tiled_kernel(d, count), d, first_step, count, stream);
}

TrainKernelInfo info_tiled(const DeviceChunk& d, int count) {
  return info_of(tiled_kernel(d, count));
}

// Its longest pass, ∂W and ∂b, stands for tiled_split.
TrainKernelInfo info_split(const DeviceChunk&, int) {
  return {"tiled_gradients_and_update", false,
          blocks_per_sm(tiled_gradients_and_update, kTiledThreads, 0) * (kTiledThreads / kLanes)};
}

// The passes' results, and room for the evaluation's per-lane sample.
size_t scratch_floats(int n, int m, int train_rows) {
  const size_t passes = tiled_scratch_floats(n, m, train_rows);
  const size_t evaluation = static_cast<size_t>(kLanes) * (static_cast<size_t>(n) + m);
  return passes > evaluation ? passes : evaluation;
}

const char* image_error() { return image_error_of(train_steps_tiled); }

}  // namespace

int tiled_models_to_fill(int multiprocessors) {
  const int blocks = blocks_per_sm(train_steps_tiled, kTiledThreads, 0);
  return multiprocessors * (blocks > 0 ? blocks : 2);
}

const MappingKernels kernels_tiled = {train_tiled,   evaluate_any, scratch_floats,
                                      never_on_chip, info_tiled,   image_error};
const MappingKernels kernels_tiled_split = {launch_tiled_split, evaluate_any, scratch_floats,
                                            never_on_chip,      info_split,   image_error};

}  // namespace sp::cuda
