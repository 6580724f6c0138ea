// The fleet: a campus's physical and network hierarchy,
//   campus -> hall (building) -> row (power domain) -> pod (leaf/spine block) -> rack -> node
//   -> accelerator,
// with NVLink domains grouping the accelerators that share one fabric. Every level is a dense
// table; children are consecutive id ranges, so walking a subtree is a loop over integers and a
// 500,000-accelerator campus fits in a few megabytes. Rated and idle power are precomputed per
// level. Thread-safety: immutable after Build(); safe to share between threads.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/ids.h"
#include "base/units.h"
#include "model/catalog.h"
#include "model/power_model.h"

namespace joule {

using HallId = Id<struct HallTag>;
using RowId = Id<struct RowTag>;
using PodId = Id<struct PodTag>;
using RackId = Id<struct RackTag>;
using NodeId = Id<struct NodeTag>;
using AcceleratorId = Id<struct AcceleratorTag>;
using DomainId = Id<struct NvlinkDomainTag>;

// ---- What to build (already validated by the scenario loader) ----

struct ExplicitNode {
  std::string name;
  NodeTypeId type;
};

struct RowSpec {
  std::string name;
  std::optional<Watts> power_budget_w;
  RackTypeId rack_type;
  // Typed racks: `racks` racks of rack_type.node_type. Node-list racks: `nodes` fill racks of
  // rack_type.nodes each, in order (the last one may be partial) and `racks` is ignored.
  uint32_t racks = 0;
  std::vector<ExplicitNode> nodes;
  uint32_t racks_per_pod = 0;  // 0: the whole row is one pod
};

struct HallSpec {
  std::string name;
  std::optional<Watts> power_budget_w;
  std::vector<RowSpec> rows;
};

// A district heating network the campus feeds through heat pumps (power/heat.h): its supply
// temperature and a seasonal demand.
struct HeatNetworkSpec {
  double supply_temperature_c = 75;  // the network's supply: the heat pumps' condenser
  double peak_demand_w = 0;          // demand at the design outdoor temperature, > 0
  double base_share = 0.15;          // summer (hot water) load as a share of the peak, 0..1
  double design_outdoor_c = -5;      // outdoor temperature of peak demand
  double heating_threshold_c = 15;   // no space heating above this outdoor temperature
};

struct CampusSpec {
  std::string name;
  std::string phase;  // which build-out phase this fleet shows; empty when there is only one
  Watts grid_connection_w = 0;
  double pue = 1.0;                 // facility power / IT power, at rated IT draw in mild weather
  double liquid_heat_capture = 0;   // share of IT heat that reaches the liquid loop, 0..1
  double supply_temperature_c = 0;  // liquid-loop supply temperature for heat reuse
  std::optional<HeatNetworkSpec> heat_network;
  PowerModelSpec power_model;
  // PUE varies (power/facility.h): `pue_at_idle` at the fleet's idle IT draw (linear in between;
  // 0: as `pue`), plus `pue_per_degree_c` for each °C the day's mean outdoor temperature is above
  // `pue_reference_c`. Outdoor temperature: a yearly cosine of this mean and half-swing, coldest
  // on 15 January, time 0 of a run being 1 January.
  double pue_at_idle = 0;
  double pue_per_degree_c = 0;
  double pue_reference_c = 20;
  double outdoor_mean_c = 12;
  double outdoor_amplitude_c = 8;
};

struct FleetSpec {
  CampusSpec campus;
  Catalog catalog;
  std::vector<HallSpec> halls;
};

// ---- What is built ----

struct Hall {
  std::string name;
  IdRange<RowId> rows;
  std::optional<Watts> power_budget_w;
  IdRange<AcceleratorId> accelerators;  // ids are assigned depth-first, so a hall's are contiguous
};

struct Row {
  std::string name;
  HallId hall;
  IdRange<PodId> pods;
  std::optional<Watts> power_budget_w;
};

struct Pod {
  RowId row;
  IdRange<RackId> racks;
};

struct Rack {
  PodId pod;
  RackTypeId type;
  IdRange<NodeId> nodes;
};

struct Node {
  RackId rack;
  NodeTypeId type;
  std::optional<DomainId> domain;  // empty for CPU-only nodes
  IdRange<AcceleratorId> accelerators;
};

struct NvlinkDomain {
  RackId rack;
  IdRange<NodeId> nodes;
  uint32_t accelerators = 0;
};

// Rated (full load) and idle draw of a subtree, IT only.
struct Draw {
  Watts rated_w = 0;
  Watts idle_w = 0;
};

class Fleet {
 public:
  static Fleet Build(FleetSpec spec);

  const CampusSpec& campus() const { return campus_; }
  const Catalog& catalog() const { return catalog_; }

  std::span<const Hall> halls() const { return halls_; }
  std::span<const Row> rows() const { return rows_; }
  std::span<const Pod> pods() const { return pods_; }
  std::span<const Rack> racks() const { return racks_; }
  std::span<const Node> nodes() const { return nodes_; }
  std::span<const NvlinkDomain> domains() const { return domains_; }
  uint32_t accelerator_count() const { return static_cast<uint32_t>(accelerator_node_.size()); }

  const Hall& hall(HallId id) const { return halls_[id.value()]; }
  const Row& row(RowId id) const { return rows_[id.value()]; }
  const Pod& pod(PodId id) const { return pods_[id.value()]; }
  const Rack& rack(RackId id) const { return racks_[id.value()]; }
  const Node& node(NodeId id) const { return nodes_[id.value()]; }
  const NvlinkDomain& domain(DomainId id) const { return domains_[id.value()]; }
  const NodeType& node_type(NodeId id) const { return catalog_.node(node(id).type); }
  NodeId NodeOf(AcceleratorId id) const { return accelerator_node_[id.value()]; }
  std::string_view NodeName(NodeId id) const;
  std::string RackName(RackId id) const;

  HallId HallOf(RackId id) const { return row(pod(rack(id).pod).row).hall; }
  RowId RowOf(RackId id) const { return pod(rack(id).pod).row; }

  const Draw& hall_draw(HallId id) const { return hall_draw_[id.value()]; }
  const Draw& row_draw(RowId id) const { return row_draw_[id.value()]; }
  const Draw& rack_draw(RackId id) const { return rack_draw_[id.value()]; }
  const Draw& it_draw() const { return it_draw_; }

  // Heap bytes held by the fleet's tables (capacities, names included).
  size_t MemoryBytes() const;

 private:
  class Builder;

  CampusSpec campus_;
  Catalog catalog_;
  std::vector<Hall> halls_;
  std::vector<Row> rows_;
  std::vector<Pod> pods_;
  std::vector<Rack> racks_;
  std::vector<Node> nodes_;
  std::vector<NvlinkDomain> domains_;
  std::vector<NodeId> accelerator_node_;
  // Node names packed into one buffer: name i is names_[name_end_[i-1] .. name_end_[i]).
  std::string names_;
  std::vector<uint32_t> name_end_;
  std::vector<Draw> hall_draw_;
  std::vector<Draw> row_draw_;
  std::vector<Draw> rack_draw_;
  Draw it_draw_;
};

}  // namespace joule
