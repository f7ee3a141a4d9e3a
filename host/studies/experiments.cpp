#include "host/studies/experiments.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "host/core/data.hpp"
#include "host/core/job.hpp"
#include "host/io/npy.hpp"
#include "host/sweep/sweep.hpp"

namespace sp {

const std::vector<Experiment>& essay_experiments() {
  static const std::vector<Experiment> experiments = {
      {1,
       "exp1-linear-dense-equal",
       "Equal importances, no sparsity",
       "a rank-1 projection through the centre: |W|^2 within 10% of 1, centre reconstructed within "
       "0.05",
       ModelKind::linear,
       0.0,
       {1.0, 1.0},
       1e-3,
       1500},
      {2,
       "exp2-linear-dense-unequal",
       "Unequal importances, no sparsity",
       "W along feature 1 (|W2| < 0.1 |W1|) and b2 within 0.05 of 0.5",
       ModelKind::linear,
       0.0,
       {1.0, 0.1},
       1e-3,
       3300},
      {3,
       "exp3-linear-sparse-unequal",
       "Sparse data, unequal importances",
       "W along feature 1 (|W2| < 0.1 |W1|) and b2 within 0.03 of the sparse mean 0.1",
       ModelKind::linear,
       0.8,
       {1.0, 0.1},
       1e-3,
       2500},
      {4,
       "exp4-linear-sparse-equal",
       "Sparse data, equal importances",
       "no commitment to one feature: min(|W1|,|W2|) > 0.1 max(|W1|,|W2|)",
       ModelKind::linear,
       0.8,
       {1.0, 1.0},
       1e-3,
       10000},
      {5,
       "exp5-relu-sparse-equal",
       "Sparse data + ReLU",
       "antipodal: W1 W2 < 0, min(|W1|,|W2|) > 0.5 max, and loss below half of experiment 4's "
       "median",
       ModelKind::relu,
       0.8,
       {1.0, 1.0},
       3e-4,
       10000},
      {6,
       "exp6-relu-dense-equal",
       "Dense data + ReLU",
       "no antipodal split: not (W1 W2 < 0 with min(|W1|,|W2|) > 0.5 max)",
       ModelKind::relu,
       0.0,
       {1.0, 1.0},
       1e-3,
       2500},
  };
  return experiments;
}

GroupSpec experiment_group(const Experiment& e, uint64_t first_seed, int seeds) {
  GroupSpec g;
  g.n_features = 2;
  g.n_hidden = 1;
  g.mode = DataMode::fixed;
  g.points = 1000;
  g.eval_fraction = 0.2;
  g.eval_every = 50;
  g.steps = e.steps;
  for (int i = 0; i < seeds; ++i) {
    ModelSpec model;
    model.seed = first_seed + static_cast<uint64_t>(i);
    model.kind = e.kind;
    model.lr = e.lr;
    model.sparsity.assign(2, e.sparsity);
    model.importance = e.importance;
    g.models.push_back(model);
  }
  return g;
}

bool shows_outcome(const Experiment& e, const ModelResult& r, double linear_sparse_median_loss) {
  if (!r.finite) return false;
  const double w1 = r.W[0], w2 = r.W[1], a = std::abs(w1), c = std::abs(w2);
  const double big = std::max(a, c), small = std::min(a, c);
  const bool antipodal = w1 * w2 < 0 && small > 0.5 * big;
  switch (e.number) {
    case 1: {  // y(centre) = Wᵀ W centre + b for the linear model
      const double norm_sq = w1 * w1 + w2 * w2, h = 0.5 * (w1 + w2);
      const double y1 = w1 * h + r.b[0], y2 = w2 * h + r.b[1];
      return std::abs(norm_sq - 1) < 0.1 && std::hypot(y1 - 0.5, y2 - 0.5) < 0.05;
    }
    case 2:
      return c < 0.1 * a && std::abs(r.b[1] - 0.5) < 0.05;
    case 3:
      return c < 0.1 * a && std::abs(r.b[1] - 0.1) < 0.03;
    case 4:
      return small > 0.1 * big;
    case 5:
      return antipodal && r.train_loss < 0.5 * linear_sparse_median_loss;
    case 6:
      return !antipodal;
    default:
      return false;
  }
}

namespace {

double median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

// What an experiment's summary needs of its models, kept a few numbers each while the models
// themselves are trained and written a chunk at a time.
struct Tally {
  int models = 0, diverged = 0, with_outcome = 0;
  std::vector<double> train, eval;  // of the models that did not diverge
};

ExperimentSummary summarise(const Experiment& e, const Tally& tally) {
  ExperimentSummary s;
  s.experiment = &e;
  s.models = tally.models;
  s.diverged = tally.diverged;  // never averaged in: counted apart
  s.with_outcome = tally.with_outcome;
  const std::vector<double>& train = tally.train;
  const std::vector<double>& eval = tally.eval;
  if (!train.empty()) {
    s.train_min = *std::min_element(train.begin(), train.end());
    s.train_max = *std::max_element(train.begin(), train.end());
    s.eval_min = *std::min_element(eval.begin(), eval.end());
    s.eval_max = *std::max_element(eval.begin(), eval.end());
  }
  s.train_median = median(train);
  s.eval_median = median(eval);
  return s;
}

}  // namespace

namespace {

// One full run per experiment at the essay's seed, with trajectories for the pictures: a run
// directory of its own below `out` each.
void write_example_runs(Backend& backend, const ExperimentsOptions& options, const RunDir& out,
                        double linear_sparse_median) {
  const auto& experiments = essay_experiments();
  for (const Experiment& e : experiments) {
    GroupSpec example = experiment_group(e, options.example_seed, 1);
    example.record_trajectories = true;
    example.snapshot_every = options.snapshot_every;
    const std::vector<ModelResult> run = backend.train(example);
    const RunDir dir = out.subdir(e.slug);
    write_trajectories(dir, example, run);
    dir.write("data.npy", npy::encode(fixed_dataset(example, example.models[0]), {1000, 2}));
    std::vector<std::pair<std::string, std::string>> extra = {
        {"experiment", std::to_string(e.number)},
        {"essay_outcome", shows_outcome(e, run[0], linear_sparse_median) ? "1" : "0"}};
    for (auto& column : analysis_columns(example, run[0])) extra.push_back(column);
    dir.write("results.csv", results_csv({{0, &example, &example.models[0], &run[0], extra}}));
    nlohmann::json manifest = {{"command", "experiments"},
                               {"experiment", e.number},
                               {"title", e.title},
                               {"version", SUPERPOSE_VERSION},
                               {"backend", backend.name()},
                               {"device", backend.device()},
                               {"group", group_json(example)},
                               {"model",
                                {{"seed", options.example_seed},
                                 {"model", to_string(e.kind)},
                                 {"sparsity", e.sparsity},
                                 {"importance", e.importance},
                                 {"lr", e.lr}}},
                               {"train_rows_are", "data.npy rows 0..799; rows 800..999 evaluate"}};
    dir.write("manifest.json", manifest.dump(2) + "\n");
  }
}

// The manifest: how the experiments ran, and each one's settings.
nlohmann::json experiments_manifest(const Backend& backend, const ExperimentsOptions& options,
                                    const nlohmann::json& timings) {
  const auto& experiments = essay_experiments();
  auto experiment_group_json = [&](const Experiment& e) {
    nlohmann::json group = group_json(experiment_group(e, options.first_seed, 0));
    group["models"] = options.seeds;
    return group;
  };
  nlohmann::json manifest = {{"command", "experiments"},
                             {"version", SUPERPOSE_VERSION},
                             {"backend", backend.name()},
                             {"device", backend.device()},
                             {"seeds", options.seeds},
                             {"first_seed", options.first_seed},
                             {"example_seed", options.example_seed},
                             {"timings_s", timings},
                             {"experiments", nlohmann::json::array()}};
  for (size_t k = 0; k < experiments.size(); ++k)
    manifest["experiments"].push_back({{"number", experiments[k].number},
                                       {"title", experiments[k].title},
                                       {"outcome_tested", experiments[k].outcome},
                                       {"model", to_string(experiments[k].kind)},
                                       {"sparsity", experiments[k].sparsity},
                                       {"importance", experiments[k].importance},
                                       {"lr", experiments[k].lr},
                                       {"group", experiment_group_json(experiments[k])}});
  return manifest;
}

}  // namespace

std::vector<ExperimentSummary> run_experiments(Backend& backend, const ExperimentsOptions& options,
                                               const RunDir& out) {
  const auto& experiments = essay_experiments();
  nlohmann::json timings = nlohmann::json::object();
  const auto start = std::chrono::steady_clock::now();
  std::vector<ExperimentSummary> summaries;
  double linear_sparse_median = std::nan("");  // experiment 4's, which experiment 5 is held to
  // Every model's row, streamed into results.csv a chunk of seeds at a time (written beside its
  // name, renamed into place at the end).
  int64_t work = 0;  // every seed's steps, and the example run's
  for (const Experiment& e : experiments)
    work += int64_t{experiment_group(e, options.first_seed, 1).steps} * (options.seeds + 1);
  progress().start(6 * int64_t{options.seeds}, work);
  out.write_with("results.csv", [&](std::ostream& csv) {
    int64_t id = 0;
    for (const Experiment& e : experiments) {
      const auto t0 = std::chrono::steady_clock::now();
      Tally tally;
      for (int first = 0; first < options.seeds; first += kExperimentChunk) {
        const int count = std::min(kExperimentChunk, options.seeds - first);
        const GroupSpec group =
            experiment_group(e, options.first_seed + static_cast<uint64_t>(first), count);
        const std::vector<ModelResult> results = backend.train(group);
        progress().done += count;
        std::vector<ResultRow> rows;
        for (size_t i = 0; i < results.size(); ++i) {
          const ModelResult& r = results[i];
          const bool outcome = shows_outcome(e, r, linear_sparse_median);
          ++tally.models;
          if (r.finite) {
            tally.train.push_back(r.train_loss);
            tally.eval.push_back(r.eval_loss);
            tally.with_outcome += outcome ? 1 : 0;
          } else {
            ++tally.diverged;
          }
          std::vector<std::pair<std::string, std::string>> extra = {
              {"experiment", std::to_string(e.number)}, {"essay_outcome", outcome ? "1" : "0"}};
          for (auto& column : analysis_columns(group, r)) extra.push_back(column);
          rows.push_back({id++, &group, &group.models[i], &r, extra});
        }
        const std::string text = results_csv(rows);
        csv << (id == static_cast<int64_t>(rows.size()) ? text : text.substr(text.find('\n') + 1));
      }
      summaries.push_back(summarise(e, tally));
      if (e.number == 4) linear_sparse_median = median(tally.train);
      timings[e.slug] =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  });
  timings["sweep_total_s"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  write_example_runs(backend, options, out, linear_sparse_median);
  out.write("experiments.csv", experiments_csv(summaries));
  out.write("manifest.json", experiments_manifest(backend, options, timings).dump(2) + "\n");
  return summaries;
}

std::string experiments_csv(const std::vector<ExperimentSummary>& summaries) {
  std::string out =
      "experiment,title,model,sparsity,importance_0,importance_1,lr,steps,models,diverged,"
      "train_loss_min,train_loss_median,train_loss_max,eval_loss_min,eval_loss_median,"
      "eval_loss_max,outcome_fraction,outcome\n";
  for (const ExperimentSummary& s : summaries) {
    const Experiment& e = *s.experiment;
    const int finite = s.models - s.diverged;
    out += fmt::format(
        "{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", e.number, e.title,
        to_string(e.kind), e.sparsity, e.importance[0], e.importance[1], e.lr, e.steps, s.models,
        s.diverged, format_number(s.train_min), format_number(s.train_median),
        format_number(s.train_max), format_number(s.eval_min), format_number(s.eval_median),
        format_number(s.eval_max),
        format_number(finite ? static_cast<double>(s.with_outcome) / finite : 0.0), e.outcome);
  }
  return out;
}

std::string experiments_table(const std::vector<ExperimentSummary>& summaries) {
  std::string out =
      fmt::format("{:<3} {:<34} {:>8} {:>27} {:>27} {:>9}\n", "#", "experiment", "models",
                  "train loss min/med/max", "eval loss min/med/max", "outcome");
  for (const ExperimentSummary& s : summaries) {
    const int finite = s.models - s.diverged;
    out += fmt::format(
        "{:<3} {:<34} {:>8} {:>8.4f}/{:>8.4f}/{:>8.4f} {:>8.4f}/{:>8.4f}/{:>8.4f} "
        "{:>8.0f}%\n",
        s.experiment->number, s.experiment->title,
        s.diverged ? fmt::format("{} ({} NaN)", s.models, s.diverged) : std::to_string(s.models),
        s.train_min, s.train_median, s.train_max, s.eval_min, s.eval_median, s.eval_max,
        finite ? 100.0 * s.with_outcome / finite : 0.0);
  }
  out += "outcome = share of seeds showing what the essay describes:\n";
  for (const ExperimentSummary& s : summaries)
    out += fmt::format("  {}: {}\n", s.experiment->number, s.experiment->outcome);
  return out;
}

}  // namespace sp
