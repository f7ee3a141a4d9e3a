// The command line as a careless or hostile user drives it (the reliability report's cases, each
// reproduced): integers that CLI11 would misread, empty values, values beyond float32, inputs
// that are not files or lie about their size, runs too big for this machine — each refused with
// one line naming the option the user typed, exit 2, nothing written, and without first
// allocating what it refuses; and output that cannot be written is a failure.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "host/io/npy.hpp"
#include "host/studies/phase_diagram.hpp"
#include "tests/shell.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

std::string fresh_dir(const std::string& name) { return fresh_path("hostile", name); }

std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path = fresh_dir(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A .npy header claiming `shape`, followed by `data_bytes` zero bytes.
std::string npy_claiming(const std::string& shape, size_t data_bytes) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + std::string(data_bytes, '\0');
}

struct Refusal {
  std::string name, arguments, option, text;  // text: "" or a fragment the line must hold
};

// Each: exit 2, one line naming the option (and holding `text`), no --out directory.
void expect_refused(const std::vector<Refusal>& cases, const std::string& environment = "") {
  for (const Refusal& c : cases) {
    const std::string out = fresh_dir("refused_" + c.name);
    const Outcome r = run_shell(environment + " " + SUPERPOSE_BINARY + " " + c.arguments +
                                " --out " + out + " 2>&1");
    EXPECT_EQ(r.status, 2) << c.name << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find("error: " + c.option + ":"), std::string::npos)
        << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.text), std::string::npos) << c.name << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.name << " wrote " << out;
  }
}

TEST(Hostile, IntegersAreDecimalWholeAndInRange) {
  // A leading zero is decimal, as in sweep's axes (CLI11 alone read 010 as 8).
  const std::string out = fresh_dir("octal");
  ASSERT_EQ(run_shell(std::string(SUPERPOSE_BINARY) +
                      " train --backend cpu --steps 010 --seed 010 --out " + out + " 2>&1")
                .status,
            0);
  const std::string manifest = read_text(out + "/manifest.json");
  EXPECT_NE(manifest.find("\"steps\": 10,"), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"seed\": 10,"), std::string::npos) << manifest;
  expect_refused({
      {"steps_hex", "train --steps 0x10", "--steps", "not a whole decimal number"},
      {"steps_exponent", "train --steps 1e3", "--steps", "not a whole decimal number"},
      {"steps_fraction", "train --steps 2.5", "--steps", "not a whole decimal number"},
      {"steps_overflow", "train --steps 2147483648", "--steps", "outside the accepted range"},
      {"seed_negative", "train --seed -1", "--seed", "outside the accepted range"},
      {"seed_empty", "train --seed ''", "--seed", ""},
      {"features_negative", "train --features -1", "--features", "[1, 4096]"},
      {"features_huge", "train --features 2147483647", "--features", "[1, 4096]"},
      {"sweep_seed_negative", "sweep --seed -1", "--seed", "[0, 2^53]"},
      {"sweep_relative_feature_negative", "sweep --relative-importance 2 --relative-feature -5",
       "--relative-feature", ""},
      {"sweep_range_beyond_2_53", "sweep --seed 'range(9007199254740990,9007199254740994)'",
       "--seed", "beyond 2^53"},
      {"threads_beyond_the_machine", "sweep --threads 500", "--threads",
       "CPUs this process may use"},
  });
}

TEST(Hostile, ThreadsBeyondTheCpusThisProcessMayUseAreRefused) {
  // One CPU by affinity (taskset, as a Slurm allocation binds one): two threads would take turns.
  // The CPU is the first this process may use (a container's or a job's set need not hold CPU 0).
  const Outcome first = run_shell(
      "grep '^Cpus_allowed_list:' /proc/self/status | sed 's/.*:[[:space:]]*//; s/[-,].*//'");
  const std::string cpu = first.output.substr(0, first.output.find('\n'));
  if (cpu.empty() || run_shell("taskset -c " + cpu + " true >/dev/null 2>&1").status != 0)
    GTEST_SKIP() << "taskset (util-linux) is absent, or this process may not set its affinity";
  expect_refused({{"threads_beyond_affinity", "sweep --threads 2", "--threads",
                   "2 is more than the 1 CPUs this process may use"}},
                 "taskset -c " + cpu);
}

TEST(Hostile, EmptyValuesAreRefusedNotZeroOrIgnored) {
  expect_refused({
      {"lr", "train --lr ''", "--lr", "empty"},
      {"importance", "train --importance ''", "--importance", "empty"},
      {"sparsity", "train --sparsity ''", "--sparsity", "empty"},
      {"density", "sweep --density ''", "--density", "empty"},
      {"importance_decay", "sweep --importance-decay ''", "--importance-decay", "empty"},
      {"relative_importance", "sweep --relative-importance ''", "--relative-importance", "empty"},
      {"out", "train --out ''", "--out", "empty"},
  });
}

TEST(Hostile, EveryModelOfASweepIsCheckedBeforeAnyTrainsAndErrorsNameTheOptionTyped) {
  expect_refused({
      {"decay_middle_value", "sweep --importance-decay 0.5,1e6,0.5 --features 100",
       "--importance-decay", "beyond float32's range"},
      {"feature_sparsity", "sweep --feature-sparsity -1", "--feature-sparsity", "[0, 1]"},
      {"phase_seeds", "phase-diagram --seeds 0", "--seeds", ""},
      {"phase_eval_points", "phase-diagram --eval-points 0", "--eval-points", "lowest eval_loss"},
  });
}

