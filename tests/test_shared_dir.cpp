// A run directory in a folder others can write to (a cluster's /shared/sweeps), beside its owner's
// notes and notebooks (docs/run-directory.md): nothing outside --out is ever written, nothing
// superpose did not write is ever deleted, every command resumes, a merge trusts nothing, and what
// a run needs is bounded before it starts. Each case of the hostile-user report, as a user runs it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "host/core/recorder.hpp"
#include "host/io/run_dir.hpp"
#include "host/sweep/sweep.hpp"
#include "tests/shell.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

Outcome run(const std::string& arguments) { return run_superpose(arguments); }
std::string fresh_dir(const std::string& name) { return fresh_path("shared", name); }
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}
std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

const std::string kTrain = "train --backend cpu --steps 10 ";
// 6 chunks of 4 models.
const std::string kSweep =
    "sweep --backend cpu --threads 2 --features 5 --hidden 2 --data-mode fresh --batch 64 "
    "--steps 40 --seed 'range(0,12)' --density 'logspace(-1,0,2)' --chunk-models 4 ";

// A file outside every run directory, which nothing superpose does may change.
struct Victim {
  explicit Victim(const std::string& name) : path(fresh_dir("victim_" + name)) {
    write_text(path, "the victim's own bytes\n");
  }
  bool intact() const {
    return fs::is_regular_file(fs::symlink_status(path)) &&
           read_text(path) == "the victim's own bytes\n";
  }
  std::string path;
};

// ------------------------------------------------------------------------------- links

// A link planted where superpose keeps a file: refused with a line naming it, the file it points
// to untouched, and a dangling link's target never created.
TEST(SharedDir, ALinkWhereSuperposeKeepsAFileIsRefusedAndNothingOutsideIsWritten) {
  for (const char* name : {".superpose.lock", ".superpose.files", "run.json", "results.csv"}) {
    const Victim victim(std::string("link_") + name);
    const std::string dir = fresh_dir(std::string("link_dir_") + name);
    fs::create_directories(dir);
    fs::create_symlink(victim.path, fs::path(dir) / name);
    Outcome r = run(kTrain + "--out " + dir);
    EXPECT_NE(r.status, 0) << name << ": " << r.output;
    EXPECT_TRUE(contains(r.output, name)) << name << ": " << r.output;
    EXPECT_TRUE(victim.intact()) << name;
    // Dangling: the link's target does not exist, and must not be created.
    const std::string target = victim.path + ".never";
    fs::remove(target);  // a run of another build may have left it
    fs::remove(fs::path(dir) / name);
    fs::create_symlink(target, fs::path(dir) / name);
    r = run(kTrain + "--out " + dir);
    EXPECT_NE(r.status, 0) << name << ": " << r.output;
    EXPECT_FALSE(fs::exists(target)) << name << " created " << target;
  }
}

// The same after a run: a link put in place of one of its files makes the rerun fail naming it,
// without writing through it.
TEST(SharedDir, ALinkInPlaceOfARunsFileIsNeverWrittenThrough) {
  for (const char* name : {"results.csv", "W.npy", "manifest.json"}) {
    const Victim victim(std::string("after_") + name);
    const std::string dir = fresh_dir(std::string("after_dir_") + name);
    ASSERT_EQ(run(kTrain + "--out " + dir).status, 0);
    fs::remove(fs::path(dir) / name);
    fs::create_symlink(victim.path, fs::path(dir) / name);
    const Outcome r = run(kTrain + "--out " + dir);
    EXPECT_EQ(r.status, 1) << name << ": " << r.output;
    EXPECT_TRUE(contains(r.output,
                         std::string("is a symbolic link where superpose writes its own ") + name))
        << r.output;
    EXPECT_TRUE(victim.intact()) << name;
  }
}

// A hard link to another file where the lock belongs is not superpose's lock: refused.
TEST(SharedDir, AHardLinkWhereTheLockBelongsIsRefused) {
  const Victim victim("hard_link");
  const std::string dir = fresh_dir("hard_link_dir");
  fs::create_directories(dir);
  fs::create_hard_link(victim.path, fs::path(dir) / ".superpose.lock");
  const Outcome r = run(kTrain + "--out " + dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "is not superpose's lock file")) << r.output;
  EXPECT_TRUE(victim.intact());
}

