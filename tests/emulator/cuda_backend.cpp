// The emulated build's cuda backend: host/cuda_backend.cu as written, compiled as C++ against the
// CUDA emulator's runtime API (include/cuda_runtime.h).
#include "host/cuda_backend.cu"
