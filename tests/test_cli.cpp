// The command line as a user runs it: the binary, its exit status, its one-line errors, and that
// bad input leaves nothing behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "host/backends/backend.hpp"
#include "host/io/npy.hpp"
#include "host/sweep/sweep.hpp"
#include "tests/shell.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

Outcome run(const std::string& arguments) { return run_superpose(arguments); }

std::string fresh_dir(const std::string& name) { return fresh_path("cli", name); }

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = fresh_dir(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

struct BadInput {
  std::string name, arguments, option;
};

// Each case: exit status 2, one line naming the option, and no output directory.
void expect_rejected(const std::string& command, const std::vector<BadInput>& cases) {
  for (const BadInput& c : cases) {
    const std::string out = fresh_dir(command.substr(0, command.find(' ')) + "_bad_" + c.name);
    const Outcome r = run(command + " --out " + out + " " + c.arguments);
    EXPECT_EQ(r.status, 2) << c.name << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.option), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.name << " wrote " << out;
  }
}

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
      {"steps_per_launch", "--steps-per-launch 0", "--steps-per-launch"},
      {"fixed_rows", "--fixed-rows disk", "--fixed-rows"},
      {"not_a_number", "--lr fast", "--lr"},
      {"data_malformed", "--data " + garbage, "--data"},
      {"data_wrong_columns", "--data " + three_columns, "--data"},
      {"data_one_axis", "--data " + one_axis, "--data"},
      {"data_nan", "--data " + nan_data, "--data"},
      {"data_missing", "--data /nonexistent/data.npy", "--data"},
      {"init_W_shape", "--init-W " + three_columns, "--init-W"},
      {"init_b_shape", "--init-b " + three_columns, "--init-b"},
  };
  expect_rejected("train --steps 5 --backend cpu", cases);
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
  for (const char* name :
       {"manifest.json", "run.json", "results.csv", "train_loss.npy", "eval_loss.npy",
        "eval_steps.npy", "W.npy", "b.npy", "snapshot_steps.npy", "data.npy"})
    EXPECT_TRUE(fs::exists(fs::path(out) / name)) << name;
  // No temporary left behind. The lock file stays (deleting a lock file lets two processes each
  // hold a lock on a different file), and so does the record of the files superpose wrote.
  for (const auto& entry : fs::directory_iterator(out))
    if (entry.path().filename() != ".superpose.lock" &&
        entry.path().filename() != ".superpose.files") {
      EXPECT_NE(entry.path().filename().string().front(), '.') << entry.path();
    }
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

TEST(CliSweep, BadInputOneLineExitTwoNothingWritten) {
  const std::vector<BadInput> cases = {
      {"sparsity_high", "--sparsity 0.1,1.5", "--sparsity"},
      {"density_range", "--density 'logspace(-1,1,3)'", "--density"},
      {"seed_fraction", "--seed 'range(0,1.5)'", "--seed"},
      {"lr_function", "--lr 'linspace(0,1)'", "--lr"},
      {"lr_unknown_function", "--lr 'geomspace(1,2,3)'", "--lr"},
      {"steps_zero", "--steps 0,10", "--steps"},
      {"two_importance_rules", "--relative-importance 1 --importance-decay 0.9", "--importance"},
      {"importance_length", "--importance 1,2,3", "--importance"},
      {"relative_feature", "--relative-importance 2 --relative-feature 2", "--relative-feature"},
      {"model_kind", "--model linear,cubic", "--model"},
      {"chunk_models", "--chunk-models -1", "--chunk-models"},
      {"feature_sparsity", "--feature-sparsity 0.1,0.2,0.3", "--feature-sparsity"},
      {"feature_sparsity_and_axis", "--feature-sparsity 0.1,0.2 --sparsity 0.5",
       "--feature-sparsity"},
      {"sparsity_and_density", "--sparsity 0.3 --density 0.5", "--density"},
      {"relative_feature_alone", "--relative-feature 0", "--relative-feature"},
      {"snapshot_without_trajectories", "--snapshot-every 10", "--snapshot-every"},
      {"too_many", "--seed 'range(0,1000000)' --lr 'linspace(0,1,1000)'", "models"},
  };
  expect_rejected("sweep --backend cpu", cases);
  expect_rejected("phase-diagram --backend cpu",
                  {{"seeds", "--seeds 0", "--seeds"},
                   {"cells", "--importance-cells 0", "--importance-cells"},
                   {"density_range", "--density-range 0,1", "--density-range"},
                   {"importance_range", "--importance-range 2,1", "--importance-range"}});
}