// A sweep's directories: chunks/ a link to somewhere else is refused; a chunk's directory, its lock
// or its files replaced by links are never followed (the chunk is trained again, the link moved
// aside, or the run fails naming it), and nothing is written where they point.
TEST(SharedDir, LinksInASweepsChunksAreNeverFollowed) {
  const std::string elsewhere = fresh_dir("elsewhere");
  fs::create_directories(elsewhere);
  std::string dir = fresh_dir("chunks_link");
  fs::create_directories(dir);
  fs::create_symlink(elsewhere, fs::path(dir) / "chunks");
  Outcome r = run(kSweep + "--out " + dir);
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "'chunks', a symbolic link")) << r.output;
  EXPECT_TRUE(fs::is_empty(elsewhere));

  dir = fresh_dir("chunk_dir_link");
  ASSERT_EQ(run(kSweep + "--out " + dir).status, 0);
  const std::string expected = read_text(fs::path(dir) / "results.csv");
  fs::remove_all(fs::path(dir) / "chunks" / "000000000004");
  fs::create_symlink(elsewhere, fs::path(dir) / "chunks" / "000000000004");
  r = run(kSweep + "--out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "chunks/000000000004 (models 4 to 7) is trained again"))
      << r.output;
  EXPECT_TRUE(contains(r.output, "kept in chunks/000000000004.kept-1")) << r.output;
  EXPECT_TRUE(fs::is_empty(elsewhere));
  EXPECT_EQ(read_text(fs::path(dir) / "results.csv"), expected);

  const Victim victim("chunk_lock");
  fs::remove_all(fs::path(dir) / "chunks" / "000000000008");
  fs::remove(fs::path(dir) / "chunks" / ".000000000008.lock");
  fs::create_symlink(victim.path, fs::path(dir) / "chunks" / ".000000000008.lock");
  r = run(kSweep + "--out " + dir);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, ".000000000008.lock' is a symbolic link")) << r.output;
  EXPECT_TRUE(victim.intact());
}

// ------------------------------------------------------------------------------- --overwrite

// --overwrite removes exactly the files the previous run wrote, keeps everything else and says
// so; a directory superpose did not make is refused even with --overwrite, whatever its
// manifest.json says; a file superpose wrote and someone changed since stops it, before anything
// is removed.
TEST(SharedDir, OverwriteRemovesOnlyWhatSuperposeWrote) {
  const std::string dir = fresh_dir("overwrite");
  ASSERT_EQ(run(kTrain + "--out " + dir).status, 0);
  const fs::path root(dir);
  write_text(root / "notes.txt", "my notes");
  write_text(root / "analysis.ipynb", "{}");
  fs::create_directories(root / "plots");
  write_text(root / "plots" / "fig1.png", "my figure");
  Outcome r = run(kTrain + "--data-mode fresh --overwrite --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output,
                       "kept 3 that superpose did not write: analysis.ipynb, "
                       "notes.txt, plots/"))
      << r.output;
  EXPECT_EQ(read_text(root / "notes.txt"), "my notes");
  EXPECT_EQ(read_text(root / "analysis.ipynb"), "{}");
  EXPECT_EQ(read_text(root / "plots" / "fig1.png"), "my figure");
  EXPECT_FALSE(fs::exists(root / "data.npy"));  // the fixed run's, gone with it
  EXPECT_TRUE(contains(read_text(root / "run.json"), "\"data_mode\": \"fresh\""));

  // Changed since superpose wrote it: refused, nothing removed.
  write_text(root / "results.csv", "edited by hand\n");
  r = run(kTrain + "--overwrite --out " + dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "results.csv (changed since superpose wrote it)")) << r.output;
  EXPECT_TRUE(fs::exists(root / "W.npy"));
  EXPECT_EQ(read_text(root / "results.csv"), "edited by hand\n");

  // Another program's directory that merely has a manifest.json naming a superpose command.
  const std::string foreign = fresh_dir("foreign");
  fs::create_directories(fs::path(foreign) / "ckpt");
  write_text(fs::path(foreign) / "manifest.json", "{\"command\": \"train\"}");
  write_text(fs::path(foreign) / "model.pt", "weights");
  write_text(fs::path(foreign) / "ckpt" / "step100.pt", "more weights");
  r = run(kTrain + "--overwrite --out " + foreign);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "holds files superpose did not write")) << r.output;
  EXPECT_EQ(read_text(fs::path(foreign) / "model.pt"), "weights");
  EXPECT_EQ(read_text(fs::path(foreign) / "ckpt" / "step100.pt"), "more weights");
  EXPECT_EQ(read_text(fs::path(foreign) / "manifest.json"), "{\"command\": \"train\"}");
}

