#include "sched/engine.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "base/check.h"
#include "sched/engine_internal.h"
#include "sched/placement/gang.h"

namespace joule {

Engine::FleetFacts Engine::Facts(const Fleet& fleet) {
  const size_t types = fleet.catalog().accelerators().size();
  FleetFacts f{std::vector<uint64_t>(types, 0), std::vector<uint32_t>(types, 0), {}};
  std::set<NodeTypeId> present;
  for (const Node& node : fleet.nodes()) {
    present.insert(node.type);
    const NodeType& t = fleet.catalog().node(node.type);
    if (t.accelerator) f.accelerators[t.accelerator->value()] += t.accelerators;
  }
  for (const NvlinkDomain& d : fleet.domains()) {
    uint32_t t = fleet.node_type(d.nodes.first).accelerator->value();
    f.largest_domain[t] = std::max(f.largest_domain[t], d.accelerators);
  }
  f.node_types.assign(present.begin(), present.end());
  return f;
}

Engine::Engine(const Fleet& fleet, std::vector<TenantSpec> tenants, EngineConfig config)
    : fleet_(fleet),
      facts_(Facts(fleet)),
      tenants_(std::move(tenants)),
      config_(config),
      cluster_(fleet),
      governor_(fleet, config.power),
      in_use_(tenants_.size(), std::vector<uint64_t>(fleet.catalog().accelerators().size(), 0)),
      reserved_milli_(tenants_.size(), std::vector<uint64_t>(fleet.catalog().accelerators().size(), 0)),
      decayed_usage_(tenants_.size(), 0.0),
      health_(fleet.nodes().size(), NodeHealth::kHealthy),
      jobs_on_(fleet.nodes().size()),
      pool_(tenants_.size()) {
  ends_by_type_.resize(fleet.catalog().accelerators().size());
  for (size_t u = 0; u < tenants_.size(); ++u) {
    for (const Reservation& r : tenants_[u].reserved)
      reserved_milli_[u][r.type.value()] += uint64_t{r.accelerators} * kMilliPerGpu;
  }
}

std::optional<JobState> Engine::state(JobId job) const {
  if (auto it = jobs_.find(job); it != jobs_.end()) return it->second.state;
  if (auto it = ended_.find(job); it != ended_.end()) return it->second;
  return std::nullopt;
}

// A job that ended keeps only its final state (for after_ok and state()): a campus sees millions
// of jobs a month, and the engine's memory must not grow with its history.
void Engine::Retire(JobId job) {
  auto it = jobs_.find(job);
  ended_.emplace(job, it->second.state);
  jobs_.erase(it);
}

PendingReason Engine::pending_reason(JobId job) const {
  auto it = jobs_.find(job);
  return it == jobs_.end() || it->second.state != JobState::kPending ? PendingReason::kNone : it->second.reason;
}

const std::vector<WorkerPlacement>* Engine::placement(JobId job) const {
  auto it = jobs_.find(job);
  return it == jobs_.end() || it->second.state != JobState::kRunning ? nullptr : &it->second.workers;
}

const std::vector<WorkerPlacement>* Engine::spares(JobId job) const {
  auto it = jobs_.find(job);
  return it == jobs_.end() || it->second.state != JobState::kRunning ? nullptr : &it->second.spares;
}

JobSpec Engine::GangSpec(const JobSpec& spec) {
  JobSpec gang = spec;
  gang.workers += spec.spare_nodes;
  return gang;
}

std::vector<NodeId> Engine::ChangedNodes() const {
  std::vector<NodeId> nodes = cluster_.changed();
  nodes.insert(nodes.end(), held_changed_.begin(), held_changed_.end());
  return nodes;
}

Decisions Engine::Step(TimeMs now, std::span<const Event> events) {
  cluster_.ClearChanged();
  held_changed_.clear();
  Decisions out;
  DecayUsage(now);
  for (const Event& e : events) Apply(now, e, out);
  if (!events.empty()) pass_due_ = true;
  if (FinishPreemptions(now)) pass_due_ = true;
  EnforceTimeLimits(now, out);
  if (!out.kills.empty()) pass_due_ = true;
  if (!config_.skip_quiet_passes || PassDue(now)) {
    ++passes_;
    SchedulingPass(now, out);
    RefillSpares(out);
    RefillPools(out);
    governor_.RaiseLimits();
    ReportPowerLimits(out);
    for (auto& [id, job] : pending_) {
      if (job->reason != job->reported) {
        out.pending.push_back({id, job->reason});
        job->reported = job->reason;
      }
    }
    // What this step decided changes what the next pass sees (new victims, less room, other
    // limits): it runs too. A step that decided nothing leaves the next one nothing new.
    pass_due_ = !out.starts.empty() || !out.restarts.empty() || !out.spares_added.empty() || !out.spare_pool.empty() ||
                !out.kills.empty() || !out.power_limits.empty() || !out.requeues.empty() || !out.ended.empty() ||
                !out.health.empty();
  }
  if (config_.check_invariants) CheckInvariants();
  return out;
}

bool Engine::PassDue(TimeMs now) const {
  if (pass_due_ || now >= pass_wake_) return true;
  if (config_.order != QueueOrder::kPriorityFairShareAge) return false;
  // Jobs of two tenants (of one priority) are ordered by their shares: the order is the same while
  // every pair of tenants compares as it did, which neighbours in the last pass's order tell.
  const std::vector<double> now_shares = Shares();
  std::vector<uint32_t> by_share(tenants_.size());
  for (uint32_t t = 0; t < by_share.size(); ++t) by_share[t] = t;
  std::sort(by_share.begin(), by_share.end(),
            [&](uint32_t a, uint32_t b) { return std::tie(pass_shares_[a], a) < std::tie(pass_shares_[b], b); });
  auto compare = [](double a, double b) { return (a > b) - (a < b); };
  for (size_t i = 1; i < by_share.size(); ++i) {
    const uint32_t a = by_share[i - 1], b = by_share[i];
    if (compare(pass_shares_[a], pass_shares_[b]) != compare(now_shares[a], now_shares[b])) return true;
  }
  return false;
}

std::vector<double> Engine::Shares() const {
  std::vector<double> share(tenants_.size());
  for (size_t t = 0; t < tenants_.size(); ++t) share[t] = decayed_usage_[t] / tenants_[t].weight;
  return share;
}

// Limits changed in this step: a job started in it carries its final limit in its start; the others
// get a PowerLimit.
void Engine::ReportPowerLimits(Decisions& out) {
  std::vector<std::pair<JobId, uint32_t>> changes = governor_.TakeChanges();
  if (changes.empty()) return;
  std::unordered_map<JobId, uint32_t*> started;
  for (StartJob& s : out.starts) started.emplace(s.job, &s.power_limit_permille);
  for (RestartJob& r : out.restarts) started.emplace(r.job, &r.power_limit_permille);
  for (auto [job, limit] : changes) {
    if (auto it = started.find(job); it != started.end()) {
      *it->second = limit;
    } else {
      out.power_limits.push_back({job, limit});
    }
  }
}

std::optional<uint32_t> Engine::AdmitPower(Job& job, const std::vector<WorkerPlacement>& workers,
                                           const std::vector<WorkerPlacement>& spares, bool owed) {
  std::optional<uint32_t> limit = governor_.Admit(job.spec, workers, owed);
  if (!limit) {
    ReleaseGang(cluster_, job.spec, workers);
    ReleaseGang(cluster_, job.spec, spares);
    job.reason = PendingReason::kPowerCap;
  }
  return limit;
}

// ---- Events ----

void Engine::Apply(TimeMs now, const Event& event, Decisions& out) {
  if (const auto* e = std::get_if<JobSubmitted>(&event)) {
    Submit(now, e->spec, out);
  } else if (const auto* e = std::get_if<JobCancelled>(&event)) {
    auto it = jobs_.find(e->job);
    if (it == jobs_.end()) return;
    Job& job = it->second;
    if (job.state == JobState::kRunning) out.kills.push_back({job.spec.id, KillReason::kCancelled, now});
    End(job, JobState::kCancelled, "cancelled", out);
  } else if (const auto* e = std::get_if<JobFinished>(&event)) {
    auto it = jobs_.find(e->job);
    if (it == jobs_.end() || it->second.state != JobState::kRunning) return;
    Job& job = it->second;
    if (e->ok) {
      End(job, JobState::kCompleted, "completed", out);
    } else if (RestartAllowed(job, /*own_failure=*/true)) {
      Stop(job, JobState::kPending);
      Requeue(now, job, "job failed", out);
    } else {
      End(job, JobState::kFailed,
          job.spec.max_restarts ? fmt::format("job failed: {} restarts allowed, all used", *job.spec.max_restarts)
                                : "job failed",
          out);
    }
  } else if (const auto* e = std::get_if<NodeHealthChange>(&event)) {
    ChangeHealth(now, *e, out);
  } else if (const auto* e = std::get_if<GridForecast>(&event)) {
    forecast_ = e->step > 0 ? *e : GridForecast{};
    forecast_sum_.assign(1, 0.0);
    for (double g : forecast_.values)
      forecast_sum_.push_back(forecast_sum_.back() + g * static_cast<double>(forecast_.step));
  } else if (const auto* e = std::get_if<TenantUpdate>(&event)) {
    UpdateTenant(*e);
  }
}

void Engine::UpdateTenant(const TenantUpdate& update) {
  const size_t u = update.tenant.value();
  if (u >= tenants_.size()) return;
  TenantSpec& tenant = tenants_[u];
  tenant.reserved = update.reserved;
  tenant.borrow_limit = update.borrow_limit;
  tenant.weight = update.weight > 0 ? update.weight : 1.0;
  std::fill(reserved_milli_[u].begin(), reserved_milli_[u].end(), 0);
  for (const Reservation& r : tenant.reserved) {
    if (r.type.value() < reserved_milli_[u].size())
      reserved_milli_[u][r.type.value()] += uint64_t{r.accelerators} * kMilliPerGpu;
  }
}

void Engine::Submit(TimeMs now, const JobSpec& spec, Decisions& out) {
  auto reject = [&](std::string why) { out.rejections.push_back({spec.id, std::move(why)}); };
  if (jobs_.count(spec.id) || ended_.count(spec.id)) return reject(fmt::format("id: job {} already exists", spec.id));
  if (spec.tenant.value() >= tenants_.size()) return reject("tenant: unknown tenant");
  if (spec.workers == 0) return reject("workers: must be > 0");
  const TaskShape& w = spec.worker;
  if (w.cpu < 0 || w.memory < 0) return reject("worker: cpu and memory must be >= 0");
  if (w.gpus == 0 && w.milli_per_gpu != 0) return reject("worker.milli_per_gpu: must be 0 without accelerators");
  if (w.gpus > 0 && (w.milli_per_gpu <= 0 || w.milli_per_gpu > kMilliPerGpu)) {
    return reject("worker.milli_per_gpu: must be in 1..1000");
  }
  if (w.gpus > 1 && w.milli_per_gpu != kMilliPerGpu)
    return reject("worker.milli_per_gpu: fractions take one accelerator");
  for (TimeMs t :
       {spec.time_limit.value_or(1), spec.runtime_estimate.value_or(1), spec.checkpoint_interval.value_or(1)}) {
    if (t <= 0) return reject("time_limit, runtime_estimate and checkpoint_interval must be > 0");
  }
  if (spec.flexible && !spec.deadline) return reject("deadline: a flexible job needs one");
  if (spec.restart_backoff < 0) return reject("restart_backoff: must be >= 0");
  if (spec.spare_nodes > 0 && (w.gpus == 0 || w.Shared())) {
    return reject("spare_nodes: hot spares are for jobs of whole accelerators");
  }
  // Can one worker fit on any node of the fleet, empty? Can the fleet hold the whole gang?
  bool worker_fits = false;
  uint64_t capacity = 0;
  uint32_t largest_domain = 0;
  for (uint32_t t = 0; t < facts_.accelerators.size(); ++t) {
    if (!w.types.Allows(AcceleratorTypeId(t))) continue;
    capacity += facts_.accelerators[t];
    largest_domain = std::max(largest_domain, facts_.largest_domain[t]);
  }
  if (w.halls != 0 && (w.halls >> std::min<size_t>(fleet_.halls().size(), 63)) != 0) {
    return reject("worker.halls: names a hall the fleet does not have");
  }
  for (NodeTypeId id : facts_.node_types) {
    const NodeType& t = fleet_.catalog().node(id);
    if (w.node_types != 0 && !((w.node_types >> id.value()) & 1)) continue;
    bool type_ok = w.gpus == 0 || (t.accelerator && w.types.Allows(*t.accelerator));
    worker_fits = worker_fits || (type_ok && t.cpu >= w.cpu && t.memory >= w.memory && t.accelerators >= w.gpus);
  }
  if (!worker_fits) return reject("worker: no node of the fleet can hold one worker (type, accelerators, CPU, memory)");
  const uint64_t need = static_cast<uint64_t>(w.gpus) * (spec.workers + spec.spare_nodes);
  if (w.milli_per_gpu == kMilliPerGpu && need > capacity) {
    return reject(fmt::format("workers: needs {} accelerators, the fleet has {} of the allowed types", need, capacity));
  }
  if (spec.topology == TopologyRule::kRequireNvlinkDomain && need > largest_domain) {
    return reject(fmt::format("topology: needs {} accelerators in one NVLink domain, the largest holds {}", need,
                              largest_domain));
  }
  for (JobId dep : spec.after_ok) {
    if (dep == spec.id) return reject("after_ok: a job cannot depend on itself");
    if (!state(dep)) return reject(fmt::format("after_ok: unknown job {}", dep));
  }
  Job& job = jobs_[spec.id];
  job.spec = spec;
  job.spec.submit_time = spec.submit_time ? spec.submit_time : now;
  job.state = JobState::kPending;
  AddPending(job);
}

void Engine::Stop(Job& job, JobState end_state) {
  ReleaseGang(cluster_, job.spec, job.workers);
  ReleaseGang(cluster_, job.spec, job.spares);
  governor_.Remove(job.spec.id);
  Hold(job, job.workers, -1);
  Hold(job, job.spares, -1);
  job.workers.clear();
  job.spares.clear();
  short_of_spares_.erase(job.spec.id);
  if (running_.erase(job.spec.id)) {
    auto& level = running_by_priority_[job.spec.priority];
    level.erase(job.spec.id);
    if (level.empty()) running_by_priority_.erase(job.spec.priority);
  }
  if (job.spec.time_limit) deadlines_.erase({job.start + *job.spec.time_limit, job.spec.id});
  if (TimeMs end = ExpectedEnd(job.start, job.spec); end != kNever) {
    for (uint32_t t = 0; t < ends_by_type_.size(); ++t) {
      if ((job.used_types.mask >> t) & 1) ends_by_type_[t].erase({end, job.spec.id, &job});
    }
  }
  if (job.preempt_at) preempting_.erase({*job.preempt_at, job.spec.id});
  job.preempt_at.reset();
  job.state = end_state;
}

void Engine::EnforceTimeLimits(TimeMs now, Decisions& out) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Job& job = jobs_.at(deadlines_.begin()->second);
    out.kills.push_back({job.spec.id, KillReason::kTimeLimit, now});
    End(job, JobState::kFailed, "time limit", out);
  }
}

