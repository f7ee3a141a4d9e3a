// shell.hpp — for the command-line tests (test_cli, test_run_dir, test_hostile, the emulated
// backend's): run a shell command line and get its exit status and all it printed, and the files
// such tests make and read.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// A path under the test's temporary directory, removed first: `prefix` keeps test files apart.
inline std::string fresh_path(const std::string& prefix, const std::string& name) {
  const std::filesystem::path path =
      std::filesystem::path(::testing::TempDir()) / ("superpose_" + prefix + "_" + name);
  std::filesystem::remove_all(path);
  return path.string();
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

#if defined(SUPERPOSE_BINARY)
// The superpose binary with these arguments (stderr with stdout).
inline Outcome run_superpose(const std::string& arguments) {
  return run_shell(std::string(SUPERPOSE_BINARY) + " " + arguments + " 2>&1");
}
#endif

}  // namespace sp
