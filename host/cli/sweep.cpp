// sweep.cpp — `superpose sweep` (host/cli/options.hpp: Subcommand).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"

namespace sp::cli {

namespace {

struct SweepCli {
  CommonOptions common;
  GroupOptions group;
  SweepOptionsText sweep;  // the axes and the rules (host/sweep/sweep.hpp: make_sweep_spec)
  SplitOptions split;
  bool trajectories = false;
};

CLI::App* add_sweep(CLI::App& app, SweepCli& o) {
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "train the Cartesian product of option axes; each axis is a value, a list a,b,c, "
      "linspace(a,b,k), logspace(a,b,k) or range(a,b[,step]); model ids are row-major over "
      "model, steps, lr, weight-decay, sparsity|density, varied-sparsity|varied-density, "
      "importance-decay|relative-importance, "
      "seed");
  add_common(sweep, o.common, "out/sweep");
  sweep
      ->add_option(
          "--model", o.sweep.axes.model,
          "axis: linear, relu, neuron (a ReLU hidden layer too: TMS's privileged basis), or "
          "several (linear,relu)")
      ->check(non_empty(kAxis))
      ->capture_default_str();
  sweep->add_option("--steps", o.sweep.axes.steps, "axis: training steps")
      ->check(non_empty(kAxis))
      ->capture_default_str();
  sweep->add_option("--lr", o.sweep.axes.lr, "axis: AdamW learning rate")
      ->check(non_empty(kAxis))
      ->capture_default_str();
  sweep
      ->add_option("--weight-decay", o.sweep.axes.weight_decay,
                   "axis: AdamW's weight decay (0: Adam)")
      ->check(non_empty(kAxis))
      ->capture_default_str();
  sweep
      ->add_option("--sparsity", o.sweep.axes.sparsity,
                   "axis: probability a feature is 0, all features (default 0)")
      ->check(non_empty(kAxis));
  sweep->add_option("--density", o.sweep.axes.density, "axis: 1 - sparsity (instead of --sparsity)")
      ->check(non_empty(kAxis));
  sweep
      ->add_option("--feature-sparsity", o.sweep.feature_sparsity,
                   "one sparsity per feature, comma-separated (not an axis)")
      ->check(non_empty(kList));
  sweep
      ->add_option("--varied-sparsity", o.sweep.axes.varied_sparsity,
                   "axis: the sparsity of one feature (--varied-feature), over the others' "
                   "(--sparsity, --density or --feature-sparsity)")
      ->check(non_empty(kAxis));
  sweep
      ->add_option("--varied-density", o.sweep.axes.varied_density,
                   "axis: 1 - the sparsity of --varied-feature (instead of --varied-sparsity)")
      ->check(non_empty(kAxis));
  sweep
      ->add_option("--varied-feature", o.sweep.varied_feature,
                   "the feature --varied-sparsity/--varied-density sets, 0-based (default: the "
                   "last)")
      ->transform(decimal(0, 4095));
  sweep->add_option("--seed", o.sweep.axes.seed, "axis: seeds, e.g. range(0,100)")
      ->check(non_empty(kAxis))
      ->capture_default_str();
  sweep
      ->add_option("--importance", o.sweep.importance,
                   "importance per feature, comma-separated, or one to broadcast (default 1)")
      ->check(non_empty(kList));
  sweep
      ->add_option("--importance-decay", o.sweep.axes.importance_decay,
                   "axis: importance_f = d^f (Anthropic's 0.9^f)")
      ->check(non_empty(kAxis));
  sweep
      ->add_option("--relative-importance", o.sweep.axes.relative_importance,
                   "axis: the importance of one feature (--relative-feature), the others 1")
      ->check(non_empty(kAxis));
  sweep
      ->add_option("--relative-feature", o.sweep.relative_feature,
                   "the feature --relative-importance sets, 0-based (default: the last)")
      ->transform(decimal(0, 4095));
  add_group_options(
      sweep, o.group,  // a sweep keeps only the final W, b unless asked
      {{"--snapshot-every", "with --trajectories: steps between W, b snapshots (0: final)"}});
  sweep->add_flag("--trajectories", o.trajectories,
                  "also write loss curves and W, b snapshots per chunk (.npy)");
  add_split_options(sweep, o.split);
  sweep
      ->add_option("--init-W", o.sweep.init_W_file,
                   "initial W of every model, .npy of shape (..., m, n): the leading dimensions "
                   "broadcast against the sweep's axes as numpy broadcasts (none: every model "
                   "the same)")
      ->check(non_empty(kNpy));
  sweep
      ->add_option("--init-b", o.sweep.init_b_file,
                   "initial b of every model, .npy of shape (..., n), broadcast as --init-W")
      ->check(non_empty(kNpy));
  sweep
      ->add_option("--data", o.sweep.data_file,
                   "fixed data: the dataset of every model, .npy of shape (..., points, n), "
                   "broadcast as --init-W (the last --eval-fraction of its rows evaluate)")
      ->check(non_empty(kNpy));
  sweep
      ->add_option("--cell-streams", o.sweep.cell_streams,
                   "shared: a seed draws the same initial W and data in every cell (common random "
                   "numbers, for paired comparisons; outcome counts across cells are correlated) | "
                   "independent: each cell's seeds their own streams (results.csv's seed is the "
                   "key, which train --seed replays)")
      ->check(non_empty())
      ->capture_default_str();
  sweep
      ->add_option("--chunk-models", o.sweep.chunk_models,
                   "models per chunk, the unit of resume (0: chosen from backend and work)")
      ->transform(decimal(0, 100000000))
      ->capture_default_str();
  return sweep;
}

int run_sweep_command(SweepCli o) {
  const std::vector<std::string> overridden =
      o.group.apply_recipe([&](int steps) { o.sweep.axes.steps = std::to_string(steps); });
  GroupSpec base = o.group.group();
  base.record_trajectories = o.trajectories;
  const SweepSpec spec = make_sweep_spec(base, o.sweep);
  const GroupSpec& g = spec.base;

  const auto backends = open_backends(o.common, o.split);
  SweepRun run = sweep_run(o.common, o.split, backends);
  check_sweep_resources(*backends.front(), spec, o.common, static_cast<int>(backends.size()));
  const RunDir dir(o.common.out);
  run.after_claim = [&] { announce(o.common, *backends.front()); };
  run.extra_manifest["recipe"] = o.group.recipe;
  const SweepOutcome outcome = run_sweep(spec, dir, "sweep", run);
  const std::string recipe_line = training_text(g, o.group.recipe, overridden, o.sweep.axes.steps,
                                                o.sweep.axes.lr, o.sweep.axes.weight_decay);
  if (!outcome.merged) {
    print_shard_outcome(outcome, run.shard, dir.path(), devices_text(backends), "sweep");
    print_out("{}", recipe_line);
    return 0;
  }
  print_sweep_outcome(outcome, devices_text(backends), dir.path());
  print_out("{}", recipe_line);
  return 0;
}

}  // namespace

std::unique_ptr<Subcommand> sweep_command() {
  return command_of<SweepCli>(add_sweep,
                              [](SweepCli& o, CLI::App&) { return run_sweep_command(o); });
}

}  // namespace sp::cli
