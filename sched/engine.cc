#include "sched/engine.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "base/check.h"
#include "sched/placement/gang.h"

namespace joule {
namespace {

constexpr TimeMs kNever = INT64_MAX;

TimeMs ExpectedRuntime(const JobSpec& spec) {
  if (spec.runtime_estimate) return *spec.runtime_estimate;
  if (spec.time_limit) return *spec.time_limit;
  return kNever;
}

TimeMs ExpectedEnd(TimeMs start, const JobSpec& spec) {
  TimeMs runtime = ExpectedRuntime(spec);
  return runtime == kNever ? kNever : start + runtime;
}

bool Overlaps(TypeSet a, TypeSet b) { return a.Any() || b.Any() || (a.mask & b.mask) != 0; }

}  // namespace

// A blocked job's claim on the future: at `start`, enough accelerators of `types` will be free
// for it, with `spare` more than it needs; later jobs may use the spare without delaying it.
struct Engine::BackfillHold {
  JobId job = 0;
  TenantId tenant;
  TimeMs start = 0;
  TypeSet types;
  uint64_t spare = 0;
};

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
  FinishPreemptions(now);
  EnforceTimeLimits(now, out);
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
  if (config_.check_invariants) CheckInvariants();
  return out;
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
  pending_[spec.id] = &job;
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
  running_.erase(job.spec.id);
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

// ---- The pass ----

std::vector<Engine::Job*> Engine::OrderedPending() {
  std::vector<Job*> order;
  order.reserve(pending_.size());
  for (auto& [id, job] : pending_) order.push_back(job);
  std::vector<double> share(tenants_.size());
  for (size_t t = 0; t < tenants_.size(); ++t) share[t] = decayed_usage_[t] / tenants_[t].weight;
  // Jobs with neither an estimate nor a time limit sort last under shortest-first.
  auto expected = [](const Job* j) {
    return j->spec.runtime_estimate.value_or(j->spec.time_limit.value_or(std::numeric_limits<TimeMs>::max()));
  };
  auto key = [&](const Job* j) {
    const JobSpec& s = j->spec;
    switch (config_.order) {
      case QueueOrder::kFifo:
        return std::make_tuple(int32_t{0}, 0.0, TimeMs{0}, s.submit_time, s.id);
      case QueueOrder::kShortestFirst:
        return std::make_tuple(int32_t{0}, 0.0, expected(j), s.submit_time, s.id);
      case QueueOrder::kPriorityFairShareAge:
        break;
    }
    return std::make_tuple(-s.priority, share[s.tenant.value()], TimeMs{0}, s.submit_time, s.id);
  };
  // pending_ is in id order, which is nearly submit order: a merge sort makes short work of it.
  std::stable_sort(order.begin(), order.end(), [&](const Job* a, const Job* b) { return key(a) < key(b); });
  return order;
}

std::optional<double> Engine::ForecastMean(TimeMs from, TimeMs to) const {
  const TimeMs end = forecast_.start + forecast_.step * static_cast<TimeMs>(forecast_.values.size());
  if (from < forecast_.start || to > end || to <= from) return std::nullopt;
  auto integral = [&](TimeMs t) {
    const size_t i = static_cast<size_t>((t - forecast_.start) / forecast_.step);
    if (i >= forecast_.values.size()) return forecast_sum_.back();
    return forecast_sum_[i] +
           forecast_.values[i] * static_cast<double>(t - forecast_.start - static_cast<TimeMs>(i) * forecast_.step);
  };
  return (integral(to) - integral(from)) / static_cast<double>(to - from);
}

// Starts considered: now and every forecast step boundary up to the middle of the slack (the time
// between submission and the latest start that meets the deadline), each by the forecast's mean
// over the run. Returns the start to wait for, or nullopt to queue now.
std::optional<TimeMs> Engine::LowCarbonStart(TimeMs now, const Job& job) const {
  const JobSpec& s = job.spec;
  if (!s.flexible || !s.deadline || forecast_.values.empty()) return std::nullopt;
  const std::optional<TimeMs> runtime = s.runtime_estimate ? s.runtime_estimate : s.time_limit;
  if (!runtime) return std::nullopt;
  // Shift within the first half of the slack; the second half is kept for the queue (the tenant
  // may be at its quota, the campus full, when the window comes).
  const TimeMs latest = s.submit_time + (*s.deadline - *runtime - s.submit_time) / 2;
  if (now >= latest) return std::nullopt;
  const std::optional<double> here = ForecastMean(now, now + *runtime);
  if (!here) return std::nullopt;
  std::vector<std::pair<TimeMs, double>> starts = {{now, *here}};
  const TimeMs step = forecast_.step;
  for (TimeMs t = forecast_.start + ((now - forecast_.start) / step + 1) * step; t <= latest; t += step) {
    const std::optional<double> later = ForecastMean(t, t + *runtime);
    if (!later) break;
    starts.emplace_back(t, *later);
  }
  double best = *here;
  for (auto [t, v] : starts) best = std::min(best, v);
  // Starting now is as good as any: do. Otherwise jobs spread over the windows within 2% of the
  // best by id, so that they do not all wait for the same hour.
  auto near = [&](double v) { return v <= best + 0.02 * std::abs(best); };
  if (near(*here)) return std::nullopt;
  std::vector<TimeMs> windows;
  for (auto [t, v] : starts) {
    if (near(v)) windows.push_back(t);
  }
  return windows[s.id % windows.size()];
}

bool Engine::DependenciesMet(Job& job) {
  for (JobId dep : job.spec.after_ok) {
    JobState s = *state(dep);
    if (s == JobState::kCompleted) continue;
    bool never = s == JobState::kFailed || s == JobState::kCancelled || s == JobState::kRejected;
    job.reason = never ? PendingReason::kDependencyNeverSatisfied : PendingReason::kDependency;
    return false;
  }
  return true;
}

uint64_t Engine::Accelerators(const Job& job) const {
  const TaskShape& w = job.spec.worker;
  const uint64_t places = job.spec.workers + job.spec.spare_nodes;
  return (static_cast<uint64_t>(w.TotalMilliGpu()) * places + kMilliPerGpu - 1) / kMilliPerGpu;
}

// Within quota when some allowed type leaves the tenant's borrowing (use beyond its reservations,
// in accelerators, summed over types) within its borrowing limit.
bool Engine::WithinQuota(const Job& job, bool owed) const {
  const uint32_t u = job.spec.tenant.value();
  const TenantSpec& tenant = tenants_[u];
  if (!tenant.borrow_limit) return true;
  // A job bound to one type that fits in its tenant's reservation of it is owed, whatever the
  // tenant borrows elsewhere. (A job open to several types is not: it may land where its tenant
  // borrows, and owing it would let two tenants reclaim from each other in turn.)
  if (owed) return true;
  const std::vector<uint64_t>& use = in_use_[u];
  // Accelerators borrowed beyond the reservation of type t when holding `milli` of it.
  auto beyond = [&](uint32_t t, uint64_t milli) {
    const uint64_t reserved = reserved_milli_[u][t] / kMilliPerGpu;
    const uint64_t accelerators = (milli + kMilliPerGpu - 1) / kMilliPerGpu;
    return accelerators > reserved ? accelerators - reserved : 0;
  };
  uint64_t total = 0;
  for (uint32_t t = 0; t < use.size(); ++t) total += beyond(t, use[t]);
  const uint64_t milli =
      static_cast<uint64_t>(job.spec.worker.TotalMilliGpu()) * (job.spec.workers + job.spec.spare_nodes);
  for (uint32_t t = 0; t < use.size(); ++t) {
    if (!job.spec.worker.types.Allows(AcceleratorTypeId(t))) continue;
    if (total - beyond(t, use[t]) + beyond(t, use[t] + milli) <= *tenant.borrow_limit) return true;
  }
  return false;
}

// Walks running jobs by expected end, adding what each frees of the job's types, until enough.
std::optional<Engine::BackfillHold> Engine::Reserve(TimeMs now, const Job& job) const {
  const TypeSet types = job.spec.worker.types;
  const uint64_t need = Accelerators(job);
  uint64_t free = 0;
  for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
    if (types.Allows(AcceleratorTypeId(t))) free += cluster_.free_whole(AcceleratorTypeId(t));
  }
  // Merge the allowed types' end lists in time order (a job on several types is counted once
  // per type, for its workers of that type).
  using EndIt = std::set<std::tuple<TimeMs, JobId, const Job*>>::const_iterator;
  std::vector<std::pair<EndIt, uint32_t>> heads;  // (next entry, type)
  for (uint32_t t = 0; t < ends_by_type_.size(); ++t) {
    if (types.Allows(AcceleratorTypeId(t)) && !ends_by_type_[t].empty())
      heads.emplace_back(ends_by_type_[t].begin(), t);
  }
  TimeMs start = now;
  while (free < need && !heads.empty()) {
    size_t next = 0;
    for (size_t i = 1; i < heads.size(); ++i) {
      if (*heads[i].first < *heads[next].first) next = i;
    }
    auto& [it, type] = heads[next];
    const auto& [end, id, running] = *it;
    for (const WorkerPlacement& p : running->workers) {
      if (cluster_.accelerator_type(p.node) == AcceleratorTypeId(type) && cluster_.schedulable(p.node)) {
        free += running->spec.worker.gpus;
      }
    }
    start = std::max(end, now);
    if (++it == ends_by_type_[type].end()) heads.erase(heads.begin() + static_cast<std::ptrdiff_t>(next));
  }
  if (free < need) return std::nullopt;
  return BackfillHold{job.spec.id, job.spec.tenant, start, types, free - need};
}

