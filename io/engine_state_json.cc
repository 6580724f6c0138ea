#include "io/engine_state_json.h"

#include "io/engine_json.h"

namespace joule::io {
namespace {

using namespace json_detail;

json Places(const std::vector<WorkerPlacement>& places) {
  json out = json::array();
  for (const WorkerPlacement& p : places) out.push_back({p.node.value(), p.devices});
  return out;
}

std::vector<WorkerPlacement> PlacesOf(const json& places, const char* key) {
  std::vector<WorkerPlacement> out;
  for (const json& p : places) {
    if (!p.is_array() || p.size() != 2)
      throw std::invalid_argument(fmt::format("{}: a place is [node, [devices]]", key));
    out.push_back({NodeId(p[0].get<uint32_t>()), p[1].get<std::vector<uint32_t>>()});
  }
  return out;
}

template <typename E>
E EnumOf(const json& j, const char* key, E last) {
  const int v = Get<int>(j, key);
  if (v < 0 || v > static_cast<int>(last)) throw std::invalid_argument(fmt::format("{}: out of range", key));
  return static_cast<E>(v);
}

json JobJson(const EngineState::Job& job) {
  json j = {{"spec", SpecJson(job.spec)},
            {"state", static_cast<int>(job.state)},
            {"reason", static_cast<int>(job.reason)},
            {"reported", static_cast<int>(job.reported)},
            {"workers", Places(job.workers)},
            {"spares", Places(job.spares)},
            {"start", job.start},
            {"types", job.used_types.mask},
            {"node_types", job.used_node_types},
            {"waiting_for", job.waiting_for},
            {"preemptions", job.preemptions},
            {"restarts", job.restarts},
            {"eligible_at", job.eligible_at},
            {"power_limit", job.power_limit}};
  Optional(j, "preempt_at", job.preempt_at);
  Optional(j, "window", job.window);
  return j;
}

EngineState::Job JobOf(const json& j) {
  EngineState::Job job;
  job.spec = SpecOf(Get<json>(j, "spec"));
  job.state = EnumOf(j, "state", JobState::kRunning);
  job.reason = EnumOf(j, "reason", PendingReason::kBeginTime);
  job.reported = EnumOf(j, "reported", PendingReason::kBeginTime);
  job.workers = PlacesOf(Get<json>(j, "workers"), "workers");
  job.spares = PlacesOf(Get<json>(j, "spares"), "spares");
  job.start = Get<TimeMs>(j, "start");
  job.used_types = TypeSet{Get<uint64_t>(j, "types")};
  job.used_node_types = Get<uint64_t>(j, "node_types");
  job.waiting_for = Get<std::vector<JobId>>(j, "waiting_for");
  job.preemptions = Get<uint32_t>(j, "preemptions");
  job.restarts = Get<uint32_t>(j, "restarts");
  job.eligible_at = Get<TimeMs>(j, "eligible_at");
  job.power_limit = Get<uint32_t>(j, "power_limit");
  job.preempt_at = GetOptional<TimeMs>(j, "preempt_at");
  job.window = GetOptional<TimeMs>(j, "window");
  return job;
}

}  // namespace

json EngineStateJson(const EngineState& s) {
  json jobs = json::array();
  for (const EngineState::Job& job : s.jobs) jobs.push_back(JobJson(job));
  json ended = json::array();
  for (const auto& [id, state] : s.ended) ended.push_back({id, static_cast<int>(state)});
  json quotas = json::array();
  for (const EngineState::Quota& q : s.quotas) {
    json reserved = json::array();
    for (const Reservation& r : q.reserved) reserved.push_back({r.type.value(), r.accelerators});
    json quota = {{"reserved", reserved}, {"weight", q.weight}};
    Optional(quota, "borrow_limit", q.borrow_limit);
    quotas.push_back(std::move(quota));
  }
  json health = json::array();
  for (NodeHealth h : s.health) health.push_back(static_cast<int>(h));
  json pools = json::array();
  for (const std::vector<WorkerPlacement>& pool : s.pools) pools.push_back(Places(pool));
  return {{"jobs", std::move(jobs)},
          {"ended", std::move(ended)},
          {"quotas", std::move(quotas)},
          {"decayed_usage", s.decayed_usage},
          {"last_decay", s.last_decay},
          {"forecast", {{"start", s.forecast.start}, {"step", s.forecast.step}, {"values", s.forecast.values}}},
          {"health", std::move(health)},
          {"jobs_on", s.jobs_on},
          {"short_of_spares", s.short_of_spares},
          {"pools", std::move(pools)},
          {"rng", s.rng},
          {"power_ordered", s.power_ordered},
          {"power_room_returned", s.power_room_returned},
          {"power_changed", s.power_changed}};
}

Result<EngineState> EngineStateOf(const json& j) {
  try {
    EngineState s;
    for (const json& job : Get<json>(j, "jobs")) s.jobs.push_back(JobOf(job));
    for (const json& e : Get<json>(j, "ended")) {
      const int state = e.at(1).get<int>();
      if (state < 0 || state > static_cast<int>(JobState::kRejected)) throw std::invalid_argument("ended: state");
      s.ended.emplace_back(e.at(0).get<JobId>(), static_cast<JobState>(state));
    }
    for (const json& q : Get<json>(j, "quotas")) {
      EngineState::Quota quota;
      for (const json& r : Get<json>(q, "reserved")) {
        quota.reserved.push_back({AcceleratorTypeId(r.at(0).get<uint32_t>()), r.at(1).get<uint32_t>()});
      }
      quota.weight = Get<double>(q, "weight");
      quota.borrow_limit = GetOptional<uint32_t>(q, "borrow_limit");
      s.quotas.push_back(std::move(quota));
    }
    s.decayed_usage = Get<std::vector<double>>(j, "decayed_usage");
    s.last_decay = Get<TimeMs>(j, "last_decay");
    const json f = Get<json>(j, "forecast");
    s.forecast = {Get<TimeMs>(f, "start"), Get<TimeMs>(f, "step"), Get<std::vector<double>>(f, "values")};
    for (const json& h : Get<json>(j, "health")) {
      const int v = h.get<int>();
      if (v < 0 || v > static_cast<int>(NodeHealth::kDown)) throw std::invalid_argument("health: out of range");
      s.health.push_back(static_cast<NodeHealth>(v));
    }
    s.jobs_on = Get<std::vector<std::vector<JobId>>>(j, "jobs_on");
    s.short_of_spares = Get<std::vector<JobId>>(j, "short_of_spares");
    for (const json& pool : Get<json>(j, "pools")) s.pools.push_back(PlacesOf(pool, "pools"));
    s.rng = Get<uint64_t>(j, "rng");
    s.power_ordered = Get<bool>(j, "power_ordered");
    s.power_room_returned = Get<bool>(j, "power_room_returned");
    s.power_changed = Get<std::vector<JobId>>(j, "power_changed");
    return s;
  } catch (const std::exception& e) {
    return Status::Error(fmt::format("engine state: {}", e.what()));
  }
}

}  // namespace joule::io
