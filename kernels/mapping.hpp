// mapping.hpp — how the models of a chunk are mapped onto the GPU's threads (docs/design.md,
// "Kernel mappings"): the mappings, their names and what each accepts, defined once here, and the
// dispatcher's whole choice among them. Plain C++ (no CUDA): the command line, the cpu-only build
// and the benchmark read it too. Each mapping's kernels live in a file of their own
// (kernels/mapping_<family>.cu), behind the contract of kernels/mapping_kernels.cuh.
//
// Adding a mapping: one row in SP_MAPPINGS below, and its file. The row's columns:
//   id      the enumerator, and the `MappingKernels` its file defines (kernels_<id>)
//   n, m    the one shape it trains (0, 0: any shape)
//   groups  whether it draws feature groups (correlated/anticorrelated features)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sp::cuda {

#define SP_MAPPINGS(X)          \
  X(registers_2x1, 2, 1, false) \
  X(registers_5x2, 5, 2, false) \
  X(shared_5x2, 5, 2, false)    \
  X(shared_20x5, 20, 5, false)  \
  X(global, 0, 0, true)         \
  X(tiled, 0, 0, true)          \
  X(tiled_split, 0, 0, true)

enum class Mapping {
#define SP_MAPPING_ENUM(id, n, m, groups) id,
  SP_MAPPINGS(SP_MAPPING_ENUM)
#undef SP_MAPPING_ENUM
};

struct MappingRow {
  Mapping mapping;
  const char* name;  // as the enumerator is spelled: the benchmark's and the messages' name
  int n, m;          // the one shape it trains; 0, 0: any
  bool groups;       // draws feature groups
};
inline constexpr MappingRow kMappingRows[] = {
#define SP_MAPPING_ROW(id, n, m, groups) {Mapping::id, #id, n, m, groups},
    SP_MAPPINGS(SP_MAPPING_ROW)
#undef SP_MAPPING_ROW
};
inline constexpr int kMappingCount = static_cast<int>(sizeof kMappingRows / sizeof kMappingRows[0]);

const MappingRow& row_of(Mapping mapping);
const char* to_string(Mapping mapping);
// Whether the mapping trains a group of this shape (with feature groups where `groups`).
bool accepts(Mapping mapping, int n, int m, bool groups);

// Shapes with at least this many entries of W train on the tiled mapping (unless they have their
// own): the boundary the cpu backend's blocked passes use too (host/backends/cpu_simd.inc), and where a
// block of 8 warps has whole tiles to work on (bench/CEILING.md).
constexpr int kTiledMinEntries = 256;

// The mapping asked for (--mapping, CudaOptions::mapping), parsed once: automatic (the shape's
// own), or one forced — "global", "tiled", "tiled-split", "shared" (the shape's shared-weights
// mapping: 5 x 2 and 20 x 5 have one). The tests and the benchmark compare the mappings this way.
enum class MappingChoice { automatic, global, tiled, tiled_split, shared };
struct MappingChoiceName {
  MappingChoice choice;
  const char* name;
};
inline constexpr MappingChoiceName kMappingChoices[] = {{MappingChoice::automatic, ""},
                                                        {MappingChoice::global, "global"},
                                                        {MappingChoice::tiled, "tiled"},
                                                        {MappingChoice::tiled_split, "tiled-split"},
                                                        {MappingChoice::shared, "shared"}};
// UsageError naming `option` for any other text.
MappingChoice parse_mapping_choice(const std::string& text, const std::string& option);

// Where fixed data's training rows are read each step (--fixed-rows, CudaOptions::fixed_rows),
// parsed once: automatic (shared memory where they fit, else device memory), memory (device
// memory), regenerate (drawn again from their counters wherever they are used).
enum class FixedRows { automatic, memory, regenerate };
FixedRows parse_fixed_rows(const std::string& text, const std::string& option);

// ---------------------------------------------------------------- the dispatcher's choice
// Made in three steps, each a pure function of what it is given, all here:
//   1. choose_mapping: the shape's own mapping (mapping_for), or the one forced; feature groups
//      train on the global or tiled mappings only (a forced mapping that cannot train the group is
//      a UsageError naming --mapping);
//   2. fit_mapping: where one model's memory on the chosen mapping exceeds the device's budget and
//      a mapping of the same bits fits, that one (tiled → global: the tiled scratch grows with the
//      rows a step); the caller says so on stderr;
//   3. chunk_mapping: for a chunk of a tiled shape with fewer models than the device holds blocks
//      of train_steps_tiled (a block per model would leave SMs idle), its passes launched one by
//      one over the models' tiles (tiled_split: the same scratch, the same bits).
Mapping mapping_for(int n, int m);         // the shape's own
Mapping shared_mapping_for(int n, int m);  // 5 x 2 and 20 x 5 have one; else global
Mapping choose_mapping(int n, int m, bool groups, MappingChoice forced);
// `bytes_of(mapping)`: one model's device memory on it.
template <class BytesOf>
Mapping fit_mapping(Mapping chosen, MappingChoice forced, size_t budget, BytesOf&& bytes_of) {
  if (chosen == Mapping::tiled && forced == MappingChoice::automatic && bytes_of(chosen) > budget &&
      bytes_of(Mapping::global) <= budget)
    return Mapping::global;
  return chosen;
}
Mapping chunk_mapping(Mapping chosen, MappingChoice forced, int64_t models,
                      int64_t tiled_models_to_fill);

}  // namespace sp::cuda
