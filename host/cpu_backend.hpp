// cpu_backend.hpp — float32 on all cores, built from the kernels' own __host__ __device__
// per-sample math and lane decomposition (kernels/toy_model.hpp), so CI runs the GPU's arithmetic.
#pragma once

#include <vector>

#include "host/config.hpp"
#include "host/data.hpp"

namespace sp::cpu {

// Scratch for one model's step: one partial sum per lane for every gradient entry and the loss.
struct LaneScratch {
  std::vector<float> partial;  // kLanes x (m n + n), lane-major
  std::vector<float> partial_loss;
  std::vector<float> hidden, grad_hidden, grad_z;
  void resize(int n, int m);
};

// One step's loss and gradients over `rows` samples (rows x n), in the kernel's order: lane l
// accumulates rows l, l + 32, ...; then the lanes are summed by cub::WarpReduce's tree.
// Returns L; writes ∂W (m x n) and ∂b (n).
float loss_and_gradients(int n, int m, bool relu, const float* W, const float* b,
                         const float* importance, const float* x, int rows, float* grad_W,
                         float* grad_b, LaneScratch& scratch);

// L alone, in the same order (NaN for zero rows).
float loss(int n, int m, bool relu, const float* W, const float* b, const float* importance,
           const float* x, int rows, LaneScratch& scratch);

// The same step, V rows at a time (V = Lanes::kWidth of host/simd_lanes.hpp, a vector register:
// rows r .. r+V-1 belong to lanes r mod 32 .. r mod 32 + V-1), through forward_backward_sample and
// accumulate_grad_W on Lanes (the latter over blocks of packs for shapes with many ∂W entries);
// the rows left over at the end go through the float path into their lanes. Same lanes, same order
// within every gradient entry, so the same bits as loss_and_gradients above (tested), several times
// faster.
class SimdStep {
 public:
  SimdStep(int n, int m);
  ~SimdStep();
  SimdStep(const SimdStep&) = delete;
  SimdStep& operator=(const SimdStep&) = delete;
  // The rows every following step uses (rows x n, row-major; kept by pointer, and transposed into
  // the lanes' layout here: call again when they change).
  void set_rows(const float* x, int rows);
  // Fresh rows first_subsequence .. + rows - 1 of `model`, drawn straight into the lanes' layout
  // (16 rows per Philox call with AVX-512; elsewhere generate_rows, then set_rows): the same
  // values as generate_rows(model, n, first_subsequence, rows), bit for bit (tested).
  void generate_rows(const ModelSpec& model, const float* sparsity, uint64_t first_subsequence,
                     int rows);
  float loss_and_gradients(bool relu, const float* W, const float* b, const float* importance,
                           float* grad_W, float* grad_b);
  struct State;  // defined in cpu_backend.cpp

 private:
  State* state_;
};

ModelResult train(const GroupSpec& group, const ModelSpec& model, const AdamWSchedule& schedule);

}  // namespace sp::cpu
