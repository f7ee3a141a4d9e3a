// cuda_runtime.h — the CUDA emulator's stand-in for the runtime header: the part of the CUDA
// language and runtime API that kernels/fused_step.cu and host/backends/cuda_backend.cu use, with the same
// names and signatures, implemented by tests/emulator/emulator.cpp on the CPU. Force-included into
// the emulated translation units, as nvcc force-includes the real one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "cuda_emulator.hpp"

// ---------------------------------------------------------------- the language
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
// Shared memory is per block; a block's fibers all run on one host thread, one block at a time.
#define __shared__ static thread_local

// threadIdx, blockIdx, blockDim, gridDim: cuda_emulator.hpp.
constexpr int warpSize = ::sp_emu::kWarpSize;

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::sp_emu::warp_collective("__syncwarp", mask, 0, -1);
}
inline void __syncthreads() { ::sp_emu::block_barrier(); }

template <class T>
T __shfl_sync(unsigned mask, T value, int source_lane, int width = warpSize) {
  const int lane = ::sp_emu::lane_id();
  const int source = (lane / width) * width + ((source_lane % width) + width) % width;
  return ::sp_emu::from_bits<T>(
      ::sp_emu::warp_collective("__shfl_sync", mask, ::sp_emu::to_bits(value), source));
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = warpSize) {
  const int lane = ::sp_emu::lane_id();
  const int in_segment = lane % width + static_cast<int>(delta);
  const int source = in_segment < width ? lane + static_cast<int>(delta) : lane;
  return ::sp_emu::from_bits<T>(
      ::sp_emu::warp_collective("__shfl_down_sync", mask, ::sp_emu::to_bits(value), source));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = warpSize) {
  const int lane = ::sp_emu::lane_id();
  const int partner = lane ^ lane_mask;
  const int source = partner / width == lane / width ? partner : lane;
  return ::sp_emu::from_bits<T>(
      ::sp_emu::warp_collective("__shfl_xor_sync", mask, ::sp_emu::to_bits(value), source));
}

// ---------------------------------------------------------------- the runtime API
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNoDevice = 100,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorIllegalAddress = 700,
  cudaErrorNotSupported = 801,
};
using cudaError = cudaError_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
  int warpSize;
  int maxThreadsPerBlock;
  int clockRate;  // kHz
};

struct cudaLaunchAttribute;
struct cudaLaunchConfig_t {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};

const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device);
cudaError_t cudaSetDevice(int device);
enum cudaDeviceAttr { cudaDevAttrClockRate = 13, cudaDevAttrMultiProcessorCount = 16 };
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device);
cudaError_t cudaMalloc(void** pointer, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** pointer, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
}
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes,
                            cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* pointer, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end);

struct cudaFuncAttributes {
  size_t sharedSizeBytes;
  int maxThreadsPerBlock;
  int numRegs;
};
namespace sp_emu {
cudaError_t kernel_attributes(cudaFuncAttributes* attributes);
cudaError_t not_supported();
}  // namespace sp_emu
template <class T>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, T*) {
  return ::sp_emu::kernel_attributes(attributes);
}
// Occupancy turns on registers, which only nvcc knows: the emulator says it cannot tell.
template <class T>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, T*, int, size_t) {
  *blocks = 0;
  return ::sp_emu::not_supported();
}

namespace sp_emu {
cudaError_t record_launch(LaunchStatus status);
}

// As the real header's: the arguments are converted to the kernel's parameter types at the call,
// then every thread runs the kernel on its own copy of them.
template <class... ExpTypes, class... ActTypes>
cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(ExpTypes...),
                               ActTypes&&... args) {
  return [&](ExpTypes... coerced) {
    return ::sp_emu::record_launch(::sp_emu::launch(config->gridDim, config->blockDim,
                                                    config->dynamicSmemBytes,
                                                    [&]() { kernel(coerced...); }));
  }(std::forward<ActTypes>(args)...);
}
