#include "host/backend.hpp"

#include <fmt/format.h>

#include <fstream>

namespace sp {

BackendKind parse_backend_kind(const std::string& text, const std::string& option) {
  if (text == "auto") return BackendKind::automatic;
  if (text == "cuda") return BackendKind::cuda;
  if (text == "cpu") return BackendKind::cpu;
  if (text == "reference") return BackendKind::reference;
  throw UsageError(
      fmt::format("{}: unknown backend '{}' (accepted: auto, cuda, cpu, reference)", option, text));
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

std::unique_ptr<Backend> make_backend(BackendKind kind, int threads, const CudaOptions& cuda) {
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
  if (status.device)
    fmt::print(stderr, "superpose: not using the CUDA device: {}\n", status.problem);
  return make_cpu_backend(threads);
}

}  // namespace sp
