#include "sim/simulator.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <limits>

namespace joule::sim {
namespace {

constexpr TimeMs kNever = SimOptions::kRunToCompletion;

uint64_t WorkerMilli(const JobSpec& spec) { return static_cast<uint64_t>(spec.worker.TotalMilliGpu()); }

}  // namespace

Simulator::Simulator(const Fleet& fleet, std::vector<TenantSpec> tenants, SimOptions options)
    : fleet_(fleet), tenants_(std::move(tenants)), options_(options) {
  JOULE_CHECK(!tenants_.empty() && options_.tick > 0 && options_.sample_interval > 0);
}

SimResult Simulator::Run(const Workload& workload) {
  workload_ = &workload;
  engine_.emplace(fleet_, tenants_, options_.engine);
  const size_t types = fleet_.catalog().accelerators().size();
  result_ = SimResult{};
  result_.end = options_.end;
  result_.tick = options_.tick;
  for (const TenantSpec& t : tenants_) result_.tenant_names.push_back(t.name);
  for (const AcceleratorType& t : fleet_.catalog().accelerators()) result_.type_names.push_back(t.name);
  result_.capacity = fleet_.accelerator_count();
  tenant_milli_.assign(tenants_.size(), 0);
  tenant_w_.assign(tenants_.size(), 0.0);
  extra_w_ = 0;
  result_.pue = fleet_.campus().pue;
  result_.grid_connection_w = fleet_.campus().grid_connection_w;
  result_.liquid_heat_capture = fleet_.campus().liquid_heat_capture;
  result_.idle_it_w = static_cast<double>(fleet_.it_draw().idle_w);
  result_.tenant_energy_wh.assign(tenants_.size(), 0.0);
  if (!options_.grid_g_per_kwh.empty()) result_.carbon_g = 0.0;
  type_milli_.assign(types, 0);
  reserved_.assign(tenants_.size(), std::vector<uint64_t>(types, 0));
  held_ = reserved_;
  pending_asks_.assign(tenants_.size(), std::vector<std::multiset<uint64_t>>(types));
  short_since_.assign(tenants_.size(), std::vector<TimeMs>(types, kNever));
  breach_counted_.assign(tenants_.size(), std::vector<bool>(types, false));
  for (size_t u = 0; u < tenants_.size(); ++u) {
    for (const Reservation& r : tenants_[u].reserved) reserved_[u][r.type.value()] += uint64_t{r.accelerators} * 1000;
  }
  live_.assign(workload.jobs.size(), LiveJob{});
  result_.jobs.reserve(workload.jobs.size());
  index_.reserve(workload.jobs.size());
  for (uint32_t i = 0; i < workload.jobs.size(); ++i) {
    const WorkloadJob& w = workload.jobs[i];
    JOULE_CHECK(w.spec.tenant.value() < tenants_.size() && w.duration > 0);
    JOULE_CHECK(i == 0 || workload.jobs[i - 1].spec.submit_time <= w.spec.submit_time);
    JOULE_CHECK(index_.emplace(w.spec.id, i).second);
    result_.jobs.push_back(JobRecord{w.spec.id, w.spec.tenant,
                                     static_cast<uint32_t>(std::max<uint64_t>(Accelerators(w.spec), 1)),
                                     w.spec.submit_time, w.duration});
    live_[i].remaining = w.duration;
  }

  size_t next_job = 0;
  TimeMs next_sample = 0;
  std::vector<Event> events;
  while (true) {
    TimeMs first = kNever;
    if (next_job < workload.jobs.size()) first = workload.jobs[next_job].spec.submit_time;
    if (!timers_.empty()) first = std::min(first, timers_.front().at);
    const TimeMs at = first == kNever ? kNever : NextTick(first);
    if (at == kNever && options_.end == SimOptions::kRunToCompletion) {  // run to completion: stop when nothing is left
      TakeSample(next_sample);
      result_.end = next_sample;
      break;
    }
    while (next_sample <= options_.end && next_sample < at) {
      TakeSample(next_sample);
      next_sample += options_.sample_interval;
    }
    if (at > options_.end) break;
    events.clear();
    while (next_job < workload.jobs.size() && workload.jobs[next_job].spec.submit_time <= at) {
      Submit(static_cast<uint32_t>(next_job++), events);
    }
    while (!timers_.empty() && timers_.front().at <= at) {
      std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
      const Timer timer = timers_.back();
      timers_.pop_back();
      LiveJob& run = live_[timer.job];
      if (timer.kind == TimerKind::kFinish && timer.generation == run.generation && run.holding && !run.stopping) {
        JobRecord& record = result_.jobs[timer.job];
        record.end = timer.at;
        record.outcome = Outcome::kCompleted;
        events.push_back(JobFinished{record.id, true});
        Release(timer.job);
      } else if (timer.kind == TimerKind::kWake && run.stopping && timer.generation == run.generation) {
        // The SIGKILL deadline: the engine frees the accelerators and requeues the job.
        Release(timer.job);
        result_.jobs[timer.job].outcome = Outcome::kQueued;
        PendingShape(timer.job, +1);
      }
    }
    result_.events += events.size();
    result_.steps++;
    Apply(at, engine_->Step(at, events));
    CheckReservations(at);
  }
  return std::move(result_);
}

void Simulator::Submit(uint32_t job, std::vector<Event>& events) {
  JobSpec spec = workload_->jobs[job].spec;
  if (options_.oracle_estimates) spec.runtime_estimate = workload_->jobs[job].duration;
  PendingShape(job, +1);
  events.push_back(JobSubmitted{std::move(spec)});
}

// A reservation is breached when its tenant holds less than it reserved of a type, one of the
// tenant's queued jobs fits in the shortfall, and that lasts longer than the preemption grace
// period plus two scheduling cycles (victims leaving, then the start). Counted once per episode.
void Simulator::CheckReservations(TimeMs now) {
  const TimeMs allowed = options_.engine.preemption_grace + 2 * options_.tick;
  for (size_t u = 0; u < reserved_.size(); ++u) {
    for (size_t t = 0; t < reserved_[u].size(); ++t) {
      const uint64_t reserved = reserved_[u][t], held = held_[u][t];
      const std::multiset<uint64_t>& asks = pending_asks_[u][t];
      const bool owed = held < reserved && !asks.empty() && *asks.begin() <= reserved - held;
      if (!owed) {
        short_since_[u][t] = kNever;
        breach_counted_[u][t] = false;
        continue;
      }
      if (short_since_[u][t] == kNever) {
        short_since_[u][t] = now;
        // Steps follow events only: make sure one comes once the allowance has run out.
        Schedule(now + allowed + options_.tick, TimerKind::kCheck, 0);
      }
      if (now - short_since_[u][t] > allowed && !breach_counted_[u][t]) {
        result_.reservation_breaches++;
        breach_counted_[u][t] = true;
      }
    }
  }
}

void Simulator::Apply(TimeMs now, const Decisions& decisions) {
  for (const Rejection& r : decisions.rejections) {
    const uint32_t job = index_.at(r.job);
    result_.jobs[job].outcome = Outcome::kRejected;
    result_.rejected.push_back({job, r.reason});
    PendingShape(job, -1);
  }
  // Starts first: one pass may start a job and then pick it as a preemption victim, never the
  // other way round (a job requeued by a kill waits for the next pass).
  for (const StartJob& s : decisions.starts) Start(now, s);
  for (const KillJob& k : decisions.kills) Kill(now, k);
}

void Simulator::Start(TimeMs now, const StartJob& start) {
  const uint32_t job = index_.at(start.job);
  const JobSpec& spec = workload_->jobs[job].spec;
  JobRecord& record = result_.jobs[job];
  LiveJob& run = live_[job];
  JOULE_CHECK(!run.holding);  // the engine starts only queued jobs
  PendingShape(job, -1);
  if (!record.first_start) record.first_start = now;
  record.outcome = Outcome::kRunning;
  run.started = now;
  run.holding = true;
  run.stopping = false;
  run.generation++;
  run.held.clear();
  run.extra_w = run.idle_w = 0;
  const WorkClass work = workload_->jobs[job].work;
  for (const WorkerPlacement& w : start.workers) {
    const std::optional<AcceleratorTypeId> type = fleet_.node_type(w.node).accelerator;
    if (!type) continue;
    const uint64_t milli = WorkerMilli(spec);
    if (!run.held.empty() && run.held.back().first == type->value()) {
      run.held.back().second += milli;
    } else {
      run.held.emplace_back(type->value(), milli);
    }
    const uint32_t devices = static_cast<uint32_t>(w.devices.size());
    run.extra_w += WorkerExtraWatts(fleet_, w.node, devices, spec.worker.milli_per_gpu, work);
    run.idle_w += WorkerIdleWatts(fleet_, w.node, devices, spec.worker.milli_per_gpu);
  }
  extra_w_ += run.extra_w;
  tenant_w_[spec.tenant.value()] += run.extra_w + run.idle_w;
  for (auto [type, milli] : run.held) {
    type_milli_[type] += milli;
    tenant_milli_[spec.tenant.value()] += milli;
    held_[spec.tenant.value()][type] += milli;
    allocated_milli_ += milli;
  }
  Schedule(now + run.remaining, TimerKind::kFinish, job);
  // The engine kills at the time limit only when it steps then: make sure it does.
  if (spec.time_limit && *spec.time_limit < run.remaining) Schedule(now + *spec.time_limit, TimerKind::kWake, job);
}

void Simulator::Kill(TimeMs now, const KillJob& kill) {
  const uint32_t job = index_.at(kill.job);
  const JobSpec& spec = workload_->jobs[job].spec;
  LiveJob& run = live_[job];
  JobRecord& record = result_.jobs[job];
  JOULE_CHECK(run.holding);  // the engine kills only running jobs
  run.generation++;
  if (kill.reason == KillReason::kPreempted) {
    const TimeMs progress = now - run.started;
    const TimeMs saved =
        spec.checkpoint_interval ? progress / *spec.checkpoint_interval * *spec.checkpoint_interval : 0;
    run.remaining -= saved;
    record.preemptions++;
    result_.preemptions++;
    uint64_t milli = 0;
    for (auto [type, m] : run.held) milli += m;
    result_.lost_accelerator_hours +=
        static_cast<double>(progress - saved) * static_cast<double>(milli) / 1000.0 / static_cast<double>(kMsPerHour);
    run.stopping = true;
    stopping_milli_ += milli;
    Schedule(kill.deadline, TimerKind::kWake, job);
    return;
  }
  // The twin injects no cancellations or node failures yet: the only other kill is the time limit,
  // and the job ends now.
  JOULE_CHECK(kill.reason == KillReason::kTimeLimit);
  record.end = now;
  record.outcome = Outcome::kTimeLimit;
  Release(job);
}

void Simulator::Release(uint32_t job) {
  LiveJob& run = live_[job];
  const uint32_t tenant = workload_->jobs[job].spec.tenant.value();
  uint64_t total = 0;
  for (auto [type, milli] : run.held) {
    type_milli_[type] -= milli;
    tenant_milli_[tenant] -= milli;
    held_[tenant][type] -= milli;
    allocated_milli_ -= milli;
    total += milli;
  }
  if (run.stopping) stopping_milli_ -= total;
  extra_w_ -= run.extra_w;
  tenant_w_[tenant] -= run.extra_w + run.idle_w;
  run.extra_w = run.idle_w = 0;
  run.held.clear();
  run.held.shrink_to_fit();
  run.holding = false;
  run.stopping = false;
}

void Simulator::Schedule(TimeMs at, TimerKind kind, uint32_t job) {
  timers_.push_back(Timer{at, seq_++, kind, job, live_[job].generation});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<>());
}

