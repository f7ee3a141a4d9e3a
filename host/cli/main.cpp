// superpose — trains toy models of superposition by the thousand. See README.md.
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "host/cli/cli.hpp"

int main(int argc, char** argv) {
  const int status = sp::run_cli(argc, argv);
  // What was printed must have reached its reader: a full disk or a closed pipe behind stdout is
  // a failure, not an exit 0.
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "superpose: failed: cannot write to standard output (%s)\n",
                 std::strerror(errno));
    return status == 0 ? 1 : status;
  }
  return status;
}
