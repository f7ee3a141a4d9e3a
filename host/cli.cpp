#include "host/cli.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "host/data.hpp"
#include "host/experiments.hpp"
#include "host/job.hpp"
#include "host/npy.hpp"
#include "host/parse.hpp"
#include "host/phase_diagram.hpp"
#include "host/resources.hpp"
#include "host/run_dir.hpp"
#include "host/sweep.hpp"
#include "host/tms.hpp"

namespace sp {

namespace {

namespace fs = std::filesystem;

struct CommonOptions {
  std::string backend = "auto";
  std::string out;
  int threads = 0;
  bool overwrite = false;
  CudaOptions cuda;  // --steps-per-launch, --fixed-rows (checked by make_backend)
};

// Integers are decimal, whole and within [lo, hi] (host/parse.hpp's one grammar): CLI11 would read
// "010" as octal (8), "" as 0 and wrap "-1" into an unsigned 2^64 − 1. This transform checks the
// text and gives CLI11 the number without leading zeros, so "010" is ten, as everywhere else in
// superpose.
CLI::Validator decimal(long double lo, long double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        std::string digits;
        const std::string problem = whole_problem(text, lo, hi, &digits);
        if (problem.empty()) text = digits;
        return problem;
      },
      "INTEGER");
}

// Numbers are finite decimals (host/parse.hpp): "" (which CLI11 would read as 0), "0x10" and
// "1e3x" are refused.
CLI::Validator number() {
  return CLI::Validator(
      [](std::string& text) -> std::string { return real_problem(text, nullptr); }, "NUMBER");
}

// Text options (axes, lists) may not be empty: an empty --density must not mean "not given".
CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text.find_first_not_of(" \t") == std::string::npos ? "the value is empty" : "";
      },
      "TEXT");
}

constexpr long double kIntMax = 2147483647.0L;

void add_common(CLI::App* command, CommonOptions& common, const std::string& default_out) {
  common.out = default_out;
  command->add_option("--backend", common.backend, "auto | cuda | cpu | reference")
      ->check(non_empty())
      ->capture_default_str();
  command->add_option("--out", common.out, "run directory")
      ->check(non_empty())
      ->capture_default_str();
  command
      ->add_option("--threads", common.threads,
                   "CPU threads for the cpu backend (0: every CPU this process may run on)")
      ->transform(decimal(0, kIntMax))
      ->capture_default_str();
  command->add_flag("--overwrite", common.overwrite,
                    "replace another run's results in --out (only a superpose run directory)");
  command
      ->add_option("--steps-per-launch", common.cuda.steps_per_launch,
                   "cuda backend: training steps per kernel launch (K; results do not change)")
      ->transform(decimal(1, 1000000))
      ->capture_default_str();
  command
      ->add_option(
          "--fixed-rows", common.cuda.fixed_rows,
          "cuda backend, fixed data: where each step reads the training rows: auto (shared "
          "memory where they fit, else device memory) | memory | regenerate (drawn again "
          "from their counters); results do not change")
      ->capture_default_str();
}

// The backend, chosen and checked; nothing printed yet (announce, once every check has passed, so
// that an error is the only line a refused run prints).
std::unique_ptr<Backend> open_backend(const CommonOptions& common) {
  // The CPUs this process may run on (its affinity: a Slurm allocation, taskset), which is also
  // what 0 takes: more threads than those would only take turns on them.
  const int cpus = usable_cpus();
  if (common.threads > cpus)
    throw UsageError(fmt::format(
        "--threads: {} is more than the {} CPUs this process may use (accepted: 0 = all, to {})",
        common.threads, cpus, cpus));
  const BackendKind kind = parse_backend_kind(common.backend, "--backend");
  return make_backend(kind, common.threads, common.cuda);
}

void announce(const CommonOptions& common, const Backend& backend) {
  if (parse_backend_kind(common.backend, "--backend") == BackendKind::automatic)
    print_err("superpose: --backend auto chose {} ({})\n", backend.name(), backend.device());
}

int threads_of(const CommonOptions& common, const Backend& backend) {
  if (backend.name() != "cpu") return 1;
  return common.threads > 0 ? common.threads : usable_cpus();
}

std::vector<double> broadcast(const std::vector<double>& values, int n) {
  return values.size() == 1 ? std::vector<double>(n, values[0]) : values;
}

