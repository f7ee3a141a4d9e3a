// portable_glibc.cpp — in the portable build only (SUPERPOSE_PORTABLE: scripts/prepare-gpu-deps),
// so that binaries built against this machine's glibc 2.36 start on a machine with glibc 2.34 or
// newer (Ubuntu 22.04's 2.35, RHEL 9's 2.34), such as a lent GPU machine:
// - the static C++ runtime's std::random_device refers to arc4random (glibc 2.36); superpose never
//   draws from it, but the reference must resolve: here, to the kernel's getrandom;
// - std::hypot binds to hypot@GLIBC_2.35 (a new symbol version, same function): the link wraps it
//   (-Wl,--wrap=hypot) and this calls the version every glibc has.
#include <sys/random.h>

#include <cstdint>

extern "C" {

uint32_t arc4random(void) {
  uint32_t value = 0;
  while (getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
  }
  return value;
}

double superpose_hypot_any_glibc(double x, double y);
__asm__(".symver superpose_hypot_any_glibc,hypot@GLIBC_2.2.5");
double __wrap_hypot(double x, double y) { return superpose_hypot_any_glibc(x, y); }
}
