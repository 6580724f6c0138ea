#include "control/control_plane.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/check.h"
#include "control/journal_records.h"
#include "io/journal_json.h"
#include "store/etcd_journal.h"

namespace joule::control {

using nlohmann::json;

std::string StateName(JobState state) {
  std::string name(JobStateName(state));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

// ---- Opening and replay ----

ControlPlane::ControlPlane(io::ServerConfig config, io::Scenario scenario, std::unique_ptr<store::Journal> journal,
                           Clock clock, ::joule::control::Log log)
    : config_(std::move(config)),
      scenario_(std::move(scenario)),
      clock_(std::move(clock)),
      log_(std::move(log)),
      journal_(std::move(journal)) {
  ResetView();
  for (const io::TokenSpec& t : config_.tokens) {
    Principal p{t.name, std::nullopt};
    if (t.tenant) p.tenant = FindTenant(*t.tenant);
    auth_.Add(std::move(p), FromHex(t.sha256));
  }
  auth_.SetNodeKey(config_.node_key);
  // Indexes the request paths use, built once: node names, and per accelerator type the most a
  // node of the fleet holds (what a worker may ask for).
  const Fleet& fleet = scenario_.fleet;
  node_by_name_.reserve(fleet.nodes().size());
  largest_node_.assign(fleet.catalog().accelerators().size(), 0);
  fleet_accelerators_.assign(fleet.catalog().accelerators().size(), 0);
  for (uint32_t n = 0; n < fleet.nodes().size(); ++n) {
    node_by_name_.emplace(fleet.NodeName(NodeId(n)), NodeId(n));
    const NodeType& type = fleet.node_type(NodeId(n));
    if (type.accelerator) {
      uint32_t& largest = largest_node_[type.accelerator->value()];
      largest = std::max(largest, type.accelerators);
      fleet_accelerators_[type.accelerator->value()] += type.accelerators;
    }
  }
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::Open(const io::ServerConfig& config, Clock clock,
                                                         ::joule::control::Log log,
                                                         std::unique_ptr<store::Journal> journal) {
  Result<std::unique_ptr<ControlPlane>> plane = Create(config, std::move(clock), std::move(log), std::move(journal));
  if (!plane.ok()) return plane;
  if (::joule::Status s = (*plane)->Load(); !s.ok()) return s;
  return plane;
}

::joule::Status ControlPlane::Load() {
  JOULE_CHECK(!loaded_);
  if (::joule::Status s = Rebuild(); !s.ok()) return s;
  loaded_ = true;
  return ::joule::Status::Ok();
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::Create(const io::ServerConfig& config, Clock clock,
                                                           ::joule::control::Log log,
                                                           std::unique_ptr<store::Journal> journal) {
  Result<io::Scenario> scenario = io::LoadScenario(config.scenario);
  if (!scenario.ok()) return scenario.status();
  // Names in the config must exist in the scenario.
  for (size_t i = 0; i < config.tokens.size(); ++i) {
    const io::TokenSpec& t = config.tokens[i];
    if (!t.tenant) continue;
    const bool known = std::any_of(scenario->tenants.begin(), scenario->tenants.end(),
                                   [&](const TenantSpec& s) { return s.name == *t.tenant; });
    if (!known) {
      return Status::Error(
          fmt::format("server config: tokens[{}].tenant: '{}' is not a tenant of {}", i, *t.tenant, config.scenario));
    }
  }
  for (size_t i = 0; i < config.queues.size(); ++i) {
    for (const std::string& type : config.queues[i].gpu_types) {
      if (!scenario->fleet.catalog().FindAccelerator(type)) {
        return Status::Error(
            fmt::format("server config: queues[{}].gpu_types: '{}' is not an accelerator type", i, type));
      }
    }
  }
  // The state file's folder is made if missing (a fresh checkout has no out/).
  if (const std::filesystem::path folder = std::filesystem::path(config.state).parent_path(); !folder.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) return Status::Error(fmt::format("{}: cannot make the state folder: {}", config.state, ec.message()));
  }
  if (!journal && config.etcd) {
    Result<std::unique_ptr<store::EtcdJournal>> etcd = store::EtcdJournal::Open(
        {config.etcd->endpoints, config.etcd->prefix, static_cast<int>(config.etcd->lease_seconds),
         static_cast<int>(config.etcd->timeout_ms)});
    if (!etcd.ok()) return etcd.status();
    journal = std::move(*etcd);
  }
  if (!journal) {
    Result<std::unique_ptr<store::SqliteJournal>> sqlite = store::SqliteJournal::Open(config.state);
    if (!sqlite.ok()) return sqlite.status();
    journal = std::move(*sqlite);
  }
  std::unique_ptr<ControlPlane> plane(
      new ControlPlane(config, std::move(*scenario), std::move(journal), std::move(clock), std::move(log)));
  return plane;
}

std::optional<TenantId> ControlPlane::FindTenant(std::string_view name) const {
  for (size_t i = 0; i < scenario_.tenants.size(); ++i) {
    if (scenario_.tenants[i].name == name) return TenantId(static_cast<uint32_t>(i));
  }
  return std::nullopt;
}

std::optional<NodeId> ControlPlane::FindNode(std::string_view name) const {
  auto it = node_by_name_.find(name);
  if (it == node_by_name_.end()) return std::nullopt;
  return it->second;
}

double JobInfo::energy_joules() const {
  double sum = 0;
  for (const auto& [key, joules] : energy_final) sum += joules;
  for (const auto& [key, joules] : energy_live) sum += joules;
  return sum;
}

double AgentView::power_w() const {
  double sum = 0;
  for (const GpuTelemetry& g : gpus) sum += g.power_w;
  return sum;
}

void ControlPlane::ResetView() {
  const Fleet& fleet = scenario_.fleet;
  engine_ = std::make_unique<Engine>(fleet, scenario_.tenants);
  inputs_.clear();
  applied_seq_ = 0;
  next_id_ = 1;
  cluster_id_.clear();
  cluster_queued_ = false;
  jobs_.clear();
  idempotency_.clear();
  state_count_.clear();
  running_jobs_.clear();
  preempting_.clear();
  nodes_.assign(fleet.nodes().size(), NodeInfo{});
  tenants_ = scenario_.tenants;
  budgets_.clear();
  audit_ = RowLog(config_.history_chunk_bytes);
  retired_rows_ = RowLog(config_.history_chunk_bytes);
  chunks_kept_.clear();
  retired_.clear();
  ended_.clear();
  last_step_ = 0;
  agent_marked_down_.clear();
  exits_.clear();
  finishing_.clear();
  first_tick_.reset();
  registrations_checked_ = false;
}

// Another server may keep a newer snapshot, and compact the records this one is about to read,
// between the two steps below: then the replay finds a gap, and the newer snapshot is loaded.
::joule::Status ControlPlane::Rebuild() {
  ::joule::Status replayed = ::joule::Status::Ok();
  for (int attempt = 0; attempt < 5; ++attempt) {
    {
      std::lock_guard lock(mu_);
      ResetView();
    }
    Result<std::optional<store::Snapshot>> snapshot = journal_->LoadSnapshot();
    if (!snapshot.ok()) return snapshot.status();
    uint64_t from = 0;
    if (*snapshot) {
      if (::joule::Status s = RestoreSnapshot((*snapshot)->body); !s.ok()) {
        return ::joule::Status::Error(fmt::format("the snapshot at record {}: {}", (*snapshot)->seq, s.message()));
      }
      from = (*snapshot)->seq;
      std::lock_guard lock(mu_);
      counters_.snapshot_seq = from;
      counters_.snapshot_bytes = (*snapshot)->body.size();
    }
    replayed = Replay(from);
    if (replayed.ok()) return replayed;
    Result<std::optional<store::Snapshot>> newest = journal_->LoadSnapshot();
    if (!newest.ok() || !*newest || (*newest)->seq == from) return replayed;
  }
  return replayed;
}

::joule::Status ControlPlane::Replay(uint64_t after) {
  std::optional<std::string> error;
  std::unique_lock lock(mu_);
  uint64_t last = after;
  ::joule::Status read = journal_->Read(after, [&](const store::JournalEntry& entry) {
    if (error) return;
    if (entry.seq != last + 1) {
      error = fmt::format("journal record {} follows record {}: the records between were compacted into a snapshot",
                          entry.seq, last);
      return;
    }
    last = entry.seq;
    Result<JournalRecord> r = DecodeRecord(entry.payload);
    if (!r.ok()) {
      error = fmt::format("{}: journal record {}: {}", config_.state, entry.seq, r.status().message());
      return;
    }
    if (r->type == Record::Type::kStep) {
      lock.unlock();
      const Decisions d = RunStep(r->at, r->through);
      lock.lock();
      ApplyDecisions(r->at, d);
      return;
    }
    ApplyInput(entry.seq, *r);
  });
  if (!read.ok()) return read;
  if (error) return ::joule::Status::Error(*error);
  applied_seq_ = last;
  RefreshNodes();
  return ::joule::Status::Ok();
}

ControlPlane::~ControlPlane() { Stop(); }

void ControlPlane::Start(std::string address) {
  JOULE_CHECK(loaded_);
  {
    std::lock_guard lock(mu_);
    if (running_) return;
    address_ = std::move(address);
  }
  // A server that can lead at once (always, on SQLite) does before it answers anyone.
  Result<bool> won = journal_->Campaign(address_);
  bool leads = won.ok() && *won;
  if (leads && !Replay(applied_seq_).ok()) {
    journal_->Resign();
    leads = false;
  }
  std::lock_guard lock(mu_);
  if (leads) {
    leader_ = true;
    counters_.elections_won++;
  }
  running_ = true;
  if (leads) EnsureClusterId();
  committer_ = std::thread([this] { CommitLoop(); });
  ticker_ = std::thread([this] { TickLoop(); });
}

void ControlPlane::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stopping_ = true;
  }
  commit_wake_.notify_all();
  tick_wake_.notify_all();
  ticker_.join();
  committer_.join();
  journal_->Resign();  // another replica takes over now, not after the lease runs out
  std::lock_guard lock(mu_);
  running_ = false;
  leader_ = false;
}

bool ControlPlane::ready() const {
  std::lock_guard lock(mu_);
  return running_ && !stopping_ && !broken_ && (leader_ || followed_);
}

bool ControlPlane::leading() const { return leader_; }

std::string ControlPlane::leader_address() const {
  std::lock_guard lock(mu_);
  return leader_ ? address_ : journal_->leader();
}

ApiError ControlPlane::NotAccepting() const {
  if (broken_) return {503, "", fmt::format("the journal failed, changes are refused until it recovers: {}", *broken_)};
  if (running_ && !stopping_ && !leader_) {
    const std::string leader = journal_->leader();
    return {503, "",
            leader.empty() ? "this server follows and no leader is known yet: retry"
                           : fmt::format("this server follows; the leader is {}", leader)};
  }
  return {503, "", "the server is starting or stopping: retry"};
}

ApiError ControlPlane::JournalFailed(std::string_view what) const {
  return {503, "", fmt::format("the journal failed, the {} was not accepted: {}", what, broken_.value_or("unknown"))};
}

std::optional<std::string> ControlPlane::journal_error() const {
  std::lock_guard lock(mu_);
  return broken_;
}

// ---- The commit pipeline ----

uint64_t ControlPlane::Enqueue(std::shared_ptr<Record> record) {
  std::string payload = EncodeRecord(*record);
  const uint64_t ticket = next_ticket_++;
  queue_.push_back({std::move(payload), std::move(record), ticket});
  commit_wake_.notify_one();
  return ticket;
}

// Each waiting thread sleeps on its own condition variable and is woken only when its record's
// batch is committed or failed: one commit wakes the callers it answered, not every caller
// waiting for the next. The outcome is the waiter's own, so a later commit cannot make a failed
// record look durable.
bool ControlPlane::WaitDurable(std::unique_lock<std::mutex>& lock, uint64_t ticket) {
  if (ticket <= durable_ticket_) return true;  // REQUIRES: a failed ticket is not waited on again
  thread_local std::condition_variable mine;
  Ack outcome = Ack::kWaiting;
  waiters_.push_back({ticket, &mine, &outcome});
  mine.wait(lock, [&] { return outcome != Ack::kWaiting; });
  return outcome == Ack::kDurable;
}

// The ticker lets go of the lock between enqueueing its step and waiting for it (it runs the
// engine meanwhile), and the step may be settled in between: it registers before letting go.
// REQUIRES: mu_ held, right after Enqueue.
void ControlPlane::Expect(uint64_t ticket, std::condition_variable& wake, Ack& outcome) {
  outcome = Ack::kWaiting;
  waiters_.push_back({ticket, &wake, &outcome});
}

void ControlPlane::Settle(uint64_t first, uint64_t last, bool durable) {
  std::erase_if(waiters_, [&](const Waiter& w) {
    if (w.ticket < first || w.ticket > last) return false;
    *w.outcome = durable ? Ack::kDurable : Ack::kFailed;
    w.wake->notify_one();
    return true;
  });
}

void ControlPlane::FailQueued() {
  if (queue_.empty()) return;
  Settle(queue_.front().ticket, queue_.back().ticket, false);
  queue_.clear();
}

void ControlPlane::CommitLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    commit_wake_.wait(lock, [&] { return !queue_.empty() || snapshot_due_ || stopping_; });
    // A snapshot takes turns with the appends: one step of it, then what queued meanwhile.
    if (snapshot_due_ && (queue_.empty() || snapshot_turn_)) {
      snapshot_turn_ = false;
      KeepSnapshot(lock);
      continue;
    }
    snapshot_turn_ = true;
    if (queue_.empty()) return;  // stopping, nothing left
    // Nothing is written while the journal is broken: the ticker rebuilds the view first.
    if (broken_) {
      FailQueued();
      continue;
    }
    std::vector<Queued> batch;
    batch.swap(queue_);
    lock.unlock();
    std::vector<std::string> payloads;
    payloads.reserve(batch.size());
    for (Queued& q : batch) payloads.push_back(std::move(q.payload));
    const auto begin = std::chrono::steady_clock::now();
    Result<uint64_t> last = journal_->Append(payloads);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    lock.lock();
    if (!last.ok()) {
      broken_ = last.status().message();
      counters_.journal_failures++;
      Log(fmt::format("the journal failed, changes are refused until it recovers: {}", *broken_));
      Settle(batch.front().ticket, batch.back().ticket, false);
      FailQueued();
      tick_wake_.notify_all();
      continue;
    }
    const uint64_t first = *last - batch.size() + 1;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Record::Type type = batch[i].record->type;
      if (type == Record::Type::kStep) continue;
      ApplyInput(first + i, *batch[i].record);
      counters_.inputs++;
      // A submit, cancel, end, health or quota change: the engine has something to decide.
      if (type != Record::Type::kEnergy && type != Record::Type::kCluster && !pass_wanted_) {
        pass_wanted_ = true;
        tick_wake_.notify_all();
      }
    }
    applied_seq_ = *last;
    durable_ticket_ = batch.back().ticket;
    counters_.journal_records += batch.size();
    counters_.journal_commits++;
    counters_.commit_seconds_sum += seconds;
    Settle(batch.front().ticket, batch.back().ticket, true);
  }
}

