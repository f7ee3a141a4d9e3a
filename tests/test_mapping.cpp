// The dispatcher's choice of kernel mapping (host/backends/mapping.hpp, docs/design.md §7): pure
// functions, checked here without a GPU — the shape's own mapping from the table's rows, a forced
// mapping and what it may not train, the memory fallback, and a chunk too small to fill the device.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "host/backends/mapping.hpp"
#include "host/core/config.hpp"

namespace sp::cuda {
namespace {

TEST(Dispatcher, EachShapeGetsItsOwnMappingFromTheTable) {
  EXPECT_EQ(mapping_for(2, 1), Mapping::registers_2x1);
  EXPECT_EQ(mapping_for(5, 2), Mapping::registers_5x2);  // its own, not the shared one
  EXPECT_EQ(mapping_for(20, 5), Mapping::shared_20x5);
  EXPECT_EQ(mapping_for(7, 3), Mapping::global);
  EXPECT_EQ(mapping_for(16, 16), Mapping::tiled);  // m n = 256: the tiled size
  EXPECT_EQ(mapping_for(85, 3), Mapping::global);  // 255 entries
  std::set<std::string> names;
  for (const MappingRow& row : kMappingRows) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(to_string(row.mapping), std::string(row.name));
    if (row.own) {
      EXPECT_EQ(mapping_for(row.n, row.m), row.mapping) << row.name;
    }
  }
  EXPECT_EQ(static_cast<int>(names.size()), kMappingCount);
}

TEST(Dispatcher, AForcedMappingFeatureGroupsOrTheNeuronModelChooseAsDocumented) {
  EXPECT_EQ(choose_mapping(5, 2, true, false, MappingChoice::automatic), Mapping::global);
  EXPECT_EQ(choose_mapping(37, 7, true, false, MappingChoice::automatic), Mapping::tiled);
  EXPECT_EQ(choose_mapping(2, 1, false, false, MappingChoice::global), Mapping::global);
  EXPECT_EQ(choose_mapping(2, 1, true, false, MappingChoice::tiled_split), Mapping::tiled_split);
  EXPECT_EQ(choose_mapping(5, 2, false, false, MappingChoice::shared), Mapping::shared_5x2);
  EXPECT_EQ(choose_mapping(20, 5, false, false, MappingChoice::shared), Mapping::shared_20x5);
  EXPECT_THROW(choose_mapping(7, 3, false, false, MappingChoice::shared), UsageError);
  EXPECT_THROW(choose_mapping(20, 5, true, false, MappingChoice::shared), UsageError);
  EXPECT_FALSE(accepts(Mapping::registers_2x1, 2, 1, true, false));
  EXPECT_TRUE(accepts(Mapping::global, 300, 40, true, false));
  // The neuron model's hidden ReLU: never on a per-shape kernel (they leave it out), always on
  // global and tiled; a forced shared mapping is refused, naming why.
  for (const MappingRow& row : kMappingRows)
    EXPECT_EQ(accepts(row.mapping, row.n ? row.n : 300, row.m ? row.m : 40, false, true),
              row.n == 0)
        << row.name;
  EXPECT_EQ(choose_mapping(2, 1, false, true, MappingChoice::automatic), Mapping::global);
  EXPECT_EQ(choose_mapping(20, 5, false, true, MappingChoice::automatic), Mapping::global);
  EXPECT_EQ(choose_mapping(40, 10, false, true, MappingChoice::automatic), Mapping::tiled);
  EXPECT_THROW(choose_mapping(5, 2, false, true, MappingChoice::shared), UsageError);
  EXPECT_EQ(parse_mapping_choice("", "mapping"), MappingChoice::automatic);
  EXPECT_EQ(parse_mapping_choice("tiled-split", "mapping"), MappingChoice::tiled_split);
  EXPECT_THROW(parse_mapping_choice("tiled_split", "mapping"), UsageError);
  EXPECT_EQ(parse_fixed_rows("regenerate", "--fixed-rows"), FixedRows::regenerate);
  EXPECT_THROW(parse_fixed_rows("disk", "--fixed-rows"), UsageError);
}

TEST(Dispatcher, MemoryAndChunkSizeDecideOnlyForTheAutomaticTiledMapping) {
  auto bytes = [](Mapping mapping) { return mapping == Mapping::tiled ? 1000u : 100u; };
  EXPECT_EQ(fit_mapping(Mapping::tiled, MappingChoice::automatic, 500, bytes), Mapping::global);
  EXPECT_EQ(fit_mapping(Mapping::tiled, MappingChoice::automatic, 2000, bytes), Mapping::tiled);
  EXPECT_EQ(fit_mapping(Mapping::tiled, MappingChoice::tiled, 500, bytes), Mapping::tiled);
  EXPECT_EQ(fit_mapping(Mapping::tiled, MappingChoice::automatic, 50, bytes), Mapping::tiled);
  int asked = 0;
  auto fill = [&] { return ++asked, int64_t{264}; };
  EXPECT_EQ(chunk_mapping(Mapping::tiled, MappingChoice::automatic, 10, fill),
            Mapping::tiled_split);
  EXPECT_EQ(chunk_mapping(Mapping::tiled, MappingChoice::automatic, 264, fill), Mapping::tiled);
  EXPECT_EQ(chunk_mapping(Mapping::tiled, MappingChoice::tiled, 10, fill), Mapping::tiled);
  EXPECT_EQ(chunk_mapping(Mapping::registers_2x1, MappingChoice::automatic, 10, fill),
            Mapping::registers_2x1);
  EXPECT_EQ(asked, 2);  // the occupancy is asked only where it decides
}

}  // namespace
}  // namespace sp::cuda
