// toy_model.hpp — the per-sample math of one training step, shared by the CUDA kernels and the
// CPU backend (docs/design.md §1–3). Every function here is __host__ __device__ and works on one
// sample or one parameter, so the kernel and the CPU run the same arithmetic in the same order.
//
// The step's decomposition, also shared: a model's batch is split over kLanes lanes (the 32 lanes
// of a warp on the GPU, a loop on the CPU); lane l takes rows l, l + 32, l + 64, ... in order and
// keeps its own partial loss and gradients; the lanes are then summed by the pairwise tree of
// cub::WarpReduce (lane_tree_sum below is that tree written as a loop). No atomics, so a model's
// numbers depend only on its own configuration.
#pragma once

#include "kernels/hd.hpp"
#include "kernels/philox.hpp"

namespace sp {

constexpr int kLanes = 32;

// ---------------------------------------------------------------- data (docs/design.md §2)
// Feature groups (TMS's correlated and anticorrelated features): features [0, G_c·S) form G_c
// correlated groups of S consecutive features, the next G_a·S features G_a anticorrelated groups,
// the rest are independent. All zero: every feature independent (the default).
struct FeatureGroups {
  int correlated = 0, anticorrelated = 0, size = 2;
  SP_HD int grouped() const { return (correlated + anticorrelated) * size; }
  SP_HD bool any() const { return grouped() > 0; }
};

// The two rules of an independent feature, also used by the tiled kernel's parallel draw: its mask
// from its mask uniform (1 stands for "on" until the value), then its value from the mask and its
// value uniform.
SP_HD float feature_mask(float u, float threshold) { return (u <= threshold) ? 0.0f : 1.0f; }
SP_HD float feature_value(float mask, float u) { return (mask != 0.0f) ? u : 0.0f; }

// Sample `subsequence` of the stream keyed `seed`: uniforms 0..n-1 are the masks, n..2n-1 the
// values. A feature is on when its mask uniform is above its threshold (host/core/data.hpp:
// mask_thresholds; the sparsity s for an independent feature), and then takes its value uniform,
// in (0, 1]; off, it is exactly 0. A group's features are all decided by one uniform, its first
// feature's mask uniform u (the others' mask uniforms are drawn and unused):
//   correlated      feature k on when u > threshold[k] (its own s: equal sparsities switch the
//                   group on and off together, and each feature keeps its own density);
//   anticorrelated  member i on when threshold[k] < u <= threshold[k + 1] (the last member: u > its
//                   threshold): S consecutive intervals of width min(1, S·p) / S ending at 1, so
//                   the group is on with probability min(1, S·p), and then exactly one member is,
//                   each equally likely (p: the group's first feature's density).
// With the default FeatureGroups{} (a constant) the group branches fold away: the per-shape kernels
// pass it, and only the global and tiled mappings read the chunk's groups (kernels/step_common.cuh:
// load_row).
SP_HD void generate_sample(uint64_t seed, uint64_t subsequence, int n, const float* threshold,
                           float* x, FeatureGroups groups = FeatureGroups{}) {
  const int uniforms = 2 * n, grouped = groups.grouped();
  const int correlated = groups.correlated * groups.size;
  float lead = 0.0f;  // the current group's uniform
  int member = 0;     // k's place in its group
  for (int first = 0; first < uniforms; first += 4) {
    const PhiloxBlock block = philox_block(seed, subsequence, static_cast<uint64_t>(first / 4));
    for (int w = 0; w < 4 && first + w < uniforms; ++w) {
      const int k = first + w;
      const float u = uniform_from_bits(block.word[w]);
      if (k >= n) {
        x[k - n] = feature_value(x[k - n], u);
      } else if (k >= grouped) {
        x[k] = feature_mask(u, threshold[k]);  // mask first: 0 means "this feature is off"
      } else {
        if (member == 0) lead = u;
        bool on = lead > threshold[k];
        if (k >= correlated && member + 1 < groups.size)
          on = on && lead <= threshold[k + 1 < n ? k + 1 : k];
        x[k] = on ? 1.0f : 0.0f;
        member = (member + 1 == groups.size) ? 0 : member + 1;
      }
    }
  }
}

// 1 / (B n), the mean's scale; the gradient's 2 / (B n) is twice it (exact in binary).
SP_HD float mean_scale(int rows, int n) {
  return 1.0f / (static_cast<float>(rows) * static_cast<float>(n));
}

// ---------------------------------------------------------------- forward + backward of one sample
// The ReLU's two faces, written once for every lane type: the output keeps z where z > 0 (and a
// NaN z stays NaN, never hidden), and the gradient passes only where z > 0 (PyTorch's ReLU has
// gradient 0 at 0).
SP_HD float relu_forward(float z) { return (z > 0.0f || z != z) ? z : 0.0f; }
SP_HD float relu_backward(float z, float g) { return z > 0.0f ? g : 0.0f; }

// Where a model applies ReLU (docs/design.md §1, §9): to its output (the relu model; linear:
// nowhere), and for the neuron model to its hidden layer too — h = ReLU(W x), a privileged basis
// (TMS §"Privileged basis", ARENA's NeuronModel). One byte on the device (bit 0 the output, bit 1
// the hidden layer: DeviceChunk::activation).
struct Activation {
  bool output = true, hidden = false;
  SP_HD static Activation of(unsigned code) {
    return Activation{(code & 1u) != 0, (code & 2u) != 0};
  }
  SP_HD unsigned code() const { return (output ? 1u : 0u) | (hidden ? 2u : 0u); }
};

// The model: a = W x, h = a (or ReLU(a): act.hidden), z = Wᵀ h + b, y = ReLU(z) (act.output) or z.
// W is m x n row-major (W[j * n + f]). One sample's share of the gradients of
// L = (1 / (B n)) Σ I_f (x_f − y_f)²:
//   g_z = grad_scale · I ⊙ (y − x) ⊙ [z > 0]   with grad_scale = 2 / (B n)
//   ∂b += g_z,  g_h = (W g_z) ⊙ [h > 0] (the mask only for act.hidden),  ∂W += h g_zᵀ + g_h xᵀ
// ([h > 0] is [a > 0]: ReLU(a) > 0 exactly where a > 0. A NaN a gives a NaN h, kept, and a 0 mask —
// PyTorch's ReLU would pass that gradient; either way the model has diverged, which is reported.)
// Without the hidden ReLU the operations are those of the tied model alone, so its bits do not
// change.
// in two parts: forward_backward_sample (everything but ∂W) and accumulate_grad_W. The loss is
// returned as Σ_f I_f (x_f − y_f)² (the caller scales it by 1 / (B n) after the reduction).
// `hidden`, `grad_hidden` (m values) and `grad_z` (n) are caller-provided scratch (registers in
// the kernels).
//
// T is what one lane holds: a float (one sample: the kernels, and the CPU's scalar path) or a
// pack of V floats, one sample per lane (host/backends/simd_lanes.hpp: the CPU's SIMD path). Every
// operation is elementwise, so each lane computes exactly the float code's bits.
//
// W is read by rows for h = W x and by columns for z = Wᵀ h + b and g_h = W g_z: `W_columns` is
// where the columns are read from — W itself (columns_of), or, in the kernels' shared-weights
// mapping, a transposed copy (transposed_columns) so that the two passes read separate memory and
// the compiler need not keep all of W in registers between them. Same values, same bits.
struct WColumns {
  const float* data;
  int stride_f, stride_j;  // entry (j, f) at data[f * stride_f + j * stride_j]
  SP_HD float at(int f, int j) const { return data[f * stride_f + j * stride_j]; }
};
SP_HD WColumns columns_of(const float* W, int n) { return WColumns{W, 1, n}; }  // W: m x n
SP_HD WColumns transposed_columns(const float* Wt, int m) { return WColumns{Wt, m, 1}; }  // n x m

// One feature's output from its pre-activation z, in three parts: its error y_f − x_f and
// weighted error I_f (y_f − x_f) (output_error); the loss term, I_f (y_f − x_f)² added to a running
// sum as fma(weighted error, error, sum); and g_z,f = grad_scale · I_f (y_f − x_f), masked by
// [z > 0] for the ReLU model (gradient_from_error). output_gradient does all three for one feature
// (the per-sample step below and the CPU's blocked passes for large shapes,
// host/backends/cpu_simd.inc); the kernels' tiled mapping takes the parts apart (its loss sum runs
// over the features in order on another thread: kernels/mapping_tiled.cu). output_gradient spells
// the parts out rather than calling them: built from the two, ptxas spilled in the shared-weights
// kernel at 20 x 5 (tests/check_ptxas.py); the same operations, and the tiled mapping's tests
// compare the bits.
template <class T>
struct OutputError {
  T error, weighted;
};
template <class T>
SP_HD OutputError<T> output_error(bool relu, T z, T x, float importance) {
  const T y = relu ? relu_forward(z) : z;
  const T error = y - x;
  return OutputError<T>{error, importance * error};
}
template <class T>
SP_HD T gradient_from_error(bool relu, T z, OutputError<T> e, float grad_scale) {
  const T scaled = grad_scale * e.weighted;
  return relu ? relu_backward(z, scaled) : scaled;
}
template <class T>
SP_HD T output_gradient(bool relu, T z, T x, float importance, float grad_scale,
                        T& weighted_sq_error) {
  const T y = relu ? relu_forward(z) : z;
  const T error = y - x;
  const T weighted_error = importance * error;
  weighted_sq_error = fma_f(weighted_error, error, weighted_sq_error);
  const T scaled = grad_scale * weighted_error;
  return relu ? relu_backward(z, scaled) : scaled;
}

//
// take_grad_z(f, g_z) receives each g_z,f as it is computed: forward_backward_sample keeps them in
// grad_z for accumulate_grad_W; accumulate_sample_streaming adds ∂W's first term at once.
template <class T, class TakeGradZ>
SP_HD T forward_backward_sample_with(int n, int m, Activation act, const float* SP_RESTRICT W,
                                     WColumns W_columns, const float* SP_RESTRICT b,
                                     const float* SP_RESTRICT importance, const T* SP_RESTRICT x,
                                     float grad_scale, T* SP_RESTRICT grad_b, T* SP_RESTRICT hidden,
                                     T* SP_RESTRICT grad_hidden, TakeGradZ&& take_grad_z) {
  SP_UNROLL for (int j = 0; j < m; ++j) {
    T h = 0.0f;
    SP_UNROLL for (int f = 0; f < n; ++f) h = fma_f(W[j * n + f], x[f], h);
    hidden[j] = act.hidden ? relu_forward(h) : h;
    grad_hidden[j] = 0.0f;
  }
  T weighted_sq_error = 0.0f;
  SP_UNROLL for (int f = 0; f < n; ++f) {
    T z = b[f];
    SP_UNROLL for (int j = 0; j < m; ++j) z = fma_f(W_columns.at(f, j), hidden[j], z);
    const T g_z =
        output_gradient(act.output, z, x[f], importance[f], grad_scale, weighted_sq_error);
    grad_b[f] += g_z;
    take_grad_z(f, g_z);
    SP_UNROLL for (int j = 0; j < m; ++j) grad_hidden[j] =
        fma_f(W_columns.at(f, j), g_z, grad_hidden[j]);
  }
  if (act.hidden)
    SP_UNROLL for (int j = 0; j < m; ++j) grad_hidden[j] = relu_backward(hidden[j], grad_hidden[j]);
  return weighted_sq_error;
}

// Everything but ∂W, g_z kept in grad_z for accumulate_grad_W; W's columns read from W itself.
template <class T>
SP_HD T forward_backward_sample(int n, int m, Activation act, const float* SP_RESTRICT W,
                                const float* SP_RESTRICT b, const float* SP_RESTRICT importance,
                                const T* SP_RESTRICT x, float grad_scale, T* SP_RESTRICT grad_b,
                                T* SP_RESTRICT hidden, T* SP_RESTRICT grad_hidden,
                                T* SP_RESTRICT grad_z) {
  return forward_backward_sample_with(n, m, act, W, columns_of(W, n), b, importance, x, grad_scale,
                                      grad_b, hidden, grad_hidden,
                                      [grad_z](int f, T g_z) { grad_z[f] = g_z; });
}

// ∂W += h g_zᵀ + g_h xᵀ for one sample: each entry takes h_j g_z,f first, then g_h,j x_f (two
// roundings, in that order — the CPU's SIMD path reorders across samples, never within an entry).
template <class T>
SP_HD void accumulate_grad_W(int n, int m, const T* SP_RESTRICT hidden, const T* SP_RESTRICT grad_z,
                             const T* SP_RESTRICT grad_hidden, const T* SP_RESTRICT x,
                             T* SP_RESTRICT grad_W) {
  SP_UNROLL for (int j = 0; j < m; ++j) SP_UNROLL for (int f = 0; f < n; ++f) grad_W[j * n + f] =
      fma_f(grad_hidden[j], x[f], fma_f(hidden[j], grad_z[f], grad_W[j * n + f]));
}

// Both parts: one sample's whole contribution to the step.
template <class T>
SP_HD T accumulate_sample(int n, int m, Activation act, const float* W, const float* b,
                          const float* importance, const T* x, float grad_scale, T* grad_W,
                          T* grad_b, T* hidden, T* grad_hidden, T* grad_z) {
  const T weighted_sq_error = forward_backward_sample(n, m, act, W, b, importance, x, grad_scale,
                                                      grad_b, hidden, grad_hidden, grad_z);
  accumulate_grad_W(n, m, hidden, grad_z, grad_hidden, x, grad_W);
  return weighted_sq_error;
}

// accumulate_sample in another program order, for the kernels' shared-weights mapping: each ∂W
// entry's first term h_j g_z,f is added as soon as g_z,f is known, and its second, g_h,j x_f,
// after the loop over features, as g_h needs all of g_z. Every entry still takes the same two
// fused multiply-adds in the same order, so the bits are accumulate_sample's (tested on the host);
// g_z is never held whole, which saves n registers per lane on the device.
template <class T>
SP_HD T accumulate_sample_streaming(int n, int m, Activation act, const float* SP_RESTRICT W,
                                    WColumns W_columns, const float* SP_RESTRICT b,
                                    const float* SP_RESTRICT importance, const T* SP_RESTRICT x,
                                    float grad_scale, T* SP_RESTRICT grad_W, T* SP_RESTRICT grad_b,
                                    T* SP_RESTRICT hidden, T* SP_RESTRICT grad_hidden) {
  const T weighted_sq_error =
      forward_backward_sample_with(n, m, act, W, W_columns, b, importance, x, grad_scale, grad_b,
                                   hidden, grad_hidden, [=](int f, T g_z) {
                                     SP_UNROLL for (int j = 0; j < m; ++j) grad_W[j * n + f] =
                                         fma_f(hidden[j], g_z, grad_W[j * n + f]);
                                   });
  SP_UNROLL for (int j = 0; j < m; ++j) SP_UNROLL for (int f = 0; f < n; ++f) grad_W[j * n + f] =
      fma_f(grad_hidden[j], x[f], grad_W[j * n + f]);
  return weighted_sq_error;
}

// Forward only: Σ_f I_f (x_f − y_f)² for one sample (evaluation and final losses).
SP_HD float sample_loss(int n, int m, Activation act, const float* W, const float* b,
                        const float* importance, const float* x, float* hidden) {
  for (int j = 0; j < m; ++j) {
    float h = 0.0f;
    for (int f = 0; f < n; ++f) h = fma_f(W[j * n + f], x[f], h);
    hidden[j] = act.hidden ? relu_forward(h) : h;
  }
  float weighted_sq_error = 0.0f;
  for (int f = 0; f < n; ++f) {
    float z = b[f];
    for (int j = 0; j < m; ++j) z = fma_f(W[j * n + f], hidden[j], z);
    const float y = act.output ? relu_forward(z) : z;
    const float error = y - x[f];
    weighted_sq_error = fma_f(importance[f] * error, error, weighted_sq_error);
  }
  return weighted_sq_error;
}

// ---------------------------------------------------------------- reduction over lanes
// The pairwise tree cub::WarpReduce<float>::Sum computes in lane 0: at offsets 1, 2, 4, 8, 16 lane
// i adds lane i + offset. `values` holds one partial per lane (stride apart) and is overwritten.
SP_HD float lane_tree_sum(float* values, int stride = 1) {
  for (int offset = 1; offset < kLanes; offset *= 2)
    for (int lane = 0; lane + offset < kLanes; lane += 2 * offset)
      values[lane * stride] += values[(lane + offset) * stride];
  return values[0];
}

// ---------------------------------------------------------------- AdamW (torch.optim.AdamW
// defaults)
struct AdamWConstants {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float one_minus_beta1 = 0.1f, one_minus_beta2 = 0.001f;  // rounded from double, as torch does
};

// The per-step, per-model scalars, computed on the host in double and rounded once to float:
// decay = 1 − lr·wd, step_size = lr / (1 − β1ᵗ), bias2_sqrt = sqrt(1 − β2ᵗ).
struct AdamWStep {
  float decay, step_size, bias2_sqrt;
};

SP_HD float sqrt_f(float x) { return sqrtf(x); }

// One parameter, step t (the scalars already hold t):
//   p ← p·(1 − lr·wd);  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//   p ← p − step_size · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
// T: a float, or the CPU's pack of V parameters (host/backends/simd_lanes.hpp; each operation lane
// by lane, correctly rounded, so the bits of the float code).
template <class T>
SP_HD void adamw_update(T& param, T& adam_m, T& adam_v, T grad, AdamWStep s,
                        AdamWConstants c = AdamWConstants{}) {
  param = param * s.decay;
  adam_m = c.beta1 * adam_m + c.one_minus_beta1 * grad;
  adam_v = c.beta2 * adam_v + c.one_minus_beta2 * (grad * grad);
  const T denom = sqrt_f(adam_v) / s.bias2_sqrt + c.eps;
  param = param - s.step_size * adam_m / denom;
}

}  // namespace sp
