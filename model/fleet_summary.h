// FleetSummary: what an operator asks of a fleet first — how much of each thing there is, what it
// draws at rated load, what headroom each power budget leaves, how much heat can be recovered.
// Pure function of the Fleet; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/units.h"
#include "model/fleet.h"

namespace joule {

struct TypeCount {
  std::string type;
  uint64_t accelerators = 0;
  uint64_t nodes = 0;
};

struct DomainCount {
  uint32_t accelerators = 0;  // domain size
  uint64_t domains = 0;
};

// Budgets of one level (hall, row or rack): how many carry one and the tightest headroom, i.e.
// budget minus rated IT draw (negative: oversubscribed at full load).
struct LevelBudgets {
  std::string level;
  uint64_t units = 0;
  uint64_t with_budget = 0;
  Watts total_budget_w = 0;
  std::optional<Watts> min_headroom_w;
  std::string tightest;  // name of the unit with the least headroom
};

struct HallSummary {
  std::string name;
  uint64_t accelerators = 0;
  Watts it_rated_w = 0;
  std::optional<Watts> power_budget_w;
};

struct FleetSummary {
  std::string campus;
  std::string phase;
  uint64_t halls = 0, rows = 0, pods = 0, racks = 0, nodes = 0, accelerators = 0;
  uint64_t cpu_only_nodes = 0;
  Millicores cpu = 0;
  MiB memory = 0;
  std::vector<TypeCount> by_type;   // in catalog order
  std::vector<DomainCount> nvlink;  // by domain size, ascending
  Watts it_rated_w = 0;
  Watts it_idle_w = 0;
  double pue = 1.0;
  Watts facility_rated_w = 0;  // IT at rated load times PUE
  Watts grid_connection_w = 0;
  Watts grid_headroom_w = 0;  // grid connection minus facility power at rated load
  std::vector<HallSummary> hall_list;
  std::vector<LevelBudgets> budgets;  // hall, row, rack
  double liquid_heat_capture = 0;
  Watts recoverable_heat_w = 0;  // IT heat captured by liquid at full load
  double supply_temperature_c = 0;
};

FleetSummary Summarize(const Fleet& fleet);

}  // namespace joule