bool Engine::BackfillAllowed(TimeMs now, const Job& job, bool owed, std::vector<BackfillHold>& holds) const {
  const TimeMs end = ExpectedEnd(now, job.spec);
  const uint64_t need = Accelerators(job);
  // Reserved capacity belongs to its owner: another tenant's hold does not keep it waiting.
  for (const BackfillHold& r : holds) {
    if (!Overlaps(r.types, job.spec.worker.types)) continue;
    if (owed && r.tenant != job.spec.tenant) continue;
    if (end <= r.start) continue;
    if (need > r.spare) return false;
  }
  return true;
}

void Engine::SchedulingPass(TimeMs now, Decisions& out) {
  std::vector<BackfillHold> holds;
  uint32_t preemption_tries = 0, reclaim_tries = 0;
  pass_candidates_.clear();
  shared_placer_.reset();
  governor_.BeginPass();
  // Shapes that found no room this pass: the state only fills up during a pass, so an identical
  // request would fail again.
  std::set<std::tuple<uint32_t, uint32_t, MilliGpu, Millicores, MiB, uint64_t, int, uint64_t, uint64_t>> failed;
  for (Job* job : OrderedPending()) {
    if (!DependenciesMet(*job)) continue;
    if (now < job->eligible_at) {
      job->reason = PendingReason::kBeginTime;
      continue;
    }
    // Decided once: a flexible job waits for the window it chose, then queues like any other;
    // should it not start then (its tenant at its quota, the campus full), waiting for another
    // window would risk its deadline.
    if (job->spec.flexible && !job->window) job->window = LowCarbonStart(now, *job).value_or(now);
    if (job->window && now < *job->window) {
      job->reason = PendingReason::kLowCarbonWait;
      continue;
    }
    const bool owed = OwedOneType(*job);
    if (!WithinQuota(*job, owed)) {
      job->reason = PendingReason::kQuotaExceeded;
      continue;
    }
    if (!BackfillAllowed(now, *job, owed, holds)) {
      job->reason = PendingReason::kPriority;
      continue;
    }
    if (governor_.CampusHeld() && !owed && job->spec.worker.gpus > 0) {
      job->reason = PendingReason::kPowerCap;
      continue;
    }
    const TaskShape& w = job->spec.worker;
    auto key = std::make_tuple(job->spec.workers + job->spec.spare_nodes, w.gpus, w.milli_per_gpu, w.cpu, w.memory,
                               w.types.mask, static_cast<int>(job->spec.topology), w.halls, w.node_types);
    GangResult result;
    if (failed.count(key)) {
      result.reason = job->reason == PendingReason::kNone ? PendingReason::kResources : job->reason;
    } else {
      result = job->spec.spare_nodes > 0 ? PlaceGang(cluster_, GangSpec(job->spec))
                                         : PlaceGang(cluster_, job->spec, w.Shared() ? SharedPlacer() : nullptr);
    }
    if (result.placed()) {
      std::vector<WorkerPlacement> spares = TakeSpares(job->spec, result.workers);
      const std::optional<uint32_t> limit = AdmitPower(*job, result.workers, spares, owed);
      if (!limit) continue;
      const uint64_t need = Accelerators(*job);
      const TimeMs end = ExpectedEnd(now, job->spec);
      for (BackfillHold& r : holds) {
        if (Overlaps(r.types, w.types) && end > r.start) r.spare -= std::min(r.spare, need);
      }
      Started(now, *job, std::move(result.workers), std::move(spares), *limit, out);
      continue;
    }
    failed.insert(key);
    job->reason = result.reason;
    std::erase_if(job->waiting_for, [&](JobId v) {
      auto it = jobs_.find(v);
      return it == jobs_.end() || !it->second.preempt_at;
    });
    if (!job->waiting_for.empty()) {
      job->reason = PendingReason::kPreempting;  // its victims are still leaving
    } else if (config_.preemption) {
      // Reclaim has its own budget, so higher-priority work queued ahead cannot use up the tries
      // a reservation is owed; other preemption shares `preemption_depth` tries per pass.
      const bool reclaim = FitsInReservation(*job) && OthersBorrow(*job);
      uint32_t& tries = reclaim ? reclaim_tries : preemption_tries;
      if (tries < (reclaim ? config_.reclaim_depth : config_.preemption_depth)) {
        ++tries;
        if (TryPreempt(now, *job, out)) continue;
      }
    }
    if (holds.size() < config_.backfill_depth) {
      if (std::optional<BackfillHold> r = Reserve(now, *job)) holds.push_back(*r);
    }
  }
}