TEST(Hostile, ValuesBeyondFloat32AreBadInput) {
  std::string W = npy::encode(std::vector<double>{1e39, 0.5}, {1, 2});
  std::string data = npy::encode(std::vector<double>(20, 0.5), {10, 2});
  std::vector<double> big(20, 0.5);
  big[7] = 1e300;
  expect_refused({
      {"importance", "train --importance 1e39", "--importance", ""},
      {"data", "train --data " + write_file("big_data.npy", npy::encode(big, {10, 2})), "--data",
       "beyond float32's range"},
      {"init_W", "train --init-W " + write_file("big_W.npy", W), "--init-W",
       "beyond float32's range"},
  });
  (void)data;
}

TEST(Hostile, InputsMustBeRegularFilesWhoseSizeMatchesTheirHeader) {
  const std::string fifo = fresh_dir("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string directory = fresh_dir("a_directory");
  fs::create_directories(directory);
  expect_refused({
      {"dev_zero", "train --data /dev/zero", "--data", "not a regular file"},
      {"fifo", "train --data " + fifo, "--data", "not a regular file"},
      {"directory", "train --data " + directory, "--data", "not a regular file"},
      {"shape_1e30",
       "train --data " +
           write_file("huge.npy", npy_claiming("(" + std::string(31, '9') + ", 2)", 16)),
       "--data", "too large"},
      {"shape_wraps",
       "train --data " + write_file("wraps.npy", npy_claiming("(4611686018427387905, 4)", 16)),
       "--data", ""},
      {"shape_beyond_bytes",
       "train --data " + write_file("beyond.npy", npy_claiming("(100000000000000, 2)", 16)),
       "--data", "more values than the file has bytes"},
      {"short_data", "train --data " + write_file("short.npy", npy_claiming("(10, 2)", 16)),
       "--data", "needs 20 values"},
  });
}

// The peak memory of the children this test ran, in KiB.
long children_peak_kib() {
  struct rusage usage {};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  return usage.ru_maxrss;
}

// Runs that cannot fit are refused before anything big is allocated: under a 2 GiB limit each
// is one line naming the option, and no child process ever held more than 200 MiB.
TEST(Hostile, RunsTooBigForTheMachineAreRefusedUpFront) {
  expect_refused(
      {
          {"steps", "train --steps 2147483647", "--steps", "available"},
          {"points", "train --steps 1 --features 64 --points 16777216", "--points", "2.0 GiB"},
          {"eval_points", "train --data-mode fresh --features 4096 --eval-points 16777216",
           "--eval-points", "make --eval-points smaller"},
          {"shape", "train --features 4096 --hidden 1024", "--snapshot-every", "101 snapshots"},
          {"phase_diagram", "phase-diagram --backend cpu --seeds 50000 --chunk-models 100000000",
           "--chunk-models", "available"},
      },
      "SUPERPOSE_MEMORY_LIMIT=2147483648");
  expect_refused(
      {{"experiments_seeds_cap", "experiments --seeds 10000000", "--seeds", "[1, 1000000]"}});
  expect_refused(
      {{"disk", "sweep --seed 'range(0,100000)' --steps 1", "--seed", "the file system of"}},
      "SUPERPOSE_DISK_LIMIT=1000000");
  EXPECT_LT(children_peak_kib(), 200 * 1024) << "a refused run allocated what it refused";
}

TEST(Hostile, OutputThatCannotBeWrittenIsAFailure) {
  const Outcome r =
      run_shell(std::string(SUPERPOSE_BINARY) + " train --backend cpu --steps 5 --out " +
                fresh_dir("stdout_full") + " 2>&1 >/dev/full");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot write to standard output"), std::string::npos) << r.output;
}

// A cell whose every seed diverged has no best seed: its numbers are NaN, never 0.
TEST(Hostile, APhaseDiagramCellWhoseSeedsAllDivergedReportsNaN) {
  PhaseDiagramOptions o;
  o.importance_cells = 1;
  o.density_cells = 1;
  o.seeds = 2;
  const std::string dir = fresh_dir("diverged");
  fs::create_directories(dir);
  write_text(dir + "/results.csv",
             "model_id,status,eval_loss,train_loss,phase,W_0_0,W_0_1,b_0,b_1\n"
             "0,diverged,nan,nan,other,nan,nan,nan,nan\n1,diverged,inf,nan,other,nan,nan,nan,nan\n");
  const std::vector<PhaseCell> cells = aggregate_phase_diagram(o, RunDir::existing(dir, "test"));
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].best_model_id, -1);
  EXPECT_TRUE(std::isnan(cells[0].best_eval_loss));
  EXPECT_TRUE(std::isnan(cells[0].W1));
  EXPECT_NE(phase_diagram_csv(cells).find(",-1,nan,nan,diverged,nan,nan,nan,nan,"),
            std::string::npos)
      << phase_diagram_csv(cells);
}

}  // namespace
}  // namespace sp
