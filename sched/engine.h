// The scheduling engine: the one entry point both drivers use. Step(now, events) applies what
// happened and runs one scheduling pass, returning what to do. No I/O, threads, clocks or hidden
// randomness: the same fleet, tenants, config and event sequence give the same decisions.
//
// A pass is a list of named stages:
//   admit   — drop jobs whose dependencies failed to their reason, hold those still waiting; hold
//             flexible jobs while a later start that still meets their deadline would run on
//             lower-carbon (or cheaper) power by the grid forecast (LowCarbonWait), decided
//             once, spread over near-best windows; when it comes they queue like any other;
//   order   — priority (high first), then fair share (tenant's decayed usage / weight, low
//             first), then submit time, then id (EngineConfig::order picks FIFO or
//             shortest-first instead);
//   place   — in that order, each job's gang all-or-nothing (sched/placement/gang.h), within its
//             tenant's reservation plus borrowing limit; a job bound to one type that fits in
//             its tenant's reservation of it is owed: past the limit and other tenants' holds
//             (docs/decisions/0004);
//   reserve — the first `backfill_depth` jobs that cannot start get a reservation: the earliest
//             time enough accelerators of their types free up, from running jobs' expected ends.
//             Later jobs start now only if they end before that time or leave the reserved
//             accelerators free (EASY backfill at depth 1, conservative at depth N);
//   preempt — the first `reclaim_depth` jobs within their tenant's reservation, and the first
//             `preemption_depth` other jobs that cannot start, may evict running jobs: of their
//             own tenant when of lower priority; of other tenants only while those borrow beyond
//             their reservation — when of lower priority, or to reclaim the job's reservation.
//             Work inside a reservation is never preempted by another tenant. Victims are whole gangs: the lowest
//             priority ceiling that makes room, then the fewest victims, then the least work lost since the last
//             checkpoint, borrowed capacity first (docs/decisions/0002). They get the grace period, then their
//             resources go back and they are requeued;
//   power   — a job placed by the stages above starts only if every power budget above it holds it,
//             possibly with running work of its priority or lower capped; else it waits with
//             PowerCap and holds the budgets it lacks for the rest of the pass. After the pass,
//             room left by ended jobs raises capped limits (sched/power_governor.h);
//   commit  — decisions, and an invariant check of the cluster state when enabled.
// Work proportional to change: a step runs the pass only when its outcome may differ from the last
// one's — an event arrived, the last step decided something (a start, a kill, spares...), a
// preemption's grace or a time limit ran out, a held job's begin time or low-carbon window came, or
// the tenants' fair-share order changed. Otherwise the pass would decide nothing, and is skipped:
// a server's backstop tick over a queue of 100,000 that cannot start costs next to nothing.
// Decisions are exactly those of an engine that runs every pass (tests/engine_pass_test.cc); a
// pending reason may lag until the next pass runs (time only tightens backfill holds, so a job a
// skipped pass would call Priority may still read Resources).
// Failures (docs/decisions/0006-failures.md): node health changes arrive as events and follow a
// state machine; a job on a node that goes down restarts on its hot spares when it holds enough,
// else goes back to the queue under its failure policy (restart limit, backoff), or fails.
// Thread-safety: not thread-safe; one thread owns an Engine.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "model/fleet.h"
#include "model/tenant.h"
#include "sched/engine_state.h"
#include "sched/events.h"
#include "sched/placement/placer.h"
#include "sched/power_governor.h"
#include "sched/resources.h"

