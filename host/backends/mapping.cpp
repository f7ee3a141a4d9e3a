// mapping.cpp — the mappings' table read, and the dispatcher's choice (host/backends/mapping.hpp).
#include "host/backends/mapping.hpp"

#include <fmt/format.h>

#include <stdexcept>

#include "host/core/config.hpp"  // UsageError

namespace sp::cuda {

const MappingRow& row_of(Mapping mapping) {
  for (const MappingRow& row : kMappingRows)
    if (row.mapping == mapping) return row;
  throw std::logic_error("mapping: not in SP_MAPPINGS");
}

const char* to_string(Mapping mapping) { return row_of(mapping).name; }

bool accepts(Mapping mapping, int n, int m, bool groups, bool hidden) {
  const MappingRow& row = row_of(mapping);
  return (row.n == 0 || (row.n == n && row.m == m)) && (row.groups || !groups) &&
         (row.hidden || !hidden);
}

MappingChoice parse_mapping_choice(const std::string& text, const std::string& option) {
  std::string accepted;
  for (const MappingChoiceName& choice : kMappingChoices) {
    if (text == choice.name) return choice.choice;
    if (*choice.name) accepted += std::string(accepted.empty() ? "" : ", ") + choice.name;
  }
  throw UsageError(fmt::format("{}: unknown '{}' (accepted: {}, or empty for the shape's own)",
                               option, text, accepted));
}

FixedRows parse_fixed_rows(const std::string& text, const std::string& option) {
  if (text == "auto") return FixedRows::automatic;
  if (text == "memory") return FixedRows::memory;
  if (text == "regenerate") return FixedRows::regenerate;
  throw UsageError(
      fmt::format("{}: '{}' is not accepted (auto, memory or regenerate)", option, text));
}

Mapping mapping_for(int n, int m) {
  // The shape's own mapping where it has one (the row that says so), else tiled or global by size.
  for (const MappingRow& row : kMappingRows)
    if (row.own && row.n == n && row.m == m) return row.mapping;
  if (static_cast<int64_t>(n) * m >= kTiledMinEntries) return Mapping::tiled;
  return Mapping::global;
}

Mapping shared_mapping_for(int n, int m) {
  if (n == 5 && m == 2) return Mapping::shared_5x2;
  if (n == 20 && m == 5) return Mapping::shared_20x5;
  return Mapping::global;
}

Mapping choose_mapping(int n, int m, bool groups, bool hidden, MappingChoice forced) {
  switch (forced) {
    case MappingChoice::automatic: {
      const Mapping own = mapping_for(n, m);
      // groups or the hidden ReLU at a per-shape kernel's shape: global
      return accepts(own, n, m, groups, hidden) ? own : Mapping::global;
    }
    case MappingChoice::global:
      return Mapping::global;
    case MappingChoice::tiled:
      return Mapping::tiled;
    case MappingChoice::tiled_split:
      return Mapping::tiled_split;
    case MappingChoice::shared:
      if (groups)
        throw UsageError(
            "mapping: feature groups train on the global or tiled mappings only, not shared");
      if (hidden)
        throw UsageError(
            "mapping: the neuron model trains on the global or tiled mappings only, not shared");
      if (shared_mapping_for(n, m) == Mapping::global)
        throw UsageError(fmt::format(
            "mapping: shared has kernels for 5 x 2 and 20 x 5 only, not {} x {}", n, m));
      return shared_mapping_for(n, m);
  }
  throw std::logic_error("choose_mapping: unknown choice");
}

}  // namespace sp::cuda
