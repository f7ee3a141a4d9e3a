// cub/warp/warp_reduce.cuh — the CUDA emulator's stand-in for cub::WarpReduce (full warps of 32):
// the lanes' values combined in the order of CUB's shuffle reduction — at offsets 1, 2, 4, 8, 16
// lane i combines its value with lane i + offset's — which leaves the total in lane 0. As in CUB,
// only lane 0's result is defined; the emulator returns NaN in the other lanes so that a kernel
// that uses them gets a visibly wrong answer. That this is CUB's order is checked where it matters,
// on a GPU: tests/test_cuda.cpp compares the kernels bit for bit with the cpu backend's
// lane_tree_sum.
#pragma once

#include <limits>
#include <type_traits>

#include "cuda_emulator.hpp"

namespace cub {

template <class T, int LogicalWarpThreads = 32>
class WarpReduce {
  static_assert(LogicalWarpThreads == 32, "the emulator's WarpReduce covers full warps");
  static_assert(std::is_floating_point<T>::value, "the emulator's WarpReduce covers float types");

 public:
  struct TempStorage {};
  explicit WarpReduce(TempStorage&) {}

  T Sum(T input) {
    const T total = ::sp_emu::from_bits<T>(
        ::sp_emu::warp_reduce("cub::WarpReduce::Sum", ::sp_emu::to_bits(input), &add));
    return ::sp_emu::lane_id() == 0 ? total : std::numeric_limits<T>::quiet_NaN();
  }

 private:
  static uint64_t add(uint64_t a, uint64_t b) {
    return ::sp_emu::to_bits(::sp_emu::from_bits<T>(a) + ::sp_emu::from_bits<T>(b));
  }
};

}  // namespace cub