// A sweep killed (SIGKILL) after its first chunks, then rerun with the same command, resumes and
// ends with the same results.csv as a run never interrupted.
TEST(CliSweep, KilledMidwayAndRerunEqualsUninterrupted) {
  const std::string options =
      "sweep --backend cpu --threads 2 --data-mode fresh --batch 512 --steps 1500 --chunk-models 4 "
      "--density 'logspace(-1.5,0,5)' --relative-importance 0.3,3 --seed 'range(0,4)' ";
  const std::string whole = fresh_dir("sweep_whole"), resumed = fresh_dir("sweep_resumed");
  const Outcome a = run(options + "--out " + whole);
  ASSERT_EQ(a.status, 0) << a.output;

  const std::string command = "exec " + std::string(SUPERPOSE_BINARY) + " " + options + "--out " +
                              resumed + " >/dev/null 2>&1";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const fs::path first_chunk = fs::path(resumed) / "chunks" / "000000000004" / "results.csv";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(first_chunk) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(child, SIGKILL);
  int raw = 0;
  ::waitpid(child, &raw, 0);
  ASSERT_TRUE(WIFSIGNALED(raw)) << "the sweep finished before it could be killed";
  ASSERT_TRUE(fs::exists(first_chunk));
  ASSERT_FALSE(fs::exists(fs::path(resumed) / "results.csv"));

  const Outcome b = run(options + "--out " + resumed);
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_NE(b.output.find("resumed from an earlier run"), std::string::npos) << b.output;
  EXPECT_FALSE(read_text(whole + "/results.csv").empty());
  EXPECT_EQ(read_text(whole + "/results.csv"), read_text(resumed + "/results.csv"));

  // The same directory with a different sweep is refused, not mixed.
  const Outcome c = run(options + "--lr 3e-3 --out " + resumed);
  EXPECT_EQ(c.status, 2) << c.output;
  EXPECT_NE(c.output.find("--out"), std::string::npos) << c.output;
}

TEST(CliSweep, ProgressWithEtaOnlyOnATerminal) {
  const std::string options =
      "sweep --backend cpu --steps 50 --seed 'range(0,6)' --chunk-models 2 ";
  const Outcome piped = run(options + "--out " + fresh_dir("sweep_piped"));
  ASSERT_EQ(piped.status, 0) << piped.output;
  EXPECT_EQ(piped.output.find("ETA"), std::string::npos) << piped.output;
  // script(1) gives the command a pseudo-terminal.
  const std::string tty_command = "script -qec \"" + std::string(SUPERPOSE_BINARY) + " " + options +
                                  "--out " + fresh_dir("sweep_tty") + "\" /dev/null";
  const Outcome tty = run_shell(tty_command);
  EXPECT_EQ(tty.status, 0) << tty.output;
  EXPECT_NE(tty.output.find("6/6 models, chunk 3/3"), std::string::npos) << tty.output;
  EXPECT_NE(tty.output.find("ETA"), std::string::npos) << tty.output;
}

