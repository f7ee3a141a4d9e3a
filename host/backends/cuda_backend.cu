// cuda_backend.cu — the host side of the cuda backend: plans the device memory, splits a sweep
// into chunks that fit, uploads each model's options and initial parameters, launches the fused
// kernels K steps at a time and collects losses, trajectories and final parameters.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>

#include "host/backends/backend.hpp"
#include "host/backends/mapping.hpp"
#include "host/core/data.hpp"
#include "host/core/job.hpp"
#include "host/core/recorder.hpp"  // finish_result
#include "kernels/fused_step.cuh"

namespace sp {

namespace {

// Throws on an error, after consuming it (cudaGetLastError), so that it is not reported again by
// the next, unrelated, check of a launch.
void check(cudaError_t error, const char* call, const char* file, int line) {
  if (error != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(
        fmt::format("{}:{}: {} failed: {}", file, line, call, cudaGetErrorString(error)));
  }
}
#define SP_CUDA_CHECK(call) check((call), #call, __FILE__, __LINE__)

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count_) SP_CUDA_CHECK(cudaMalloc(&ptr_, count_ * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    if (count_)
      SP_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  T* get() const { return ptr_; }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_)
      SP_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t count_;
};

// A CUDA event on the default stream, or nothing (enabled = false: records and measures nothing).
class Event {
 public:
  explicit Event(bool enabled) {
    if (enabled) SP_CUDA_CHECK(cudaEventCreate(&event_));
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (event_) cudaEventDestroy(event_);
  }
  void record() const {
    if (event_) SP_CUDA_CHECK(cudaEventRecord(event_, nullptr));
  }
  // Milliseconds from this event to `end` (both recorded, and `end` completed).
  double milliseconds_to(const Event& end) const {
    float ms = 0;
    SP_CUDA_CHECK(cudaEventElapsedTime(&ms, event_, end.event_));
    return ms;
  }

 private:
  cudaEvent_t event_ = nullptr;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaOptions& options)
      : device_(options.device),
        steps_per_launch_(options.steps_per_launch),
        forced_mapping_(cuda::parse_mapping_choice(options.mapping, "mapping")),
        fixed_rows_(cuda::parse_fixed_rows(options.fixed_rows, "--fixed-rows")),
        schedule_window_(options.schedule_window),
        timings_(options.timings) {
    SP_CUDA_CHECK(cudaGetDeviceProperties(&properties_, device_));
  }
  int64_t models_per_call() const override { return int64_t{1} << 18; }
  std::string name() const override { return "cuda"; }
  std::string device() const override {
    return fmt::format("{} ({:.0f} GiB, sm_{}{}{})", properties_.name,
                       static_cast<double>(properties_.totalGlobalMem) / (1 << 30),
                       properties_.major, properties_.minor,
                       device_ > 0 ? fmt::format(", device {}", device_) : "");
  }

  std::vector<ModelResult> train(const GroupSpec& group) override {
    SP_CUDA_CHECK(cudaSetDevice(device_));  // this host thread's device, for every call below
    // The dispatcher's choice (host/backends/mapping.hpp), in its three steps: here the mapping and
    // the memory it fits in, in train_chunk the chunk's launch.
    const cuda::Mapping wanted =
        cuda::choose_mapping(group.n_features, group.n_hidden, group.groups.any(),
                             group.any_hidden_relu(), forced_mapping_);
    size_t free_bytes = 0, total_bytes = 0;
    SP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const size_t budget = free_bytes / 10 * 7;  // leave room for the runtime and other users
    const cuda::Mapping chosen =
        cuda::fit_mapping(wanted, forced_mapping_, budget,
                          [&](cuda::Mapping mapping) { return bytes_per_model(group, mapping); });
    const size_t per_model = bytes_per_model(group, chosen);
    if (chosen != wanted)
      print_err(
          "superpose: one model's {} rows a step need {:.3g} MiB of scratch on the {} mapping, "
          "more than the {:.3g} MiB that may be used: training on the {} mapping (same results, "
          "slower)\n",
          group.train_rows(), static_cast<double>(bytes_per_model(group, wanted)) / 1048576.0,
          cuda::to_string(wanted), static_cast<double>(budget) / 1048576.0,
          cuda::to_string(chosen));
    if (per_model > budget)
      throw std::runtime_error(fmt::format(
          "one model of this run needs {:.3g} MiB on the device and {:.3g} MiB of the {:.3g} MiB "
          "free may be used: the fixed dataset (--points), the batch (--batch), the trajectories "
          "(--trajectories over --steps) or the shape (--features, --hidden) must shrink, or "
          "train it with --backend cpu",
          static_cast<double>(per_model) / 1048576.0, static_cast<double>(budget) / 1048576.0,
          static_cast<double>(free_bytes) / 1048576.0));
    const size_t chunk = std::max<size_t>(1, std::min(group.models.size(), budget / per_model));
    const size_t chunks = (group.models.size() + chunk - 1) / chunk;
    if (chunks > 1)
      print_err(
          "superpose: {} models need {:.1f} MiB each on the device; training them in {} "
          "chunks of up to {} models ({:.0f} MiB free)\n",
          group.models.size(), static_cast<double>(per_model) / 1048576.0, chunks, chunk,
          static_cast<double>(free_bytes) / 1048576.0);
    std::vector<ModelResult> results(group.models.size());
    for (size_t first = 0; first < group.models.size(); first += chunk)
      train_chunk(group, chosen, first, std::min(chunk, group.models.size() - first), results);
    return results;
  }