// REQUIRES: `lock` holds mu_; the committer. Keeps the snapshot the ticker made (not while the
// journal is broken: the view it was taken from is being rebuilt).
void ControlPlane::KeepSnapshot(std::unique_lock<std::mutex>& lock) {
  if (broken_) {
    snapshot_due_.reset();
    keep_step_ = 0;
    snapshot_busy_ = false;
    return;
  }
  // One step: a history chunk, a piece of the body, the snapshot itself once all are kept (the
  // whole body, where the journal keeps no pieces), then one of the older pieces dropped. The
  // taken snapshot stays put meanwhile: only this thread clears it, and the ticker takes no other
  // while snapshot_busy_.
  const TakenSnapshot& taken = *snapshot_due_;
  const std::string& body = taken.snapshot.body;
  const size_t pieces =
      journal_->snapshot_pieces() ? (body.size() + config_.snapshot_piece_bytes - 1) / config_.snapshot_piece_bytes : 0;
  const size_t step = keep_step_;
  lock.unlock();
  const auto begin = std::chrono::steady_clock::now();
  ::joule::Status kept = ::joule::Status::Ok();
  bool done = false;
  if (step < taken.chunks.size()) {
    const TakenSnapshot::Chunk& chunk = taken.chunks[step];
    kept = journal_->SaveChunk(chunk.log, chunk.index, *chunk.bytes);
  } else if (const size_t piece = step - taken.chunks.size(); piece < pieces) {
    kept = journal_->SaveSnapshotPiece(
        taken.snapshot.seq, static_cast<uint32_t>(piece),
        std::string_view(body).substr(piece * config_.snapshot_piece_bytes, config_.snapshot_piece_bytes));
  } else if (step == taken.chunks.size() + pieces) {
    kept = journal_->SaveSnapshot(taken.snapshot.seq, pieces > 0 ? std::string_view() : std::string_view(body),
                                  config_.etcd.has_value() || config_.compact_journal);
    done = pieces == 0;
  } else {
    // Then the older snapshots' pieces, one a step; should that fail, the next snapshot drops them.
    Result<bool> more = journal_->DropOlderSnapshotPiece(taken.snapshot.seq);
    if (!more.ok()) Log(fmt::format("older snapshot pieces were left in the journal: {}", more.status().message()));
    done = !more.ok() || !*more;
  }
  keep_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  lock.lock();
  if (!done && kept.ok()) {
    keep_step_++;
    return;
  }
  Kept(taken, kept, keep_seconds_);
  snapshot_due_.reset();
  keep_step_ = 0;
  keep_seconds_ = 0;
  snapshot_busy_ = false;
}

