// The cuda backend on the CUDA emulator, where the emulator can show what a GPU cannot: that no
// result depends on the order lanes run between collectives (no race between lanes), that a sweep
// split into chunks by a small device equals one launch, that device memory is given back, and
// that the command line over the emulated device writes the cpu backend's results to the bit.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>

#include "cuda_emulator.hpp"
#include "cuda_runtime.h"
#include "host/backends/backend.hpp"
#include "host/sweep/sweep.hpp"
#include "tests/cuda_sweeps.hpp"
#include "tests/shell.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

// Puts the lane order, the device's memory and its kernel images back as they were (tests change
// them).
struct RestoreEmulator {
  size_t device_memory = sp_emu::device_memory();
  ~RestoreEmulator() {
    sp_emu::set_lane_order(sp_emu::LaneOrder::forward);
    sp_emu::set_device_memory(device_memory);
    sp_emu::set_kernel_images_present(true);
    sp_emu::set_device_count(1);
    sp_emu::set_static_shared_bytes(0);
    sp_emu::inject_fault_at_launch(-1);
    unsetenv("SUPERPOSE_CHECK_LAUNCHES");
  }
};

TEST(EmulatedCuda, ResultsDoNotDependOnTheOrderLanesRunIn) {
  RestoreEmulator restore;
  for (Shape shape : {Shape{2, 1}, Shape{5, 2}, Shape{20, 5}, Shape{7, 3}, Shape{37, 7}})
    for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
      GroupSpec g = sweep(shape.n, shape.m, mode, 6, 25);
      g.record_trajectories = true;
      g.snapshot_every = 5;
      sp_emu::set_lane_order(sp_emu::LaneOrder::forward);
      const auto forward = make_cuda_backend()->train(g);
      sp_emu::set_lane_order(sp_emu::LaneOrder::reverse);
      const auto reverse = make_cuda_backend()->train(g);
      sp_emu::set_lane_order(sp_emu::LaneOrder::shuffled, 12345);
      const auto shuffled = make_cuda_backend()->train(g);
      const std::string what =
          "n " + std::to_string(shape.n) + " m " + std::to_string(shape.m) + " " + to_string(mode);
      expect_identical_results(forward, reverse, what + ", reversed lanes");
      expect_identical_results(forward, shuffled, what + ", shuffled lanes");
    }
}

TEST(EmulatedCuda, ASweepSplitIntoChunksByASmallDeviceEqualsOneChunk) {
  RestoreEmulator restore;
  for (DataMode mode : {DataMode::fixed, DataMode::fresh}) {
    GroupSpec g = sweep(5, 2, mode, 40, 30);
    g.record_trajectories = true;
    sp_emu::reset_device_memory_peak();
    const size_t before = sp_emu::device_memory_in_use();
    const auto whole = make_cuda_backend()->train(g);
    const size_t one_launch = sp_emu::device_memory_peak() - before;
    // A device with a quarter of that free: the backend's budget (70 % of the free memory) holds
    // about 7 of the 40 models, so it must split the sweep, and every chunk must fit.
    sp_emu::set_device_memory(before + one_launch / 4);
    ::testing::internal::CaptureStderr();
    const auto chunked = make_cuda_backend()->train(g);
    const std::string said = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(said.find("40 models need"), std::string::npos) << said;
    EXPECT_NE(said.find(" chunks of up to "), std::string::npos) << said;
    expect_identical_results(whole, chunked, std::string("chunked, ") + to_string(mode));
    sp_emu::set_device_memory(restore.device_memory);
  }
}

