// emulator.cpp — the CUDA emulator's runtime: fibers for threads, warp collectives, device memory
// and the runtime API of include/cuda_runtime.h (what it checks: include/cuda_emulator.hpp).
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/stack_context.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SP_EMU_ASAN 1
#endif

// Under ThreadSanitizer (the race check: tests/emulator/CMakeLists.txt) every thread of a block is
// a TSan fiber, and a switch between them establishes no order: what orders two threads' memory
// accesses is what orders them on a device — __syncwarp for the lanes it names, __syncthreads for
// the block —, and nothing else: not a shuffle, not cub's reduction (a device gives those no
// memory order either). So a lane's write to shared memory that another lane's read does not
// precede by a __syncwarp is reported as a data race, even though the fibers here take turns.
// The emulator's own bookkeeping is hidden from TSan (it is ordered by the turns, not by the code).
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define SP_EMU_TSAN 1
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

namespace sp_emu {
namespace {

// Where a thread is: its indices and the launch's shape.
struct ThreadPlace {
  uint3 thread_index, block_index;
  dim3 block_dim, grid_dim;
};

namespace ctx = boost::context;

// The race check's annotations (no-ops without ThreadSanitizer).
#if defined(SP_EMU_TSAN)
struct HiddenFromTsan {  // the emulator's own bookkeeping, while it lives
  HiddenFromTsan() { __tsan_ignore_thread_begin(); }
  ~HiddenFromTsan() { __tsan_ignore_thread_end(); }
};
void release(void* sync) { __tsan_release(sync); }
void acquire(void* sync) { __tsan_acquire(sync); }
#else
struct HiddenFromTsan {
  HiddenFromTsan() {}  // user-provided: no unused-variable warning where it is declared
};
void release(void*) {}
void acquire(void*) {}
#endif

// ---------------------------------------------------------------- settings
struct Settings {
  std::mutex mutex;
  LaneOrder order = LaneOrder::forward;
  uint64_t order_seed = 0;
  size_t device_memory = size_t{4} << 30;
  int host_threads = 0;  // 0: all cores
  bool kernel_images = true;
  size_t static_shared_bytes = 0;
  int devices = 1;
  int fault_countdown = -1;  // inject_fault_at_launch
  bool fault_pending = false;
  Settings() {
    if (const char* bytes = std::getenv("SP_EMULATOR_DEVICE_MEMORY"))
      device_memory = std::strtoull(bytes, nullptr, 10);
    if (const char* threads = std::getenv("SP_EMULATOR_THREADS")) host_threads = std::atoi(threads);
    if (const char* count = std::getenv("SP_EMULATOR_DEVICES"))
      devices = std::max(1, std::atoi(count));
  }
};
Settings& settings() {
  static Settings instance;
  return instance;
}

struct LaunchLog {
  std::mutex mutex;
  std::vector<size_t> dynamic_shared_bytes;
  std::vector<int> devices;  // the device each launch ran on
};
LaunchLog& launch_log() {
  static LaunchLog instance;
  return instance;
}

// ---------------------------------------------------------------- fiber stacks
// Stacks are mapped once with a guard page below them (a lane that overflows its stack faults
// instead of corrupting its neighbour) and reused across blocks and launches.
constexpr size_t kStackBytes = size_t{256} << 10;

class StackPool {
 public:
  ctx::stack_context take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        const ctx::stack_context stack = free_.back();
        free_.pop_back();
        return stack;
      }
    }
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* base = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    mprotect(base, page, PROT_NONE);  // the guard page
    ctx::stack_context stack;
    stack.size = kStackBytes;
    stack.sp = static_cast<char*>(base) + page + kStackBytes;  // stacks grow down from sp
    return stack;
  }
  void give_back(const ctx::stack_context& stack) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(stack);
  }

 private:
  std::mutex mutex_;
  std::vector<ctx::stack_context> free_;
};
StackPool& stack_pool() {
  static StackPool* pool = new StackPool;  // never destroyed: fibers may outlive static teardown
  return *pool;
}

