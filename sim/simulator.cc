#include "sim/simulator.h"

#include "power/facility.h"
#include "power/heat.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <span>

namespace joule::sim {
namespace {

constexpr TimeMs kNever = SimOptions::kRunToCompletion;

uint64_t WorkerMilli(const JobSpec& spec) { return static_cast<uint64_t>(spec.worker.TotalMilliGpu()); }

constexpr int64_t kMilliwattsOfSlack = 1000;  // the engine rounds per job and budget, the twin per worker

}  // namespace

Simulator::Simulator(const Fleet& fleet, std::vector<TenantSpec> tenants, SimOptions options)
    : fleet_(fleet), tenants_(std::move(tenants)), options_(std::move(options)) {
  JOULE_CHECK(!tenants_.empty() && options_.tick > 0 && options_.sample_interval > 0);
  JOULE_CHECK(!options_.failures || options_.end != SimOptions::kRunToCompletion);  // failures never stop
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
  for (uint32_t h = 0; h < fleet_.halls().size(); ++h) {
    result_.hall_names.push_back(fleet_.halls()[h].name);
    result_.hall_rated_w.push_back(static_cast<double>(fleet_.hall_draw(HallId(h)).rated_w));
  }
  result_.capacity = fleet_.accelerator_count();
  tenant_milli_.assign(tenants_.size(), 0);
  tenant_w_.assign(tenants_.size(), 0.0);
  extra_w_ = 0;
  result_.pue = fleet_.campus().pue;  // until energy is measured
  result_.job_pue = fleet_.campus().pue;
  result_.design_pue = DesignPue(fleet_, static_cast<double>(fleet_.it_draw().rated_w));
  result_.grid_connection_w = fleet_.campus().grid_connection_w;
  result_.liquid_heat_capture = fleet_.campus().liquid_heat_capture;
  result_.idle_it_w = static_cast<double>(fleet_.it_draw().idle_w);
  result_.tenant_energy_wh.assign(tenants_.size(), 0.0);
  result_.hall_energy_wh.assign(fleet_.halls().size(), 0.0);
  result_.tenant_peak_w.assign(tenants_.size(), 0.0);
  result_.tenant_heat_reused_wh.assign(tenants_.size(), 0.0);
  if (!options_.grid_g_per_kwh.empty()) result_.carbon_g = 0.0;
  if (!options_.price_eur_per_mwh.empty()) result_.cost_eur = 0.0;
  if (const auto& network = fleet_.campus().heat_network) {
    result_.heat_network = true;
    result_.heat_pump_cop = HeatPumpCop(network->supply_temperature_c, fleet_.campus().supply_temperature_c);
  }
  type_milli_.assign(types, 0);
  const std::array<size_t, 4> level_sizes = {1, fleet_.halls().size(), fleet_.rows().size(), fleet_.racks().size()};
  for (size_t l = 0; l < level_sizes.size(); ++l) {
    level_mw_[l].assign(level_sizes[l], 0);
    budget_of_[l].assign(level_sizes[l], std::nullopt);
  }
  touched_racks_.clear();
  low_carbon_waiting_.clear();
  next_hour_wake_ = 0;
  for (PowerLevel level : {PowerLevel::kCampus, PowerLevel::kHall, PowerLevel::kRow, PowerLevel::kRack}) {
    result_.budget_levels.emplace_back(PowerLevelName(level));
  }
  result_.budgets_by_level.assign(4, 0);
  result_.violations_by_level.assign(4, 0);
  for (const PowerGovernor::Budget& b : engine_->power().budgets()) {
    budget_of_[static_cast<size_t>(b.level)][b.index] = static_cast<uint32_t>(&b - engine_->power().budgets().data());
    result_.budgets_by_level[static_cast<size_t>(b.level)]++;
    if (b.level == PowerLevel::kCampus) result_.campus_budget_w = static_cast<double>(b.budget_w);
  }
  reserved_.assign(tenants_.size(), std::vector<uint64_t>(types, 0));
  held_ = reserved_;
  pending_asks_.assign(tenants_.size(), std::vector<std::multiset<uint64_t>>(types));
  short_since_.assign(tenants_.size(), std::vector<TimeMs>(types, kNever));
  breach_counted_.assign(tenants_.size(), std::vector<bool>(types, false));
  for (size_t u = 0; u < tenants_.size(); ++u) {
    for (const Reservation& r : tenants_[u].reserved) reserved_[u][r.type.value()] += uint64_t{r.accelerators} * 1000;
  }
  injector_.reset();
  health_actions_.clear();
  outage_.assign(fleet_.nodes().size(), 0);
  out_accelerators_ = 0;
  checkpoint_stall_ = 0;
  if (options_.failures) {
    injector_.emplace(fleet_, *options_.failures, options_.failure_seed);
    checkpoint_stall_ = std::llround(options_.failures->checkpoint_stall_s * 1000.0);
    result_.failures.enabled = true;
    for (const DomainFailureSpec& d : options_.failures->domains) result_.failures.domain_names.push_back(d.name);
    result_.failures.domain_failures.assign(options_.failures->domains.size(), 0);
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
    result_.jobs.back().flexible = w.spec.flexible;
    result_.jobs.back().deadline = w.spec.deadline;
  }

  size_t next_job = 0;
  TimeMs next_sample = 0;
  std::vector<Event> events;
  // The grid series as the engine's forecast (a perfect one: day-ahead forecasts of a nuclear-
  // and hydro-heavy grid are close), given with the first step.
  const std::vector<double>& signal = options_.flexible_by_price ? options_.price_eur_per_mwh : options_.grid_g_per_kwh;
  bool forecast_sent = signal.empty();
  while (true) {
    TimeMs first = kNever;
    if (next_job < workload.jobs.size()) first = workload.jobs[next_job].spec.submit_time;
    if (!timers_.empty()) first = std::min(first, timers_.front().at);
    // Failures go on for ever: they set the next step, not whether there is work left.
    const bool work_left = first != kNever;
    if (injector_) {
      first = std::min(first, injector_->peek().at);
      if (auto m = injector_->peek_maintenance()) first = std::min(first, m->at);
    }
    const TimeMs at = first == kNever ? kNever : NextTick(first);
    if (!work_left && options_.end == SimOptions::kRunToCompletion) {  // run to completion: stop when nothing is left
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
    if (!forecast_sent) {
      events.push_back(GridForecast{0, kMsPerHour, signal});
      forecast_sent = true;
    }
    while (next_job < workload.jobs.size() && workload.jobs[next_job].spec.submit_time <= at) {
      Submit(static_cast<uint32_t>(next_job++), events);
    }
    while (!timers_.empty() && timers_.front().at <= at) {
      std::pop_heap(timers_.begin(), timers_.end(), std::greater<>());
      const Timer timer = timers_.back();
      timers_.pop_back();
      if (timer.kind == TimerKind::kHealth) {
        HealthAction& a = health_actions_[timer.job];
        if (a.outage == outage_[a.node.value()]) {
          events.push_back(NodeHealthChange{a.node, a.to, Actor::kPolicy, std::move(a.reason), std::nullopt});
        }
        continue;
      }
      LiveJob& run = live_[timer.job];
      if (timer.kind == TimerKind::kFinish && timer.generation == run.generation && run.holding && !run.stopping) {
        JobRecord& record = result_.jobs[timer.job];
        record.end = timer.at;
        record.outcome = Outcome::kCompleted;
        events.push_back(JobFinished{record.id, true});
        Progress(timer.at, timer.job);
        Release(timer.job);
      } else if (timer.kind == TimerKind::kWake && run.stopping && timer.generation == run.generation) {
        // The SIGKILL deadline: the engine frees the accelerators and requeues the job.
        Progress(timer.at, timer.job);
        Release(timer.job);
        result_.jobs[timer.job].outcome = Outcome::kQueued;
        PendingShape(timer.job, +1);
      }
    }
    if (injector_) Inject(at, events);
    // What the twin's workers did comes before the campus's health changes: a job that already
    // ended (or crashed) here must not be moved onto its spares by a node failure of the same step.
    std::stable_partition(events.begin(), events.end(),
                          [](const Event& e) { return std::holds_alternative<JobFinished>(e); });
    result_.events += events.size();
    result_.steps++;
    Apply(at, engine_->Step(at, events));
    CheckReservations(at);
    CheckBudgets();
  }
  // Work done: completed jobs in full, the others up to the horizon (or their last checkpoint).
  const TimeMs horizon = result_.end;
  for (uint32_t i = 0; i < live_.size(); ++i) {
    const JobRecord& record = result_.jobs[i];
    double done = 0;
    if (record.outcome == Outcome::kCompleted) {
      done = static_cast<double>(record.duration);
      result_.completed_accelerator_hours += done * static_cast<double>(record.accelerators) / kMsPerHour;
    } else if (record.outcome != Outcome::kRejected) {
      done = static_cast<double>(record.duration - live_[i].remaining);
      if (live_[i].holding && !live_[i].stopping) {
        done += static_cast<double>(WorkDone(i, Progress(std::max(horizon, live_[i].started), i)));
      }
    }
    result_.jobs[i].work_done = static_cast<TimeMs>(done);
    result_.useful_accelerator_hours += done * static_cast<double>(record.accelerators) / kMsPerHour;
  }
  if (result_.it_energy_wh > 0) result_.pue = result_.facility_energy_wh / result_.it_energy_wh;
  return std::move(result_);
}

// A budget is violated when the twin's own sum of what runs under it, plus the idle draw of all
// it feeds, exceeds it by more than the rounding slack. Checked after every step, where draw grew:
// draw only grows when decisions start jobs or raise limits, and the twin notes the racks then.
void Simulator::CheckBudgets() {
  std::span<const PowerGovernor::Budget> budgets = engine_->power().budgets();
  if (budgets.empty()) return;
  std::sort(touched_racks_.begin(), touched_racks_.end());
  touched_racks_.erase(std::unique(touched_racks_.begin(), touched_racks_.end()), touched_racks_.end());
  auto check = [&](const PowerGovernor::Budget& b) {
    const int64_t mw = level_mw_[static_cast<size_t>(b.level)][b.index];
    const int64_t over = mw + b.idle_w * 1000 - b.budget_w * 1000;
    if (over > kMilliwattsOfSlack) {
      result_.violations_by_level[static_cast<size_t>(b.level)]++;
      result_.max_violation_w = std::max(result_.max_violation_w, static_cast<double>(over) / 1000.0);
    }
  };
  // The racks touched, and their rows and halls (racks are numbered depth-first, so a sorted list
  // of racks gives rows and halls in order too: consecutive duplicates are skipped).
  std::optional<uint32_t> last_row, last_hall;
  if (!touched_racks_.empty() && budget_of_[0][0]) check(budgets[*budget_of_[0][0]]);
  for (uint32_t rack : touched_racks_) {
    if (auto b = budget_of_[3][rack]) check(budgets[*b]);
    const uint32_t row = fleet_.RowOf(RackId(rack)).value();
    if (row != last_row) {
      last_row = row;
      if (auto b = budget_of_[2][row]) check(budgets[*b]);
      const uint32_t hall = fleet_.row(RowId(row)).hall.value();
      if (hall != last_hall) {
        last_hall = hall;
        if (auto b = budget_of_[1][hall]) check(budgets[*b]);
      }
    }
  }
  touched_racks_.clear();
}

void Simulator::Submit(uint32_t job, std::vector<Event>& events) {
  JobSpec spec = workload_->jobs[job].spec;
  if (options_.oracle_estimates) spec.runtime_estimate = workload_->jobs[job].duration;
  if (!options_.shift_flexible) spec.flexible = false;
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
  // Jobs waiting for low-carbon hours are looked at again when the next hour begins: the engine
  // steps then.
  for (const PendingChange& p : decisions.pending) {
    if (p.reason == PendingReason::kLowCarbonWait) {
      low_carbon_waiting_.insert(p.job);
    } else {
      low_carbon_waiting_.erase(p.job);
    }
  }
  for (const StartJob& s : decisions.starts) low_carbon_waiting_.erase(s.job);
  if (!low_carbon_waiting_.empty() && next_hour_wake_ <= now) {
    next_hour_wake_ = (now / kMsPerHour + 1) * kMsPerHour;
    Schedule(next_hour_wake_, TimerKind::kCheck, 0);
  }
  // Kills decided from events (node failures, time limits) come before the pass's starts — a job a
  // failure requeued may start again in the same step; preemptions come from the pass, after.
  ApplyRestarts(now, decisions);
  for (const KillJob& k : decisions.kills) {
    if (k.reason != KillReason::kPreempted) Kill(now, k);
  }
  ApplyFailureDecisions(now, decisions);
  for (const StartJob& s : decisions.starts) Start(now, s);
  for (const SparesAdded& a : decisions.spares_added) AddSpares(index_.at(a.job), a.spares);
  for (const PowerLimit& p : decisions.power_limits) SetLimit(now, index_.at(p.job), p.permille);
  result_.power_limit_changes += decisions.power_limits.size();
  for (const KillJob& k : decisions.kills) {
    if (k.reason == KillReason::kPreempted) Kill(now, k);
  }
}

void Simulator::Start(TimeMs now, const StartJob& start) {
  const uint32_t job = index_.at(start.job);
  JobRecord& record = result_.jobs[job];
  JOULE_CHECK(!live_[job].holding);  // the engine starts only queued jobs
  PendingShape(job, -1);
  live_[job].restarted = record.first_start.has_value();
  if (!record.first_start) record.first_start = now;
  record.outcome = Outcome::kRunning;
  Occupy(now, job, start.workers, start.spares, start.power_limit_permille);
}

void Simulator::Occupy(TimeMs now, uint32_t job, const std::vector<WorkerPlacement>& workers,
                       const std::vector<WorkerPlacement>& spares, uint32_t limit) {
  const JobSpec& spec = workload_->jobs[job].spec;
  LiveJob& run = live_[job];
  if (run.interrupted_at) {
    result_.failures.recover_s.push_back(static_cast<double>(now + RestartOverhead(job) - *run.interrupted_at) /
                                         1000.0);
    run.interrupted_at.reset();
  }
  run.started = now;
  run.holding = true;
  run.stopping = false;
  run.generation++;
  run.held.clear();
  run.nodes.clear();
  run.extra_w = run.idle_w = 0;
  run.limit = limit;
  run.speed = Throughput(fleet_.campus().power_model, spec.work, run.limit);
  run.segment_start = now;
  run.done = 0;
  for (const WorkerPlacement& w : workers) {
    run.nodes.emplace_back(w.node, static_cast<uint32_t>(w.devices.size()));
    Hold(job, w);
  }
  // Spares hold their accelerators idle: in the tenant's share, not in the job's draw.
  for (const WorkerPlacement& w : spares) Hold(job, w);
  Draw(job, +1);
  run.need = RunNeed(job);
  Schedule(now + static_cast<TimeMs>(std::ceil(static_cast<double>(run.need) / run.speed)), TimerKind::kFinish, job);
  // The engine kills at the time limit only when it steps then: make sure it does (after a restart
  // on spares the job's limit still counts from its start; an extra wake does no harm).
  if (spec.time_limit) Schedule(now + *spec.time_limit, TimerKind::kWake, job);
}

// The job now holds the place: its accelerators in the allocation figures, its idle draw in its
// tenant's.
void Simulator::Hold(uint32_t job, const WorkerPlacement& place) {
  LiveJob& run = live_[job];
  const JobSpec& spec = workload_->jobs[job].spec;
  const uint32_t tenant = spec.tenant.value();
  const double idle_w =
      WorkerIdleWatts(fleet_, place.node, static_cast<uint32_t>(place.devices.size()), spec.worker.milli_per_gpu);
  run.idle_w += idle_w;
  tenant_w_[tenant] += idle_w;
  const std::optional<AcceleratorTypeId> type = fleet_.node_type(place.node).accelerator;
  if (!type) return;
  const uint64_t milli = WorkerMilli(spec);
  if (!run.held.empty() && run.held.back().first == type->value()) {
    run.held.back().second += milli;
  } else {
    run.held.emplace_back(type->value(), milli);
  }
  Book(tenant, type->value(), milli, +1);
}

// Milli-accelerators of `type` the tenant holds, in every allocation figure.
void Simulator::Book(uint32_t tenant, uint32_t type, uint64_t milli, int sign) {
  for (uint64_t* x : {&type_milli_[type], &tenant_milli_[tenant], &held_[tenant][type], &allocated_milli_}) {
    *x = sign > 0 ? *x + milli : *x - milli;
  }
}

void Simulator::AddSpares(uint32_t job, const std::vector<WorkerPlacement>& spares) {
  JOULE_CHECK(live_[job].holding);
  for (const WorkerPlacement& w : spares) Hold(job, w);
}

uint64_t Simulator::HeldMilli(uint32_t job) const {
  uint64_t milli = 0;
  for (auto [type, m] : live_[job].held) milli += m;
  return milli;
}

double Simulator::SeriesHours(const std::vector<double>& g, TimeMs from, TimeMs to) {
  double sum = 0;
  for (TimeMs t = from; t < to;) {
    const size_t hour = static_cast<size_t>(t / kMsPerHour);
    const TimeMs next = std::min(to, static_cast<TimeMs>(hour + 1) * kMsPerHour);
    sum += g[std::min(hour, g.size() - 1)] * static_cast<double>(next - t) / static_cast<double>(kMsPerHour);
    t = next;
  }
  return sum;
}

double Simulator::Progress(TimeMs now, uint32_t job) {
  LiveJob& run = live_[job];
  const double dt = static_cast<double>(now - run.segment_start);
  JobRecord& record = result_.jobs[job];
  const double watts = run.extra_w + run.idle_w;
  record.energy_wh += watts * dt / static_cast<double>(kMsPerHour);
  if (!options_.grid_g_per_kwh.empty() && now > run.segment_start) {
    record.carbon_g +=
        watts * fleet_.campus().pue / 1000.0 * SeriesHours(options_.grid_g_per_kwh, run.segment_start, now);
  }
  if (!options_.price_eur_per_mwh.empty() && now > run.segment_start) {
    record.cost_eur +=
        watts * fleet_.campus().pue / 1e6 * SeriesHours(options_.price_eur_per_mwh, run.segment_start, now);
  }
  run.done += dt * run.speed;
  result_.capping_lost_accelerator_hours +=
      dt * (1.0 - run.speed) * static_cast<double>(HeldMilli(job)) / 1000.0 / static_cast<double>(kMsPerHour);
  run.segment_start = now;
  return run.done;
}

// A new limit: the work so far is kept, the rest goes at the new speed.
void Simulator::SetLimit(TimeMs now, uint32_t job, uint32_t limit) {
  LiveJob& run = live_[job];
  JOULE_CHECK(run.holding);  // the engine limits only running jobs
  if (run.stopping) {        // a preempted job keeps running to its deadline, at the new limit
    Progress(now, job);
    Draw(job, -1);
    run.limit = limit;
    Draw(job, +1);
    return;
  }
  const double done = Progress(now, job);
  Draw(job, -1);
  run.limit = limit;
  run.speed = Throughput(fleet_.campus().power_model, workload_->jobs[job].spec.work, limit);
  Draw(job, +1);
  run.generation++;
  const double left = std::max(0.0, static_cast<double>(run.need) - done);
  Schedule(now + static_cast<TimeMs>(std::ceil(left / run.speed)), TimerKind::kFinish, job);
}

void Simulator::Draw(uint32_t job, int sign) {
  LiveJob& run = live_[job];
  const JobSpec& spec = workload_->jobs[job].spec;
  double total = 0;
  for (auto [node, devices] : run.nodes) {
    const double w = WorkerExtraWatts(fleet_, node, devices, spec.worker.milli_per_gpu, spec.work, run.limit);
    const int64_t mw = sign * std::llround(w * 1000.0);
    const RackId rack = fleet_.node(node).rack;
    const RowId row = fleet_.RowOf(rack);
    level_mw_[0][0] += mw;
    level_mw_[1][fleet_.row(row).hall.value()] += mw;
    level_mw_[2][row.value()] += mw;
    level_mw_[3][rack.value()] += mw;
    if (sign > 0) touched_racks_.push_back(rack.value());
    total += w;
  }
  run.extra_w = sign > 0 ? total : 0;
  if (sign > 0) result_.jobs[job].peak_w = std::max(result_.jobs[job].peak_w, run.extra_w + run.idle_w);
  extra_w_ += sign * total;
  tenant_w_[spec.tenant.value()] += sign * total;
}

void Simulator::Kill(TimeMs now, const KillJob& kill) {
  const uint32_t job = index_.at(kill.job);
  LiveJob& run = live_[job];
  JobRecord& record = result_.jobs[job];
  JOULE_CHECK(run.holding);  // the engine kills only running jobs
  run.generation++;
  if (kill.reason == KillReason::kPreempted) {
    result_.lost_accelerator_hours += KeepCheckpoint(now, job);
    record.preemptions++;
    result_.preemptions++;
    run.stopping = true;
    stopping_milli_ += HeldMilli(job);
    Schedule(kill.deadline, TimerKind::kWake, job);
    return;
  }
  if (kill.reason == KillReason::kNodeDown) {
    Interrupted(now, job);
    return;
  }
  // The twin cancels nothing: the only other kill is the time limit, and the job ends now.
  JOULE_CHECK(kill.reason == KillReason::kTimeLimit);
  record.end = now;
  record.outcome = Outcome::kTimeLimit;
  Progress(now, job);
  Release(job);
}

void Simulator::Release(uint32_t job) {
  LiveJob& run = live_[job];
  const uint32_t tenant = workload_->jobs[job].spec.tenant.value();
  uint64_t total = 0;
  for (auto [type, milli] : run.held) {
    Book(tenant, type, milli, -1);
    total += milli;
  }
  if (run.stopping) stopping_milli_ -= total;
  Draw(job, -1);
  tenant_w_[tenant] -= run.idle_w;
  run.idle_w = 0;
  run.nodes.clear();
  run.nodes.shrink_to_fit();
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
// whatever is free, jobs with dependencies are owed nothing until they are met, flexible jobs that
// may wait for low-carbon hours nothing at all), and
// pending_milli_.
void Simulator::PendingShape(uint32_t job, int delta) {
  const JobSpec& spec = workload_->jobs[job].spec;
  const uint64_t milli = WorkerMilli(spec) * spec.workers;
  pending_milli_ = delta > 0 ? pending_milli_ + milli : pending_milli_ - milli;
  // A flexible job the engine may hold for low-carbon hours asks for nothing it is owed now.
  const bool may_wait = spec.flexible && options_.shift_flexible &&
                        !(options_.flexible_by_price ? options_.price_eur_per_mwh : options_.grid_g_per_kwh).empty();
  if (spec.after_ok.empty() && !may_wait && milli > 0 && std::popcount(spec.worker.types.mask) == 1) {
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
  const std::vector<int64_t>& hall_mw = level_mw_[static_cast<size_t>(PowerLevel::kHall)];
  s.hall_it_w.reserve(hall_mw.size());
  for (uint32_t h = 0; h < hall_mw.size(); ++h) {
    s.hall_it_w.push_back(static_cast<double>(fleet_.hall_draw(HallId(h)).idle_w) +
                          static_cast<double>(hall_mw[h]) / 1000.0);
  }
  // Energy: this sample's power until the next one (or the horizon).
  const TimeMs dt = options_.end == SimOptions::kRunToCompletion
                        ? options_.sample_interval
                        : std::max<TimeMs>(0, std::min(options_.sample_interval, options_.end - at));
  const double hours = static_cast<double>(dt) / static_cast<double>(kMsPerHour);
  s.facility_w = s.it_w * Pue(fleet_, s.it_w, at);
  result_.it_energy_wh += s.it_w * hours;
  for (size_t h = 0; h < s.hall_it_w.size(); ++h) result_.hall_energy_wh[h] += s.hall_it_w[h] * hours;
  result_.facility_energy_wh += s.facility_w * hours;
  result_.allocated_accelerator_hours += static_cast<double>(s.allocated_milli) / 1000.0 * hours;
  s.out_accelerators = out_accelerators_;
  result_.peak_it_w = std::max(result_.peak_it_w, s.it_w);
  result_.peak_facility_w = std::max(result_.peak_facility_w, s.facility_w);
  if (const auto& network = fleet_.campus().heat_network) {
    const HeatFlow heat = RecoverHeat(*network, fleet_.campus(), s.it_w * fleet_.campus().liquid_heat_capture, at);
    s.heat_demand_w = heat.demand_w;
    s.heat_delivered_w = heat.delivered_w;
    result_.heat_demand_wh += heat.demand_w * hours;
    result_.heat_delivered_wh += heat.delivered_w * hours;
    result_.heat_reused_wh += heat.reused_w * hours;
    // Each tenant's part of the reused heat: its share of the IT power (idle hardware's is nobody's).
    for (size_t t = 0; t < tenant_w_.size(); ++t) {
      if (s.it_w > 0) result_.tenant_heat_reused_wh[t] += heat.reused_w * tenant_w_[t] / s.it_w * hours;
    }
    result_.heat_pump_wh += heat.pump_w * hours;
  }
  for (size_t t = 0; t < tenant_w_.size(); ++t) {
    result_.tenant_energy_wh[t] += tenant_w_[t] * hours;
    result_.tenant_peak_w[t] = std::max(result_.tenant_peak_w[t], tenant_w_[t]);
  }
  if (result_.carbon_g) {
    const size_t hour = static_cast<size_t>(at / kMsPerHour);
    JOULE_CHECK(hour < options_.grid_g_per_kwh.size());
    *result_.carbon_g += s.facility_w * hours / 1000.0 * options_.grid_g_per_kwh[hour];
  }
  if (result_.cost_eur) {
    const size_t hour = static_cast<size_t>(at / kMsPerHour);
    JOULE_CHECK(hour < options_.price_eur_per_mwh.size());
    *result_.cost_eur += s.facility_w * hours / 1e6 * options_.price_eur_per_mwh[hour];
  }
  result_.samples.push_back(std::move(s));
}

}  // namespace joule::sim
