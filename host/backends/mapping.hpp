// mapping.hpp — the dispatcher's choice of kernel mapping (docs/design.md §7), made here and only
// here, over the table of kernels/mapping.hpp: the shape's own mapping or the one forced, feature
// groups, the device's memory, and a chunk too small to fill the device. Pure functions of what
// they are given (the cuda backend asks the device), and the names --mapping and --fixed-rows
// take, parsed once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/mapping.hpp"

namespace sp::cuda {

const MappingRow& row_of(Mapping mapping);
const char* to_string(Mapping mapping);
// Whether the mapping trains a group of this shape (with feature groups where `groups`, and the
// neuron model's hidden ReLU where `hidden`).
bool accepts(Mapping mapping, int n, int m, bool groups, bool hidden);

// UsageError naming `option` for any other text.
MappingChoice parse_mapping_choice(const std::string& text, const std::string& option);

FixedRows parse_fixed_rows(const std::string& text, const std::string& option);

// ---------------------------------------------------------------- the dispatcher's choice
// Made in three steps, each a pure function of what it is given, all here:
//   1. choose_mapping: the shape's own mapping (mapping_for), or the one forced; feature groups
//      and the neuron model (`hidden`: a model of the group has the hidden ReLU) train on the
//      global or tiled mappings only (a forced mapping that cannot train the group is a UsageError
//      naming --mapping);
//   2. fit_mapping: where one model's memory on the chosen mapping exceeds the device's budget and
//      a mapping of the same bits fits, that one (tiled → global: the tiled scratch grows with the
//      rows a step); the caller says so on stderr;
//   3. chunk_mapping: for a chunk of a tiled shape with fewer models than the device holds blocks
//      of train_steps_tiled (a block per model would leave SMs idle), its passes launched one by
//      one over the models' tiles (tiled_split: the same scratch, the same bits).
Mapping mapping_for(int n, int m);         // the shape's own
Mapping shared_mapping_for(int n, int m);  // 5 x 2 and 20 x 5 have one; else global
Mapping choose_mapping(int n, int m, bool groups, bool hidden, MappingChoice forced);
// `bytes_of(mapping)`: one model's device memory on it.
template <class BytesOf>
Mapping fit_mapping(Mapping chosen, MappingChoice forced, size_t budget, BytesOf&& bytes_of) {
  if (chosen == Mapping::tiled && forced == MappingChoice::automatic && bytes_of(chosen) > budget &&
      bytes_of(Mapping::global) <= budget)
    return Mapping::global;
  return chosen;
}
// `models_to_fill()`: how many models fill the device on train_steps_tiled (an occupancy query:
// asked only where the answer decides something).
template <class ModelsToFill>
Mapping chunk_mapping(Mapping chosen, MappingChoice forced, int64_t models,
                      ModelsToFill&& models_to_fill) {
  if (chosen == Mapping::tiled && forced == MappingChoice::automatic && models < models_to_fill())
    return Mapping::tiled_split;
  return chosen;
}

}  // namespace sp::cuda
