// A run directory as a careless or hostile user treats it (the command line, as a user runs it):
// a resumed sweep trusts only chunks that prove whole and their own, a directory belongs to one
// run at a time, and superpose never writes into another run's directory or files it did not make.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "tests/shell.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

Outcome run(const std::string& arguments) { return run_superpose(arguments); }

std::string fresh_dir(const std::string& name) { return fresh_path("rundir", name); }

std::string replace_first(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// 12 chunks of 4 models (the reliability report's shape, smaller models).
const std::string kSweep =
    "sweep --backend cpu --threads 2 --features 5 --hidden 2 --data-mode fresh --batch 64 "
    "--steps 60 --seed 'range(0,24)' --density 'logspace(-1,0,2)' --chunk-models 4 ";

class ResumeDamage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    whole_ = fresh_dir("whole_" + std::to_string(::getpid()));  // each test is its own process
    const Outcome r = run(kSweep + "--out " + whole_);
    ASSERT_EQ(r.status, 0) << r.output;
    expected_ = read_text(fs::path(whole_) / "results.csv");
  }
  // A copy of the finished sweep, damaged by `damage`, resumed with the same command: it must end
  // with the uninterrupted run's results.csv and say on stderr which chunk it trained again.
  void expect_retrained(const std::string& name, const std::function<void(const fs::path&)>& damage,
                        const std::string& why) {
    const fs::path dir = fresh_dir("damaged_" + name);
    fs::copy(whole_, dir, fs::copy_options::recursive);
    fs::remove(dir / ".superpose.lock");
    damage(dir / "chunks");
    const Outcome r = run(kSweep + "--out " + dir.string());
    ASSERT_EQ(r.status, 0) << name << ": " << r.output;
    EXPECT_EQ(read_text(dir / "results.csv"), expected_) << name;
    EXPECT_NE(r.output.find("chunks/000000000004 (models 4 to 7) is trained again: " + why),
              std::string::npos)
        << name << ": " << r.output;
    EXPECT_NE(r.output.find("11 resumed from an earlier run (1 found damaged or incomplete"),
              std::string::npos)
        << name << ": " << r.output;
  }
  static std::string whole_, expected_;
};
std::string ResumeDamage::whole_, ResumeDamage::expected_;

const std::string kChunk = "000000000004";

TEST_F(ResumeDamage, ResultsCutToTheHeaderAreTrainedAgain) {
  expect_retrained(
      "header",
      [](const fs::path& chunks) {
        const std::string text = read_text(chunks / kChunk / "results.csv");
        write_text(chunks / kChunk / "results.csv", text.substr(0, text.find('\n') + 1));
      },
      "results.csv is not the file that was written");
}

TEST_F(ResumeDamage, GarbageIsTrainedAgain) {
  expect_retrained(
      "garbage", [](const fs::path& chunks) { write_text(chunks / kChunk / "results.csv", "#$%"); },
      "results.csv is not the file");
}

TEST_F(ResumeDamage, AnEmptyFileIsTrainedAgain) {
  expect_retrained(
      "empty", [](const fs::path& chunks) { write_text(chunks / kChunk / "results.csv", ""); },
      "results.csv is not the file");
}

TEST_F(ResumeDamage, DuplicatedRowsAreTrainedAgain) {
  expect_retrained(
      "duplicated",
      [](const fs::path& chunks) {
        const std::string text = read_text(chunks / kChunk / "results.csv");
        write_text(chunks / kChunk / "results.csv", text + text.substr(text.find('\n') + 1));
      },
      "results.csv is not the file");
}