 private:
  // Fixed data kept in device memory: unless regenerated — which replayed data cannot be.
  bool dataset_in_memory(const GroupSpec& g) const {
    if (g.mode != DataMode::fixed) return false;
    if (fixed_rows_ != cuda::FixedRows::regenerate) return true;
    return std::any_of(g.models.begin(), g.models.end(),
                       [](const ModelSpec& model) { return model.data != nullptr; });
  }

  size_t bytes_per_model(const GroupSpec& g, cuda::Mapping chosen) const {
    const size_t n = g.n_features, m = g.n_hidden, P = m * n + n;
    size_t bytes = 3 * P * sizeof(float) + 2 * n * sizeof(float) + 48;  // + seed, lr, wd, ...
    if (dataset_in_memory(g)) bytes += static_cast<size_t>(g.points) * n * sizeof(float);
    if (g.record_trajectories)  // loss curve, eval history, snapshots: all kept on the device
      bytes += (static_cast<size_t>(g.steps) + static_cast<size_t>(g.eval_step_count()) +
                static_cast<size_t>(g.snapshot_step_count()) * P) *
               sizeof(float);
    bytes += cuda::scratch_floats_per_model(g.n_features, g.n_hidden, g.train_rows(), chosen) *
             sizeof(float);
    return bytes;
  }

  // A chunk of the group's models, trained on the device in four steps: the models' options and
  // initial parameters laid out (ChunkModels), put on the device (ChunkBuffers, and the
  // DeviceChunk the kernels read), the steps run K at a time with the trajectories recorded on the
  // device (run_steps), and the results read back (read_back).
  void train_chunk(const GroupSpec& g, cuda::Mapping chosen, size_t first, size_t count,
                   std::vector<ModelResult>& results) const {
    // The dispatcher's last step, chunk by chunk (memory may cut a run short): a chunk of a tiled
    // shape too small to fill the device trains pass by pass over the models' tiles.
    chosen = cuda::chunk_mapping(chosen, forced_mapping_, static_cast<int64_t>(count), [&] {
      return cuda::tiled_models_to_fill(properties_.multiProcessorCount);
    });
    const ChunkModels models(g, first, count);
    ChunkBuffers buffers(
        g, models, count, std::min(g.steps, schedule_window_),
        cuda::scratch_floats_per_model(g.n_features, g.n_hidden, g.train_rows(), chosen),
        dataset_in_memory(g));
    cuda::DeviceChunk d = describe(g, chosen, count, buffers);
    if (buffers.dataset.get()) {
      if (models.replayed_data)
        SP_CUDA_CHECK(cudaMemcpy(buffers.dataset.get(), models.dataset.data(),
                                 models.dataset.size() * sizeof(float), cudaMemcpyHostToDevice));
      else
        cuda::launch_generate_dataset(d, buffers.dataset.get(), nullptr);
    }
    const Recording recording = run_steps(g, d, buffers, count);
    read_back(g, d, buffers, recording, first, count, results);
  }

