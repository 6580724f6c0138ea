// The control plane's view: journaled records and the engine's decisions applied to jobs, nodes,
// tenants and the audit log (control_plane.h says under which lock).
#include "control/control_plane.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/journal_json.h"

namespace joule::control {

// ---- Applying records and decisions ----

void ControlPlane::Audit(uint64_t seq, const Record& record, std::string action, std::string target,
                         std::string detail) {
  AddAudit({seq, record.at, record.who, std::move(action), std::move(target), std::move(detail)});
}

void ControlPlane::SetState(JobInfo& job, JobState state) {
  if (job.state == state) return;
  state_count_[job.state]--;
  state_count_[state]++;
  if (job.state == JobState::kRunning) running_jobs_.erase(job.id);
  if (state == JobState::kRunning) running_jobs_.insert(job.id);
  job.state = state;
}

void ControlPlane::ApplyInput(uint64_t seq, const Record& r) {
  if (r.type == Record::Type::kCluster) {
    if (cluster_id_.empty()) cluster_id_ = r.key;  // the first one names the journal for good
    return;
  }
  if (r.type == Record::Type::kEnergy) {
    if (auto it = jobs_.find(r.job); it != jobs_.end()) {
      JobInfo& job = it->second;
      job.energy_final[{r.run, r.rank}] = r.joules;
      job.energy_live.erase({r.run, r.rank});
    }
    return;
  }
  inputs_.push_back({seq, *r.event});
  if (const auto* e = std::get_if<JobSubmitted>(&*r.event)) {
    JobInfo job;
    job.id = e->spec.id;
    job.spec = r.spec;
    job.tenant = e->spec.tenant;
    job.priority = e->spec.priority;
    job.submitted = r.at;
    job.submitted_by = r.who;
    job.key = r.key;
    job.events.push_back({r.at, fmt::format("submitted by {}", r.who)});
    state_count_[JobState::kPending]++;
    next_id_ = std::max(next_id_, job.id + 1);
    // Live, Submit registered the key already; replay registers it here.
    if (!r.key.empty() && !idempotency_.contains({r.who, r.key})) {
      idempotency_[{r.who, r.key}] = {job.id, Sha256(io::EncodeJobSpec(r.spec)), 0};
    }
    Audit(seq, r, "submit", fmt::format("job/{}", job.id), r.spec.name);
    jobs_.emplace(job.id, std::move(job));
  } else if (const auto* e = std::get_if<JobCancelled>(&*r.event)) {
    if (auto it = jobs_.find(e->job); it != jobs_.end()) {
      it->second.events.push_back({r.at, fmt::format("cancel requested by {}", r.who)});
    }
    Audit(seq, r, "cancel", fmt::format("job/{}", e->job), "");
  } else if (const auto* e = std::get_if<JobFinished>(&*r.event)) {
    if (auto it = jobs_.find(e->job); it != jobs_.end()) {
      it->second.events.push_back(
          {r.at, fmt::format("workers exited ({}), reported by {}", e->ok ? "all 0" : "a failure", r.who)});
    }
    Audit(seq, r, "finish", fmt::format("job/{}", e->job), e->ok ? "ok" : "failed");
  } else if (const auto* e = std::get_if<NodeHealthChange>(&*r.event)) {
    Audit(seq, r, e->to == NodeHealth::kHealthy ? "resume" : std::string(NodeHealthName(e->to)),
          fmt::format("node/{}", scenario_.fleet.NodeName(e->node)), e->reason);
  } else if (const auto* e = std::get_if<TenantUpdate>(&*r.event)) {
    TenantSpec& t = tenants_[e->tenant.value()];
    t.reserved = e->reserved;
    t.borrow_limit = e->borrow_limit;
    t.weight = e->weight;
    std::string detail;
    for (const Reservation& res : e->reserved) {
      detail += fmt::format("{}{}={}", detail.empty() ? "reserved " : ",",
                            scenario_.fleet.catalog().accelerator(res.type).name, res.accelerators);
    }
    detail += fmt::format("{}borrow_limit={} weight={}", detail.empty() ? "" : " ",
                          e->borrow_limit ? std::to_string(*e->borrow_limit) : "none", e->weight);
    Audit(seq, r, "quota", fmt::format("tenant/{}", t.name), detail);
  }
}

Decisions ControlPlane::RunStep(TimeMs at, uint64_t through) {
  std::vector<Event> events;
  {
    std::lock_guard lock(mu_);
    size_t n = 0;
    while (n < inputs_.size() && inputs_[n].seq <= through) ++n;
    events.reserve(n);
    for (size_t i = 0; i < n; ++i) events.push_back(std::move(inputs_[i].event));
    inputs_.erase(inputs_.begin(), inputs_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return engine_->Step(at, events);
}

void ControlPlane::ApplyDecisions(TimeMs at, const Decisions& d) {
  last_step_ = at;
  const Fleet& fleet = scenario_.fleet;
  auto job = [&](JobId id) -> JobInfo* {
    auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : &it->second;
  };
  // Nodes whose assignments may change: their agents' long polls are answered after the pass.
  auto touch = [&](const std::vector<NodeId>& nodes) {
    for (NodeId n : nodes) touched_.push_back(n.value());
  };
  auto nodes_of = [](const std::vector<WorkerPlacement>& workers) {
    std::vector<NodeId> nodes;
    nodes.reserve(workers.size());
    for (const WorkerPlacement& w : workers) nodes.push_back(w.node);
    return nodes;
  };
  for (const Rejection& r : d.rejections) {
    if (JobInfo* j = job(r.job)) {
      SetState(*j, JobState::kRejected);
      j->end_reason = r.reason;
      j->ended = at;
      ended_.emplace(at, j->id);
      j->events.push_back({at, fmt::format("rejected: {}", r.reason)});
    }
  }
  // A job requeued by this step's events may start again in its pass: requeues come first.
  for (const Requeue& r : d.requeues) {
    if (JobInfo* j = job(r.job)) {
      SetState(*j, JobState::kPending);
      j->restarts = r.restarts;
      touch(j->nodes);
      j->nodes.clear();
      j->events.push_back({at, fmt::format("requeued: {}", r.reason)});
    }
  }
  for (const StartJob& s : d.starts) {
    if (JobInfo* j = job(s.job)) {
      SetState(*j, JobState::kRunning);
      j->reason = PendingReason::kNone;
      j->started = at;
      j->nodes = nodes_of(s.workers);
      touch(j->nodes);
      j->devices.clear();
      for (const WorkerPlacement& w : s.workers) j->devices.push_back(w.devices);
      exits_.erase(s.job);
      finishing_.erase(s.job);
      j->run++;
      j->power_limit_permille = s.power_limit_permille;
      j->events.push_back({at, fmt::format("started on {} node(s){}", j->nodes.size(),
                                           s.power_limit_permille < kRatedPermille
                                               ? fmt::format(", power capped at {}‰", s.power_limit_permille)
                                               : "")});
    }
  }
  for (const RestartJob& r : d.restarts) {
    if (JobInfo* j = job(r.job)) {
      touch(j->nodes);
      j->nodes = nodes_of(r.workers);
      touch(j->nodes);
      j->devices.clear();
      for (const WorkerPlacement& w : r.workers) j->devices.push_back(w.devices);
      exits_.erase(r.job);
      finishing_.erase(r.job);
      j->run++;
      j->restarts++;
      j->events.push_back({at, fmt::format("restarted on spares ({} worker(s) moved)", r.replaced)});
    }
  }
  for (const KillJob& k : d.kills) {
    if (JobInfo* j = job(k.job)) {
      j->events.push_back({at, fmt::format("stop: {}", KillReasonName(k.reason))});
      if (k.reason == KillReason::kPreempted) preempting_.push_back(k.job);
    }
  }
  for (const PowerLimit& p : d.power_limits) {
    if (JobInfo* j = job(p.job)) {
      j->power_limit_permille = p.permille;
      touch(j->nodes);
    }
  }
  for (const PendingChange& p : d.pending) {
    if (JobInfo* j = job(p.job)) j->reason = p.reason;
  }
  for (const JobEnded& e : d.ended) {
    exits_.erase(e.job);
    finishing_.erase(e.job);
    if (JobInfo* j = job(e.job)) {
      SetState(*j, e.state);
      j->reason = PendingReason::kNone;
      j->end_reason = e.reason;
      j->ended = at;
      ended_.emplace(at, j->id);
      touch(j->nodes);
      j->nodes.clear();
      j->events.push_back({at, fmt::format("{}: {}", StateName(e.state), e.reason)});
    }
  }
  // Preempted jobs go back to pending when their grace period ends, without a decision of their own.
  std::erase_if(preempting_, [&](JobId id) {
    JobInfo* j = job(id);
    const std::optional<JobState> state = engine_->state(id);
    if (j == nullptr || !state || *state == JobState::kRunning) return j == nullptr;
    if (*state == JobState::kPending) {
      SetState(*j, JobState::kPending);
      touch(j->nodes);
      j->nodes.clear();
      j->events.push_back({at, "requeued: preempted"});
    }
    return true;
  });
  for (const HealthTransition& h : d.health) {
    NodeInfo& n = nodes_[h.node.value()];
    n.health = h.to;
    n.reason = h.reason;
    n.since = at;
    n.actor = h.actor;
  }
  for (const HealthRefusal& r : d.health_refused) {
    AddAudit({applied_seq_, at, "engine", "refused", fmt::format("node/{}", fleet.NodeName(r.node)), r.why});
  }
  budgets_.assign(engine_->power().budgets().begin(), engine_->power().budgets().end());
  Retire(at);
  RefreshNodes(/*all=*/false);
}

void ControlPlane::Retire(TimeMs at) {
  while (!ended_.empty() && ended_.begin()->first + config_.job_retention_ms <= at) {
    const JobId id = ended_.begin()->second;
    ended_.erase(ended_.begin());
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    const JobInfo& j = it->second;
    if (!j.key.empty()) {
      auto key = idempotency_.find({j.submitted_by, j.key});
      if (key != idempotency_.end() && key->second.job == id) idempotency_.erase(key);
    }
    retired_.emplace(id, static_cast<uint32_t>(retired_rows_.size()));
    retired_rows_.Append(EncodeRetired(j));
    jobs_.erase(it);
  }
}

void ControlPlane::RefreshNodes(bool all) {
  const Fleet& fleet = scenario_.fleet;
  const ClusterState& cluster = engine_->cluster();
  std::vector<uint32_t> changed;
  if (all) {
    changed.resize(fleet.nodes().size());
    for (uint32_t n = 0; n < changed.size(); ++n) changed[n] = n;
  } else {
    for (NodeId n : engine_->ChangedNodes()) changed.push_back(n.value());
    std::sort(changed.begin(), changed.end());
    changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
  }
  for (uint32_t n : changed) {
    NodeInfo& info = nodes_[n];
    uint32_t used = 0;
    for (uint16_t left : cluster.gpu_left(NodeId(n))) used += left < kMilliPerGpu ? 1 : 0;
    info.gpus_used = used;
    const std::span<const JobId> on = engine_->jobs_on(NodeId(n));
    info.jobs.assign(on.begin(), on.end());
  }
}

}  // namespace joule::control
