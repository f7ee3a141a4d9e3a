// cuda_emulator.hpp — the CUDA emulator's core: runs the project's own kernels on the CPU so that
// CI, which has no GPU, executes the fused step's kernels (kernels/*.cu) and host/backends/cuda_backend.cu
// as written.
//
// What it is: every thread of a block is a fiber (Boost.Context); a block's fibers run one at a
// time on one host thread, each until it reaches a warp collective (__shfl_*_sync, __syncwarp,
// cub::WarpReduce) or __syncthreads, where it waits for the other lanes. Blocks run in parallel on
// the host's cores. Device memory is host memory, tracked allocation by allocation.
//
// What it checks, beyond running the code: a collective whose lanes disagree (different operation
// or mask), a collective that waits for a lane that has exited, a shuffle from a lane outside the
// mask, a deadlock; cub::WarpReduce's result used outside lane 0 (the other lanes get NaN, so such
// a use shows up as a wrong number); device memory read before it is written (cudaMalloc fills
// it with NaN bytes), and dynamic shared memory too (each block's is NaN-filled); copies outside
// an allocation; launches with an invalid configuration, or with more dynamic shared memory than a
// launch gets without opting in (48 KiB). Under AddressSanitizer every device buffer, and every
// block's dynamic shared memory, is its own heap block, so a kernel's out-of-bounds access is
// reported with its stack (the fiber switches are annotated for ASan). The order in which lanes
// run between collectives can be reversed or shuffled (set_lane_order), so a result that depends on
// it — a race between lanes — shows up as a difference. Built with ThreadSanitizer (the race
// check, SUPERPOSE_RACECHECK), every thread is a TSan fiber and only __syncwarp and __syncthreads
// order threads' memory accesses, as on a device: a shared-memory write that another thread's read
// is ordered against only by a shuffle or cub's reduction is reported as a data race, although
// the fibers take turns here (emulator.cpp; tests/emulator/race_demo.cpp). Blocks that run one
// after another on the same host thread are ordered by the turns (a race between such blocks
// shows only when they land on different host threads).
//
// What it does not check: anything nvcc decides (code generation, -fmad, registers), the device's
// caches and the ordering of global memory between blocks beyond what the host threads running
// them give, cuRAND's and CUB's own device code (both are checked elsewhere: cuRAND
// compiled for the host in tests/test_curand_host.cu, CUB's lane order on a real GPU), streams run
// asynchronously (here every call completes before it returns), and speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct uint2 {
  unsigned x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return uint4{x, y, z, w};
}

// The running thread's indices: the emulator sets them each time it switches to a thread. Inline
// definitions with constant initialisers, so that every use is a plain thread-local access (an
// `extern thread_local` goes through GCC's TLS wrapper, and GCC 12 under -fsanitize=null then
// tests the flags of the wrong instruction and reports a null pointer that is not there).
inline thread_local uint3 threadIdx{};
inline thread_local uint3 blockIdx{};
inline thread_local dim3 blockDim{};
inline thread_local dim3 gridDim{};

namespace sp_emu {

constexpr int kWarpSize = 32;

// Reports a misuse the emulator detected, with the kernel, block and thread, and aborts.
[[noreturn]] void fail(const std::string& message);

// One warp collective: every lane of `mask` must arrive with the same operation and mask. Lane
// l contributes `value` (up to 8 bytes) and asks for lane source(l)'s value (source < 0: none);
// returns what it asked for. Blocks the calling fiber until all lanes of the mask have arrived.
uint64_t warp_collective(const char* operation, unsigned mask, uint64_t value, int source);
// A full-warp reduction: the lanes' values combined as a pairwise tree (at offsets 1, 2, 4, 8, 16
// lane i takes in lane i + offset's value — the order of CUB's shuffle reduction), computed once
// when the last lane arrives; every lane gets the total (callers decide who may use it).
using Combine = uint64_t (*)(uint64_t, uint64_t);
uint64_t warp_reduce(const char* operation, uint64_t value, Combine combine);
void block_barrier();
// The running block's dynamic shared memory: the launch's dynamicSmemBytes (kernels declare it
// `extern __shared__`, which has no C++ spelling; kernels/step_common.cuh calls this instead).
void* dynamic_shared_memory();
// The dynamic shared memory a launch may ask for: 48 KiB, as on a device whose kernel has not
// opted in to more (cudaFuncSetAttribute, which the emulator does not have).
constexpr size_t kDynamicSharedLimit = size_t{48} << 10;
// The calling thread's lane in its warp (threads are numbered x first, as CUDA does).
inline int lane_id() {
  return static_cast<int>((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) %
                          kWarpSize);
}

// Launches body() once per thread of the grid; returns an error for an invalid configuration.
enum class LaunchStatus { ok, invalid_configuration };
LaunchStatus launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                    const std::function<void()>& body);

// How lanes take turns between collectives (all give the same results for race-free code).
enum class LaneOrder { forward, reverse, shuffled };
void set_lane_order(LaneOrder order, uint64_t seed = 0);
// The device memory cudaMemGetInfo reports and cudaMalloc may use (default 4 GiB, or the
// SP_EMULATOR_DEVICE_MEMORY environment variable, in bytes).
void set_device_memory(size_t bytes);
size_t device_memory();
size_t device_memory_in_use();
// The most device memory in use at once since the last reset.
size_t device_memory_peak();
void reset_device_memory_peak();
// The dynamic shared memory each launch asked for, in launch order, since the last
// clear_launch_log (so that a test can tell which kernels a run launched).
std::vector<size_t> launched_dynamic_shared_bytes();
void clear_launch_log();
// Whether the kernels have an image for the emulated device (default true; false stands for a
// build for another architecture: cudaFuncGetAttributes says cudaErrorNoKernelImageForDevice).
void set_kernel_images_present(bool present);
// The static shared memory cudaFuncGetAttributes reports for every kernel (default 0: the
// emulator cannot tell, as `__shared__` is host memory here); a launch whose dynamic shared memory
// plus this exceeds 48 KiB fails as on a device. For tests of the host's shared-memory planning.
void set_static_shared_bytes(size_t bytes);
// An asynchronous fault, as a kernel that reads outside its memory causes on a device: the launch
// `launches_from_now` launches ahead (0: the next) runs nothing and returns success, and the next
// cudaDeviceSynchronize or cudaStreamSynchronize returns cudaErrorIllegalAddress (and it stays the
// last error, as on a device). -1 cancels. For tests of how such a fault is reported.
void inject_fault_at_launch(int launches_from_now);
// Devices the emulator presents (default 1, or SP_EMULATOR_DEVICES): cudaSetDevice picks one per
// host thread, as the runtime does; they share the memory and the cores. launched_devices lists
// the device each launch since clear_launch_log ran on.
int device_count();
void set_device_count(int count);
std::vector<int> launched_devices();
// Host threads running blocks (default: all cores, or SP_EMULATOR_THREADS).
void set_host_threads(int threads);

template <class T>
uint64_t to_bits(T value) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable<T>::value,
                "the emulator's shuffles carry up to 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <class T>
T from_bits(uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}

}  // namespace sp_emu