std::string shape_text(const std::vector<size_t>& shape) {
  std::string text;
  for (size_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "(" + text + (shape.size() == 1 ? ",)" : ")");
}

// ------------------------------------------------------------------------------- recipes
// The two papers' training recipes, one option away (--recipe); every setting a recipe names
// applies unless the command line gives it. The essay's is the default.
struct Recipe {
  const char* name;
  const char* data_mode;
  int steps, points, batch, eval_points;
};
constexpr Recipe kRecipes[] = {
    // Even Smaller Models of Superposition: one dataset of 1000 points per model, 800 of them
    // every (full-batch) step for 1000 steps, 200 evaluating. (--data-mode fresh: the same 10,000
    // shared evaluation points as the TMS recipe; docs/math.md says why.)
    {"essay", "fixed", 1000, 1000, 1024, 10000},
    // Toy Models of Superposition (and its notebook): a fresh batch of 1024 every step for 10,000
    // steps at lr 1e-3; evaluated on 10,000 points every model shares (docs/math.md).
    {"tms", "fresh", 10000, 1000, 1024, 10000},
};
const char* const kRecipeOptions[] = {"--data-mode", "--steps", "--points", "--batch",
                                      "--eval-points"};

const Recipe& find_recipe(const std::string& name) {
  for (const Recipe& recipe : kRecipes)
    if (name == recipe.name) return recipe;
  throw UsageError(fmt::format("--recipe: unknown recipe '{}' (accepted: essay, tms)", name));
}

// The options a group shares (shape, data rules, evaluation), for train and sweep alike.
struct GroupOptions {
  CLI::App* command = nullptr;  // the subcommand they were parsed for: which were given
  std::string recipe = "essay";
  GroupSpec spec;  // the field table's options (host/config.hpp: SP_GROUP_FIELDS) land here
  std::map<std::string, std::string> text;  // ... and those of an enumerated type, as given

  bool given(const char* option) const { return command && command->count(option) > 0; }

  // The recipe's settings where the command line gave none; `steps` is the caller's (an int for
  // train, an axis for sweep). Returns the options given that the recipe also sets.
  std::vector<std::string> apply_recipe(const std::function<void(int)>& set_steps) {
    const Recipe& r = find_recipe(recipe);
    if (!given("--data-mode")) text["--data-mode"] = r.data_mode;
    if (!given("--points")) spec.points = r.points;
    if (!given("--batch")) spec.batch = r.batch;
    if (!given("--eval-points")) spec.eval_points = r.eval_points;
    if (!given("--steps")) set_steps(r.steps);
    std::vector<std::string> overridden;
    for (const char* option : kRecipeOptions)
      if (given(option)) overridden.push_back(option);
    return overridden;
  }

  GroupSpec group() const {
    GroupSpec g = spec;
    g.mode = parse_data_mode(text.at("--data-mode"), "--data-mode");
    g.lr_schedule = parse_lr_schedule(text.at("--lr-schedule"), "--lr-schedule");
    // Every value given is checked, in either data mode: an option of the other mode is ignored,
    // but never a value it would refuse.
    if (given("--eval-fraction") && !(g.eval_fraction >= 0.0 && g.eval_fraction < 1.0))
      throw UsageError(fmt::format("--eval-fraction: {} is outside the accepted range [0, 1)",
                                   format_number(g.eval_fraction)));
    return g;
  }
};

// The summary's line on how the models were trained: the recipe, and what it came to.
std::string training_text(const GroupSpec& g, const std::string& recipe,
                          const std::vector<std::string>& overridden, const std::string& steps,
                          const std::string& lr, const std::string& weight_decay) {
  const std::string data =
      g.mode == DataMode::fixed
          ? fmt::format(
                "one dataset of {} points per model, {} training every step (full "
                "batch), {} evaluating",
                g.points, g.train_rows(), g.eval_rows())
          : fmt::format(
                "a fresh batch of {} every step, {} evaluation points every model "
                "shares (--eval-seed {})",
                g.batch, g.eval_points, g.eval_seed);
  std::string extra;
  if (g.lr_schedule != LrSchedule::constant || g.warmup_steps > 0)
    extra += fmt::format(", {} learning-rate schedule after {} warm-up steps",
                         to_string(g.lr_schedule), g.warmup_steps);
  if (g.groups.any())
    extra += fmt::format("; features: {} correlated and {} anticorrelated groups of {}",
                         g.groups.correlated, g.groups.anticorrelated, g.groups.size);
  return fmt::format(
      "recipe {}{}: {}; {} steps, lr {}, AdamW weight decay {}{}\n", recipe,
      overridden.empty() ? "" : fmt::format(" (given: {})", fmt::join(overridden, ", ")), data,
      steps, lr, weight_decay, extra);
}

// One row of the field table as an option of `command`, by its member's type.
void add_field(CLI::App* command, GroupOptions&, const char* option, int& member, long double lo,
               long double hi, const std::string& help) {
  command->add_option(option, member, help)->transform(decimal(lo, hi))->capture_default_str();
}
void add_field(CLI::App* command, GroupOptions&, const char* option, uint64_t& member,
               long double lo, long double hi, const std::string& help) {
  command->add_option(option, member, help)->transform(decimal(lo, hi))->capture_default_str();
}
void add_field(CLI::App* command, GroupOptions&, const char* option, double& member, long double,
               long double, const std::string& help) {
  command->add_option(option, member, help)->check(number())->capture_default_str();
}
template <class Enum>
void add_field(CLI::App* command, GroupOptions& o, const char* option, Enum& member, long double,
               long double, const std::string& help) {
  o.text[option] = to_string(member);
  command->add_option(option, o.text[option], help)->check(non_empty())->capture_default_str();
}
void add_field(CLI::App*, GroupOptions&, const char*, bool&, long double, long double,
               const std::string&) {}  // never an option of its own (a command's flag, if any)
void add_field(CLI::App* command, GroupOptions& o, const char* option, FeatureGroups& groups,
               long double lo, long double hi, const std::string& help) {
  add_field(command, o, option, groups.correlated, lo, hi, help);
  add_field(command, o, "--anticorrelated-groups", groups.anticorrelated, lo, hi,
            "the next G x S features form G groups of S with at most one feature on");
  add_field(command, o, "--group-size", groups.size, 1, hi,
            "S, features per correlated or anticorrelated group");
}

// The group's options: the recipe, and every row of the field table that has an option
// (host/config.hpp: SP_GROUP_FIELDS), with its range and help (`help` overrides a row's).
void add_group_options(CLI::App* command, GroupOptions& o,
                       const std::map<std::string, std::string>& help = {}) {
  o.command = command;
  command
      ->add_option("--recipe", o.recipe,
                   "essay: the essay's fixed 1000 points, full batch, 1000 steps | tms: Toy "
                   "Models of Superposition's fresh batches of 1024 for 10000 steps, 10000 "
                   "evaluation points; options given override it")
      ->check(non_empty())
      ->capture_default_str();
#define SP_GROUP_OPTION(type, member, initial, option, lo, hi, key, kept, text) \
  if (*option)                                                                  \
    add_field(command, o, option, o.spec.member, lo, hi,                        \
              help.count(option) ? help.at(option) : std::string(text));
  SP_GROUP_FIELDS(SP_GROUP_OPTION)
#undef SP_GROUP_OPTION
}

// ------------------------------------------------------------------------------- train
struct TrainOptions {
  CommonOptions common;
  GroupOptions group;
  std::string model = "relu";
  std::string sparsity = "0", importance = "1";  // lists (host/parse.hpp), one or one per feature
  double lr = 1e-3, weight_decay = 0.01;
  int steps = 1000;
  uint64_t seed = 0;
  std::string data_file, init_W_file, init_b_file;
};

void add_train(CLI::App& app, TrainOptions& o) {
  CLI::App* train = app.add_subcommand("train", "train one model and write its run directory");
  add_common(train, o.common, "out/train");
  train->add_option("--model", o.model, "linear | relu")->check(non_empty())->capture_default_str();
  train
      ->add_option("--sparsity", o.sparsity,
                   "probability a feature is 0: one, or one per feature (a,b,...)")
      ->check(non_empty())
      ->capture_default_str();
  train->add_option("--importance", o.importance, "loss weight: one, or one per feature (a,b,...)")
      ->check(non_empty())
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
      ->check(non_empty());
  train->add_option("--init-W", o.init_W_file, "replay: initial W .npy (m x n)")
      ->check(non_empty());
  train->add_option("--init-b", o.init_b_file, "replay: initial b .npy (n)")->check(non_empty());
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
  print_out("W = [{}], b = [{}]\nwrote {}/\n", fmt::join(r.W, ", "), fmt::join(r.b, ", "),
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
  command->add_option("--seeds", o.options.seeds, "seeds per experiment")
      ->transform(decimal(1, kMaxExperimentSeeds))
      ->capture_default_str();
  command
      ->add_option("--first-seed", o.options.first_seed, "seeds run first-seed, first-seed+1, ...")
      ->transform(decimal(0, 18446744073709551615.0L - kMaxExperimentSeeds))
      ->capture_default_str();
  command
      ->add_option("--example-seed", o.options.example_seed,
                   "the seed whose full run directory is written per experiment")
      ->transform(decimal(0, 18446744073709551615.0L))
      ->capture_default_str();
  command
      ->add_option("--snapshot-every", o.options.snapshot_every,
                   "steps between W, b snapshots of the example runs")
      ->transform(decimal(1, kIntMax))
      ->capture_default_str();
}

int run_experiments_command(const ExperimentsCli& o) {
  if (o.options.snapshot_every < 1)
    throw UsageError(
        fmt::format("--snapshot-every: {} is not accepted (1 or more)", o.options.snapshot_every));
  auto backend = open_backend(o.common);
  {  // the largest experiment, a chunk at a time; every experiment's rows on disk
    GroupSpec largest = experiment_group(essay_experiments()[4], 0, 0);
    require_memory(training_memory(largest, std::min<int64_t>(o.options.seeds, kExperimentChunk),
                                   threads_of(o.common, *backend), "--seeds"));
    require_disk(output_disk(largest, 6 * int64_t{o.options.seeds}, false, "--seeds"),
                 o.common.out);
  }
  const RunDir dir(o.common.out);
  const auto claim = claim_run_dir(dir, "run.json",
                                   {{"command", "experiments"},
                                    {"version", SUPERPOSE_VERSION},
                                    {"arithmetic", backend->arithmetic()},
                                    {"seeds", o.options.seeds},
                                    {"first_seed", o.options.first_seed},
                                    {"example_seed", o.options.example_seed},
                                    {"snapshot_every", o.options.snapshot_every}},
                                   o.common.overwrite);
  announce(o.common, *backend);
  const auto t0 = std::chrono::steady_clock::now();
  const auto summaries = run_experiments(*backend, o.options, dir);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  print_out("{}", experiments_table(summaries));
  print_out("{} seeds x 6 experiments on {} ({}) in {:.2f} s; wrote {}/\n", o.options.seeds,
            backend->name(), backend->device(), seconds, dir.path());
  return 0;
}

// ------------------------------------------------------------------------------- sweep
// What a sweep-shaped command (sweep, phase-diagram) adds: which shard, which devices.
struct SplitOptions {
  std::string shard, devices;
};

void add_split_options(CLI::App* command, SplitOptions& o) {
  command
      ->add_option("--shard", o.shard,
                   "train only shard K of N of the sweep's chunks into the shared --out: K/N, or "
                   "auto (from Slurm's or an MPI launcher's environment); then `superpose merge`")
      ->check(non_empty());
  command
      ->add_option("--devices", o.devices,
                   "cuda backend: the GPUs to train on, all or a list (0,1,3), one host thread "
                   "each pulling chunks (default: device 0)")
      ->check(non_empty());
}

struct SweepCli {
  CommonOptions common;
  GroupOptions group;
  SweepAxesText axes;
  SplitOptions split;
  std::string importance, feature_sparsity;
  int relative_feature = -1, varied_feature = -1;
  int64_t chunk_models = 0;
  bool trajectories = false;
};

void add_sweep(CLI::App& app, SweepCli& o) {
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "train the Cartesian product of option axes; each axis is a value, a list a,b,c, "
      "linspace(a,b,k), logspace(a,b,k) or range(a,b[,step]); model ids are row-major over "
      "model, steps, lr, weight-decay, sparsity|density, varied-sparsity|varied-density, "
      "importance-decay|relative-importance, "
      "seed");
  add_common(sweep, o.common, "out/sweep");
  sweep->add_option("--model", o.axes.model, "axis: linear, relu or linear,relu")
      ->check(non_empty())
      ->capture_default_str();
  sweep->add_option("--steps", o.axes.steps, "axis: training steps")
      ->check(non_empty())
      ->capture_default_str();
  sweep->add_option("--lr", o.axes.lr, "axis: AdamW learning rate")
      ->check(non_empty())
      ->capture_default_str();
  sweep->add_option("--weight-decay", o.axes.weight_decay, "axis: AdamW's weight decay (0: Adam)")
      ->check(non_empty())
      ->capture_default_str();
  sweep
      ->add_option("--sparsity", o.axes.sparsity,
                   "axis: probability a feature is 0, all features (default 0)")
      ->check(non_empty());
  sweep->add_option("--density", o.axes.density, "axis: 1 - sparsity (instead of --sparsity)")
      ->check(non_empty());
  sweep
      ->add_option("--feature-sparsity", o.feature_sparsity,
                   "one sparsity per feature, comma-separated (not an axis)")
      ->check(non_empty());
  sweep
      ->add_option("--varied-sparsity", o.axes.varied_sparsity,
                   "axis: the sparsity of one feature (--varied-feature), over the others' "
                   "(--sparsity, --density or --feature-sparsity)")
      ->check(non_empty());
  sweep
      ->add_option("--varied-density", o.axes.varied_density,
                   "axis: 1 - the sparsity of --varied-feature (instead of --varied-sparsity)")
      ->check(non_empty());
  sweep
      ->add_option("--varied-feature", o.varied_feature,
                   "the feature --varied-sparsity/--varied-density sets, 0-based (default: the "
                   "last)")
      ->transform(decimal(0, 4095));
  sweep->add_option("--seed", o.axes.seed, "axis: seeds, e.g. range(0,100)")
      ->check(non_empty())
      ->capture_default_str();
  sweep
      ->add_option("--importance", o.importance,
                   "importance per feature, comma-separated, or one to broadcast (default 1)")
      ->check(non_empty());
  sweep
      ->add_option("--importance-decay", o.axes.importance_decay,
                   "axis: importance_f = d^f (Anthropic's 0.9^f)")
      ->check(non_empty());
  sweep
      ->add_option("--relative-importance", o.axes.relative_importance,
                   "axis: the importance of one feature (--relative-feature), the others 1")
      ->check(non_empty());
  sweep
      ->add_option("--relative-feature", o.relative_feature,
                   "the feature --relative-importance sets, 0-based (default: the last)")
      ->transform(decimal(0, 4095));
  add_group_options(
      sweep, o.group,  // a sweep keeps only the final W, b unless asked
      {{"--snapshot-every", "with --trajectories: steps between W, b snapshots (0: final)"}});
  sweep->add_flag("--trajectories", o.trajectories,
                  "also write loss curves and W, b snapshots per chunk (.npy)");
  add_split_options(sweep, o.split);
  sweep
      ->add_option("--chunk-models", o.chunk_models,
                   "models per chunk, the unit of resume (0: chosen from backend and work)")
      ->transform(decimal(0, 100000000))
      ->capture_default_str();
}

std::vector<double> parse_vector(const std::string& text, const std::string& option, int n) {
  std::vector<double> values = broadcast(parse_axis(text, option), n);
  if (static_cast<int>(values.size()) != n)
    throw UsageError(
        fmt::format("{}: expected {} values (one per feature, or one to broadcast), "
                    "got {}",
                    option, n, values.size()));
  return values;
}

// The backends a sweep trains on: the one --backend names, or with --devices one cuda backend per
// device listed (all: every device here).
std::vector<std::unique_ptr<Backend>> open_backends(const CommonOptions& common,
                                                    const SplitOptions& split) {
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(open_backend(common));
  if (split.devices.empty()) return backends;
  if (backends.front()->name() != "cuda")
    throw UsageError(fmt::format("--devices: goes with the cuda backend, and --backend {} chose {}",
                                 common.backend, backends.front()->name()));
  std::vector<int> devices;
  if (split.devices == "all") {
    for (int d = 0; d < cuda_device_count(); ++d) devices.push_back(d);
  } else {
    for (double d : parse_axis(split.devices, "--devices")) {
      if (d != std::floor(d) || d < 0 || d >= cuda_device_count())
        throw UsageError(
            fmt::format("--devices: {} is not a device here (accepted: all, or a list of 0 to {})",
                        format_number(d), cuda_device_count() - 1));
      if (std::find(devices.begin(), devices.end(), static_cast<int>(d)) != devices.end())
        throw UsageError(fmt::format("--devices: device {} is listed twice", format_number(d)));
      devices.push_back(static_cast<int>(d));
    }
  }
  backends.clear();
  for (int d : devices) {
    CudaOptions options = common.cuda;
    options.device = d;
    backends.push_back(make_cuda_backend(options));
  }
  return backends;
}

std::vector<Backend*> pointers(const std::vector<std::unique_ptr<Backend>>& backends) {
  std::vector<Backend*> out;
  for (const auto& backend : backends) out.push_back(backend.get());
  return out;
}

std::string devices_text(const std::vector<std::unique_ptr<Backend>>& backends) {
  std::string text = fmt::format("{} ({})", backends.front()->name(), backends.front()->device());
  for (size_t k = 1; k < backends.size(); ++k)
    text += fmt::format(" + ({})", backends[k]->device());
  return text;
}

// The memory one call takes (a chunk, or on a GPU up to models_per_call() models of several) and
// the disk the whole sweep writes, before anything is.
void check_sweep_resources(const Backend& backend, const SweepSpec& spec,
                           const CommonOptions& common, int devices = 1) {
  GroupSpec largest = spec.base;
  largest.steps = most_steps(spec);
  const int64_t at_once = std::min(
      spec.model_count(), devices * std::max(largest_chunk(spec), backend.models_per_call()));
  std::vector<Need> memory =
      training_memory(largest, at_once, threads_of(common, backend), "--chunk-models");
  std::vector<Need> disk = output_disk(largest, spec.model_count(), true, "--seed");
  // What the sweep's own records take: its axes' values, held while it runs (sweep.json and the
  // manifest keep generated axes as their formula), and per chunk its plan entry, the manifest's
  // line, and on disk its directory, record, record of files and lock.
  const Axis* widest = &spec.axes.front();
  double axis_bytes = 0;
  for (const Axis& axis : spec.axes) {
    axis_bytes += static_cast<double>(axis.size()) * (8 + (axis.labels.empty() ? 0 : 40));
    if (axis.size() > widest->size()) widest = &axis;
  }
  std::string axis_option = "--" + widest->name;
  std::replace(axis_option.begin(), axis_option.end(), '_', '-');
  memory.push_back(
      {axis_bytes, axis_option,
       fmt::format("the values of the sweep's axes ({} of {})", widest->size(), axis_option)});
  const auto chunks = static_cast<double>(chunk_count(spec));
  memory.push_back(
      {chunks * 1024, "--chunk-models",
       fmt::format("the plan and manifest entries of {} chunks", static_cast<int64_t>(chunks))});
  disk.push_back({chunks * 20 * 1024, "--chunk-models",
                  fmt::format("the directories, records and locks of {} chunks",
                              static_cast<int64_t>(chunks))});
  require_memory(memory);
  require_disk(disk, common.out);
}

SweepRun sweep_run(const CommonOptions& common, const SplitOptions& split,
                   const std::vector<std::unique_ptr<Backend>>& backends) {
  SweepRun run;
  run.backends = pointers(backends);
  run.overwrite = common.overwrite;
  if (!split.shard.empty()) run.shard = parse_shard(split.shard);
  return run;
}

// A shard's lines: what it trained, and what is left to do.
void print_shard_outcome(const SweepOutcome& outcome, const Shard& shard, const std::string& path,
                         const std::string& devices, const std::string& command) {
  print_out(
      "{} shard {}/{}: {} of the sweep's {} chunks are this shard's: {} trained on {} in {:.2f} "
      "s, {} already done{}{}\nwhen every shard has finished: superpose merge {}{}\n",
      command, shard.index, shard.count, outcome.shard_chunks, outcome.chunks,
      outcome.chunks_trained, devices, outcome.train_seconds, outcome.chunks_resumed,
      outcome.chunks_retrained ? fmt::format(" ({} found damaged or incomplete, trained again)",
                                             outcome.chunks_retrained)
                               : "",
      outcome.chunks_elsewhere
          ? fmt::format(", {} being trained by another process", outcome.chunks_elsewhere)
          : "",
      path, command == "phase-diagram" ? " (it also writes phase_diagram.csv)" : "");
}

void print_sweep_outcome(const SweepOutcome& outcome, const std::string& devices,
                         const std::string& path) {
  const int64_t trained = outcome.chunks_trained;
  print_out("{} models in {} chunk{} on {}: {} chunk{} trained in {:.2f} s{}; {} diverged{}\n",
            outcome.models, outcome.chunks, outcome.chunks == 1 ? "" : "s", devices, trained,
            trained == 1 ? "" : "s", outcome.train_seconds,
            fmt::format("{}{}",
                        outcome.chunks_resumed ? fmt::format(", {} resumed from an earlier run",
                                                             outcome.chunks_resumed)
                                               : "",
                        outcome.chunks_retrained
                            ? fmt::format(" ({} found damaged or incomplete, trained again)",
                                          outcome.chunks_retrained)
                            : ""),
            outcome.diverged, outcome.diverged ? " (status=diverged in results.csv)" : "");
  print_out("wrote {}/results.csv and manifest.json\n", path);
}

int run_sweep_command(SweepCli o) {
  const std::vector<std::string> overridden =
      o.group.apply_recipe([&](int steps) { o.axes.steps = std::to_string(steps); });
  SweepSpec spec;
  spec.base = o.group.group();
  GroupSpec& g = spec.base;
  g.record_trajectories = o.trajectories;
  if (g.snapshot_every != 0 && !o.trajectories)
    throw UsageError("--snapshot-every: goes with --trajectories, which is not given");
  // The shape first: the vectors below depend on it. (A sweep's steps are its --steps axis, each
  // value checked against --warmup-steps below; the base group's own steps are not used.)
  g.steps = std::max(g.steps, g.warmup_steps + 1);
  validate(g);
  const int n = g.n_features;
  const int rules = !o.importance.empty() + !o.axes.importance_decay.empty() +
                    !o.axes.relative_importance.empty();
  if (rules > 1)
    throw UsageError(
        "--importance: give one of --importance, --importance-decay, --relative-importance");
  if (o.relative_feature >= 0 && o.axes.relative_importance.empty())
    throw UsageError("--relative-feature: goes with --relative-importance, which is not given");
  if (!o.axes.importance_decay.empty()) {
    spec.importance_rule = ImportanceRule::decay;
  } else if (!o.axes.relative_importance.empty()) {
    spec.importance_rule = ImportanceRule::relative;
    spec.relative_feature = o.relative_feature < 0 ? n - 1 : o.relative_feature;
    if (spec.relative_feature >= n)
      throw UsageError(fmt::format("--relative-feature: {} is outside the accepted range [0, {}]",
                                   spec.relative_feature, n - 1));
  } else {
    spec.importance = o.importance.empty() ? std::vector<double>(n, 1.0)
                                           : parse_vector(o.importance, "--importance", n);
  }
  const bool varied = !o.axes.varied_sparsity.empty() || !o.axes.varied_density.empty();
  if (o.varied_feature >= 0 && !varied)
    throw UsageError(
        "--varied-feature: goes with --varied-sparsity or --varied-density, neither is given");
  if (varied) {
    spec.varied_feature = o.varied_feature < 0 ? n - 1 : o.varied_feature;
    if (spec.varied_feature >= n)
      throw UsageError(fmt::format("--varied-feature: {} is outside the accepted range [0, {}]",
                                   spec.varied_feature, n - 1));
  }
  if (!o.feature_sparsity.empty()) {
    if (!o.axes.density.empty() || !o.axes.sparsity.empty())
      throw UsageError(
          "--feature-sparsity: give either it or --sparsity/--density (an axis), not both");
    spec.feature_sparsity = parse_vector(o.feature_sparsity, "--feature-sparsity", n);
    for (double value : spec.feature_sparsity)
      if (!(value >= 0 && value <= 1))
        throw UsageError(fmt::format("--feature-sparsity: {} is outside the accepted range [0, 1]",
                                     format_number(value)));
  }
  if (o.chunk_models < 0)
    throw UsageError(
        fmt::format("--chunk-models: {} is not accepted (0 = automatic, or more)", o.chunk_models));
  spec.chunk_models = o.chunk_models;
  set_axes(spec, o.axes);  // every value of every axis checked: each model is a combination
  for (const Axis& axis : spec.axes)
    if (axis.name == "steps")
      for (double steps : axis.values)
        if (g.warmup_steps >= steps)
          throw UsageError(fmt::format(
              "--warmup-steps: {} is not fewer than the {} steps of some models (--steps)",
              g.warmup_steps, format_number(steps)));
  {
    GroupSpec probe = g;
    probe.models.push_back(spec.model(0, nullptr));
    validate(probe);
  }

  const auto backends = open_backends(o.common, o.split);
  SweepRun run = sweep_run(o.common, o.split, backends);
  check_sweep_resources(*backends.front(), spec, o.common, static_cast<int>(backends.size()));
  const RunDir dir(o.common.out);
  run.after_claim = [&] { announce(o.common, *backends.front()); };
  run.extra_manifest["recipe"] = o.group.recipe;
  const SweepOutcome outcome = run_sweep(spec, dir, "sweep", run);
  const std::string recipe_line =
      training_text(g, o.group.recipe, overridden, o.axes.steps, o.axes.lr, o.axes.weight_decay);
  if (!outcome.merged) {
    print_shard_outcome(outcome, run.shard, dir.path(), devices_text(backends), "sweep");
    print_out("{}", recipe_line);
    return 0;
  }
  print_sweep_outcome(outcome, devices_text(backends), dir.path());
  print_out("{}", recipe_line);
  return 0;
}

// ------------------------------------------------------------------------------- phase-diagram
struct PhaseCli {
  CommonOptions common;
  SplitOptions split;
  PhaseDiagramOptions options;
  std::vector<double> importance_range, density_range;
};

void add_phase_diagram(CLI::App& app, PhaseCli& o) {
  CLI::App* command = app.add_subcommand(
      "phase-diagram",
      "Anthropic's 2->1 phase diagram: relative importance of feature 2 x feature density, "
      "several seeds per cell, each cell's phase from its lowest-eval-loss seed, compared with "
      "the closed-form winner. Defaults: 50 x 50 x 10, 5000 steps on a GPU; 40 x 40 x 4, 3000 "
      "steps on the CPU");
  add_common(command, o.common, "out/phase-diagram");
  command->add_option("--importance-cells", o.options.importance_cells, "cells along importance")
      ->transform(decimal(1, 10000));
  command->add_option("--density-cells", o.options.density_cells, "cells along density")
      ->transform(decimal(1, 10000));
  command->add_option("--seeds", o.options.seeds, "seeds per cell")->transform(decimal(1, 100000));
  command->add_option("--first-seed", o.options.first_seed, "the first seed")
      ->transform(decimal(0, 9007199254740992.0L - 100000));
  command
      ->add_option("--importance-range", o.importance_range,
                   "min,max relative importance of feature 2 (default 0.1,10)")
      ->delimiter(',')
      ->check(number())
      ->expected(2);
  command
      ->add_option("--density-range", o.density_range,
                   "min,max feature density 1 - sparsity (default 0.01,1)")
      ->delimiter(',')
      ->check(number())
      ->expected(2);
  command->add_option("--steps", o.options.steps, "training steps")
      ->transform(decimal(1, 1000000000));
  command->add_option("--batch", o.options.batch, "samples per step (fresh data)")
      ->transform(decimal(1, 1 << 24));
  command->add_option("--lr", o.options.lr, "AdamW learning rate (default 1e-3)")->check(number());
  command
      ->add_option("--eval-points", o.options.eval_points,
                   "evaluation samples per model (default 10000): the best-seed criterion")
      ->transform(decimal(0, 1 << 24));
  command->add_option("--chunk-models", o.options.chunk_models, "models per chunk (0: automatic)")
      ->transform(decimal(0, 100000000));
  add_split_options(command, o.split);
}

int run_phase_diagram_command(PhaseCli& o, CLI::App& app) {
  const auto backends = open_backends(o.common, o.split);
  const Backend* backend = backends.front().get();
  // Defaults by backend, then what the user gave.
  PhaseDiagramOptions options = default_phase_diagram(backend->name());
  CLI::App* command = app.get_subcommand("phase-diagram");
  auto given = [&](const char* name) { return command->count(name) > 0; };
  if (given("--importance-cells")) options.importance_cells = o.options.importance_cells;
  if (given("--density-cells")) options.density_cells = o.options.density_cells;
  if (given("--seeds")) options.seeds = o.options.seeds;
  if (given("--first-seed")) options.first_seed = o.options.first_seed;
  if (given("--steps")) options.steps = o.options.steps;
  if (given("--batch")) options.batch = o.options.batch;
  if (given("--lr")) options.lr = o.options.lr;
  if (given("--eval-points")) options.eval_points = o.options.eval_points;
  if (given("--chunk-models")) options.chunk_models = o.options.chunk_models;
  if (given("--importance-range")) {
    options.importance_min = o.importance_range[0];
    options.importance_max = o.importance_range[1];
  }
  if (given("--density-range")) {
    options.density_min = o.density_range[0];
    options.density_max = o.density_range[1];
  }
  if (options.chunk_models < 0)
    throw UsageError(fmt::format("--chunk-models: {} is not accepted (0 = automatic, or more)",
                                 options.chunk_models));
  const SweepSpec spec = phase_diagram_sweep(options);
  {
    GroupSpec probe = spec.base;
    probe.models.push_back(spec.model(0, &probe.steps));
    validate(probe);
  }
  check_sweep_resources(*backend, spec, o.common, static_cast<int>(backends.size()));
  SweepRun run = sweep_run(o.common, o.split, backends);
  const RunDir dir(o.common.out);
  const auto t0 = std::chrono::steady_clock::now();
  run.extra_manifest = {
      {"phase_diagram",
       {{"importance_cells", options.importance_cells},
        {"density_cells", options.density_cells},
        {"seeds", options.seeds},
        {"importance_range", {options.importance_min, options.importance_max}},
        {"density_range", {options.density_min, options.density_max}},
        {"options", phase_diagram_json(options)},
        {"aggregation", "per cell, the seed with the lowest eval_loss among those not diverged"},
        {"closed_form",
         "per sample summed over features: ignored r(p/3 - p^2/4), dedicated p/3 - p^2/4, "
         "antipodal (1+r)p^2/6; phase_diagram.csv halves them to results.csv's units"},
        {"far_from_boundary", "closed-form runner-up >= 2.5x the winner's loss"}}}};
  run.after_claim = [&] { announce(o.common, *backend); };
  const SweepOutcome outcome = run_sweep(spec, dir, "phase-diagram", run);
  if (!outcome.merged) {
    print_shard_outcome(outcome, run.shard, dir.path(), devices_text(backends), "phase-diagram");
    return 0;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string summary = finish_phase_diagram(dir, options, outcome.manifest, seconds);
  const size_t agreement = summary.rfind("best-seed");
  print_out("{}", summary.substr(0, agreement));
  print_out(
      "phase diagram: {} x {} cells x {} seeds = {} models, {} steps of batch {}, on {} in "
      "{:.1f} s{}; {} diverged\n",
      options.density_cells, options.importance_cells, options.seeds, outcome.models, options.steps,
      options.batch, devices_text(backends), seconds,
      outcome.chunks_resumed ? fmt::format(" ({} chunks resumed)", outcome.chunks_resumed) : "",
      outcome.diverged);
  print_out("{}wrote {}/phase_diagram.csv, results.csv, manifest.json\n", summary.substr(agreement),
            dir.path());
  return 0;
}

// ------------------------------------------------------------------------------- merge
struct MergeCli {
  std::string dir;
};

void add_merge(CLI::App& app, MergeCli& o) {
  CLI::App* command = app.add_subcommand(
      "merge",
      "assemble a sweep (or phase diagram) trained in shards: once every chunk is present, "
      "DIR/results.csv - what one process writes, byte for byte - and DIR/manifest.json; "
      "otherwise the missing model ids (exit 1, nothing written)");
  command->add_option("DIR", o.dir, "the shards' shared --out")->required()->check(non_empty());
}

int run_merge_command(const MergeCli& o) {
  const RunDir dir = RunDir::existing(o.dir, "merge");
  const auto t0 = std::chrono::steady_clock::now();
  // A phase diagram's options (plan.json) must describe the sweep its sweep.json is.
  auto check_phase_diagram = [&](const nlohmann::json& identity, const nlohmann::json& extra) {
    if (identity.value("command", "") != "phase-diagram") return;
    try {
      const PhaseDiagramOptions options =
          phase_diagram_from_json(extra.at("phase_diagram").at("options"));
      nlohmann::json expected = sweep_identity(phase_diagram_sweep(options), "phase-diagram",
                                               identity.at("arithmetic").get<std::string>());
      expected["version"] = identity.at("version");
      if (expected == identity) return;
    } catch (const std::exception&) {
    }
    throw UsageError(fmt::format(
        "merge: '{}'s phase-diagram options in plan.json do not describe the sweep in its "
        "sweep.json; rerun the phase-diagram command (without --shard) to write them again",
        dir.path()));
  };
  SweepOutcome outcome;
  try {
    outcome = merge_sweep(dir, check_phase_diagram);
  } catch (const MergeIncomplete& incomplete) {
    print_err("superpose: {}\n", incomplete.what());
    return 1;
  }
  if (outcome.manifest.value("command", "") == "phase-diagram") {
    const PhaseDiagramOptions options =
        phase_diagram_from_json(outcome.manifest.at("phase_diagram").at("options"));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_out("{}", finish_phase_diagram(dir, options, outcome.manifest, seconds));
  }
  print_out(
      "merged {} models from {} chunks; {} diverged{}\nwrote {}/results.csv and manifest.json\n",
      outcome.models, outcome.chunks, outcome.diverged,
      outcome.diverged ? " (status=diverged in results.csv)" : "", dir.path());
  return 0;
}

}  // namespace

// ------------------------------------------------------------------------------- tms
struct TmsCli {
  CommonOptions common;
  std::string scale = "auto", only;
  int steps = 0;
};

void add_tms(CLI::App& app, TmsCli& o) {
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
                   "anticorrelated, collapse")
      ->check(non_empty());
  command->add_option("--steps", o.steps, "training steps (default: the paper's 10000)")
      ->transform(decimal(1, 1000000000));
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
  std::vector<TmsExperiment> experiments = tms_experiments(scale, o.steps);
  const std::vector<TmsExperiment> every = experiments;  // the canonical order of tms.json
  if (!o.only.empty()) {
    std::vector<TmsExperiment> chosen;
    for (const std::string& name : split(o.only, ',')) {  // an empty name is refused
      const auto found = std::find_if(experiments.begin(), experiments.end(), [&](const auto& e) {
        return e.name == name || e.name.rfind(name + "-", 0) == 0;
      });
      if (name.empty() || found == experiments.end())
        throw UsageError(fmt::format(
            "--only: unknown result '{}' (accepted: intro, tms-20-5, geometry, correlated, "
            "anticorrelated, collapse)",
            name));
      chosen.push_back(*found);
    }
    experiments = chosen;
  }
  for (const TmsExperiment& e : experiments)
    check_sweep_resources(*backends.front(), e.spec, o.common);
  const std::string scale_name = scale == TmsScale::full ? "full" : "reduced";
  // The directory is one tms run's (its results' scale, steps and arithmetic): a rerun resumes
  // it, whichever results --only picks; each result is a sweep of its own below it.
  const RunDir out(o.common.out);
  const nlohmann::json identity = {{"command", "tms"},
                                   {"version", SUPERPOSE_VERSION},
                                   {"scale", scale_name},
                                   {"steps", most_steps(every.front().spec)},
                                   {"arithmetic", backends.front()->arithmetic()}};
  const auto claim = claim_run_dir(
      out, "run.json", identity, o.common.overwrite, [&](const nlohmann::json& existing) {
        if (existing.value("command", "") != "tms") return;  // the generic message names it
        throw UsageError(fmt::format(
            "--out: '{}' holds tms results of another run (scale {}, {} steps, {} arithmetic; "
            "this run: scale {}, {} steps, {}); choose another --out, or add --overwrite to "
            "replace them",
            out.path(), existing.value("scale", "?"), existing.value("steps", 0),
            existing.value("arithmetic", "?"), scale_name, identity["steps"].get<int>(),
            identity["arithmetic"].get<std::string>()));
      });
  // Results an earlier run of this directory judged (a rerun with --only keeps the others).
  std::map<std::string, nlohmann::json> judged;
  if (out.wrote("tms.json")) {
    const nlohmann::json earlier = out.read_json("tms.json");
    if (earlier.is_object() && earlier.contains("experiments") && earlier["experiments"].is_array())
      for (const auto& e : earlier["experiments"])
        if (e.is_object() && e.contains("name") && e["name"].is_string())
          judged[e["name"].get<std::string>()] = e;
  }
  nlohmann::json report = {{"command", "tms"},
                           {"version", SUPERPOSE_VERSION},
                           {"scale", scale_name},
                           {"backend", backends.front()->name()},
                           {"device", devices_text(backends)},
                           {"experiments", nlohmann::json::array()}};
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
                      {"models", outcome.models},
                      {"diverged", outcome.diverged},
                      {"train_seconds", outcome.train_seconds}};
  }
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

