// What one worker of a job asks of one node, and the live free capacity of every node and
// accelerator in a fleet. Accelerators are whole (1000 milli) or shared by fractions
// (milli-GPU, as GPU-sharing inference clusters run them). Thread-safety: not thread-safe; owned
// by the engine's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "base/units.h"
#include "model/fleet.h"

namespace joule {

// A set of accelerator types as a bit mask over AcceleratorTypeId (catalogs hold < 64 types).
// Empty: any type.
struct TypeSet {
  uint64_t mask = 0;

  bool Any() const { return mask == 0; }
  bool Allows(AcceleratorTypeId t) const { return mask == 0 || (mask >> t.value()) & 1; }
  void Add(AcceleratorTypeId t) { mask |= uint64_t{1} << t.value(); }
  bool operator==(const TypeSet&) const = default;
};

// One worker's request on one node. Whole accelerators: gpus >= 1 and milli_per_gpu == 1000.
// A shared fraction: gpus == 1 and 0 < milli_per_gpu < 1000. CPU-only: gpus == 0.
struct TaskShape {
  Millicores cpu = 0;
  MiB memory = 0;
  uint32_t gpus = 0;
  MilliGpu milli_per_gpu = 0;
  TypeSet types;
  // Node selectors, as bit masks over HallId and NodeTypeId (0: any). Campuses have fewer than
  // 64 halls and node types; the engine refuses selectors naming more.
  uint64_t halls = 0;
  uint64_t node_types = 0;

  MilliGpu TotalMilliGpu() const { return gpus * milli_per_gpu; }
  bool Shared() const { return gpus == 1 && milli_per_gpu < kMilliPerGpu; }
  bool operator==(const TaskShape&) const = default;
};

class ClusterState {
 public:
  explicit ClusterState(const Fleet& fleet);

  const Fleet& fleet() const { return fleet_; }
  Millicores cpu_left(NodeId n) const { return cpu_left_[n.value()]; }
  MiB memory_left(NodeId n) const { return memory_left_[n.value()]; }
  // Milli-GPU left on each accelerator of node n, in device order.
  std::span<const uint16_t> gpu_left(NodeId n) const;
  // Empty for CPU-only nodes.
  std::optional<AcceleratorTypeId> accelerator_type(NodeId n) const { return fleet_.node_type(n).accelerator; }
  // Bumped on every change to node n; lets scorers cache per-node results.
  uint32_t version(NodeId n) const { return version_[n.value()]; }

  // Whether the task fits on node n right now (type, CPU, memory and accelerators).
  bool Fits(NodeId n, const TaskShape& task) const;
  // Takes the task's resources on node n, on the given device indices (within the node).
  // REQUIRES: the devices have room.
  void Allocate(NodeId n, const TaskShape& task, std::span<const uint32_t> devices);
  void Release(NodeId n, const TaskShape& task, std::span<const uint32_t> devices);
  // Nodes allocated on or released since ClearChanged (repeats possible): what a view of the
  // nodes refreshes, rather than walking the fleet.
  const std::vector<NodeId>& changed() const { return changed_; }
  void ClearChanged() { changed_.clear(); }

  MilliGpu allocated_milli() const { return allocated_milli_; }
  MilliGpu capacity_milli() const { return static_cast<MilliGpu>(gpu_left_.size()) * kMilliPerGpu; }

  // ---- Free-capacity index: whole free accelerators on schedulable nodes, per topology unit ----
  bool schedulable(NodeId n) const { return schedulable_[n.value()]; }
  // A node taken out (down or drained) keeps its allocations but offers no free capacity.
  void SetSchedulable(NodeId n, bool schedulable);
  uint32_t free_whole(NodeId n) const { return free_node_[n.value()]; }
  uint32_t free_whole(DomainId d) const { return free_domain_[d.value()]; }
  uint32_t free_whole(RackId r) const { return free_rack_[r.value()]; }
  uint32_t free_whole(PodId p) const { return free_pod_[p.value()]; }
  uint32_t free_whole(RowId r) const { return free_row_[r.value()]; }
  uint32_t free_whole(HallId h) const { return free_hall_[h.value()]; }
  // Schedulable nodes of accelerator type t with at least `min_free` whole free accelerators, by
  // (free count, id) ascending: the first is the best fit.
  const std::set<std::pair<uint32_t, uint32_t>>& nodes_by_free(AcceleratorTypeId t) const {
    return by_free_[t.value()];
  }
  // NVLink domains of accelerator type t (the type of their first node) with whole free
  // accelerators, by (free count, id) ascending.
  const std::set<std::pair<uint32_t, uint32_t>>& domains_by_free(AcceleratorTypeId t) const {
    return domains_by_free_[t.value()];
  }
  // Whole free accelerators of type t on schedulable nodes.
  uint64_t free_whole(AcceleratorTypeId t) const { return free_type_[t.value()]; }

 private:
  void Reindex(NodeId n);

  const Fleet& fleet_;
  std::vector<Millicores> cpu_left_;
  std::vector<MiB> memory_left_;
  std::vector<uint16_t> gpu_left_;  // indexed by AcceleratorId
  std::vector<uint32_t> version_;
  MilliGpu allocated_milli_ = 0;
  std::vector<bool> schedulable_;
  std::vector<NodeId> changed_;
  std::vector<uint32_t> free_node_, free_domain_, free_rack_, free_pod_, free_row_, free_hall_;
  std::vector<std::set<std::pair<uint32_t, uint32_t>>> by_free_;          // per accelerator type
  std::vector<std::set<std::pair<uint32_t, uint32_t>>> domains_by_free_;  // per accelerator type
  std::vector<std::optional<AcceleratorTypeId>> domain_type_;             // per domain
  std::vector<uint64_t> free_type_;                                       // per accelerator type
};

// Device indices for a task on a node, the way most policies pick them: whole accelerators are
// the first fully free devices in index order; a shared fraction goes to the device with the
// least room that still fits it (best fit). Empty if the task does not fit.
std::vector<uint32_t> FirstFitDevices(std::span<const uint16_t> left, const TaskShape& task);
std::vector<uint32_t> BestFitSharedDevice(std::span<const uint16_t> left, const TaskShape& task);

}  // namespace joule
