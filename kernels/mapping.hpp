// mapping.hpp — how the models of a chunk are mapped onto the GPU's threads (docs/design.md §7):
// the mappings, their names and what each accepts, defined once here. Plain data (no CUDA, nothing
// of host/): the kernels, the cuda backend and the cpu-only build read it. Each mapping's kernels
// live in a file of their own (kernels/mapping_<family>.cu), behind kernels/mapping_kernels.cuh's
// contract; the dispatcher's choice among them is host/backends/mapping.hpp's.
//
// Adding a mapping: one row in SP_MAPPINGS below, and its file. The row's columns:
//   id      the enumerator, and the `MappingKernels` its file defines (kernels_<id>)
//   n, m    the one shape it trains (0, 0: any shape)
//   groups  whether it draws feature groups (correlated/anticorrelated features)
//   hidden  whether it trains the neuron model's hidden ReLU (kernels/toy_model.hpp: Activation;
//           the per-shape kernels leave it out, so the tied models' loops keep their instructions)
//   own     whether it is its shape's own mapping, chosen without being asked for
#pragma once

#include <cstddef>
#include <cstdint>

namespace sp::cuda {

// clang-format off
#define SP_MAPPINGS(X)                          \
  X(registers_2x1, 2, 1, false, false, true)   \
  X(registers_5x2, 5, 2, false, false, true)   \
  X(shared_5x2, 5, 2, false, false, false)     \
  X(shared_20x5, 20, 5, false, false, true)    \
  X(global, 0, 0, true, true, false)           \
  X(tiled, 0, 0, true, true, false)            \
  X(tiled_split, 0, 0, true, true, false)
// clang-format on

enum class Mapping {
#define SP_MAPPING_ENUM(id, n, m, groups, hidden, own) id,
  SP_MAPPINGS(SP_MAPPING_ENUM)
#undef SP_MAPPING_ENUM
};

struct MappingRow {
  Mapping mapping;
  const char* name;  // as the enumerator is spelled: the benchmark's and the messages' name
  int n, m;          // the one shape it trains; 0, 0: any
  bool groups;       // draws feature groups
  bool hidden;       // trains the hidden ReLU (the neuron model)
  bool own;          // its shape's own mapping, chosen without being asked for
};
inline constexpr MappingRow kMappingRows[] = {
#define SP_MAPPING_ROW(id, n, m, groups, hidden, own) {Mapping::id, #id, n, m, groups, hidden, own},
    SP_MAPPINGS(SP_MAPPING_ROW)
#undef SP_MAPPING_ROW
};
inline constexpr int kMappingCount = static_cast<int>(sizeof kMappingRows / sizeof kMappingRows[0]);

// Shapes with at least this many entries of W train on the tiled mapping (unless they have their
// own): the boundary the cpu backend's blocked passes use too (host/backends/cpu_simd.inc), and
// where a block of 8 warps has whole tiles to work on (bench/CEILING.md).
constexpr int kTiledMinEntries = 256;

// The mapping asked for (--mapping, CudaOptions::mapping), parsed once: automatic (the shape's
// own), or one forced — "global", "tiled", "tiled-split", "shared" (the shape's shared-weights
// mapping: 5 x 2 and 20 x 5 have one). The tests and the benchmark compare the mappings this way.
enum class MappingChoice { automatic, global, tiled, tiled_split, shared };
struct MappingChoiceName {
  MappingChoice choice;
  const char* name;
};
inline constexpr MappingChoiceName kMappingChoices[] = {
    {MappingChoice::automatic, ""},
    {MappingChoice::global, "global"},
    {MappingChoice::shared, "shared"},
    {MappingChoice::tiled, "tiled"},
    {MappingChoice::tiled_split, "tiled-split"}};
// Where fixed data's training rows are read each step (--fixed-rows, CudaOptions::fixed_rows),
// parsed once: automatic (shared memory where they fit, else device memory), memory (device
// memory), regenerate (drawn again from their counters wherever they are used).
enum class FixedRows { automatic, memory, regenerate };

}  // namespace sp::cuda
