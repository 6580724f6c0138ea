// The control plane's reads: jobs, nodes, tenants, the audit log and the fleet's status.
#include "control/control_plane.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/journal_json.h"

namespace joule::control {

// ---- Reads ----

Outcome<bool> ControlPlane::VisitJob(const Principal& who, JobId id,
                                     const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !Visible(who, it->second))
    return ApiError{404, "id", fmt::format("job {} does not exist", id)};
  visit(it->second);
  return true;
}

bool ControlPlane::VisitJobs(const Principal& who, const JobFilter& filter,
                             const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  for (auto it = jobs_.upper_bound(filter.after); it != jobs_.end(); ++it) {
    const JobInfo& j = it->second;
    if (!Visible(who, j) || (filter.tenant && j.tenant != *filter.tenant) ||
        (filter.state && j.state != *filter.state) || (filter.queue && j.spec.queue != *filter.queue)) {
      continue;
    }
    if (n == filter.limit) return true;
    visit(j);
    ++n;
  }
  return false;
}

void ControlPlane::VisitNodes(const std::function<void(NodeId, const NodeInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  for (uint32_t n = 0; n < nodes_.size(); ++n) visit(NodeId(n), nodes_[n]);
}

void ControlPlane::VisitTenants(
    const std::function<void(TenantId, const TenantSpec&, const std::vector<uint64_t>&)>& visit) const {
  std::lock_guard lock(mu_);
  for (uint32_t t = 0; t < tenants_.size(); ++t) visit(TenantId(t), tenants_[t], tenant_use_[t]);
}

void ControlPlane::VisitAudit(uint64_t after, uint32_t limit,
                              const std::function<void(const AuditEntry&)>& visit) const {
  std::lock_guard lock(mu_);
  auto it = std::upper_bound(audit_.begin(), audit_.end(), after,
                             [](uint64_t seq, const AuditEntry& e) { return seq < e.seq; });
  for (uint32_t n = 0; it != audit_.end() && n < limit; ++it, ++n) visit(*it);
}

ControlPlane::FleetStatus ControlPlane::Snapshot() const {
  std::lock_guard lock(mu_);
  FleetStatus s;
  const Fleet& fleet = scenario_.fleet;
  s.accelerators = fleet.accelerator_count();
  s.nodes = nodes_.size();
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    const NodeInfo& info = nodes_[n];
    s.accelerators_used += info.gpus_used;
    if (info.health != NodeHealth::kHealthy) s.accelerators_out += fleet.node_type(NodeId(n)).accelerators;
    s.nodes_by_health[std::string(NodeHealthName(info.health))]++;
  }
  for (const auto& [state, count] : state_count_) s.jobs_by_state[StateName(state)] = count;
  s.pending = state_count_.contains(JobState::kPending) ? state_count_.at(JobState::kPending) : 0;
  s.running = state_count_.contains(JobState::kRunning) ? state_count_.at(JobState::kRunning) : 0;
  s.budgets = budgets_;
  s.journal_seq = applied_seq_;
  s.last_step = last_step_;
  for (const auto& [n, marked_down] : agent_marked_down_) {
    if (marked_down || !nodes_[n].agent) continue;
    s.agents++;
    s.gpus_measured += nodes_[n].agent->gpus.size();
    s.measured_gpu_power_w += nodes_[n].agent->power_w();
  }
  return s;
}

Counters ControlPlane::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace joule::control
