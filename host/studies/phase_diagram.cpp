#include "host/studies/phase_diagram.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace sp {

PhaseDiagramOptions default_phase_diagram(const std::string& backend_name) {
  PhaseDiagramOptions o;
  if (backend_name != "cuda") {
    // Measured on the 2-core development machine (cpu backend, AVX-512): about 40 s.
    o.importance_cells = 40;
    o.density_cells = 40;
    o.seeds = 4;
    o.steps = 3000;
    o.batch = 1024;
  }
  return o;
}

SweepSpec phase_diagram_sweep(const PhaseDiagramOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw UsageError(message);
  };
  require(o.importance_cells >= 1 && o.importance_cells <= 10000,
          fmt::format("--importance-cells: {} is outside the accepted range [1, 10000]",
                      o.importance_cells));
  require(
      o.density_cells >= 1 && o.density_cells <= 10000,
      fmt::format("--density-cells: {} is outside the accepted range [1, 10000]", o.density_cells));
  require(o.seeds >= 1 && o.seeds <= 100000,
          fmt::format("--seeds: {} is outside the accepted range [1, 100000]", o.seeds));
  require(o.eval_points >= 1,
          fmt::format("--eval-points: {} is not accepted: each cell's best seed is the one with "
                      "the lowest eval_loss (1 or more; default 10000)",
                      o.eval_points));
  require(std::isfinite(o.importance_min) && std::isfinite(o.importance_max) &&
              o.importance_min > 0 && o.importance_max >= o.importance_min &&
              o.importance_max <= 1e6,
          fmt::format("--importance-range: [{}, {}] is not accepted (0 < min <= max <= 1000000)",
                      o.importance_min, o.importance_max));
  require(std::isfinite(o.density_min) && o.density_min > 0 && o.density_max <= 1 &&
              o.density_max >= o.density_min,
          fmt::format("--density-range: [{}, {}] is not accepted (0 < min <= max <= 1)",
                      o.density_min, o.density_max));
  SweepSpec spec;
  spec.base.n_features = 2;
  spec.base.n_hidden = 1;
  spec.base.mode = DataMode::fresh;
  spec.base.batch = o.batch;
  spec.base.eval_points = o.eval_points;
  spec.base.eval_every = 0;
  spec.base.snapshot_every = 0;
  spec.importance_rule = ImportanceRule::relative;
  spec.relative_feature = 1;
  spec.chunk_models = o.chunk_models;
  SweepAxesText axes;
  axes.model = "relu";
  axes.steps = std::to_string(o.steps);
  axes.lr = format_number(o.lr);
  axes.density = fmt::format("logspace({},{},{})", format_number(std::log10(o.density_min)),
                             format_number(std::log10(o.density_max)), o.density_cells);
  axes.relative_importance =
      fmt::format("logspace({},{},{})", format_number(std::log10(o.importance_min)),
                  format_number(std::log10(o.importance_max)), o.importance_cells);
  axes.seed =
      fmt::format("range({},{})", o.first_seed, o.first_seed + static_cast<uint64_t>(o.seeds));
  set_axes(spec, axes);
  return spec;
}

ClosedForm closed_form(double p, double r) {
  const double single = p / 3 - p * p / 4;
  return {r * single, single, (1 + r) * p * p / 6};
}

std::string ClosedForm::winner() const {
  if (ignored <= dedicated && ignored <= antipodal) return "ignored";
  if (dedicated <= antipodal) return "dedicated";
  return "antipodal";
}

double ClosedForm::margin() const {
  double v[3] = {ignored, dedicated, antipodal};
  std::sort(v, v + 3);
  return v[0] > 0 ? v[1] / v[0] : std::numeric_limits<double>::infinity();
}

