#include "host/cli.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "host/analysis.hpp"
#include "host/backend.hpp"
#include "host/data.hpp"
#include "host/experiments.hpp"
#include "host/npy.hpp"
#include "host/run_dir.hpp"

namespace sp {

namespace {

struct CommonOptions {
  std::string backend = "auto";
  std::string out;
  int threads = 0;
};

void add_common(CLI::App* command, CommonOptions& common, const std::string& default_out) {
  common.out = default_out;
  command->add_option("--backend", common.backend, "auto | cuda | cpu | reference")
      ->capture_default_str();
  command->add_option("--out", common.out, "run directory")->capture_default_str();
  command->add_option("--threads", common.threads, "CPU threads for the cpu backend (0: all)")
      ->capture_default_str();
}

std::unique_ptr<Backend> open_backend(const CommonOptions& common) {
  if (common.threads < 0)
    throw UsageError(
        fmt::format("--threads: {} is not accepted (0 = all cores, or more)", common.threads));
  const BackendKind kind = parse_backend_kind(common.backend, "--backend");
  auto backend = make_backend(kind, common.threads);
  if (kind == BackendKind::automatic)
    fmt::print(stderr, "superpose: --backend auto chose {} ({})\n", backend->name(),
               backend->device());
  return backend;
}

std::vector<double> broadcast(const std::vector<double>& values, int n) {
  return values.size() == 1 ? std::vector<double>(n, values[0]) : values;
}

std::string shape_text(const std::vector<size_t>& shape) {
  std::string text;
  for (size_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "(" + text + (shape.size() == 1 ? ",)" : ")");
}

// ------------------------------------------------------------------------------- train
struct TrainOptions {
  CommonOptions common;
  std::string model = "relu", data_mode = "fixed";
  int features = 2, hidden = 1;
  std::vector<double> sparsity{0.0}, importance{1.0};
  double lr = 1e-3, eval_fraction = 0.2;
  int steps = 1000, points = 1000, eval_every = 50, snapshot_every = 10, batch = 1024,
      eval_points = 1000;
  uint64_t seed = 0;
  std::string data_file, init_W_file, init_b_file;
};

void add_train(CLI::App& app, TrainOptions& o) {
  CLI::App* train = app.add_subcommand("train", "train one model and write its run directory");
  add_common(train, o.common, "out/train");
  train->add_option("--model", o.model, "linear | relu")->capture_default_str();
  train->add_option("--features", o.features, "n, features")->capture_default_str();
  train->add_option("--hidden", o.hidden, "m, hidden dimensions")->capture_default_str();
  train->add_option("--sparsity", o.sparsity, "probability a feature is 0: one, or one per feature")
      ->delimiter(',')
      ->capture_default_str();
  train->add_option("--importance", o.importance, "loss weight: one, or one per feature")
      ->delimiter(',')
      ->capture_default_str();
  train->add_option("--lr", o.lr, "AdamW learning rate")->capture_default_str();
  train->add_option("--steps", o.steps, "training steps")->capture_default_str();
  train->add_option("--seed", o.seed, "the model's seed (data and initial W)")
      ->capture_default_str();
  train->add_option("--data-mode", o.data_mode, "fixed (the essay's) | fresh (Anthropic's)")
      ->capture_default_str();
  train->add_option("--points", o.points, "fixed: dataset size")->capture_default_str();
  train->add_option("--eval-fraction", o.eval_fraction, "fixed: share of points that evaluate")
      ->capture_default_str();
  train->add_option("--batch", o.batch, "fresh: samples per step")->capture_default_str();
  train->add_option("--eval-points", o.eval_points, "fresh: evaluation set size")
      ->capture_default_str();
  train->add_option("--eval-every", o.eval_every, "steps between evaluations (0: final only)")
      ->capture_default_str();
  train->add_option("--snapshot-every", o.snapshot_every, "steps between W, b snapshots (0: final)")
      ->capture_default_str();
  train->add_option("--data", o.data_file, "replay: dataset .npy (points x n, float32/float64)");
  train->add_option("--init-W", o.init_W_file, "replay: initial W .npy (m x n)");
  train->add_option("--init-b", o.init_b_file, "replay: initial b .npy (n)");
}

std::shared_ptr<const std::vector<double>> load_array(const std::string& path,
                                                      const std::string& option,
                                                      const std::vector<size_t>& expected,
                                                      bool any_rows) {
  npy::Array array = npy::load(path, option);
  bool ok = array.shape.size() == expected.size();
  for (size_t k = 0; ok && k < expected.size(); ++k)
    ok = (any_rows && k == 0) ? array.shape[0] >= 1 : array.shape[k] == expected[k];
  if (!ok) {
    std::vector<std::string> want;
    for (size_t k = 0; k < expected.size(); ++k)
      want.push_back(any_rows && k == 0 ? "points" : std::to_string(expected[k]));
    throw UsageError(fmt::format("{}: expected shape ({}{}), got {}", option, fmt::join(want, ", "),
                                 expected.size() == 1 ? "," : "", shape_text(array.shape)));
  }
  return std::make_shared<const std::vector<double>>(std::move(array.values));
}

int run_train(const TrainOptions& o) {
  GroupSpec group;
  group.n_features = o.features;
  group.n_hidden = o.hidden;
  group.mode = parse_data_mode(o.data_mode, "--data-mode");
  group.points = o.points;
  group.eval_fraction = o.eval_fraction;
  group.batch = o.batch;
  group.eval_points = o.eval_points;
  group.steps = o.steps;
  group.eval_every = o.eval_every;
  group.snapshot_every = o.snapshot_every;
  group.record_trajectories = true;
  ModelSpec model;
  model.seed = o.seed;
  model.kind = parse_model_kind(o.model, "--model");
  model.lr = o.lr;
  model.sparsity = broadcast(o.sparsity, o.features);
  model.importance = broadcast(o.importance, o.features);
  if (o.features < 1)  // before the shapes below use it
    validate(group);
  const auto n = static_cast<size_t>(o.features), m = static_cast<size_t>(o.hidden);
  if (!o.data_file.empty()) {
    model.data = load_array(o.data_file, "--data", {0, n}, true);
    group.points = static_cast<int>(model.data->size() / n);
  }
  if (!o.init_W_file.empty()) model.init_W = load_array(o.init_W_file, "--init-W", {m, n}, false);
  if (!o.init_b_file.empty()) model.init_b = load_array(o.init_b_file, "--init-b", {n}, false);
  group.models.push_back(model);
  validate(group);

  auto backend = open_backend(o.common);
  const RunDir dir(o.common.out);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<ModelResult> results = backend->train(group);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelResult& r = results[0];

  write_trajectories(dir, group, results);
  if (group.mode == DataMode::fixed)
    dir.write("data.npy", npy::encode(fixed_dataset(group, group.models[0]),
                                      {static_cast<size_t>(group.points), n}));
  std::vector<std::pair<std::string, std::string>> extra;
  if (o.features == 2 && o.hidden == 1)
    extra.push_back({"phase", analysis::phase_2to1(r.W[0], r.W[1])});
  dir.write("results.csv", results_csv({{0, &group, &group.models[0], &r, extra}}));
  nlohmann::json manifest = {{"command", "train"},
                             {"version", SUPERPOSE_VERSION},
                             {"backend", backend->name()},
                             {"device", backend->device()},
                             {"group", group_json(group)},
                             {"model",
                              {{"seed", model.seed},
                               {"model", to_string(model.kind)},
                               {"lr", model.lr},
                               {"sparsity", model.sparsity},
                               {"importance", model.importance},
                               {"data", o.data_file},
                               {"init_W", o.init_W_file},
                               {"init_b", o.init_b_file}}},
                             {"timings_s", {{"train", seconds}}}};
  dir.write("manifest.json", manifest.dump(2) + "\n");

  fmt::print(
      "trained 1 {} model ({} -> {}) for {} steps on {} in {:.3f} s: train loss {}, "
      "eval loss {}, status {}\n",
      to_string(model.kind), n, m, group.steps, backend->name(), seconds,
      format_number(r.train_loss), format_number(r.eval_loss), status_of(r));
  fmt::print("W = [{}], b = [{}]\nwrote {}/\n", fmt::join(r.W, ", "), fmt::join(r.b, ", "),
             dir.path());
  return r.finite ? 0 : 1;
}

// ------------------------------------------------------------------------------- experiments
struct ExperimentsCli {
  CommonOptions common;
  ExperimentsOptions options;
};

void add_experiments(CLI::App& app, ExperimentsCli& o) {
  CLI::App* command =
      app.add_subcommand("experiments", "the essay's six experiments, each over many seeds");
  add_common(command, o.common, "out/experiments");
  command->add_option("--seeds", o.options.seeds, "seeds per experiment")->capture_default_str();
  command
      ->add_option("--first-seed", o.options.first_seed, "seeds run first-seed, first-seed+1, ...")
      ->capture_default_str();
  command
      ->add_option("--example-seed", o.options.example_seed,
                   "the seed whose full run directory is written per experiment")
      ->capture_default_str();
  command
      ->add_option("--snapshot-every", o.options.snapshot_every,
                   "steps between W, b snapshots of the example runs")
      ->capture_default_str();
}

int run_experiments_command(const ExperimentsCli& o) {
  if (o.options.seeds < 1 || o.options.seeds > 10000000)
    throw UsageError(
        fmt::format("--seeds: {} is outside the accepted range [1, 10000000]", o.options.seeds));
  if (o.options.snapshot_every < 1)
    throw UsageError(
        fmt::format("--snapshot-every: {} is not accepted (1 or more)", o.options.snapshot_every));
  auto backend = open_backend(o.common);
  const RunDir dir(o.common.out);
  const auto t0 = std::chrono::steady_clock::now();
  const auto summaries = run_experiments(*backend, o.options, dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("{}", experiments_table(summaries));
  fmt::print("{} seeds x 6 experiments on {} ({}) in {:.2f} s; wrote {}/\n", o.options.seeds,
             backend->name(), backend->device(), seconds, dir.path());
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"superpose: trains toy models of superposition by the thousand"};
  app.set_version_flag("--version", std::string("superpose ") + SUPERPOSE_VERSION);
  app.require_subcommand(1);
  TrainOptions train;
  ExperimentsCli experiments;
  add_train(app, train);
  add_experiments(app, experiments);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "superpose: error: {}\n", e.what());
    return 2;
  }
  try {
    if (app.got_subcommand("train")) return run_train(train);
    if (app.got_subcommand("experiments")) return run_experiments_command(experiments);
  } catch (const UsageError& e) {
    fmt::print(stderr, "superpose: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "superpose: failed: {}\n", e.what());
    return 1;
  }
  return 2;
}

}  // namespace sp
