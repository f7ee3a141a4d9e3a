// phase_diagram.hpp — Anthropic's 2→1 phase diagram: relative importance of feature 2 × feature
// density, several seeds per cell, each cell's phase taken from its best seed and compared with
// the winner among the closed-form losses of the three ideal solutions.
#pragma once

#include <string>
#include <vector>

#include "host/backends/backend.hpp"
#include "host/sweep/sweep.hpp"

namespace sp {

struct PhaseDiagramOptions {
  int importance_cells = 50, density_cells = 50, seeds = 10;
  uint64_t first_seed = 0;
  double importance_min = 0.1, importance_max = 10;  // relative importance r of feature 2, log
  double density_min = 0.01, density_max = 1;        // density p = 1 - sparsity, log
  int steps = 5000, batch = 1024, eval_points = 10000;
  double lr = 1e-3;
  int64_t chunk_models = 0;
};

// The defaults for a backend: the published grid (50 × 50 cells × 10 seeds, 5,000 steps of batch
// 1024) on a GPU; a coarser one on the CPU that finishes in about a minute on 2 cores.
PhaseDiagramOptions default_phase_diagram(const std::string& backend_name);

// The sweep behind a diagram: relu, 2 → 1, fresh data; axes density (slowest), relative_importance,
// seed (fastest), so that model id = (density_index · importance_cells + importance_index) · seeds
// + seed_index.
SweepSpec phase_diagram_sweep(const PhaseDiagramOptions& options);

// The options as JSON (kept in plan.json, so that `superpose merge` can finish the diagram).
nlohmann::json phase_diagram_json(const PhaseDiagramOptions& options);
PhaseDiagramOptions phase_diagram_from_json(const nlohmann::json& options);

// Once every chunk of the diagram's sweep is merged (DIR/results.csv): writes
// DIR/phase_diagram.csv and the agreement into DIR/manifest.json (`manifest`, the merge's, plus
// the total time), and returns what the command prints: the map and the agreement.
std::string finish_phase_diagram(const RunDir& dir, const PhaseDiagramOptions& options,
                                 nlohmann::json manifest, double seconds);

// Closed-form losses of the ideal solutions for density p and relative importance r, per sample
// summed over the features as the issue states them (divide by 2 for results.csv's loss, a mean
// over the 2 features): ignored r·(p/3 − p²/4), dedicated p/3 − p²/4, antipodal (1+r)·p²/6.
struct ClosedForm {
  double ignored, dedicated, antipodal;
  std::string winner() const;  // the lowest: "ignored", "dedicated" or "antipodal"
  double margin() const;       // second-lowest / lowest (≥ 1): how far from a boundary
};
ClosedForm closed_form(double density, double relative_importance);

struct PhaseCell {
  double density = 0, relative_importance = 0;
  int seeds = 0, seeds_ok = 0;
  int64_t best_model_id = -1;  // -1 when every seed diverged (and the numbers below are NaN)
  double best_eval_loss = NAN, best_train_loss = NAN, W1 = NAN, W2 = NAN, b1 = NAN, b2 = NAN;
  std::string phase = "diverged";  // the best seed's phase
  int ignored = 0, dedicated = 0, antipodal = 0, other = 0;
  ClosedForm theory{};
  bool agrees() const { return phase == theory.winner(); }
};

// Aggregates DIR/results.csv of a finished phase-diagram sweep: per cell, the seed with the lowest
// eval_loss among those that did not diverge.
std::vector<PhaseCell> aggregate_phase_diagram(const PhaseDiagramOptions& options,
                                               const RunDir& dir);

struct PhaseAgreement {
  int cells = 0, agree = 0, far_cells = 0, far_agree = 0;
};
// far: cells whose closed-form runner-up is at least `far_margin` (2.5) times the winner's loss.
PhaseAgreement phase_agreement(const std::vector<PhaseCell>& cells, double far_margin = 2.5);

std::string phase_diagram_csv(const std::vector<PhaseCell>& cells);
// A character map (rows: density, highest first; columns: importance, lowest first) of the
// trained phases beside the closed-form winners.
std::string phase_diagram_map(const PhaseDiagramOptions& options,
                              const std::vector<PhaseCell>& cells);

}  // namespace sp