std::vector<PhaseCell> aggregate_phase_diagram(const PhaseDiagramOptions& o, const RunDir& dir) {
  const SweepSpec spec = phase_diagram_sweep(o);
  const Table table = read_csv(dir, "results.csv");
  const std::string path = dir.path_of("results.csv");
  const int c_id = table.column("model_id"), c_status = table.column("status"),
            c_eval = table.column("eval_loss"), c_train = table.column("train_loss"),
            c_phase = table.column("phase"), c_w1 = table.column("W_0_0"),
            c_w2 = table.column("W_0_1"), c_b1 = table.column("b_0"), c_b2 = table.column("b_1");
  auto axis = [&](const char* name) -> const std::vector<double>& {
    for (const Axis& a : spec.axes)
      if (a.name == name) return a.values;
    throw std::logic_error(std::string("phase_diagram_sweep: no axis ") + name);
  };
  const std::vector<double>& densities = axis("density");
  const std::vector<double>& importances = axis("relative_importance");
  std::vector<PhaseCell> cells(densities.size() * importances.size());
  for (size_t d = 0; d < densities.size(); ++d)
    for (size_t i = 0; i < importances.size(); ++i) {
      PhaseCell& cell = cells[d * importances.size() + i];
      cell.density = densities[d];
      cell.relative_importance = importances[i];
      cell.theory = closed_form(cell.density, cell.relative_importance);
    }
  if (static_cast<int64_t>(table.rows.size()) != spec.model_count())
    throw std::runtime_error(fmt::format("'{}' has {} rows, the diagram needs {}", path,
                                         table.rows.size(), spec.model_count()));
  auto number = [](const std::string& text) { return std::strtod(text.c_str(), nullptr); };
  for (const auto& row : table.rows) {
    const int64_t id = std::stoll(row.at(c_id));
    PhaseCell& cell = cells.at(static_cast<size_t>(id / o.seeds));
    ++cell.seeds;
    if (row.at(c_status) != "ok") continue;
    ++cell.seeds_ok;
    const std::string& phase = row.at(c_phase);
    cell.ignored += phase == "ignored";
    cell.dedicated += phase == "dedicated";
    cell.antipodal += phase == "antipodal";
    cell.other += phase == "other";
    const double loss = number(row.at(c_eval));
    if (cell.best_model_id < 0 || loss < cell.best_eval_loss) {
      cell.best_model_id = id;
      cell.best_eval_loss = loss;
      cell.best_train_loss = number(row.at(c_train));
      cell.phase = phase;
      cell.W1 = number(row.at(c_w1));
      cell.W2 = number(row.at(c_w2));
      cell.b1 = number(row.at(c_b1));
      cell.b2 = number(row.at(c_b2));
    }
  }
  return cells;
}

PhaseAgreement phase_agreement(const std::vector<PhaseCell>& cells, double far_margin) {
  PhaseAgreement a;
  for (const PhaseCell& cell : cells) {
    ++a.cells;
    a.agree += cell.agrees();
    if (cell.theory.margin() >= far_margin) {
      ++a.far_cells;
      a.far_agree += cell.agrees();
    }
  }
  return a;
}

std::string phase_diagram_csv(const std::vector<PhaseCell>& cells) {
  std::string out =
      "density,sparsity,relative_importance,seeds,seeds_ok,best_model_id,best_eval_loss,"
      "best_train_loss,phase,W_0_0,W_0_1,b_0,b_1,seeds_ignored,seeds_dedicated,seeds_antipodal,"
      "seeds_other,loss_ignored,loss_dedicated,loss_antipodal,closed_form_winner,margin,agrees\n";
  for (const PhaseCell& c : cells) {
    // Closed-form losses in results.csv's units: the per-sample sum over 2 features, halved.
    out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                       format_number(c.density), format_number(1 - c.density),
                       format_number(c.relative_importance), c.seeds, c.seeds_ok, c.best_model_id,
                       format_number(c.best_eval_loss), format_number(c.best_train_loss), c.phase,
                       format_number(c.W1), format_number(c.W2), format_number(c.b1),
                       format_number(c.b2), c.ignored, c.dedicated, c.antipodal, c.other,
                       format_number(c.theory.ignored / 2), format_number(c.theory.dedicated / 2),
                       format_number(c.theory.antipodal / 2), c.theory.winner(),
                       format_number(c.theory.margin()), c.agrees() ? 1 : 0);
  }
  return out;
}