// The tiled mapping's scratch grows with the rows a step: where it does not fit the device and the
// global mapping's does, the run trains on the global mapping, says so, and gets the same bits.
TEST(EmulatedCuda, ATiledRunTooBigForTheDeviceFallsBackToTheGlobalMapping) {
  RestoreEmulator restore;
  GroupSpec g = sweep(64, 4, DataMode::fresh, 1, 2);  // m n = 256: the tiled mapping's own
  g.batch = 20000;  // 20,000 × (2 · 64 + 2 · 4 + 1) floats: 11 MB of scratch; global: 58 KB
  g.eval_points = 100;
  sp_emu::set_device_memory(sp_emu::device_memory_in_use() + (size_t{8} << 20));
  ::testing::internal::CaptureStderr();
  const auto fell_back = make_cuda_backend()->train(g);
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("training on the global mapping"), std::string::npos) << said;
  sp_emu::set_device_memory(restore.device_memory);
  expect_identical_results(fell_back, make_cpu_backend(0)->train(g), "64x4, 20,000 rows");
  CudaOptions tiled;  // forced: no fallback, a one-line error naming the batch
  tiled.mapping = "tiled";
  sp_emu::set_device_memory(sp_emu::device_memory_in_use() + (size_t{8} << 20));
  try {
    make_cuda_backend(tiled)->train(g);
    ADD_FAILURE() << "a forced tiled mapping that does not fit trained";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("--batch"), std::string::npos) << error.what();
  }
}

// The launches of a run that asked for dynamic shared memory: rows on chip (kernels/mapping_registers.cu).
std::vector<size_t> on_chip_launches(const GroupSpec& g, const CudaOptions& options,
                                     std::vector<ModelResult>* results = nullptr) {
  sp_emu::clear_launch_log();
  auto got = make_cuda_backend(options)->train(g);
  if (results) *results = std::move(got);
  std::vector<size_t> on_chip;
  for (size_t bytes : sp_emu::launched_dynamic_shared_bytes())
    if (bytes) on_chip.push_back(bytes);
  return on_chip;
}

// Fixed data whose four models' training rows fit in 48 KiB is read from shared memory by every
// launch of more than one step, with the cpu backend's bits in any lane order; otherwise (rows
// too many, one step per launch, "memory", fresh data, another mapping) from device memory.
TEST(EmulatedCuda, FixedRowsGoOnChipWhereTheyFitWithTheCpuBackendsBits) {
  RestoreEmulator restore;
  for (Shape shape : {Shape{2, 1}, Shape{5, 2}}) {
    GroupSpec g = sweep(shape.n, shape.m, DataMode::fixed, 7, 40);
    g.points = 600;  // 480 training rows: 4 · 480 · n floats, 15 KiB at n = 2, 38 KiB at n = 5
    ASSERT_EQ(g.train_rows(), 480);
    const std::string what = std::to_string(shape.n) + "x" + std::to_string(shape.m);
    std::vector<ModelResult> on_chip;
    EXPECT_EQ(on_chip_launches(g, CudaOptions{}, &on_chip),
              std::vector<size_t>{4 * 480 * static_cast<size_t>(shape.n) * sizeof(float)})
        << what << ": one launch of 40 steps";
    expect_identical_results(on_chip, make_cpu_backend(0)->train(g), what + " on chip vs cpu");
    sp_emu::set_lane_order(sp_emu::LaneOrder::reverse);
    std::vector<ModelResult> reversed;
    on_chip_launches(g, CudaOptions{}, &reversed);
    sp_emu::set_lane_order(sp_emu::LaneOrder::forward);
    expect_identical_results(on_chip, reversed, what + " on chip, lanes reversed");

    CudaOptions one_step, memory, shared;
    one_step.steps_per_launch = 1;
    memory.fixed_rows = "memory";
    shared.mapping = "shared";
    EXPECT_TRUE(on_chip_launches(g, one_step).empty()) << what << ", K = 1";
    EXPECT_TRUE(on_chip_launches(g, memory).empty()) << what << ", fixed rows 'memory'";
    if (shape.n == 5) {
      EXPECT_TRUE(on_chip_launches(g, shared).empty()) << what << ", shared";
    }
    GroupSpec fresh = g;
    fresh.mode = DataMode::fresh;
    EXPECT_TRUE(on_chip_launches(fresh, CudaOptions{}).empty()) << what << ", fresh";
    GroupSpec many_rows = g;
    many_rows.points = shape.n == 2 ? 2000 : 800;  // 1600 and 640 rows: 50 KiB each
    EXPECT_TRUE(on_chip_launches(many_rows, CudaOptions{}).empty()) << what << ", too many rows";
  }
}

