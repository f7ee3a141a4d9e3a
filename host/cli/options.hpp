// options.hpp — what the subcommands of `superpose` share (host/cli/): the common options, the one
// grammar's validators (host/core/parse.hpp), the recipes, the group's options (derived from the
// field table, host/core/config.hpp), a sweep's split over shards and devices, and how a subcommand
// joins the command line (Subcommand). Each subcommand is a file of host/cli/.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/backends/backend.hpp"
#include "host/core/config.hpp"
#include "host/core/job.hpp"
#include "host/io/run_dir.hpp"
#include "host/sweep/sweep.hpp"

namespace sp::cli {

// A subcommand of `superpose`: its options added to the command line, then run if it was given.
class Subcommand {
 public:
  virtual ~Subcommand() = default;
  virtual void add(CLI::App& app) = 0;
  virtual int run() = 0;  // the exit status: 0 done, 1 failed (UsageError and others are thrown)
  CLI::App* command = nullptr;  // set by add
};
// A subcommand from its options, the function that adds them to the command line (returning its
// CLI::App) and the one that runs them.
template <class Options>
std::unique_ptr<Subcommand> command_of(CLI::App* (*add)(CLI::App&, Options&),
                                       int (*run)(Options&, CLI::App&)) {
  class Command final : public Subcommand {
   public:
    Command(CLI::App* (*adds)(CLI::App&, Options&), int (*runs)(Options&, CLI::App&))
        : add_(adds), run_(runs) {}
    void add(CLI::App& app) override { command = add_(app, options_); }
    int run() override { return run_(options_, *command); }

   private:
    CLI::App* (*add_)(CLI::App&, Options&);
    int (*run_)(Options&, CLI::App&);
    Options options_;
  };
  return std::make_unique<Command>(add, run);
}

std::unique_ptr<Subcommand> train_command();          // host/cli/train.cpp
std::unique_ptr<Subcommand> experiments_command();    // host/cli/experiments.cpp
std::unique_ptr<Subcommand> sweep_command();          // host/cli/sweep.cpp
std::unique_ptr<Subcommand> phase_diagram_command();  // host/cli/phase_diagram.cpp
std::unique_ptr<Subcommand> merge_command();          // host/cli/merge.cpp
std::unique_ptr<Subcommand> tms_command();            // host/cli/tms.cpp

struct CommonOptions {
  std::string backend = "auto";
  std::string out;
  int threads = 0;
  bool overwrite = false;
  CudaOptions cuda;  // --steps-per-launch, --fixed-rows (checked by make_backend)
};

// Integers are decimal, whole and within [lo, hi]; numbers are finite decimals; text options may
// not be empty (host/core/parse.hpp's one grammar, as CLI11 validators).
CLI::Validator decimal(long double lo, long double hi);
CLI::Validator number();
// What a text option holds (non_empty's kind): plain text, a sweep axis (a value, a list a,b,c or a
// generator), numbers comma-separated, names comma-separated, an .npy file, a path.
inline constexpr const char* kText = "TEXT";
inline constexpr const char* kAxis = "AXIS";
inline constexpr const char* kList = "LIST";
inline constexpr const char* kNames = "NAMES";
inline constexpr const char* kNpy = "NPY";
inline constexpr const char* kPath = "PATH";
CLI::Validator non_empty(const char* kind = kText);

constexpr long double kIntMax = 2147483647.0L;

void add_common(CLI::App* command, CommonOptions& common, const std::string& default_out);
// The backend, chosen and checked; nothing printed yet (announce, once every check has passed, so
// that an error is the only line a refused run prints).
std::unique_ptr<Backend> open_backend(const CommonOptions& common);
void announce(const CommonOptions& common, const Backend& backend);
int threads_of(const CommonOptions& common, const Backend& backend);
std::vector<double> broadcast(const std::vector<double>& values, int n);
std::string shape_text(const std::vector<size_t>& shape);

// ------------------------------------------------------------------------------- recipes
// The two papers' training recipes, one option away (--recipe); every setting a recipe names
// applies unless the command line gives it. The essay's is the default.
struct Recipe {
  const char* name;
  const char* data_mode;
  int steps, points, batch, eval_points;
};
inline constexpr Recipe kRecipes[] = {
    // Even Smaller Models of Superposition: one dataset of 1000 points per model, 800 of them
    // every (full-batch) step for 1000 steps, 200 evaluating. (--data-mode fresh: the same 10,000
    // shared evaluation points as the TMS recipe; docs/math.md says why.)
    {"essay", "fixed", 1000, 1000, 1024, 10000},
    // Toy Models of Superposition (and its notebook): a fresh batch of 1024 every step for 10,000
    // steps at lr 1e-3; evaluated on 10,000 points every model shares (docs/math.md).
    {"tms", "fresh", 10000, 1000, 1024, 10000},
};
inline const char* const kRecipeOptions[] = {"--data-mode", "--steps", "--points", "--batch",
                                             "--eval-points"};

const Recipe& find_recipe(const std::string& name);

// The options a group shares (shape, data rules, evaluation), for train and sweep alike: the
// recipe, and the field table's rows (host/core/config.hpp).
struct GroupOptions {
  CLI::App* command = nullptr;  // the subcommand they were parsed for: which were given
  std::string recipe = "essay";
  GroupSpec spec;  // the field table's options (host/core/config.hpp: SP_GROUP_FIELDS) land here
  std::map<std::string, std::string> text;  // ... and those of an enumerated type, as given