// ---------------------------------------------------------------- threads, warps, blocks
struct Lane {
  ctx::fiber fiber;      // this thread's continuation (held by the scheduler)
  ctx::fiber scheduler;  // the scheduler's continuation (held by this thread while it runs)
  ThreadPlace place{};
  int linear = 0;  // threadIdx linearised
  bool exited = false, waiting = false, at_barrier = false;
  uint64_t result = 0;         // what the last collective handed this lane
  void* tsan_fiber = nullptr;  // ThreadSanitizer's fiber for this thread (race check builds)
  bool started = false;
#if defined(SP_EMU_ASAN)
  const void* stack_bottom = nullptr;
  size_t stack_size = 0;
  const void* scheduler_bottom = nullptr;
  size_t scheduler_size = 0;
  void* fake_stack = nullptr;
#endif
};

struct Warp {
  int first_lane = 0, lanes = 0;  // threads [first_lane, first_lane + lanes) of the block
  // The collective in progress: who has arrived, what they contributed and asked for.
  const char* operation = nullptr;
  unsigned mask = 0, arrived = 0;
  uint64_t values[kWarpSize] = {};
  int sources[kWarpSize] = {};
  Combine combine = nullptr;  // a reduction: every lane gets the tree of `combine` over values
  unsigned exited = 0;        // lanes that have left the kernel
  // The race check's sync objects, one per generation of __syncwarp (alternating: a lane cannot
  // reach the generation after next before every lane has left this one), so that the lane that
  // arrives last, and runs on at once, does not hand its later work to the others' acquire.
  unsigned generation = 0;
  char sync_objects[2] = {};
};

struct Block {
  std::vector<Lane> lanes;
  std::vector<Warp> warps;
  int barrier_arrived = 0;
  unsigned barrier_generation = 0;  // as Warp::generation, for __syncthreads
  char barrier_sync_objects[2] = {};
  // The launch's dynamic shared memory, exactly its size (AddressSanitizer sees a read past it),
  // every byte 0xff: a float read before it is written is a NaN.
  std::vector<unsigned char> dynamic_shared;
  void* tsan_scheduler = nullptr;  // ThreadSanitizer's fiber for the scheduler
};

#if defined(SP_EMU_TSAN)
// TSan fibers, reused by this host thread's blocks (creating 128 per block is slow).
thread_local std::vector<void*> tsan_fibers;
#endif

// The stacks this host thread holds during a launch (taken from the pool once, handed back at the
// launch's end: no lock per fiber).
thread_local std::vector<ctx::stack_context> held_stacks;

void return_held_stacks() {
  for (const ctx::stack_context& stack : held_stacks) stack_pool().give_back(stack);
  held_stacks.clear();
}

// The StackAllocator Boost.Context asks for: a handle on this thread's stacks that tells the lane
// (for ASan) where its stack is.
struct PooledStack {
  Lane* lane;
  ctx::stack_context allocate() {
    ctx::stack_context stack;
    if (held_stacks.empty()) {
      stack = stack_pool().take();
    } else {
      stack = held_stacks.back();
      held_stacks.pop_back();
    }
#if defined(SP_EMU_ASAN)
    lane->stack_bottom = static_cast<char*>(stack.sp) - stack.size;
    lane->stack_size = stack.size;
#endif
    return stack;
  }
  void deallocate(ctx::stack_context& stack) noexcept { held_stacks.push_back(stack); }
};

thread_local Block* current_block = nullptr;
thread_local Lane* current_lane = nullptr;

// Makes `lane` the running thread: current_lane and the CUDA index variables.
void become(Lane* lane) {
  current_lane = lane;
  if (!lane) return;
  threadIdx = lane->place.thread_index;
  blockIdx = lane->place.block_index;
  blockDim = lane->place.block_dim;
  gridDim = lane->place.grid_dim;
}

Warp& warp_of(Lane& lane) { return current_block->warps[lane.linear / kWarpSize]; }
int lane_in_warp(const Lane& lane) { return lane.linear % kWarpSize; }

std::string place_text(const ThreadPlace& p) {
  char text[160];
  std::snprintf(text, sizeof text, "block (%u, %u, %u), thread (%u, %u, %u)", p.block_index.x,
                p.block_index.y, p.block_index.z, p.thread_index.x, p.thread_index.y,
                p.thread_index.z);
  return text;
}

