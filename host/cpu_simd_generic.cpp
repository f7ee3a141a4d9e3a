// The CPU backend's SIMD step for the generic path (host/cpu_simd.inc; flags in CMakeLists.txt).
#define SP_SIMD_ISA generic
#include "host/cpu_simd.inc"
