// The placement experiment of the FGD paper (Weng et al., USENIX ATC'23, Section 6), for any
// placement policy: per seed, draw tasks at random with replacement from a task list until their
// accelerator requests reach `inflation` x capacity, shuffle them, then place them one at a time
// on an empty cluster; tasks never leave and a task that fits nowhere stays unplaced. The figure of
// merit is the unallocated accelerator share, 100 - allocated / capacity x 100 (%), read when the
// arrived requests first reach each checkpoint. Deterministic for a given seed.
// Thread-safety: stateless; runs share nothing.
#pragma once

#include <span>
#include <vector>

#include "sched/placement/placer.h"

namespace joule {

struct PlacementExperimentOptions {
  PlacementPolicy policy = PlacementPolicy::kJoule;
  uint32_t seeds = 10;
  uint64_t first_seed = 42;
  double inflation = 1.3;                                  // drawn requests / capacity
  std::vector<double> checkpoints = {0.9, 1.0, 1.1, 1.3};  // arrived requests / capacity
  double typical_coverage = 0.95;                          // FGD's typical-task cut
};

struct PlacementRun {
  uint64_t seed = 0;
  std::vector<double> unallocated_pct;  // one per checkpoint
  uint64_t tasks = 0;
  uint64_t placed = 0;
};

struct PlacementExperimentResult {
  std::vector<PlacementRun> runs;
  std::vector<double> mean_unallocated_pct;  // one per checkpoint, mean over seeds
};

// REQUIRES: tasks non-empty with at least one accelerator request; the fleet has accelerators.
PlacementExperimentResult RunPlacementExperiment(const Fleet& fleet, std::span<const TaskShape> tasks,
                                                 const PlacementExperimentOptions& options);

}  // namespace joule