  // What the device is given of each model of a chunk, laid out model after model.
  struct ChunkModels {
    ChunkModels(const GroupSpec& g, size_t first, size_t count) {
      const int n = g.n_features;
      for (size_t i = first; i < first + count; ++i) {
        const ModelSpec& model = g.models[i];
        seeds.push_back(model.seed);
        activation.push_back(static_cast<uint8_t>(activation_of(model.kind).code()));
        lr.push_back(model.lr);
        weight_decay.push_back(model.weight_decay);
        const std::vector<float> threshold = mask_thresholds(model, g.groups);
        sparsity.insert(sparsity.end(), threshold.begin(), threshold.end());
        for (int f = 0; f < n; ++f) importance.push_back(static_cast<float>(model.importance[f]));
        const std::vector<float> W = initial_W(g, model), b = initial_b(g, model);
        params.insert(params.end(), W.begin(), W.end());
        params.insert(params.end(), b.begin(), b.end());
        replayed_data = replayed_data || model.data != nullptr;
      }
      if (g.mode == DataMode::fixed && replayed_data)
        for (size_t i = first; i < first + count; ++i) {
          const std::vector<float> rows = fixed_dataset(g, g.models[i]);
          dataset.insert(dataset.end(), rows.begin(), rows.end());
        }
    }
    std::vector<uint64_t> seeds;
    std::vector<uint8_t> activation;
    std::vector<double> lr, weight_decay;
    std::vector<float> sparsity, importance, params, dataset;  // dataset: replayed data only
    bool replayed_data = false;
  };

  // The chunk's device memory: the models' options, parameters and AdamW moments, the dataset,
  // AdamW's scalars for a window of steps (DeviceChunk::schedule_first), the losses, the scratch.
  struct ChunkBuffers {
    ChunkBuffers(const GroupSpec& g, const ChunkModels& models, size_t count, int schedule_window,
                 size_t scratch_floats_per_model, bool dataset_in_memory)
        : window(schedule_window),
          seeds(models.seeds),
          activation(models.activation),
          lr(models.lr),
          weight_decay(models.weight_decay),
          sparsity(models.sparsity),
          importance(models.importance),
          params(models.params),
          adam_m(std::vector<float>(models.params.size(), 0.0f)),
          adam_v(std::vector<float>(models.params.size(), 0.0f)),
          bias1(static_cast<size_t>(window)),
          lr_factor(static_cast<size_t>(window)),
          bias2(static_cast<size_t>(window)),
          last_loss(count),
          eval(count),
          loss_curve(g.record_trajectories ? count * static_cast<size_t>(g.steps) : 0),
          scratch_per_model(scratch_floats_per_model),
          scratch(count * scratch_floats_per_model),
          dataset(dataset_in_memory ? count * static_cast<size_t>(g.points) * g.n_features : 0) {}
    int window;
    DeviceBuffer<uint64_t> seeds;
    DeviceBuffer<uint8_t> activation;
    DeviceBuffer<double> lr, weight_decay;
    DeviceBuffer<float> sparsity, importance, params, adam_m, adam_v;
    DeviceBuffer<double> bias1, lr_factor;
    DeviceBuffer<float> bias2, last_loss, eval, loss_curve;
    size_t scratch_per_model;
    DeviceBuffer<float> scratch, dataset;
  };

  // What the kernels read of the chunk (kernels/fused_step.cuh).
  cuda::DeviceChunk describe(const GroupSpec& g, cuda::Mapping chosen, size_t count,
                             const ChunkBuffers& b) const {
    cuda::DeviceChunk d;
    d.models = static_cast<int>(count);
    d.mapping = chosen;
    d.n = g.n_features;
    d.m = g.n_hidden;
    d.train_rows = g.train_rows();
    d.points = g.points;
    const bool fresh = g.mode == DataMode::fresh, dataset = b.dataset.get() != nullptr;
    d.draw_rows = fresh || !dataset;
    d.rows_on_chip = dataset && fixed_rows_ != cuda::FixedRows::memory &&
                     cuda::rows_fit_on_chip(chosen, g.n_features, d.train_rows);
    d.draw_stride = fresh ? d.train_rows : 0;
    d.seed = b.seeds.get();
    d.activation = b.activation.get();
    d.lr = b.lr.get();
    d.weight_decay = b.weight_decay.get();
    d.sparsity = b.sparsity.get();
    d.eval_seed = g.eval_seed;
    d.groups = g.groups;
    d.importance = b.importance.get();
    d.params = b.params.get();
    d.adam_m = b.adam_m.get();
    d.adam_v = b.adam_v.get();
    d.dataset = b.dataset.get();
    d.bias1 = b.bias1.get();
    d.bias2_sqrt = b.bias2.get();
    d.lr_factor = b.lr_factor.get();
    d.loss_curve = b.loss_curve.get();
    d.loss_curve_stride = g.steps;
    d.last_loss = b.last_loss.get();
    d.scratch = b.scratch.get();
    d.scratch_per_model = b.scratch_per_model;
    return d;
  }

  // A trajectory's records, kept on the device until the end: the evaluation losses at the eval
  // steps, W and b at the snapshot steps (none without trajectories).
  struct Recording {
    std::vector<int> eval_steps, snapshot_steps;
    bool evals_recorded = false;
    std::unique_ptr<DeviceBuffer<float>> eval_history, snapshots;
  };