::joule::Status ControlPlane::Keep(const TakenSnapshot& taken) {
  for (const TakenSnapshot::Chunk& chunk : taken.chunks) {
    if (::joule::Status s = journal_->SaveChunk(chunk.log, chunk.index, *chunk.bytes); !s.ok()) return s;
  }
  return journal_->SaveSnapshot(taken.snapshot.seq, taken.snapshot.body,
                                config_.etcd.has_value() || config_.compact_journal);
}

void ControlPlane::Kept(const TakenSnapshot& taken, const ::joule::Status& kept, double seconds) {
  if (!kept.ok()) {
    Log(fmt::format("a snapshot at record {} was not kept (every record still is): {}", taken.snapshot.seq,
                    kept.message()));
    return;
  }
  for (const auto& [log, count] : taken.counts) chunks_kept_[log] = std::max(chunks_kept_[log], count);
  counters_.snapshots++;
  counters_.snapshot_seq = taken.snapshot.seq;
  counters_.snapshot_bytes = taken.snapshot.body.size();
  counters_.snapshot_seconds += seconds;
}

void ControlPlane::TickLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Not leading (or unable to): long-polling agents are answered now, to find the leader.
    if ((broken_ || !leader_) && !watchers_.empty()) NotifyWatchers(lock, /*all=*/true);
    if (broken_) {
      Recover(lock);
      continue;
    }
    if (!leader_) {
      Follow(lock);
      continue;
    }
    if (!journal_->leading()) {
      // The lease ran out (a pause, a partition): another server may lead already. The engine
      // may be ahead of the journal, so the view is rebuilt before following.
      broken_ = "this server lost its lease to lead";
      Log("no longer leading: the lease ran out; rebuilding from the journal to follow");
      continue;
    }
    const TimeMs now = std::max(clock_(), last_step_);
    CheckAgents(now);
    auto step = std::make_shared<Record>();
    step->type = Record::Type::kStep;
    step->at = now;
    step->through = applied_seq_;
    Ack step_outcome = Ack::kWaiting;
    Expect(Enqueue(step), step_wake_, step_outcome);
    lock.unlock();
    const auto begin = std::chrono::steady_clock::now();
    const uint64_t passes_before = engine_->passes();
    const Decisions d = RunStep(now, step->through);
    const uint64_t passes_run = engine_->passes() - passes_before;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    lock.lock();
    // Decisions are shown only once the step that made them is durable: a restart re-makes them.
    // A step that failed has moved the engine past the journal: Recover rebuilds it.
    step_wake_.wait(lock, [&] { return step_outcome != Ack::kWaiting; });
    if (step_outcome != Ack::kDurable) continue;
    ApplyDecisions(now, d);
    counters_.steps++;
    counters_.passes += passes_run;
    counters_.step_seconds_sum += seconds;
    counters_.step_seconds_max = std::max(counters_.step_seconds_max, seconds);
    last_pass_seconds_ = seconds;
    NotifyWatchers(lock, /*all=*/false);
    MaybeSnapshot(lock);
    WaitForPass(lock);
  }
  NotifyWatchers(lock, /*all=*/true);  // stopping: answered now rather than dropped
}