// Back to the scheduler; returns when the scheduler resumes this thread.
void yield_to_scheduler() {
  Lane& lane = *current_lane;
#if defined(SP_EMU_TSAN)
  __tsan_switch_to_fiber(current_block->tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(SP_EMU_ASAN)
  __sanitizer_start_switch_fiber(&lane.fake_stack, lane.scheduler_bottom, lane.scheduler_size);
#endif
  lane.scheduler = std::move(lane.scheduler).resume();
#if defined(SP_EMU_ASAN)
  __sanitizer_finish_switch_fiber(lane.fake_stack, &lane.scheduler_bottom, &lane.scheduler_size);
#endif
  become(&lane);
}

unsigned existing_lanes(const Warp& warp) {
  return warp.lanes == kWarpSize ? 0xffffffffu : (1u << warp.lanes) - 1u;
}

// Completes the warp's collective when every lane of the mask has arrived: hands each lane what
// it asked for, releases the waiting lanes.
void complete_if_ready(Warp& warp) {
  if (warp.operation == nullptr || warp.arrived != warp.mask) return;
  uint64_t total = 0;
  if (warp.combine) {  // the pairwise tree: at offsets 1, 2, 4, 8, 16 lane i takes lane i + offset
    for (int offset = 1; offset < kWarpSize; offset *= 2)
      for (int i = 0; i + offset < kWarpSize; i += 2 * offset)
        warp.values[i] = warp.combine(warp.values[i], warp.values[i + offset]);
    total = warp.values[0];
  }
  for (int i = 0; i < kWarpSize; ++i) {
    if (!(warp.mask >> i & 1u)) continue;
    Lane& lane = current_block->lanes[warp.first_lane + i];
    if (warp.combine)
      lane.result = total;
    else
      lane.result = warp.sources[i] >= 0 ? warp.values[warp.sources[i] % kWarpSize] : 0;
    lane.waiting = false;
  }
  warp.combine = nullptr;
  warp.operation = nullptr;
  ++warp.generation;
  warp.mask = warp.arrived = 0;
}

void arrive(const char* operation, unsigned mask, uint64_t value, int source, Combine combine) {
  Lane& lane = *current_lane;
  Warp& warp = warp_of(lane);
  const int me = lane_in_warp(lane);
  if (!(mask >> me & 1u))
    fail(std::string(operation) + ": the calling lane " + std::to_string(me) +
         " is not in its mask " + std::to_string(mask));
  if ((mask & ~existing_lanes(warp)) != 0)
    fail(std::string(operation) + ": the mask names lanes this warp does not have");
  if (warp.operation == nullptr) {
    warp.operation = operation;
    warp.mask = mask;
  } else if ((warp.operation != operation && std::strcmp(warp.operation, operation) != 0) ||
             warp.mask != mask) {
    fail(std::string("lanes of one warp disagree: lane ") + std::to_string(me) + " is at " +
         operation + "(mask " + std::to_string(mask) + ") while others wait at " + warp.operation +
         "(mask " + std::to_string(warp.mask) + ")");
  }
  if (const unsigned gone = warp.exited & mask)
    fail(std::string(operation) + " waits for lanes that have exited (mask of exited lanes " +
         std::to_string(gone) + ")");
  if (source >= 0 && !(mask >> (source % kWarpSize) & 1u))
    fail(std::string(operation) + ": lane " + std::to_string(me) + " reads lane " +
         std::to_string(source % kWarpSize) + ", which is not in the mask");
  warp.arrived |= 1u << me;
  warp.values[me] = value;
  warp.sources[me] = source;
  warp.combine = combine;
  lane.waiting = true;
  complete_if_ready(warp);
  if (lane.waiting) yield_to_scheduler();
}

// A lane that leaves the kernel: its warp must not be waiting for it, and a __syncthreads the
// others wait at may now be complete.
void release_barrier_if_complete(Block& block) {
  int live = 0;
  for (const Lane& lane : block.lanes) live += lane.exited ? 0 : 1;
  if (block.barrier_arrived == 0 || block.barrier_arrived < live) return;
  for (Lane& lane : block.lanes)
    if (lane.at_barrier) lane.at_barrier = lane.waiting = false;
  block.barrier_arrived = 0;
  ++block.barrier_generation;
}

void lane_exits(Lane& lane) {
  lane.exited = true;
  Warp& warp = warp_of(lane);
  const int me = lane_in_warp(lane);
  warp.exited |= 1u << me;
  if (warp.operation && (warp.mask >> me & 1u) && !(warp.arrived >> me & 1u))
    fail(std::string("lane ") + std::to_string(me) + " exited while its warp waits for it at " +
         warp.operation + " (mask " + std::to_string(warp.mask) + ")");
  release_barrier_if_complete(*current_block);
}

// The order lanes take turns in, for this block.
std::vector<int> turn_order(int threads, uint64_t block_linear) {
  std::vector<int> order(threads);
  for (int i = 0; i < threads; ++i) order[i] = i;
  LaneOrder mode;
  uint64_t seed;
  {
    std::lock_guard<std::mutex> lock(settings().mutex);
    mode = settings().order;
    seed = settings().order_seed;
  }
  if (mode == LaneOrder::reverse) std::reverse(order.begin(), order.end());
  if (mode == LaneOrder::shuffled) {
    std::mt19937_64 random(seed * 0x9E3779B97F4A7C15ull + block_linear);
    std::shuffle(order.begin(), order.end(), random);
  }
  return order;
}

void run_block(const std::function<void()>& body, dim3 grid, dim3 block_dim, uint3 block_index,
               size_t dynamic_shared_bytes) {
  const int threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  HiddenFromTsan scheduling;  // the scheduler's own accesses (the lanes' fibers are not hidden)
  Block block;
#if defined(SP_EMU_TSAN)
  block.tsan_scheduler = __tsan_get_current_fiber();
#endif
  block.dynamic_shared.assign(dynamic_shared_bytes, 0xff);
  block.lanes.resize(threads);
  block.warps.resize((threads + kWarpSize - 1) / kWarpSize);
  for (size_t w = 0; w < block.warps.size(); ++w) {
    block.warps[w].first_lane = static_cast<int>(w) * kWarpSize;
    block.warps[w].lanes = std::min(kWarpSize, threads - static_cast<int>(w) * kWarpSize);
  }
  current_block = &block;
  for (int t = 0; t < threads; ++t) {
    Lane& lane = block.lanes[t];
    lane.linear = t;
    lane.place.thread_index =
        uint3{t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y)};
    lane.place.block_index = block_index;
    lane.place.block_dim = block_dim;
    lane.place.grid_dim = grid;
#if defined(SP_EMU_TSAN)
    if (tsan_fibers.empty()) tsan_fibers.push_back(__tsan_create_fiber(0));
    lane.tsan_fiber = tsan_fibers.back();
    tsan_fibers.pop_back();
#endif
    PooledStack allocator{&lane};
    lane.fiber = ctx::fiber(std::allocator_arg, allocator, [&lane, &body](ctx::fiber&& scheduler) {
#if defined(SP_EMU_ASAN)
      __sanitizer_finish_switch_fiber(nullptr, &lane.scheduler_bottom, &lane.scheduler_size);
#endif
      {
        HiddenFromTsan entering;
        lane.scheduler = std::move(scheduler);
        become(&lane);
      }
      body();
      {
        HiddenFromTsan leaving;
        lane_exits(lane);
      }
#if defined(SP_EMU_ASAN)
      __sanitizer_start_switch_fiber(nullptr, lane.scheduler_bottom, lane.scheduler_size);
#endif
#if defined(SP_EMU_TSAN)
      // With order: the block's results precede whatever the host does after the launch.
      __tsan_switch_to_fiber(current_block->tsan_scheduler, 0);
#endif
      return std::move(lane.scheduler);
    });
  }
  const std::vector<int> order =
      turn_order(threads, block_index.x + uint64_t{grid.x} *
                                              (block_index.y + uint64_t{grid.y} * block_index.z));
  for (;;) {
    bool ran = false, all_exited = true;
    for (int t : order) {
      Lane& lane = block.lanes[t];
      if (lane.exited) continue;
      all_exited = false;
      if (lane.waiting) continue;
      ran = true;
      become(&lane);
#if defined(SP_EMU_ASAN)
      void* fake_stack = nullptr;
      __sanitizer_start_switch_fiber(&fake_stack, lane.stack_bottom, lane.stack_size);
#endif
#if defined(SP_EMU_TSAN)
      // The first switch to a thread orders it after the launch's setup; later ones order nothing.
      __tsan_switch_to_fiber(lane.tsan_fiber, lane.started ? __tsan_switch_to_fiber_no_sync : 0);
#endif
      lane.started = true;
      lane.fiber = std::move(lane.fiber).resume();
#if defined(SP_EMU_ASAN)
      __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
      current_lane = nullptr;
    }
    if (all_exited) break;
    if (!ran) {
      std::string waiting;
      for (const Warp& warp : block.warps)
        if (warp.operation)
          waiting += std::string(" warp ") + std::to_string(warp.first_lane / kWarpSize) + " at " +
                     warp.operation + " (arrived " + std::to_string(warp.arrived) + " of mask " +
                     std::to_string(warp.mask) + ", exited " + std::to_string(warp.exited) + ");";
      if (block.barrier_arrived) waiting += " threads at __syncthreads;";
      become(&block.lanes[0]);
      fail("deadlock: every live thread waits:" + waiting);
    }
  }
#if defined(SP_EMU_TSAN)
  for (Lane& lane : block.lanes) tsan_fibers.push_back(lane.tsan_fiber);
#endif
  current_block = nullptr;
}

