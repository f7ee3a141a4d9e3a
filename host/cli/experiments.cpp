// experiments.cpp — `superpose experiments` (host/cli/options.hpp: Subcommand).
#include "host/studies/experiments.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"
#include "host/io/resources.hpp"

namespace sp::cli {

namespace {

// ------------------------------------------------------------------------------- experiments
struct ExperimentsCli {
  CommonOptions common;
  ExperimentsOptions options;
};

CLI::App* add_experiments(CLI::App& app, ExperimentsCli& o) {
  CLI::App* command =
      app.add_subcommand("experiments", "the essay's six experiments, each over many seeds");
  add_common(command, o.common, "out/experiments");
  command->add_option("--seeds", o.options.seeds, "seeds per experiment")
      ->transform(decimal(1, kMaxExperimentSeeds))
      ->capture_default_str();
  command
      ->add_option("--first-seed", o.options.first_seed, "seeds run first-seed, first-seed+1, ...")
      ->transform(decimal(0, 18446744073709551615.0L - kMaxExperimentSeeds))
      ->capture_default_str();
  command
      ->add_option("--example-seed", o.options.example_seed,
                   "the seed whose full run directory is written per experiment")
      ->transform(decimal(0, 18446744073709551615.0L))
      ->capture_default_str();
  command
      ->add_option("--snapshot-every", o.options.snapshot_every,
                   "steps between W, b snapshots of the example runs")
      ->transform(decimal(1, kIntMax))
      ->capture_default_str();
  return command;
}

int run_experiments_command(const ExperimentsCli& o) {
  if (o.options.snapshot_every < 1)
    throw UsageError(
        fmt::format("--snapshot-every: {} is not accepted (1 or more)", o.options.snapshot_every));
  auto backend = open_backend(o.common);
  {  // the largest experiment, a chunk at a time; every experiment's rows on disk
    GroupSpec largest = experiment_group(essay_experiments()[4], 0, 0);
    require_memory(training_memory(largest, std::min<int64_t>(o.options.seeds, kExperimentChunk),
                                   threads_of(o.common, *backend), "--seeds"));
    require_disk(output_disk(largest, 6 * int64_t{o.options.seeds}, false, "--seeds"),
                 o.common.out);
  }
  const RunDir dir(o.common.out);
  const auto claim = claim_run_dir(dir, "run.json",
                                   {{"command", "experiments"},
                                    {"version", SUPERPOSE_VERSION},
                                    {"arithmetic", backend->arithmetic()},
                                    {"seeds", o.options.seeds},
                                    {"first_seed", o.options.first_seed},
                                    {"example_seed", o.options.example_seed},
                                    {"snapshot_every", o.options.snapshot_every}},
                                   o.common.overwrite);
  announce(o.common, *backend);
  const auto t0 = std::chrono::steady_clock::now();
  const auto summaries = run_experiments(*backend, o.options, dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_out("{}", experiments_table(summaries));
  print_out("{} seeds x 6 experiments on {} ({}) in {:.2f} s; wrote {}/\n", o.options.seeds,
            backend->name(), backend->device(), seconds, dir.path());
  return 0;
}

}  // namespace

std::unique_ptr<Subcommand> experiments_command() {
  return command_of<ExperimentsCli>(
      add_experiments, [](ExperimentsCli& o, CLI::App&) { return run_experiments_command(o); });
}

}  // namespace sp::cli
