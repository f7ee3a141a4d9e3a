// train.cpp — `superpose train` (host/cli/options.hpp: Subcommand).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "host/cli/options.hpp"
#include "host/core/data.hpp"
#include "host/core/parse.hpp"
#include "host/io/npy.hpp"
#include "host/io/resources.hpp"
#include "host/studies/tms.hpp"  // column_norm, kRepresented

namespace sp::cli {

namespace {

// ------------------------------------------------------------------------------- train
struct TrainOptions {
  CommonOptions common;
  GroupOptions group;
  std::string model = "relu";
  std::string sparsity = "0",
              importance = "1";  // lists (host/core/parse.hpp), one or one per feature
  double lr = 1e-3, weight_decay = 0.01;
  int steps = 1000;
  uint64_t seed = 0;
  std::string data_file, init_W_file, init_b_file;
};

CLI::App* add_train(CLI::App& app, TrainOptions& o) {
  CLI::App* train = app.add_subcommand("train", "train one model and write its run directory");
  add_common(train, o.common, "out/train");
  train
      ->add_option("--model", o.model,
                   "linear | relu | neuron (a ReLU hidden layer too, h = ReLU(W x): TMS's "
                   "privileged basis)")
      ->check(non_empty())
      ->capture_default_str();
  train
      ->add_option("--sparsity", o.sparsity,
                   "probability a feature is 0: one, or one per feature (a,b,...)")
      ->check(non_empty(kList))
      ->capture_default_str();
  train->add_option("--importance", o.importance, "loss weight: one, or one per feature (a,b,...)")
      ->check(non_empty(kList))
      ->capture_default_str();
  train->add_option("--lr", o.lr, "AdamW learning rate")->check(number())->capture_default_str();
  train->add_option("--weight-decay", o.weight_decay, "AdamW's weight decay (0: Adam)")
      ->check(number())
      ->capture_default_str();
  train->add_option("--steps", o.steps, "training steps")
      ->transform(decimal(1, kIntMax))
      ->capture_default_str();
  train->add_option("--seed", o.seed, "the model's seed (data and initial W)")
      ->transform(decimal(0, 18446744073709551615.0L))
      ->capture_default_str();
  o.group.spec.snapshot_every = 10;  // train keeps snapshots for its pictures unless told
  add_group_options(train, o.group);
  train->add_option("--data", o.data_file, "replay: dataset .npy (points x n, float32/float64)")
      ->check(non_empty(kNpy));
  train->add_option("--init-W", o.init_W_file, "replay: initial W .npy (m x n)")
      ->check(non_empty(kNpy));
  train->add_option("--init-b", o.init_b_file, "replay: initial b .npy (n)")
      ->check(non_empty(kNpy));
  return train;
}

std::shared_ptr<const std::vector<double>> load_array(const std::string& path,
                                                      const std::string& option,
                                                      const std::vector<size_t>& expected,
                                                      bool any_rows) {
  // The file is read whole and converted to double: it may take a quarter of the memory there is.
  npy::Array array = npy::load(path, option, available_memory_bytes() / 4);
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

int run_train(TrainOptions o) {
  const std::vector<std::string> overridden =
      o.group.apply_recipe([&](int steps) { o.steps = steps; });
  GroupSpec group = o.group.group();
  group.steps = o.steps;
  group.record_trajectories = true;
  validate(group);  // the shape first: the vectors below are sized by it
  ModelSpec model;
  model.seed = o.seed;
  model.kind = parse_model_kind(o.model, "--model");
  model.lr = o.lr;
  model.weight_decay = o.weight_decay;
  model.sparsity = broadcast(parse_list(o.sparsity, "--sparsity"), group.n_features);
  model.importance = broadcast(parse_list(o.importance, "--importance"), group.n_features);
  const auto n = static_cast<size_t>(group.n_features), m = static_cast<size_t>(group.n_hidden);
  if (!o.data_file.empty()) {
    model.data = load_array(o.data_file, "--data", {0, n}, true);
    group.points = static_cast<int>(model.data->size() / n);
  }
  if (!o.init_W_file.empty()) model.init_W = load_array(o.init_W_file, "--init-W", {m, n}, false);
  if (!o.init_b_file.empty()) model.init_b = load_array(o.init_b_file, "--init-b", {n}, false);
  group.models.push_back(model);
  validate(group);
  require_memory(training_memory(group, 1, 1, "--steps"));
  require_disk(output_disk(group, 1, false, "--steps"), o.common.out);

  auto backend = open_backend(o.common);
  const nlohmann::json model_json = {{"seed", model.seed},
                                     {"model", to_string(model.kind)},
                                     {"lr", model.lr},
                                     {"weight_decay", model.weight_decay},
                                     {"sparsity", model.sparsity},
                                     {"importance", model.importance},
                                     {"data", o.data_file},
                                     {"init_W", o.init_W_file},
                                     {"init_b", o.init_b_file}};
  const RunDir dir(o.common.out);
  const auto claim = claim_run_dir(dir, "run.json",
                                   {{"command", "train"},
                                    {"version", SUPERPOSE_VERSION},
                                    {"arithmetic", backend->arithmetic()},
                                    {"group", group_json(group)},
                                    {"model", model_json}},
                                   o.common.overwrite);
  announce(o.common, *backend);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<ModelResult> results = backend->train(group);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const ModelResult& r = results[0];

  write_trajectories(dir, group, results);
  if (group.mode == DataMode::fixed)
    dir.write("data.npy", npy::encode(fixed_dataset(group, group.models[0]),
                                      {static_cast<size_t>(group.points), n}));
  dir.write("results.csv",
            results_csv({{0, &group, &group.models[0], &r, analysis_columns(group, r)}}));
  nlohmann::json manifest = {{"command", "train"},         {"version", SUPERPOSE_VERSION},
                             {"backend", backend->name()}, {"device", backend->device()},
                             {"recipe", o.group.recipe},   {"group", group_json(group)},
                             {"model", model_json},        {"timings_s", {{"train", seconds}}}};
  dir.write("manifest.json", manifest.dump(2) + "\n");

  print_out(
      "trained 1 {} model ({} -> {}) for {} steps on {} in {:.3f} s: train loss {}, "
      "eval loss {}, status {}\n",
      to_string(model.kind), n, m, group.steps, backend->name(), seconds,
      format_number(r.train_loss), format_number(r.eval_loss), status_of(r));
  print_out("{}", training_text(group, o.group.recipe, overridden, std::to_string(group.steps),
                                format_number(model.lr), format_number(model.weight_decay)));
  // Small models' parameters in full (the essay's 2 -> 1 W = [w1, w2]); a larger model's as a
  // summary — every entry is in results.csv (W_<j>_<f>, b_<f>).
  if (r.W.size() + r.b.size() <= 16) {
    print_out("W = [{}], b = [{}]\n", fmt::join(r.W, ", "), fmt::join(r.b, ", "));
  } else {
    double frobenius = 0;
    for (double w : r.W) frobenius += w * w;
    int represented = 0;
    for (int f = 0; f < group.n_features; ++f)
      represented += tms::column_norm(r.W, group.n_features, group.n_hidden, f) > tms::kRepresented;
    const auto [b_lo, b_hi] = std::minmax_element(r.b.begin(), r.b.end());
    print_out(
        "W: {} x {}, ‖W‖_F = {}, {} of {} features with ‖W_f‖ > 0.5; b in [{}, {}] (every "
        "entry in results.csv: W_<j>_<f>, b_<f>)\n",
        m, n, format_number(std::sqrt(frobenius)), represented, n, format_number(*b_lo),
        format_number(*b_hi));
  }
  print_out("wrote {}/\n", dir.path());
  return r.finite ? 0 : 1;
}

}  // namespace

std::unique_ptr<Subcommand> train_command() {
  return command_of<TrainOptions>(add_train,
                                  [](TrainOptions& o, CLI::App&) { return run_train(o); });
}

}  // namespace sp::cli
