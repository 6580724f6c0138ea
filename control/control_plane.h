// The control plane's core: the engine driven in real time over a fleet, with every accepted
// change journaled before it is acknowledged (docs/decisions/0007-control-plane.md).
//
// Three kinds of thread meet here, under one mutex:
//   callers (the HTTP API's threads) validate a request, reserve what it needs (a job id, an
//     idempotency key), enqueue its journal record and wait until it is durable;
//   the committer appends whatever is queued as one transaction (group commit: one fsync for
//     every record that arrived meanwhile), then applies the records to the in-memory view in
//     journal order and wakes their callers;
//   the ticker runs one engine step per tick over the inputs committed so far, journals the step
//     (its time and the last input it consumed), and once that is durable applies the decisions.
// Restarting replays the journal: inputs rebuild the job table, step records re-run the engine at
// the same times over the same inputs, so the engine's state and every job's are as before the
// crash. Nothing is visible before it is durable.
// Thread-safety: every public member is safe to call from any thread once Open returned.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "control/auth.h"
#include "control/history.h"
#include "control/journal_records.h"
#include "io/job_spec.h"
#include "io/scenario.h"
#include "io/server_config.h"
#include "sched/engine.h"
#include "store/journal.h"

namespace joule::control {

using Clock = std::function<TimeMs()>;  // milliseconds since the Unix epoch
// Where the control plane tells its operator what happened to it (journal failures and
// recoveries); called from its own threads, one line at a time, without a trailing newline.
using Log = std::function<void(std::string_view)>;

// A refused request: the HTTP status, the field at fault ("" for the request as a whole) and the
// rule it broke.
struct ApiError {
  int status = 400;
  std::string field;
  std::string message;
};

template <typename T>
struct Outcome {
  std::optional<T> value;
  ApiError error;