// ---------------------------------------------------------------- device memory
struct Memory {
  std::mutex mutex;
  std::map<uintptr_t, size_t> allocations;  // start -> bytes
  size_t in_use = 0, peak = 0;
};
Memory& memory() {
  static Memory* instance = new Memory;
  return *instance;
}

// True when [pointer, pointer + bytes) lies inside one device allocation.
bool is_device_range(const void* pointer, size_t bytes) {
  std::lock_guard<std::mutex> lock(memory().mutex);
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  auto it = memory().allocations.upper_bound(address);
  if (it == memory().allocations.begin()) return false;
  --it;
  return address >= it->first && address + bytes <= it->first + it->second;
}

thread_local cudaError_t last_error = cudaSuccess;
thread_local int current_device = 0;  // cudaSetDevice's, per host thread

size_t static_shared_bytes() {
  std::lock_guard<std::mutex> lock(settings().mutex);
  return settings().static_shared_bytes;
}

// Whether this launch is the one inject_fault_at_launch named (then the fault is pending).
bool fault_this_launch() {
  std::lock_guard<std::mutex> lock(settings().mutex);
  Settings& s = settings();
  if (s.fault_countdown < 0) return false;
  if (s.fault_countdown-- > 0) return false;
  s.fault_pending = true;
  return true;
}

