#include "model/catalog.h"

namespace joule {
namespace {

std::optional<uint32_t> Lookup(const std::unordered_map<std::string, uint32_t>& index, std::string_view name) {
  auto it = index.find(std::string(name));
  if (it == index.end()) return std::nullopt;
  return it->second;
}

constexpr MiB kGiB = 1024;

}  // namespace

template <typename IdT, typename T>
IdT Catalog::AddTo(std::vector<T>& table, std::unordered_map<std::string, uint32_t>& index, T type) {
  auto [it, inserted] = index.try_emplace(type.name, static_cast<uint32_t>(table.size()));
  if (inserted) {
    table.push_back(std::move(type));
  } else {
    table[it->second] = std::move(type);
  }
  return IdT(it->second);
}

AcceleratorTypeId Catalog::Add(AcceleratorType type) {
  return AddTo<AcceleratorTypeId>(accelerators_, accelerator_index_, std::move(type));
}
NodeTypeId Catalog::Add(NodeType type) { return AddTo<NodeTypeId>(nodes_, node_index_, std::move(type)); }
RackTypeId Catalog::Add(RackType type) { return AddTo<RackTypeId>(racks_, rack_index_, std::move(type)); }

std::optional<AcceleratorTypeId> Catalog::FindAccelerator(std::string_view name) const {
  auto i = Lookup(accelerator_index_, name);
  return i ? std::optional(AcceleratorTypeId(*i)) : std::nullopt;
}
std::optional<NodeTypeId> Catalog::FindNode(std::string_view name) const {
  auto i = Lookup(node_index_, name);
  return i ? std::optional(NodeTypeId(*i)) : std::nullopt;
}
std::optional<RackTypeId> Catalog::FindRack(std::string_view name) const {
  auto i = Lookup(rack_index_, name);
  return i ? std::optional(RackTypeId(*i)) : std::nullopt;
}

Watts Catalog::NodeRatedW(NodeTypeId id) const {
  const NodeType& n = node(id);
  return n.overhead_rated_w + (n.accelerator ? n.accelerators * accelerator(*n.accelerator).rated_w : 0);
}

Watts Catalog::NodeIdleW(NodeTypeId id) const {
  const NodeType& n = node(id);
  return n.overhead_idle_w + (n.accelerator ? n.accelerators * accelerator(*n.accelerator).idle_w : 0);
}

// Figures: vendor datasheets where they exist, otherwise illustrative; docs/fleet-model.md lists
// each source. Idle draw is taken as about 10% of rated (public measurements give 10-15%).
Catalog Catalog::BuiltIn() {
  Catalog c;
  auto h100 = c.Add(AcceleratorType{"h100-sxm", 80, 700, 70, 8});
  auto h200 = c.Add(AcceleratorType{"h200", 141, 700, 70, 8});
  auto b200 = c.Add(AcceleratorType{"b200", 180, 1000, 100, 8});
  auto gb200 = c.Add(AcceleratorType{"gb200", 186, 1200, 120, 72});
  auto mi300x = c.Add(AcceleratorType{"mi300x", 192, 750, 75, 8});

  // HGX/DGX-class 8-GPU servers: two host CPUs, NICs, fans; DGX H100 is rated 10.2 kW in all.
  auto hgx_h100 = c.Add(NodeType{"hgx-h100", h100, 8, 112'000, 2048 * kGiB, 4600, 1500});
  auto hgx_h200 = c.Add(NodeType{"hgx-h200", h200, 8, 112'000, 2048 * kGiB, 4600, 1500});
  auto hgx_b200 = c.Add(NodeType{"hgx-b200", b200, 8, 112'000, 2048 * kGiB, 6300, 1800});
  // A GB200 NVL72 compute tray: two Grace CPUs (72 cores, 480 GB LPDDR5X each), four GPUs.
  auto gb200_tray = c.Add(NodeType{"gb200-tray", gb200, 4, 144'000, 960 * kGiB, 1000, 400});
  auto mi300x_node = c.Add(NodeType{"mi300x-node", mi300x, 8, 192'000, 2048 * kGiB, 4000, 1400});

  // Air- or liquid-cooled racks of four 8-GPU servers, with their share of leaf switches.
  c.Add(RackType{"hgx-h100-rack", hgx_h100, 4, 1500, 1000, 45 * kWattsPerKw});
  c.Add(RackType{"hgx-h200-rack", hgx_h200, 4, 1500, 1000, 45 * kWattsPerKw});
  c.Add(RackType{"hgx-b200-rack", hgx_b200, 4, 1500, 1000, 60 * kWattsPerKw});
  c.Add(RackType{"mi300x-rack", mi300x_node, 4, 1500, 1000, 45 * kWattsPerKw});
  // GB200 NVL72: 18 compute trays, 9 NVLink switch trays, power shelves rated 132 kW.
  c.Add(RackType{"gb200-nvl72", gb200_tray, 18, 14'000, 5000, 132 * kWattsPerKw});
  return c;
}

}  // namespace joule
