#include "model/fleet_summary.h"

#include <cmath>
#include <map>

namespace joule {
namespace {

void Consider(LevelBudgets& level, std::optional<Watts> budget, Watts rated, std::string_view name) {
  level.units++;
  if (!budget) return;
  level.with_budget++;
  level.total_budget_w += *budget;
  Watts headroom = *budget - rated;
  if (!level.min_headroom_w || headroom < *level.min_headroom_w) {
    level.min_headroom_w = headroom;
    level.tightest = std::string(name);
  }
}

std::vector<LevelBudgets> Budgets(const Fleet& fleet) {
  LevelBudgets halls{"hall"}, rows{"row"}, racks{"rack"};
  for (uint32_t i = 0; i < fleet.halls().size(); ++i) {
    Consider(halls, fleet.halls()[i].power_budget_w, fleet.hall_draw(HallId(i)).rated_w, fleet.halls()[i].name);
  }
  for (uint32_t i = 0; i < fleet.rows().size(); ++i) {
    Consider(rows, fleet.rows()[i].power_budget_w, fleet.row_draw(RowId(i)).rated_w, fleet.rows()[i].name);
  }
  for (uint32_t i = 0; i < fleet.racks().size(); ++i) {
    RackId id(i);
    const RackType& type = fleet.catalog().rack(fleet.rack(id).type);
    // Names are built only for a new minimum, not for every one of 100k racks.
    bool tighter = type.power_budget_w && (!racks.min_headroom_w ||
                                           *type.power_budget_w - fleet.rack_draw(id).rated_w < *racks.min_headroom_w);
    Consider(racks, type.power_budget_w, fleet.rack_draw(id).rated_w, tighter ? fleet.RackName(id) : racks.tightest);
  }
  return {halls, rows, racks};
}

}  // namespace

FleetSummary Summarize(const Fleet& fleet) {
  const CampusSpec& campus = fleet.campus();
  const Catalog& catalog = fleet.catalog();
  FleetSummary s;
  s.campus = campus.name;
  s.phase = campus.phase;
  s.halls = fleet.halls().size();
  s.rows = fleet.rows().size();
  s.pods = fleet.pods().size();
  s.racks = fleet.racks().size();
  s.nodes = fleet.nodes().size();
  s.accelerators = fleet.accelerator_count();

  std::vector<TypeCount> by_type(catalog.accelerators().size());
  for (const Node& node : fleet.nodes()) {
    const NodeType& type = catalog.node(node.type);
    s.cpu += type.cpu;
    s.memory += type.memory;
    if (!type.accelerator) {
      s.cpu_only_nodes++;
      continue;
    }
    TypeCount& count = by_type[type.accelerator->value()];
    count.accelerators += type.accelerators;
    count.nodes++;
  }
  for (uint32_t i = 0; i < by_type.size(); ++i) {
    if (by_type[i].nodes == 0) continue;
    by_type[i].type = catalog.accelerators()[i].name;
    s.by_type.push_back(by_type[i]);
  }
  std::map<uint32_t, uint64_t> domains;
  for (const NvlinkDomain& d : fleet.domains()) domains[d.accelerators]++;
  for (auto [size, count] : domains) s.nvlink.push_back({size, count});

  s.it_rated_w = fleet.it_draw().rated_w;
  s.it_idle_w = fleet.it_draw().idle_w;
  s.pue = campus.pue;
  s.facility_rated_w = std::llround(static_cast<double>(s.it_rated_w) * campus.pue);
  s.grid_connection_w = campus.grid_connection_w;
  s.grid_headroom_w = campus.grid_connection_w - s.facility_rated_w;
  for (uint32_t i = 0; i < fleet.halls().size(); ++i) {
    const Hall& hall = fleet.halls()[i];
    s.hall_list.push_back(
        {hall.name, hall.accelerators.count, fleet.hall_draw(HallId(i)).rated_w, hall.power_budget_w});
  }
  s.budgets = Budgets(fleet);
  s.liquid_heat_capture = campus.liquid_heat_capture;
  s.recoverable_heat_w = std::llround(static_cast<double>(s.it_rated_w) * campus.liquid_heat_capture);
  s.supply_temperature_c = campus.supply_temperature_c;
  return s;
}

}  // namespace joule