namespace joule {

// The order of the queue's pass. Joule's: priority (high first), fair share, then age. FIFO and
// shortest-first (by runtime estimate, else time limit) are the classic baselines the twin compares
// against (Helios, SC'21); they ignore priority and fair share.
enum class QueueOrder { kPriorityFairShareAge, kFifo, kShortestFirst };

struct EngineConfig {
  QueueOrder order = QueueOrder::kPriorityFairShareAge;
  uint32_t backfill_depth = 1;                           // 0: no reservations (plain priority order, greedy)
  TimeMs fair_share_half_life = 7LL * 24 * 3600 * 1000;  // Slurm's PriorityDecayHalfLife default
  bool preemption = true;
  TimeMs preemption_grace = 30'000;  // SIGTERM to SIGKILL
  uint32_t preemption_depth = 2;     // blocked jobs per pass that may look for victims
  uint32_t reclaim_depth = 2;        // and, separately, jobs reclaiming their tenant's reservation
  bool check_invariants = false;     // full consistency check after every pass (tests, debug)
  // Skip a step's pass when it would decide nothing new (see Engine). false: every step runs it —
  // the reference the tests compare the skipping engine with.
  bool skip_quiet_passes = true;
  // How shared fractions of an accelerator are placed: a fragmentation-gradient scorer over the
  // typical tasks of the queued and running work. Joule's (FGD's gradient, ties to the busiest
  // node) leaves less capacity stranded than FGD on all ten openb lists (docs/decisions/0003).
  PlacementPolicy shared_policy = PlacementPolicy::kJoule;
  PowerConfig power;
};

class Engine {
 public:
  // REQUIRES: the fleet outlives the engine.
  Engine(const Fleet& fleet, std::vector<TenantSpec> tenants, EngineConfig config = {});

  Decisions Step(TimeMs now, std::span<const Event> events);

  std::optional<JobState> state(JobId job) const;
  PendingReason pending_reason(JobId job) const;
  const std::vector<WorkerPlacement>* placement(JobId job) const;
  const ClusterState& cluster() const { return cluster_; }
  const PowerGovernor& power() const { return governor_; }
  std::span<const TenantSpec> tenants() const { return tenants_; }
  NodeHealth health(NodeId node) const { return health_[node.value()]; }
  // Running jobs with workers or spares on the node (a drained node is "draining" while any).
  std::span<const JobId> jobs_on(NodeId node) const { return jobs_on_[node.value()]; }
  // Nodes whose allocations or jobs (jobs_on) the last Step changed, repeats possible: a view of
  // the nodes refreshes these after a step instead of walking the fleet.
  std::vector<NodeId> ChangedNodes() const;
  const std::vector<WorkerPlacement>* spares(JobId job) const;
  size_t pending_count() const { return pending_.size(); }
  size_t running_count() const { return running_.size(); }
  uint64_t passes() const { return passes_; }  // steps that ran the scheduling pass

  // The whole state (sched/engine_state.h), and an engine made to continue from one
  // (sched/engine_snapshot.cc). REQUIRES for Restore: a fresh engine over the same fleet, the
  // scenario's tenants and the same config. Errors name what does not fit the fleet.
  EngineState Save() const;
  Status Restore(const EngineState& state);

 private:
  struct Job {
    JobSpec spec;
    JobState state = JobState::kPending;
    PendingReason reason = PendingReason::kNone;
    PendingReason reported = PendingReason::kNone;  // last reason put in decisions
    std::vector<WorkerPlacement> workers;
    TimeMs start = 0;
    std::optional<TimeMs> preempt_at;     // running, being preempted: resources go back then
    TypeSet used_types;                   // running: the accelerator types its workers hold
    uint64_t used_node_types = 0;         // running: its workers' node types (bits; all set beyond 63)
    std::vector<JobId> waiting_for;       // pending, its preemption victims still leaving
    uint32_t preemptions = 0;             // times this job was preempted
    std::optional<TimeMs> window;         // flexible: the start it chose (now, if none is better)
    std::vector<WorkerPlacement> spares;  // running: hot spares' places, held idle
    uint32_t restarts = 0;                // times requeued or restarted after a failure
    TimeMs eligible_at = 0;               // pending: not before (a restart's backoff)
  };
  struct BackfillHold;

