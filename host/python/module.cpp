// python_module.cpp — superpose/_core, the engine behind the Python package (python/superpose):
// a Job runs one command of the command line, as written (the same parsing, checks, backends and
// files: the same bits), on a thread of its own with the GIL released, its messages gathered for
// Python; it can be asked to stop (KeyboardInterrupt) and reports how many models it has done.
#include <nanobind/nanobind.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "host/cli/cli.hpp"
#include "host/core/job.hpp"
#include "host/sweep/sweep.hpp"

namespace nb = nanobind;

namespace {

// The messages of the running job (one job at a time: the sink and the stop flag are global).
std::mutex log_mutex;
std::string log_out, log_err;
std::atomic<bool> busy{false};

void gather(sp::Stream stream, const std::string& text) {
  std::lock_guard<std::mutex> lock(log_mutex);
  (stream == sp::Stream::out ? log_out : log_err) += text;
}

class Job {
 public:
  explicit Job(std::vector<std::string> args) : args_(std::move(args)) {
    if (busy.exchange(true))
      throw std::runtime_error("superpose: another superpose command is running in this process");
    {
      std::lock_guard<std::mutex> lock(log_mutex);
      log_out.clear();
      log_err.clear();
    }
    sp::set_output_sink(gather);
    sp::clear_cancel();
    sp::progress().reset();
    thread_ = std::thread([this] {
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>("superpose"));
      for (std::string& arg : args_) argv.push_back(arg.data());
      const int status = sp::run_cli(static_cast<int>(argv.size()), argv.data());
      // The thread frees the process for the next job itself, whether or not anyone waits.
      {
        std::lock_guard<std::mutex> lock(log_mutex);
        out_ = log_out;
        err_ = log_err;
      }
      sp::set_output_sink(nullptr);
      sp::clear_cancel();
      std::lock_guard<std::mutex> lock(mutex_);
      status_ = status;
      done_ = true;
      busy = false;
      finished_.notify_all();
    });
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() {
    if (thread_.joinable()) {
      if (!finished()) sp::request_cancel();  // a job dropped unfinished is stopped, not left
      nb::gil_scoped_release release;
      thread_.join();
    }
  }

  // Waits up to `seconds` with the GIL released; true once the command has finished.
  bool wait(double seconds) {
    nb::gil_scoped_release release;
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; });
    return done_;
  }
  void cancel() {
    if (!finished()) sp::request_cancel();
  }
  int status() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }
  std::vector<int64_t> progress() const {
    const sp::Progress& p = sp::progress();
    return {p.done.load(), p.total.load(), p.work_done.load(), p.work_total.load()};
  }
  std::string out() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return out_;
    std::lock_guard<std::mutex> log_lock(log_mutex);
    return log_out;
  }
  std::string err() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (done_) return err_;
    std::lock_guard<std::mutex> log_lock(log_mutex);
    return log_err;
  }

 private:
  bool finished() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }

  std::vector<std::string> args_;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable finished_;
  bool done_ = false;
  int status_ = -1;
  std::string out_, err_;
};

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "superpose's engine: runs one command of the command line (python/superpose wraps it)";
  m.attr("version") = SUPERPOSE_VERSION;
  nb::class_<Job>(m, "Job")
      .def(nb::init<std::vector<std::string>>(), nb::arg("args"),
           "starts `superpose ARGS...` on a thread of its own")
      .def("wait", &Job::wait, nb::arg("seconds"),
           "waits up to `seconds` (the GIL released); True once finished")
      .def("cancel", &Job::cancel, "asks the command to stop at its next check")
      .def("status", &Job::status, "the command's exit status (-1 while running)")
      .def("progress", &Job::progress,
           "[models done, models in all, model-steps done, model-steps in all] of a sweep, tms or "
           "the experiments (the steps move within a chunk)")
      .def("out", &Job::out, "what the command printed on stdout")
      .def("err", &Job::err, "what the command printed on stderr");
  m.def("options_json", &sp::options_json,
        "the command line's options as a JSON table (host/cli/cli.hpp): what superpose's "
        "functions take, their defaults, kinds and help");
  m.def(
      "axis_values", [](const std::string& text) { return sp::parse_axis(text, "axis"); },
      nb::arg("text"),
      "an axis's values from its text (a list, or the generator a manifest keeps, "
      "\"logspace(-2,0,12)\"): the engine's parser, the same doubles");
}
