// The emulated build's kernels: kernels/fused_step.cu as written, compiled as C++ against the CUDA
// emulator (include/cuda_runtime.h is force-included, as nvcc force-includes the real one).
#include "kernels/fused_step.cu"
