// The scheduling engine's whole state as plain data: what a snapshot of the control plane keeps
// so that a restart or a takeover need not re-run history (docs/decisions/0009). An engine
// restored from the state another saved decides exactly what that one would have decided, step
// for step (tests/engine_state_test.cc checks it against an engine that never stopped).
// Indexes the engine can derive (free capacity, quotas in use, deadlines, expected ends, the
// power ledger's sums) are rebuilt by Restore, not saved; orders that history shaped are saved.
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "model/tenant.h"
#include "sched/events.h"
#include "sched/resources.h"

namespace joule {

struct EngineState {
  struct Job {
    JobSpec spec;
    JobState state = JobState::kPending;  // pending or running (running includes being preempted)
    PendingReason reason = PendingReason::kNone, reported = PendingReason::kNone;
    std::vector<WorkerPlacement> workers, spares;
    TimeMs start = 0;
    std::optional<TimeMs> preempt_at;
    TypeSet used_types;
    uint64_t used_node_types = 0;
    std::vector<JobId> waiting_for;
    uint32_t preemptions = 0;
    std::optional<TimeMs> window;
    uint32_t restarts = 0;
    TimeMs eligible_at = 0;
    uint32_t power_limit = 0;  // running: the governor's limit, per-mille (its own, not as reported)
  };
  // A tenant's quota as TenantUpdate events left it.
  struct Quota {
    std::vector<Reservation> reserved;
    std::optional<uint32_t> borrow_limit;
    double weight = 1.0;
  };
  std::vector<Job> jobs;                          // by id
  std::vector<std::pair<JobId, JobState>> ended;  // by id: final states
  std::vector<Quota> quotas;                      // per tenant
  std::vector<double> decayed_usage;              // per tenant
  TimeMs last_decay = 0;
  GridForecast forecast;
  std::vector<NodeHealth> health;           // per node
  std::vector<std::vector<JobId>> jobs_on;  // per node, in the engine's order
  std::vector<JobId> short_of_spares;
  std::vector<std::vector<WorkerPlacement>> pools;  // per tenant, in order
  uint64_t rng = 0;                                 // the shared placer's generator
  bool power_ordered = false, power_room_returned = false;
  std::vector<JobId> power_changed;  // limits changed, not yet reported
};

}  // namespace joule