  void Apply(TimeMs now, const Event& event, Decisions& out);
  void Submit(TimeMs now, const JobSpec& spec, Decisions& out);
  void UpdateTenant(const TenantUpdate& update);
  void Stop(Job& job, JobState end_state);
  void Retire(JobId job);
  // ---- Failures (engine_failures.cc) ----
  void ChangeHealth(TimeMs now, const NodeHealthChange& change, Decisions& out);
  void KillJobsOn(TimeMs now, NodeId node, const std::string& why, Decisions& out);
  // The job lost `node`: restart on spares, requeue, or fail, by its policy.
  void Interrupt(TimeMs now, Job& job, NodeId node, const std::string& why, Decisions& out);
  static RestartJob* RestartedThisStep(JobId job, Decisions& out);  // its restart decided in this step
  bool RestartOnSpares(Job& job, NodeId node, Decisions& out);
  void Requeue(TimeMs now, Job& job, const std::string& why, Decisions& out);
  // Whether a failure may requeue the job once more (counting it); false: it has used them all.
  bool RestartAllowed(Job& job, bool own_failure) const;
  void End(Job& job, JobState state, std::string reason, Decisions& out);
  // Moves the spares out of a placed gang (workers + spare_nodes places): spread over it, so that
  // each part of a large gang has one near.
  static std::vector<WorkerPlacement> TakeSpares(const JobSpec& spec, std::vector<WorkerPlacement>& gang);
  void Hold(Job& job, const std::vector<WorkerPlacement>& places, int sign);
  // Jobs that used or lost spares get new ones, from what the pass left free, near nothing in
  // particular (the best-fitting node of the type they run on).
  void RefillSpares(Decisions& out);
  // Tenants' spare pools (TenantSpec::spare_nodes): filled after the pass like jobs' spares.
  void RefillPools(Decisions& out);
  void DropFromPool(NodeId node, Decisions& out);  // the node left service
  // A pool node of the tenant for a worker of `job` lost on `failed`: the nearest that can hold it.
  std::optional<size_t> PoolNodeFor(const Job& job, NodeId failed, const std::vector<bool>& taken) const;
  TaskShape PoolShape(AcceleratorTypeId type) const;  // a whole node of the first node type with it
  void EnforceTimeLimits(TimeMs now, Decisions& out);
  void DecayUsage(TimeMs now);
  void SchedulingPass(TimeMs now, Decisions& out);
  // Whether the pass may decide anything the last one did not (see the header's comment).
  bool PassDue(TimeMs now) const;
  // The tenants' fair-share ratios now (decayed usage / weight).
  std::vector<double> Shares() const;
  std::vector<Job*> OrderedPending();
  bool DependenciesMet(Job& job);
  // The job as placed: its workers and its spares, one gang.
  static JobSpec GangSpec(const JobSpec& spec);
  std::optional<TimeMs> LowCarbonStart(TimeMs now, const Job& job) const;
  // The forecast's mean over [from, to); nullopt beyond the forecast.
  std::optional<double> ForecastMean(TimeMs from, TimeMs to) const;
  bool WithinQuota(const Job& job, bool owed) const;
  std::optional<BackfillHold> Reserve(TimeMs now, const Job& job) const;
  bool BackfillAllowed(TimeMs now, const Job& job, bool owed, std::vector<BackfillHold>& holds);
  // A running job (start set) in running_, deadlines_ and ends_by_type_.
  void IndexRunning(Job& job);
  void Started(TimeMs now, Job& job, std::vector<WorkerPlacement> workers, std::vector<WorkerPlacement> spares,
               uint32_t limit, Decisions& out);
  // The power stage for a placed job: its limit, or nullopt after releasing the placement.
  std::optional<uint32_t> AdmitPower(Job& job, const std::vector<WorkerPlacement>& workers,
                                     const std::vector<WorkerPlacement>& spares, bool owed);
  void ReportPowerLimits(Decisions& out);
  bool FinishPreemptions(TimeMs now);  // whether any victim left
  bool TryPreempt(TimeMs now, Job& job, Decisions& out);
  struct Candidate {
    Job* job;
    bool not_borrowed;  // false sorts first
    int64_t lost;       // accelerator-ms since the last checkpoint
    int64_t size;       // accelerators
  };
  std::vector<Candidate> VictimCandidates(TimeMs now, const Job& job) const;
  // Candidates depend on the preempting job's priority, tenant and types only; within one pass
  // jobs alike share one list (victims already chosen are skipped when it is reused).
  using CandidateKey = std::tuple<int32_t, uint32_t, uint64_t, uint32_t>;
  std::map<CandidateKey, std::vector<Candidate>> pass_candidates_;
  // The fragmentation-aware placer for shared fractions, built per pass when needed.
  std::unique_ptr<Placer> shared_placer_;
  Rng shared_rng_{0};  // only the Random policy draws; the engine's choices are deterministic
  Placer* SharedPlacer();
  bool FitsInReservation(const Job& job) const;
  bool OwedOneType(const Job& job) const;  // bound to one type, and fits in the reservation of it
  bool OthersBorrow(const Job& job) const;
  // Whether tenant u runs beyond its reservation of accelerator type t.
  bool BorrowingOn(uint32_t u, uint32_t t) const { return in_use_[u][t] > reserved_milli_[u][t]; }
  uint64_t Accelerators(const Job& job) const;
  void CheckInvariants() const;

