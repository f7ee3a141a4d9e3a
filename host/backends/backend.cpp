#include "host/backends/backend.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <thread>

#include "host/backends/mapping.hpp"
#include "host/core/job.hpp"

namespace sp {

BackendKind parse_backend_kind(const std::string& text, const std::string& option) {
  if (text == "auto") return BackendKind::automatic;
  if (text == "cuda") return BackendKind::cuda;
  if (text == "cpu") return BackendKind::cpu;
  if (text == "reference") return BackendKind::reference;
  throw UsageError(
      fmt::format("{}: unknown backend '{}' (accepted: auto, cuda, cpu, reference)", option, text));
}

std::string arithmetic_of(const std::string& backend_name) {
  if (backend_name == "cpu" || backend_name == "cuda") return "float32";
  if (backend_name == "reference") return "float64";
  return "";
}

bool nvidia_gpu_usable(const std::string& gpus, const std::string& control) {
  std::error_code error;
  if (!std::filesystem::is_directory(gpus, error) ||
      std::filesystem::directory_iterator(gpus, error) == std::filesystem::directory_iterator())
    return false;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      visible && (*visible == '\0' || std::string(visible) == "-1"))
    return false;
  const int fd = ::open(control.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

int usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}

void check_cuda_options(const CudaOptions& options) {
  if (options.steps_per_launch < 1 || options.steps_per_launch > 1000000)
    throw UsageError(
        fmt::format("--steps-per-launch: {} is outside the accepted range [1, 1000000]",
                    options.steps_per_launch));
  if (options.schedule_window < 1)
    throw UsageError(
        fmt::format("schedule window: {} is not accepted (1 or more)", options.schedule_window));
  // The names host/backends/mapping.hpp lists.
  cuda::parse_mapping_choice(options.mapping, "mapping");
  cuda::parse_fixed_rows(options.fixed_rows, "--fixed-rows");
}

std::unique_ptr<Backend> make_backend(BackendKind kind, int threads, const CudaOptions& cuda) {
  check_cuda_options(cuda);
  switch (kind) {
    case BackendKind::reference:
      return make_reference_backend();
    case BackendKind::cpu:
      return make_cpu_backend(threads);
    case BackendKind::cuda:
      return make_cuda_backend(cuda);
    case BackendKind::automatic:
      break;
  }
  const CudaStatus status = cuda_status();
  if (status.problem.empty()) return make_cuda_backend(cuda);
  if (status.device) print_err("superpose: not using the CUDA device: {}\n", status.problem);
  return make_cpu_backend(threads);
}

}  // namespace sp