// Queued work: whole-accelerator shapes (the fragmentation measure), asks against reservations
// (breaches: a reservation is owed to jobs bound to its type; jobs open to several types run on
// whatever is free, and jobs with dependencies are owed nothing until they are met), and
// pending_milli_.
void Simulator::PendingShape(uint32_t job, int delta) {
  const JobSpec& spec = workload_->jobs[job].spec;
  const uint64_t milli = WorkerMilli(spec) * spec.workers;
  pending_milli_ = delta > 0 ? pending_milli_ + milli : pending_milli_ - milli;
  if (spec.after_ok.empty() && milli > 0 && std::popcount(spec.worker.types.mask) == 1) {
    const uint32_t u = spec.tenant.value();
    for (uint32_t t = 0; t < reserved_[u].size(); ++t) {
      if (reserved_[u][t] == 0 || !spec.worker.types.Allows(AcceleratorTypeId(t))) continue;
      if (delta > 0) {
        pending_asks_[u][t].insert(milli);
      } else {
        pending_asks_[u][t].erase(pending_asks_[u][t].find(milli));
      }
    }
  }
  if (spec.worker.gpus == 0 || spec.worker.Shared()) return;
  auto key = std::make_pair(spec.worker.types.mask, spec.worker.gpus);
  if (delta > 0) {
    pending_shapes_[key]++;
  } else if (--pending_shapes_[key] == 0) {
    pending_shapes_.erase(key);
  }
}