TEST_F(ResumeDamage, AnEditedLossACutLineARenamedColumnAreTrainedAgain) {
  expect_retrained(
      "edited",
      [](const fs::path& chunks) {  // one digit of the last row's analyses, 1 -> 0 or the like
        std::string text = read_text(chunks / kChunk / "results.csv");
        const size_t digit = text.find_last_of("123456789");
        text[digit] = static_cast<char>(text[digit] - 1);
        write_text(chunks / kChunk / "results.csv", text);
      },
      "results.csv is not the file");
  expect_retrained(
      "cut_line",
      [](const fs::path& chunks) {
        const std::string text = read_text(chunks / kChunk / "results.csv");
        write_text(chunks / kChunk / "results.csv", text.substr(0, text.size() - 10));
      },
      "results.csv is not the file");
  expect_retrained(
      "renamed",
      [](const fs::path& chunks) {
        write_text(
            chunks / kChunk / "results.csv",
            replace_first(read_text(chunks / kChunk / "results.csv"), "eval_loss", "evalloss"));
      },
      "results.csv is not the file");
}

// Another chunk's files copied in, its record with them: a whole chunk, but not this one.
TEST_F(ResumeDamage, AnotherChunksFilesAreTrainedAgain) {
  expect_retrained(
      "other_chunk",
      [](const fs::path& chunks) {
        for (const char* name : {"results.csv", "chunk.json"})
          fs::copy_file(chunks / "000000000000" / name, chunks / kChunk / name,
                        fs::copy_options::overwrite_existing);
      },
      "its chunk.json is for models 0 to 3");
  expect_retrained(
      "other_results_only",
      [](const fs::path& chunks) {
        fs::copy_file(chunks / "000000000000" / "results.csv", chunks / kChunk / "results.csv",
                      fs::copy_options::overwrite_existing);
      },
      "results.csv is not the file");
}