// The block's shared memory is the kernel's static part plus the rows: where the kernel already
// takes some (cub's temp storage may, with another nvcc), fewer rows fit. (2,1) with 1536 rows is
// exactly 48 KiB of rows: on chip with no static shared memory, in device memory with 1 KiB.
TEST(EmulatedCuda, RowsOnChipLeaveRoomForTheKernelsStaticSharedMemory) {
  RestoreEmulator restore;
  GroupSpec g = sweep(2, 1, DataMode::fixed, 5, 12);
  g.points = 1920;  // 1536 training rows: 4 · 1536 · 2 floats = 48 KiB
  ASSERT_EQ(g.train_rows(), 1536);
  std::vector<ModelResult> results;
  EXPECT_EQ(on_chip_launches(g, CudaOptions{}, &results), std::vector<size_t>{size_t{48} << 10});
  sp_emu::set_static_shared_bytes(1024);
  std::vector<ModelResult> in_memory;
  EXPECT_TRUE(on_chip_launches(g, CudaOptions{}, &in_memory).empty())
      << "48 KiB of rows beside 1 KiB of static shared memory would not launch";
  expect_identical_results(results, in_memory, "on chip and from device memory");
  g.points = 1875;  // 1500 rows: 46.9 KiB, and 1 KiB static
  EXPECT_EQ(on_chip_launches(g, CudaOptions{}), std::vector<size_t>{4 * 1500 * 2 * sizeof(float)});
}

// A fault inside a kernel (an illegal address) is reported by a device only at the next
// synchronisation. With SUPERPOSE_CHECK_LAUNCHES=1 every launch is waited for, so the error names
// the kernel that faulted; without it, the error names where the host next waited.
TEST(EmulatedCuda, CheckedLaunchesNameTheKernelThatFaulted) {
  RestoreEmulator restore;
  const GroupSpec g = sweep(2, 1, DataMode::fixed, 5, 30);  // dataset, then 1 training launch
  auto message_of_fault = [&](int launch) {
    sp_emu::inject_fault_at_launch(launch);
    try {
      make_cuda_backend()->train(g);
    } catch (const std::runtime_error& error) {
      cudaGetLastError();  // the emulated device's sticky error, for the next test
      sp_emu::inject_fault_at_launch(-1);
      return std::string(error.what());
    }
    return std::string("no error");
  };
  setenv("SUPERPOSE_CHECK_LAUNCHES", "1", 1);
  std::string message = message_of_fault(1);
  EXPECT_NE(message.find("train_steps_registers<2, 1, true>"), std::string::npos) << message;
  EXPECT_NE(message.find("cudaErrorIllegalAddress"), std::string::npos) << message;
  EXPECT_NE(message.find("SUPERPOSE_CHECK_LAUNCHES"), std::string::npos) << message;
  message = message_of_fault(0);
  EXPECT_NE(message.find("generate_dataset_kernel"), std::string::npos) << message;
  unsetenv("SUPERPOSE_CHECK_LAUNCHES");
  message = message_of_fault(1);
  EXPECT_EQ(message.find("train_steps_registers"), std::string::npos) << message;
  EXPECT_NE(message.find("cudaDeviceSynchronize"), std::string::npos) << message;
  // And checked launches change no result.
  setenv("SUPERPOSE_CHECK_LAUNCHES", "1", 1);
  expect_identical_results(make_cuda_backend()->train(g), make_cpu_backend(0)->train(g),
                           "checked launches");
}

// Every GPU of a node: one backend per device, each on its own host thread pulling chunks from the
// plan; the results are one device's, byte for byte, and the work went to more than one device.
TEST(EmulatedCuda, ASweepOnSeveralDevicesEqualsOneDevice) {
  RestoreEmulator restore;
  sp_emu::set_device_count(3);
  SweepSpec spec;
  spec.base = sweep(5, 2, DataMode::fresh, 1, 20);
  spec.base.models.clear();
  spec.importance = std::vector<double>(5, 1.0);
  spec.chunk_models = 3;
  SweepAxesText axes;
  axes.seed = "range(0,36)";
  set_axes(spec, axes);
  const fs::path base = fs::path(::testing::TempDir()) / "superpose_emulated_devices";
  fs::remove_all(base);
  auto one = make_cuda_backend();
  const RunDir single((base / "one").string());
  run_sweep(*one, spec, single, "sweep");
  std::vector<std::unique_ptr<Backend>> devices;
  SweepRun run;
  for (int d = 0; d < 3; ++d) {
    CudaOptions options;
    options.device = d;
    devices.push_back(make_cuda_backend(options));
    run.backends.push_back(devices.back().get());
  }
  sp_emu::clear_launch_log();
  const RunDir several((base / "three").string());
  const SweepOutcome outcome = run_sweep(spec, several, "sweep", run);
  EXPECT_EQ(outcome.chunks_trained, 12);
  std::ifstream a(base / "one" / "results.csv"), b(base / "three" / "results.csv");
  const std::string one_text((std::istreambuf_iterator<char>(a)), std::istreambuf_iterator<char>());
  const std::string three_text((std::istreambuf_iterator<char>(b)),
                               std::istreambuf_iterator<char>());
  EXPECT_FALSE(one_text.empty());
  EXPECT_EQ(one_text, three_text);
  const std::vector<int> launched = sp_emu::launched_devices();
  std::set<int> used(launched.begin(), launched.end());
  EXPECT_GT(used.size(), 1u) << "the chunks went to one device only";
  CudaOptions missing;
  missing.device = 3;
  EXPECT_THROW(make_cuda_backend(missing), UsageError);
}

