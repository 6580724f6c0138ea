// The hardware catalog: accelerator, node and rack types, addressed by dense ids.
// Catalog::BuiltIn() holds the reference hardware (figures and sources in docs/fleet-model.md);
// scenarios add their own types on top. Thread-safety: immutable after construction is safe to
// share; mutation is single-threaded.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/ids.h"
#include "base/units.h"

namespace joule {

using AcceleratorTypeId = Id<struct AcceleratorTypeTag>;
using NodeTypeId = Id<struct NodeTypeTag>;
using RackTypeId = Id<struct RackTypeTag>;

struct AcceleratorType {
  std::string name;
  int64_t memory_gib = 0;
  Watts rated_w = 0;  // board power at full load (TDP)
  Watts idle_w = 0;
  // Accelerators that share one NVLink (or Infinity Fabric) domain: 8 on HGX boards, 72 on a
  // GB200 NVL72 rack, where the domain spans the rack's compute trays.
  uint32_t nvlink_domain_size = 0;
};

struct NodeType {
  std::string name;
  std::optional<AcceleratorTypeId> accelerator;  // empty for CPU-only nodes
  uint32_t accelerators = 0;                     // per node; 0 for CPU-only nodes
  Millicores cpu = 0;
  MiB memory = 0;
  // Everything in the node that is not an accelerator: CPUs, memory, NICs, fans, PSU losses.
  Watts overhead_rated_w = 0;
  Watts overhead_idle_w = 0;
};

struct RackType {
  std::string name;
  // The node type a typed rack holds; empty for racks filled from an explicit node list.
  std::optional<NodeTypeId> node_type;
  uint32_t nodes = 0;
  // Switches, cooling distribution and power-shelf losses of the rack itself.
  Watts overhead_rated_w = 0;
  Watts overhead_idle_w = 0;
  std::optional<Watts> power_budget_w;
};

class Catalog {
 public:
  // The reference hardware: H100 SXM, H200, B200, GB200 and MI300X with their usual systems.
  static Catalog BuiltIn();

  // A type with an existing name replaces it (scenarios may override the built-in figures).
  AcceleratorTypeId Add(AcceleratorType type);
  NodeTypeId Add(NodeType type);
  RackTypeId Add(RackType type);

  std::optional<AcceleratorTypeId> FindAccelerator(std::string_view name) const;
  std::optional<NodeTypeId> FindNode(std::string_view name) const;
  std::optional<RackTypeId> FindRack(std::string_view name) const;

  const AcceleratorType& accelerator(AcceleratorTypeId id) const { return accelerators_[id.value()]; }
  const NodeType& node(NodeTypeId id) const { return nodes_[id.value()]; }
  const RackType& rack(RackTypeId id) const { return racks_[id.value()]; }
  const std::vector<AcceleratorType>& accelerators() const { return accelerators_; }
  const std::vector<NodeType>& nodes() const { return nodes_; }
  const std::vector<RackType>& racks() const { return racks_; }

  Watts NodeRatedW(NodeTypeId id) const;
  Watts NodeIdleW(NodeTypeId id) const;

 private:
  template <typename IdT, typename T>
  static IdT AddTo(std::vector<T>& table, std::unordered_map<std::string, uint32_t>& index, T type);

  std::vector<AcceleratorType> accelerators_;
  std::vector<NodeType> nodes_;
  std::vector<RackType> racks_;
  std::unordered_map<std::string, uint32_t> accelerator_index_;
  std::unordered_map<std::string, uint32_t> node_index_;
  std::unordered_map<std::string, uint32_t> rack_index_;
};

}  // namespace joule