TEST(CliPhaseDiagram, WritesTheDiagramAndItsAgreement) {
  const std::string out = fresh_dir("phase_ok");
  const Outcome r = run(
      "phase-diagram --backend cpu --importance-cells 3 --density-cells 2 --seeds 2 --steps 300 "
      "--batch 128 --eval-points 500 --out " +
      out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("agrees with the closed-form winner in"), std::string::npos) << r.output;
  const std::string csv = read_text(out + "/phase_diagram.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7) << csv;  // header + 6 cells
  EXPECT_EQ(csv.rfind("density,sparsity,relative_importance,", 0), 0u);
  EXPECT_NE(read_text(out + "/manifest.json").find("\"far_agree\""), std::string::npos);
}

// A phase diagram trained in shards: the merge draws the same diagram, from the options the
// shards kept in the directory, byte for byte what one process writes.
TEST(CliPhaseDiagram, ShardsThenAMergeDrawTheSameDiagram) {
  const std::string grid =
      "phase-diagram --backend cpu --importance-cells 3 --density-cells 2 --seeds 2 --steps 100 "
      "--batch 128 --eval-points 500 --chunk-models 4 --out ";
  const std::string one = fresh_dir("phase_one"), shards = fresh_dir("phase_shards");
  ASSERT_EQ(run(grid + one).status, 0);
  for (const char* shard : {" --shard 1/2", " --shard 2/2"}) {
    const Outcome r = run(grid + shards + shard);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_FALSE(fs::exists(shards + "/phase_diagram.csv")) << "a shard drew the diagram";
  }
  const Outcome merged = run("merge " + shards);
  ASSERT_EQ(merged.status, 0) << merged.output;
  EXPECT_NE(merged.output.find("agrees with the closed-form winner in"), std::string::npos)
      << merged.output;
  EXPECT_EQ(read_text(shards + "/phase_diagram.csv"), read_text(one + "/phase_diagram.csv"));
  EXPECT_EQ(read_text(shards + "/results.csv"), read_text(one + "/results.csv"));
}

// The binary runs on any x86-64 CPU and picks its SIMD path at run time: every path the CPU has,
// forced through SUPERPOSE_SIMD, writes the same results byte for byte (fresh and fixed data,
// shapes with their own unrolled code and one without, rows with a tail, sparse fresh rows whose
// value blocks are drawn only for the rows that use them); a path the CPU lacks or an unknown one
// is a one-line error.
TEST(CliSimd, EverySimdPathWritesTheSameResults) {
  std::vector<std::string> paths = {"generic"};
  if (__builtin_cpu_supports("x86-64-v3")) paths.push_back("avx2");
  if (__builtin_cpu_supports("x86-64-v4")) paths.push_back("avx512");
  const std::string options =
      "sweep --backend cpu --features 20 --hidden 5 --steps 40 --seed 'range(0,3)' "
      "--density 0.2,1 --data-mode fresh --batch 100 ";
  const std::string options_fixed =
      "sweep --backend cpu --features 7 --hidden 3 --steps 40 --seed 'range(0,3)' --points 250 ";
  const std::string options_sparse =
      "sweep --backend cpu --features 64 --hidden 8 --steps 30 --seed 'range(0,2)' "
      "--density 0.01,0.1 --data-mode fresh --batch 100 ";
  std::string first, first_fixed, first_sparse;
  for (const std::string& path : paths) {
    const std::string out = fresh_dir("simd_" + path), out_fixed = fresh_dir("simd_fixed_" + path),
                      out_sparse = fresh_dir("simd_sparse_" + path);
    const Outcome r = run_shell("SUPERPOSE_SIMD=" + path + " " + std::string(SUPERPOSE_BINARY) +
                                " " + options + "--out " + out + " 2>&1");
    ASSERT_EQ(r.status, 0) << path << ": " << r.output;
    const Outcome f = run_shell("SUPERPOSE_SIMD=" + path + " " + std::string(SUPERPOSE_BINARY) +
                                " " + options_fixed + "--out " + out_fixed + " 2>&1");
    ASSERT_EQ(f.status, 0) << path << ": " << f.output;
    const Outcome sparse =
        run_shell("SUPERPOSE_SIMD=" + path + " " + std::string(SUPERPOSE_BINARY) + " " +
                  options_sparse + "--out " + out_sparse + " 2>&1");
    ASSERT_EQ(sparse.status, 0) << path << ": " << sparse.output;
    EXPECT_NE(read_text(out + "/manifest.json").find(path), std::string::npos) << path;
    if (first.empty()) {
      first = read_text(out + "/results.csv");
      first_fixed = read_text(out_fixed + "/results.csv");
      first_sparse = read_text(out_sparse + "/results.csv");
      ASSERT_FALSE(first.empty());
    } else {
      EXPECT_EQ(read_text(out + "/results.csv"), first) << path;
      EXPECT_EQ(read_text(out_fixed + "/results.csv"), first_fixed) << path;
      EXPECT_EQ(read_text(out_sparse + "/results.csv"), first_sparse) << path;
    }
  }
  for (const std::string& bad : {std::string("sse9"), std::string("avx512")}) {
    if (bad == "avx512" && __builtin_cpu_supports("x86-64-v4")) continue;
    const Outcome r = run_shell("SUPERPOSE_SIMD=" + bad + " " + std::string(SUPERPOSE_BINARY) +
                                " " + options + "--out " + fresh_dir("simd_bad") + " 2>&1");
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find("SUPERPOSE_SIMD"), std::string::npos) << r.output;
  }
}

