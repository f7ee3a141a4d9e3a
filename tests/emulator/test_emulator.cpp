// The CUDA emulator's own tests: that it runs kernels as CUDA defines them (indices, shuffles,
// reductions, barriers, memory), and that it catches the misuses it claims to catch.
#include <gtest/gtest.h>

#include <cmath>
#include <cub/warp/warp_reduce.cuh>
#include <vector>

#include "cuda_runtime.h"

namespace {

template <class T>
T* device_alloc(size_t count) {
  T* pointer = nullptr;
  EXPECT_EQ(cudaMalloc(&pointer, count * sizeof(T)), cudaSuccess);
  return pointer;
}

template <class T>
std::vector<T> download(const T* device, size_t count) {
  std::vector<T> host(count);
  EXPECT_EQ(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost),
            cudaSuccess);
  return host;
}

template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// ---------------------------------------------------------------- indices
__global__ void write_indices(int* out) {
  const unsigned threads = blockDim.x * blockDim.y;
  const unsigned block = blockIdx.x + gridDim.x * blockIdx.y;
  const unsigned thread = threadIdx.x + blockDim.x * threadIdx.y;
  out[block * threads + thread] = static_cast<int>(block * 1000 + thread);
}

TEST(Emulator, EveryThreadOfTheGridRunsOnceWithItsIndices) {
  const dim3 grid(3, 2), block(8, 4);
  const size_t total = 3 * 2 * 8 * 4;
  int* out = device_alloc<int>(total);
  ASSERT_EQ(launch(write_indices, grid, block, out), cudaSuccess);
  const std::vector<int> got = download(out, total);
  for (size_t i = 0; i < total; ++i)
    EXPECT_EQ(got[i], static_cast<int>((i / 32) * 1000 + i % 32)) << i;
  cudaFree(out);
}

TEST(Emulator, InvalidLaunchConfigurationsAreRefused) {
  int* out = device_alloc<int>(1);
  EXPECT_EQ(launch(write_indices, dim3(1), dim3(2048), out), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read and cleared
  EXPECT_EQ(launch(write_indices, dim3(0), dim3(32), out), cudaErrorInvalidConfiguration);
  cudaGetLastError();
  cudaFree(out);
}

// ---------------------------------------------------------------- dynamic shared memory
// Each block's threads write their index into the block's dynamic shared memory; after the
// barrier each thread reads its neighbour's, and the slot past the written ones (never written).
__global__ void neighbours_in_dynamic_shared(float* out) {
  float* shared = static_cast<float*>(sp_emu::dynamic_shared_memory());
  const unsigned t = threadIdx.x;
  shared[t] = static_cast<float>(blockIdx.x * 100 + t);
  __syncthreads();
  out[(blockIdx.x * blockDim.x + t) * 2] = shared[(t + 1) % blockDim.x];
  out[(blockIdx.x * blockDim.x + t) * 2 + 1] = shared[blockDim.x];
}

TEST(Emulator, DynamicSharedMemoryIsPerBlockSizedByTheLaunchAndNaNUntilWritten) {
  const unsigned blocks = 3, threads = 64;
  float* out = device_alloc<float>(blocks * threads * 2);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(threads);
  config.dynamicSmemBytes = (threads + 1) * sizeof(float);
  ASSERT_EQ(cudaLaunchKernelEx(&config, neighbours_in_dynamic_shared, out), cudaSuccess);
  const std::vector<float> got = download(out, blocks * threads * 2);
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < threads; ++t) {
      EXPECT_EQ(got[(b * threads + t) * 2], static_cast<float>(b * 100 + (t + 1) % threads));
      EXPECT_TRUE(std::isnan(got[(b * threads + t) * 2 + 1]));
    }
  // More than a launch gets without opting in (48 KiB) is refused, as on a device.
  config.dynamicSmemBytes = (size_t{48} << 10) + 4;
  EXPECT_EQ(cudaLaunchKernelEx(&config, neighbours_in_dynamic_shared, out),
            cudaErrorInvalidConfiguration);
  cudaGetLastError();
  cudaFree(out);
}

