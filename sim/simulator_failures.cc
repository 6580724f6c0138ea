// The twin's failures (part of Simulator; see simulator.h): injecting the failure model's
// outages and crashes, and what they cost the jobs — work since the last checkpoint, the restart
// overhead, checkpoint stalls (Daly's model: τ of work, then a stall C; a restart costs R).
#include <algorithm>
#include <cmath>

#include "sim/simulator.h"

namespace joule::sim {

TimeMs Simulator::RestartOverhead(uint32_t job) const {
  if (!options_.failures || !live_[job].restarted) return 0;
  return std::llround(options_.failures->restart_overhead_min * 60'000.0);
}

TimeMs Simulator::RunNeed(uint32_t job) const {
  const TimeMs work = live_[job].remaining;
  const std::optional<TimeMs>& tau = workload_->jobs[job].spec.checkpoint_interval;
  const TimeMs stalls = tau && work > 0 ? (work + *tau - 1) / *tau - 1 : 0;  // none after the last stretch
  return RestartOverhead(job) + work + stalls * checkpoint_stall_;
}

TimeMs Simulator::SavedWork(uint32_t job, double done) const {
  const std::optional<TimeMs>& tau = workload_->jobs[job].spec.checkpoint_interval;
  const double y = done - static_cast<double>(RestartOverhead(job));
  if (!tau || y <= 0) return 0;
  const auto periods = static_cast<TimeMs>(std::floor(y / static_cast<double>(*tau + checkpoint_stall_)));
  return std::min(periods * *tau, live_[job].remaining);
}

TimeMs Simulator::WorkDone(uint32_t job, double done) const {
  const std::optional<TimeMs>& tau = workload_->jobs[job].spec.checkpoint_interval;
  const double y = done - static_cast<double>(RestartOverhead(job));
  if (y <= 0) return 0;
  if (!tau) return std::min(static_cast<TimeMs>(y), live_[job].remaining);
  const double period = static_cast<double>(*tau + checkpoint_stall_);
  const double periods = std::floor(y / period);
  const double work = periods * static_cast<double>(*tau) + std::min(y - periods * period, static_cast<double>(*tau));
  return std::min(static_cast<TimeMs>(work), live_[job].remaining);
}

double Simulator::KeepCheckpoint(TimeMs now, uint32_t job) {
  LiveJob& run = live_[job];
  const double done = Progress(now, job);
  const TimeMs saved = SavedWork(job, done);
  const double held = std::min(done, static_cast<double>(run.need));
  run.remaining -= saved;
  return std::max(0.0, held - static_cast<double>(saved)) * static_cast<double>(HeldMilli(job)) / 1000.0 /
         static_cast<double>(kMsPerHour);
}

void Simulator::Stopped(TimeMs now, uint32_t job) {
  LiveJob& run = live_[job];
  JobRecord& record = result_.jobs[job];
  run.generation++;
  // A preempted job's loss was counted at its preemption.
  if (!run.stopping) result_.failures.lost_accelerator_hours += KeepCheckpoint(now, job);
  record.interruptions++;
  result_.failures.interruptions++;
  run.interrupted_at = now;
  Release(job);
}

void Simulator::Interrupted(TimeMs now, uint32_t job) {
  Stopped(now, job);
  result_.jobs[job].outcome = Outcome::kQueued;
  PendingShape(job, +1);
}

// Restarts were decided while applying events, before any kill of the same step (a job moved onto
// spares may lose a worker again and be requeued in the same step), so they come first.
void Simulator::ApplyRestarts(TimeMs now, const Decisions& decisions) {
  FailureFigures& f = result_.failures;
  for (const RestartJob& r : decisions.restarts) {
    const uint32_t job = index_.at(r.job);
    JOULE_CHECK(live_[job].holding && !live_[job].stopping);
    Stopped(now, job);
    f.spare_restarts++;
    f.spares_used += r.replaced;
    live_[job].restarted = true;
    Occupy(now, job, r.workers, r.spares, r.power_limit_permille);
  }
}

void Simulator::ApplyFailureDecisions(TimeMs now, const Decisions& decisions) {
  FailureFigures& f = result_.failures;
  for (const Requeue& q : decisions.requeues) {
    f.requeues++;
    if (q.eligible_at > now) Schedule(q.eligible_at, TimerKind::kCheck, index_.at(q.job));
  }
  for (const JobEnded& e : decisions.ended) {
    if (e.state != JobState::kFailed) continue;
    const uint32_t job = index_.at(e.job);
    JobRecord& record = result_.jobs[job];
    if (record.outcome == Outcome::kTimeLimit) continue;  // Kill recorded it
    if (record.outcome == Outcome::kQueued) PendingShape(job, -1);
    record.outcome = Outcome::kFailed;
    record.end = now;
    f.failed.push_back({job, e.reason});
  }
  // Tenants' spare pools: whole nodes held idle, in the tenant's allocation and idle draw.
  for (const SparePoolChange& c : decisions.spare_pool) {
    const NodeType& type = fleet_.node_type(c.node);
    if (!type.accelerator) continue;
    const int sign = c.added ? +1 : -1;
    Book(c.tenant.value(), type.accelerator->value(), uint64_t{type.accelerators} * 1000, sign);
    tenant_w_[c.tenant.value()] += sign * WorkerIdleWatts(fleet_, c.node, type.accelerators, kMilliPerGpu);
  }
  for (const HealthTransition& h : decisions.health) {
    f.health_transitions++;
    const uint64_t accelerators = fleet_.node_type(h.node).accelerators;
    if (h.from == NodeHealth::kHealthy) out_accelerators_ += accelerators;
    if (h.to == NodeHealth::kHealthy) out_accelerators_ -= accelerators;
  }
  f.health_refused += decisions.health_refused.size();
}

void Simulator::ScheduleHealth(TimeMs at, NodeId node, NodeHealth to, std::string reason) {
  health_actions_.push_back({node, to, outage_[node.value()], std::move(reason)});
  timers_.push_back(Timer{at, seq_++, TimerKind::kHealth, static_cast<uint32_t>(health_actions_.size() - 1), 0});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
}

// The node leaves service (down, or drained for maintenance) at `at`; its repair starts
// `to_repair` later and takes `repair`. A newer outage of the node voids this one's steps.
void Simulator::Outage(TimeMs at, NodeId node, NodeHealth first, std::string reason, Actor actor,
                       std::optional<uint32_t> device, TimeMs to_repair, TimeMs repair, std::vector<Event>& events) {
  ++outage_[node.value()];
  events.push_back(NodeHealthChange{node, first, actor, std::move(reason), device});
  // Steps never go back in time: a step due before the next tick waits for it.
  const TimeMs soonest = at + 1;
  ScheduleHealth(std::max(soonest, at + to_repair), node, NodeHealth::kRepairing, "repair started");
  ScheduleHealth(std::max(soonest + 1, at + to_repair + repair), node, NodeHealth::kHealthy, "repaired");
}

// The job running a worker on the node (the lowest id, if several share it) crashes.
void Simulator::Crash(TimeMs now, NodeId node, std::vector<Event>& events) {
  std::vector<JobId> on(engine_->jobs_on(node).begin(), engine_->jobs_on(node).end());
  std::sort(on.begin(), on.end());
  for (JobId id : on) {
    const uint32_t job = index_.at(id);
    if (!live_[job].holding || live_[job].stopping) continue;
    const std::vector<WorkerPlacement>* workers = engine_->placement(id);
    if (!workers || std::none_of(workers->begin(), workers->end(), [&](const auto& w) { return w.node == node; })) {
      continue;  // only a spare there
    }
    result_.failures.node_failures[static_cast<size_t>(FailureCause::kSoftware)]++;
    Interrupted(now, job);
    events.push_back(JobFinished{id, false});
    return;
  }
}

void Simulator::Inject(TimeMs now, std::vector<Event>& events) {
  const FailureModelSpec& model = injector_->spec();
  auto ms = [](double hours) { return std::llround(hours * static_cast<double>(kMsPerHour)); };
  while (injector_->peek().at <= now) {
    Failure f = injector_->Take();
    if (f.cause == FailureCause::kSoftware) {
      Crash(now, f.nodes[0], events);
      continue;
    }
    bool hit = false;
    for (NodeId node : f.nodes) {
      const NodeHealth h = engine_->health(node);
      if (h == NodeHealth::kDown || h == NodeHealth::kRepairing) continue;  // already out
      hit = true;
      Outage(f.at, node, NodeHealth::kDown, f.reason, Actor::kAgent, f.device, ms(model.triage_h), f.repair, events);
    }
    if (!hit) continue;
    if (f.domain) {
      result_.failures.domain_failures[*f.domain]++;
    } else {
      result_.failures.node_failures[static_cast<size_t>(f.cause)]++;
    }
  }
  while (injector_->peek_maintenance() && injector_->peek_maintenance()->at <= now) {
    const MaintenanceWindow window = injector_->TakeMaintenance();
    result_.failures.maintenance_windows++;
    for (RackId rack : window.racks) {
      for (NodeId node : fleet_.rack(rack).nodes) {
        if (engine_->health(node) != NodeHealth::kHealthy) continue;
        Outage(window.at, node, NodeHealth::kDrained, "maintenance window", Actor::kPolicy, std::nullopt,
               ms(model.maintenance->drain_timeout_h), ms(model.maintenance->duration_h), events);
      }
    }
  }
}

}  // namespace joule::sim