// The optimiser settings other codebases use: a weight-decay axis (0 is Adam), a learning-rate
// schedule with warm-up; in results.csv and the manifest; bad values refused naming the option.
TEST(CliSweep, WeightDecayAxisAndLearningRateSchedule) {
  const std::string out = fresh_dir("optimiser");
  const Outcome r =
      run("sweep --backend cpu --steps 50 --seed 'range(0,2)' --weight-decay 0,0.1 --lr-schedule "
          "cosine --warmup-steps 5 --out " +
          out);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string csv = read_text(out + "/results.csv");
  EXPECT_NE(csv.find(",lr,weight_decay,steps,"), std::string::npos) << csv.substr(0, 300);
  const std::string manifest = read_text(out + "/manifest.json");
  EXPECT_NE(manifest.find("\"lr_schedule\": \"cosine\""), std::string::npos);
  EXPECT_NE(manifest.find("\"warmup_steps\": 5"), std::string::npos);
  // Different decays train differently; the schedule changes the result too.
  const std::string constant = fresh_dir("optimiser_constant");
  ASSERT_EQ(run("sweep --backend cpu --steps 50 --seed 'range(0,2)' --weight-decay 0,0.1 --out " +
                constant)
                .status,
            0);
  EXPECT_NE(read_text(constant + "/results.csv"), csv);
  const std::vector<BadInput> cases = {
      {"schedule", "--lr-schedule step", "--lr-schedule"},
      {"warmup", "--warmup-steps 50", "--warmup-steps"},
      {"decay", "--weight-decay=-1", "--weight-decay"},
  };
  expect_rejected("sweep --backend cpu --steps 50", cases);
  expect_rejected("train --backend cpu --steps 50", cases);
}

// Correlated and anticorrelated features from the command line: recorded in the manifest, they
// change the data (and so the models); impossible groupings are refused naming the option.
TEST(CliSweep, FeatureGroups) {
  const std::string base =
      "sweep --backend cpu --features 5 --hidden 2 --data-mode fresh --batch 64 --steps 30 "
      "--density 0.2 --seed 'range(0,2)' --out ";
  const std::string grouped = fresh_dir("groups"), plain = fresh_dir("groups_none");
  const Outcome r = run(base + grouped + " --correlated-groups 1 --anticorrelated-groups 1");
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(run(base + plain).status, 0);
  const std::string manifest = read_text(grouped + "/manifest.json");
  EXPECT_NE(manifest.find("\"feature_groups\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"anticorrelated\": 1"), std::string::npos) << manifest;
  EXPECT_EQ(read_text(plain + "/manifest.json").find("feature_groups"), std::string::npos);
  EXPECT_NE(read_csv(RunDir::existing(grouped, "test"), "results.csv").rows,
            read_csv(RunDir::existing(plain, "test"), "results.csv").rows);
  expect_rejected(
      "sweep --backend cpu --features 5 --steps 5",
      {{"too_many", "--correlated-groups 2 --anticorrelated-groups 1", "--correlated-groups"},
       {"size_zero", "--correlated-groups 1 --group-size 0", "--group-size"},
       {"size_big", "--anticorrelated-groups 1 --group-size 6", "--group-size"},
       {"negative", "--correlated-groups=-1", "--correlated-groups"}});
  const std::string data =
      write_file("groups_data.npy", npy::encode(std::vector<float>(50, 0.5f), {10, 5}));
  expect_rejected("train --backend cpu --features 5 --hidden 2 --steps 5",
                  {{"with_data", "--correlated-groups 1 --data " + data, "--data"}});
}

// Best-of-N compares models, not evaluation sets: two seeds' models with the same parameters (lr
// 0, the same --init-W) score the same evaluation loss in fresh mode; another --eval-seed, another
// set; the manifest records the seed.
TEST(CliTrain, TheFreshEvaluationSetIsSharedAcrossSeeds) {
  const std::string W =
      write_file("shared_eval_W.npy", npy::encode(std::vector<float>{0.7f, -0.2f, 0.4f}, {1, 3}));
  std::string out;
  auto eval_loss = [&](const std::string& extra, const std::string& name) {
    out = fresh_dir(name);
    const Outcome r =
        run("train --backend cpu --features 3 --data-mode fresh --sparsity 0.5 "
            "--lr 0 --steps 2 --eval-points 500 --init-W " +
            W + " --out " + out + " " + extra);
    EXPECT_EQ(r.status, 0) << r.output;
    const Table t = read_csv(RunDir::existing(out, "test"), "results.csv");
    return t.rows.at(0).at(static_cast<size_t>(t.column("eval_loss")));
  };
  const std::string one = eval_loss("--seed 1", "shared_eval_1");
  EXPECT_EQ(eval_loss("--seed 2", "shared_eval_2"), one);
  EXPECT_EQ(eval_loss("--seed 3 --eval-seed 0", "shared_eval_3"), one);
  EXPECT_NE(eval_loss("--seed 1 --eval-seed 7", "shared_eval_7"), one);
  EXPECT_NE(read_text(out + "/run.json").find("\"eval_seed\": 7"), std::string::npos);
}

