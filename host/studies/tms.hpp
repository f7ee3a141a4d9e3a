// tms.hpp — `superpose tms`: the main results of Anthropic's "Toy Models of Superposition" in one
// command. Each result is a sweep of its own (resumable, drawn by scripts/plots.py sweep), trained
// with the paper's recipe (fresh batches of 1024, lr 1e-3) and judged from its trained W: the
// best seed of every cell on the evaluation set every model shares, and one line saying whether it
// shows what the paper reports — measured, never assumed.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "host/sweep/sweep.hpp"

namespace sp {

// full: the paper's sizes (for a GPU); reduced: sizes two CPU cores finish in minutes.
enum class TmsScale { reduced, full };

struct TmsExperiment {
  std::string name;   // its directory under --out
  std::string title;  // what the paper shows there
  SweepSpec spec;
};

// The seven results at a scale: intro (5 -> 2, importance 0.9^f, densities 20^-linspace(0, 1, 10)),
// tms-20-5 (0.7^f, linear and ReLU), geometry (uniform importance, 200 -> 20 reduced or
// 400 -> 30 full), correlated and anticorrelated (4 -> 2 with two pairs, ARENA's settings),
// privileged-basis (the neuron model, 10 -> 5, ARENA's settings) and collapse (5 -> 2, one feature
// made sparser).
// `steps` > 0 replaces the paper's 10,000 (short runs, for tests).
std::vector<TmsExperiment> tms_experiments(TmsScale scale, int steps = 0);

// What a trained experiment shows: lines of measurements, and whether they match the paper.
// Beside a verdict (judged on the best seed of a cell, as the paper shows one model), how often
// every seed that did not diverge shows the same: `shown` of `seeds`.
struct TmsOutcome {
  std::string what;
  int shown = 0, seeds = 0;
};
struct TmsVerdict {
  std::vector<std::string> lines;
  bool shows = false;
  std::vector<TmsOutcome> outcomes;  // in the lines too ("in 17 of 25 seeds, 68%")
};
// Reads DIR/results.csv and DIR/manifest.json of a finished experiment.
TmsVerdict judge_tms(const TmsExperiment& experiment, const RunDir& dir);

// Geometry helpers, on W (m x n, row-major; feature f is column f). Exposed for the tests.
namespace tms {
constexpr double kRepresented = 0.5;  // a feature is represented when ‖W_f‖ > 0.5
double column_norm(const std::vector<double>& W, int n, int m, int f);
double column_cosine(const std::vector<double>& W, int n, int m, int f, int g);
// m = 2: the angles between consecutive represented features around the circle, in degrees
// (sorted by angle; they sum to 360).
std::vector<double> angle_gaps(const std::vector<double>& W, int n);
// The neuron model: neuron j's feature weights, row j of W. Monosemantic when one feature holds at
// least kMonosemantic of the row's squared weights; dead when the row's norm is below kDeadNeuron.
constexpr double kMonosemantic = 0.9, kDeadNeuron = 0.1;
struct NeuronFeatures {
  int top_feature = 0;   // the feature with the largest |W_jf|
  double top_share = 0;  // its share of Σ_f W_jf²
  double norm = 0;       // ‖W_j‖
  bool dead = false;
};
NeuronFeatures neuron_features(const std::vector<double>& W, int n, int j);
}  // namespace tms

}  // namespace sp
