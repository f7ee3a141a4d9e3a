// The emulated build's cuda backend: host/backends/cuda_backend.cu as written, compiled as C++ against the
// CUDA emulator's runtime API (include/cuda_runtime.h).
#include "host/backends/cuda_backend.cu"