// The TMS recipe is one option away: fresh batches of 1024, 10,000 steps, 10,000 shared evaluation
// points — each setting it names unless given — and the summary says which recipe ran and what it
// came to; the manifest records it.
TEST(CliSweep, RecipeTmsIsOneOptionAway) {
  const std::string out = fresh_dir("recipe_tms");
  const Outcome r =
      run("sweep --backend cpu --features 5 --hidden 2 --recipe tms --steps 20 "
          "--out " +
          out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("recipe tms (given: --steps): a fresh batch of 1024 every step, 10000 "
                          "evaluation points"),
            std::string::npos)
      << r.output;
  const std::string manifest = read_text(out + "/manifest.json");
  EXPECT_NE(manifest.find("\"recipe\": \"tms\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"data_mode\": \"fresh\""), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"eval_points\": 10000"), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"batch\": 1024"), std::string::npos) << manifest;
  // Without --steps: the recipe's 10,000 (one 2 -> 1 model: 10^7 sample-steps, milliseconds).
  const std::string steps = fresh_dir("recipe_tms_steps");
  ASSERT_EQ(run("sweep --backend cpu --recipe tms --out " + steps).status, 0);
  EXPECT_NE(read_text(steps + "/results.csv").find(",10000,"), std::string::npos);
  EXPECT_NE(read_text(steps + "/manifest.json").find("\"values\": [\n        10000.0\n"),
            std::string::npos)
      << read_text(steps + "/manifest.json");
  // Options given win over the recipe's.
  const Outcome given =
      run("sweep --backend cpu --recipe tms --data-mode fixed --points 64 "
          "--steps 10 --out " +
          fresh_dir("recipe_tms_given"));
  ASSERT_EQ(given.status, 0) << given.output;
  EXPECT_NE(given.output.find("recipe tms (given: --data-mode, --steps, --points): one dataset of "
                              "64 points"),
            std::string::npos)
      << given.output;
  const Outcome essay = run("train --backend cpu --steps 10 --out " + fresh_dir("recipe_essay"));
  EXPECT_NE(essay.output.find("recipe essay (given: --steps): one dataset of 1000 points per "
                              "model, 800 training every step (full batch), 200 evaluating"),
            std::string::npos)
      << essay.output;
  expect_rejected("sweep --backend cpu --steps 5", {{"recipe", "--recipe paper", "--recipe"}});
  expect_rejected("train --backend cpu --steps 5", {{"recipe", "--recipe ''", "--recipe"}});
}

// --varied-feature names a feature and goes with a varied axis; the axis is checked by value.
TEST(CliSweep, VariedFeatureOptionsAreChecked) {
  expect_rejected("sweep --backend cpu --features 5 --hidden 2 --steps 5",
                  {{"no_axis", "--varied-feature 2", "--varied-feature"},
                   {"beyond", "--varied-density 0.1 --varied-feature 5", "--varied-feature"},
                   {"both", "--varied-density 0.1 --varied-sparsity 0.2", "--varied-density"},
                   {"range", "--varied-sparsity 2", "--varied-sparsity"}});
  const std::string out = fresh_dir("varied");
  const Outcome r =
      run("sweep --backend cpu --features 3 --steps 5 --feature-sparsity "
          "0.1,0.2,0.3 --varied-sparsity 0.5,0.6 --varied-feature 1 --out " +
          out);
  ASSERT_EQ(r.status, 0) << r.output;
  const Table t = read_csv(RunDir::existing(out, "test"), "results.csv");
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[1][static_cast<size_t>(t.column("sparsity_1"))], "0.6");
  EXPECT_EQ(t.rows[1][static_cast<size_t>(t.column("sparsity_2"))], "0.3");
}