// Fair-share usage: accelerator-milliseconds, halved every half-life (Slurm's decay).
void Engine::DecayUsage(TimeMs now) {
  if (now <= last_decay_) return;
  const double dt = static_cast<double>(now - last_decay_);
  const double factor = std::exp2(-dt / static_cast<double>(config_.fair_share_half_life));
  for (size_t t = 0; t < tenants_.size(); ++t) {
    uint64_t milli = 0;
    for (uint64_t m : in_use_[t]) milli += m;
    decayed_usage_[t] = decayed_usage_[t] * factor + static_cast<double>(milli) / kMilliPerGpu * dt;
  }
  last_decay_ = now;
}

// Adds (sign +1) or removes (-1) the places' share of the tenant's use and the node index.
void Engine::Hold(Job& job, const std::vector<WorkerPlacement>& places, int sign) {
  for (const WorkerPlacement& p : places) {
    if (auto type = cluster_.accelerator_type(p.node)) {
      uint64_t& use = in_use_[job.spec.tenant.value()][type->value()];
      const uint64_t milli = static_cast<uint64_t>(job.spec.worker.TotalMilliGpu());
      use = sign > 0 ? use + milli : use - milli;
    }
    std::vector<JobId>& on = jobs_on_[p.node.value()];
    held_changed_.push_back(p.node);
    if (sign > 0) {
      if (std::find(on.begin(), on.end(), job.spec.id) == on.end()) on.push_back(job.spec.id);
    } else if (auto it = std::find(on.begin(), on.end(), job.spec.id); it != on.end()) {
      *it = on.back();
      on.pop_back();
    }
  }
}

