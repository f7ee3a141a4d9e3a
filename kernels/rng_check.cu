// rng_check.cu — GPU-test helpers (tests/test_cuda.cpp): what the device itself draws, to prove
// the random-number layout of kernels/philox.hpp on a real GPU. Built only where nvcc builds the
// cuda backend; the CUDA emulator runs the host's Philox, so there these tests would prove nothing.
#include <curand_kernel.h>

#include <stdexcept>
#include <string>

#include "kernels/rng_check.cuh"
#include "kernels/toy_model.hpp"

namespace sp::cuda {

namespace {

__global__ void curand_uniforms_kernel(uint64_t seed, uint64_t subsequence, int count, float* out) {
  curandStatePhilox4_32_10_t state;
  curand_init(seed, subsequence, 0, &state);
  for (int k = 0; k < count; ++k) out[k] = curand_uniform(&state);
}

__global__ void rows_kernel(uint64_t seed, uint64_t first, int rows, int n, const float* sparsity,
                            FeatureGroups groups, float* out) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row < rows)
    generate_sample(seed, first + static_cast<uint64_t>(row), n, sparsity,
                    out + static_cast<size_t>(row) * n, groups);
}

void check_launch(const char* what) {
  const cudaError_t error = cudaGetLastError();
  if (error != cudaSuccess)
    throw std::runtime_error(std::string(__FILE__) + ": " + what + ": " +
                             cudaGetErrorString(error));
}

void check_runtime(cudaError_t error, const char* what) {
  if (error != cudaSuccess)
    throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(error));
}

}  // namespace

std::vector<float> device_curand_uniforms(uint64_t seed, uint64_t subsequence, int count) {
  float* out = nullptr;
  check_runtime(cudaMalloc(&out, sizeof(float) * count), "cudaMalloc");
  curand_uniforms_kernel<<<1, 1>>>(seed, subsequence, count, out);
  check_launch("curand_uniforms_kernel");
  std::vector<float> host(count);
  check_runtime(cudaMemcpy(host.data(), out, sizeof(float) * count, cudaMemcpyDeviceToHost),
                "cudaMemcpy");
  check_runtime(cudaFree(out), "cudaFree");
  return host;
}

std::vector<float> device_rows(uint64_t seed, uint64_t first, int rows, int n,
                               const std::vector<float>& sparsity, FeatureGroups groups) {
  float *out = nullptr, *d_sparsity = nullptr;
  check_runtime(cudaMalloc(&out, sizeof(float) * rows * n), "cudaMalloc");
  check_runtime(cudaMalloc(&d_sparsity, sizeof(float) * n), "cudaMalloc");
  check_runtime(cudaMemcpy(d_sparsity, sparsity.data(), sizeof(float) * n, cudaMemcpyHostToDevice),
                "cudaMemcpy");
  rows_kernel<<<(rows + 127) / 128, 128>>>(seed, first, rows, n, d_sparsity, groups, out);
  check_launch("rows_kernel");
  std::vector<float> host(static_cast<size_t>(rows) * n);
  check_runtime(cudaMemcpy(host.data(), out, sizeof(float) * host.size(), cudaMemcpyDeviceToHost),
                "cudaMemcpy");
  check_runtime(cudaFree(out), "cudaFree");
  check_runtime(cudaFree(d_sparsity), "cudaFree");
  return host;
}

}  // namespace sp::cuda