// A chunk whose record was never written (killed between its results and its record), or whose
// record is damaged; and a stale temporary of an interrupted write, which is removed.
TEST_F(ResumeDamage, AnUnfinishedChunkIsTrainedAgainAndTemporariesRemoved) {
  expect_retrained(
      "no_record", [](const fs::path& chunks) { fs::remove(chunks / kChunk / "chunk.json"); },
      "it has no chunk.json (it was interrupted before it was complete)");
  expect_retrained(
      "bad_record", [](const fs::path& chunks) { write_text(chunks / kChunk / "chunk.json", "{"); },
      "its chunk.json is damaged");
  // Interrupted writes: each temporary listed in its directory's record before it was made, as
  // superpose lists them; a file of the same shape that no record lists is someone else's, kept.
  const fs::path dir = fresh_dir("stale_temporary");
  fs::copy(whole_, dir, fs::copy_options::recursive);
  fs::remove(dir / ".superpose.lock");
  for (const fs::path& at : {dir / "chunks" / kChunk, dir}) {
    const std::string name = at == dir ? ".results.csv.tmp-999998-0badf00d"
                                       : ".results.csv.tmp-999999-0badf00d";
    write_text(at / name, "half a file");
    std::ofstream(at / ".superpose.files", std::ios::app) << "{\"temporary\":\"" << name << "\"}\n";
  }
  write_text(dir / ".manifest.json.tmp-999997-0badf00d", "not listed");
  const Outcome r = run(kSweep + "--out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir / "chunks" / kChunk / ".results.csv.tmp-999999-0badf00d"));
  EXPECT_FALSE(fs::exists(dir / ".results.csv.tmp-999998-0badf00d"));
  EXPECT_EQ(read_text(dir / ".manifest.json.tmp-999997-0badf00d"), "not listed");
  EXPECT_NE(r.output.find("12 resumed"), std::string::npos) << r.output;
  EXPECT_EQ(read_text(dir / "results.csv"), expected_);
}

// A finished sweep run again asking for trajectories trains what it lacks: every chunk, now with
// its .npy files, and the same results.
TEST_F(ResumeDamage, ARerunAskingForTrajectoriesTrainsThem) {
  const fs::path dir = fresh_dir("trajectories");
  fs::copy(whole_, dir, fs::copy_options::recursive);
  const Outcome r = run(kSweep + "--trajectories --out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("it has no trajectories, and --trajectories asks for them"),
            std::string::npos)
      << r.output;
  for (const auto& chunk : fs::directory_iterator(dir / "chunks"))
    if (chunk.is_directory()) {
      EXPECT_TRUE(fs::exists(chunk.path() / "train_loss.npy")) << chunk.path();
    }
  EXPECT_EQ(read_text(dir / "results.csv"), expected_);
}

// Two processes, one directory: the second is refused at once while the first holds it.
TEST(RunDirectory, ASecondProcessIsRefusedWhileTheFirstRuns) {
  const std::string dir = fresh_dir("two_writers");
  const std::string slow =
      "sweep --backend cpu --threads 1 --features 20 --hidden 5 --data-mode fresh --steps 3000 "
      "--seed 'range(0,40)' --chunk-models 1 --out " +
      dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string command =
        "exec " + std::string(SUPERPOSE_BINARY) + " " + slow + " >/dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(fs::path(dir) / "sweep.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto t0 = std::chrono::steady_clock::now();
  const Outcome other =
      run("sweep --backend cpu --features 20 --hidden 5 --lr 1e-2 --steps 10 --out " + dir);
  const Outcome same = run(slow);
  const Outcome train = run("train --backend cpu --steps 10 --out " + dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::kill(child, SIGKILL);
  int raw = 0;
  ::waitpid(child, &raw, 0);
  ASSERT_TRUE(WIFSIGNALED(raw)) << "the first sweep finished before the others ran";
  for (const Outcome& r : {other, same, train}) {
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("is in use by another superpose (pid"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  EXPECT_LT(seconds, 10.0) << "refused at once, not after waiting";
  EXPECT_FALSE(fs::exists(fs::path(dir) / "results.csv"));
}

// The report's case: two different sweeps started at the same moment into one --out, many times:
// one wins the directory, the other is refused, and results.csv is the winner's alone.
TEST(RunDirectory, TwoSweepsStartedTogetherNeverMix) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    const std::string dir = fresh_dir("together_" + std::to_string(attempt));
    const std::string a = std::string(SUPERPOSE_BINARY) +
                          " sweep --backend cpu --threads 1 --steps 30 --seed 'range(0,4)' "
                          "--chunk-models 1 --lr 1e-3 --out " +
                          dir;
    const std::string b = std::string(SUPERPOSE_BINARY) +
                          " sweep --backend cpu --threads 1 --steps 30 --seed 'range(0,4)' "
                          "--chunk-models 1 --lr 1e-2 --out " +
                          dir;
    const Outcome r = run_shell("(" + a + " > /dev/null 2>&1; echo a$? > " + dir + ".a) & (" + b +
                                " > /dev/null 2>&1; echo b$? > " + dir + ".b) & wait; cat " + dir +
                                ".a " + dir + ".b");
    const bool a_won = r.output.find("a0") != std::string::npos,
               b_won = r.output.find("b0") != std::string::npos;
    EXPECT_NE(a_won, b_won) << "attempt " << attempt << ": " << r.output;
    EXPECT_TRUE(r.output.find("a2") != std::string::npos ||
                r.output.find("b2") != std::string::npos)
        << r.output;
    const std::string csv = read_text(fs::path(dir) / "results.csv");
    const size_t rows = static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n'));
    EXPECT_EQ(rows, 5u) << "attempt " << attempt;
    // lr, then weight_decay (0.01): the winner's rows only.
    EXPECT_EQ(csv.find(a_won ? ",0.01,0.01," : ",0.001,0.01,"), std::string::npos)
        << "the loser's rows are in results.csv";
    EXPECT_NE(csv.find(a_won ? ",0.001,0.01," : ",0.01,0.01,"), std::string::npos) << csv;
  }
}

// train and experiments write only into an empty directory or their own run's; --overwrite
// replaces another superpose run, never files superpose did not write.
TEST(RunDirectory, AnotherRunsDirectoryIsRefusedAndOverwriteReplacesIt) {
  const std::string sweep = fresh_dir("owned_sweep");
  ASSERT_EQ(run("sweep --backend cpu --steps 20 --seed 'range(0,3)' --out " + sweep).status, 0);
  const std::string results = read_text(fs::path(sweep) / "results.csv");
  Outcome r = run("train --backend cpu --steps 10 --out " + sweep);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("holds another run (sweep.json of sweep)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(read_text(fs::path(sweep) / "results.csv"), results);
  r = run("experiments --backend cpu --seeds 2 --out " + sweep);
  EXPECT_EQ(r.status, 2) << r.output;

  // The same train twice: its own run, rewritten; a different train: refused.
  const std::string trained = fresh_dir("owned_train");
  ASSERT_EQ(run("train --backend cpu --steps 10 --out " + trained).status, 0);
  EXPECT_EQ(run("train --backend cpu --steps 10 --out " + trained).status, 0);
  r = run("train --backend cpu --steps 10 --data-mode fresh --out " + trained);
  EXPECT_EQ(r.status, 2) << r.output;
  // --overwrite: the fixed run's data.npy does not survive into the fresh run's directory.
  ASSERT_TRUE(fs::exists(fs::path(trained) / "data.npy"));
  r = run("train --backend cpu --steps 10 --data-mode fresh --overwrite --out " + trained);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(fs::path(trained) / "data.npy"));
  r = run("sweep --backend cpu --steps 20 --seed 'range(0,3)' --overwrite --out " + trained);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_text(fs::path(trained) / "results.csv"), results);

  // Files superpose did not write: refused, with or without --overwrite, and nothing created.
  const fs::path foreign = fresh_dir("foreign");
  fs::create_directories(foreign);
  write_text(foreign / "thesis.tex", "precious");
  for (const std::string extra : {"", "--overwrite "}) {
    r = run("train --backend cpu --steps 10 " + extra + "--out " + foreign.string());
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("holds files superpose did not write (such as 'thesis.tex')"),
              std::string::npos)
        << r.output;
  }
  EXPECT_EQ(read_text(foreign / "thesis.tex"), "precious");
  EXPECT_EQ(std::distance(fs::directory_iterator(foreign), fs::directory_iterator()), 1);
}