void Engine::Started(TimeMs now, Job& job, std::vector<WorkerPlacement> workers, std::vector<WorkerPlacement> spares,
                     uint32_t limit, Decisions& out) {
  job.used_types = TypeSet{};
  job.used_node_types = 0;
  for (const std::vector<WorkerPlacement>* places : {&workers, &spares}) {
    for (const WorkerPlacement& p : *places) {
      const uint32_t node_type = fleet_.node(p.node).type.value();
      job.used_node_types |= node_type < 64 ? uint64_t{1} << node_type : ~uint64_t{0};
      if (auto type = cluster_.accelerator_type(p.node); type && job.spec.worker.gpus > 0) job.used_types.Add(*type);
    }
  }
  Hold(job, workers, +1);
  Hold(job, spares, +1);
  job.workers = std::move(workers);
  job.spares = std::move(spares);
  job.state = JobState::kRunning;
  job.reason = PendingReason::kNone;
  job.reported = PendingReason::kNone;
  job.start = now;
  RemovePending(job);
  IndexRunning(job);
  out.starts.push_back({job.spec.id, job.workers, limit, job.spares});
}

void Engine::IndexRunning(Job& job) {
  running_[job.spec.id] = &job;
  running_by_priority_[job.spec.priority][job.spec.id] = &job;
  if (job.spec.time_limit) deadlines_.insert({job.start + *job.spec.time_limit, job.spec.id});
  if (TimeMs end = ExpectedEnd(job.start, job.spec); end != kNever) {
    for (uint32_t t = 0; t < ends_by_type_.size(); ++t) {
      if ((job.used_types.mask >> t) & 1) ends_by_type_[t].insert({end, job.spec.id, &job});
    }
  }
}