  bool given(const char* option) const { return command && command->count(option) > 0; }

  // The recipe's settings where the command line gave none; `steps` is the caller's (an int for
  // train, an axis for sweep). Returns the options given that the recipe also sets.
  std::vector<std::string> apply_recipe(const std::function<void(int)>& set_steps) {
    const Recipe& r = find_recipe(recipe);
    if (!given("--data-mode")) text["--data-mode"] = r.data_mode;
    if (!given("--points")) spec.points = r.points;
    if (!given("--batch")) spec.batch = r.batch;
    if (!given("--eval-points")) spec.eval_points = r.eval_points;
    if (!given("--steps")) set_steps(r.steps);
    std::vector<std::string> overridden;
    for (const char* option : kRecipeOptions)
      if (given(option)) overridden.push_back(option);
    return overridden;
  }

  GroupSpec group() const {
    GroupSpec g = spec;
    g.mode = parse_data_mode(text.at("--data-mode"), "--data-mode");
    g.lr_schedule = parse_lr_schedule(text.at("--lr-schedule"), "--lr-schedule");
    // Every value given is checked, in either data mode: an option of the other mode is ignored,
    // but never a value it would refuse.
    if (given("--eval-fraction") && !(g.eval_fraction >= 0.0 && g.eval_fraction < 1.0))
      throw UsageError(fmt::format("--eval-fraction: {} is outside the accepted range [0, 1)",
                                   format_number(g.eval_fraction)));
    return g;
  }
};

// The summary's line on how the models were trained: the recipe, and what it came to.
std::string training_text(const GroupSpec& g, const std::string& recipe,
                          const std::vector<std::string>& overridden, const std::string& steps,
                          const std::string& lr, const std::string& weight_decay);
// The group's options: the recipe, and every row of the field table that has an option
// (host/core/config.hpp: SP_GROUP_FIELDS), with its range and help (`help` overrides a row's).
void add_group_options(CLI::App* command, GroupOptions& o,
                       const std::map<std::string, std::string>& help = {});

// What a sweep-shaped command (sweep, phase-diagram) adds: which shard, which devices.
struct SplitOptions {
  std::string shard, devices;
};

void add_split_options(CLI::App* command, SplitOptions& o);
// The backends a sweep trains on: the one --backend names, or with --devices one cuda backend per
// device listed (all: every device here).
std::vector<std::unique_ptr<Backend>> open_backends(const CommonOptions& common,
                                                    const SplitOptions& split);
std::vector<Backend*> pointers(const std::vector<std::unique_ptr<Backend>>& backends);
std::string devices_text(const std::vector<std::unique_ptr<Backend>>& backends);
// The memory one call takes (a chunk, or on a GPU up to models_per_call() models of several) and
// the disk the whole sweep writes, before anything is.
void check_sweep_resources(const Backend& backend, const SweepSpec& spec,
                           const CommonOptions& common, int devices = 1);
SweepRun sweep_run(const CommonOptions& common, const SplitOptions& split,
                   const std::vector<std::unique_ptr<Backend>>& backends);
// A shard's lines: what it trained, and what is left to do.
void print_shard_outcome(const SweepOutcome& outcome, const Shard& shard, const std::string& path,
                         const std::string& devices, const std::string& command);
void print_sweep_outcome(const SweepOutcome& outcome, const std::string& devices,
                         const std::string& path);

}  // namespace sp::cli
