// cli.hpp — the `superpose` command line (docs/design.md §4).
#pragma once

#include <string>

namespace sp {
// Returns the process exit status: 0 done, 2 bad input (one line on stderr), 1 other failure.
int run_cli(int argc, char** argv);
// The command line's options as a table, in JSON, for the Python package (its functions'
// signatures, types and help, and the stub editors read: python/superpose/_options.py):
// {"commands": [{"command", "description", "options": [{"option": "--density", "help", "default"
// (as --help shows it; "" where none), "kind" (FLAG, INTEGER, NUMBER, TEXT, AXIS, LIST, NAMES, NPY,
// PATH: host/cli/options.hpp), "values" (how many the option takes), "recipe" (whether --recipe
// sets it)}]}]} (positional arguments, such as merge's DIR, are not in it: merge(path) takes it).
std::string options_json();
}  // namespace sp
