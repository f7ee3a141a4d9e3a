// resources.hpp — what a run will need, worked out before anything is allocated or written, and
// what this machine has: a run that cannot fit is refused with one line naming the option that
// makes it too big and the machine's limit (UsageError), instead of failing halfway with
// std::bad_alloc or a full disk and a half-written run directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "host/core/config.hpp"

namespace sp {

// Host memory available to this process: /proc/meminfo's MemAvailable, lowered by a cgroup memory
// limit; the environment variable SUPERPOSE_MEMORY_LIMIT (bytes) stands in for both (tests).
uint64_t available_memory_bytes();
// Free space for an unprivileged user on the file system that holds `path` (or its nearest
// existing ancestor); SUPERPOSE_DISK_LIMIT (bytes) stands in for it (tests).
uint64_t free_disk_bytes(const std::string& path);

// One part of a run's need, and the option that sets its size.
struct Need {
  double bytes = 0;
  std::string option, what;
};

// The host memory of training `models_at_once` models of `group` together (one chunk, whose
// results are kept until written) on `threads` threads: each thread's data and scratch, each
// model's results and trajectories, the chunk's results.csv text.
// `models_option` names the option that sets how many models a chunk holds.
std::vector<Need> training_memory(const GroupSpec& group, int64_t models_at_once, int threads,
                                  const std::string& models_option);
// What a run writes: results.csv rows (twice for a sweep: its chunks and the merged file), the
// trajectories, a fixed dataset.
std::vector<Need> output_disk(const GroupSpec& group, int64_t models, bool sweep,
                              const std::string& models_option);

// Throws UsageError naming the largest part's option when the parts add up to more than `limit`.
void require_memory(const std::vector<Need>& needs);
void require_disk(const std::vector<Need>& needs, const std::string& out);

std::string bytes_text(double bytes);  // "3.2 GiB"

}  // namespace sp
