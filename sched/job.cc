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
    case PendingReason::kBeginTime:
      return "BeginTime";
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

std::string_view NodeHealthName(NodeHealth health) {
  switch (health) {
    case NodeHealth::kHealthy:
      return "healthy";
    case NodeHealth::kSuspect:
      return "suspect";
    case NodeHealth::kDrained:
      return "drained";
    case NodeHealth::kRepairing:
      return "repairing";
    case NodeHealth::kDown:
      return "down";
  }
  return "?";
}

std::string_view ActorName(Actor actor) {
  switch (actor) {
    case Actor::kOperator:
      return "operator";
    case Actor::kAgent:
      return "agent";
    case Actor::kPolicy:
      return "policy";
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
