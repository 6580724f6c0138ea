// The control plane's reads: jobs, nodes, tenants, the audit log and the fleet's status.
#include "control/control_plane.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/check.h"
#include "io/journal_json.h"

namespace joule::control {

// ---- Reads ----

const JobInfo* ControlPlane::Lookup(JobId id, std::optional<JobInfo>& holder) const {
  if (auto it = jobs_.find(id); it != jobs_.end()) return &it->second;
  auto retired = retired_.find(id);
  if (retired == retired_.end()) return nullptr;
  Result<JobInfo> job = DecodeRetired(retired_rows_.row(retired->second));
  JOULE_CHECK(job.ok());  // rows this process encoded or checked on restore
  holder = std::move(*job);
  return &*holder;
}

Outcome<bool> ControlPlane::VisitJob(const Principal& who, JobId id,
                                     const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  std::optional<JobInfo> holder;
  const JobInfo* job = Lookup(id, holder);
  if (job == nullptr || !Visible(who, *job)) return ApiError{404, "id", fmt::format("job {} does not exist", id)};
  visit(*job);
  return true;
}

// The view's jobs and, with filter.history, the retired ones, merged by id (a job is in one only).
bool ControlPlane::VisitJobs(const Principal& who, const JobFilter& filter,
                             const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  auto live = jobs_.upper_bound(filter.after);
  auto retired = filter.history ? retired_.upper_bound(filter.after) : retired_.end();
  // Retired jobs ended: a filter on a live state never matches them.
  if (filter.state && (*filter.state == JobState::kPending || *filter.state == JobState::kRunning)) {
    retired = retired_.end();
  }
  std::optional<JobInfo> holder;
  while (live != jobs_.end() || retired != retired_.end()) {
    const JobInfo* j = nullptr;
    if (retired == retired_.end() || (live != jobs_.end() && live->first < retired->first)) {
      j = &(live++)->second;
    } else {
      if (filter.state) {  // cheaply, before decoding the whole row
        Result<std::pair<uint64_t, int>> id_state = RetiredIdState(retired_rows_.row(retired->second));
        if (id_state.ok() && id_state->second != static_cast<int>(*filter.state)) {
          ++retired;
          continue;
        }
      }
      Result<JobInfo> job = DecodeRetired(retired_rows_.row((retired++)->second));
      JOULE_CHECK(job.ok());
      holder = std::move(*job);
      j = &*holder;
    }
    if (!Visible(who, *j) || (filter.tenant && j->tenant != *filter.tenant) ||
        (filter.state && j->state != *filter.state) || (filter.queue && j->spec.queue != *filter.queue)) {
      continue;
    }
    if (n == filter.limit) return true;
    visit(*j);
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
  // Counted here, for the reader, not kept up to date at every step: at campus scale walking the
  // 60,000 running jobs took 30 ms of every step, under the lock that submits wait for.
  const Fleet& fleet = scenario_.fleet;
  std::vector<std::vector<uint64_t>> use(tenants_.size(),
                                         std::vector<uint64_t>(fleet.catalog().accelerators().size(), 0));
  for (JobId id : running_jobs_) {
    const JobInfo& j = jobs_.at(id);
    for (NodeId n : j.nodes) {
      if (std::optional<AcceleratorTypeId> t = fleet.node_type(n).accelerator) {
        use[j.tenant.value()][t->value()] += j.spec.gpus;
      }
    }
  }
  for (uint32_t t = 0; t < tenants_.size(); ++t) visit(TenantId(t), tenants_[t], use[t]);
}

void ControlPlane::VisitAudit(uint64_t after, uint32_t limit,
                              const std::function<void(const AuditEntry&)>& visit) const {
  std::lock_guard lock(mu_);
  auto entry = [&](size_t i) {
    Result<AuditEntry> e = DecodeAudit(audit_.row(i));
    JOULE_CHECK(e.ok());  // rows this process encoded or checked on restore
    return std::move(*e);
  };
  // The first entry after `after` (entries are in seq order).
  size_t lo = 0, hi = audit_.size();
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (entry(mid).seq <= after) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  for (uint32_t n = 0; lo < audit_.size() && n < limit; ++lo, ++n) visit(entry(lo));
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
  s.retired = retired_.size();
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