// Between passes: the next is due a tick after this one, or sooner once inputs were committed
// (pass_wanted_): not sooner than twice the last pass's duration after it (passes over a large
// queue take at most a third of the time) and kPassBatchMs after it is wanted (inputs arriving
// together share one pass). Long-polling agents whose wait ended are answered every
// kWatchersEvery meanwhile. Inputs arriving during a wait end it, so that the next wait is for
// `earliest`: waiting on for the other deadlines held a backlog's release up to 250 ms.
void ControlPlane::WaitForPass(std::unique_lock<std::mutex>& lock) {
  using Steady = std::chrono::steady_clock;
  const Steady::time_point begin = Steady::now();
  const Steady::time_point tick = begin + std::chrono::milliseconds(config_.tick_ms);
  const Steady::time_point earliest =
      begin + std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(2 * last_pass_seconds_));
  constexpr auto kWatchersEvery = std::chrono::milliseconds(250);
  Steady::time_point watchers_due = begin + kWatchersEvery;
  while (!stopping_) {
    const Steady::time_point now = Steady::now();
    if (now >= tick) break;
    if (pass_wanted_ && now >= earliest) {
      tick_wake_.wait_for(lock, std::chrono::milliseconds(kPassBatchMs), [&] { return stopping_; });
      break;
    }
    if (!watchers_.empty() && now >= watchers_due) {
      NotifyWatchers(lock, /*all=*/false);
      watchers_due = now + kWatchersEvery;
      continue;
    }
    Steady::time_point until = tick;
    if (pass_wanted_) until = std::min(until, earliest);
    if (!watchers_.empty()) until = std::min(until, watchers_due);
    const bool wanted = pass_wanted_;
    tick_wake_.wait_until(lock, until, [&] { return stopping_ || pass_wanted_ != wanted; });
  }
  pass_wanted_ = false;
}

