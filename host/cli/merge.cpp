// merge.cpp — `superpose merge` (host/cli/options.hpp: Subcommand).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"
#include "host/studies/phase_diagram.hpp"

namespace sp::cli {

namespace {

// ------------------------------------------------------------------------------- merge
struct MergeCli {
  std::string dir;
};

CLI::App* add_merge(CLI::App& app, MergeCli& o) {
  CLI::App* command = app.add_subcommand(
      "merge",
      "assemble a sweep (or phase diagram) trained in shards: once every chunk is present, "
      "DIR/results.csv - what one process writes, byte for byte - and DIR/manifest.json; "
      "otherwise the missing model ids (exit 1, nothing written)");
  command->add_option("DIR", o.dir, "the shards' shared --out")
      ->required()
      ->check(non_empty(kPath));
  return command;
}

int run_merge_command(const MergeCli& o) {
  const RunDir dir = RunDir::existing(o.dir, "merge");
  const auto t0 = std::chrono::steady_clock::now();
  // A phase diagram's options (plan.json) must describe the sweep its sweep.json is.
  auto check_phase_diagram = [&](const nlohmann::json& identity, const nlohmann::json& extra) {
    if (identity.value("command", "") != "phase-diagram") return;
    try {
      const PhaseDiagramOptions options =
          phase_diagram_from_json(extra.at("phase_diagram").at("options"));
      nlohmann::json expected = sweep_identity(phase_diagram_sweep(options), "phase-diagram",
                                               identity.at("arithmetic").get<std::string>());
      expected["version"] = identity.at("version");
      if (expected == identity) return;
    } catch (const std::exception&) {
    }
    throw UsageError(fmt::format(
        "merge: '{}'s phase-diagram options in plan.json do not describe the sweep in its "
        "sweep.json; rerun the phase-diagram command (without --shard) to write them again",
        dir.path()));
  };
  SweepOutcome outcome;
  try {
    outcome = merge_sweep(dir, check_phase_diagram);
  } catch (const MergeIncomplete& incomplete) {
    print_err("superpose: {}\n", incomplete.what());
    return 1;
  }
  if (outcome.manifest.value("command", "") == "phase-diagram") {
    const PhaseDiagramOptions options =
        phase_diagram_from_json(outcome.manifest.at("phase_diagram").at("options"));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_out("{}", finish_phase_diagram(dir, options, outcome.manifest, seconds));
  }
  print_out(
      "merged {} models from {} chunks; {} diverged{}\nwrote {}/results.csv and manifest.json\n",
      outcome.models, outcome.chunks, outcome.diverged,
      outcome.diverged ? " (status=diverged in results.csv)" : "", dir.path());
  return 0;
}

}  // namespace

std::unique_ptr<Subcommand> merge_command() {
  return command_of<MergeCli>(add_merge,
                              [](MergeCli& o, CLI::App&) { return run_merge_command(o); });
}

}  // namespace sp::cli