// ------------------------------------------------------------------------------- shards
// Shards of one sweep into one directory, then a merge: byte for byte the one-process run's
// results.csv, whether the shards ran one after another or all at once.
class Shards : public ResumeDamage {};

TEST_F(Shards, ThreeShardsThenAMergeEqualOneProcessOneAfterAnotherAndAtOnce) {
  for (const bool at_once : {false, true}) {
    const fs::path dir = fresh_dir(at_once ? "shards_at_once" : "shards_in_turn");
    std::string commands;
    for (int k = 1; k <= 3; ++k)
      commands += std::string(SUPERPOSE_BINARY) + " " + kSweep + "--shard " + std::to_string(k) +
                  "/3 --out " + dir.string() + (at_once ? " > /dev/null 2>&1 &\n" : " 2>&1 && ");
    const Outcome shards = run_shell(commands + (at_once ? "wait" : "true"));
    ASSERT_EQ(shards.status, 0) << shards.output;
    EXPECT_FALSE(fs::exists(dir / "results.csv")) << "a shard wrote the sweep's own files";
    const Outcome merged = run("merge " + dir.string());
    ASSERT_EQ(merged.status, 0) << merged.output;
    EXPECT_EQ(read_text(dir / "results.csv"), expected_) << (at_once ? "at once" : "in turn");
    // A plain rerun finds every chunk done and writes the same.
    fs::remove(dir / "results.csv");
    const Outcome plain = run(kSweep + "--out " + dir.string());
    ASSERT_EQ(plain.status, 0) << plain.output;
    EXPECT_NE(plain.output.find("0 chunks trained"), std::string::npos) << plain.output;
    EXPECT_EQ(read_text(dir / "results.csv"), expected_);
  }
}