// What a synchronize returns: a pending fault (from then on the last error), or the last error.
cudaError_t synchronize() {
  {
    std::lock_guard<std::mutex> lock(settings().mutex);
    if (settings().fault_pending) {
      settings().fault_pending = false;
      last_error = cudaErrorIllegalAddress;
    }
  }
  return last_error;
}

cudaError_t record(cudaError_t error) {
  if (error != cudaSuccess) last_error = error;
  return error;
}

}  // namespace

// ---------------------------------------------------------------- the emulator's interface
void fail(const std::string& message) {
  std::string where;
  if (current_lane) where = " [" + place_text(current_lane->place) + "]";
  std::fprintf(stderr, "CUDA emulator: %s%s\n", message.c_str(), where.c_str());
  std::fflush(stderr);
  std::abort();
}

uint64_t warp_collective(const char* operation, unsigned mask, uint64_t value, int source) {
  if (!current_lane) fail(std::string(operation) + " called outside a kernel");
  // __syncwarp orders the memory accesses of the lanes it names; shuffles order none.
  const bool orders_memory = std::strcmp(operation, "__syncwarp") == 0;
  void* sync;
  {
    HiddenFromTsan hidden;
    Warp& warp = warp_of(*current_lane);
    sync = &warp.sync_objects[warp.generation % 2];
  }
  if (orders_memory) release(sync);
  uint64_t result;
  {
    HiddenFromTsan hidden;
    arrive(operation, mask, value, source, nullptr);
    result = current_lane->result;
  }
  if (orders_memory) acquire(sync);
  return result;
}

uint64_t warp_reduce(const char* operation, uint64_t value, Combine combine) {
  if (!current_lane) fail(std::string(operation) + " called outside a kernel");
  HiddenFromTsan hidden;
  arrive(operation, 0xffffffffu, value, -1, combine);
  return current_lane->result;
}

void* dynamic_shared_memory() {
  HiddenFromTsan hidden;
  if (!current_lane) fail("dynamic shared memory used outside a kernel");
  return current_block->dynamic_shared.data();
}

void block_barrier() {
  void* sync;
  {
    HiddenFromTsan hidden;
    if (!current_lane) fail("__syncthreads called outside a kernel");
    sync = &current_block->barrier_sync_objects[current_block->barrier_generation % 2];
  }
  release(sync);
  {
    HiddenFromTsan hidden;
    Lane& lane = *current_lane;
    ++current_block->barrier_arrived;
    lane.at_barrier = lane.waiting = true;
    release_barrier_if_complete(*current_block);
    if (lane.waiting) yield_to_scheduler();
  }
  acquire(sync);
}