  Outcome(T v) : value(std::move(v)) {}         // NOLINT(google-explicit-constructor)
  Outcome(ApiError e) : error(std::move(e)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return value.has_value(); }
};

// A job state as the API names it: lower case ("pending", "running", ...).
std::string StateName(JobState state);

struct JobEvent {
  TimeMs at = 0;
  std::string what;
};

struct JobInfo {
  JobId id = 0;
  io::SubmitSpec spec;  // as accepted: tenant, queue and priority class resolved, time limit set
  TenantId tenant;
  int32_t priority = 0;
  JobState state = JobState::kPending;
  PendingReason reason = PendingReason::kNone;
  std::string end_reason;
  TimeMs submitted = 0, started = 0, ended = 0;
  uint32_t restarts = 0;
  std::string submitted_by;
  std::vector<NodeId> nodes;  // running: one per worker, in rank order
  std::vector<JobEvent> events;
  std::vector<std::vector<uint32_t>> devices;      // running: each worker's accelerators on its node
  uint32_t run = 0;                                // starts and restarts so far: agents tell runs apart
  uint32_t power_limit_permille = kRatedPermille;  // running: the engine's cap, of rated power
  // Measured energy (agents' GPU readings) by (run, rank), joules: ended workers' final figures
  // (journaled once each) and running workers' figures so far. A key is in one map only.
  std::map<std::pair<uint32_t, uint32_t>, double> energy_final, energy_live;
  double energy_joules() const;  // the sum of both
  std::string key;               // the idempotency key it was submitted with, if any
  bool retired = false;          // read back from the history: no command, events or nodes (control/history.h)
};

// One accelerator as its node's agent last read it (NVML or simulated).
struct GpuTelemetry {
  uint32_t index = 0;
  std::string uuid, model;
  uint64_t memory_mib = 0, memory_used_mib = 0;
  double power_w = 0, energy_j = 0, power_limit_w = 0;
  uint32_t temperature_c = 0, utilization_pct = 0;
  uint64_t ecc_corrected = 0, ecc_uncorrected = 0, xid_errors = 0, last_xid = 0;
};

// A node's agent: where it is, when it was last heard, what its accelerators read.
struct AgentView {
  std::string address;
  TimeMs last_heartbeat = 0;
  std::string gpu_source, driver_version;  // gpu_source empty: the agent reads no telemetry
  std::vector<GpuTelemetry> gpus;
  double power_w() const;
};

struct NodeInfo {
  NodeHealth health = NodeHealth::kHealthy;
  std::string reason;  // of the last health change
  TimeMs since = 0;
  uint32_t gpus_used = 0;  // accelerators with work on them
  std::vector<JobId> jobs;
  std::optional<AgentView> agent;  // absent: no agent has reported for the node
  Actor actor = Actor::kOperator;  // who made the last health change
};

struct AuditEntry {
  uint64_t seq = 0;
  TimeMs at = 0;
  std::string who, action, target, detail;
};

struct JobFilter {
  std::optional<TenantId> tenant;
  std::optional<JobState> state;
  std::optional<std::string> queue;
  JobId after = 0;  // paging: ids greater than this
  uint32_t limit = 1000;
  bool history = false;  // retired jobs too, not only the view's
};

struct SubmitResult {
  JobId id = 0;
  bool created = true;  // false: an earlier submit with the same idempotency key
};

// A quota change (PATCH of a tenant); absent fields keep their value.
struct QuotaChange {
  std::optional<std::vector<Reservation>> reserved;
  std::optional<std::optional<uint32_t>> borrow_limit;  // holds nullopt: no limit
  std::optional<double> weight;
};

// A worker that ended on a node, as its agent reports it.
struct WorkerExit {
  JobId job = 0;
  uint32_t rank = 0;
  int exit_code = 0;
  uint32_t run = 0;                // the run it belonged to (Assignment::run); reports of earlier runs are ignored
  std::optional<double> energy_j;  // its devices' measured energy over its life
};

// A worker still running, with its devices' measured energy so far.
struct WorkerEnergy {
  JobId job = 0;
  uint32_t rank = 0, run = 0;
  double energy_j = 0;
};

// What an agent says in a heartbeat.
struct AgentReport {
  std::string address;
  std::vector<WorkerExit> ended;
  std::vector<WorkerEnergy> running;
  std::optional<uint32_t> gpu_count;  // devices the agent found (NVML) or declares (simulated)
  std::string gpu_source, driver_version;
  std::vector<GpuTelemetry> gpus;
};

// A worker an agent must run: the job's spec, its rank in the gang, its accelerators, and where
// rank 0 listens (MASTER_ADDR, MASTER_PORT).
struct Assignment {
  JobId job = 0;
  uint32_t rank = 0, world_size = 1;
  std::vector<uint32_t> devices;
  std::string master_addr;
  uint16_t master_port = 0;
  io::SubmitSpec spec;
  uint32_t run = 0;  // a new run (after a requeue or a restart) is a new set of processes
  uint32_t power_limit_permille = kRatedPermille;
};

// What a node must run, with a fingerprint of it: an agent that sends back the fingerprint it
// has is answered once the assignments change (a long poll, WatchNode), not before.
struct NodeAssignments {
  std::vector<Assignment> assignments;
  uint64_t version = 0;  // never 0: an agent that knows none sends 0
  std::string cluster;   // the journal's id (cluster_id()); empty until it is durable
};

struct Counters {
  uint64_t submits = 0, journal_records = 0, journal_commits = 0, steps = 0;
  uint64_t inputs = 0;  // records other than steps made durable by this server (changes, reports)
  uint64_t passes = 0;  // steps whose scheduling pass ran (the engine skips those that would decide nothing)
  uint64_t journal_failures = 0, journal_recoveries = 0, elections_won = 0, snapshots = 0;
  uint64_t snapshot_seq = 0, snapshot_bytes = 0;  // the newest snapshot kept
  double snapshot_seconds = 0;                    // encoding and keeping it
  double step_seconds_sum = 0, step_seconds_max = 0, commit_seconds_sum = 0;
};

class ControlPlane {
 public:
  // Loads the scenario, opens (or creates) the journal and replays it. Errors name the file. A
  // journal given is used instead of the config's state (tests inject faults with one).
  static Result<std::unique_ptr<ControlPlane>> Open(const io::ServerConfig& config, Clock clock, Log log = {},
                                                    std::unique_ptr<store::Journal> journal = nullptr);
  // Open without the replay, for a server that answers (503, "starting") while it replays: Load
  // replays, then Start. Until loaded() nothing of the view may be read.
  static Result<std::unique_ptr<ControlPlane>> Create(const io::ServerConfig& config, Clock clock, Log log = {},
                                                      std::unique_ptr<store::Journal> journal = nullptr);
  ::joule::Status Load();
  bool loaded() const { return loaded_; }