// The benchmark's timer: CUDA events around each chunk's training launches.
TEST(EmulatedCuda, TrainingLaunchesAreTimedWhenAsked) {
  RestoreEmulator restore;
  CudaOptions::Timings timings;
  CudaOptions options;
  options.timings = &timings;
  make_cuda_backend(options)->train(sweep(5, 2, DataMode::fresh, 6, 20));
  EXPECT_EQ(timings.chunks, 1);
  EXPECT_GT(timings.training_ms, 0.0);
}

// Replayed data (train --data) is uploaded, not drawn: on chip, read from device memory, or with
// "regenerate" (which replayed data cannot be: it stays in memory), the cpu backend's bits.
TEST(EmulatedCuda, ReplayedDataTrainsAsOnTheCpuWhereverItsRowsAreRead) {
  for (Shape shape : {Shape{2, 1}, Shape{20, 5}}) {
    GroupSpec g = sweep(shape.n, shape.m, DataMode::fixed, 3, 30);
    g.points = 600;
    const GroupSpec generated = g;
    uint64_t state = 12345;
    for (ModelSpec& model : g.models) {
      auto data = std::make_shared<std::vector<double>>();
      for (int k = 0; k < g.points * shape.n; ++k) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const double u = static_cast<double>(state >> 11) / 9007199254740992.0;
        data->push_back(u < 0.3 ? 0.0 : u);  // sparse-looking rows
      }
      model.data = data;
    }
    const std::string what = std::to_string(shape.n) + "x" + std::to_string(shape.m);
    const auto cpu = make_cpu_backend(0)->train(g);
    EXPECT_NE(cpu[0].W, make_cpu_backend(0)->train(generated)[0].W) << what << ": data unused";
    for (const std::string rows : {"auto", "memory", "regenerate"}) {
      CudaOptions options;
      options.fixed_rows = rows;
      expect_identical_results(make_cuda_backend(options)->train(g), cpu,
                               what + " replayed, fixed rows '" + rows + "'");
    }
  }
}

TEST(EmulatedCuda, DeviceMemoryIsGivenBackAfterTraining) {
  const size_t before = sp_emu::device_memory_in_use();
  GroupSpec g = sweep(7, 3, DataMode::fixed, 9, 12);
  g.record_trajectories = true;
  make_cuda_backend()->train(g);
  EXPECT_EQ(sp_emu::device_memory_in_use(), before);
}

TEST(EmulatedCuda, ADeviceTooSmallForOneModelIsAClearError) {
  RestoreEmulator restore;
  sp_emu::set_device_memory(sp_emu::device_memory_in_use() + 4096);
  const GroupSpec g = sweep(20, 5, DataMode::fixed, 3, 10);
  try {
    make_cuda_backend()->train(g);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("one model of this run needs"), std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("--backend cpu"), std::string::npos) << error.what();
  }
}

