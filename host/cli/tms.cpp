// tms.cpp — `superpose tms` (host/cli/options.hpp: Subcommand).
#include "host/studies/tms.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"
#include "host/core/parse.hpp"

namespace sp::cli {

namespace {

// ------------------------------------------------------------------------------- tms
struct TmsCli {
  CommonOptions common;
  std::string scale = "auto", only;
  int steps = 0;
};

CLI::App* add_tms(CLI::App& app, TmsCli& o) {
  CLI::App* command = app.add_subcommand(
      "tms",
      "Toy Models of Superposition's main results in one command: each a sweep under --out "
      "(resumable), judged from its trained W against what the paper reports");
  add_common(command, o.common, "out/tms");
  command
      ->add_option("--scale", o.scale,
                   "auto (full on a GPU, else reduced) | reduced (minutes on 2 CPU cores) | full "
                   "(the paper's sizes)")
      ->check(non_empty())
      ->capture_default_str();
  command
      ->add_option("--only", o.only,
                   "a comma-separated subset: intro, tms-20-5, geometry, correlated, "
                   "anticorrelated, privileged-basis, collapse")
      ->check(non_empty(kNames));
  command->add_option("--steps", o.steps, "training steps (default: the paper's 10000)")
      ->transform(decimal(1, 1000000000));
  return command;
}

// How often every seed shows what the verdict judges on the best seed (tms.json's "outcomes").
nlohmann::json outcomes_json(const std::vector<TmsOutcome>& outcomes) {
  nlohmann::json out = nlohmann::json::array();
  for (const TmsOutcome& o : outcomes)
    out.push_back({{"what", o.what},
                   {"seeds", o.seeds},
                   {"shown", o.shown},
                   {"fraction", o.seeds ? static_cast<double>(o.shown) / o.seeds : 0.0}});
  return out;
}

// The results --only picks (all where it is not given), in the order given.
std::vector<TmsExperiment> chosen_results(const std::vector<TmsExperiment>& every,
                                          const std::string& only) {
  if (only.empty()) return every;
  std::vector<TmsExperiment> chosen;
  for (const std::string& name : split(only, ',')) {  // an empty name is refused
    const auto found = std::find_if(every.begin(), every.end(), [&](const auto& e) {
      return e.name == name || e.name.rfind(name + "-", 0) == 0;
    });
    if (name.empty() || found == every.end()) {
      std::vector<std::string> names;  // geometry-200-20 and geometry-400-30 are "geometry"
      for (const TmsExperiment& e : every)
        names.push_back(e.name.rfind("geometry", 0) == 0 ? "geometry" : e.name);
      throw UsageError(
          fmt::format("--only: unknown result '{}' (accepted: {})", name, fmt::join(names, ", ")));
    }
    chosen.push_back(*found);
  }
  return chosen;
}

// The directory is one tms run's (its results' scale, steps and arithmetic): a rerun resumes it,
// whichever results --only picks; each result is a sweep of its own below it.
std::unique_ptr<RunClaim> claim_tms_dir(const RunDir& out, const nlohmann::json& identity,
                                        bool overwrite) {
  return claim_run_dir(out, "run.json", identity, overwrite, [&](const nlohmann::json& existing) {
    if (existing.value("command", "") != "tms") return;  // the generic message names it
    throw UsageError(fmt::format(
        "--out: '{}' holds tms results of another run (scale {}, {} steps, {} arithmetic; this "
        "run: scale {}, {} steps, {}); choose another --out, or add --overwrite to replace them",
        out.path(), existing.value("scale", "?"), existing.value("steps", 0),
        existing.value("arithmetic", "?"), identity["scale"].get<std::string>(),
        identity["steps"].get<int>(), identity["arithmetic"].get<std::string>()));
  });
}

// Results an earlier run of this directory judged (a rerun with --only keeps the others).
std::map<std::string, nlohmann::json> earlier_verdicts(const RunDir& out) {
  std::map<std::string, nlohmann::json> judged;
  if (!out.wrote("tms.json")) return judged;
  const nlohmann::json earlier = out.read_json("tms.json");
  if (earlier.is_object() && earlier.contains("experiments") && earlier["experiments"].is_array())
    for (const auto& e : earlier["experiments"])
      if (e.is_object() && e.contains("name") && e["name"].is_string())
        judged[e["name"].get<std::string>()] = e;
  return judged;
}

int run_tms_command(const TmsCli& o) {
  const auto backends = open_backends(o.common, SplitOptions{});
  TmsScale scale = backends.front()->name() == "cuda" ? TmsScale::full : TmsScale::reduced;
  if (o.scale == "reduced") {
    scale = TmsScale::reduced;
  } else if (o.scale == "full") {
    scale = TmsScale::full;
  } else if (o.scale != "auto") {
    throw UsageError(
        fmt::format("--scale: unknown scale '{}' (accepted: auto, reduced, full)", o.scale));
  }
  const std::vector<TmsExperiment> every = tms_experiments(scale, o.steps);  // tms.json's order
  const std::vector<TmsExperiment> experiments = chosen_results(every, o.only);
  for (const TmsExperiment& e : experiments)
    check_sweep_resources(*backends.front(), e.spec, o.common);
  const std::string scale_name = scale == TmsScale::full ? "full" : "reduced";
  const RunDir out(o.common.out);
  const nlohmann::json identity = {{"command", "tms"},
                                   {"version", SUPERPOSE_VERSION},
                                   {"scale", scale_name},
                                   {"steps", most_steps(every.front().spec)},
                                   {"arithmetic", backends.front()->arithmetic()}};
  const auto claim = claim_tms_dir(out, identity, o.common.overwrite);
  std::map<std::string, nlohmann::json> judged = earlier_verdicts(out);
  nlohmann::json report = {{"command", "tms"},
                           {"version", SUPERPOSE_VERSION},
                           {"scale", scale_name},
                           {"backend", backends.front()->name()},
                           {"device", devices_text(backends)},
                           {"experiments", nlohmann::json::array()}};
  int64_t models = 0, work = 0;  // one progress over every result's sweep
  for (const TmsExperiment& e : experiments) {
    models += e.spec.model_count();
    work += sweep_work(e.spec);
  }
  progress().start(models, work);
  progress().outer = true;
  bool announced = false;
  int shown = 0;
  for (const TmsExperiment& e : experiments) {
    SweepRun run = sweep_run(o.common, SplitOptions{}, backends);
    run.after_claim = [&] {
      if (!announced) announce(o.common, *backends.front());
      announced = true;
    };
    run.extra_manifest["recipe"] = "tms";
    run.extra_manifest["tms"] = e.name;
    run.overwrite = false;  // the whole directory was replaced above, where asked
    const RunDir dir = out.subdir(e.name);
    const SweepOutcome outcome = run_sweep(e.spec, dir, "tms", run);
    const TmsVerdict verdict = judge_tms(e, dir);
    shown += verdict.shows;
    print_out(
        "{}: {}\n  {} models ({} diverged), trained in {:.1f} s{}\n", e.name, e.title,
        outcome.models, outcome.diverged, outcome.train_seconds,
        outcome.chunks_resumed ? fmt::format(" ({} chunks resumed)", outcome.chunks_resumed) : "");
    for (const std::string& line : verdict.lines) print_out("  {}\n", line);
    print_out("  shows what the paper reports: {}\n", verdict.shows ? "yes" : "NO");
    judged[e.name] = {{"name", e.name},
                      {"title", e.title},
                      {"dir", e.name},
                      {"shows", verdict.shows},
                      {"lines", verdict.lines},
                      {"outcomes", outcomes_json(verdict.outcomes)},
                      {"models", outcome.models},
                      {"diverged", outcome.diverged},
                      {"train_seconds", outcome.train_seconds}};
  }
  progress().outer = false;
  for (const TmsExperiment& e : every)
    if (judged.count(e.name)) report["experiments"].push_back(judged[e.name]);
  out.write("tms.json", report.dump(2) + "\n");
  const SweepSpec& recipe = experiments.front().spec;  // every result trains alike
  print_out(
      "{} of {} results show what the paper reports ({} scale{}; recipe tms: fresh "
      "batches of {}, {} steps, lr 1e-3, best seed of every cell on {} shared "
      "evaluation points)\nwrote {}/tms.json\n",
      shown, experiments.size(), scale == TmsScale::full ? "full" : "reduced",
      scale == TmsScale::full ? "" : ", the paper's on a GPU", recipe.base.batch,
      most_steps(recipe), recipe.base.eval_points, out.path());
  return 0;
}

}  // namespace

std::unique_ptr<Subcommand> tms_command() {
  return command_of<TmsCli>(add_tms, [](TmsCli& o, CLI::App&) { return run_tms_command(o); });
}

}  // namespace sp::cli
