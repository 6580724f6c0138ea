#include "sched/placement/gang.h"

#include <algorithm>

namespace joule {
namespace {

// Units tried per topology level, tightest first.
constexpr int kTries = 4;

// A topology unit as a range of node ids (the fleet numbers nodes depth-first, so every unit's
// nodes are consecutive) and its free whole accelerators.
struct Unit {
  uint32_t first_node = 0;
  uint32_t end_node = 0;
  uint32_t free = 0;
};

class Gang {
 public:
  Gang(ClusterState& state, const JobSpec& job, Placer* shared)
      : state_(state), fleet_(state.fleet()), job_(job), shared_(shared) {}

  GangResult Place() {
    const TaskShape& w = job_.worker;
    bool ok = false;
    if (w.gpus == 0 || w.Shared()) {
      ok = PlaceOneByOne();
    } else if (job_.workers == 1) {
      ok = PlaceSingleNode();
    } else {
      ok = PlaceMultiNode();
    }
    if (ok) return {std::move(placed_), PendingReason::kNone};
    Rollback();
    return {{}, reason_};
  }

 private:
  // Workers that fit on node n right now, up to `wanted`.
  uint32_t Capacity(NodeId n, uint32_t wanted) const {
    const TaskShape& w = job_.worker;
    if (!state_.Fits(n, w)) return 0;
    uint32_t k = state_.free_whole(n) / w.gpus;
    if (w.cpu > 0) k = std::min<uint32_t>(k, static_cast<uint32_t>(state_.cpu_left(n) / w.cpu));
    if (w.memory > 0) k = std::min<uint32_t>(k, static_cast<uint32_t>(state_.memory_left(n) / w.memory));
    return std::min(k, wanted);
  }

  void Take(NodeId n, std::vector<uint32_t> devices) {
    state_.Allocate(n, job_.worker, devices);
    placed_.push_back({n, std::move(devices)});
  }

  void Rollback() {
    for (const WorkerPlacement& p : placed_) state_.Release(p.node, job_.worker, p.devices);
    placed_.clear();
  }

  bool PlaceSingleNode() {
    std::optional<std::pair<uint32_t, uint32_t>> best;  // (free, node)
    for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
      if (!job_.worker.types.Allows(AcceleratorTypeId(t))) continue;
      const auto& index = state_.nodes_by_free(AcceleratorTypeId(t));
      for (auto it = index.lower_bound({job_.worker.gpus, 0}); it != index.end(); ++it) {
        if (best && *it >= *best) break;
        if (Capacity(NodeId(it->second), 1) == 1) {
          best = *it;
          break;
        }
      }
    }
    if (!best) {
      reason_ = PendingReason::kResources;
      return false;
    }
    NodeId n(best->second);
    Take(n, FirstFitDevices(state_.gpu_left(n), job_.worker));
    return true;
  }

  // Smallest level first; at each level the unit with the least free capacity that fits.
  bool PlaceMultiNode() {
    const uint64_t need = static_cast<uint64_t>(job_.worker.gpus) * job_.workers;
    const bool domain_only = job_.topology == TopologyRule::kRequireNvlinkDomain;
    uint64_t free = 0;
    for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
      if (job_.worker.types.Allows(AcceleratorTypeId(t))) free += state_.free_whole(AcceleratorTypeId(t));
    }
    if (free < need) {  // not enough anywhere: no need to look at units
      reason_ = PendingReason::kResources;
      return false;
    }
    for (int level = 0; level < (domain_only ? 1 : 6); ++level) {
      std::vector<Unit> fitting = UnitsWithRoom(level, need);
      // A unit can have the accelerators but not the CPU, memory or type; try the best few.
      const size_t tries = std::min<size_t>(fitting.size(), kTries);
      std::partial_sort(fitting.begin(), fitting.begin() + static_cast<std::ptrdiff_t>(tries), fitting.end(),
                        [](const Unit& a, const Unit& b) {
                          return a.free != b.free ? a.free < b.free : a.first_node < b.first_node;
                        });
      for (size_t i = 0; i < tries; ++i) {
        if (Fill(fitting[i])) return true;
        Rollback();
      }
    }
    // Topology only when the accelerators exist but not together where the job needs them.
    reason_ = domain_only ? PendingReason::kTopology : PendingReason::kResources;
    return false;
  }

