// experiments.hpp — the essay's six experiments ("Even Smaller Models of Superposition"), each run
// over many seeds as one sweep, with the fraction of seeds that show the outcome the essay
// describes.
#pragma once

#include <string>
#include <vector>

#include "host/backends/backend.hpp"
#include "host/core/config.hpp"
#include "host/io/run_dir.hpp"

namespace sp {

struct Experiment {
  int number;
  std::string slug;     // directory name
  std::string title;    // as the essay heads it
  std::string outcome;  // what the essay says happens, as tested by shows_outcome
  ModelKind kind;
  double sparsity;
  std::vector<double> importance;
  double lr;
  int steps;
};

const std::vector<Experiment>& essay_experiments();

// The essay's data and schedule for one experiment: 1000 points, the last 20% evaluate, full-batch
// steps, eval every 50 steps; seeds first_seed .. first_seed + seeds - 1.
GroupSpec experiment_group(const Experiment& e, uint64_t first_seed, int seeds);

// Whether one trained model shows the essay's outcome. `linear_sparse_median_loss` is experiment
// 4's median final training loss (experiment 5 must land far below it).
bool shows_outcome(const Experiment& e, const ModelResult& r, double linear_sparse_median_loss);

struct ExperimentSummary {
  const Experiment* experiment = nullptr;
  int models = 0, diverged = 0, with_outcome = 0;
  double train_min = 0, train_median = 0, train_max = 0;
  double eval_min = 0, eval_median = 0, eval_max = 0;
};

// Seeds per experiment at most, and per backend call: the models of an experiment are trained and
// written a chunk at a time, so that memory does not grow with --seeds.
constexpr int kMaxExperimentSeeds = 1000000;
constexpr int kExperimentChunk = 65536;

struct ExperimentsOptions {
  int seeds = 100;
  uint64_t first_seed = 0;
  uint64_t example_seed = 44;  // the essay's seed: one full run directory per experiment
  int snapshot_every = 10;
};

// Runs all six, writes DIR/results.csv (every model), DIR/experiments.csv (the summary),
// DIR/manifest.json and DIR/expN-<slug>/ (the example seed with trajectories and data.npy).
std::vector<ExperimentSummary> run_experiments(Backend& backend, const ExperimentsOptions& options,
                                               const RunDir& out);

std::string experiments_table(const std::vector<ExperimentSummary>& summaries);
std::string experiments_csv(const std::vector<ExperimentSummary>& summaries);

}  // namespace sp