  // The whole state as of the last record applied (control/snapshot.cc): the view and the
  // engine's state; the history's full chunks are not in it but in the store (SaveChunk).
  // REQUIRES: the engine idle (before Start, after Stop, or on the ticker).
  // RestoreSnapshot replaces the state with one (REQUIRES: not started), reading the chunks it
  // counts from `chunks` (by default this server's store); errors name what is wrong.
  using ChunkSource = std::function<Result<std::vector<std::string>>(std::string_view log, uint64_t count)>;
  std::string EncodeSnapshot() const;
  ::joule::Status RestoreSnapshot(std::string_view snapshot, const ChunkSource& chunks = {});
  // Keeps a snapshot of the state now, as the leader does every snapshot_records records.
  // REQUIRES: not started, or stopped.
  ::joule::Status SaveSnapshotNow();
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // The committer and the ticker. `address` is the URL this server is reached at, which a leader
  // advertises to the other replicas (so they can send clients to it).
  void Start(std::string address = "");
  void Stop();  // waits for both; what was acknowledged is already durable
  // Ready: replay done, threads running, the journal writable.
  bool ready() const;
  // Why the journal refuses appends, while it does. The server then answers changes with 503,
  // retries the journal every kRecoverRetryMs, and once it answers rebuilds its view from it (the
  // engine may have run a step the journal lacks) and accepts changes again.
  std::optional<std::string> journal_error() const;
  // Whether this server leads (appends to the journal and runs the engine's passes). A follower
  // replays what the leader appends (within kFollowMs) and serves reads from that view; changes
  // go to the leader, whose address it returns when it knows it.
  bool leading() const;
  std::string leader_address() const;
  static constexpr TimeMs kFollowMs = 100;
  static constexpr uint32_t kSnapshotRecords = 20'000;  // snapshot_records unset
  static constexpr TimeMs kRecoverRetryMs = 1000;

  const io::ServerConfig& config() const { return config_; }
  const Fleet& fleet() const { return scenario_.fleet; }
  const Authenticator& auth() const { return auth_; }
  // The journal's identity: a random id its first leader journals once ("cluster" record). An
  // agent binds its work folder to it, so that state left by another incarnation of the server
  // (a reset state, another campus) is never adopted or signalled. Empty until durable.
  std::string cluster_id() const;
  std::string TenantName(TenantId tenant) const { return scenario_.tenants[tenant.value()].name; }
  std::optional<TenantId> FindTenant(std::string_view name) const;
  std::optional<NodeId> FindNode(std::string_view name) const;

  // ---- Changes: each returns once its journal record is durable ----
  Outcome<SubmitResult> Submit(const Principal& who, io::SubmitSpec spec, const std::string& idempotency_key);
  Outcome<JobId> Cancel(const Principal& who, JobId job);
  // drain (reason required) or resume (to healthy); operators only.
  Outcome<NodeId> SetNodeHealth(const Principal& who, std::string_view node, NodeHealth to, std::string reason);
  Outcome<TenantId> ChangeQuota(const Principal& who, std::string_view tenant, const QuotaChange& change);
  // A node agent's heartbeat (agents and operators only): it is alive, these workers ended, its
  // accelerators read this. Journals each job's end once every worker has exited (or one failed)
  // and each ended worker's measured energy once, and answers once those records are durable;
  // brings a node marked down for silence back; returns the workers the node must run now. 409
  // when the agent has fewer accelerators than the fleet gives the node.
  // A report without GPU readings (an agent telling a worker's end at once) keeps the last ones.
  Outcome<NodeAssignments> AgentHeartbeat(const Principal& who, std::string_view node, AgentReport report);
  // Whether AgentHeartbeat would wait for the journal: the report tells ended workers, or the
  // node comes back from down. The API answers the other heartbeats on its I/O threads.
  bool AgentHeartbeatWaits(std::string_view node, const AgentReport& report) const;
  // Calls `notify` once: with the node's assignments as soon as their version differs from
  // `known` (at once if it already does, or when this server stops leading), else with the same
  // ones once `wait` has passed. From the ticker's thread or the caller's, under no lock of the
  // caller's; `notify` must only hand the answer on. REQUIRES: the node exists.
  void WatchNode(NodeId node, uint64_t known, std::chrono::milliseconds wait,
                 std::function<void(NodeAssignments)> notify);