  std::vector<Unit> UnitsWithRoom(int level, uint64_t need) const {
    std::vector<Unit> units;
    auto consider = [&](uint32_t first, uint32_t end, uint32_t free) {
      if (free >= need && end > first) units.push_back({first, end, free});
    };
    auto node_range = [&](IdRange<RackId> racks) {
      const Rack& a = fleet_.rack(racks.first);
      const Rack& b = fleet_.rack(RackId(racks.first.value() + racks.count - 1));
      return std::pair(a.nodes.first.value(), b.nodes.first.value() + b.nodes.count);
    };
    switch (level) {
      case 0:
        // From the per-type index: the tightest few domains of each allowed type with room.
        for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
          if (!job_.worker.types.Allows(AcceleratorTypeId(t))) continue;
          const auto& index = state_.domains_by_free(AcceleratorTypeId(t));
          int taken = 0;
          for (auto it = index.lower_bound({static_cast<uint32_t>(std::min<uint64_t>(need, UINT32_MAX)), 0});
               it != index.end() && taken < kTries; ++it, ++taken) {
            const NvlinkDomain& dom = fleet_.domain(DomainId(it->second));
            consider(dom.nodes.first.value(), dom.nodes.first.value() + dom.nodes.count, it->first);
          }
        }
        break;
      case 1:
        for (uint32_t r = 0; r < fleet_.racks().size(); ++r) {
          const Rack& rack = fleet_.rack(RackId(r));
          consider(rack.nodes.first.value(), rack.nodes.first.value() + rack.nodes.count, state_.free_whole(RackId(r)));
        }
        break;
      case 2:
        for (uint32_t p = 0; p < fleet_.pods().size(); ++p) {
          auto [first, end] = node_range(fleet_.pod(PodId(p)).racks);
          consider(first, end, state_.free_whole(PodId(p)));
        }
        break;
      case 3:
        for (uint32_t r = 0; r < fleet_.rows().size(); ++r) {
          const Row& row = fleet_.row(RowId(r));
          const Pod& a = fleet_.pod(row.pods.first);
          const Pod& b = fleet_.pod(PodId(row.pods.first.value() + row.pods.count - 1));
          consider(node_range(a.racks).first, node_range(b.racks).second, state_.free_whole(RowId(r)));
        }
        break;
      case 4:
        for (uint32_t h = 0; h < fleet_.halls().size(); ++h) {
          const Hall& hall = fleet_.hall(HallId(h));
          if (hall.rows.count == 0) continue;
          const Row& a = fleet_.row(hall.rows.first);
          const Row& b = fleet_.row(RowId(hall.rows.first.value() + hall.rows.count - 1));
          const Pod& pa = fleet_.pod(a.pods.first);
          const Pod& pb = fleet_.pod(PodId(b.pods.first.value() + b.pods.count - 1));
          consider(node_range(pa.racks).first, node_range(pb.racks).second, state_.free_whole(HallId(h)));
        }
        break;
      default: {
        uint32_t free = 0;
        for (uint32_t h = 0; h < fleet_.halls().size(); ++h) free += state_.free_whole(HallId(h));
        consider(0, static_cast<uint32_t>(fleet_.nodes().size()), free);
      }
    }
    return units;
  }

  // Fills the unit's nodes in id order (physical order: neighbours share racks and switches).
  bool Fill(const Unit& unit) {
    uint32_t wanted = job_.workers;
    for (uint32_t n = unit.first_node; n < unit.end_node && wanted > 0; ++n) {
      for (uint32_t k = Capacity(NodeId(n), wanted); k > 0; --k, --wanted) {
        Take(NodeId(n), FirstFitDevices(state_.gpu_left(NodeId(n)), job_.worker));
      }
    }
    return wanted == 0;
  }

  // Shared fractions take the tightest device that fits (best fit); CPU-only workers the first
  // node with room. Each worker is allocated before the next is placed.
  bool PlaceOneByOne() {
    for (uint32_t i = 0; i < job_.workers; ++i) {
      if (shared_ && job_.worker.Shared()) {
        std::optional<PlacementChoice> c = shared_->Choose(job_.worker, 0);
        if (!c) {
          reason_ = PendingReason::kResources;
          return false;
        }
        Take(c->node, std::move(c->devices));
        continue;
      }
      std::optional<NodeId> best;
      uint32_t best_left = UINT32_MAX;
      for (uint32_t n = 0; n < fleet_.nodes().size(); ++n) {
        if (!state_.Fits(NodeId(n), job_.worker)) continue;
        if (job_.worker.gpus == 0) {
          best = NodeId(n);
          break;
        }
        std::vector<uint32_t> d = BestFitSharedDevice(state_.gpu_left(NodeId(n)), job_.worker);
        uint32_t left = state_.gpu_left(NodeId(n))[d[0]];
        if (left < best_left) {
          best = NodeId(n);
          best_left = left;
        }
      }
      if (!best) {
        reason_ = PendingReason::kResources;
        return false;
      }
      Take(*best,
           job_.worker.gpus == 0 ? std::vector<uint32_t>{} : BestFitSharedDevice(state_.gpu_left(*best), job_.worker));
    }
    return true;
  }

  ClusterState& state_;
  const Fleet& fleet_;
  const JobSpec& job_;
  Placer* shared_;
  std::vector<WorkerPlacement> placed_;
  PendingReason reason_ = PendingReason::kResources;
};

}  // namespace

GangResult PlaceGang(ClusterState& state, const JobSpec& job, Placer* shared) {
  return Gang(state, job, shared).Place();
}

void AllocateGang(ClusterState& state, const JobSpec& job, const std::vector<WorkerPlacement>& workers) {
  for (const WorkerPlacement& p : workers) state.Allocate(p.node, job.worker, p.devices);
}

void ReleaseGang(ClusterState& state, const JobSpec& job, const std::vector<WorkerPlacement>& workers) {
  for (const WorkerPlacement& p : workers) state.Release(p.node, job.worker, p.devices);
}

}  // namespace joule