LaunchStatus launch(dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                    const std::function<void()>& body) {
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 ||
      dynamic_shared_bytes + static_shared_bytes() > kDynamicSharedLimit)
    return LaunchStatus::invalid_configuration;
  if (fault_this_launch()) return LaunchStatus::ok;  // an asynchronous fault: nothing runs
  {
    std::lock_guard<std::mutex> lock(launch_log().mutex);
    launch_log().dynamic_shared_bytes.push_back(dynamic_shared_bytes);
    launch_log().devices.push_back(current_device);
  }
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  int workers;
  {
    std::lock_guard<std::mutex> lock(settings().mutex);
    workers = settings().host_threads;
  }
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(workers), blocks));
  std::atomic<uint64_t> next{0};
  auto work = [&] {
    for (uint64_t b = next++; b < blocks; b = next++) {
      const uint3 index{static_cast<unsigned>(b % grid.x),
                        static_cast<unsigned>(b / grid.x % grid.y),
                        static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
      run_block(body, grid, block, index, dynamic_shared_bytes);
    }
    return_held_stacks();
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
  return LaunchStatus::ok;
}

cudaError_t record_launch(LaunchStatus status) {
  return record(status == LaunchStatus::ok ? cudaSuccess : cudaErrorInvalidConfiguration);
}

void set_lane_order(LaneOrder order, uint64_t seed) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().order = order;
  settings().order_seed = seed;
}

void set_device_memory(size_t bytes) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().device_memory = bytes;
}

size_t device_memory() {
  std::lock_guard<std::mutex> lock(settings().mutex);
  return settings().device_memory;
}

size_t device_memory_in_use() {
  std::lock_guard<std::mutex> lock(memory().mutex);
  return memory().in_use;
}

size_t device_memory_peak() {
  std::lock_guard<std::mutex> lock(memory().mutex);
  return memory().peak;
}

void reset_device_memory_peak() {
  std::lock_guard<std::mutex> lock(memory().mutex);
  memory().peak = memory().in_use;
}

std::vector<size_t> launched_dynamic_shared_bytes() {
  std::lock_guard<std::mutex> lock(launch_log().mutex);
  return launch_log().dynamic_shared_bytes;
}

void clear_launch_log() {
  std::lock_guard<std::mutex> lock(launch_log().mutex);
  launch_log().dynamic_shared_bytes.clear();
  launch_log().devices.clear();
}

void set_kernel_images_present(bool present) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().kernel_images = present;
}

cudaError_t kernel_attributes(cudaFuncAttributes* attributes) {
  {
    std::lock_guard<std::mutex> lock(settings().mutex);
    if (!settings().kernel_images) return record(cudaErrorNoKernelImageForDevice);
  }
  // The emulator has no registers to count, and no static shared memory to measure.
  *attributes = cudaFuncAttributes{static_shared_bytes(), 1024, 0};
  return cudaSuccess;
}

cudaError_t not_supported() { return record(cudaErrorNotSupported); }

int device_count() {
  std::lock_guard<std::mutex> lock(settings().mutex);
  return settings().devices;
}

void set_device_count(int count) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().devices = std::max(1, count);
}

std::vector<int> launched_devices() {
  std::lock_guard<std::mutex> lock(launch_log().mutex);
  return launch_log().devices;
}

void set_static_shared_bytes(size_t bytes) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().static_shared_bytes = bytes;
}

void inject_fault_at_launch(int launches_from_now) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().fault_countdown = launches_from_now;
  settings().fault_pending = false;
}

void set_host_threads(int threads) {
  std::lock_guard<std::mutex> lock(settings().mutex);
  settings().host_threads = threads;
}

}  // namespace sp_emu

// ---------------------------------------------------------------- the runtime API
using sp_emu::record;

namespace {
// Each error's name and the runtime's text for it (one switch: -Wswitch names a missing one).
struct ErrorText {
  const char* name;
  const char* text;
};
ErrorText error_text(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return {"cudaSuccess", "no error"};
    case cudaErrorInvalidValue:
      return {"cudaErrorInvalidValue", "invalid argument"};
    case cudaErrorMemoryAllocation:
      return {"cudaErrorMemoryAllocation", "out of memory"};
    case cudaErrorInvalidConfiguration:
      return {"cudaErrorInvalidConfiguration", "invalid configuration argument"};
    case cudaErrorInvalidDevicePointer:
      return {"cudaErrorInvalidDevicePointer", "invalid device pointer"};
    case cudaErrorNoDevice:
      return {"cudaErrorNoDevice", "no CUDA-capable device is detected"};
    case cudaErrorNoKernelImageForDevice:
      return {"cudaErrorNoKernelImageForDevice",
              "no kernel image is available for execution on the device"};
    case cudaErrorNotSupported:
      return {"cudaErrorNotSupported", "operation not supported"};
    case cudaErrorIllegalAddress:
      return {"cudaErrorIllegalAddress", "an illegal memory access was encountered"};
  }
  return {"unknown error", "unknown error"};
}
}  // namespace