// ---------------------------------------------------------------- warp collectives
__global__ void shuffles(int* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int base = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x) * 4;
  out[base + 0] = __shfl_sync(0xffffffffu, lane * 10, 3);
  out[base + 1] = __shfl_down_sync(0xffffffffu, lane * 10, 5);
  out[base + 2] = __shfl_xor_sync(0xffffffffu, lane * 10, 1);
  out[base + 3] = __shfl_down_sync(0xffffffffu, lane * 10, 2, 8);  // segments of 8
}

TEST(Emulator, ShufflesFollowCudaSemantics) {
  int* out = device_alloc<int>(2 * 64 * 4);
  ASSERT_EQ(launch(shuffles, dim3(2), dim3(64), out), cudaSuccess);
  const std::vector<int> got = download(out, 2 * 64 * 4);
  for (int t = 0; t < 128; ++t) {
    const int lane = t % 32;
    EXPECT_EQ(got[t * 4 + 0], 30);
    EXPECT_EQ(got[t * 4 + 1], (lane + 5 < 32 ? lane + 5 : lane) * 10) << lane;
    EXPECT_EQ(got[t * 4 + 2], (lane ^ 1) * 10);
    EXPECT_EQ(got[t * 4 + 3], (lane % 8 + 2 < 8 ? lane + 2 : lane) * 10) << lane;
  }
  cudaFree(out);
}

__global__ void warp_reduce(const float* in, float* out) {
  using WarpSum = cub::WarpReduce<float>;
  __shared__ WarpSum::TempStorage temp[2];
  const int warp = static_cast<int>(threadIdx.x / 32);
  const float total = WarpSum(temp[warp]).Sum(in[blockIdx.x * blockDim.x + threadIdx.x]);
  out[blockIdx.x * blockDim.x + threadIdx.x] = total;
}

TEST(Emulator, WarpReduceSumsInCubsTreeOrderAndOnlyLaneZeroGetsTheTotal) {
  std::vector<float> values(64);
  for (int i = 0; i < 64; ++i) values[i] = 1.0f + std::ldexp(1.0f, -(i % 30)) * (i % 3 ? 1 : -1);
  float* in = device_alloc<float>(64);
  float* out = device_alloc<float>(64);
  cudaMemcpy(in, values.data(), sizeof(float) * 64, cudaMemcpyHostToDevice);
  ASSERT_EQ(launch(warp_reduce, dim3(1), dim3(64), in, out), cudaSuccess);
  const std::vector<float> got = download(out, 64);
  for (int warp = 0; warp < 2; ++warp) {
    std::vector<float> tree(values.begin() + warp * 32, values.begin() + warp * 32 + 32);
    for (int offset = 1; offset < 32; offset *= 2)
      for (int lane = 0; lane + offset < 32; lane += 2 * offset) tree[lane] += tree[lane + offset];
    EXPECT_EQ(got[warp * 32], tree[0]);
    for (int lane = 1; lane < 32; ++lane) EXPECT_TRUE(std::isnan(got[warp * 32 + lane])) << lane;
  }
  cudaFree(in);
  cudaFree(out);
}

