#include "model/fleet.h"

#include <fmt/format.h>

#include "base/check.h"

namespace joule {

// Builds the tables in one depth-first pass, so every parent's children are consecutive ids.
class Fleet::Builder {
 public:
  explicit Builder(Fleet& fleet) : f_(fleet) {}

  void AddHall(const HallSpec& spec) {
    HallId id(static_cast<uint32_t>(f_.halls_.size()));
    AcceleratorId first_accelerator(Count(f_.accelerator_node_));
    f_.halls_.push_back(Hall{spec.name, {RowId(Count(f_.rows_)), 0}, spec.power_budget_w, {first_accelerator, 0}});
    f_.hall_draw_.emplace_back();
    for (const RowSpec& row : spec.rows) AddRow(id, row);
    Hall& hall = f_.halls_.back();
    hall.rows.count = Count(f_.rows_) - hall.rows.first.value();
    hall.accelerators.count = Count(f_.accelerator_node_) - first_accelerator.value();
  }

 private:
  template <typename T>
  static uint32_t Count(const std::vector<T>& v) {
    return static_cast<uint32_t>(v.size());
  }

  void AddRow(HallId hall, const RowSpec& spec) {
    RowId id(Count(f_.rows_));
    f_.rows_.push_back(Row{spec.name, hall, {PodId(Count(f_.pods_)), 0}, spec.power_budget_w});
    f_.row_draw_.emplace_back();
    const RackType& type = f_.catalog_.rack(spec.rack_type);
    const uint32_t racks =
        spec.nodes.empty() ? spec.racks : static_cast<uint32_t>((spec.nodes.size() + type.nodes - 1) / type.nodes);
    const uint32_t per_pod = spec.racks_per_pod == 0 ? racks : spec.racks_per_pod;
    JOULE_CHECK(type.nodes > 0 && per_pod > 0);
    size_t next_node = 0;
    for (uint32_t r = 0; r < racks; ++r) {
      if (r % per_pod == 0) {
        f_.pods_.push_back(Pod{id, {RackId(Count(f_.racks_)), 0}});
      }
      RackId rack = AddRack(spec, r, next_node);
      f_.pods_.back().racks.count++;
      Accumulate(rack, id, hall);
    }
    f_.rows_.back().pods.count = Count(f_.pods_) - f_.rows_.back().pods.first.value();
  }

  RackId AddRack(const RowSpec& spec, uint32_t index_in_row, size_t& next_node) {
    RackId id(Count(f_.racks_));
    const RackType& type = f_.catalog_.rack(spec.rack_type);
    f_.racks_.push_back(Rack{PodId(Count(f_.pods_) - 1), spec.rack_type, {NodeId(Count(f_.nodes_)), 0}});
    Draw draw{type.overhead_rated_w, type.overhead_idle_w};
    for (uint32_t n = 0; n < type.nodes; ++n) {
      NodeTypeId node_type;
      if (spec.nodes.empty()) {
        JOULE_CHECK(type.node_type.has_value());
        node_type = *type.node_type;
        AppendName(fmt::format("{}-k{:02}-n{:02}", spec.name, index_in_row, n));
      } else {
        if (next_node == spec.nodes.size()) break;
        node_type = spec.nodes[next_node].type;
        AppendName(spec.nodes[next_node++].name);
      }
      AddNode(id, node_type);
      draw.rated_w += f_.catalog_.NodeRatedW(node_type);
      draw.idle_w += f_.catalog_.NodeIdleW(node_type);
    }
    f_.racks_.back().nodes.count = Count(f_.nodes_) - f_.racks_.back().nodes.first.value();
    f_.rack_draw_.push_back(draw);
    return id;
  }

  // A node joins the rack's open NVLink domain when it has the same type and the domain is not
  // yet full; otherwise it opens a new one. HGX nodes (domain 8 = node) each get their own;
  // CPU-only nodes none.
  void AddNode(RackId rack, NodeTypeId type_id) {
    const NodeType& type = f_.catalog_.node(type_id);
    NodeId id(Count(f_.nodes_));
    AcceleratorId first(Count(f_.accelerator_node_));
    if (!type.accelerator) {
      f_.nodes_.push_back(Node{rack, type_id, std::nullopt, {first, 0}});
      return;
    }
    const uint32_t domain_size = f_.catalog_.accelerator(*type.accelerator).nvlink_domain_size;
    bool join = !f_.domains_.empty() && f_.domains_.back().rack == rack && f_.nodes_.back().type == type_id &&
                f_.domains_.back().accelerators + type.accelerators <= domain_size;
    if (!join) f_.domains_.push_back(NvlinkDomain{rack, {id, 0}, 0});
    NvlinkDomain& domain = f_.domains_.back();
    domain.nodes.count++;
    domain.accelerators += type.accelerators;
    f_.nodes_.push_back(Node{rack, type_id, DomainId(Count(f_.domains_) - 1), {first, type.accelerators}});
    f_.accelerator_node_.insert(f_.accelerator_node_.end(), type.accelerators, id);
  }

  void AppendName(std::string_view name) {
    f_.names_.append(name);
    f_.name_end_.push_back(static_cast<uint32_t>(f_.names_.size()));
  }

  void Accumulate(RackId rack, RowId row, HallId hall) {
    const Draw& d = f_.rack_draw_[rack.value()];
    for (Draw* level : {&f_.row_draw_[row.value()], &f_.hall_draw_[hall.value()], &f_.it_draw_}) {
      level->rated_w += d.rated_w;
      level->idle_w += d.idle_w;
    }
  }

  Fleet& f_;
};

Fleet Fleet::Build(FleetSpec spec) {
  Fleet f;
  f.campus_ = std::move(spec.campus);
  f.catalog_ = std::move(spec.catalog);
  Builder builder(f);
  for (const HallSpec& hall : spec.halls) builder.AddHall(hall);
  return f;
}

std::string_view Fleet::NodeName(NodeId id) const {
  uint32_t begin = id.value() == 0 ? 0 : name_end_[id.value() - 1];
  return std::string_view(names_).substr(begin, name_end_[id.value()] - begin);
}

std::string Fleet::RackName(RackId id) const {
  RowId row_id = RowOf(id);
  uint32_t first = pod(row(row_id).pods.first).racks.first.value();
  return fmt::format("{}-k{:02}", row(row_id).name, id.value() - first);
}

size_t Fleet::MemoryBytes() const {
  size_t bytes = names_.capacity() + name_end_.capacity() * sizeof(uint32_t);
  bytes += halls_.capacity() * sizeof(Hall) + rows_.capacity() * sizeof(Row);
  for (const Hall& h : halls_) bytes += h.name.capacity();
  for (const Row& r : rows_) bytes += r.name.capacity();
  bytes += pods_.capacity() * sizeof(Pod) + racks_.capacity() * sizeof(Rack);
  bytes += nodes_.capacity() * sizeof(Node) + domains_.capacity() * sizeof(NvlinkDomain);
  bytes += accelerator_node_.capacity() * sizeof(NodeId);
  bytes += (hall_draw_.capacity() + row_draw_.capacity() + rack_draw_.capacity()) * sizeof(Draw);
  return bytes;
}

}  // namespace joule