// Free whole accelerators that no queued job could use: per type, those on nodes with fewer free
// than the smallest per-worker ask of any queued job allowed on that type. Types no queued job
// allows are not counted (idle by demand, not fragmented). Partly used shared devices are not
// counted.
uint64_t Simulator::FragmentedMilli() const {
  const ClusterState& cluster = engine_->cluster();
  uint64_t fragmented = 0;
  for (uint32_t t = 0; t < type_milli_.size(); ++t) {
    uint32_t smallest = std::numeric_limits<uint32_t>::max();
    for (const auto& [key, count] : pending_shapes_) {
      if (TypeSet{key.first}.Allows(AcceleratorTypeId(t))) smallest = std::min(smallest, key.second);
    }
    if (smallest == std::numeric_limits<uint32_t>::max()) continue;
    for (auto [free, node] : cluster.nodes_by_free(AcceleratorTypeId(t))) {
      if (free >= smallest) break;
      fragmented += uint64_t{free} * 1000;
    }
  }
  return fragmented;
}

void Simulator::TakeSample(TimeMs at) {
  Sample s;
  s.at = at;
  s.pending_jobs = static_cast<uint32_t>(engine_->pending_count());
  s.running_jobs = static_cast<uint32_t>(engine_->running_count());
  s.pending_milli = pending_milli_;
  s.allocated_milli = allocated_milli_;
  s.busy_milli = allocated_milli_ - stopping_milli_;
  s.fragmented_milli = FragmentedMilli();
  s.tenant_milli = tenant_milli_;
  s.type_milli = type_milli_;
  s.it_w = result_.idle_it_w + extra_w_;
  // Energy: this sample's power until the next one (or the horizon).
  const TimeMs dt = options_.end == SimOptions::kRunToCompletion
                        ? options_.sample_interval
                        : std::max<TimeMs>(0, std::min(options_.sample_interval, options_.end - at));
  const double hours = static_cast<double>(dt) / static_cast<double>(kMsPerHour);
  result_.it_energy_wh += s.it_w * hours;
  result_.peak_it_w = std::max(result_.peak_it_w, s.it_w);
  for (size_t t = 0; t < tenant_w_.size(); ++t) result_.tenant_energy_wh[t] += tenant_w_[t] * hours;
  if (result_.carbon_g) {
    const size_t hour = static_cast<size_t>(at / kMsPerHour);
    JOULE_CHECK(hour < options_.grid_g_per_kwh.size());
    *result_.carbon_g += s.it_w * result_.pue * hours / 1000.0 * options_.grid_g_per_kwh[hour];
  }
  result_.samples.push_back(std::move(s));
}

}  // namespace joule::sim