// Only what a record lists is superpose's: a run copied into the directory (with records of its
// own) is kept whole by --overwrite; a record's line naming an ordinary file a "temporary" removes
// nothing; and a file found where the lock belongs keeps its bytes (the holder's line is written
// only over a holder's line).
TEST(SharedDir, OnlyWhatARecordListsIsSuperposes) {
  const std::string dir = fresh_dir("records");
  ASSERT_EQ(run(kTrain + "--out " + dir).status, 0);
  const std::string copied = fresh_dir("records_copied");
  ASSERT_EQ(run(kTrain + "--seed 7 --out " + copied).status, 0);
  fs::copy(copied, fs::path(dir) / "old_run", fs::copy_options::recursive);
  write_text(fs::path(dir) / "notes.txt", "mine");
  std::ofstream(fs::path(dir) / ".superpose.files", std::ios::app)
      << "{\"temporary\":\"notes.txt\"}\n";
  Outcome r = run(kTrain + "--out " + dir);  // the same run: resumed, stale temporaries removed
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_text(fs::path(dir) / "notes.txt"), "mine");
  r = run(kTrain + "--seed 12 --overwrite --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "old_run/")) << r.output;
  EXPECT_EQ(read_text(fs::path(dir) / "old_run" / "results.csv"),
            read_text(fs::path(copied) / "results.csv"));

  const std::string lock = fresh_dir("lock_bytes");
  fs::create_directories(lock);
  write_text(fs::path(lock) / ".superpose.lock", "a file of mine that happens to have this name");
  ASSERT_EQ(run(kTrain + "--out " + lock).status, 0);
  EXPECT_EQ(read_text(fs::path(lock) / ".superpose.lock"),
            "a file of mine that happens to have this name");
}

