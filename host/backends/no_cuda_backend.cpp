// no_cuda_backend.cpp — stands in for host/backends/cuda_backend.cu in builds without nvcc.
#include "host/backends/backend.hpp"

namespace sp {

// A GPU this build cannot use is named, so that --backend auto says why it trains on the CPU (and
// the Python package warns): the usual cause is a pip install on a machine without nvcc on PATH.
CudaStatus cuda_status() {
  if (nvidia_gpu_usable())
    return {true,
            "this build has no CUDA backend: nvcc was not found when it was built (for the "
            "Python package: put nvcc on PATH, or set CUDACXX to it, and pip install again)"};
  return {false, "this build has no CUDA backend (no nvcc found)"};
}

bool cuda_available() { return false; }

int cuda_device_count() { return 0; }

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions&) {
  throw UsageError(
      "--backend: cuda is not available (this build has no CUDA backend; "
      "accepted here: auto, cpu, reference)");
}

}  // namespace sp