std::string phase_diagram_map(const PhaseDiagramOptions& o, const std::vector<PhaseCell>& cells) {
  auto letter = [](const std::string& phase) {
    if (phase == "ignored") return 'I';
    if (phase == "dedicated") return 'D';
    if (phase == "antipodal") return 'A';
    if (phase == "other") return '?';
    return 'x';
  };
  const int w = o.importance_cells;
  std::string out =
      fmt::format("{:>9}  {:<{}}   {}\n", "density", "trained (best seed)", w, "closed form");
  for (int d = o.density_cells - 1; d >= 0; --d) {
    std::string trained, theory;
    for (int i = 0; i < w; ++i) {
      const PhaseCell& cell = cells[static_cast<size_t>(d * w + i)];
      trained += letter(cell.phase);
      theory += letter(cell.theory.winner());
    }
    out += fmt::format("{:>9.3g}  {}   {}\n", cells[static_cast<size_t>(d * w)].density, trained,
                       theory);
  }
  out += fmt::format("{:>9}  relative importance {:.3g} -> {:.3g}\n", "", o.importance_min,
                     o.importance_max);
  out +=
      "I ignored (feature 2 dropped), D dedicated (feature 1 dropped), A antipodal, ? other, "
      "x diverged\n";
  return out;
}

nlohmann::json phase_diagram_json(const PhaseDiagramOptions& o) {
  return {{"importance_cells", o.importance_cells},
          {"density_cells", o.density_cells},
          {"seeds", o.seeds},
          {"first_seed", o.first_seed},
          {"importance_min", o.importance_min},
          {"importance_max", o.importance_max},
          {"density_min", o.density_min},
          {"density_max", o.density_max},
          {"steps", o.steps},
          {"batch", o.batch},
          {"eval_points", o.eval_points},
          {"lr", o.lr},
          {"chunk_models", o.chunk_models}};
}

PhaseDiagramOptions phase_diagram_from_json(const nlohmann::json& j) {
  PhaseDiagramOptions o;
  o.importance_cells = j.at("importance_cells").get<int>();
  o.density_cells = j.at("density_cells").get<int>();
  o.seeds = j.at("seeds").get<int>();
  o.first_seed = j.at("first_seed").get<uint64_t>();
  o.importance_min = j.at("importance_min").get<double>();
  o.importance_max = j.at("importance_max").get<double>();
  o.density_min = j.at("density_min").get<double>();
  o.density_max = j.at("density_max").get<double>();
  o.steps = j.at("steps").get<int>();
  o.batch = j.at("batch").get<int>();
  o.eval_points = j.at("eval_points").get<int>();
  o.lr = j.at("lr").get<double>();
  o.chunk_models = j.at("chunk_models").get<int64_t>();
  return o;
}

std::string finish_phase_diagram(const RunDir& dir, const PhaseDiagramOptions& options,
                                 nlohmann::json manifest, double seconds) {
  const std::vector<PhaseCell> cells = aggregate_phase_diagram(options, dir);
  dir.write("phase_diagram.csv", phase_diagram_csv(cells));
  const PhaseAgreement a = phase_agreement(cells);
  manifest["phase_diagram"]["agreement"] = {{"cells", a.cells},
                                            {"agree", a.agree},
                                            {"far_cells", a.far_cells},
                                            {"far_agree", a.far_agree}};
  manifest["timings_s"]["total"] = seconds;
  dir.write("manifest.json", manifest.dump(2) + "\n");
  return phase_diagram_map(options, cells) +
         fmt::format(
             "best-seed phase agrees with the closed-form winner in {} of {} cells ({:.0f}%); in "
             "{} of {} cells far from a boundary ({:.0f}%)\n",
             a.agree, a.cells, 100.0 * a.agree / a.cells, a.far_agree, a.far_cells,
             a.far_cells ? 100.0 * a.far_agree / a.far_cells : 0.0);
}

}  // namespace sp