  // ---- Reads: `visit` runs under the lock; keep it to copying or formatting ----
  // 404 for a job the principal may not see (a tenant does not learn others' job ids).
  Outcome<bool> VisitJob(const Principal& who, JobId job, const std::function<void(const JobInfo&)>& visit) const;
  // Jobs by id, at most filter.limit; returns whether more match after the last one visited.
  bool VisitJobs(const Principal& who, const JobFilter& filter, const std::function<void(const JobInfo&)>& visit) const;
  void VisitNodes(const std::function<void(NodeId, const NodeInfo&)>& visit) const;
  void VisitTenants(
      const std::function<void(TenantId, const TenantSpec&, const std::vector<uint64_t>& in_use)>& visit) const;
  void VisitAudit(uint64_t after, uint32_t limit, const std::function<void(const AuditEntry&)>& visit) const;
  struct FleetStatus {
    uint64_t accelerators = 0, accelerators_used = 0, accelerators_out = 0;
    size_t nodes = 0, pending = 0, running = 0, retired = 0;
    std::map<std::string, size_t> nodes_by_health;
    std::map<std::string, size_t> jobs_by_state;
    std::vector<PowerGovernor::Budget> budgets;
    uint64_t journal_seq = 0;
    TimeMs last_step = 0;
    size_t agents = 0;                // nodes whose agent is heard (not marked down for silence)
    uint64_t gpus_measured = 0;       // accelerators in those agents' last readings
    double measured_gpu_power_w = 0;  // their summed power draw
  };
  FleetStatus Snapshot() const;
  Counters counters() const;

 private:
  enum class Ack { kWaiting, kDurable, kFailed };  // a record's fate, as its waiter learns it
  using Record = JournalRecord;
  struct Queued {
    std::string payload;
    std::shared_ptr<Record> record;
    uint64_t ticket = 0;
  };
  struct Input {
    uint64_t seq = 0;
    Event event;
  };
  struct IdempotencyEntry {
    JobId job = 0;
    Digest request;  // SHA-256 of the accepted spec: a reuse with another request is refused
    uint64_t ticket = 0;
  };

