// What happens to the engine (events in) and what it decides (decisions out). The twin and the
// server produce the same events and act on the same decisions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/tenant.h"
#include "sched/job.h"

namespace joule {

struct JobSubmitted {
  JobSpec spec;
};
struct JobCancelled {
  JobId job = 0;
};
// The job's workers all exited; `ok` when every one succeeded.
struct JobFinished {
  JobId job = 0;
  bool ok = true;
};
// A node's health (docs/decisions/0006-failures.md). Only a healthy node takes new work.
//   healthy   — in service;
//   suspect   — a health check flagged it: its work runs on, it takes none new until cleared
//               (back to healthy) or drained;
//   drained   — Slurm's drain: running work finishes, no new work starts ("draining" while work
//               remains); resume (to healthy) puts it back;
//   repairing — out for repair: whatever still ran there is killed; healthy when repaired;
//   down      — failed: what ran there is killed at once and requeued (or restarted on a spare).
enum class NodeHealth : uint8_t { kHealthy, kSuspect, kDrained, kRepairing, kDown };
// Who changed a node's health: an operator (CLI, API), the node's agent (a failed check, an
// accelerator's error), or a policy (the twin's failure model, maintenance windows, auto-repair).
enum class Actor : uint8_t { kOperator, kAgent, kPolicy };

std::string_view NodeHealthName(NodeHealth health);
std::string_view ActorName(Actor actor);
// Why the state machine refuses moving a node named `node` from `from` to `to`; nullopt when it
// allows it. The engine applies it to every NodeHealthChange; the server checks a request with it
// before accepting it.
std::optional<std::string> HealthChangeRefusal(std::string_view node, NodeHealth from, NodeHealth to);

// A request to move a node to `to`. Transitions the state machine does not allow are refused
// (Decisions::health_refused) and change nothing; asking for the state a node is in does nothing.
struct NodeHealthChange {
  NodeId node;
  NodeHealth to = NodeHealth::kHealthy;
  Actor actor = Actor::kOperator;
  std::string reason;              // free text, e.g. "XID 79: GPU fell off the bus"
  std::optional<uint32_t> device;  // the accelerator at fault, an index within the node, if one is
};

// What power will cost ahead — the grid's carbon intensity (gCO2e/kWh) or its price (EUR/MWh,
// possibly negative), lower being better — one value per `step` from `start` (a day-ahead
// forecast; the twin gives the whole series). Replaces the previous forecast. Flexible jobs wait
// for its cheap hours.
struct GridForecast {
  TimeMs start = 0;
  TimeMs step = 3'600'000;
  std::vector<double> values;
};

// An operator changed a tenant's quota: its reservations (replacing all of them), borrowing limit
// and fair-share weight. Running work is not touched; from this step the tenant's jobs are placed,
// and its running work counted as borrowed or not, against the new figures. Unknown tenants are
// ignored (the server checks names before it accepts a change).
struct TenantUpdate {
  TenantId tenant;
  std::vector<Reservation> reserved;
  std::optional<uint32_t> borrow_limit;
  double weight = 1.0;
};

using Event = std::variant<JobSubmitted, JobCancelled, JobFinished, NodeHealthChange, GridForecast, TenantUpdate>;

struct WorkerPlacement {
  NodeId node;
  std::vector<uint32_t> devices;  // device indices within the node
};

// Power limits are per-mille of each accelerator's rated power, the same for all of a job's
// accelerators (an agent sets rated x limit / 1000 watts); kRatedPermille means no cap. Spares
// are hot spare workers' places, held idle so that a failure does not send the job back to the
// queue (JobSpec::spare_nodes).
struct StartJob {
  JobId job = 0;
  std::vector<WorkerPlacement> workers;  // one per worker, in rank order
  uint32_t power_limit_permille = kRatedPermille;
  std::vector<WorkerPlacement> spares;
};

// A running job lost workers to a failed node and goes on at once on spares it held: every
// process stops and starts again from the last checkpoint on `workers` (the same ranks, the
// failed ones moved to spares). Counts as a restart.
struct RestartJob {
  JobId job = 0;
  std::vector<WorkerPlacement> workers;
  std::vector<WorkerPlacement> spares;  // what is left of them
  uint32_t replaced = 0;                // workers moved to spares
  uint32_t power_limit_permille = kRatedPermille;
};

// A running job's power limit changed (sched/power_governor.h).
struct PowerLimit {
  JobId job = 0;
  uint32_t permille = kRatedPermille;
};

// kNodeDown: a node of the job went down or out for repair.
enum class KillReason { kCancelled, kNodeDown, kTimeLimit, kPreempted };

std::string_view KillReasonName(KillReason reason);

// Stop every process of the job: SIGTERM now, SIGKILL at `deadline` (the preemption grace
// period; equal to the step's time for immediate kills). A preempted job keeps its resources
// until the deadline and is then requeued.
struct KillJob {
  JobId job = 0;
  KillReason reason = KillReason::kCancelled;
  TimeMs deadline = 0;
};

struct PendingChange {
  JobId job = 0;
  PendingReason reason = PendingReason::kNone;
};

struct Rejection {
  JobId job = 0;
  std::string reason;  // names the field and what is wrong
};

// A node's health changed, with who, why and when: the audit trail of every transition.
struct HealthTransition {
  NodeId node;
  NodeHealth from = NodeHealth::kHealthy;
  NodeHealth to = NodeHealth::kHealthy;
  Actor actor = Actor::kOperator;
  std::string reason;
  TimeMs at = 0;
  std::optional<uint32_t> device;
};

struct HealthRefusal {
  NodeId node;
  NodeHealth to = NodeHealth::kHealthy;
  std::string why;  // e.g. "node 12 is down: repair or resume it first"
};

// A running job got new hot spares in place of those it used or lost.
struct SparesAdded {
  JobId job = 0;
  std::vector<WorkerPlacement> spares;
};

// A tenant's spare pool gained a node (held idle for it) or lost one (taken by a job as a spare,
// or the node left service).
struct SparePoolChange {
  TenantId tenant;
  NodeId node;
  bool added = true;
};

// A job interrupted by a failure went back to the queue; it may start again from `eligible_at`
// (its failure policy's backoff).
struct Requeue {
  JobId job = 0;
  uint32_t restarts = 0;  // including this one
  TimeMs eligible_at = 0;
  std::string reason;
};

// A job reached a final state; every job the engine accepted gets exactly one (rejected ones get a
// Rejection instead).
struct JobEnded {
  JobId job = 0;
  JobState state = JobState::kCompleted;
  std::string reason;  // "completed", "time limit", "node failure: 3 restarts allowed, all used", ...
};

struct Decisions {
  std::vector<StartJob> starts;
  std::vector<RestartJob> restarts;
  std::vector<SparesAdded> spares_added;  // after the pass, from what it left free
  std::vector<SparePoolChange> spare_pool;
  std::vector<KillJob> kills;
  std::vector<PendingChange> pending;    // jobs whose pending reason changed in this step
  std::vector<Rejection> rejections;     // submitted specs that can never run
  std::vector<PowerLimit> power_limits;  // running jobs whose limit changed in this step, by id
  std::vector<Requeue> requeues;
  std::vector<JobEnded> ended;
  std::vector<HealthTransition> health;
  std::vector<HealthRefusal> health_refused;
};

}  // namespace joule