const char* cudaGetErrorName(cudaError_t error) { return error_text(error).name; }

const char* cudaGetErrorString(cudaError_t error) { return error_text(error).text; }

cudaError_t cudaGetLastError() {
  const cudaError_t error = sp_emu::last_error;
  sp_emu::last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() { return sp_emu::last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = sp_emu::device_count();
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
  if (device < 0 || device >= sp_emu::device_count()) return record(cudaErrorInvalidValue);
  *properties = cudaDeviceProp{};
  std::snprintf(properties->name, sizeof properties->name, "CUDA emulator on the CPU");
  properties->totalGlobalMem = sp_emu::device_memory();
  properties->major = 9;
  properties->minor = 0;
  properties->multiProcessorCount = 1;
  properties->warpSize = sp_emu::kWarpSize;
  properties->maxThreadsPerBlock = 1024;
  properties->clockRate = 1000000;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  cudaDeviceProp properties;
  if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) return cudaErrorInvalidValue;
  switch (attribute) {
    case cudaDevAttrClockRate:
      *value = properties.clockRate;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = properties.multiProcessorCount;
      return cudaSuccess;
  }
  return record(cudaErrorInvalidValue);
}

cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= sp_emu::device_count()) return record(cudaErrorInvalidValue);
  sp_emu::current_device = device;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  *pointer = nullptr;
  if (bytes == 0) return cudaSuccess;
  auto& memory = sp_emu::memory();
  {
    std::lock_guard<std::mutex> lock(memory.mutex);
    if (memory.in_use + bytes > sp_emu::device_memory()) return record(cudaErrorMemoryAllocation);
    memory.in_use += bytes;
    memory.peak = std::max(memory.peak, memory.in_use);
  }
  // Its own heap block of exactly `bytes` (AddressSanitizer sees any access past it), filled with
  // NaN bytes, so that a read before any write shows up.
  void* block = std::malloc(bytes);
  if (!block) {
    std::lock_guard<std::mutex> lock(memory.mutex);
    memory.in_use -= bytes;
    return record(cudaErrorMemoryAllocation);
  }
  std::memset(block, 0xff, bytes);
  std::lock_guard<std::mutex> lock(memory.mutex);
  memory.allocations[reinterpret_cast<uintptr_t>(block)] = bytes;
  *pointer = block;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (!pointer) return cudaSuccess;
  auto& memory = sp_emu::memory();
  {
    std::lock_guard<std::mutex> lock(memory.mutex);
    const auto it = memory.allocations.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == memory.allocations.end()) return record(cudaErrorInvalidDevicePointer);
    memory.in_use -= it->second;
    memory.allocations.erase(it);
  }
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* destination, const void* source, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool device_source = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const bool device_destination =
      kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost)
    return record(cudaErrorInvalidValue);  // not used by the project: refuse rather than guess
  if ((device_source && !sp_emu::is_device_range(source, bytes)) ||
      (device_destination && !sp_emu::is_device_range(destination, bytes)))
    return record(cudaErrorInvalidValue);
  std::memmove(destination, source, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, size_t bytes,
                            cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(destination, source, bytes, kind);
}

cudaError_t cudaMemset(void* pointer, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!sp_emu::is_device_range(pointer, bytes)) return record(cudaErrorInvalidValue);
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(pointer, value, bytes);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  *total_bytes = sp_emu::device_memory();
  const size_t used = sp_emu::device_memory_in_use();
  *free_bytes = *total_bytes > used ? *total_bytes - used : 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return sp_emu::synchronize(); }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return sp_emu::synchronize(); }

// Events: host clock readings (every call completes before it returns).
struct CUevent_st {
  double milliseconds = 0;
};

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t end) {
  *milliseconds = static_cast<float>(end->milliseconds - start->milliseconds);
  return cudaSuccess;
}