// A build whose kernels have no image for the device's architecture: `--backend cuda` says so and
// how to rebuild; `--backend auto` trains on the cpu and says why.
TEST(EmulatedCuda, KernelsForAnotherArchitectureAreAClearErrorAndAutoUsesTheCpu) {
  RestoreEmulator restore;
  sp_emu::set_kernel_images_present(false);
  const CudaStatus status = cuda_status();
  EXPECT_TRUE(status.device);
  EXPECT_FALSE(cuda_available());
  EXPECT_NE(status.problem.find("no kernel image is available"), std::string::npos)
      << status.problem;
  EXPECT_NE(status.problem.find("scripts/setup -DSUPERPOSE_CUDA_ARCH=90"), std::string::npos)
      << status.problem;
  try {
    make_cuda_backend();
    FAIL() << "expected an error";
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what())
                  .find("--backend: cuda cannot run here: this build's "
                        "kernels are for CUDA architecture"),
              std::string::npos)
        << error.what();
  }
  ::testing::internal::CaptureStderr();
  const auto backend = make_backend(BackendKind::automatic);
  const std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(backend->name(), "cpu");
  EXPECT_NE(said.find("superpose: not using the CUDA device: this build's kernels"),
            std::string::npos)
      << said;
  sp_emu::set_kernel_images_present(true);
  EXPECT_EQ(cuda_status().problem, "");
  EXPECT_EQ(make_backend(BackendKind::automatic)->name(), "cuda");
}

// ---------------------------------------------------------------- the command line
Outcome run(const std::string& arguments) {
  return run_shell(std::string(SUPERPOSE_EMULATED_BINARY) + " " + arguments + " 2>&1");
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("superpose_emulated_" + name);
  fs::remove_all(dir);
  return dir;
}

// Every results.csv and .npy under `cpu` has a byte-identical twin under `cuda`.
void expect_same_outputs(const fs::path& cuda, const fs::path& cpu) {
  int compared = 0;
  for (const auto& entry : fs::recursive_directory_iterator(cpu)) {
    const fs::path relative = fs::relative(entry.path(), cpu);
    const std::string name = relative.filename().string();
    if (!(name == "results.csv" || name == "phase_diagram.csv" || name == "experiments.csv" ||
          relative.extension() == ".npy"))
      continue;
    ASSERT_TRUE(fs::exists(cuda / relative)) << relative;
    EXPECT_EQ(read_bytes(cuda / relative), read_bytes(entry.path())) << relative;
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

TEST(EmulatedCli, TheCommandsOnTheEmulatedDeviceWriteTheCpuBackendsResults) {
  struct Command {
    std::string name, arguments;
  };
  const Command commands[] = {
      {"experiments", "experiments --seeds 3"},
      // The essay's (2,1) fixed runs keep their 800 training rows on chip by default; read from
      // device memory or drawn again, every byte is the same.
      {"experiments_memory", "experiments --seeds 2 --fixed-rows memory"},
      {"experiments_regenerate", "experiments --seeds 2 --fixed-rows regenerate"},
      {"sweep",
       "sweep --features 5 --hidden 2 --data-mode fresh --batch 256 --density 0.3,1 "
       "--importance-decay 0.9 --seed 'range(0,3)' --steps 60 --eval-every 20 --trajectories "
       "--snapshot-every 30"},
      {"phase-diagram",
       "phase-diagram --importance-cells 3 --density-cells 3 --seeds 2 --steps 200 --batch 128 "
       "--eval-points 500"},
  };
  for (const Command& command : commands) {
    const fs::path cuda = fresh_dir(command.name + "_cuda"), cpu = fresh_dir(command.name + "_cpu");
    const Outcome on_cuda = run(command.arguments + " --backend cuda --out " + cuda.string());
    ASSERT_EQ(on_cuda.status, 0) << on_cuda.output;
    const Outcome on_cpu = run(command.arguments + " --backend cpu --out " + cpu.string());
    ASSERT_EQ(on_cpu.status, 0) << on_cpu.output;
    expect_same_outputs(cuda, cpu);
    EXPECT_NE(read_bytes(cuda / "manifest.json").find("CUDA emulator"), std::string::npos);
  }
}

TEST(EmulatedCli, BackendAutoChoosesTheDeviceAndSaysSo) {
  const fs::path dir = fresh_dir("auto");
  const Outcome outcome = run("train --steps 20 --out " + dir.string());
  ASSERT_EQ(outcome.status, 0) << outcome.output;
  EXPECT_NE(outcome.output.find("--backend auto chose cuda (CUDA emulator"), std::string::npos)
      << outcome.output;
}

}  // namespace
}  // namespace sp
