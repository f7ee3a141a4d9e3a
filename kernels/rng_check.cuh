// rng_check.cuh — GPU-test helpers: the device's own random numbers (kernels/rng_check.cu).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/toy_model.hpp"

namespace sp::cuda {

// Uniforms 0 .. count−1 of curand_init(seed, subsequence, 0) followed by curand_uniform — cuRAND's
// own generator, the layout kernels/philox.hpp claims to reproduce.
std::vector<float> device_curand_uniforms(uint64_t seed, uint64_t subsequence, int count);
// generate_sample on the device (the kernels' path, curand_Philox4x32_10) for rows
// first .. first + rows − 1: rows x n, row-major. `sparsity`: the mask thresholds.
std::vector<float> device_rows(uint64_t seed, uint64_t first, int rows, int n,
                               const std::vector<float>& sparsity,
                               FeatureGroups groups = FeatureGroups{});

}  // namespace sp::cuda
