// job.hpp — what a run shares with whoever started it: where its messages go, whether it has been
// asked to stop, and how far it has got. The command line leaves the defaults (stdout for reports,
// stderr for progress, warnings and errors; Ctrl-C ends the process); the Python module
// (host/python/module.cpp) runs a command on a thread of its own, gathers its messages, stops it
// on KeyboardInterrupt and draws a progress bar from the counts.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace sp {

enum class Stream { out, err };
// Where messages go: null (the default) writes them to stdout and stderr.
using OutputSink = void (*)(Stream stream, const std::string& text);
void set_output_sink(OutputSink sink);
void write_output(Stream stream, const std::string& text);
// Whether progress may be drawn on stderr: a terminal, and no sink.
bool progress_on_terminal();

template <class... Args>
void print_out(fmt::format_string<Args...> format, Args&&... args) {
  write_output(Stream::out, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void print_err(fmt::format_string<Args...> format, Args&&... args) {
  write_output(Stream::err, fmt::format(format, std::forward<Args>(args)...));
}

// A run asked to stop (request_cancel) throws Cancelled at its next check: between training
// steps, launches and chunks. A sweep stopped so keeps every chunk it finished: it resumes.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("stopped on request") {}
};
void request_cancel();
void clear_cancel();
bool cancel_requested();
inline void check_cancelled() {
  if (cancel_requested()) throw Cancelled();
}

// How far the running command has got (the Python package's progress bar): models finished of
// all it trains (a sweep's chunks, the experiments' seeds), and work — model-steps — done of all,
// which the backends report as they train, so that the bar moves within a chunk. A command that
// runs several sweeps (tms) sets both totals once and marks them `outer`: each sweep then adds to
// them instead of starting them again.
struct Progress {
  std::atomic<int64_t> done{0}, total{0};
  std::atomic<int64_t> work_done{0}, work_total{0};
  std::atomic<bool> outer{false};

  void start(int64_t models, int64_t work) {
    if (outer) return;
    done = 0;
    total = models;
    work_done = 0;
    work_total = work;
  }
  void reset() {
    outer = false;
    start(0, 0);
  }
};
Progress& progress();
// A backend's training steps of one model or more, as they are taken.
inline void report_steps(int64_t model_steps) {
  progress().work_done.fetch_add(model_steps, std::memory_order_relaxed);
}

}  // namespace sp