int run_cli(int argc, char** argv) {
  CLI::App app{"superpose: trains toy models of superposition by the thousand"};
  app.set_version_flag("--version", std::string("superpose ") + SUPERPOSE_VERSION);
  app.require_subcommand(1);
  TrainOptions train;
  ExperimentsCli experiments;
  SweepCli sweep;
  PhaseCli phase;
  MergeCli merge;
  TmsCli tms;
  add_train(app, train);
  add_experiments(app, experiments);
  add_sweep(app, sweep);
  add_phase_diagram(app, phase);
  add_merge(app, merge);
  add_tms(app, tms);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_err("superpose: error: {}\n", e.what());
    return 2;
  }
  try {
    if (app.got_subcommand("train")) return run_train(train);
    if (app.got_subcommand("experiments")) return run_experiments_command(experiments);
    if (app.got_subcommand("sweep")) return run_sweep_command(sweep);
    if (app.got_subcommand("phase-diagram")) return run_phase_diagram_command(phase, app);
    if (app.got_subcommand("merge")) return run_merge_command(merge);
    if (app.got_subcommand("tms")) return run_tms_command(tms);
  } catch (const UsageError& e) {
    print_err("superpose: error: {}\n", e.what());
    return 2;
  } catch (const Cancelled&) {
    print_err(
        "superpose: stopped on request; a sweep keeps the chunks it finished (rerun to "
        "resume)\n");
    return 130;
  } catch (const std::bad_alloc&) {
    print_err(
        "superpose: failed: out of memory (the checks before training under-estimated "
        "this run: please report it with the command)\n");
    return 1;
  } catch (const std::exception& e) {
    print_err("superpose: failed: {}\n", e.what());
    return 1;
  }
  return 2;
}

}  // namespace sp