  ControlPlane(io::ServerConfig config, io::Scenario scenario, std::unique_ptr<store::Journal> journal, Clock clock,
               Log log);
  // REQUIRES: mu_ held. Every member rebuilt from the journal back to its state before any record.
  void ResetView();
  // Applies the journal's records after `after` (inputs to the view, steps through the engine);
  // a gap (records compacted away) is an error. Takes mu_ itself; runs the engine, so on Open's
  // thread or the ticker only.
  ::joule::Status Replay(uint64_t after);
  // The view and the engine from the newest snapshot and the records after it. Same threads.
  ::joule::Status Rebuild();
  // A snapshot with the history's full chunks the store lacks yet (SaveChunk before the snapshot).
  struct TakenSnapshot {
    store::Snapshot snapshot;
    struct Chunk {
      std::string_view log;  // "retired" or "audit"
      uint64_t index = 0;
      std::shared_ptr<const std::string> bytes;  // shared with the log: full chunks never change
    };
    std::vector<Chunk> chunks;
    std::map<std::string_view, uint64_t> counts;  // full chunks per log, once it is kept
  };
  TakenSnapshot TakeSnapshot() const;
  ::joule::Status Keep(const TakenSnapshot& taken);  // the new chunks, then the snapshot; without mu_
  // The ticker, leading, after a step: a snapshot for the committer to keep when one is due.
  void MaybeSnapshot(std::unique_lock<std::mutex>& lock);
  // The committer: keeps one step of the snapshot due (a history chunk, a piece of it where the
  // journal keeps pieces, or the snapshot), between appends.
  void KeepSnapshot(std::unique_lock<std::mutex>& lock);
  size_t keep_step_ = 0;        // the snapshot due: chunks, then pieces, kept so far
  double keep_seconds_ = 0;     // and the time its steps took
  bool snapshot_turn_ = false;  // the committer's next turn is the snapshot's
  // REQUIRES: mu_ held. Counts a snapshot kept (or logs why it was not).
  void Kept(const TakenSnapshot& taken, const ::joule::Status& kept, double seconds);
  // REQUIRES: mu_ held. Returns the record's ticket.
  uint64_t Enqueue(std::shared_ptr<Record> record);
  // REQUIRES: `lock` holds mu_. False when the journal failed (the change is not durable).
  bool WaitDurable(std::unique_lock<std::mutex>& lock, uint64_t ticket);
  bool Accepting() const { return running_ && !stopping_ && !broken_ && leader_; }  // REQUIRES: mu_ held
  ApiError NotAccepting() const;                                                    // REQUIRES: mu_ held; why not
  ApiError JournalFailed(std::string_view what) const;  // REQUIRES: mu_ held; `what` was not made durable
  void CommitLoop();
  // REQUIRES: mu_ held. Answers the waiters of tickets first..last; FailQueued fails what is queued.
  void Settle(uint64_t first, uint64_t last, bool durable);
  void Expect(uint64_t ticket, std::condition_variable& wake, Ack& outcome);
  void FailQueued();
  void TickLoop();
  void WaitForPass(std::unique_lock<std::mutex>& lock);  // the ticker, between passes
  void Recover(std::unique_lock<std::mutex>& lock);      // the ticker, while broken_
  void Follow(std::unique_lock<std::mutex>& lock);       // the ticker, while not leading
  void Log(std::string_view line) const;
  // REQUIRES: mu_ held. An input record's effect on the view, after it is durable (or replayed).
  void ApplyInput(uint64_t seq, const Record& record);
  // The engine step of a step record: consumes the inputs up to `through`. Engine thread only.
  Decisions RunStep(TimeMs at, uint64_t through);
  // REQUIRES: mu_ held.
  void ApplyDecisions(TimeMs at, const Decisions& decisions);
  void SetState(JobInfo& job, JobState state);
  // REQUIRES: mu_ held. Moves the jobs that ended job_retention before `at` to the history, and
  // forgets their idempotency keys (a key lives as long as its job is in the view).
  void Retire(TimeMs at);
  void AddAudit(const AuditEntry& entry) { audit_.Append(EncodeAudit(entry)); }
  // REQUIRES: mu_ held. The job in the view, or read back from the history into `holder`.
  const JobInfo* Lookup(JobId id, std::optional<JobInfo>& holder) const;
  // REQUIRES: mu_ held. The nodes' accelerators in use and jobs, from the engine: every node, or
  // (after a step) only those the step changed.
  void RefreshNodes(bool all = true);
  void Audit(uint64_t seq, const Record& record, std::string action, std::string target, std::string detail);
  bool Visible(const Principal& who, const JobInfo& job) const {
    return who.operator_role() || (who.tenant && *who.tenant == job.tenant);
  }
  Outcome<JobSpec> Resolve(const Principal& who, io::SubmitSpec& spec) const;

  const io::ServerConfig config_;
  const io::Scenario scenario_;
  Authenticator auth_;
  Clock clock_;
  ::joule::control::Log log_;
  // The committer's (and Open's) only; while broken_, the ticker's (the committer writes nothing).
  std::unique_ptr<store::Journal> journal_;
  std::unique_ptr<Engine> engine_;  // the ticker's (and Open's) only

