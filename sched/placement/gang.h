// Places a whole gang (every worker of a job) or nothing. Whole-accelerator gangs go to the
// smallest topology unit that holds them — NVLink domain, then rack, pod, row, hall, the campus —
// choosing the unit with the least free capacity that still fits (best fit keeps large empty
// units for large gangs); single-node jobs take the best-fitting node. Shared fractions and
// CPU-only workers go one by one through their own rules. On success the workers' resources are
// allocated in the ClusterState; on failure nothing changes.
// Thread-safety: not thread-safe; used by the engine's thread.
#pragma once

#include <optional>
#include <vector>

#include "sched/events.h"
#include "sched/job.h"
#include "sched/placement/placer.h"
#include "sched/resources.h"

namespace joule {

struct GangResult {
  std::vector<WorkerPlacement> workers;  // empty when not placed
  PendingReason reason = PendingReason::kNone;

  bool placed() const { return !workers.empty(); }
};

// `shared`, when given, chooses nodes and devices for shared fractions (a fragmentation-aware
// Placer); without it they take the tightest device that fits. REQUIRES: `shared` places on
// `state`.
GangResult PlaceGang(ClusterState& state, const JobSpec& job, Placer* shared = nullptr);

// Releases what PlaceGang allocated for the job.
void ReleaseGang(ClusterState& state, const JobSpec& job, const std::vector<WorkerPlacement>& workers);
// Takes the workers' places again (a restored engine's running jobs).
void AllocateGang(ClusterState& state, const JobSpec& job, const std::vector<WorkerPlacement>& workers);

}  // namespace joule