// Every snapshot_records records, the state after this step, encoded here (the engine is idle on
// its own thread) and kept by the committer between two appends (it owns the journal). A snapshot
// that fails to be kept is logged and tried again later: the journal still holds every record.
void ControlPlane::MaybeSnapshot(std::unique_lock<std::mutex>& lock) {
  const uint32_t every = config_.snapshot_records.value_or(kSnapshotRecords);
  if (every == 0 || snapshot_busy_ || applied_seq_ < counters_.snapshot_seq + every) return;
  snapshot_busy_ = true;
  lock.unlock();
  const auto begin = std::chrono::steady_clock::now();
  TakenSnapshot taken = TakeSnapshot();
  if (journal_->concurrent_snapshots()) {
    // etcd: kept from here, between the committer's appends rather than instead of them (a
    // snapshot of 66,000 jobs held commits back 5.3 s when the committer kept it).
    const ::joule::Status kept = Keep(taken);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    lock.lock();
    snapshot_busy_ = false;
    Kept(taken, kept, seconds);
    return;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  lock.lock();
  snapshot_due_ = std::move(taken);
  counters_.snapshot_seconds += seconds;
  commit_wake_.notify_one();
}

// The journal failed: the engine may have run a step the journal lacks and callers were told
// "no", so the view is rebuilt from the journal as a restart would, once the journal answers
// again. Runs on the ticker (the engine's thread); the committer writes nothing meanwhile.
void ControlPlane::Recover(std::unique_lock<std::mutex>& lock) {
  tick_wake_.wait_for(lock, std::chrono::milliseconds(kRecoverRetryMs), [&] { return stopping_; });
  if (stopping_) return;
  lock.unlock();
  journal_->Resign();
  const auto begin = std::chrono::steady_clock::now();
  ::joule::Status s = journal_->Reopen();
  if (s.ok()) {
    s = Rebuild();
  }
  lock.lock();
  if (!s.ok()) {
    if (s.message() != *broken_) Log(fmt::format("the journal is still failing: {}", s.message()));
    broken_ = s.message();
    return;
  }
  FailQueued();  // records enqueued before the failure was seen belong to the old view
  broken_.reset();
  leader_ = false;  // Follow campaigns again
  followed_ = false;
  counters_.journal_recoveries++;
  Log(fmt::format("the journal recovered: {} records replayed in {:.2f} s; accepting changes", applied_seq_,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count()));
}

// Not leading: catch up with what the leader appended, then try to lead. A server that wins has
// read every record its predecessor could append (the predecessor's appends are fenced once the
// leader key is another's), so its engine and view continue exactly where the journal stops.
void ControlPlane::Follow(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  const uint64_t after = [&] {
    std::lock_guard view(mu_);
    return applied_seq_;
  }();
  ::joule::Status s = Replay(after);
  bool won = false;
  if (s.ok()) {
    Result<bool> campaign = journal_->Campaign(address_);
    if (campaign.ok()) {
      won = *campaign;
    } else {
      s = campaign.status();
    }
  }
  if (won) {
    const uint64_t caught_up = [&] {
      std::lock_guard view(mu_);
      return applied_seq_;
    }();
    s = Replay(caught_up);
    if (!s.ok()) journal_->Resign();
  }
  lock.lock();
  if (!s.ok()) {
    // A replay that failed half way (etcd gone, records compacted while this server lagged) left
    // the view part applied: rebuild it from the snapshot and the journal, as after a failure.
    Log(fmt::format("following the journal: {}; rebuilding", s.message()));
    broken_ = s.message();
    return;
  }
  followed_ = true;
  if (won) {
    leader_ = true;
    counters_.elections_won++;
    Log(fmt::format("leading from journal record {}", applied_seq_));
    return;
  }
  tick_wake_.wait_for(lock, std::chrono::milliseconds(kFollowMs), [&] { return stopping_; });
}

void ControlPlane::EnsureClusterId() {
  if (!cluster_id_.empty() || cluster_queued_ || !Accepting()) return;
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kCluster;
  record->at = clock_();
  record->who = "server";
  record->key = NewToken().substr(0, 32);  // 128 random bits
  (void)Enqueue(record);
  cluster_queued_ = true;
}

std::string ControlPlane::cluster_id() const {
  std::lock_guard lock(mu_);
  return cluster_id_;
}

void ControlPlane::Log(std::string_view line) const {
  if (log_) log_(line);
}

}  // namespace joule::control
