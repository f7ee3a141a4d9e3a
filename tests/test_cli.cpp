// The command line as a user runs it: the binary, its exit status, its one-line errors, and that
// bad input leaves nothing behind.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "host/npy.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  int status;
  std::string output;  // stdout and stderr
};

Outcome run(const std::string& arguments) {
  const std::string command = std::string(SUPERPOSE_BINARY) + " " + arguments + " 2>&1";
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

std::string fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("superpose_cli_" + name);
  fs::remove_all(dir);
  return dir.string();
}

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = fresh_dir(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

struct BadInput {
  std::string name, arguments, option;
};

TEST(CliBadInput, OneLineNamingTheOptionExitTwoNothingWritten) {
  const std::string three_columns =
      write_file("three.npy", npy::encode(std::vector<float>(30, 0.5f), {10, 3}));
  const std::string one_axis = write_file("one_axis.npy", npy::encode(std::vector<float>(3), {3}));
  const std::string garbage = write_file("garbage.npy", "not a numpy file at all");
  const std::string nan_data =
      write_file("nan.npy", npy::encode(std::vector<double>{0.5, std::nan(""), 0.1, 0.2}, {2, 2}));
  const std::string blocker = write_file("blocker", "a file where a directory should go");
  const std::vector<BadInput> cases = {
      {"sparsity_high", "--sparsity 1.5", "--sparsity"},
      {"sparsity_negative", "--sparsity=-0.1", "--sparsity"},
      {"lr_negative", "--lr=-1", "--lr"},
      {"lr_nan", "--lr nan", "--lr"},
      {"lr_inf", "--lr inf", "--lr"},
      {"importance_negative", "--importance 1,-2", "--importance"},
      {"importance_nan", "--importance nan", "--importance"},
      {"importance_length", "--importance 1,2,3", "--importance"},
      {"zero_features", "--features 0", "--features"},
      {"zero_hidden", "--hidden 0", "--hidden"},
      {"model_kind", "--model quadratic", "--model"},
      {"data_mode", "--data-mode streaming", "--data-mode"},
      {"backend", "--backend tpu", "--backend"},
      {"eval_fraction", "--eval-fraction 1", "--eval-fraction"},
      {"steps", "--steps 0", "--steps"},
      {"not_a_number", "--lr fast", "--lr"},
      {"data_malformed", "--data " + garbage, "--data"},
      {"data_wrong_columns", "--data " + three_columns, "--data"},
      {"data_one_axis", "--data " + one_axis, "--data"},
      {"data_nan", "--data " + nan_data, "--data"},
      {"data_missing", "--data /nonexistent/data.npy", "--data"},
      {"init_W_shape", "--init-W " + three_columns, "--init-W"},
      {"init_b_shape", "--init-b " + three_columns, "--init-b"},
  };
  for (const BadInput& c : cases) {
    const std::string out = fresh_dir("out_" + c.name);
    const Outcome r = run("train --steps 5 --backend cpu --out " + out + " " + c.arguments);
    EXPECT_EQ(r.status, 2) << c.name << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.option), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.name << " wrote " << out;
  }
  const Outcome unwritable = run("train --steps 5 --backend cpu --out " + blocker + "/run");
  EXPECT_EQ(unwritable.status, 2) << unwritable.output;
  EXPECT_NE(unwritable.output.find("--out"), std::string::npos) << unwritable.output;
  EXPECT_EQ(std::count(unwritable.output.begin(), unwritable.output.end(), '\n'), 1);
}

TEST(CliTrain, WritesTheRunDirectory) {
  const std::string out = fresh_dir("train_ok");
  const Outcome r =
      run("train --backend cpu --model relu --sparsity 0.8 --steps 120 --eval-every 50 "
          "--snapshot-every 25 --seed 3 --out " +
          out);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* name : {"manifest.json", "results.csv", "train_loss.npy", "eval_loss.npy",
                           "eval_steps.npy", "W.npy", "b.npy", "snapshot_steps.npy", "data.npy"})
    EXPECT_TRUE(fs::exists(fs::path(out) / name)) << name;
  for (const auto& entry : fs::directory_iterator(out))  // no temporary left behind
    EXPECT_NE(entry.path().filename().string().front(), '.') << entry.path();
  EXPECT_EQ(npy::load(out + "/train_loss.npy", "t").shape, (std::vector<size_t>{1, 120}));
  EXPECT_EQ(npy::load(out + "/eval_loss.npy", "t").shape,
            (std::vector<size_t>{1, 4}));  // 0,50,100,119
  EXPECT_EQ(npy::load(out + "/W.npy", "t").shape, (std::vector<size_t>{1, 6, 1, 2}));
  EXPECT_EQ(npy::load(out + "/data.npy", "t").shape, (std::vector<size_t>{1000, 2}));
  std::ifstream csv(out + "/results.csv");
  std::string header, row;
  std::getline(csv, header);
  std::getline(csv, row);
  EXPECT_EQ(header.rfind("model_id,seed,model,n_features,n_hidden,data_mode,sparsity,", 0), 0u);
  for (const char* column : {"importance_1", "lr", "steps", "train_loss", "eval_loss", "W_0_1",
                             "b_1", "status", "phase"})
    EXPECT_NE(header.find(column), std::string::npos) << column;
  EXPECT_EQ(row.rfind("0,3,relu,2,1,fixed,0.8,", 0), 0u) << row;
}

TEST(CliTrain, ReplayFromNpyReproducesTheRun) {
  // A run's own data.npy fed back through --data (same seed, so the same initial W) must give
  // exactly the same results.csv as the run that generated it.
  const std::string first = fresh_dir("replay_a"), second = fresh_dir("replay_b");
  const std::string options = "train --backend cpu --steps 60 --seed 9 --sparsity 0.5 ";
  ASSERT_EQ(run(options + "--out " + first).status, 0);
  const Outcome r = run(options + "--data " + first + "/data.npy --out " + second);
  ASSERT_EQ(r.status, 0) << r.output;
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  EXPECT_FALSE(read(first + "/results.csv").empty());
  EXPECT_EQ(read(first + "/results.csv"), read(second + "/results.csv"));
}

TEST(CliExperiments, RunsAndSummarises) {
  const std::string out = fresh_dir("experiments");
  const Outcome r = run("experiments --backend cpu --seeds 3 --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Sparse data + ReLU"), std::string::npos);
  for (const char* name : {"results.csv", "experiments.csv", "manifest.json",
                           "exp5-relu-sparse-equal/W.npy", "exp1-linear-dense-equal/data.npy"})
    EXPECT_TRUE(fs::exists(fs::path(out) / name)) << name;
  EXPECT_EQ(run("experiments --seeds 0 --out " + fresh_dir("experiments_bad")).status, 2);
}

}  // namespace
}  // namespace sp