  // What validation needs to know of the fleet, computed once: per accelerator type, how many
  // and the largest NVLink domain; the distinct node types present.
  struct FleetFacts {
    std::vector<uint64_t> accelerators;
    std::vector<uint32_t> largest_domain;
    std::vector<NodeTypeId> node_types;
  };
  static FleetFacts Facts(const Fleet& fleet);

  const Fleet& fleet_;
  FleetFacts facts_;
  std::vector<TenantSpec> tenants_;
  EngineConfig config_;
  ClusterState cluster_;
  PowerGovernor governor_;
  std::map<JobId, Job> jobs_;                  // pending and running (and being preempted)
  std::unordered_map<JobId, JobState> ended_;  // completed, failed, cancelled: final state only
  std::map<JobId, Job*> pending_;
  // The pending jobs kept in queue order (the order stage): per bucket — (priority, tenant) under
  // fair share, one bucket under FIFO and shortest-first — by (expected run time under
  // shortest-first, submit time, id). A pass merges the buckets by the tenants' shares instead of
  // sorting the queue.
  using QueueEntry = std::tuple<TimeMs, TimeMs, JobId, Job*>;
  std::map<std::pair<int32_t, uint32_t>, std::set<QueueEntry>> queue_;
  std::pair<std::pair<int32_t, uint32_t>, QueueEntry> QueuePlace(Job& job) const;
  void AddPending(Job& job);
  void RemovePending(Job& job);
  std::map<JobId, Job*> running_;
  // The same, by priority: a victim search for a job outside its reservation walks only the
  // levels below its own.
  std::map<int32_t, std::map<JobId, Job*>> running_by_priority_;
  std::vector<NodeId> held_changed_;              // nodes whose jobs_on_ changed in this Step (ChangedNodes)
  std::set<std::pair<TimeMs, JobId>> deadlines_;  // running jobs with a time limit, by deadline
  // Per accelerator type, running jobs with an estimate or limit that hold that type, by expected
  // end: what Reserve walks to find when enough of a blocked job's types free up.
  std::vector<std::set<std::tuple<TimeMs, JobId, const Job*>>> ends_by_type_;
  std::set<std::pair<TimeMs, JobId>> preempting_;  // victims in their grace period, by deadline
  // Per tenant and accelerator type: whole accelerators in use (for quotas).
  std::vector<std::vector<uint64_t>> in_use_;
  // Per tenant and accelerator type: milli-accelerators reserved (from the tenants' specs).
  std::vector<std::vector<uint64_t>> reserved_milli_;
  std::vector<double> decayed_usage_;  // per tenant, accelerator-milliseconds, decayed
  GridForecast forecast_;
  std::vector<double> forecast_sum_;  // forecast_sum_[i]: intensity x ms over the first i steps
  TimeMs last_decay_ = 0;
  // The quiet-pass skip: pass_due_ is set by whatever the pass depends on besides time and fair
  // share; pass_wake_ is the earliest begin time or window a held job waits for; pass_shares_ the
  // ratios the last pass ordered by.
  bool pass_due_ = true;
  TimeMs pass_wake_ = 0;
  std::vector<double> pass_shares_;
  uint64_t passes_ = 0;
  std::vector<NodeHealth> health_;                  // per node
  std::vector<std::vector<JobId>> jobs_on_;         // per node: running jobs holding a place there
  std::set<JobId> short_of_spares_;                 // running jobs holding fewer spares than they asked
  std::vector<std::vector<WorkerPlacement>> pool_;  // per tenant: its spare nodes (whole nodes)
};

}  // namespace joule
