// Small fleets built in code for unit tests.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>

#include "model/fleet.h"

namespace joule::testing {

// One hall, one row; node i gets type types[i] (names from the built-in catalog or added by
// `add`), racks of `per_rack` nodes.
inline Fleet FleetOf(const std::vector<NodeType>& node_types, uint32_t per_rack = 4) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"test", "", 100 * kWattsPerMw, 1.1, 0.8, 45};
  RackTypeId rack = spec.catalog.Add(RackType{"test-rack", std::nullopt, per_rack, 100, 50, std::nullopt});
  RowSpec row{"t-r01", std::nullopt, rack, 0, {}, 0};
  for (size_t i = 0; i < node_types.size(); ++i) {
    NodeTypeId id = spec.catalog.Add(node_types[i]);
    row.nodes.push_back({fmt::format("n{}", i), id});
  }
  spec.halls.push_back(HallSpec{"t", std::nullopt, {row}});
  return Fleet::Build(std::move(spec));
}

// A node type of `gpus` H100s with the given CPU cores and memory GiB.
inline NodeType GpuNode(const Catalog& catalog, uint32_t gpus, int64_t cores, int64_t memory_gib,
                        const std::string& accelerator = "h100-sxm") {
  return NodeType{fmt::format("{}x{}-{}", accelerator, gpus, cores),
                  catalog.FindAccelerator(accelerator),
                  gpus,
                  cores * 1000,
                  memory_gib * 1024,
                  1000,
                  300};
}

}  // namespace joule::testing
