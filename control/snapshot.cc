// The control plane's state as of the last record applied: a magic line, then six length-prefixed
// parts after their SHA-256 (a snapshot cut short or corrupted in the store is refused, not
// half read). One JSON document holds what is sized by the fleet and the tenants (nodes' health,
// quotas, inputs the engine has not consumed, the engine's per-node state); the binary form of
// io/bytes.h holds what is sized by the jobs: the view's jobs and idempotency keys, the engine's
// jobs, the engine's ended jobs' final states; last, the history (control/history.h): for the
// retired jobs' rows and for the audit log, how many full chunks the store holds and the partial
// last chunk. JSON of 222,000 pending jobs took 12.7 s to read back (every spec parsed
// again); see docs/benchmarks.md for what this form takes. Restoring it gives what replaying the
// journal up to that record gives (tests/control_test.cc compares both). What only a live server
// knows (agents' readings, workers' exits not yet journaled) is not in it, as it is not in the
// journal.
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control/control_plane.h"
#include "io/bytes.h"
#include "io/engine_state_json.h"
#include "io/journal_json.h"
#include "io/state_bytes.h"

namespace joule::control {
namespace {

using nlohmann::json;

constexpr std::string_view kMagic = "JOULE SNAPSHOT 2\n";
// The history's logs, as the store names their chunks.
constexpr std::string_view kRetiredLog = "retired", kAuditLog = "audit";

std::string EncodeEnded(const std::vector<std::pair<JobId, JobState>>& ended) {
  std::string out;
  io::ByteWriter w(out);
  w.U64(ended.size());
  JobId previous = 0;
  for (const auto& [id, state] : ended) {  // by id: deltas stay small
    w.U64(id - previous);
    w.Enum(state);
    previous = id;
  }
  return out;
}

Result<std::vector<std::pair<JobId, JobState>>> DecodeEnded(std::string_view bytes) {
  io::ByteReader in(bytes);
  std::vector<std::pair<JobId, JobState>> ended(in.Count());
  JobId id = 0;
  for (auto& [job, state] : ended) {
    id += in.U64();
    job = id;
    state = in.Enum(JobState::kRejected);
  }
  if (!in.done()) return Status::Error("the engine's ended jobs are malformed");
  return ended;
}

void WriteJob(io::ByteWriter& w, const JobInfo& j) {
  w.U64(j.id);
  io::WriteSubmitSpec(w, j.spec);
  w.U64(j.tenant.value());
  w.I64(j.priority);
  w.Enum(j.state);
  w.Enum(j.reason);
  w.Str(j.end_reason);
  w.I64(j.submitted);
  w.I64(j.started);
  w.I64(j.ended);
  w.U64(j.restarts);
  w.Str(j.submitted_by);
  w.U64(j.nodes.size());
  for (NodeId n : j.nodes) w.U64(n.value());
  w.U64(j.events.size());
  for (const JobEvent& e : j.events) {
    w.I64(e.at);
    w.Str(e.what);
  }
  w.U64(j.devices.size());
  for (const std::vector<uint32_t>& d : j.devices) w.Uints(d);
  w.U64(j.run);
  w.U64(j.power_limit_permille);
  w.U64(j.energy_final.size());
  for (const auto& [key, joules] : j.energy_final) {
    w.U64(key.first);
    w.U64(key.second);
    w.F64(joules);
  }
  w.Str(j.key);
}

JobInfo ReadJob(io::ByteReader& in) {
  JobInfo j;
  j.id = in.U64();
  j.spec = io::ReadSubmitSpec(in);
  j.tenant = TenantId(in.Uint<uint32_t>());
  j.priority = static_cast<int32_t>(in.I64());
  j.state = in.Enum(JobState::kRejected);
  j.reason = in.Enum(PendingReason::kBeginTime);
  j.end_reason = in.Str();
  j.submitted = in.I64();
  j.started = in.I64();
  j.ended = in.I64();
  j.restarts = in.Uint<uint32_t>();
  j.submitted_by = in.Str();
  j.nodes.resize(in.Count());
  for (NodeId& n : j.nodes) n = NodeId(in.Uint<uint32_t>());
  j.events.resize(in.Count());
  for (JobEvent& e : j.events) {
    e.at = in.I64();
    e.what = in.Str();
  }
  j.devices.resize(in.Count());
  for (std::vector<uint32_t>& d : j.devices) d = in.Uints<uint32_t>();
  j.run = in.Uint<uint32_t>();
  j.power_limit_permille = in.Uint<uint32_t>();
  for (size_t i = 0, n = in.Count(); i < n && in.ok(); ++i) {
    const uint32_t run = in.Uint<uint32_t>(), rank = in.Uint<uint32_t>();
    j.energy_final[{run, rank}] = in.F64();
  }
  j.key = in.Str();
  return j;
}

}  // namespace

std::string ControlPlane::EncodeSnapshot() const { return TakeSnapshot().snapshot.body; }

::joule::Status ControlPlane::SaveSnapshotNow() {
  const TakenSnapshot taken = TakeSnapshot();
  const ::joule::Status kept = Keep(taken);
  std::lock_guard lock(mu_);
  Kept(taken, kept, 0);
  return kept;
}

ControlPlane::TakenSnapshot ControlPlane::TakeSnapshot() const {
  EngineState engine = engine_->Save();
  // Under the lock: the view's jobs and keys encoded straight into their bytes (faster than a copy
  // of 280,000 jobs, which held requests back for hundreds of milliseconds), the rest copied.
  // Outside it: the JSON and the history. API readers and the committer wait for the first part
  // only.
  uint64_t seq = 0;
  JobId next_id = 0;
  std::string cluster;
  TimeMs last_step = 0;
  std::vector<Input> input_copy;
  std::string jobs;
  io::ByteWriter job_writer(jobs);
  std::vector<JobId> preempting;
  struct NodeState {
    NodeHealth health;
    std::string reason;
    TimeMs since;
    Actor actor;
  };
  std::vector<NodeState> node_copy;
  std::vector<TenantSpec> tenant_copy;
  RowLog audit_copy, retired_copy;
  std::map<std::string_view, uint64_t> kept;
  {
    std::lock_guard lock(mu_);
    seq = applied_seq_;
    next_id = next_id_;
    cluster = cluster_id_;
    last_step = last_step_;
    input_copy = inputs_;
    job_writer.U64(jobs_.size());
    for (const auto& [id, job] : jobs_) WriteJob(job_writer, job);
    job_writer.U64(idempotency_.size());
    for (const auto& [who_key, entry] : idempotency_) {
      job_writer.Str(who_key.first);
      job_writer.Str(who_key.second);
      job_writer.U64(entry.job);
      job_writer.Str(std::string_view(reinterpret_cast<const char*>(entry.request.data()), entry.request.size()));
    }
    preempting = preempting_;
    node_copy.reserve(nodes_.size());
    for (const NodeInfo& n : nodes_) node_copy.push_back({n.health, n.reason, n.since, n.actor});
    tenant_copy = tenants_;
    audit_copy = audit_;  // shares the full chunks
    retired_copy = retired_rows_;
    kept = chunks_kept_;
  }
  TakenSnapshot taken;
  // The history: the full chunks the store lacks go to it first; the snapshot counts them and
  // holds the partial last chunk.
  std::string history;
  io::ByteWriter history_writer(history);
  for (const auto& [log, rows] : {std::pair<std::string_view, const RowLog*>{kRetiredLog, &retired_copy},
                                  std::pair<std::string_view, const RowLog*>{kAuditLog, &audit_copy}}) {
    for (uint64_t i = kept[log]; i < rows->full_chunks(); ++i) taken.chunks.push_back({log, i, rows->chunk(i)});
    taken.counts[log] = rows->full_chunks();
    history_writer.U64(rows->full_chunks());
    history_writer.Str(rows->tail());
  }
  json inputs = json::array();
  for (const Input& in : input_copy) inputs.push_back({in.seq, io::EncodeEvent({0, in.event})});
  json nodes = json::array();
  for (const NodeState& n : node_copy) {
    nodes.push_back({static_cast<int>(n.health), n.reason, n.since, static_cast<int>(n.actor)});
  }
  json tenants = json::array();
  for (const TenantSpec& t : tenant_copy) {
    json reserved = json::array();
    for (const Reservation& r : t.reserved) reserved.push_back({r.type.value(), r.accelerators});
    tenants.push_back({reserved, t.borrow_limit ? json(*t.borrow_limit) : json(nullptr), t.weight});
  }
  const std::string engine_jobs = io::EncodeEngineJobs(engine.jobs);
  const std::string ended = EncodeEnded(engine.ended);
  engine.jobs.clear();
  engine.ended.clear();
  const json out = {{"seq", seq},
                    {"next_id", next_id},
                    {"cluster", cluster},
                    {"last_step", last_step},
                    {"inputs", std::move(inputs)},
                    {"preempting", preempting},
                    {"nodes", std::move(nodes)},
                    {"tenants", std::move(tenants)},
                    {"engine", io::EngineStateJson(engine)}};
  std::string parts;
  io::ByteWriter w(parts);
  w.Str(out.dump());
  w.Str(jobs);
  w.Str(engine_jobs);
  w.Str(ended);
  w.Str(history);
  const Digest digest = Sha256(parts);
  std::string body(kMagic);
  body.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  body += parts;
  taken.snapshot = {seq, std::move(body)};
  return taken;
}

::joule::Status ControlPlane::RestoreSnapshot(std::string_view text, const ChunkSource& chunks) {
  if (!text.starts_with(kMagic)) {
    return ::joule::Status::Error("snapshot: not a snapshot of this version (a server older than this one kept it)");
  }
  const std::string_view stored = text.substr(kMagic.size());
  constexpr size_t kDigest = std::tuple_size_v<Digest>;
  if (stored.size() < kDigest || std::memcmp(Sha256(stored.substr(kDigest)).data(), stored.data(), kDigest) != 0) {
    return ::joule::Status::Error("snapshot: its checksum does not match: cut short or corrupted");
  }
  io::ByteReader parts(stored.substr(kDigest));
  const std::string_view document = parts.Str(), job_bytes = parts.Str(), engine_job_bytes = parts.Str(),
                         ended_bytes = parts.Str(), history_bytes = parts.Str();
  if (!parts.done()) return ::joule::Status::Error("snapshot: cut short or malformed");
  // The history: each log's full chunks from the store, then its last chunk from the snapshot.
  io::ByteReader history(history_bytes);
  std::map<std::string_view, RowLog> logs;
  std::map<std::string_view, uint64_t> counts;
  for (std::string_view log : {kRetiredLog, kAuditLog}) {
    const uint64_t count = history.U64();
    const std::string_view tail = history.Str();
    if (!history.ok()) return ::joule::Status::Error("snapshot: its history part is malformed");
    Result<std::vector<std::string>> full = chunks ? chunks(log, count) : journal_->LoadChunks(log, count);
    if (!full.ok()) return ::joule::Status::Error(fmt::format("snapshot: {}", full.status().message()));
    Result<RowLog> rows = RowLog::FromChunks(std::move(*full), tail, config_.history_chunk_bytes);
    if (!rows.ok())
      return ::joule::Status::Error(fmt::format("snapshot: the {} log: {}", log, rows.status().message()));
    logs.emplace(log, std::move(*rows));
    counts[log] = count;
  }
  if (!history.done()) return ::joule::Status::Error("snapshot: its history part is malformed");
  const json j = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return ::joule::Status::Error("snapshot: its document is not JSON");
  try {
    Result<EngineState> engine = io::EngineStateOf(j.at("engine"));
    if (!engine.ok()) return engine.status();
    Result<std::vector<EngineState::Job>> engine_jobs = io::DecodeEngineJobs(engine_job_bytes);
    if (!engine_jobs.ok()) return ::joule::Status::Error(fmt::format("snapshot: {}", engine_jobs.status().message()));
    engine->jobs = std::move(*engine_jobs);
    Result<std::vector<std::pair<JobId, JobState>>> ended = DecodeEnded(ended_bytes);
    if (!ended.ok()) return ::joule::Status::Error(fmt::format("snapshot: {}", ended.status().message()));
    engine->ended = std::move(*ended);
    std::lock_guard lock(mu_);
    ResetView();
    if (::joule::Status s = engine_->Restore(*engine); !s.ok()) return s;
    applied_seq_ = j.at("seq").get<uint64_t>();
    next_id_ = j.at("next_id").get<JobId>();
    cluster_id_ = j.value("cluster", std::string());  // absent in snapshots older than ids
    last_step_ = j.at("last_step").get<TimeMs>();
    for (const json& in : j.at("inputs")) {
      Result<io::TimedEvent> e = io::DecodeEvent(in.at(1).get<std::string>());
      if (!e.ok())
        return ::joule::Status::Error(fmt::format("snapshot: input {}: {}", in.at(0).dump(), e.status().message()));
      inputs_.push_back({in.at(0).get<uint64_t>(), std::move(e->event)});
    }
    io::ByteReader jobs(job_bytes);
    for (size_t i = 0, n = jobs.Count(); i < n; ++i) {
      JobInfo job = ReadJob(jobs);
      if (!jobs.ok()) return ::joule::Status::Error(fmt::format("snapshot: job {} of the view is malformed", i + 1));
      state_count_[job.state]++;
      if (job.state == JobState::kRunning) running_jobs_.insert(job.id);
      if (job.state != JobState::kPending && job.state != JobState::kRunning) ended_.emplace(job.ended, job.id);
      const JobId id = job.id;
      jobs_.emplace_hint(jobs_.end(), id, std::move(job));
    }
    for (size_t i = 0, n = jobs.Count(); i < n && jobs.ok(); ++i) {
      std::string who(jobs.Str()), key(jobs.Str());
      IdempotencyEntry entry{jobs.U64(), {}, 0};
      const std::string_view digest = jobs.Str();
      if (digest.size() != entry.request.size()) jobs.Fail();
      if (jobs.ok()) std::copy(digest.begin(), digest.end(), entry.request.begin());
      idempotency_[{std::move(who), std::move(key)}] = entry;
    }
    if (!jobs.done()) return ::joule::Status::Error("snapshot: the view's jobs or idempotency keys are malformed");
    preempting_ = j.at("preempting").get<std::vector<JobId>>();
    const json& nodes = j.at("nodes");
    if (nodes.size() != nodes_.size()) return ::joule::Status::Error("snapshot: another fleet's nodes");
    for (size_t n = 0; n < nodes_.size(); ++n) {
      const json& node = nodes[n];
      nodes_[n].health = static_cast<NodeHealth>(node.at(0).get<int>());
      nodes_[n].reason = node.at(1).get<std::string>();
      nodes_[n].since = node.at(2).get<TimeMs>();
      nodes_[n].actor = static_cast<Actor>(node.at(3).get<int>());
    }
    const json& tenants = j.at("tenants");
    if (tenants.size() != tenants_.size()) return ::joule::Status::Error("snapshot: another scenario's tenants");
    for (size_t t = 0; t < tenants_.size(); ++t) {
      tenants_[t].reserved.clear();
      for (const json& r : tenants[t].at(0)) {
        tenants_[t].reserved.push_back({AcceleratorTypeId(r.at(0).get<uint32_t>()), r.at(1).get<uint32_t>()});
      }
      tenants_[t].borrow_limit =
          tenants[t].at(1).is_null() ? std::nullopt : std::optional<uint32_t>(tenants[t].at(1).get<uint32_t>());
      tenants_[t].weight = tenants[t].at(2).get<double>();
    }
    // Each row read whole once here, so that no read later can meet a malformed one (chunks
    // come from the store, outside the snapshot's checksum).
    RowLog& audit = logs.at(kAuditLog);
    for (size_t i = 0; i < audit.size(); ++i) {
      if (!DecodeAudit(audit.row(i)).ok()) {
        return ::joule::Status::Error(fmt::format("snapshot: audit entry {} is malformed", i + 1));
      }
    }
    audit_ = std::move(audit);
    RowLog& retired = logs.at(kRetiredLog);
    for (size_t i = 0; i < retired.size(); ++i) {
      Result<JobInfo> job = DecodeRetired(retired.row(i));
      if (!job.ok() || jobs_.contains(job->id) || !retired_.emplace(job->id, static_cast<uint32_t>(i)).second) {
        return ::joule::Status::Error(fmt::format("snapshot: retired job row {} is malformed or repeated", i + 1));
      }
      state_count_[job->state]++;
    }
    retired_rows_ = std::move(retired);
    chunks_kept_ = counts;
  } catch (const json::exception& e) {
    return ::joule::Status::Error(fmt::format("snapshot: {}", e.what()));
  }
  std::lock_guard lock(mu_);
  budgets_.assign(engine_->power().budgets().begin(), engine_->power().budgets().end());
  RefreshNodes();
  return ::joule::Status::Ok();
}

}  // namespace joule::control