__global__ void barrier_then_read(int* shared_out) {
  __shared__ int slots[128];
  slots[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
  __syncthreads();
  // Every thread reads a slot another warp wrote: right only if the barrier held them all.
  shared_out[blockIdx.x * blockDim.x + threadIdx.x] = slots[(threadIdx.x + 64) % 128];
}

TEST(Emulator, SyncthreadsHoldsTheWholeBlock) {
  int* out = device_alloc<int>(3 * 128);
  ASSERT_EQ(launch(barrier_then_read, dim3(3), dim3(128), out), cudaSuccess);
  const std::vector<int> got = download(out, 3 * 128);
  for (int i = 0; i < 3 * 128; ++i) EXPECT_EQ(got[i], (i % 128 + 64) % 128 + 1) << i;
  cudaFree(out);
}

// ---------------------------------------------------------------- memory
TEST(Emulator, DeviceMemoryIsBookedAndCopiesStayInsideAllocations) {
  const size_t before = sp_emu::device_memory_in_use();
  float* a = device_alloc<float>(100);
  EXPECT_EQ(sp_emu::device_memory_in_use(), before + 400);
  std::vector<float> host(200, 1.0f);
  EXPECT_EQ(cudaMemcpy(a, host.data(), 400, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(a, host.data(), 800, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), a + 50, 400, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 100, 4, cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);  // a host pointer passed as the device side
  cudaGetLastError();
  size_t free_bytes = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_bytes, &total), cudaSuccess);
  EXPECT_EQ(total - free_bytes, sp_emu::device_memory_in_use());
  EXPECT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_EQ(sp_emu::device_memory_in_use(), before);
  EXPECT_EQ(cudaFree(a), cudaErrorInvalidDevicePointer);
  cudaGetLastError();
}

TEST(Emulator, FreshDeviceMemoryReadsAsNaN) {
  float* a = device_alloc<float>(4);
  for (float v : download(a, 4)) EXPECT_TRUE(std::isnan(v));
  cudaFree(a);
}

TEST(Emulator, AllocationsBeyondTheDeviceMemoryFail) {
  const size_t saved = sp_emu::device_memory();
  sp_emu::set_device_memory(sp_emu::device_memory_in_use() + 1000);
  void* pointer = nullptr;
  EXPECT_EQ(cudaMalloc(&pointer, 2000), cudaErrorMemoryAllocation);
  EXPECT_EQ(pointer, nullptr);
  EXPECT_EQ(cudaMalloc(&pointer, 1000), cudaSuccess);
  cudaFree(pointer);
  cudaGetLastError();
  sp_emu::set_device_memory(saved);
}

// ---------------------------------------------------------------- misuse it must catch
__global__ void divergent_collectives() {
  if (threadIdx.x % 2)
    __syncwarp();
  else
    (void)__shfl_sync(0xffffffffu, 1, 0);
}

__global__ void shuffle_after_a_lane_left() {
  if (threadIdx.x == 7) return;
  (void)__shfl_sync(0xffffffffu, 1, 0);
}

__global__ void lane_leaves_while_warp_waits() {
  if (threadIdx.x != 31) (void)__shfl_sync(0xffffffffu, 1, 0);
}

__global__ void reads_lane_outside_mask() { (void)__shfl_sync(0x0000ffffu, 1, 20); }

using EmulatorDeathTest = ::testing::Test;

TEST(EmulatorDeathTest, MisusedCollectivesAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(launch(divergent_collectives, dim3(1), dim3(32)), "lanes of one warp disagree");
  EXPECT_DEATH(launch(shuffle_after_a_lane_left, dim3(1), dim3(32)), "exited");
  EXPECT_DEATH(launch(lane_leaves_while_warp_waits, dim3(1), dim3(32)), "exited");
  EXPECT_DEATH(launch(reads_lane_outside_mask, dim3(1), dim3(16)), "not in the mask");
}

// ---------------------------------------------------------------- lane order
__global__ void racy_write(int* out) { out[0] = static_cast<int>(threadIdx.x); }

TEST(Emulator, LaneOrderCanBeReversedToExposeRaces) {
  int* out = device_alloc<int>(1);
  sp_emu::set_lane_order(sp_emu::LaneOrder::forward);
  ASSERT_EQ(launch(racy_write, dim3(1), dim3(32), out), cudaSuccess);
  const int forward = download(out, 1)[0];
  sp_emu::set_lane_order(sp_emu::LaneOrder::reverse);
  ASSERT_EQ(launch(racy_write, dim3(1), dim3(32), out), cudaSuccess);
  const int reverse = download(out, 1)[0];
  sp_emu::set_lane_order(sp_emu::LaneOrder::forward);
  EXPECT_EQ(forward, 31);
  EXPECT_EQ(reverse, 0);
  cudaFree(out);
}

}  // namespace
