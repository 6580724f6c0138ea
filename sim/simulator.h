// The twin's event core: replays a Workload on a fleet by driving the scheduling engine exactly as
// the server does — Step(now, events) -> decisions — and plays the part of the nodes: a started
// job finishes after its true duration, a preempted one stops at its SIGKILL deadline and keeps
// the work saved at its last checkpoint, a job past its time limit is killed by the engine. With a
// failure model it also breaks the campus (sim/failure_injector.h): nodes go down and come back
// repaired, racks are drained for maintenance, jobs crash; a job restarted after a failure or a
// preemption pays the model's restart overhead, and each checkpoint its stall (Daly's R and C).
//
// Time is integer milliseconds. The engine steps on tick boundaries (a scheduling cycle, as a
// server's event loop batches what arrived): events are delivered at the first tick at or after
// they happen; job ends are recorded at their true time, their capacity returns at that tick.
// Same fleet, tenants, workload and options => identical result.
// Thread-safety: not thread-safe; one Simulator per thread, several may run side by side.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sched/engine.h"
#include "sim/failure_injector.h"
#include "sim/result.h"
#include "sim/workload.h"

namespace joule::sim {

struct SimOptions {
  // Simulated horizon; work still queued or running then is cut. kRunToCompletion: until every
  // job has ended (or can never start).
  static constexpr TimeMs kRunToCompletion = INT64_MAX;
  TimeMs end = 7LL * 24 * 3600 * 1000;
  TimeMs tick = 10'000;              // scheduling cycle
  TimeMs sample_interval = 300'000;  // time-series resolution
  EngineConfig engine;
  // Give every job its true duration as its runtime estimate (shortest-first "with true
  // durations", as Helios evaluates SJF); otherwise jobs carry what their source says.
  bool oracle_estimates = false;
  // Grid carbon intensity, gCO2e/kWh, hour by hour from time 0; empty: no carbon accounting.
  // REQUIRES: covers every sample up to `end` when given.
  std::vector<double> grid_g_per_kwh;
  // Hourly day-ahead price, EUR/MWh, from time 0; empty: no cost accounting. REQUIRES: as above.
  std::vector<double> price_eur_per_mwh;
  // Hand flexible jobs to the engine as flexible; otherwise as ordinary jobs (the baseline; the
  // results still tell them apart).
  bool shift_flexible = true;
  // The forecast flexible jobs minimise: the carbon series (default) or the price series.
  bool flexible_by_price = false;
  // Failures to inject, drawn with `failure_seed`; none: a campus that never fails, restarts free.
  // REQUIRES: a finite `end` when given (failures never stop, so a run would never complete).
  std::optional<FailureModelSpec> failures;
  uint64_t failure_seed = 1;
};

class Simulator {
 public:
  // REQUIRES: the fleet outlives the simulator; tenants non-empty; every job's tenant indexes
  // `tenants`.
  Simulator(const Fleet& fleet, std::vector<TenantSpec> tenants, SimOptions options);

  // REQUIRES: workload sorted by submit time (SortBySubmit), ids unique.
  SimResult Run(const Workload& workload);