// The typical tasks are the worker shapes of everything queued or running now: the workload the
// fleet must keep room for.
Placer* Engine::SharedPlacer() {
  if (!shared_placer_) {
    std::vector<TaskShape> workload;
    workload.reserve(pending_.size() + running_.size());
    for (const auto& [id, job] : pending_) workload.push_back(job->spec.worker);
    for (const auto& [id, job] : running_) workload.push_back(job->spec.worker);
    shared_placer_ = std::make_unique<Placer>(cluster_, config_.shared_policy, TypicalTasks(workload, 0.95),
                                              shared_rng_, /*shapes=*/0);
  }
  return shared_placer_.get();
}

// ---- Preemption ----

void Engine::FinishPreemptions(TimeMs now) {
  while (!preempting_.empty() && preempting_.begin()->first <= now) {
    Job& victim = jobs_.at(preempting_.begin()->second);
    Stop(victim, JobState::kPending);
    victim.preemptions++;
    victim.reason = PendingReason::kNone;
    pending_[victim.spec.id] = &victim;
  }
}

bool Engine::OwedOneType(const Job& job) const {
  return std::popcount(job.spec.worker.types.mask) == 1 && FitsInReservation(job);
}

bool Engine::FitsInReservation(const Job& job) const {
  const uint32_t u = job.spec.tenant.value();
  const uint64_t milli =
      static_cast<uint64_t>(job.spec.worker.TotalMilliGpu()) * (job.spec.workers + job.spec.spare_nodes);
  for (uint32_t t = 0; t < reserved_milli_[u].size(); ++t) {
    const uint64_t reserved = reserved_milli_[u][t];
    if (reserved > 0 && job.spec.worker.types.Allows(AcceleratorTypeId(t)) && in_use_[u][t] + milli <= reserved) {
      return true;
    }
  }
  return false;
}

