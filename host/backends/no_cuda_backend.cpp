// no_cuda_backend.cpp — stands in for host/backends/cuda_backend.cu in builds without nvcc.
#include "host/backends/backend.hpp"

namespace sp {

CudaStatus cuda_status() { return {false, "this build has no CUDA backend (no nvcc found)"}; }

bool cuda_available() { return false; }

int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions&) {
  throw UsageError(
      "--backend: cuda is not available (this build has no CUDA backend; "
      "accepted here: auto, cpu, reference)");
}

}  // namespace sp
