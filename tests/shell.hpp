// shell.hpp — for the command-line tests: run a shell command line, get its exit status and all
// it printed (tests/test_cli.cpp, tests/emulator/test_emulated_backend.cpp).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace sp {

struct Outcome {
  int status;
  std::string output;  // stdout and stderr
};

// Runs a shell command line; its status and everything it printed.
inline Outcome run_shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string output;
  std::array<char, 4096> buffer;
  size_t got;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    output.append(buffer.data(), got);
  const int raw = ::pclose(pipe);
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, output};
}

}  // namespace sp