// Whether another tenant uses more than its reservation of a type the job may run on: only then
// can reclaim find victims.
bool Engine::OthersBorrow(const Job& job) const {
  for (uint32_t u = 0; u < tenants_.size(); ++u) {
    if (u == job.spec.tenant.value()) continue;
    for (uint32_t t = 0; t < in_use_[u].size(); ++t) {
      if (job.spec.worker.types.Allows(AcceleratorTypeId(t)) && BorrowingOn(u, t)) return true;
    }
  }
  return false;
}

// Running jobs this job may evict: its own tenant's jobs of lower priority; other tenants' jobs
// only while those tenants run beyond their reservation, and then when of lower priority or when
// the job reclaims its own reservation. In running-job order (by id); TryPreempt ranks them.
std::vector<Engine::Candidate> Engine::VictimCandidates(TimeMs now, const Job& job) const {
  const bool reclaim = FitsInReservation(job);
  // Node types that could hold one worker of the job when empty: a victim elsewhere cannot help.
  uint64_t hostable = 0;
  const TaskShape& w = job.spec.worker;
  for (NodeTypeId id : facts_.node_types) {
    const NodeType& t = fleet_.catalog().node(id);
    const bool type_ok = w.gpus == 0 || (t.accelerator && w.types.Allows(*t.accelerator));
    const bool selected = w.node_types == 0 || ((w.node_types >> id.value()) & 1);
    if (type_ok && selected && t.accelerators >= w.gpus && t.cpu >= w.cpu && t.memory >= w.memory) {
      hostable |= id.value() < 64 ? uint64_t{1} << id.value() : ~uint64_t{0};
    }
  }
  std::vector<Candidate> candidates;
  for (const auto& [id, k] : running_) {
    if (k->preempt_at || (!reclaim && k->spec.priority >= job.spec.priority)) continue;
    if ((k->used_node_types & hostable) == 0) continue;
    const uint64_t held = k->used_types.mask;
    const uint64_t wanted = job.spec.worker.types.Any() ? ~uint64_t{0} : job.spec.worker.types.mask;
    const bool useful = job.spec.worker.gpus == 0 || (held & wanted) != 0;
    // Another tenant's job is fair game only while that tenant runs beyond its reservation on the
    // victim's types: work inside a reservation is guaranteed against other tenants.
    const bool other_tenant = k->spec.tenant != job.spec.tenant;
    bool borrowed = false;
    if (other_tenant) {
      for (uint64_t bits = held; bits != 0 && !borrowed; bits &= bits - 1) {
        borrowed = BorrowingOn(k->spec.tenant.value(), static_cast<uint32_t>(std::countr_zero(bits)));
      }
    }
    const bool lower = k->spec.priority < job.spec.priority;
    const bool eligible = other_tenant ? borrowed && (lower || reclaim) : lower;
    if (!useful || !eligible) continue;
    const TimeMs elapsed = now - k->start;
    const TimeMs since_checkpoint = k->spec.checkpoint_interval ? elapsed % *k->spec.checkpoint_interval : elapsed;
    const int64_t size = static_cast<int64_t>(Accelerators(*k));
    candidates.push_back({k, !borrowed, since_checkpoint * size, size});
  }
  return candidates;
}