TEST_F(Shards, AMergeWithAChunkMissingNamesItAndWritesNothing) {
  const fs::path dir = fresh_dir("shards_missing");
  for (int k : {1, 3})  // shard 2 never ran: chunks 1, 4, 7, 10 (models 4-7, 16-19, ...)
    ASSERT_EQ(run(kSweep + "--shard " + std::to_string(k) + "/3 --out " + dir.string()).status, 0);
  fs::remove_all(dir / "chunks" / "000000000000");  // and one of shard 1's went missing
  const Outcome r = run("merge " + dir.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("5 of 12 chunks are missing or not to be trusted, model ids 0-7, 16-19, "
                          "28-31, 40-43"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir / "results.csv"));
  EXPECT_FALSE(fs::exists(dir / "manifest.json"));
}

TEST_F(Shards, AShardOfAnotherSweepIsRefused) {
  const fs::path dir = fresh_dir("shards_other");
  ASSERT_EQ(run(kSweep + "--shard 1/2 --out " + dir.string()).status, 0);
  const Outcome r = run(kSweep + "--lr 3e-3 --shard 2/2 --out " + dir.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("holds a different sweep"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("not one of its shards"), std::string::npos) << r.output;
}

// --shard auto reads the shard from Slurm's or an MPI launcher's environment, and nowhere else.
TEST(ShardAuto, ReadsSlurmArraysSlurmTasksAndMpiLaunchers) {
  struct Case {
    std::string environment, expected;
  };
  const std::string options = "sweep --backend cpu --steps 5 --seed 'range(0,6)' --chunk-models 1 ";
  const std::vector<Case> cases = {
      {"SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_COUNT=3", "shard 3/3"},
      {"SLURM_ARRAY_TASK_ID=9 SLURM_ARRAY_TASK_MIN=5 SLURM_ARRAY_TASK_STEP=2 "
       "SLURM_ARRAY_TASK_COUNT=4",
       "shard 3/4"},
      {"SLURM_PROCID=1 SLURM_NTASKS=4", "shard 2/4"},
      {"OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2", "shard 1/2"},
      {"PMI_RANK=2 PMI_SIZE=3", "shard 3/3"},
  };
  for (const Case& c : cases) {
    const Outcome r = run_shell("env -u SLURM_ARRAY_TASK_ID -u SLURM_PROCID " + c.environment +
                                " " + SUPERPOSE_BINARY + " " + options + "--shard auto --out " +
                                fresh_dir("auto") + " 2>&1");
    EXPECT_EQ(r.status, 0) << c.environment << ": " << r.output;
    EXPECT_NE(r.output.find("sweep " + c.expected + ":"), std::string::npos)
        << c.environment << ": " << r.output;
  }
  const Outcome none =
      run_shell("env -u SLURM_ARRAY_TASK_ID -u SLURM_PROCID -u OMPI_COMM_WORLD_RANK -u PMI_RANK " +
                std::string(SUPERPOSE_BINARY) + " " + options + "--shard auto --out " +
                fresh_dir("auto_none") + " 2>&1");
  EXPECT_EQ(none.status, 2) << none.output;
  EXPECT_NE(none.output.find("--shard: auto finds no Slurm job array"), std::string::npos)
      << none.output;
  EXPECT_EQ(std::count(none.output.begin(), none.output.end(), '\n'), 1) << none.output;
  for (const std::string bad : {"0/3", "4/3", "1/0", "x/2", "3"}) {
    const Outcome r = run(options + "--shard " + bad + " --out " + fresh_dir("bad_shard"));
    EXPECT_EQ(r.status, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("--shard:"), std::string::npos) << bad << ": " << r.output;
  }
}

}  // namespace
}  // namespace sp
