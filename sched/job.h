// Jobs as the engine sees them: a gang of identical workers, each a TaskShape on one node, with
// tenancy, priority, topology, timing and dependencies. Plain values; thread-safe to copy.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/units.h"
#include "power/draw.h"
#include "sched/resources.h"

namespace joule {

// Caller-assigned job identifiers (the server's job number, the twin's trace row); unique.
using JobId = uint64_t;
using TenantId = Id<struct TenantTag>;

enum class TopologyRule {
  kAny,                  // place anywhere, compact if it costs nothing
  kPreferCompact,        // fewest NVLink domains, racks, pods, in that order
  kRequireNvlinkDomain,  // every worker in one NVLink domain (e.g. <= 72 GPUs on an NVL72 rack)
};

struct JobSpec {
  JobId id = 0;
  TenantId tenant;
  uint32_t workers = 1;
  TaskShape worker;  // per worker, on one node
  TopologyRule topology = TopologyRule::kPreferCompact;
  int32_t priority = 0;  // higher runs first
  TimeMs submit_time = 0;
  std::optional<TimeMs> time_limit;        // killed when exceeded
  std::optional<TimeMs> runtime_estimate;  // for backfill; the time limit when absent
  std::optional<TimeMs> checkpoint_interval;
  // Start only once these completed successfully. They must name jobs the engine already
  // accepted (and never the job itself), so dependency cycles cannot form.
  std::vector<JobId> after_ok;
  WorkClass work = WorkClass::kTraining;  // sets its power draw and how it slows under a cap (power/draw.h)
  // A flexible job may wait for the low-carbon (or low-price) hours of the engine's grid forecast as long as it can
  // still end by its deadline (by its runtime estimate, else its time limit); without a forecast,
  // a deadline or an estimate it runs like any other.
  bool flexible = false;
  std::optional<TimeMs> deadline;  // absolute time
  // Failure policy (docs/decisions/0006-failures.md). Without max_restarts, Slurm's defaults: a
  // node failure requeues the job without limit, the job's own failure (JobFinished, ok false) is
  // final. With it, any failure requeues the job until it has restarted that many times (as a
  // Kubernetes Job's backoffLimit); the next one fails it.
  std::optional<uint32_t> max_restarts;
  TimeMs restart_backoff = 0;  // wait before requeueing, doubled at each later restart, at most an hour
  // Hot spares: workers' places held idle beside the gang, each taking over a failed worker's at
  // once (the nearest: same NVLink domain, rack, pod, row, hall). Whole-accelerator jobs only.
  uint32_t spare_nodes = 0;

  MilliGpu TotalMilliGpu() const { return worker.TotalMilliGpu() * workers; }
};

// Why a job is not running, in Slurm's vocabulary (squeue's REASON column).
enum class PendingReason {
  kNone,
  kPriority,                  // higher-priority work holds a reservation it would delay
  kResources,                 // the fleet has no room for it now
  kTopology,                  // room exists, but not within the topology it requires
  kQuotaExceeded,             // its tenant is at its reservation plus borrowing limit
  kDependency,                // waits for jobs in after_ok
  kDependencyNeverSatisfied,  // a job in after_ok failed or was cancelled
  kPreempting,                // lower-priority or borrowed work is being preempted to make room for it
  kPowerCap,                  // a power budget above its placement has no room, even with running work capped
  kLowCarbonWait,             // flexible: a later start within its deadline runs on cleaner (or cheaper) power
  kBeginTime,                 // requeued after a failure, waiting out its restart backoff
};

std::string_view PendingReasonName(PendingReason reason);

enum class JobState { kPending, kRunning, kCompleted, kFailed, kCancelled, kRejected };

std::string_view JobStateName(JobState state);

}  // namespace joule
