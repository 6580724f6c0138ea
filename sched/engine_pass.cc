// The scheduling pass's stages: admit, order, place, reserve (sched/engine.h describes them).
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
// ---- The pass ----

std::pair<std::pair<int32_t, uint32_t>, Engine::QueueEntry> Engine::QueuePlace(Job& job) const {
  const JobSpec& s = job.spec;
  switch (config_.order) {
    case QueueOrder::kFifo:
      return {{0, 0}, {0, s.submit_time, s.id, &job}};
    case QueueOrder::kShortestFirst:
      // Jobs with neither an estimate nor a time limit sort last under shortest-first.
      return {{0, 0},
              {s.runtime_estimate.value_or(s.time_limit.value_or(std::numeric_limits<TimeMs>::max())), s.submit_time,
               s.id, &job}};
    case QueueOrder::kPriorityFairShareAge:
      break;
  }
  return {{-s.priority, s.tenant.value()}, {0, s.submit_time, s.id, &job}};
}

void Engine::AddPending(Job& job) {
  pending_[job.spec.id] = &job;
  auto [bucket, entry] = QueuePlace(job);
  queue_[bucket].insert(entry);
}

void Engine::RemovePending(Job& job) {
  if (!pending_.erase(job.spec.id)) return;
  auto [bucket, entry] = QueuePlace(job);
  auto it = queue_.find(bucket);
  it->second.erase(entry);
  if (it->second.empty()) queue_.erase(it);
}

// Priority (high first), then fair share (the tenant's decayed usage / weight, low first), then
// submit time, then id: each (priority, tenant) bucket is in (submit, id) order already, so the
// buckets of one priority are merged by their heads.
std::vector<Engine::Job*> Engine::OrderedPending() {
  std::vector<Job*> order;
  order.reserve(pending_.size());
  pass_shares_ = Shares();
  using It = std::set<QueueEntry>::const_iterator;
  struct Head {
    It at, end;
    double share;
  };
  std::vector<Head> heads;
  for (auto level = queue_.begin(); level != queue_.end();) {
    heads.clear();
    const int32_t priority = level->first.first;
    for (; level != queue_.end() && level->first.first == priority; ++level) {
      const double share = config_.order == QueueOrder::kPriorityFairShareAge ? pass_shares_[level->first.second] : 0;
      heads.push_back({level->second.begin(), level->second.end(), share});
    }
    if (heads.size() == 1) {
      for (It it = heads[0].at; it != heads[0].end; ++it) order.push_back(std::get<Job*>(*it));
      continue;
    }
    while (!heads.empty()) {
      size_t best = 0;
      for (size_t i = 1; i < heads.size(); ++i) {
        const auto& [e1, t1, id1, j1] = *heads[i].at;
        const auto& [e0, t0, id0, j0] = *heads[best].at;
        if (std::tie(heads[i].share, t1, id1) < std::tie(heads[best].share, t0, id0)) best = i;
      }
      order.push_back(std::get<Job*>(*heads[best].at));
      if (++heads[best].at == heads[best].end) heads.erase(heads.begin() + static_cast<std::ptrdiff_t>(best));
    }
  }
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

bool Engine::BackfillAllowed(TimeMs now, const Job& job, bool owed, std::vector<BackfillHold>& holds) {
  const TimeMs end = ExpectedEnd(now, job.spec);
  const uint64_t need = Accelerators(job);
  // Reserved capacity belongs to its owner: another tenant's hold does not keep it waiting.
  for (const BackfillHold& r : holds) {
    if (!Overlaps(r.types, job.spec.worker.types)) continue;
    if (owed && r.tenant != job.spec.tenant) continue;
    if (end <= r.start) {
      // Let through for ending before the hold's start: until it no longer would. A job held back
      // then takes no hold, which may let later jobs through: the pass runs again at that time.
      pass_wake_ = std::min(pass_wake_, now + (r.start - end) + 1);
      continue;
    }
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
  pass_wake_ = kNever;
  // Shapes that found no room this pass: the state only fills up during a pass, so an identical
  // request would fail again.
  std::set<std::tuple<uint32_t, uint32_t, MilliGpu, Millicores, MiB, uint64_t, int, uint64_t, uint64_t>> failed;
  for (Job* job : OrderedPending()) {
    if (!DependenciesMet(*job)) continue;
    if (now < job->eligible_at) {
      job->reason = PendingReason::kBeginTime;
      pass_wake_ = std::min(pass_wake_, job->eligible_at);
      continue;
    }
    // Decided once: a flexible job waits for the window it chose, then queues like any other;
    // should it not start then (its tenant at its quota, the campus full), waiting for another
    // window would risk its deadline.
    if (job->spec.flexible && !job->window) job->window = LowCarbonStart(now, *job).value_or(now);
    if (job->window && now < *job->window) {
      job->reason = PendingReason::kLowCarbonWait;
      pass_wake_ = std::min(pass_wake_, *job->window);
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

}  // namespace joule