  // Every step, K a launch: at an eval step the evaluation kernel writes its losses into that
  // step's row of the history, at a snapshot step W, b are copied device to device — all queued on
  // the one stream behind the training launches, so the host never waits inside the loop. AdamW's
  // scalars go up a window of steps at a time, queued in order.
  Recording run_steps(const GroupSpec& g, cuda::DeviceChunk& d, ChunkBuffers& b,
                      size_t count) const {
    const int steps = g.steps, window = b.window;
    const size_t P = static_cast<size_t>(g.parameter_count());
    const bool fresh = g.mode == DataMode::fresh;
    Recording r;
    if (g.record_trajectories) {
      r.eval_steps = g.eval_steps();
      r.snapshot_steps = g.snapshot_steps();
    }
    r.evals_recorded = g.record_trajectories && g.eval_rows() > 0;
    r.eval_history =
        std::make_unique<DeviceBuffer<float>>(r.evals_recorded ? r.eval_steps.size() * count : 0);
    r.snapshots = std::make_unique<DeviceBuffer<float>>(r.snapshot_steps.size() * count * P);
    std::vector<double> host_bias1(static_cast<size_t>(window)),
        host_lr_factor(static_cast<size_t>(window));
    std::vector<float> host_bias2(static_cast<size_t>(window));
    size_t next_eval = 0, next_snapshot = 0;
    auto next_recorded_step = [&] {  // the next step a trajectory records (INT_MAX: none)
      int step = std::numeric_limits<int>::max();
      if (next_eval < r.eval_steps.size()) step = r.eval_steps[next_eval];
      if (next_snapshot < r.snapshot_steps.size())
        step = std::min(step, r.snapshot_steps[next_snapshot]);
      return step;
    };
    const Event loop_start(timings_ != nullptr), loop_end(timings_ != nullptr);
    loop_start.record();
    d.schedule_first = -window;    // no window on the device yet
    for (int t = 0; t < steps;) {  // K steps per launch, and a stop after every recorded step
      check_cancelled();
      // 64-bit sums: near --steps 2^31 − 1, step + window passes INT_MAX.
      if (int64_t{t} >= int64_t{d.schedule_first} + window) {  // the next window, queued in order
        d.schedule_first = t;
        for (int k = 0; k < window && k < steps - t; ++k) {
          host_bias1[k] = AdamWSchedule::bias1(t + k + 1);
          host_bias2[k] = AdamWSchedule::bias2_sqrt(t + k + 1);
          host_lr_factor[k] =
              AdamWSchedule::lr_factor(g.lr_schedule, g.warmup_steps, g.steps, t + k + 1);
        }
        // From pageable memory: the call returns once the bytes are staged, so the host vectors
        // may be refilled; the copy runs after the launches queued before it.
        SP_CUDA_CHECK(cudaMemcpyAsync(b.bias1.get(), host_bias1.data(), window * sizeof(double),
                                      cudaMemcpyHostToDevice, nullptr));
        SP_CUDA_CHECK(cudaMemcpyAsync(b.bias2.get(), host_bias2.data(), window * sizeof(float),
                                      cudaMemcpyHostToDevice, nullptr));
        SP_CUDA_CHECK(cudaMemcpyAsync(b.lr_factor.get(), host_lr_factor.data(),
                                      window * sizeof(double), cudaMemcpyHostToDevice, nullptr));
      }
      int end = static_cast<int>(std::min(
          {int64_t{steps}, int64_t{t} + steps_per_launch_, int64_t{d.schedule_first} + window}));
      if (const int recorded = next_recorded_step(); recorded < end) end = recorded + 1;
      cuda::launch_train_steps(d, t, end - t, nullptr);
      report_steps(static_cast<int64_t>(count) * (end - t));  // queued: at most a launch ahead
      t = end;
      const int step = t - 1;
      if (next_eval < r.eval_steps.size() && r.eval_steps[next_eval] == step) {
        if (r.evals_recorded)
          cuda::launch_evaluate(d, fresh, fresh ? 0 : d.train_rows, g.eval_rows(),
                                r.eval_history->get() + next_eval * count, nullptr);
        ++next_eval;
      }
      if (next_snapshot < r.snapshot_steps.size() && r.snapshot_steps[next_snapshot] == step) {
        SP_CUDA_CHECK(cudaMemcpyAsync(r.snapshots->get() + next_snapshot * count * P,
                                      b.params.get(), count * P * sizeof(float),
                                      cudaMemcpyDeviceToDevice, nullptr));
        ++next_snapshot;
      }
    }
    loop_end.record();
    SP_CUDA_CHECK(cudaDeviceSynchronize());
    if (timings_) {
      timings_->training_ms += loop_start.milliseconds_to(loop_end);
      ++timings_->chunks;
    }
    return r;
  }

