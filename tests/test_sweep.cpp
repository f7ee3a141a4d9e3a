// Sweeps: axis syntax, row-major ids, a model trained in a sweep equals the model trained alone,
// the analyses' columns, and the phase diagram against its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "host/backends/backend.hpp"
#include "host/studies/phase_diagram.hpp"
#include "host/sweep/sweep.hpp"

namespace sp {
namespace {

namespace fs = std::filesystem;

TEST(ParseAxis, ValuesListsAndRanges) {
  EXPECT_EQ(parse_axis("0.5", "--x"), (std::vector<double>{0.5}));
  EXPECT_EQ(parse_axis(" 0.1, 0.5 ,0.9", "--x"), (std::vector<double>{0.1, 0.5, 0.9}));
  EXPECT_EQ(parse_axis("linspace(0,1,5)", "--x"), (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(parse_axis("linspace(2,3,1)", "--x"), (std::vector<double>{2}));
  const std::vector<double> logs = parse_axis("logspace(-2, 0, 3)", "--x");
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_DOUBLE_EQ(logs[0], 0.01);
  EXPECT_DOUBLE_EQ(logs[1], 0.1);
  EXPECT_DOUBLE_EQ(logs[2], 1.0);
  EXPECT_EQ(parse_axis("range(0,4)", "--x"), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(parse_axis("range(10,0,-4)", "--x"), (std::vector<double>{10, 6, 2}));
}

TEST(ParseAxis, BadTextNamesTheOption) {
  for (const char* bad : {"", "abc", "1,,2", "linspace(0,1)", "linspace(0,1,0)",
                          "linspace(0,1,2.5)", "logspace(0,1,3", "range(0,1.5)", "range(0,5,0)",
                          "range(5,0)", "cubes(1,2,3)", "nan", "1,inf"}) {
    try {
      parse_axis(bad, "--sparsity");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--sparsity: ", 0), 0u) << e.what();
    }
  }
}

SweepSpec small_spec() {
  SweepSpec spec;
  spec.base.mode = DataMode::fresh;
  spec.base.batch = 64;
  spec.base.eval_points = 100;
  spec.base.eval_every = 0;
  spec.importance_rule = ImportanceRule::relative;
  spec.relative_feature = 1;
  SweepAxesText text;
  text.model = "linear,relu";
  text.steps = "20,30";
  text.lr = "1e-3";
  text.density = "logspace(-1,0,3)";
  text.relative_importance = "0.5,2";
  text.seed = "range(7,9)";
  set_axes(spec, text);
  return spec;
}

TEST(Sweep, IdsAreRowMajorOverTheAxes) {
  const SweepSpec spec = small_spec();
  EXPECT_EQ(spec.shape(), (std::vector<size_t>{2, 2, 1, 1, 3, 2, 2}));
  ASSERT_EQ(spec.model_count(), 48);
  // id = (((((model·2 + steps)·1 + lr)·1 + weight decay)·3 + density)·2 + importance)·2 + seed
  const int64_t id = (((((1 * 2 + 0) * 1 + 0) * 1 + 0) * 3 + 2) * 2 + 1) * 2 + 0;
  int steps = 0;
  const ModelSpec m = spec.model(id, &steps);
  EXPECT_EQ(m.kind, ModelKind::relu);
  EXPECT_EQ(steps, 20);
  EXPECT_DOUBLE_EQ(m.sparsity[0], 0.0);  // density 1
  EXPECT_DOUBLE_EQ(m.sparsity[1], 0.0);
  EXPECT_EQ(m.importance, (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(m.seed, 7u);
  const ModelSpec last = spec.model(47, &steps);
  EXPECT_EQ(last.seed, 8u);
  EXPECT_EQ(steps, 30);
  for (int64_t k = 0; k < spec.model_count(); ++k) {
    spec.model(k, &steps);
    EXPECT_EQ(spec.steps_of(k), steps) << "model " << k;
  }
}

TEST(Sweep, ImportanceDecayAndPerFeatureSparsity) {
  SweepSpec spec;
  spec.base.n_features = 3;
  spec.importance_rule = ImportanceRule::decay;
  spec.feature_sparsity = {0.1, 0.2, 0.3};
  SweepAxesText text;
  text.importance_decay = "0.9";
  set_axes(spec, text);
  const ModelSpec m = spec.model(0, nullptr);
  EXPECT_EQ(m.sparsity, (std::vector<double>{0.1, 0.2, 0.3}));
  EXPECT_DOUBLE_EQ(m.importance[2], 0.81);
}

// One feature's sparsity as an axis (TMS's pentagon collapsing into digons), over the others' — a
// --density axis or a --feature-sparsity vector: after sparsity|density in the id order.
TEST(Sweep, OneFeaturesSparsityIsAnAxisOverTheOthers) {
  SweepSpec spec;
  spec.base.n_features = 5;
  spec.base.n_hidden = 2;
  spec.importance = std::vector<double>(5, 1.0);
  spec.varied_feature = 4;
  SweepAxesText text;
  text.density = "0.05,0.1";
  text.varied_density = "0.001,0.01,0.02";
  text.seed = "range(0,2)";
  set_axes(spec, text);
  EXPECT_EQ(spec.shape(), (std::vector<size_t>{1, 1, 1, 1, 2, 3, 2}));
  EXPECT_EQ(spec.axes[5].name, "varied_density");
  const ModelSpec m = spec.model(1 * 6 + 2 * 2 + 1, nullptr);  // density 0.1, varied 0.02, seed 1
  EXPECT_EQ(m.seed, 1u);
  EXPECT_DOUBLE_EQ(m.sparsity[0], 0.9);
  EXPECT_DOUBLE_EQ(m.sparsity[3], 0.9);
  EXPECT_DOUBLE_EQ(m.sparsity[4], 0.98);

  SweepSpec vector_spec;
  vector_spec.base.n_features = 3;
  vector_spec.importance = std::vector<double>(3, 1.0);
  vector_spec.feature_sparsity = {0.1, 0.2, 0.3};
  vector_spec.varied_feature = 0;
  SweepAxesText vector_text;
  vector_text.varied_sparsity = "0.5,0.7";
  set_axes(vector_spec, vector_text);
  EXPECT_EQ(vector_spec.model(1, nullptr).sparsity, (std::vector<double>{0.7, 0.2, 0.3}));

  SweepAxesText both;
  both.varied_sparsity = "0.5";
  both.varied_density = "0.5";
  SweepSpec refused = spec;
  refused.axes.clear();
  EXPECT_THROW(set_axes(refused, both), UsageError);
  SweepAxesText out_of_range;
  out_of_range.varied_density = "1.5";
  refused.axes.clear();
  EXPECT_THROW(set_axes(refused, out_of_range), UsageError);
}

std::string temp_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("superpose_sweep_" + name);
  fs::remove_all(dir);
  return dir.string();
}

TEST(Sweep, RowsEqualTheModelsTrainedAloneWhateverTheChunking) {
  SweepSpec spec = small_spec();
  spec.chunk_models = 5;  // chunks also break where steps change
  auto backend = make_cpu_backend(2);
  const RunDir dir(temp_dir("rows"));
  const SweepOutcome outcome = run_sweep(*backend, spec, dir, "sweep");
  EXPECT_EQ(outcome.models, 48);
  EXPECT_EQ(outcome.chunks, 12);  // 4 blocks of 12 models with one steps value, 3 chunks each
  EXPECT_EQ(outcome.diverged, 0);
  const Table table = read_csv(dir, "results.csv");
  ASSERT_EQ(table.rows.size(), 48u);
  for (int64_t id : {int64_t{0}, int64_t{13}, int64_t{47}}) {
    GroupSpec alone = spec.base;
    alone.models.push_back(spec.model(id, &alone.steps));
    const ModelResult r = make_cpu_backend(1)->train(alone)[0];
    const auto& row = table.rows[static_cast<size_t>(id)];
    EXPECT_EQ(row[table.column("model_id")], std::to_string(id));
    EXPECT_EQ(row[table.column("W_0_1")], format_number(r.W[1])) << "model " << id;
    EXPECT_EQ(row[table.column("eval_loss")], format_number(r.eval_loss)) << "model " << id;
    EXPECT_EQ(row[table.column("steps")], std::to_string(alone.steps));
  }
  EXPECT_EQ(outcome.manifest["shape"], nlohmann::json::array({2, 2, 1, 1, 3, 2, 2}));
  EXPECT_EQ(outcome.manifest["axes"][3]["name"], "weight_decay");
  EXPECT_EQ(outcome.manifest["axes"][4]["name"], "density");
}

// A sweep of one model per chunk on the cpu backend: chunks are batched into one call until every
// thread has a model (Backend::models_per_call), and the rows are byte for byte those of one
// thread taking one chunk at a time.
TEST(Sweep, ChunksOfOneModelShareTheThreadsWithoutChangingARow) {
  SweepSpec spec = small_spec();
  spec.chunk_models = 1;
  const RunDir two(temp_dir("one_per_chunk_2")), one(temp_dir("one_per_chunk_1"));
  auto two_threads = make_cpu_backend(2);
  auto one_thread = make_cpu_backend(1);
  EXPECT_EQ(two_threads->models_per_call(), 2);
  const SweepOutcome outcome = run_sweep(*two_threads, spec, two, "sweep");
  run_sweep(*one_thread, spec, one, "sweep");
  EXPECT_EQ(outcome.chunks, 48);
  EXPECT_EQ(read_csv(two, "results.csv").rows, read_csv(one, "results.csv").rows);
}

// Another sweep's directory is refused; the same sweep on another backend resumes it (the backends
// give the same bits, and shards on a GPU node and a CPU node share one sweep).
// Another sweep's directory is refused; so is the same sweep in another arithmetic (the float64
// reference's chunks never resume or merge into the float32 backends' ones, nor the other way);
// the same sweep on a backend of its arithmetic (other threads) resumes every chunk.
TEST(Sweep, RefusesAnotherSweepOrAnotherArithmeticAndResumesItsOwn) {
  SweepSpec spec = small_spec();
  auto backend = make_cpu_backend(2);
  const RunDir dir(temp_dir("other"));
  run_sweep(*backend, spec, dir, "sweep");
  SweepAxesText text;
  text.seed = "range(0,3)";
  text.relative_importance = "1";
  set_axes(spec, text);
  EXPECT_THROW(run_sweep(*backend, spec, dir, "sweep"), UsageError);
  try {
    run_sweep(*make_reference_backend(), small_spec(), dir, "sweep");
    ADD_FAILURE() << "the reference backend resumed a float32 sweep";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("trained in float32 arithmetic, and the reference "
                                         "backend trains in float64"),
              std::string::npos)
        << e.what();
  }
  const SweepOutcome again = run_sweep(*make_cpu_backend(1), small_spec(), dir, "sweep");
  EXPECT_EQ(again.chunks_resumed, again.chunks);
  EXPECT_EQ(again.chunks_trained, 0);
}

// Seeds shared across cells (the default: common random numbers) or each cell's own streams
// (--cell-streams independent): the key is cell_stream_seed(seed, cell), a cell being a run of the
// seed axis; it is part of the identity a resume and a merge trust, and reads back.
TEST(Sweep, IndependentCellsKeyEachCellsSeedsTheirOwnStreams) {
  SweepSpec shared = small_spec(), independent = small_spec();
  independent.independent_cells = true;
  const int64_t seeds = 2;
  std::set<uint64_t> keys;
  for (int64_t id = 0; id < shared.model_count(); ++id) {
    const uint64_t seed = shared.model(id, nullptr).seed;
    EXPECT_EQ(seed, id % seeds ? 8u : 7u);  // shared: the axis value in every cell
    const uint64_t key = independent.model(id, nullptr).seed;
    EXPECT_EQ(key, cell_stream_seed(seed, id / seeds));
    keys.insert(key);
  }
  EXPECT_EQ(static_cast<int64_t>(keys.size()), shared.model_count());  // every model its own
  EXPECT_NE(cell_stream_seed(7, 0), cell_stream_seed(7, 1));
  EXPECT_NE(cell_stream_seed(7, 0), cell_stream_seed(8, 0));
  const nlohmann::json a = sweep_identity(shared, "sweep", "float32"),
                       b = sweep_identity(independent, "sweep", "float32");
  EXPECT_FALSE(a.contains("cell_streams"));  // older identities read as shared
  EXPECT_NE(a, b);
  EXPECT_TRUE(sweep_from_identity(b).independent_cells);
  EXPECT_FALSE(sweep_from_identity(a).independent_cells);
  // A resume with the other choice is refused.
  auto backend = make_cpu_backend(2);
  const RunDir dir(temp_dir("cell_streams"));
  run_sweep(*backend, shared, dir, "sweep");
  EXPECT_THROW(run_sweep(*backend, independent, dir, "sweep"), UsageError);
}

TEST(AnalysisColumns, EveryShapeGetsGeometryAnd2to1GetsThePhase) {
  GroupSpec g;
  ModelResult r;
  r.W = {0.9, -1.0};
  r.b = {0, 0};
  auto columns = analysis_columns(g, r);
  ASSERT_EQ(columns.front().first, "phase");
  EXPECT_EQ(columns.front().second, "antipodal");
  EXPECT_EQ(columns.back().first, "dimensions_per_feature");
  g.n_features = 3;
  g.n_hidden = 2;
  r.W = {1, 0, 0, 0, 1, 0};
  columns = analysis_columns(g, r);
  EXPECT_EQ(columns.size(), 10u);  // 3 norms, 3 interferences, 3 dimensionalities, 1
  EXPECT_EQ(columns[0], (std::pair<std::string, std::string>{"norm_0", "1"}));
  EXPECT_EQ(columns[8], (std::pair<std::string, std::string>{"dimensionality_2", "0"}));
  EXPECT_EQ(columns[9], (std::pair<std::string, std::string>{"dimensions_per_feature", "1"}));
}

TEST(ClosedForm, WinnersInTheCorners) {
  EXPECT_EQ(closed_form(1.0, 0.1).winner(), "ignored");     // dense, feature 2 unimportant
  EXPECT_EQ(closed_form(1.0, 10.0).winner(), "dedicated");  // dense, feature 2 important
  EXPECT_EQ(closed_form(0.01, 1.0).winner(), "antipodal");  // sparse
  const ClosedForm c = closed_form(0.5, 2.0);
  EXPECT_DOUBLE_EQ(c.dedicated, 0.5 / 3 - 0.0625);
  EXPECT_DOUBLE_EQ(c.ignored, 2 * c.dedicated);
  EXPECT_DOUBLE_EQ(c.antipodal, 3 * 0.25 / 6);
}

TEST(PhaseDiagram, SmallDiagramAgreesWithTheClosedFormFarFromBoundaries) {
  PhaseDiagramOptions o = default_phase_diagram("cpu");
  o.importance_cells = 5;
  o.density_cells = 5;
  o.seeds = 6;
  o.batch = 256;
  o.eval_points = 4000;
  auto backend = make_cpu_backend(0);
  const RunDir dir(temp_dir("phase"));
  run_sweep(*backend, phase_diagram_sweep(o), dir, "phase-diagram");
  const std::vector<PhaseCell> cells = aggregate_phase_diagram(o, dir);
  ASSERT_EQ(cells.size(), 25u);
  const PhaseAgreement a = phase_agreement(cells, 2.5);
  ASSERT_GE(a.far_cells, 12);
  for (const PhaseCell& c : cells) {
    EXPECT_EQ(c.seeds, 6);
    if (c.theory.margin() >= 2.5) {
      EXPECT_EQ(c.phase, c.theory.winner())
          << "density " << c.density << ", relative importance " << c.relative_importance;
    }
  }
  // All three phases appear, so the test could fail in each direction.
  int ignored = 0, dedicated = 0, antipodal = 0;
  for (const PhaseCell& c : cells) {
    ignored += c.phase == "ignored";
    dedicated += c.phase == "dedicated";
    antipodal += c.phase == "antipodal";
  }
  EXPECT_GT(ignored, 0);
  EXPECT_GT(dedicated, 0);
  EXPECT_GT(antipodal, 0);
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// The field table (host/core/config.hpp: SP_GROUP_FIELDS) is what a sweep's identity is derived
// from: every row but those never kept changes the group's record (and so the identity a resume
// trusts) when its value changes, and reads back from it; a row left out of group_json, or a member
// of GroupSpec outside the table (a static_assert there), would let a resumed sweep keep chunks
// trained with another value.
void perturb(int& value) { value += 1; }
void perturb(uint64_t& value) { value += 1; }
void perturb(double& value) { value /= 2; }
void perturb(bool& value) { value = !value; }
void perturb(DataMode& value) {
  value = value == DataMode::fixed ? DataMode::fresh : DataMode::fixed;
}
void perturb(LrSchedule& value) {
  value = value == LrSchedule::cosine ? LrSchedule::linear : LrSchedule::cosine;
}
void perturb(FeatureGroups& value) { value.correlated += 1; }

TEST(FieldTable, EveryRowIsInTheIdentityAndReadsBack) {
  int rows = 0;
#define SP_CHECK_ROW(type, member, initial, option, lo, hi, key, rule, help)                   \
  {                                                                                            \
    GroupSpec g;                                                                               \
    g.n_features = 8;                                                                          \
    g.steps = 100;                                                                             \
    g.mode = Kept::rule == Kept::fresh ? DataMode::fresh : DataMode::fixed;                    \
    if (Kept::rule == Kept::groups) g.groups = FeatureGroups{1, 0, 2};                         \
    GroupSpec changed = g;                                                                     \
    perturb(changed.member);                                                                   \
    if (Kept::rule == Kept::never) {                                                           \
      EXPECT_EQ(group_json(g), group_json(changed)) << key << " is never kept, yet it is";     \
    } else {                                                                                   \
      EXPECT_NE(group_json(g), group_json(changed)) << key << " is not in the group's record"; \
      EXPECT_EQ(group_json(group_from_json(group_json(changed))), group_json(changed)) << key; \
    }                                                                                          \
    ++rows;                                                                                    \
  }
  SP_GROUP_FIELDS(SP_CHECK_ROW)
#undef SP_CHECK_ROW
  EXPECT_GE(rows, 15);
  // The rows never kept are how results are kept, not what they are: a row newly tagged `never`
  // must be added here, with its reason, or this fails.
  std::vector<std::string> never;
#define SP_NEVER_ROW(type, member, initial, option, lo, hi, key, rule, help) \
  if (Kept::rule == Kept::never) never.push_back(key);
  SP_GROUP_FIELDS(SP_NEVER_ROW)
#undef SP_NEVER_ROW
  EXPECT_EQ(never, std::vector<std::string>{"trajectories"});
  // A sweep's identity holds the group's record (its steps are an axis of their own).
  SweepSpec spec;
  spec.importance = std::vector<double>(2, 1.0);
  set_axes(spec, SweepAxesText{});
  nlohmann::json group = group_json(spec.base);
  group.erase("steps");
  group.erase("models");
  EXPECT_EQ(sweep_identity(spec, "sweep", "float32").at("group"), group);
}

}  // namespace
}  // namespace sp