  mutable std::mutex mu_;
  std::condition_variable commit_wake_, tick_wake_;
  struct Waiter {
    uint64_t ticket = 0;
    std::condition_variable* wake = nullptr;
    Ack* outcome = nullptr;  // the waiting caller's, set once by Settle
  };
  std::vector<Waiter> waiters_;        // callers waiting for their record to be durable
  std::condition_variable step_wake_;  // the ticker's, for its step record
  std::vector<Queued> queue_;
  uint64_t next_ticket_ = 1, durable_ticket_ = 0;
  std::optional<std::string> broken_;  // the journal's failure: nothing is accepted until Recover
  bool stopping_ = false, running_ = false;
  // This server appends and steps the engine; else it follows the journal. Atomic: the network
  // layer asks (leading()) on its I/O threads, which must never wait for the view's lock.
  std::atomic<bool> leader_ = false;
  std::atomic<bool> loaded_ = false;                  // Load has replayed the journal
  std::string address_;                               // set by Start
  bool followed_ = false;                             // caught up with the journal at least once since the last rebuild
  std::optional<TakenSnapshot> snapshot_due_;         // made by the ticker, kept by the committer
  std::map<std::string_view, uint64_t> chunks_kept_;  // the history's full chunks the store holds, per log
  bool snapshot_busy_ = false;                        // one snapshot at a time
  std::vector<Input> inputs_;                         // committed, not yet stepped
  uint64_t applied_seq_ = 0;
  JobId next_id_ = 1;
  std::string cluster_id_;       // from the journal's "cluster" record
  bool cluster_queued_ = false;  // this leader has enqueued one
  // REQUIRES: mu_ held. A leader whose journal has no id yet journals one (once).
  void EnsureClusterId();
  std::map<JobId, JobInfo> jobs_;
  std::map<std::pair<std::string, std::string>, IdempotencyEntry> idempotency_;  // (principal, key)
  std::map<JobState, size_t> state_count_;
  std::set<JobId> running_jobs_;   // the running jobs' ids
  std::vector<JobId> preempting_;  // running jobs told to stop: pending again once their grace ends
  std::vector<NodeInfo> nodes_;
  std::unordered_map<std::string_view, NodeId> node_by_name_;  // views into the fleet's names
  std::vector<uint32_t> largest_node_;                         // per accelerator type: most per node
  std::vector<uint64_t> fleet_accelerators_;                   // per accelerator type: the fleet's
  std::vector<TenantSpec> tenants_;                            // as changed by quota changes
  std::vector<PowerGovernor::Budget> budgets_;
  RowLog audit_;                              // AuditEntry rows, by seq
  RowLog retired_rows_;                       // retired jobs' rows, in the order they retired
  std::map<JobId, uint32_t> retired_;         // their rows by job id
  std::set<std::pair<TimeMs, JobId>> ended_;  // the view's ended jobs, by end: to retire
  TimeMs last_step_ = 0;
  Counters counters_;
  // Nodes with an agent (or awaited by agents_required), each with whether this server marked it
  // down for the agent's silence or absence; the agent's address and last heartbeat are in
  // NodeInfo::agent.
  std::map<uint32_t, bool> agent_marked_down_;
  // Journals an ended worker's measured energy unless it already is; returns the record's ticket.
  std::optional<uint64_t> JournalEnergy(JobInfo& job, const WorkerExit& e, TimeMs now, const std::string& who);
  std::map<JobId, std::map<uint32_t, int>> exits_;   // running jobs: ranks that exited, their codes
  std::set<JobId> finishing_;                        // running jobs whose end is journaled
  void CheckAgents(TimeMs now);                      // REQUIRES: mu_ held
  NodeAssignments AssignmentsOf(NodeId node) const;  // REQUIRES: mu_ held
  // Long-polling agents (WatchNode), by node; the nodes whose assignments the last decisions may
  // have changed; answered by the ticker after each pass, and when their wait ends.
  struct Watcher {
    uint64_t known = 0;
    std::chrono::steady_clock::time_point deadline;
    std::function<void(NodeAssignments)> notify;
  };
  std::multimap<uint32_t, Watcher> watchers_;
  std::vector<uint32_t> touched_;
  // REQUIRES: `lock` holds mu_; the ticker. Answers the watchers of touched nodes whose
  // assignments changed, and those whose wait ended (all of them when `all`).
  void NotifyWatchers(std::unique_lock<std::mutex>& lock, bool all);
  bool pass_wanted_ = false;               // inputs committed since the last pass: the ticker runs one soon
  double last_pass_seconds_ = 0;           // the last pass's duration: passes on events keep twice that apart
  static constexpr int kPassBatchMs = 10;  // a pass on events waits this long for more
  std::optional<TimeMs> first_tick_;       // agents_required: registrations counted from it
  bool registrations_checked_ = false;
  TimeMs next_silence_check_ = 0;  // CheckAgents' sweep, at most once a second
  std::thread committer_, ticker_;
};

}  // namespace joule::control