 private:
  // kFinish: a run ends; kWake: the engine must step (a deadline); kCheck: reservations are checked.
  // kHealth: a node's repair moves on (job indexes health_actions_).
  enum class TimerKind : uint8_t { kFinish, kWake, kCheck, kHealth };
  struct Timer {
    TimeMs at;
    uint64_t seq;
    TimerKind kind;
    uint32_t job;         // index into the workload
    uint32_t generation;  // a finish is void once its run was stopped
    bool operator>(const Timer& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  // A job's live state between its submission and its end.
  // Work is counted in milliseconds at full speed: a job capped to 0.9 of its speed takes 10 s
  // of wall time for 9 s of work.
  struct LiveJob {
    TimeMs remaining = 0;  // work left, from the last start or checkpoint
    TimeMs started = 0;    // current run's start
    uint32_t generation = 0;
    bool holding = false;                             // holds accelerators (running, or stopping within its grace)
    bool stopping = false;                            // preempted, holding until its SIGKILL deadline
    std::vector<std::pair<uint32_t, uint64_t>> held;  // (accelerator type, milli) while holding
    std::vector<std::pair<NodeId, uint32_t>> nodes;   // while holding: each worker's node and devices
    uint32_t limit = kRatedPermille;                  // power limit, per-mille of rated
    double speed = 1.0;                               // share of full speed at that limit
    TimeMs segment_start = 0;                         // since when it runs at this speed
    double done = 0;                                  // work done in this run before segment_start
    double extra_w = 0;                               // while holding: watts above idle (power/draw.h)
    double idle_w = 0;                                // while holding: idle watts of what it holds
    TimeMs need = 0;                                  // this run's time at full speed to finish
    bool restarted = false;                           // this run pays the restart overhead
    std::optional<TimeMs> interrupted_at;             // a failure stopped it; not yet working again
  };
  // A scheduled step of a node's outage; void once a newer outage took the node over.
  struct HealthAction {
    NodeId node;
    NodeHealth to;
    uint32_t outage;
    std::string reason;
  };

  TimeMs NextTick(TimeMs t) const { return (t + options_.tick - 1) / options_.tick * options_.tick; }
  void Submit(uint32_t job, std::vector<Event>& events);
  void Apply(TimeMs now, const Decisions& decisions);
  void Start(TimeMs now, const StartJob& start);
  void Hold(uint32_t job, const WorkerPlacement& place);
  void Book(uint32_t tenant, uint32_t type, uint64_t milli, int sign);  // +1 holds, -1 frees
  void AddSpares(uint32_t job, const std::vector<WorkerPlacement>& spares);
  void Occupy(TimeMs now, uint32_t job, const std::vector<WorkerPlacement>& workers,
              const std::vector<WorkerPlacement>& spares, uint32_t limit);
  // ---- Failures ----
  void Inject(TimeMs now, std::vector<Event>& events);
  void Crash(TimeMs now, NodeId node, std::vector<Event>& events);  // a software failure
  void Outage(TimeMs at, NodeId node, NodeHealth first, std::string reason, Actor actor, std::optional<uint32_t> device,
              TimeMs to_repair, TimeMs repair, std::vector<Event>& events);
  void ScheduleHealth(TimeMs at, NodeId node, NodeHealth to, std::string reason);
  // A failure ended the job's run: keep its saved work, count what was lost, free what it held.
  void Interrupted(TimeMs now, uint32_t job);  // ... and it goes back to the queue
  void Stopped(TimeMs now, uint32_t job);
  // Ends the run's progress at `now` keeping the work saved at its last checkpoint; returns the
  // accelerator-hours it held that were not saved (redone work, restart overhead, stalls).
  double KeepCheckpoint(TimeMs now, uint32_t job);
  void ApplyRestarts(TimeMs now, const Decisions& decisions);
  void ApplyFailureDecisions(TimeMs now, const Decisions& decisions);
  TimeMs RestartOverhead(uint32_t job) const;
  TimeMs RunNeed(uint32_t job) const;                 // the run's full-speed time to finish `remaining`
  TimeMs SavedWork(uint32_t job, double done) const;  // work a run of `done` ms saved at checkpoints
  TimeMs WorkDone(uint32_t job, double done) const;   // work a run of `done` ms did, saved or not
  void Kill(TimeMs now, const KillJob& kill);
  void Release(uint32_t job);
  void SetLimit(TimeMs now, uint32_t job, uint32_t limit);
  double Progress(TimeMs now, uint32_t job);  // work done in the current run; closes the speed segment
  // An hourly series integrated over [from, to), in value x hours.
  static double SeriesHours(const std::vector<double>& series, TimeMs from, TimeMs to);
  // Adds (sign +1) or removes (-1) the job's draw at its limit from the power ledgers.
  void Draw(uint32_t job, int sign);
  void CheckBudgets();
  uint64_t HeldMilli(uint32_t job) const;
  void Schedule(TimeMs at, TimerKind kind, uint32_t job);
  void TakeSample(TimeMs at);
  uint64_t FragmentedMilli() const;
  void PendingShape(uint32_t job, int delta);
  void CheckReservations(TimeMs now);

  const Fleet& fleet_;
  std::vector<TenantSpec> tenants_;
  SimOptions options_;
  std::optional<Engine> engine_;
  const Workload* workload_ = nullptr;
  SimResult result_;
  std::vector<LiveJob> live_;
  std::unordered_map<JobId, uint32_t> index_;  // job id -> workload index
  std::vector<Timer> timers_;                  // min-heap by (at, seq)
  uint64_t seq_ = 0;
  // Live accounting, milli-accelerators.
  std::vector<uint64_t> tenant_milli_, type_milli_;
  uint64_t allocated_milli_ = 0, stopping_milli_ = 0, pending_milli_ = 0;
  double extra_w_ = 0;  // campus IT watts above idle
  // The twin's own power ledger, summed worker by worker from power/draw.h (milliwatts above idle,
  // integers so that millions of adds and removes stay exact): per level (PowerLevel: the campus,
  // then by hall, row and rack id). Racks touched since the last budget check.
  std::array<std::vector<int64_t>, 4> level_mw_;
  std::vector<uint32_t> touched_racks_;
  std::set<JobId> low_carbon_waiting_;  // pending with LowCarbonWait
  TimeMs next_hour_wake_ = 0;
  // Per level (campus, hall, row, rack) and id there: the index of its budget in the governor's list.
  std::array<std::vector<std::optional<uint32_t>>, 4> budget_of_;
  std::vector<double> tenant_w_;  // per tenant: watts of what its jobs hold
  // Queued whole-accelerator worker shapes (types mask, accelerators per worker) -> count.
  std::map<std::pair<uint64_t, uint32_t>, uint32_t> pending_shapes_;
  // Per tenant and accelerator type (reservation breaches): milli reserved and held, the asks of
  // queued jobs allowed on the type, since when the tenant is owed capacity, and whether that
  // episode was counted.
  std::vector<std::vector<uint64_t>> reserved_, held_;
  std::vector<std::vector<std::multiset<uint64_t>>> pending_asks_;
  std::vector<std::vector<TimeMs>> short_since_;
  std::vector<std::vector<bool>> breach_counted_;
  std::optional<FailureInjector> injector_;
  std::vector<HealthAction> health_actions_;
  std::vector<uint32_t> outage_;  // per node: outages so far (HealthAction::outage)
  uint64_t out_accelerators_ = 0;
  TimeMs checkpoint_stall_ = 0;
};

}  // namespace joule::sim
