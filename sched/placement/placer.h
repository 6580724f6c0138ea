// Node placement for one worker at a time, as filters -> scorers -> selection:
//   filter:    ClusterState::Fits (type, CPU, memory, accelerators);
//   score:     one policy per run — the FGD paper's baselines (Random, DotProd, Packing,
//              BestFit, FGD) scored as in its Kubernetes-based simulator (integer scores 0..100),
//              or Joule's scorer: FGD's fragmentation gradient with ties going to the node
//              whose dominant resource (accelerators or CPU) is most in use;
//   selection: the best score, then the best tie-break, then the first node in fleet order.
// Random draws from `rng`; every other policy is deterministic.
// The chosen devices within the node come with the choice. Choose() does not allocate.
// Thread-safety: not thread-safe; one Placer per engine thread.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "base/rng.h"
#include "sched/placement/fragmentation.h"
#include "sched/resources.h"

namespace joule {

enum class PlacementPolicy { kRandom, kDotProduct, kPacking, kBestFit, kFgd, kJoule };

std::optional<PlacementPolicy> ParsePlacementPolicy(std::string_view name);
std::string_view PolicyName(PlacementPolicy policy);

struct PlacementChoice {
  NodeId node;
  std::vector<uint32_t> devices;  // device indices within the node
};

class Placer {
 public:
  // `typical` is the workload's typical tasks (only FGD and Joule's scorer use it). `rng` must
  // outlive the Placer. `shapes` bounds the shape ids passed to Choose, for caching scores per
  // node and shape; 0 turns that cache off (large fleets: it costs nodes x shapes entries).
  Placer(const ClusterState& state, PlacementPolicy policy, std::vector<TypicalTask> typical, Rng& rng,
         uint32_t shapes);

  // Where the task should go, or nothing when it fits nowhere. `shape_id` identifies the task's
  // shape (equal shapes, equal ids); scores are cached per node and shape until the node changes.
  std::optional<PlacementChoice> Choose(const TaskShape& task, uint32_t shape_id);

 private:
  struct Scored {
    double score = 0;  // higher is better
    std::vector<uint32_t> devices;
    double tiebreak = 0;  // among equal scores, higher is better
  };
  struct CacheEntry {
    uint32_t version = UINT32_MAX;
    Scored scored;
  };

  Scored Score(NodeId node, const TaskShape& task);
  Scored ScoreFragmentation(NodeId node, const TaskShape& task, bool busiest_first);
  const Scored& Cached(NodeId node, const TaskShape& task, uint32_t shape_id);
  double Fragmentation(NodeId node);
  std::optional<PlacementChoice> ChooseRandom(const TaskShape& task, const std::vector<NodeId>& feasible);
  std::optional<PlacementChoice> SelectBest(const std::vector<NodeId>& feasible, const std::vector<Scored>& scores);

  const ClusterState& state_;
  PlacementPolicy policy_;
  std::vector<TypicalTask> typical_;
  Rng& rng_;
  uint32_t shapes_;
  std::vector<CacheEntry> cache_;                       // [node * shapes_ + shape]
  std::vector<std::pair<uint32_t, double>> node_frag_;  // (version, fragmentation) per node
};

}  // namespace joule
