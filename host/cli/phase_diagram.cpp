// phase_diagram.cpp — `superpose phase-diagram` (host/cli/options.hpp: Subcommand).
#include "host/studies/phase_diagram.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"

namespace sp::cli {

namespace {

// ------------------------------------------------------------------------------- phase-diagram
struct PhaseCli {
  CommonOptions common;
  SplitOptions split;
  PhaseDiagramOptions options;
  std::vector<double> importance_range, density_range;
};

CLI::App* add_phase_diagram(CLI::App& app, PhaseCli& o) {
  CLI::App* command = app.add_subcommand(
      "phase-diagram",
      "Anthropic's 2->1 phase diagram: relative importance of feature 2 x feature density, "
      "several seeds per cell, each cell's phase from its lowest-eval-loss seed, compared with "
      "the closed-form winner. Defaults: 50 x 50 x 10, 5000 steps on a GPU; 40 x 40 x 4, 3000 "
      "steps on the CPU");
  add_common(command, o.common, "out/phase-diagram");
  command->add_option("--importance-cells", o.options.importance_cells, "cells along importance")
      ->transform(decimal(1, 10000));
  command->add_option("--density-cells", o.options.density_cells, "cells along density")
      ->transform(decimal(1, 10000));
  command->add_option("--seeds", o.options.seeds, "seeds per cell")->transform(decimal(1, 100000));
  command->add_option("--first-seed", o.options.first_seed, "the first seed")
      ->transform(decimal(0, 9007199254740992.0L - 100000));
  command
      ->add_option("--importance-range", o.importance_range,
                   "min,max relative importance of feature 2 (default 0.1,10)")
      ->delimiter(',')
      ->check(number())
      ->expected(2);
  command
      ->add_option("--density-range", o.density_range,
                   "min,max feature density 1 - sparsity (default 0.01,1)")
      ->delimiter(',')
      ->check(number())
      ->expected(2);
  command->add_option("--steps", o.options.steps, "training steps")
      ->transform(decimal(1, 1000000000));
  command->add_option("--batch", o.options.batch, "samples per step (fresh data)")
      ->transform(decimal(1, 1 << 24));
  command->add_option("--lr", o.options.lr, "AdamW learning rate (default 1e-3)")->check(number());
  command
      ->add_option("--eval-points", o.options.eval_points,
                   "evaluation samples per model (default 10000): the best-seed criterion")
      ->transform(decimal(0, 1 << 24));
  command->add_option("--chunk-models", o.options.chunk_models, "models per chunk (0: automatic)")
      ->transform(decimal(0, 100000000));
  add_split_options(command, o.split);
  return command;
}

int run_phase_diagram_command(PhaseCli& o, CLI::App& command) {
  const auto backends = open_backends(o.common, o.split);
  const Backend* backend = backends.front().get();
  // Defaults by backend, then what the user gave.
  PhaseDiagramOptions options = default_phase_diagram(backend->name());
  auto given = [&](const char* name) { return command.count(name) > 0; };
  if (given("--importance-cells")) options.importance_cells = o.options.importance_cells;
  if (given("--density-cells")) options.density_cells = o.options.density_cells;
  if (given("--seeds")) options.seeds = o.options.seeds;
  if (given("--first-seed")) options.first_seed = o.options.first_seed;
  if (given("--steps")) options.steps = o.options.steps;
  if (given("--batch")) options.batch = o.options.batch;
  if (given("--lr")) options.lr = o.options.lr;
  if (given("--eval-points")) options.eval_points = o.options.eval_points;
  if (given("--chunk-models")) options.chunk_models = o.options.chunk_models;
  if (given("--importance-range")) {
    options.importance_min = o.importance_range[0];
    options.importance_max = o.importance_range[1];
  }
  if (given("--density-range")) {
    options.density_min = o.density_range[0];
    options.density_max = o.density_range[1];
  }
  if (options.chunk_models < 0)
    throw UsageError(fmt::format("--chunk-models: {} is not accepted (0 = automatic, or more)",
                                 options.chunk_models));
  const SweepSpec spec = phase_diagram_sweep(options);
  {
    GroupSpec probe = spec.base;
    probe.models.push_back(spec.model(0, &probe.steps));
    validate(probe);
  }
  check_sweep_resources(*backend, spec, o.common, static_cast<int>(backends.size()));
  SweepRun run = sweep_run(o.common, o.split, backends);
  const RunDir dir(o.common.out);
  const auto t0 = std::chrono::steady_clock::now();
  run.extra_manifest = {
      {"phase_diagram",
       {{"importance_cells", options.importance_cells},
        {"density_cells", options.density_cells},
        {"seeds", options.seeds},
        {"importance_range", {options.importance_min, options.importance_max}},
        {"density_range", {options.density_min, options.density_max}},
        {"options", phase_diagram_json(options)},
        {"aggregation", "per cell, the seed with the lowest eval_loss among those not diverged"},
        {"closed_form",
         "per sample summed over features: ignored r(p/3 - p^2/4), dedicated p/3 - p^2/4, "
         "antipodal (1+r)p^2/6; phase_diagram.csv halves them to results.csv's units"},
        {"far_from_boundary", "closed-form runner-up >= 2.5x the winner's loss"}}}};
  run.after_claim = [&] { announce(o.common, *backend); };
  const SweepOutcome outcome = run_sweep(spec, dir, "phase-diagram", run);
  if (!outcome.merged) {
    print_shard_outcome(outcome, run.shard, dir.path(), devices_text(backends), "phase-diagram");
    return 0;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string summary = finish_phase_diagram(dir, options, outcome.manifest, seconds);
  const size_t agreement = summary.rfind("best-seed");
  print_out("{}", summary.substr(0, agreement));
  print_out(
      "phase diagram: {} x {} cells x {} seeds = {} models, {} steps of batch {}, on {} in "
      "{:.1f} s{}; {} diverged\n",
      options.density_cells, options.importance_cells, options.seeds, outcome.models, options.steps,
      options.batch, devices_text(backends), seconds,
      outcome.chunks_resumed ? fmt::format(" ({} chunks resumed)", outcome.chunks_resumed) : "",
      outcome.diverged);
  print_out("{}wrote {}/phase_diagram.csv, results.csv, manifest.json\n", summary.substr(agreement),
            dir.path());
  return 0;
}

}  // namespace

std::unique_ptr<Subcommand> phase_diagram_command() {
  return command_of<PhaseCli>(add_phase_diagram, [](PhaseCli& o, CLI::App& command) {
    return run_phase_diagram_command(o, command);
  });
}

}  // namespace sp::cli
