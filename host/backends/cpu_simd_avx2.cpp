// The CPU backend's SIMD step for the avx2 path (host/backends/cpu_simd.inc; flags in
// CMakeLists.txt).
#define SP_SIMD_ISA avx2
#include "host/backends/cpu_simd.inc"