// Victim choice (docs/decisions/0002): the lowest priority ceiling that makes room — never
// evict higher-priority work to spare lower — then the fewest victims, then the least work lost,
// borrowed capacity first. Within a ceiling: one victim if one suffices (the best by borrowed,
// then least work lost), else victims borrowed first and largest first until the job fits, then
// victims the job can do without are spared. The cluster state is restored exactly: victims
// keep their resources through the grace period.
bool Engine::TryPreempt(TimeMs now, Job& job, Decisions& out) {
  // A victim frees its spares too.
  auto release = [&](const Job* v) {
    ReleaseGang(cluster_, v->spec, v->workers);
    ReleaseGang(cluster_, v->spec, v->spares);
  };
  auto restore = [&](const Job* v) {
    for (const WorkerPlacement& p : v->workers) cluster_.Allocate(p.node, v->spec.worker, p.devices);
    for (const WorkerPlacement& p : v->spares) cluster_.Allocate(p.node, v->spec.worker, p.devices);
  };
  const JobSpec gang = GangSpec(job.spec);
  auto job_fits = [&] {
    GangResult r = PlaceGang(cluster_, gang);
    if (r.placed()) ReleaseGang(cluster_, gang, r.workers);
    return r.placed();
  };
  constexpr size_t kSingleProbes = 64;
  constexpr size_t kSparingProbes = 16;
  const CandidateKey key{job.spec.priority, job.spec.tenant.value(), job.spec.worker.types.mask,
                         job.spec.worker.gpus == 0};
  auto cached = pass_candidates_.find(key);
  if (cached == pass_candidates_.end()) {
    cached = pass_candidates_.emplace(key, VictimCandidates(now, job)).first;
  } else {
    std::erase_if(cached->second,
                  [](const Candidate& c) { return c.job->preempt_at || c.job->state != JobState::kRunning; });
  }
  const std::vector<Candidate>& all = cached->second;
  // Counting before probing: a fit test costs a placement, a count costs nothing.
  uint64_t free = 0;
  for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
    if (job.spec.worker.types.Allows(AcceleratorTypeId(t))) free += cluster_.free_whole(AcceleratorTypeId(t));
  }
  const uint64_t need = Accelerators(job);
  const uint64_t shortfall = need > free ? need - free : 0;
  std::vector<int32_t> ceilings;  // distinct priorities: a handful
  for (const Candidate& c : all) {
    if (std::find(ceilings.begin(), ceilings.end(), c.job->spec.priority) == ceilings.end()) {
      ceilings.push_back(c.job->spec.priority);
    }
  }
  std::sort(ceilings.begin(), ceilings.end());

  std::vector<Job*> victims;
  for (int32_t ceiling : ceilings) {
    // One victim: the best few that could cover the shortfall alone.
    std::vector<const Candidate*> singles;
    for (const Candidate& c : all) {
      if (c.job->spec.priority <= ceiling && static_cast<uint64_t>(c.size) >= shortfall) singles.push_back(&c);
    }
    auto better = [](const Candidate* a, const Candidate* b) {
      return std::tie(a->not_borrowed, a->lost, a->job->spec.id) < std::tie(b->not_borrowed, b->lost, b->job->spec.id);
    };
    const size_t probes = std::min(singles.size(), kSingleProbes);
    std::partial_sort(singles.begin(), singles.begin() + static_cast<std::ptrdiff_t>(probes), singles.end(), better);
    for (size_t i = 0; i < probes && victims.empty(); ++i) {
      release(singles[i]->job);
      if (job_fits()) victims.push_back(singles[i]->job);
      restore(singles[i]->job);
    }
    if (!victims.empty()) break;
    // Several: borrowed first, largest first (bucketed by size: sizes are few), id order within.
    std::map<std::pair<bool, int64_t>, std::vector<Job*>> buckets;
    for (const Candidate& c : all) {
      if (c.job->spec.priority <= ceiling) buckets[{c.not_borrowed, -c.size}].push_back(c.job);
    }
    bool fits = false;
    uint64_t freed = 0;
    for (auto& [key, jobs] : buckets) {
      for (Job* v : jobs) {
        release(v);
        victims.push_back(v);
        freed += static_cast<uint64_t>(-key.second);
        if (freed >= shortfall && (fits = job_fits())) break;
      }
      if (fits) break;
    }
    if (fits) {
      for (size_t i = victims.size(), tries = 0; i-- > 0 && tries < kSparingProbes; ++tries) {
        restore(victims[i]);
        if (job_fits()) {
          victims.erase(victims.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          release(victims[i]);
        }
      }
      for (Job* v : victims) restore(v);
      break;
    }
    for (Job* v : victims) restore(v);
    victims.clear();
  }
  if (victims.empty()) return false;
  const TimeMs deadline = now + config_.preemption_grace;
  for (Job* v : victims) {
    v->preempt_at = deadline;
    preempting_.insert({deadline, v->spec.id});
    out.kills.push_back({v->spec.id, KillReason::kPreempted, deadline});
    job.waiting_for.push_back(v->spec.id);
  }
  job.reason = PendingReason::kPreempting;
  if (config_.preemption_grace > 0) return true;
  FinishPreemptions(now);
  job.waiting_for.clear();
  GangResult r = PlaceGang(cluster_, gang);
  JOULE_CHECK(r.placed());
  std::vector<WorkerPlacement> spares = TakeSpares(job.spec, r.workers);
  if (std::optional<uint32_t> limit = AdmitPower(job, r.workers, spares, OwedOneType(job))) {
    Started(now, job, std::move(r.workers), std::move(spares), *limit, out);
  }
  return true;
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
  pending_.erase(job.spec.id);
  IndexRunning(job);
  out.starts.push_back({job.spec.id, job.workers, limit, job.spares});
}

void Engine::IndexRunning(Job& job) {
  running_[job.spec.id] = &job;
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
