// The engine's state saved and restored (sched/engine_state.h): what a snapshot of the control
// plane keeps. Restore rebuilds every index the engine derives, in the same way the pass builds
// them, and takes the orders history shaped (the jobs on each node, spare pools) as saved.
#include <algorithm>

#include <fmt/format.h>

#include "base/check.h"
#include "sched/engine.h"
#include "sched/placement/gang.h"

namespace joule {

EngineState Engine::Save() const {
  EngineState s;
  s.jobs.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) {
    JOULE_CHECK(job.state == JobState::kPending || job.state == JobState::kRunning);
    s.jobs.push_back({job.spec, job.state, job.reason, job.reported, job.workers, job.spares, job.start, job.preempt_at,
                      job.used_types, job.used_node_types, job.waiting_for, job.preemptions, job.window, job.restarts,
                      job.eligible_at, governor_.saved_limit(id).value_or(0)});
  }
  s.ended.assign(ended_.begin(), ended_.end());
  std::sort(s.ended.begin(), s.ended.end());
  for (const TenantSpec& t : tenants_) s.quotas.push_back({t.reserved, t.borrow_limit, t.weight});
  s.decayed_usage = decayed_usage_;
  s.last_decay = last_decay_;
  s.forecast = forecast_;
  s.health = health_;
  s.jobs_on = jobs_on_;
  s.short_of_spares.assign(short_of_spares_.begin(), short_of_spares_.end());
  s.pools = pool_;
  s.rng = shared_rng_.state();
  s.power_ordered = governor_.ordered();
  s.power_room_returned = governor_.room_returned();
  s.power_changed = governor_.changed();
  return s;
}

namespace {

Status CheckPlaces(const Fleet& fleet, const std::vector<WorkerPlacement>& places, std::string_view what) {
  for (const WorkerPlacement& p : places) {
    if (p.node.value() >= fleet.nodes().size()) {
      return Status::Error(fmt::format("{}: node {} is not in the fleet", what, p.node.value()));
    }
    for (uint32_t d : p.devices) {
      if (d >= fleet.node_type(p.node).accelerators) {
        return Status::Error(fmt::format("{}: node {} has no device {}", what, fleet.NodeName(p.node), d));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status Engine::Restore(const EngineState& s) {
  JOULE_CHECK(jobs_.empty() && ended_.empty());
  const size_t nodes = fleet_.nodes().size();
  if (s.quotas.size() != tenants_.size() || s.decayed_usage.size() != tenants_.size() ||
      s.pools.size() != tenants_.size()) {
    return Status::Error(fmt::format("the state has {} tenants, the scenario {}", s.quotas.size(), tenants_.size()));
  }
  if (s.health.size() != nodes || s.jobs_on.size() != nodes) {
    return Status::Error(fmt::format("the state has {} nodes, the fleet {}", s.health.size(), nodes));
  }
  for (uint32_t u = 0; u < tenants_.size(); ++u) {
    const EngineState::Quota& q = s.quotas[u];
    UpdateTenant({TenantId(u), q.reserved, q.borrow_limit, q.weight});
  }
  decayed_usage_ = s.decayed_usage;
  last_decay_ = s.last_decay;
  Decisions ignored;
  Apply(s.last_decay, s.forecast, ignored);  // the forecast and its running sums
  for (uint32_t n = 0; n < nodes; ++n) {
    health_[n] = s.health[n];
    cluster_.SetSchedulable(NodeId(n), s.health[n] == NodeHealth::kHealthy);
  }
  for (const auto& [id, state] : s.ended) ended_.emplace(id, state);
  governor_.SetFlags(s.power_ordered, s.power_room_returned, {});
  for (const EngineState::Job& saved : s.jobs) {
    if (saved.spec.tenant.value() >= tenants_.size()) {
      return Status::Error(
          fmt::format("job {}: tenant {} is not in the scenario", saved.spec.id, saved.spec.tenant.value()));
    }
    if (Status st = CheckPlaces(fleet_, saved.workers, fmt::format("job {}", saved.spec.id)); !st.ok()) return st;
    if (Status st = CheckPlaces(fleet_, saved.spares, fmt::format("job {}", saved.spec.id)); !st.ok()) return st;
    Job& job = jobs_[saved.spec.id];
    job.spec = saved.spec;
    job.state = saved.state;
    job.reason = saved.reason;
    job.reported = saved.reported;
    job.start = saved.start;
    job.preempt_at = saved.preempt_at;
    job.used_types = saved.used_types;
    job.used_node_types = saved.used_node_types;
    job.waiting_for = saved.waiting_for;
    job.preemptions = saved.preemptions;
    job.window = saved.window;
    job.restarts = saved.restarts;
    job.eligible_at = saved.eligible_at;
    if (job.state == JobState::kPending) {
      AddPending(job);
      continue;
    }
    // Running: its places held as Started holds them, its deadline, expected end and power.
    job.workers = saved.workers;
    job.spares = saved.spares;
    AllocateGang(cluster_, job.spec, job.workers);
    AllocateGang(cluster_, job.spec, job.spares);
    Hold(job, job.workers, +1);
    Hold(job, job.spares, +1);
    IndexRunning(job);
    if (job.preempt_at) preempting_.insert({*job.preempt_at, job.spec.id});
    governor_.Restore(job.spec, job.workers, saved.power_limit);
  }
  for (uint32_t t = 0; t < tenants_.size(); ++t) {
    if (Status st = CheckPlaces(fleet_, s.pools[t], "spare pool"); !st.ok()) return st;
    for (const WorkerPlacement& p : s.pools[t]) {
      const TaskShape shape = PoolShape(*cluster_.accelerator_type(p.node));
      cluster_.Allocate(p.node, shape, p.devices);
      in_use_[t][cluster_.accelerator_type(p.node)->value()] += shape.TotalMilliGpu();
    }
  }
  pool_ = s.pools;
  jobs_on_ = s.jobs_on;
  short_of_spares_ = {s.short_of_spares.begin(), s.short_of_spares.end()};
  shared_rng_ = Rng(s.rng);
  governor_.SetFlags(s.power_ordered, s.power_room_returned, s.power_changed);
  if (config_.check_invariants) CheckInvariants();
  return Status::Ok();
}

}  // namespace joule
