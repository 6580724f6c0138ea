// Names of the engine's enums, as users see them (Slurm's words where Slurm has them).
#include "sched/job.h"

#include "sched/events.h"

namespace joule {

std::string_view PendingReasonName(PendingReason reason) {
  switch (reason) {
    case PendingReason::kNone:
      return "None";
    case PendingReason::kPriority:
      return "Priority";
    case PendingReason::kResources:
      return "Resources";
    case PendingReason::kTopology:
      return "Topology";
    case PendingReason::kQuotaExceeded:
      return "QuotaExceeded";
    case PendingReason::kDependency:
      return "Dependency";
    case PendingReason::kDependencyNeverSatisfied:
      return "DependencyNeverSatisfied";
    case PendingReason::kPreempting:
      return "Preempting";
    case PendingReason::kPowerCap:
      return "PowerCap";
    case PendingReason::kLowCarbonWait:
      return "LowCarbonWait";
  }
  return "?";
}

std::string_view KillReasonName(KillReason reason) {
  switch (reason) {
    case KillReason::kCancelled:
      return "Cancelled";
    case KillReason::kNodeDown:
      return "NodeDown";
    case KillReason::kTimeLimit:
      return "TimeLimit";
    case KillReason::kPreempted:
      return "Preempted";
  }
  return "?";
}

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kPending:
      return "PENDING";
    case JobState::kRunning:
      return "RUNNING";
    case JobState::kCompleted:
      return "COMPLETED";
    case JobState::kFailed:
      return "FAILED";
    case JobState::kCancelled:
      return "CANCELLED";
    case JobState::kRejected:
      return "REJECTED";
  }
  return "?";
}

}  // namespace joule
