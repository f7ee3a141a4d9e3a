// The CPU backend's SIMD step for the generic path (host/backends/cpu_simd.inc; flags in
// CMakeLists.txt).
#define SP_SIMD_ISA generic
#include "host/backends/cpu_simd.inc"
