#include "host/core/job.hpp"

#include <unistd.h>

#include <cstdio>

namespace sp {

namespace {
std::atomic<OutputSink> sink{nullptr};
std::atomic<bool> cancel{false};
}  // namespace

void set_output_sink(OutputSink new_sink) { sink = new_sink; }

void write_output(Stream stream, const std::string& text) {
  if (const OutputSink current = sink.load()) {
    current(stream, text);
    return;
  }
  std::FILE* file = stream == Stream::out ? stdout : stderr;
  std::fwrite(text.data(), 1, text.size(), file);
  if (stream == Stream::err) std::fflush(file);
}

bool progress_on_terminal() { return sink.load() == nullptr && ::isatty(STDERR_FILENO) == 1; }

void request_cancel() { cancel = true; }
void clear_cancel() { cancel = false; }
bool cancel_requested() { return cancel.load(std::memory_order_relaxed); }

Progress& progress() {
  static Progress instance;
  return instance;
}

}  // namespace sp
