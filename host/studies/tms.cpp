#include "host/studies/tms.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "host/io/run_dir.hpp"

namespace sp {
namespace {

constexpr double kPi = 3.14159265358979323846;

// 20^-linspace(0, 1, 10), the intro's densities, and 400^-linspace(0.5, 1, 5), ARENA's for the
// correlated pairs: as logspace over their base-10 exponents.
const char* const kIntroDensities = "logspace(0,-1.3010299956639813,10)";
const char* const kCorrelatedDensities = "logspace(-1.3010299956639813,-2.6020599913279625,5)";
const char* const kAnticorrelatedDensities = "logspace(-0.5,-1,5)";

TmsExperiment experiment(const std::string& name, const std::string& title, int n, int m,
                         SweepAxesText axes, ImportanceRule rule, FeatureGroups groups = {},
                         int varied_feature = -1) {
  TmsExperiment e{name, title, {}};
  GroupSpec& g = e.spec.base;
  g.n_features = n;
  g.n_hidden = m;
  g.mode = DataMode::fresh;  // the paper's recipe (--recipe tms)
  g.batch = 1024;
  g.eval_points = 10000;
  g.eval_every = 0;
  g.groups = groups;
  e.spec.importance_rule = rule;
  if (rule == ImportanceRule::vector) e.spec.importance.assign(static_cast<size_t>(n), 1.0);
  e.spec.varied_feature = varied_feature;
  axes.lr = "1e-3";
  set_axes(e.spec, axes);
  return e;
}

SweepAxesText axes_with(const std::string& density, const std::string& seeds, int steps) {
  SweepAxesText axes;
  axes.density = density;
  axes.seed = seeds;
  axes.steps = std::to_string(steps);
  return axes;
}

// ------------------------------------------------------------------------------- reading results
struct Cell {
  int64_t first_id = 0;  // the cell's first model (seed index 0)
  bool trained = false;  // some seed did not diverge
  double score = 0;      // the best seed's evaluation loss
  std::vector<double> W;
  std::map<std::string, double> columns;     // the best seed's numeric columns by name
  std::vector<std::vector<double>> seeds_W;  // every seed's W that did not diverge, by seed
};

// The best seed of every cell (every axis but the seed), by evaluation loss on the shared set.
std::vector<Cell> best_cells(const SweepSpec& spec, const RunDir& dir) {
  const Table table = read_csv(dir, "results.csv");
  const int n = spec.base.n_features, m = spec.base.n_hidden;
  const int64_t seeds = static_cast<int64_t>(spec.axes.back().size());
  std::vector<Cell> cells(static_cast<size_t>(spec.model_count() / seeds));
  for (size_t c = 0; c < cells.size(); ++c) cells[c].first_id = static_cast<int64_t>(c) * seeds;
  const int id_column = table.column("model_id"), status = table.column("status"),
            eval = table.column("eval_loss");
  std::vector<int> W_columns;  // W_<j>_<f>, row-major
  for (int j = 0; j < m; ++j)
    for (int f = 0; f < n; ++f) W_columns.push_back(table.column(fmt::format("W_{}_{}", j, f)));
  std::vector<const std::vector<std::string>*> best(cells.size(), nullptr);
  for (const auto& row : table.rows) {
    if (row[static_cast<size_t>(status)] != "ok") continue;
    const int64_t id = std::stoll(row[static_cast<size_t>(id_column)]);
    Cell& cell = cells[static_cast<size_t>(id / seeds)];
    std::vector<double>& W = cell.seeds_W.emplace_back();
    for (int column : W_columns) W.push_back(std::stod(row[static_cast<size_t>(column)]));
    const double score = std::stod(row[static_cast<size_t>(eval)]);
    if (cell.trained && !(score < cell.score)) continue;
    cell.trained = true;
    cell.score = score;
    cell.W = W;  // the best seed's, read above
    best[static_cast<size_t>(id / seeds)] = &row;
  }
  // The winners' numeric columns, read once each.
  for (size_t c = 0; c < cells.size(); ++c) {
    if (!best[c]) continue;
    const std::vector<std::string>& row = *best[c];
    for (size_t k = 0; k < table.header.size(); ++k) {
      char* end = nullptr;
      const double value = std::strtod(row[k].c_str(), &end);
      if (end && *end == '\0' && !row[k].empty()) cells[c].columns[table.header[k]] = value;
    }
  }
  return cells;
}

std::vector<int> represented(const std::vector<double>& W, int n, int m) {
  std::vector<int> out;
  for (int f = 0; f < n; ++f)
    if (tms::column_norm(W, n, m, f) > tms::kRepresented) out.push_back(f);
  return out;
}

std::string yes_no(bool shows) { return shows ? "yes" : "NO"; }

std::string number(double value) { return fmt::format("{:.3g}", value); }

// Regular: k gaps, each within `tolerance` of 360 / k.
bool regular(const std::vector<double>& gaps, size_t k, double tolerance) {
  return gaps.size() == k && std::all_of(gaps.begin(), gaps.end(), [&](double gap) {
           return std::abs(gap - 360.0 / static_cast<double>(k)) <= tolerance;
         });
}

std::string gaps_text(const std::vector<double>& gaps) {
  if (gaps.empty()) return "none";
  const auto [lo, hi] = std::minmax_element(gaps.begin(), gaps.end());
  return fmt::format("{:.1f}–{:.1f}°", *lo, *hi);
}

// A result with a cell whose every seed diverged: nothing to judge, and so NO.
TmsVerdict not_judged(const std::string& what) {
  TmsVerdict v;
  v.lines.push_back(fmt::format("{}: every seed diverged, nothing to judge", what));
  return v;
}

// How many of a cell's seeds pass `test` (on their W): an outcome, and its text for the line.
template <class Test>
TmsOutcome outcome_of(const std::string& what, const Cell& cell, Test&& test) {
  TmsOutcome o{what, 0, static_cast<int>(cell.seeds_W.size())};
  for (const std::vector<double>& W : cell.seeds_W) o.shown += test(W) ? 1 : 0;
  return o;
}
std::string seeds_text(const TmsOutcome& o) {
  return fmt::format("in {} of {} seeds ({:.0f}%)", o.shown, o.seeds,
                     o.seeds ? 100.0 * o.shown / o.seeds : 0.0);
}

// ------------------------------------------------------------------------------- the verdicts
TmsVerdict judge_intro(const SweepSpec& spec, const std::vector<Cell>& cells) {
  TmsVerdict v;
  const Cell &dense = cells.front(), &sparse = cells.back();
  if (!dense.trained || !sparse.trained) return not_judged("intro");
  auto orthogonal_pair = [](const std::vector<double>& W) {
    return represented(W, 5, 2) == std::vector<int>{0, 1} &&
           std::abs(tms::column_cosine(W, 5, 2, 0, 1)) < 0.1;
  };
  auto pentagon_of = [](const std::vector<double>& W) {
    return regular(tms::angle_gaps(W, 5), 5, 6.0);
  };
  const std::vector<int> dense_features = represented(dense.W, 5, 2);
  const double cosine =
      dense_features.size() == 2 ? std::abs(tms::column_cosine(dense.W, 5, 2, 0, 1)) : 1.0;
  const bool orthogonal = orthogonal_pair(dense.W);
  v.outcomes.push_back(outcome_of("orthogonal pair, densest", dense, orthogonal_pair));
  v.lines.push_back(fmt::format(
      "density {}: {} feature(s) represented, |cos(W_0, W_1)| = {} — the two most important, "
      "orthogonal (paper: yes): {}; {}",
      number(spec.axis_value(dense.first_id, "density", 1)), dense_features.size(), number(cosine),
      yes_no(orthogonal), seeds_text(v.outcomes.back())));
  const std::vector<double> gaps = tms::angle_gaps(sparse.W, 5);
  const bool pentagon = pentagon_of(sparse.W);
  v.outcomes.push_back(outcome_of("regular pentagon, sparsest", sparse, pentagon_of));
  v.lines.push_back(fmt::format(
      "density {}: {} features represented, angle gaps {} — a regular pentagon (gaps within 6° "
      "of 72°; paper: yes): {}; {}",
      number(spec.axis_value(sparse.first_id, "density", 1)), represented(sparse.W, 5, 2).size(),
      gaps_text(gaps), yes_no(pentagon), seeds_text(v.outcomes.back())));
  v.shows = orthogonal && pentagon;
  return v;
}

TmsVerdict judge_20_5(const SweepSpec& spec, const std::vector<Cell>& cells) {
  TmsVerdict v;
  std::map<std::string, std::vector<size_t>> counts;          // per model kind, along the densities
  std::map<std::string, std::pair<size_t, size_t>> sparsest;  // per kind: fewest, most over seeds
  TmsOutcome linear_seeds{"linear: exactly 5 features represented", 0, 0};
  for (const Cell& cell : cells) {
    const std::string kind = to_string(
        static_cast<ModelKind>(static_cast<int>(spec.axis_value(cell.first_id, "model", 1))));
    if (!cell.trained) return not_judged("20 -> 5 " + kind);
    counts[kind].push_back(represented(cell.W, 20, 5).size());
    size_t fewest = 20, most = 0;
    for (const std::vector<double>& W : cell.seeds_W) {
      const size_t count = represented(W, 20, 5).size();
      fewest = std::min(fewest, count);
      most = std::max(most, count);
      if (kind == "linear") linear_seeds.shown += count == 5, ++linear_seeds.seeds;
    }
    sparsest[kind] = {fewest, most};
  }
  v.outcomes.push_back(linear_seeds);
  const std::vector<size_t>& linear = counts["linear"];
  const std::vector<size_t>& relu = counts["relu"];
  const bool linear_ok = std::all_of(linear.begin(), linear.end(), [](size_t c) { return c == 5; });
  // Non-decreasing as density falls, allowing one feature of noise between neighbours.
  bool grows = relu.size() >= 2 && relu.front() <= 6 && relu.back() > 5;
  for (size_t k = 1; k < relu.size(); ++k) grows = grows && relu[k] + 1 >= relu[k - 1];
  v.lines.push_back(fmt::format(
      "linear: features represented as density falls from 1 to 0.001: {} — exactly m = 5, no "
      "superposition (paper: yes): {}; every seed at every density: {} of {} models",
      fmt::join(linear, " → "), yes_no(linear_ok), linear_seeds.shown, linear_seeds.seeds));
  v.lines.push_back(fmt::format(
      "ReLU: {} — 5 when dense, more as density falls: superposition (paper: yes): {}; at the "
      "sparsest density the seeds represent {}–{}",
      fmt::join(relu, " → "), yes_no(grows), sparsest["relu"].first, sparsest["relu"].second));
  v.shows = linear_ok && grows;
  return v;
}

TmsVerdict judge_geometry(const SweepSpec& spec, const std::vector<Cell>& cells) {
  TmsVerdict v;
  const int n = spec.base.n_features;
  std::vector<double> dstar;
  double best_fraction = -1, best_density = 0;  // among the cells where D* is near 1/2
  int near_half = 0;
  for (const Cell& cell : cells) {
    if (!cell.trained) return not_judged("geometry");
    const double d = cell.columns.at("dimensions_per_feature");
    dstar.push_back(d);
    if (std::abs(d - 0.5) > 0.05) continue;
    ++near_half;
    int at_half = 0, counted = 0;
    for (int f = 0; f < n; ++f) {
      if (cell.columns.at(fmt::format("norm_{}", f)) <= tms::kRepresented) continue;
      ++counted;
      at_half += std::abs(cell.columns.at(fmt::format("dimensionality_{}", f)) - 0.5) <= 0.05;
    }
    const double fraction = counted ? static_cast<double>(at_half) / counted : 0.0;
    if (fraction > best_fraction) {
      best_fraction = fraction;
      best_density = spec.axis_value(cell.first_id, "density", 1);
    }
  }
  std::vector<std::string> texts;
  for (double d : dstar) texts.push_back(fmt::format("{:.2f}", d));
  v.lines.push_back(fmt::format("D* = m / ‖W‖²_F along the densities: {}", fmt::join(texts, ", ")));
  v.shows = near_half >= 1 && best_fraction >= 0.6;
  if (near_half == 0) {
    v.lines.push_back(fmt::format(
        "D* is never within 0.05 of 1/2 at these {} densities (paper: it sticks at 1/2): NO",
        cells.size()));
  } else {
    v.lines.push_back(fmt::format(
        "D* within 0.05 of 1/2 at {} of {} densities; there (density {}) {:.0f}% of the "
        "represented features have D_f within 0.05 of 1/2 — D* at 1/2 with the features in "
        "antipodal pairs, not spread between (judged yes from 60%; paper: yes): {}",
        near_half, cells.size(), number(best_density), 100 * best_fraction, yes_no(v.shows)));
  }
  return v;
}

// Pairs (0, 1) and (2, 3): the cosine between their columns where both are represented.
std::vector<double> pair_cosines(const std::vector<double>& W) {
  std::vector<double> out;
  for (int f : {0, 2})
    if (tms::column_norm(W, 4, 2, f) > tms::kRepresented &&
        tms::column_norm(W, 4, 2, f + 1) > tms::kRepresented)
      out.push_back(tms::column_cosine(W, 4, 2, f, f + 1));
  return out;
}

TmsVerdict judge_pairs(const SweepSpec& spec, const std::vector<Cell>& cells, bool correlated) {
  TmsVerdict v;
  std::vector<std::string> texts;
  bool all_antipodal = true;
  int judged = 0;
  for (const Cell& cell : cells) {
    if (!cell.trained) return not_judged(correlated ? "correlated" : "anticorrelated");
    const std::vector<double> cosines = pair_cosines(cell.W);
    std::vector<std::string> cos_text;
    for (double c : cosines) cos_text.push_back(number(c));
    texts.push_back(fmt::format("{}: [{}]", number(spec.axis_value(cell.first_id, "density", 1)),
                                fmt::join(cos_text, ", ")));
    judged += !cosines.empty();
    for (double c : cosines) all_antipodal = all_antipodal && c < -0.9;
    if (!correlated) {  // every seed: both pairs represented and antipodal
      v.outcomes.push_back(
          outcome_of(fmt::format("antipodal pairs, density {}",
                                 number(spec.axis_value(cell.first_id, "density", 1))),
                     cell, [](const std::vector<double>& W) {
                       const std::vector<double> c = pair_cosines(W);
                       return c.size() == 2 && c[0] < -0.9 && c[1] < -0.9;
                     }));
    }
  }
  v.lines.push_back(fmt::format("cos within each pair (both represented), by density: {}",
                                fmt::join(texts, "; ")));
  if (correlated) {
    auto orthogonal_of = [](const std::vector<double>& W) {
      const std::vector<double> c = pair_cosines(W);
      bool orthogonal = !c.empty();
      for (double x : c) orthogonal = orthogonal && std::abs(x) < 0.2;
      return orthogonal;
    };
    v.shows = orthogonal_of(cells.back().W);
    v.outcomes.push_back(outcome_of("orthogonal pairs, sparsest", cells.back(), orthogonal_of));
    v.lines.push_back(fmt::format(
        "sparsest density: correlated features orthogonal, |cos| < 0.2 (paper: yes): {}; {}",
        yes_no(v.shows), seeds_text(v.outcomes.back())));
  } else {
    v.shows = judged > 0 && all_antipodal;
    std::vector<std::string> per_density;
    for (const TmsOutcome& o : v.outcomes)
      per_density.push_back(fmt::format("{}/{}", o.shown, o.seeds));
    v.lines.push_back(fmt::format(
        "anticorrelated features antipodal, cos < −0.9 at every density (paper: yes): {}; seeds "
        "with both pairs antipodal, by density: {}",
        yes_no(v.shows), fmt::join(per_density, ", ")));
  }
  return v;
}

TmsVerdict judge_collapse(const SweepSpec& spec, const std::vector<Cell>& cells) {
  TmsVerdict v;
  const Cell &dense = cells.front(), &sparse = cells.back();
  if (!dense.trained || !sparse.trained) return not_judged("collapse");
  auto pentagon_of = [](const std::vector<double>& W) {
    return regular(tms::angle_gaps(W, 5), 5, 6.0);
  };
  auto others_of = [](std::vector<double> W) {  // features 0..3 alone: feature 4's column zeroed
    W[4] = W[9] = 0;
    return tms::angle_gaps(W, 5);
  };
  auto digons_of = [&](const std::vector<double>& W) { return regular(others_of(W), 4, 8.0); };
  const std::vector<double> gaps = tms::angle_gaps(dense.W, 5);
  const bool pentagon = pentagon_of(dense.W);
  v.outcomes.push_back(outcome_of("regular pentagon, feature 4 densest", dense, pentagon_of));
  v.lines.push_back(fmt::format(
      "feature 4 at density {}: angle gaps {} — a regular pentagon (paper: yes): {}; {}",
      number(spec.axis_value(dense.first_id, "varied_density", 1)), gaps_text(gaps),
      yes_no(pentagon), seeds_text(v.outcomes.back())));
  const std::vector<double> cross = others_of(sparse.W);
  const bool digons = digons_of(sparse.W);
  v.outcomes.push_back(outcome_of("pair of digons, feature 4 sparsest", sparse, digons_of));
  v.lines.push_back(fmt::format(
      "feature 4 at density {} (‖W_4‖ = {}): features 0–3 at angle gaps {} — two antipodal pairs "
      "at right angles, a pair of digons (gaps within 8° of 90°; paper: yes): {}; {}",
      number(spec.axis_value(sparse.first_id, "varied_density", 1)),
      number(tms::column_norm(sparse.W, 5, 2, 4)), gaps_text(cross), yes_no(digons),
      seeds_text(v.outcomes.back())));
  v.shows = pentagon && digons;
  return v;
}

// TMS's privileged basis (the neuron model, ARENA's NeuronModel settings): each neuron's feature
// weights (row j of W) over every seed of each density. Dense: the m neurons monosemantic, one for
// each of the m most important features; sparse: most neurons polysemantic.
TmsVerdict judge_privileged(const SweepSpec& spec, const std::vector<Cell>& cells) {
  TmsVerdict v;
  const int n = spec.base.n_features, m = spec.base.n_hidden;
  struct Count {
    // clean: seeds with one monosemantic neuron for each top feature; mostly_polysemantic:
    // seeds with >= 80% of their live neurons polysemantic
    int live = 0, polysemantic = 0, dead = 0, seeds = 0, clean = 0, mostly_polysemantic = 0;
  };
  std::vector<Count> counts;
  std::vector<std::string> texts;
  for (const Cell& cell : cells) {
    if (!cell.trained) return not_judged("privileged basis");
    Count c;
    for (const std::vector<double>& W : cell.seeds_W) {
      ++c.seeds;
      std::vector<int> carried;
      int live = 0, polysemantic = 0;
      for (int j = 0; j < m; ++j) {
        const tms::NeuronFeatures neuron = tms::neuron_features(W, n, j);
        if (neuron.dead) {
          ++c.dead;
          continue;
        }
        ++live;
        if (neuron.top_share < tms::kMonosemantic) {
          ++polysemantic;
        } else {
          carried.push_back(neuron.top_feature);
        }
      }
      c.live += live;
      c.polysemantic += polysemantic;
      c.mostly_polysemantic += live > 0 && 5 * polysemantic >= 4 * live;
      std::sort(carried.begin(), carried.end());
      std::vector<int> top(static_cast<size_t>(std::min(m, n)));
      for (size_t k = 0; k < top.size(); ++k) top[k] = static_cast<int>(k);
      c.clean += carried == top;
    }
    counts.push_back(c);
    texts.push_back(fmt::format("{}: {:.0f}%", number(spec.axis_value(cell.first_id, "density", 1)),
                                c.live ? 100.0 * c.polysemantic / c.live : 0.0));
  }
  const Count &dense = counts.front(), &sparse = counts.back();
  const bool monosemantic = 2 * dense.clean >= dense.seeds;
  v.outcomes.push_back(
      {"monosemantic neurons for the top features, densest", dense.clean, dense.seeds});
  v.outcomes.push_back(
      {">= 80% of live neurons polysemantic, sparsest", sparse.mostly_polysemantic, sparse.seeds});
  v.lines.push_back(fmt::format(
      "density {}: in {} of {} seeds ({:.0f}%) the {} neurons are monosemantic (one feature holds "
      "≥ {:.0f}% of a neuron's squared weights), one for each of the {} most important features "
      "(judged yes from half the seeds; paper: yes): {}",
      number(spec.axis_value(cells.front().first_id, "density", 1)), dense.clean, dense.seeds,
      100.0 * dense.clean / std::max(1, dense.seeds), m, 100 * tms::kMonosemantic, m,
      yes_no(monosemantic)));
  auto fraction = [](const Count& c) {
    return c.live ? static_cast<double>(c.polysemantic) / c.live : 0.0;
  };
  const bool transition = fraction(dense) <= 0.2 && fraction(sparse) >= 0.8;
  v.lines.push_back(fmt::format(
      "polysemantic neurons by density, over every seed's live neurons: {} (at density {}: {} of "
      "{}, {} dead) — from monosemantic to polysemantic, ≤ 20% dense and ≥ 80% sparse (paper: "
      "yes): {}; ≥ 80% polysemantic {}",
      fmt::join(texts, " → "), number(spec.axis_value(cells.back().first_id, "density", 1)),
      sparse.polysemantic, sparse.live, sparse.dead, yes_no(transition),
      seeds_text(v.outcomes.back())));
  v.shows = monosemantic && transition;
  return v;
}

}  // namespace

namespace tms {

NeuronFeatures neuron_features(const std::vector<double>& W, int n, int j) {
  NeuronFeatures out;
  double total = 0, top = -1;
  for (int f = 0; f < n; ++f) {
    const double w = W[static_cast<size_t>(j) * n + f];
    total += w * w;
    if (w * w > top) top = w * w, out.top_feature = f;
  }
  out.norm = std::sqrt(total);
  out.dead = out.norm < kDeadNeuron;
  out.top_share = total > 0 ? top / total : 0.0;
  return out;
}

double column_norm(const std::vector<double>& W, int n, int m, int f) {
  double sum = 0;
  for (int j = 0; j < m; ++j)
    sum += W[static_cast<size_t>(j) * n + f] * W[static_cast<size_t>(j) * n + f];
  return std::sqrt(sum);
}

double column_cosine(const std::vector<double>& W, int n, int m, int f, int g) {
  double dot = 0;
  for (int j = 0; j < m; ++j)
    dot += W[static_cast<size_t>(j) * n + f] * W[static_cast<size_t>(j) * n + g];
  const double norms = column_norm(W, n, m, f) * column_norm(W, n, m, g);
  return norms > 0 ? dot / norms : 0.0;
}

std::vector<double> angle_gaps(const std::vector<double>& W, int n) {
  std::vector<double> angles;
  for (int f = 0; f < n; ++f)
    if (column_norm(W, n, 2, f) > kRepresented)
      angles.push_back(std::atan2(W[static_cast<size_t>(n) + f], W[static_cast<size_t>(f)]) *
                       180.0 / kPi);
  std::sort(angles.begin(), angles.end());
  std::vector<double> gaps;
  for (size_t k = 0; k < angles.size(); ++k)
    gaps.push_back(k + 1 < angles.size() ? angles[k + 1] - angles[k]
                                         : angles.front() + 360.0 - angles[k]);
  if (angles.size() == 1) gaps = {360.0};
  return gaps;
}

}  // namespace tms

std::vector<TmsExperiment> tms_experiments(TmsScale scale, int steps) {
  const bool full = scale == TmsScale::full;
  if (steps <= 0) steps = 10000;  // the paper's
  const std::string seeds = full ? "range(0,10)" : "range(0,5)";
  std::vector<TmsExperiment> out;

  SweepAxesText intro = axes_with(kIntroDensities, seeds, steps);
  intro.importance_decay = "0.9";
  out.push_back(experiment("intro",
                           "5 features in 2 dimensions, importance 0.9^f, density 20^-linspace(0, "
                           "1, 10): from two orthogonal features to a pentagon",
                           5, 2, intro, ImportanceRule::decay));

  SweepAxesText twenty =
      axes_with("1,0.3,0.1,0.03,0.01,0.003,0.001", full ? "range(0,10)" : "range(0,3)", steps);
  twenty.model = "linear,relu";
  twenty.importance_decay = "0.7";
  out.push_back(experiment("tms-20-5",
                           "20 features in 5 dimensions, importance 0.7^f: linear and ReLU "
                           "models as density falls",
                           20, 5, twenty, ImportanceRule::decay));

  SweepAxesText geometry = axes_with(full ? "logspace(0,-2,16)" : "logspace(0,-1.5,8)",
                                     full ? "range(0,2)" : "0", steps);
  out.push_back(experiment(full ? "geometry-400-30" : "geometry-200-20",
                           full ? "400 features in 30 dimensions, uniform importance: feature "
                                  "dimensionality and D*"
                                : "200 features in 20 dimensions (reduced from the paper's "
                                  "400 -> 30), uniform importance: feature dimensionality and D*",
                           full ? 400 : 200, full ? 30 : 20, geometry, ImportanceRule::vector));

  out.push_back(experiment("correlated",
                           "4 features in 2 dimensions as two correlated pairs (ARENA's "
                           "densities 400^-linspace(0.5, 1, 5))",
                           4, 2, axes_with(kCorrelatedDensities, seeds, steps),
                           ImportanceRule::vector, FeatureGroups{2, 0, 2}));
  out.push_back(experiment("anticorrelated",
                           "4 features in 2 dimensions as two anticorrelated pairs (ARENA's "
                           "densities 10^-linspace(0.5, 1, 5))",
                           4, 2, axes_with(kAnticorrelatedDensities, seeds, steps),
                           ImportanceRule::vector, FeatureGroups{0, 2, 2}));

  // TMS's privileged basis with ARENA's settings (NeuronModel: 10 features, 5 neurons,
  // importance 0.75^i for i = 1..10 — here 0.75^f, the same up to a constant factor — and its seven
  // densities).
  SweepAxesText privileged =
      axes_with("0.75,0.35,0.15,0.1,0.06,0.02,0.01", full ? "range(0,20)" : "range(0,8)", steps);
  privileged.model = "neuron";
  privileged.importance_decay = "0.75";
  out.push_back(experiment("privileged-basis",
                           "the neuron model (h = ReLU(W x)), 10 features and 5 neurons, "
                           "importance 0.75^f: monosemantic neurons when dense, polysemantic "
                           "when sparse",
                           10, 5, privileged, ImportanceRule::decay));

  SweepAxesText collapse = axes_with("0.05", seeds, steps);
  collapse.varied_density = "logspace(-1.3010299956639813,-3,6)";
  out.push_back(experiment("collapse",
                           "5 features in 2 dimensions at density 0.05, feature 4 made sparser: "
                           "the pentagon collapses into a pair of digons",
                           5, 2, collapse, ImportanceRule::vector, FeatureGroups{}, 4));
  return out;
}

TmsVerdict judge_tms(const TmsExperiment& e, const RunDir& dir) {
  const std::vector<Cell> cells = best_cells(e.spec, dir);
  if (e.name == "intro") return judge_intro(e.spec, cells);
  if (e.name == "tms-20-5") return judge_20_5(e.spec, cells);
  if (e.name.rfind("geometry", 0) == 0) return judge_geometry(e.spec, cells);
  if (e.name == "correlated") return judge_pairs(e.spec, cells, true);
  if (e.name == "anticorrelated") return judge_pairs(e.spec, cells, false);
  if (e.name == "privileged-basis") return judge_privileged(e.spec, cells);
  return judge_collapse(e.spec, cells);
}

}  // namespace sp
