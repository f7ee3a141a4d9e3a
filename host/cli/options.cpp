// options.cpp — what the subcommands share (host/cli/options.hpp).
#include "host/cli/options.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "host/core/parse.hpp"
#include "host/io/resources.hpp"

namespace sp::cli {

// Integers are decimal, whole and within [lo, hi] (host/core/parse.hpp's one grammar): CLI11 would
// read "010" as octal (8), "" as 0 and wrap "-1" into an unsigned 2^64 − 1. This transform checks
// the text and gives CLI11 the number without leading zeros, so "010" is ten, as everywhere else in
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

// Numbers are finite decimals (host/core/parse.hpp): "" (which CLI11 would read as 0), "0x10" and
// "1e3x" are refused.
CLI::Validator number() {
  return CLI::Validator(
      [](std::string& text) -> std::string { return real_problem(text, nullptr); }, "NUMBER");
}

// Text options (axes, lists) may not be empty: an empty --density must not mean "not given". The
// kind names what the text holds, in the help and in options_json (the Python package's types).
CLI::Validator non_empty(const char* kind) {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return text.find_first_not_of(" \t") == std::string::npos ? "the value is empty" : "";
      },
      kind);
}

void add_common(CLI::App* command, CommonOptions& common, const std::string& default_out) {
  common.out = default_out;
  command->add_option("--backend", common.backend, "auto | cuda | cpu | reference")
      ->check(non_empty())
      ->capture_default_str();
  command->add_option("--out", common.out, "run directory")
      ->check(non_empty(kPath))
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

const Recipe& find_recipe(const std::string& name) {
  for (const Recipe& recipe : kRecipes)
    if (name == recipe.name) return recipe;
  throw UsageError(fmt::format("--recipe: unknown recipe '{}' (accepted: essay, tms)", name));
}

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

namespace {

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

}  // namespace

// The group's options: the recipe, and every row of the field table that has an option
// (host/core/config.hpp: SP_GROUP_FIELDS), with its range and help (`help` overrides a row's).
void add_group_options(CLI::App* command, GroupOptions& o,
                       const std::map<std::string, std::string>& help) {
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
                           const CommonOptions& common, int devices) {
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

}  // namespace sp::cli