// `superpose tms` judges each result from its trained W: short runs of three results show what the
// paper reports (a regular pentagon, the pair of digons, antipodal anticorrelated pairs), one step
// of training does not — the verdicts can fail. tms.json records them; bad options are refused.
TEST(CliTms, VerdictsAreMeasuredFromTheTrainedW) {
  const std::string out = fresh_dir("tms");
  const Outcome r =
      run("tms --backend cpu --only intro,collapse,anticorrelated --steps 3000 "
          "--out " +
          out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("a regular pentagon (gaps within 6° of 72°; paper: yes): yes"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("a pair of digons (gaps within 8° of 90°; paper: yes): yes"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("3 of 3 results show what the paper reports"), std::string::npos)
      << r.output;
  // Beside each verdict on the best seed, how often every seed shows it (in the text and in
  // tms.json's outcomes).
  EXPECT_NE(r.output.find(" of 5 seeds ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("seeds with both pairs antipodal, by density: "), std::string::npos)
      << r.output;
  const std::string report = read_text(out + "/tms.json");
  EXPECT_NE(report.find("\"outcomes\": ["), std::string::npos);
  EXPECT_NE(report.find("\"what\": \"regular pentagon, sparsest\""), std::string::npos);
  EXPECT_NE(report.find("\"seeds\": 5"), std::string::npos);
  EXPECT_NE(report.find("\"shows\": true"), std::string::npos);
  EXPECT_EQ(report.find("\"shows\": false"), std::string::npos);
  // Each result is a sweep of its own: resumable, drawn by plots.py sweep.
  EXPECT_EQ(read_csv(RunDir::existing(out + "/intro", "test"), "results.csv").rows.size(), 50u);
  EXPECT_NE(read_text(out + "/collapse/manifest.json").find("\"varied_feature\": 4"),
            std::string::npos);

  const std::string untrained = fresh_dir("tms_untrained");
  const Outcome bad = run("tms --backend cpu --only intro,correlated --steps 1 --out " + untrained);
  ASSERT_EQ(bad.status, 0) << bad.output;
  EXPECT_NE(bad.output.find("0 of 2 results show what the paper reports"), std::string::npos)
      << bad.output;
  EXPECT_NE(bad.output.find("shows what the paper reports: NO"), std::string::npos);
  expect_rejected("tms --backend cpu", {{"only", "--only pentagon", "--only"},
                                        {"scale", "--scale huge", "--scale"},
                                        {"steps", "--steps 0", "--steps"}});
}

// --cell-streams independent: each cell's seeds their own streams; results.csv's seed is the key,
// and train --seed with it and the cell's settings gives that row's W bit for bit. The default
// keys a seed the same in every cell.
TEST(CliSweep, IndependentCellStreamsReplayWithTheirKey) {
  const std::string out = fresh_dir("cell_streams"), shared = fresh_dir("cell_streams_shared");
  const std::string common =
      "--backend cpu --features 5 --hidden 2 --steps 40 --data-mode fresh "
      "--batch 64 --eval-points 64 --seed 'range(0,2)' --density 0.3,0.9 ";
  ASSERT_EQ(run("sweep " + common + "--cell-streams independent --out " + out).status, 0);
  ASSERT_EQ(run("sweep " + common + "--out " + shared).status, 0);
  const Table t = read_csv(RunDir::existing(out, "test"), "results.csv");
  const Table s = read_csv(RunDir::existing(shared, "test"), "results.csv");
  ASSERT_EQ(t.rows.size(), 4u);
  const size_t seed = static_cast<size_t>(t.column("seed")),
               W = static_cast<size_t>(t.column("W_0_0"));
  EXPECT_EQ(s.rows[0][seed], s.rows[2][seed]);  // shared: seed 0 in both cells
  EXPECT_NE(t.rows[0][seed], t.rows[2][seed]);  // independent: each cell its own key
  EXPECT_NE(t.rows[0][W], t.rows[2][W]);
  const std::string replay = fresh_dir("cell_streams_replay");
  const Outcome r =
      run("train --backend cpu --features 5 --hidden 2 --steps 40 --data-mode fresh "
          "--batch 64 --eval-points 64 --sparsity 0.1 --seed " +
          t.rows[3][seed] + " --out " + replay);  // cell 1 (density 0.9), seed 1
  ASSERT_EQ(r.status, 0) << r.output;
  const Table one = read_csv(RunDir::existing(replay, "test"), "results.csv");
  for (int j = 0; j < 2; ++j)
    for (int f = 0; f < 5; ++f) {
      const std::string name = "W_" + std::to_string(j) + "_" + std::to_string(f);
      EXPECT_EQ(one.rows[0][static_cast<size_t>(one.column(name))],
                t.rows[3][static_cast<size_t>(t.column(name))])
          << name;
    }
  EXPECT_NE(run("sweep " + common + "--cell-streams per-cell --out " + fresh_dir("cs_bad"))
                .output.find("--cell-streams: 'per-cell' is not accepted"),
            std::string::npos);
}

// A sweep from given arrays (--init-W, --init-b, --data): one for every model, or one per model
// with leading dimensions broadcast against the sweep's axes as numpy broadcasts. Each row is the
// model `train` gives from its slice, bit for bit; a shape that does not broadcast is refused
// naming the axes; a resume must be given the same arrays (the identity keeps their digests).
TEST(CliSweep, InitialWeightsAndDataPerModelOrBroadcast) {
  std::vector<double> W0(10), Wk(2 * 3 * 10), bk(3 * 5), data(40 * 5);
  for (size_t k = 0; k < W0.size(); ++k) W0[k] = 0.1 * static_cast<double>(k % 7) - 0.3;
  for (size_t k = 0; k < Wk.size(); ++k) Wk[k] = std::sin(0.37 * static_cast<double>(k));
  for (size_t k = 0; k < bk.size(); ++k) bk[k] = 0.01 * static_cast<double>(k);
  for (size_t k = 0; k < data.size(); ++k)
    data[k] = (k * 7919 % 13) < 6 ? 0.0 : 0.05 * static_cast<double>(k % 19);
  const std::string w0 = write_file("sweep_W0.npy", npy::encode(W0, {2, 5}));
  const std::string wk =
      write_file("sweep_Wk.npy", npy::encode(Wk, {2, 3, 2, 5}));                   // density, seed
  const std::string b_seed = write_file("sweep_b.npy", npy::encode(bk, {3, 5}));   // seed
  const std::string d = write_file("sweep_data.npy", npy::encode(data, {40, 5}));  // every model
  const std::string sweep =
      "sweep --backend cpu --features 5 --hidden 2 --steps 30 --density "
      "0.3,0.9 --seed 'range(0,3)' ";
  const std::string out = fresh_dir("sweep_arrays");
  ASSERT_EQ(run(sweep + "--init-W " + wk + " --init-b " + b_seed + " --data " + d + " --out " + out)
                .status,
            0);
  const Table t = read_csv(RunDir::existing(out, "test"), "results.csv");
  ASSERT_EQ(t.rows.size(), 6u);
  // Model 5: density 0.9 (index 1), seed 2: W from Wk[1, 2], b from bk[2].
  std::vector<double> W12(Wk.begin() + 50, Wk.begin() + 60), b2(bk.begin() + 10, bk.end());
  const std::string alone = fresh_dir("sweep_arrays_alone");
  const Outcome one =
      run("train --backend cpu --features 5 --hidden 2 --steps 30 --sparsity 0.1 --seed 2 "
          "--init-W " +
          write_file("W12.npy", npy::encode(W12, {2, 5})) + " --init-b " +
          write_file("b2.npy", npy::encode(b2, {5})) + " --data " + d + " --out " + alone);
  ASSERT_EQ(one.status, 0) << one.output;
  const Table a = read_csv(RunDir::existing(alone, "test"), "results.csv");
  for (const std::string column : {"W_0_0", "W_1_4", "b_0", "b_4", "train_loss", "eval_loss"})
    EXPECT_EQ(a.rows[0][static_cast<size_t>(a.column(column))],
              t.rows[5][static_cast<size_t>(t.column(column))])
        << column;
  // One W for every model: model 4 (density 0.9, seed 1) is train's from W0.
  const std::string shared = fresh_dir("sweep_arrays_shared"), w0_alone = fresh_dir("w0_alone");
  ASSERT_EQ(run(sweep + "--init-W " + w0 + " --out " + shared).status, 0);
  ASSERT_EQ(run("train --backend cpu --features 5 --hidden 2 --steps 30 --sparsity 0.1 --seed 1 "
                "--init-W " +
                w0 + " --out " + w0_alone)
                .status,
            0);
  const Table s4 = read_csv(RunDir::existing(shared, "test"), "results.csv"),
              t4 = read_csv(RunDir::existing(w0_alone, "test"), "results.csv");
  for (const std::string column : {"W_0_0", "W_1_3", "eval_loss"})
    EXPECT_EQ(t4.rows[0][static_cast<size_t>(t4.column(column))],
              s4.rows[4][static_cast<size_t>(s4.column(column))])
        << column;
  // The same arrays resume; others are refused.
  const Outcome again =
      run(sweep + "--init-W " + wk + " --init-b " + b_seed + " --data " + d + " --out " + out);
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("resumed"), std::string::npos) << again.output;
  const Outcome other =
      run(sweep + "--init-W " + w0 + " --init-b " + b_seed + " --data " + d + " --out " + out);
  EXPECT_EQ(other.status, 2);
  EXPECT_NE(other.output.find("holds a different sweep"), std::string::npos) << other.output;
  const Outcome bad =
      run(sweep + "--init-W " + write_file("bad_W.npy", npy::encode(Wk, {6, 2, 5})) + " --out " +
          fresh_dir("sweep_arrays_bad"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.output.find("--init-W: its leading dimensions (6,) do not broadcast against the "
                            "sweep's shape (1, 1, 1, 1, 2, 3) over model, steps, lr, weight_decay, "
                            "density, seed"),
            std::string::npos)
      << bad.output;
  // Every slice is checked before the first model trains, not only model 0's.
  std::vector<double> huge(Wk);
  huge.back() = 1e39;
  const Outcome range =
      run(sweep + "--init-W " + write_file("huge_W.npy", npy::encode(huge, {2, 3, 2, 5})) +
          " --out " + fresh_dir("sweep_arrays_huge"));
  EXPECT_EQ(range.status, 2);
  EXPECT_NE(range.output.find("--init-W: the array holds 1e+39, beyond float32's range"),
            std::string::npos)
      << range.output;
  const Outcome fresh =
      run(sweep + "--data-mode fresh --data " + d + " --out " + fresh_dir("sweep_arrays_fresh"));
  EXPECT_NE(fresh.output.find("--data: replayed data trains in the fixed data mode"),
            std::string::npos)
      << fresh.output;
}

// `train` prints a small model's W and b whole (the essay's 2 -> 1) and a larger one's as a
// summary; every entry is in results.csv either way.
TEST(CliTrain, ALargeModelsParametersAreSummarisedNotPrinted) {
  const std::string small = fresh_dir("train_small"), large = fresh_dir("train_large");
  const Outcome a = run("train --backend cpu --steps 5 --out " + small);
  ASSERT_EQ(a.status, 0) << a.output;
  EXPECT_NE(a.output.find("W = ["), std::string::npos) << a.output;
  const Outcome b =
      run("train --backend cpu --features 300 --hidden 5 --model neuron --steps 5 "
          "--out " +
          large);
  ASSERT_EQ(b.status, 0) << b.output;
  EXPECT_EQ(b.output.find("W = ["), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("trained 1 neuron model (300 -> 5)"), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("W: 5 x 300, ‖W‖_F = "), std::string::npos) << b.output;
  EXPECT_LT(b.output.size(), 2000u) << b.output;
  const Table t = read_csv(RunDir::existing(large, "test"), "results.csv");
  EXPECT_GE(t.column("W_4_299"), 0);
  EXPECT_GE(t.column("b_299"), 0);
}

// TMS's privileged basis (the neuron model, ARENA's settings) at the paper's 10,000 steps:
// monosemantic neurons for the most important features when dense, polysemantic when sparse — and
// one step of training does not show it.
TEST(CliTms, ThePrivilegedBasisIsJudgedFromEveryNeuronOfEverySeed) {
  const std::string out = fresh_dir("tms_privileged");
  const Outcome r = run("tms --backend cpu --only privileged-basis --out " + out);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("one for each of the 5 most important features (judged yes from half the "
                          "seeds; paper: yes): yes"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("≤ 20% dense and ≥ 80% sparse (paper: yes): yes"), std::string::npos)
      << r.output;
  EXPECT_NE(read_text(out + "/privileged-basis/manifest.json").find("\"neuron\""),
            std::string::npos);
  const Outcome untrained =
      run("tms --backend cpu --only privileged --steps 1 --out " + fresh_dir("tms_privileged_1"));
  ASSERT_EQ(untrained.status, 0) << untrained.output;
  EXPECT_NE(untrained.output.find("in 0 of 8 seeds (0%)"), std::string::npos) << untrained.output;
  EXPECT_NE(untrained.output.find("0 of 1 results show what the paper reports"), std::string::npos)
      << untrained.output;
}

// A build without the CUDA backend still sees a GPU this process could use, so that --backend auto
// says why it trains on the CPU (and the Python package warns) instead of leaving it unused
// silently; a GPU the driver lists but this process cannot open (a container or a Slurm
// allocation without it, CUDA_VISIBLE_DEVICES hiding it) is not one.
TEST(CudaStatus, AGpuThisProcessCouldUseIsSeenWithoutTheBackend) {
  const std::string gpus = fresh_dir("gpus"), control = fresh_dir("nvidiactl");
  fs::create_directories(gpus);
  std::ofstream(control) << "";
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string saved = visible ? visible : "";
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  EXPECT_FALSE(nvidia_gpu_usable(gpus, control));  // none listed
  fs::create_directories(gpus + "/0000:17:00.0");
  EXPECT_TRUE(nvidia_gpu_usable(gpus, control));
  EXPECT_FALSE(nvidia_gpu_usable(gpus, control + ".missing"));  // listed, not ours to open
  EXPECT_FALSE(nvidia_gpu_usable(gpus + "/missing", control));
  for (const char* hidden : {"", "-1"}) {
    ::setenv("CUDA_VISIBLE_DEVICES", hidden, 1);
    EXPECT_FALSE(nvidia_gpu_usable(gpus, control)) << "CUDA_VISIBLE_DEVICES=" << hidden;
  }
  ::setenv("CUDA_VISIBLE_DEVICES", "0", 1);
  EXPECT_TRUE(nvidia_gpu_usable(gpus, control));
  if (visible) {
    ::setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  } else {
    ::unsetenv("CUDA_VISIBLE_DEVICES");
  }
  if (!nvidia_gpu_usable()) {
    EXPECT_FALSE(cuda_status().device);  // no GPU here: none claimed
  }
}

}  // namespace
}  // namespace sp
