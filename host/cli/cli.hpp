// cli.hpp — the `superpose` command line (docs/design.md §4).
#pragma once

namespace sp {
// Returns the process exit status: 0 done, 2 bad input (one line on stderr), 1 other failure.
int run_cli(int argc, char** argv);
}  // namespace sp
