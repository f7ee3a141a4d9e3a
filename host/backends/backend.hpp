// backend.hpp — the three implementations of a training run (docs/design.md §3) behind one
// interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/core/config.hpp"

namespace sp {

enum class BackendKind { automatic, cuda, cpu, reference };
BackendKind parse_backend_kind(const std::string& text, const std::string& option);

// "float32" for the cpu and cuda backends (the same bits, tested), "float64" for the reference;
// "" for a name that is no backend's.
std::string arithmetic_of(const std::string& backend_name);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;    // "reference", "cpu", "cuda"
  virtual std::string device() const = 0;  // the CPU or GPU model, for the manifest
  // The arithmetic its results are exact in (arithmetic_of): part of a sweep's identity, so that
  // results of different arithmetic are never merged or resumed into each other.
  std::string arithmetic() const { return arithmetic_of(name()); }
  // Trains every model of the group; results in the order of group.models.
  virtual std::vector<ModelResult> train(const GroupSpec& group) = 0;
  // How many models one train() call should hold for speed (a sweep gives it several chunks at
  // once); 0: one chunk at a time is as fast.
  virtual int64_t models_per_call() const { return 0; }
};

// How the cuda backend launches its kernels (results do not depend on it: tested).
struct CudaOptions {
  int device = 0;              // which CUDA device (cudaSetDevice) the backend trains on
  int steps_per_launch = 100;  // K: steps of the persistent loop in one launch
  // The mapping, as --mapping names it (kernels/mapping.hpp: parse_mapping_choice, the one list of
  // names): "" the shape's own, "global", "tiled", "tiled-split" or "shared" forced — the kernel
  // harness and the tests compare the mappings this way. Parsed once, by the backend.
  std::string mapping;
  // Fixed data: "auto" keeps each model's dataset in device memory and, where the mapping can,
  // its training rows in shared memory for the steps of a launch (cuda::rows_fit_on_chip);
  // "memory" reads them from device memory every step; "regenerate" draws every row again from
  // its counters wherever it is used (as fresh data does; replayed --data stays in memory).
  std::string fixed_rows = "auto";
  // Steps whose AdamW scalars are on the device at once (uploaded window by window; tests make it
  // small to cross windows).
  int schedule_window = 1 << 16;
  // Where the backend adds up the device time of its training launches, for the benchmark: CUDA
  // events around each chunk's loop of launches (not allocation, upload, dataset generation or
  // download). Not owned; null: not measured.
  struct Timings {
    double training_ms = 0;
    int chunks = 0;
  };
  Timings* timings = nullptr;
};

// Throws UsageError, naming the option, for a value CudaOptions does not accept (steps per launch
// outside [1, 1000000], an unknown mapping or fixed-rows choice). make_backend checks every
// backend's options, so that a bad --fixed-rows is an error on the cpu too.
void check_cuda_options(const CudaOptions& options);

// Whether the cuda backend can run here: `device`, a CUDA device is present; `problem`, why the
// backend cannot run ("" when it can: no backend in this build, no device, or kernels built for
// another architecture than the device's, with the command that rebuilds them).
struct CudaStatus {
  bool device = false;
  std::string problem;
};
CudaStatus cuda_status();
// Whether this process could use an NVIDIA GPU: the driver lists one (a folder per device in
// `gpus`), its control device opens (not so in a container without the GPU or a Slurm allocation
// without it) and CUDA_VISIBLE_DEVICES does not hide them all. How a build without the CUDA
// backend knows it is leaving one unused.
bool nvidia_gpu_usable(const std::string& gpus = "/proc/driver/nvidia/gpus",
                       const std::string& control = "/dev/nvidiactl");
// True when this build has the CUDA backend and its kernels run on a device present here.
bool cuda_available();
int cuda_device_count();  // 0 without the backend or a device
// `automatic` picks cuda when it is available, else cpu (saying why on stderr when a device is
// present but cannot be used). threads = 0: all cores.
std::unique_ptr<Backend> make_backend(BackendKind kind, int threads = 0,
                                      const CudaOptions& cuda = CudaOptions{});

// Implemented by each backend's file.
std::unique_ptr<Backend> make_reference_backend();
std::unique_ptr<Backend> make_cpu_backend(int threads);
std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options = CudaOptions{});  // CUDA
                                                                                         // builds

std::string cpu_model_name();
// The CPUs this process may run on (its affinity mask: what Slurm, taskset or a container's
// cpuset allow), or the machine's count where that cannot be read; at least 1. The cpu backend's
// default thread count (--threads 0).
int usable_cpus();

}  // namespace sp
