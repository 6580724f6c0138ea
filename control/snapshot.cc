// The control plane's state as one JSON document: the view (jobs, idempotency keys, nodes'
// health, tenants' quotas, the audit log, inputs the engine has not consumed) and the engine's
// state, as of the last record applied. Restoring it gives what replaying the journal up to that
// record gives (tests/control_test.cc compares both). What only a live server knows (agents'
// readings, workers' exits not yet journaled) is not in it, as it is not in the journal.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control/control_plane.h"
#include "io/engine_state_json.h"
#include "io/journal_json.h"

namespace joule::control {
namespace {

using nlohmann::json;

constexpr int kSnapshotVersion = 1;

json JobJson(const JobInfo& j) {
  json events = json::array();
  for (const JobEvent& e : j.events) events.push_back({e.at, e.what});
  json nodes = json::array();
  for (NodeId n : j.nodes) nodes.push_back(n.value());
  json energy = json::array();
  for (const auto& [key, joules] : j.energy_final) energy.push_back({key.first, key.second, joules});
  return {{"id", j.id},
          {"spec", io::EncodeJobSpec(j.spec)},
          {"tenant", j.tenant.value()},
          {"priority", j.priority},
          {"state", static_cast<int>(j.state)},
          {"reason", static_cast<int>(j.reason)},
          {"end_reason", j.end_reason},
          {"submitted", j.submitted},
          {"started", j.started},
          {"ended", j.ended},
          {"restarts", j.restarts},
          {"submitted_by", j.submitted_by},
          {"nodes", std::move(nodes)},
          {"events", std::move(events)},
          {"devices", j.devices},
          {"run", j.run},
          {"power_limit", j.power_limit_permille},
          {"energy", std::move(energy)}};
}

Result<JobInfo> JobOf(const json& j) {
  JobInfo job;
  job.id = j.at("id").get<JobId>();
  Result<io::SubmitSpec> spec = io::ParseJobSpec(j.at("spec").get<std::string>(), fmt::format("job {}", job.id));
  if (!spec.ok()) return spec.status();
  job.spec = std::move(*spec);
  job.tenant = TenantId(j.at("tenant").get<uint32_t>());
  job.priority = j.at("priority").get<int32_t>();
  const int state = j.at("state").get<int>(), reason = j.at("reason").get<int>();
  if (state < 0 || state > static_cast<int>(JobState::kRejected) || reason < 0 ||
      reason > static_cast<int>(PendingReason::kBeginTime)) {
    return Status::Error(fmt::format("job {}: state or reason out of range", job.id));
  }
  job.state = static_cast<JobState>(state);
  job.reason = static_cast<PendingReason>(reason);
  job.end_reason = j.at("end_reason").get<std::string>();
  job.submitted = j.at("submitted").get<TimeMs>();
  job.started = j.at("started").get<TimeMs>();
  job.ended = j.at("ended").get<TimeMs>();
  job.restarts = j.at("restarts").get<uint32_t>();
  job.submitted_by = j.at("submitted_by").get<std::string>();
  for (const json& n : j.at("nodes")) job.nodes.push_back(NodeId(n.get<uint32_t>()));
  for (const json& e : j.at("events")) job.events.push_back({e.at(0).get<TimeMs>(), e.at(1).get<std::string>()});
  job.devices = j.at("devices").get<std::vector<std::vector<uint32_t>>>();
  job.run = j.at("run").get<uint32_t>();
  job.power_limit_permille = j.at("power_limit").get<uint32_t>();
  for (const json& e : j.at("energy")) {
    job.energy_final[{e.at(0).get<uint32_t>(), e.at(1).get<uint32_t>()}] = e.at(2).get<double>();
  }
  return job;
}

}  // namespace

std::string ControlPlane::EncodeSnapshot() const { return TakeSnapshot().body; }

store::Snapshot ControlPlane::TakeSnapshot() const {
  const EngineState engine = engine_->Save();
  // Copied under the lock, encoded outside it: API readers and the committer wait for the copy
  // only, not for the encoding.
  uint64_t seq = 0;
  JobId next_id = 0;
  TimeMs last_step = 0;
  std::vector<Input> input_copy;
  std::map<JobId, JobInfo> job_copy;
  std::map<std::pair<std::string, std::string>, IdempotencyEntry> key_copy;
  std::vector<JobId> preempting;
  std::vector<NodeInfo> node_copy;
  std::vector<TenantSpec> tenant_copy;
  std::vector<AuditEntry> audit_copy;
  {
    std::lock_guard lock(mu_);
    seq = applied_seq_;
    next_id = next_id_;
    last_step = last_step_;
    input_copy = inputs_;
    job_copy = jobs_;
    key_copy = idempotency_;
    preempting = preempting_;
    node_copy = nodes_;
    tenant_copy = tenants_;
    audit_copy = audit_;
  }
  json inputs = json::array();
  for (const Input& in : input_copy) inputs.push_back({in.seq, io::EncodeEvent({0, in.event})});
  json jobs = json::array();
  for (const auto& [id, job] : job_copy) jobs.push_back(JobJson(job));
  json keys = json::array();
  for (const auto& [who_key, entry] : key_copy) {
    keys.push_back({who_key.first, who_key.second, entry.job, Hex(entry.request)});
  }
  json nodes = json::array();
  for (const NodeInfo& n : node_copy) {
    nodes.push_back({static_cast<int>(n.health), n.reason, n.since, static_cast<int>(n.actor)});
  }
  json tenants = json::array();
  for (const TenantSpec& t : tenant_copy) {
    json reserved = json::array();
    for (const Reservation& r : t.reserved) reserved.push_back({r.type.value(), r.accelerators});
    tenants.push_back({reserved, t.borrow_limit ? json(*t.borrow_limit) : json(nullptr), t.weight});
  }
  json audit = json::array();
  for (const AuditEntry& a : audit_copy) audit.push_back({a.seq, a.at, a.who, a.action, a.target, a.detail});
  const json out = {{"v", kSnapshotVersion},
                    {"seq", seq},
                    {"next_id", next_id},
                    {"last_step", last_step},
                    {"inputs", std::move(inputs)},
                    {"jobs", std::move(jobs)},
                    {"idempotency", std::move(keys)},
                    {"preempting", preempting},
                    {"nodes", std::move(nodes)},
                    {"tenants", std::move(tenants)},
                    {"audit", std::move(audit)},
                    {"engine", io::EngineStateJson(engine)}};
  return {seq, out.dump()};
}

::joule::Status ControlPlane::RestoreSnapshot(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("v", 0) != kSnapshotVersion) {
    return ::joule::Status::Error("snapshot: not a snapshot of this version");
  }
  try {
    Result<EngineState> engine = io::EngineStateOf(j.at("engine"));
    if (!engine.ok()) return engine.status();
    std::lock_guard lock(mu_);
    ResetView();
    if (::joule::Status s = engine_->Restore(*engine); !s.ok()) return s;
    applied_seq_ = j.at("seq").get<uint64_t>();
    next_id_ = j.at("next_id").get<JobId>();
    last_step_ = j.at("last_step").get<TimeMs>();
    for (const json& in : j.at("inputs")) {
      Result<io::TimedEvent> e = io::DecodeEvent(in.at(1).get<std::string>());
      if (!e.ok())
        return ::joule::Status::Error(fmt::format("snapshot: input {}: {}", in.at(0).dump(), e.status().message()));
      inputs_.push_back({in.at(0).get<uint64_t>(), std::move(e->event)});
    }
    for (const json& item : j.at("jobs")) {
      Result<JobInfo> job = JobOf(item);
      if (!job.ok()) return ::joule::Status::Error(fmt::format("snapshot: {}", job.status().message()));
      state_count_[job->state]++;
      if (job->state == JobState::kRunning) running_jobs_.insert(job->id);
      jobs_.emplace(job->id, std::move(*job));
    }
    for (const json& k : j.at("idempotency")) {
      idempotency_[{k.at(0).get<std::string>(), k.at(1).get<std::string>()}] = {k.at(2).get<JobId>(),
                                                                                FromHex(k.at(3).get<std::string>()), 0};
    }
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
    for (const json& a : j.at("audit")) {
      audit_.push_back({a.at(0).get<uint64_t>(), a.at(1).get<TimeMs>(), a.at(2).get<std::string>(),
                        a.at(3).get<std::string>(), a.at(4).get<std::string>(), a.at(5).get<std::string>()});
    }
  } catch (const json::exception& e) {
    return ::joule::Status::Error(fmt::format("snapshot: {}", e.what()));
  }
  std::lock_guard lock(mu_);
  budgets_.assign(engine_->power().budgets().begin(), engine_->power().budgets().end());
  RefreshNodes();
  return ::joule::Status::Ok();
}

}  // namespace joule::control
