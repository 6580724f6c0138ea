#include "sched/resources.h"

#include <optional>

#include "base/check.h"

namespace joule {

ClusterState::ClusterState(const Fleet& fleet)
    : fleet_(fleet),
      cpu_left_(fleet.nodes().size()),
      memory_left_(fleet.nodes().size()),
      gpu_left_(fleet.accelerator_count(), kMilliPerGpu),
      version_(fleet.nodes().size(), 0),
      schedulable_(fleet.nodes().size(), true),
      free_node_(fleet.nodes().size(), 0),
      free_domain_(fleet.domains().size(), 0),
      free_rack_(fleet.racks().size(), 0),
      free_pod_(fleet.pods().size(), 0),
      free_row_(fleet.rows().size(), 0),
      free_hall_(fleet.halls().size(), 0),
      by_free_(fleet.catalog().accelerators().size()),
      domains_by_free_(fleet.catalog().accelerators().size()),
      domain_type_(fleet.domains().size()),
      free_type_(fleet.catalog().accelerators().size(), 0) {
  for (uint32_t d = 0; d < fleet.domains().size(); ++d) {
    domain_type_[d] = fleet.node_type(fleet.domain(DomainId(d)).nodes.first).accelerator;
  }
  for (uint32_t i = 0; i < fleet.nodes().size(); ++i) {
    const NodeType& type = fleet.node_type(NodeId(i));
    cpu_left_[i] = type.cpu;
    memory_left_[i] = type.memory;
    Reindex(NodeId(i));
  }
}

void ClusterState::SetSchedulable(NodeId n, bool schedulable) {
  schedulable_[n.value()] = schedulable;
  version_[n.value()]++;
  Reindex(n);
}

// Recounts node n's whole free accelerators and moves the difference up the topology.
void ClusterState::Reindex(NodeId n) {
  uint32_t now = 0;
  if (schedulable_[n.value()]) {
    for (uint16_t left : gpu_left(n)) now += left == kMilliPerGpu;
  }
  const uint32_t before = free_node_[n.value()];
  if (now == before) return;
  const Node& node = fleet_.node(n);
  const Rack& rack = fleet_.rack(node.rack);
  const Pod& pod = fleet_.pod(rack.pod);
  const int64_t delta = static_cast<int64_t>(now) - static_cast<int64_t>(before);
  auto apply = [delta](uint32_t& counter) { counter = static_cast<uint32_t>(counter + delta); };
  apply(free_node_[n.value()]);
  if (node.domain) {
    const uint32_t d = node.domain->value();
    const uint32_t domain_before = free_domain_[d];
    apply(free_domain_[d]);
    if (domain_type_[d]) {
      auto& index = domains_by_free_[domain_type_[d]->value()];
      if (domain_before > 0) index.erase({domain_before, d});
      if (free_domain_[d] > 0) index.insert({free_domain_[d], d});
    }
  }
  apply(free_rack_[node.rack.value()]);
  apply(free_pod_[rack.pod.value()]);
  apply(free_row_[pod.row.value()]);
  apply(free_hall_[fleet_.row(pod.row).hall.value()]);
  if (std::optional<AcceleratorTypeId> type = accelerator_type(n)) {
    free_type_[type->value()] = static_cast<uint64_t>(static_cast<int64_t>(free_type_[type->value()]) + delta);
    auto& index = by_free_[type->value()];
    if (before > 0) index.erase({before, n.value()});
    if (now > 0) index.insert({now, n.value()});
  }
}

std::span<const uint16_t> ClusterState::gpu_left(NodeId n) const {
  const IdRange<AcceleratorId>& a = fleet_.node(n).accelerators;
  return std::span<const uint16_t>(gpu_left_).subspan(a.first.value(), a.count);
}

bool ClusterState::Fits(NodeId n, const TaskShape& task) const {
  if (!schedulable_[n.value()]) return false;
  if (cpu_left_[n.value()] < task.cpu || memory_left_[n.value()] < task.memory) return false;
  if (task.node_types != 0 && !((task.node_types >> fleet_.node(n).type.value()) & 1)) return false;
  if (task.halls != 0 && !((task.halls >> fleet_.HallOf(fleet_.node(n).rack).value()) & 1)) return false;
  if (task.gpus == 0) return true;
  std::optional<AcceleratorTypeId> type = accelerator_type(n);
  if (!type || !task.types.Allows(*type)) return false;
  uint32_t fitting = 0;
  for (uint16_t left : gpu_left(n)) fitting += left >= task.milli_per_gpu;
  return fitting >= task.gpus;
}

void ClusterState::Allocate(NodeId n, const TaskShape& task, std::span<const uint32_t> devices) {
  JOULE_CHECK(devices.size() == task.gpus);
  changed_.push_back(n);
  JOULE_CHECK(cpu_left_[n.value()] >= task.cpu && memory_left_[n.value()] >= task.memory);
  cpu_left_[n.value()] -= task.cpu;
  memory_left_[n.value()] -= task.memory;
  const uint32_t first = fleet_.node(n).accelerators.first.value();
  for (uint32_t d : devices) {
    JOULE_CHECK(d < fleet_.node(n).accelerators.count);
    uint16_t& left = gpu_left_[first + d];
    JOULE_CHECK(left >= task.milli_per_gpu);
    left -= static_cast<uint16_t>(task.milli_per_gpu);
  }
  allocated_milli_ += task.TotalMilliGpu();
  version_[n.value()]++;
  Reindex(n);
}

void ClusterState::Release(NodeId n, const TaskShape& task, std::span<const uint32_t> devices) {
  JOULE_CHECK(devices.size() == task.gpus);
  changed_.push_back(n);
  cpu_left_[n.value()] += task.cpu;
  memory_left_[n.value()] += task.memory;
  JOULE_CHECK(cpu_left_[n.value()] <= fleet_.node_type(n).cpu);
  const uint32_t first = fleet_.node(n).accelerators.first.value();
  for (uint32_t d : devices) {
    uint16_t& left = gpu_left_[first + d];
    left += static_cast<uint16_t>(task.milli_per_gpu);
    JOULE_CHECK(left <= kMilliPerGpu);
  }
  allocated_milli_ -= task.TotalMilliGpu();
  version_[n.value()]++;
  Reindex(n);
}

std::vector<uint32_t> FirstFitDevices(std::span<const uint16_t> left, const TaskShape& task) {
  std::vector<uint32_t> devices;
  if (task.Shared()) return BestFitSharedDevice(left, task);
  for (uint32_t d = 0; d < left.size() && devices.size() < task.gpus; ++d) {
    if (left[d] == kMilliPerGpu) devices.push_back(d);
  }
  if (devices.size() < task.gpus) devices.clear();
  return devices;
}

std::vector<uint32_t> BestFitSharedDevice(std::span<const uint16_t> left, const TaskShape& task) {
  std::optional<uint32_t> best;
  for (uint32_t d = 0; d < left.size(); ++d) {
    if (left[d] >= task.milli_per_gpu && (!best || left[d] < left[*best])) best = d;
  }
  if (!best) return {};
  return {*best};
}

}  // namespace joule
