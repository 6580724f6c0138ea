// What happens to the engine (events in) and what it decides (decisions out). The twin and the
// server produce the same events and act on the same decisions.
#pragma once

#include <string>
#include <string_view>
#include <variant>
#include <vector>

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
// A node failed: what ran there is killed and requeued. It takes no work until NodeUp.
struct NodeDown {
  NodeId node;
};
struct NodeUp {
  NodeId node;
};
// Slurm's drain: running work finishes, no new work starts there. NodeUp resumes it.
struct NodeDrain {
  NodeId node;
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

using Event = std::variant<JobSubmitted, JobCancelled, JobFinished, NodeDown, NodeUp, NodeDrain, GridForecast>;

struct WorkerPlacement {
  NodeId node;
  std::vector<uint32_t> devices;  // device indices within the node
};

// Power limits are per-mille of each accelerator's rated power, the same for all of a job's
// accelerators (an agent sets rated x limit / 1000 watts); kRatedPermille means no cap.
struct StartJob {
  JobId job = 0;
  std::vector<WorkerPlacement> workers;  // one per worker, in rank order
  uint32_t power_limit_permille = kRatedPermille;
};

// A running job's power limit changed (sched/power_governor.h).
struct PowerLimit {
  JobId job = 0;
  uint32_t permille = kRatedPermille;
};

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

struct Decisions {
  std::vector<StartJob> starts;
  std::vector<KillJob> kills;
  std::vector<PendingChange> pending;    // jobs whose pending reason changed in this step
  std::vector<Rejection> rejections;     // submitted specs that can never run
  std::vector<PowerLimit> power_limits;  // running jobs whose limit changed in this step, by id
};

}  // namespace joule