// Capacity conserved: every device's free milli equals 1000 minus what running jobs hold there,
// likewise CPU and memory per node; no device is over-committed.
void Engine::CheckInvariants() const {
  governor_.CheckInvariants();
  size_t by_priority = 0;
  for (const auto& [priority, level] : running_by_priority_) {
    for (const auto& [id, job] : level) JOULE_CHECK(running_.count(id) && job->spec.priority == priority);
    by_priority += level.size();
  }
  JOULE_CHECK(by_priority == running_.size());
  size_t queued = 0;
  for (const auto& [bucket, entries] : queue_) {
    for (const QueueEntry& e : entries) JOULE_CHECK(pending_.count(std::get<JobId>(e)));
    queued += entries.size();
  }
  JOULE_CHECK(queued == pending_.size());
  std::vector<int64_t> held(fleet_.accelerator_count(), 0);
  std::vector<Millicores> cpu(fleet_.nodes().size(), 0);
  std::vector<MiB> mem(fleet_.nodes().size(), 0);
  for (const std::vector<WorkerPlacement>& pool : pool_) {
    for (const WorkerPlacement& p : pool) {
      const TaskShape shape = PoolShape(*cluster_.accelerator_type(p.node));
      cpu[p.node.value()] += shape.cpu;
      mem[p.node.value()] += shape.memory;
      for (uint32_t d : p.devices) held[fleet_.node(p.node).accelerators.first.value() + d] += kMilliPerGpu;
    }
  }
  for (const auto& [id, job] : running_) {
    JOULE_CHECK(job->workers.size() == job->spec.workers);  // gangs are whole
    JOULE_CHECK(job->spares.size() <= job->spec.spare_nodes);
    std::vector<WorkerPlacement> places = job->workers;
    places.insert(places.end(), job->spares.begin(), job->spares.end());
    for (const WorkerPlacement& p : places) {
      JOULE_CHECK(std::find(jobs_on_[p.node.value()].begin(), jobs_on_[p.node.value()].end(), id) !=
                  jobs_on_[p.node.value()].end());
      cpu[p.node.value()] += job->spec.worker.cpu;
      mem[p.node.value()] += job->spec.worker.memory;
      for (uint32_t d : p.devices)
        held[fleet_.node(p.node).accelerators.first.value() + d] += job->spec.worker.milli_per_gpu;
    }
  }
  for (uint32_t n = 0; n < fleet_.nodes().size(); ++n) {
    NodeId node(n);
    JOULE_CHECK(cluster_.cpu_left(node) == fleet_.node_type(node).cpu - cpu[n]);
    JOULE_CHECK(cluster_.memory_left(node) == fleet_.node_type(node).memory - mem[n]);
    std::span<const uint16_t> left = cluster_.gpu_left(node);
    for (uint32_t d = 0; d < left.size(); ++d) {
      int64_t h = held[fleet_.node(node).accelerators.first.value() + d];
      JOULE_CHECK(h >= 0 && h <= kMilliPerGpu && left[d] == kMilliPerGpu - h);
    }
  }
}

}  // namespace joule