// --overwrite asks for the run anew, even the same run: nothing of the earlier one is resumed.
TEST(SharedDir, OverwriteOfTheSameRunTrainsItAnew) {
  const std::string dir = fresh_dir("overwrite_same");
  ASSERT_EQ(run(kSweep + "--out " + dir).status, 0);
  Outcome r = run(kSweep + "--out " + dir);
  EXPECT_TRUE(contains(r.output, "6 resumed from an earlier run")) << r.output;
  r = run(kSweep + "--overwrite --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "6 chunks trained")) << r.output;
  EXPECT_FALSE(contains(r.output, "resumed")) << r.output;
}

// A sweep overwritten by another: its chunks, locks and records go, a file beside them stays.
TEST(SharedDir, OverwritingASweepKeepsWhatOthersPutInIt) {
  const std::string dir = fresh_dir("overwrite_sweep");
  ASSERT_EQ(run(kSweep + "--out " + dir).status, 0);
  write_text(fs::path(dir) / "chunks" / "README", "what these are");
  const Outcome r = run(kTrain + "--overwrite --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "kept 1 that superpose did not write: chunks/README")) << r.output;
  EXPECT_EQ(read_text(fs::path(dir) / "chunks" / "README"), "what these are");
  EXPECT_FALSE(fs::exists(fs::path(dir) / "chunks" / "000000000000"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "sweep.json"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "plan.json"));
}

// ------------------------------------------------------------------------------- tms

const std::string kTms = "tms --backend cpu --threads 2 --steps 30 --only intro ";

// tms claims its directory: the same command resumes (rerun, or after a kill), another is refused
// naming --overwrite, --overwrite replaces only superpose's files, a foreign directory is refused,
// and a second process is refused while the first runs.
TEST(SharedDir, TmsIsARunDirectoryThatResumes) {
  const std::string dir = fresh_dir("tms");
  Outcome r = run(kTms + "--out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string first = read_text(fs::path(dir) / "intro" / "results.csv");
  r = run(kTms + "--out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "chunks resumed")) << r.output;
  EXPECT_EQ(read_text(fs::path(dir) / "intro" / "results.csv"), first);
  // --only another result: added beside the first, both in tms.json.
  r = run("tms --backend cpu --threads 2 --steps 30 --only correlated --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string report = read_text(fs::path(dir) / "tms.json");
  EXPECT_TRUE(contains(report, "\"name\": \"intro\"") &&
              contains(report, "\"name\": \"correlated\""))
      << report;
  r = run("tms --backend cpu --steps 31 --only intro --out " + dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--overwrite")) << r.output;
  write_text(fs::path(dir) / "notes.txt", "mine");
  r = run("tms --backend cpu --steps 31 --only intro --overwrite --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_text(fs::path(dir) / "notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(fs::path(dir) / "correlated"));

  const std::string foreign = fresh_dir("tms_foreign");
  fs::create_directories(foreign);
  write_text(fs::path(foreign) / "tms.json", "someone else's");
  r = run(kTms + "--out " + foreign);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(read_text(fs::path(foreign) / "tms.json"), "someone else's");
}

TEST(SharedDir, AKilledTmsResumesAndASecondOneWaitsItsTurn) {
  const std::string dir = fresh_dir("tms_killed");
  const std::string slow = std::string(SUPERPOSE_BINARY) +
                           " tms --backend cpu --threads 1 --steps 3000 --only tms-20-5 --out " +
                           dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::setpgid(0, 0);  // its own process group: killed whole below
    ::execl("/bin/sh", "sh", "-c", ("exec " + slow + " > /dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  // Once it has claimed the directory, a second tms is refused at once.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!fs::exists(fs::path(dir) / "tms-20-5" / "sweep.json") &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const Outcome second = run(kTms + "--out " + dir);
  EXPECT_EQ(second.status, 2) << second.output;
  EXPECT_TRUE(contains(second.output, "is in use by another superpose")) << second.output;
  ::kill(child, SIGKILL);  // as a job's time limit or the OOM killer ends it
  int status = 0;
  ::waitpid(child, &status, 0);
  // Killed: the same command (fewer steps would be another run) resumes it to the end.
  const Outcome r = run("tms --backend cpu --threads 2 --steps 3000 --only tms-20-5 --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(fs::path(dir) / "tms.json"));
}

// ------------------------------------------------------------------------------- arithmetic

// The float64 reference and the float32 backends never resume or merge into each other: a chunk
// whose record names the other arithmetic is trained again, saying why; a shard on the reference
// is refused in a cpu sweep's directory.
TEST(SharedDir, ChunksOfAnotherArithmeticAreNeverMixed) {
  const std::string dir = fresh_dir("arithmetic");
  ASSERT_EQ(run(kSweep + "--shard 1/2 --out " + dir).status, 0);
  Outcome r =
      run(replace_all(kSweep, "--backend cpu", "--backend reference") + "--shard 2/2 --out " + dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output,
                       "trained in float32 arithmetic, and the reference backend trains "
                       "in float64"))
      << r.output;
  ASSERT_EQ(run(kSweep + "--shard 2/2 --out " + dir).status, 0);
  const fs::path record = fs::path(dir) / "chunks" / "000000000004" / "chunk.json";
  std::string text = read_text(record);
  text.replace(text.find("\"backend\": \"cpu\""), 16, "\"backend\": \"reference\"");
  write_text(record, text);
  r = run(kSweep + "--out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(contains(r.output,
                       "it was trained by the reference backend, in float64 arithmetic, "
                       "and this sweep is float32"))
      << r.output;
}

// Shards of one sweep share its plan: a shard with another --chunk-models is another sweep.
TEST(SharedDir, ShardsWithAnotherChunkingAreAnotherSweep) {
  const std::string dir = fresh_dir("chunking");
  ASSERT_EQ(run(kSweep + "--shard 1/2 --out " + dir).status, 0);
  const Outcome r =
      run(replace_all(kSweep, "--chunk-models 4", "--chunk-models 6") + "--shard 2/2 --out " + dir);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "this shard is not one of its shards")) << r.output;
  // The case that slipped through when the identity held the first chunk's size: the automatic
  // rule gives 279 models a chunk at 1000 steps and the whole 600 at 100, --chunk-models 279 the
  // same first chunk but 279 at 100 steps too — other plans, so other sweeps.
  auto spec_with = [](int64_t chunk_models) {
    SweepSpec spec;
    spec.base.n_features = 5;
    spec.base.n_hidden = 2;
    spec.base.mode = DataMode::fresh;
    spec.importance = std::vector<double>(5, 1.0);
    spec.chunk_models = chunk_models;
    SweepAxesText text;
    text.steps = "1000,100";
    text.seed = "range(0,600)";
    set_axes(spec, text);
    return spec;
  };
  const SweepSpec automatic = spec_with(0), explicit_279 = spec_with(279);
  EXPECT_EQ(largest_chunk(automatic), 600);
  EXPECT_EQ(chunk_count(automatic), 4);  // 279, 279, 42 at 1000 steps; 600 at 100
  EXPECT_EQ(chunk_count(explicit_279), 6);
  EXPECT_NE(sweep_identity(automatic, "sweep", "float32"),
            sweep_identity(explicit_279, "sweep", "float32"));
}

// ------------------------------------------------------------------------------- merge

// Random damage to a sharded sweep's records and chunks, then `superpose merge`: either the bytes
// one process writes, or nothing written (a property over 60 random edits).
TEST(SharedDir, AMergeWritesTheOneProcessBytesOrNothing) {
  const std::string whole = fresh_dir("merge_whole");
  ASSERT_EQ(run(kSweep + "--out " + whole).status, 0);
  const std::string expected = read_text(fs::path(whole) / "results.csv");
  const std::string pristine = fresh_dir("merge_pristine");
  ASSERT_EQ(run(kSweep + "--shard 1/2 --out " + pristine).status, 0);
  ASSERT_EQ(run(kSweep + "--shard 2/2 --out " + pristine).status, 0);
  std::vector<fs::path> targets;  // every record and chunk file, relative
  for (const auto& entry : fs::recursive_directory_iterator(pristine))
    if (entry.is_regular_file() && entry.path().filename() != ".superpose.lock")
      targets.push_back(fs::relative(entry.path(), pristine));
  std::sort(targets.begin(), targets.end());
  std::mt19937 random(20261207);
  int wrote = 0, refused = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const std::string dir = fresh_dir("merge_trial");
    fs::copy(pristine, dir, fs::copy_options::recursive);
    const fs::path target = fs::path(dir) / targets[random() % targets.size()];
    std::string text = read_text(target);
    switch (random() % 6) {
      case 0:  // a byte changed
        if (!text.empty()) text[random() % text.size()] ^= static_cast<char>(1 + random() % 127);
        break;
      case 1:  // cut short
        text.resize(text.empty() ? 0 : random() % text.size());
        break;
      case 2: {  // a line dropped
        const size_t at = text.find('\n', text.empty() ? 0 : random() % text.size());
        if (at != std::string::npos) text.erase(at, text.find('\n', at + 1) - at);
        break;
      }
      case 3: {  // a line duplicated
        const size_t at = text.rfind('\n', text.empty() ? 0 : random() % text.size());
        const size_t start = at == std::string::npos ? 0 : at + 1;
        const size_t end = text.find('\n', start);
        if (end != std::string::npos) text.insert(start, text.substr(start, end - start + 1));
        break;
      }
      case 4:  // emptied
        text.clear();
        break;
      default: {  // a number in it changed
        const size_t at =
            text.find_first_of("0123456789", text.empty() ? 0 : random() % text.size());
        if (at != std::string::npos)
          text[at] = text[at] == '9' ? '1' : static_cast<char>(text[at] + 1);
      }
    }
    write_text(target, text);
    const Outcome r = run("merge " + dir);
    const fs::path results = fs::path(dir) / "results.csv";
    if (fs::exists(results)) {
      ++wrote;
      EXPECT_EQ(read_text(results), expected)
          << "merge wrote other bytes after editing " << target << ": " << r.output;
      EXPECT_EQ(r.status, 0) << r.output;
    } else {
      ++refused;
      EXPECT_NE(r.status, 0) << "merge wrote nothing and said it succeeded, after editing "
                             << target << ": " << r.output;
      EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    }
  }
  EXPECT_GT(refused, 10);  // the edits were noticed
  EXPECT_GT(wrote, 0);     // and harmless ones (a record's temporary line) were not refused
}

// plan.json is compared, never trusted: its chunks emptied, a field injected, or the sweep's
// shape edited in sweep.json — nothing written, one line saying which file.
TEST(SharedDir, AMergeDerivesThePlanFromTheSweepsOptions) {
  const std::string pristine = fresh_dir("plan_pristine");
  ASSERT_EQ(run(kSweep + "--shard 1/1 --out " + pristine).status, 0);
  fs::remove(fs::path(pristine) / "results.csv");
  fs::remove(fs::path(pristine) / "manifest.json");
  auto edited = [&](const std::string& name, const std::string& file,
                    const std::function<std::string(std::string)>& edit) {
    const std::string dir = fresh_dir("plan_" + name);
    fs::copy(pristine, dir, fs::copy_options::recursive);
    write_text(fs::path(dir) / file, edit(read_text(fs::path(dir) / file)));
    const Outcome r = run("merge " + dir);
    EXPECT_EQ(r.status, 2) << name << ": " << r.output;
    EXPECT_TRUE(contains(r.output, file)) << name << ": " << r.output;
    EXPECT_FALSE(fs::exists(fs::path(dir) / "results.csv")) << name;
    EXPECT_FALSE(fs::exists(fs::path(dir) / "manifest.json")) << name;
  };
  edited("chunks", "plan.json",
         [](std::string t) { return replace_all(t, "\"chunks\": 6", "\"chunks\": 0"); });
  edited("inject", "plan.json", [](std::string t) {
    return replace_all(t, "\"extra\": {", "\"extra\": {\"shape\": [1], ");
  });
  edited("shape", "sweep.json",
         [](std::string t) { return replace_all(t, "\"models\": 24", "\"models\": 25"); });
  const std::string dir = fresh_dir("plan_intact");
  fs::copy(pristine, dir, fs::copy_options::recursive);
  EXPECT_EQ(run("merge " + dir).status, 0);
}

// ------------------------------------------------------------------------------- bounded

// What a sweep's own records take is counted before it starts: the chunks' directories, records
// and locks on disk; the axes' values in memory; and the records keep a generated axis as its
// formula, not ten million numbers.
TEST(SharedDir, TheSweepsOwnRecordsAreCountedUpFront) {
  const std::string small_chunks =
      "sweep --backend cpu --features 3 --hidden 1 --steps 2 --seed 'range(0,252)' "
      "--chunk-models 1 ";
  std::string dir = fresh_dir("disk_records");
  Outcome r = run_shell("SUPERPOSE_DISK_LIMIT=1000000 " + std::string(SUPERPOSE_BINARY) + " " +
                        small_chunks + "--out " + dir + " 2>&1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--chunk-models: this run writes about")) << r.output;
  EXPECT_TRUE(contains(r.output, "records and locks of 252 chunks")) << r.output;
  EXPECT_FALSE(fs::exists(dir));

  dir = fresh_dir("memory_axes");
  r = run_shell("SUPERPOSE_MEMORY_LIMIT=100000000 " + std::string(SUPERPOSE_BINARY) +
                " sweep --backend cpu --steps 1 --seed 'range(0,10000000)' --out " + dir + " 2>&1");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--seed: this run needs about")) << r.output;
  EXPECT_TRUE(contains(r.output, "the values of the sweep's axes")) << r.output;

  SweepSpec spec;
  SweepAxesText text;
  text.seed = "range(0,10000000)";
  text.density = "logspace(-3,0,10)";
  spec.chunk_models = 1;
  spec.importance = {1, 1};
  set_axes(spec, text);
  const std::string identity = sweep_identity(spec, "sweep", "float32").dump();
  EXPECT_LT(identity.size(), 2000u) << identity.substr(0, 300);
  // And it reads back to the same sweep: the same values, bit for bit.
  const SweepSpec back = sweep_from_identity(nlohmann::json::parse(identity));
  ASSERT_EQ(back.axes.size(), spec.axes.size());
  for (size_t k = 0; k < spec.axes.size(); ++k) EXPECT_EQ(back.axes[k].values, spec.axes[k].values);
}

// Without trajectories nothing is kept a step: --eval-every 1 lists no evaluation steps.
TEST(SharedDir, EvaluationStepsAreListedOnlyWhenRecorded) {
  GroupSpec group;
  group.steps = 1000000;
  group.eval_every = 1;
  group.snapshot_every = 1;
  ModelResult result;
  const TrajectoryRecorder unrecorded(group, result);
  EXPECT_TRUE(unrecorded.eval_steps_.empty());
  EXPECT_TRUE(unrecorded.snapshot_steps_.empty());
  group.record_trajectories = true;
  const TrajectoryRecorder recorded(group, result);
  EXPECT_EQ(recorded.eval_steps_.size(), 1000000u);
}

// A write that fails says why (the system's reason), not only which file.
TEST(SharedDir, AFailedWriteSaysWhy) {
  const std::string dir = fresh_dir("file_size");
  const Outcome r = run_shell("trap '' XFSZ; ulimit -f 4; " + std::string(SUPERPOSE_BINARY) + " " +
                              kSweep + "--out " + dir + " 2>&1");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "(File too large)")) << r.output;
}

// ------------------------------------------------------------------------------- never hangs

// A FIFO (or another non-regular file) where superpose reads a record: an error, at once.
TEST(SharedDir, AFifoWhereARecordBelongsIsAnErrorNotAHang) {
  for (const char* name : {"run.json", "sweep.json", "manifest.json", "plan.json"}) {
    const std::string dir = fresh_dir(std::string("fifo_") + name);
    ASSERT_EQ(run(kSweep + "--shard 1/1 --out " + dir).status, 0);
    fs::remove(fs::path(dir) / name);
    ASSERT_EQ(::mkfifo((fs::path(dir) / name).c_str(), 0644), 0);
    for (const std::string& command :
         {kSweep + "--out " + dir, "merge " + dir, kTrain + "--out " + dir}) {
      const Outcome r =
          run_shell("timeout 20 " + std::string(SUPERPOSE_BINARY) + " " + command + " 2>&1");
      EXPECT_NE(r.status, 124) << name << ": `" << command << "` hung";
      // The sweep never reads a run.json: it resumes; everything else refuses.
      if (std::string(name) != "run.json" || command.rfind("train", 0) == 0) {
        EXPECT_NE(r.status, 0) << name << ": " << command << ": " << r.output;
      }
    }
  }
}

// ------------------------------------------------------------------------------- one grammar

TEST(SharedDir, OneGrammarForListsAndIntegersNamingTheOption) {
  struct Case {
    std::string arguments, option;
  };
  for (const Case& c : std::vector<Case>{
           {"train --sparsity 0.5,", "--sparsity"},
           {"train --sparsity ,0.5", "--sparsity"},
           {"train --sparsity 0.5,,0.5", "--sparsity"},
           {"train --importance 1,", "--importance"},
           {"train --sparsity 0x1", "--sparsity"},
           {"sweep --seed 0x10", "--seed"},
           {"sweep --seed 1e3", "--seed"},
           {"sweep --steps 0x10", "--steps"},
           {"sweep --density inf", "--density"},
           {"train --data-mode fresh --eval-fraction 2", "--eval-fraction"},
           {"sweep --data-mode fresh --eval-fraction -1", "--eval-fraction"},
           {"phase-diagram --importance-range 0.1,10000000", "--importance-range"},
       }) {
    const std::string dir = fresh_dir("grammar");
    const Outcome refused = run_shell(std::string(SUPERPOSE_BINARY) + " " + c.arguments +
                                      " --backend cpu --out " + dir + " 2>&1");
    EXPECT_EQ(refused.status, 2) << c.arguments << ": " << refused.output;
    EXPECT_TRUE(contains(refused.output, "error: " + c.option + ":"))
        << c.arguments << ": " << refused.output;
    EXPECT_FALSE(fs::exists(dir)) << c.arguments;
  }
}

}  // namespace
}  // namespace sp