  // The final parameters and losses (fixed data's training loss evaluated on the final
  // parameters, as the cpu backend does), and the trajectories, into each model's result.
  void read_back(const GroupSpec& g, const cuda::DeviceChunk& d, const ChunkBuffers& b,
                 const Recording& r, size_t first, size_t count,
                 std::vector<ModelResult>& results) const {
    const int n = g.n_features, m = g.n_hidden, P = m * n + n, steps = g.steps;
    const bool fresh = g.mode == DataMode::fresh;
    const std::vector<float> final_params = b.params.download();
    std::vector<float> train_loss = b.last_loss.download();
    if (!fresh) {
      cuda::launch_evaluate(d, false, 0, d.train_rows, b.eval.get(), nullptr);
      train_loss = b.eval.download();
    }
    std::vector<float> eval_loss(count, NAN);
    if (g.eval_rows() > 0) {
      cuda::launch_evaluate(d, fresh, fresh ? 0 : d.train_rows, g.eval_rows(), b.eval.get(),
                            nullptr);
      eval_loss = b.eval.download();
    }
    const std::vector<float> curves = b.loss_curve.download();
    const std::vector<float> eval_history = r.eval_history->download();
    const std::vector<float> snapshots = r.snapshots->download();
    for (size_t i = 0; i < count; ++i) {
      ModelResult& result = results[first + i];
      if (g.record_trajectories) {
        result.loss_curve.assign(curves.begin() + i * steps, curves.begin() + (i + 1) * steps);
        for (size_t e = 0; e < r.eval_steps.size(); ++e)
          result.eval_curve.push_back(r.evals_recorded ? eval_history[e * count + i] : NAN);
        for (size_t k = 0; k < r.snapshot_steps.size(); ++k) {
          const float* at = snapshots.data() + (k * count + i) * P;
          result.W_snapshots.insert(result.W_snapshots.end(), at, at + m * n);
          result.b_snapshots.insert(result.b_snapshots.end(), at + m * n, at + P);
        }
      }
      const auto W =
          std::vector<float>(final_params.begin() + i * P, final_params.begin() + i * P + m * n);
      const auto b_final = std::vector<float>(final_params.begin() + i * P + m * n,
                                              final_params.begin() + (i + 1) * P);
      finish_result(result, W, b_final, train_loss[i], eval_loss[i], g.eval_rows() > 0);
    }
  }

  int device_;
  int steps_per_launch_;
  cuda::MappingChoice forced_mapping_;  // CudaOptions::mapping, parsed once
  cuda::FixedRows fixed_rows_;          // CudaOptions::fixed_rows, parsed once
  int schedule_window_;
  CudaOptions::Timings* timings_;
  cudaDeviceProp properties_{};
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

CudaStatus cuda_status() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return {false, "no CUDA device is present"};
  }
  if (const char* error = cuda::kernel_image_error()) {
    cudaDeviceProp properties{};
    SP_CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
    const std::string arch = fmt::format("{}{}", properties.major, properties.minor);
    return {true,
            fmt::format("this build's kernels are for CUDA architecture {} and cannot run on "
                        "the {} (sm_{}): {}; rebuild them for it with "
                        "`scripts/setup -DSUPERPOSE_CUDA_ARCH={}`, or for the Python "
                        "package `CMAKE_ARGS=-DSUPERPOSE_CUDA_ARCH={} pip install .`",
                        SUPERPOSE_CUDA_ARCHITECTURES, properties.name, arch, error, arch, arch)};
  }
  return {true, ""};
}

bool cuda_available() { return cuda_status().problem.empty(); }

std::unique_ptr<Backend> make_cuda_backend(const CudaOptions& options) {
  if (const CudaStatus status = cuda_status(); !status.problem.empty())
    throw UsageError(
        fmt::format("--backend: cuda cannot run here: {} (accepted here: auto, cpu, "
                    "reference)",
                    status.problem));
  check_cuda_options(options);
  int count = 0;
  SP_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (options.device < 0 || options.device >= count)
    throw UsageError(fmt::format("--devices: device {} is not here (this machine has {}: 0 to {})",
                                 options.device, count, count - 1));
  return std::make_unique<CudaBackend>(options);
}

}  // namespace sp
