// race_demo shuffle|syncwarp — the race the emulator's race check exists for, in a few lines of
// kernel: every lane reads every weight from shared memory, the lanes exchange a value by shuffle,
// and each lane then overwrites its own weight. A shuffle orders no memory, so on a device the
// update may land before another lane's read: ThreadSanitizer must report it ("shuffle"), and must
// stay silent when a __syncwarp comes between ("syncwarp"). The same pattern as the shared-weights
// mapping's update (kernels/mapping_shared.cu). Built and run by the race check only (TSan).
#include <cstdio>
#include <cstring>

#include "cuda_runtime.h"

template <bool kSyncwarp>
__global__ void update_after_exchange(float* out) {
  __shared__ float weights[32];
  const int lane = static_cast<int>(threadIdx.x % 32);
  weights[lane] = 1.0f + static_cast<float>(lane);
  __syncwarp();
  float sum = 0.0f;
  for (int k = 0; k < 32; ++k) sum += weights[k];  // every lane reads every weight
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);     // an exchange: no memory order
  if (kSyncwarp) __syncwarp();
  weights[lane] = sum;  // each lane updates its own
  out[lane] = sum;
}

int main(int argc, char** argv) {
  if (argc != 2 ||
      (std::strcmp(argv[1], "shuffle") != 0 && std::strcmp(argv[1], "syncwarp") != 0)) {
    std::fprintf(stderr, "usage: race_demo shuffle|syncwarp\n");
    return 2;
  }
  const bool syncwarp = std::strcmp(argv[1], "syncwarp") == 0;
  float* out = nullptr;
  if (cudaMalloc(&out, 32 * sizeof(float)) != cudaSuccess) return 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(1);
  config.blockDim = dim3(32);
  const cudaError_t error = syncwarp
                                ? cudaLaunchKernelEx(&config, update_after_exchange<true>, out)
                                : cudaLaunchKernelEx(&config, update_after_exchange<false>, out);
  float host[32];
  cudaMemcpy(host, out, sizeof host, cudaMemcpyDeviceToHost);
  cudaFree(out);
  std::printf("race_demo %s: %s, lane 0 has %g\n", argv[1], cudaGetErrorString(error), host[0]);
  return error == cudaSuccess ? 0 : 1;
}
