#include "io/journal_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace joule::io {
namespace {

using nlohmann::json;

constexpr int kVersion = 1;

template <typename T>
void Optional(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}

json SpecJson(const JobSpec& s) {
  json worker = {{"cpu", s.worker.cpu},
                 {"memory", s.worker.memory},
                 {"gpus", s.worker.gpus},
                 {"milli", s.worker.milli_per_gpu},
                 {"types", s.worker.types.mask},
                 {"halls", s.worker.halls},
                 {"node_types", s.worker.node_types}};
  json j = {{"id", s.id},
            {"tenant", s.tenant.value()},
            {"workers", s.workers},
            {"worker", worker},
            {"topology", static_cast<int>(s.topology)},
            {"priority", s.priority},
            {"submit_time", s.submit_time},
            {"after_ok", s.after_ok},
            {"work", static_cast<int>(s.work)},
            {"flexible", s.flexible},
            {"restart_backoff", s.restart_backoff},
            {"spare_nodes", s.spare_nodes}};
  Optional(j, "time_limit", s.time_limit);
  Optional(j, "runtime_estimate", s.runtime_estimate);
  Optional(j, "checkpoint_interval", s.checkpoint_interval);
  Optional(j, "deadline", s.deadline);
  Optional(j, "max_restarts", s.max_restarts);
  return j;
}

// Reads `key` of `j` as T; throws json errors, which DecodeEvent turns into a message naming it.
template <typename T>
T Get(const json& j, const char* key) {
  if (!j.contains(key)) throw std::invalid_argument(fmt::format("{}: is required", key));
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw std::invalid_argument(fmt::format("{}: has the wrong type", key));
  }
}

template <typename T>
std::optional<T> GetOptional(const json& j, const char* key) {
  if (!j.contains(key)) return std::nullopt;
  return Get<T>(j, key);
}

JobSpec SpecOf(const json& j) {
  JobSpec s;
  s.id = Get<JobId>(j, "id");
  s.tenant = TenantId(Get<uint32_t>(j, "tenant"));
  s.workers = Get<uint32_t>(j, "workers");
  const json w = Get<json>(j, "worker");
  s.worker = TaskShape{Get<Millicores>(w, "cpu"),          Get<MiB>(w, "memory"),
                       Get<uint32_t>(w, "gpus"),           Get<MilliGpu>(w, "milli"),
                       TypeSet{Get<uint64_t>(w, "types")}, Get<uint64_t>(w, "halls"),
                       Get<uint64_t>(w, "node_types")};
  const int topology = Get<int>(j, "topology");
  if (topology < 0 || topology > static_cast<int>(TopologyRule::kRequireNvlinkDomain)) {
    throw std::invalid_argument("topology: out of range");
  }
  s.topology = static_cast<TopologyRule>(topology);
  s.priority = Get<int32_t>(j, "priority");
  s.submit_time = Get<TimeMs>(j, "submit_time");
  s.after_ok = Get<std::vector<JobId>>(j, "after_ok");
  const int work = Get<int>(j, "work");
  if (work < 0 || work > static_cast<int>(WorkClass::kOther)) throw std::invalid_argument("work: out of range");
  s.work = static_cast<WorkClass>(work);
  s.flexible = Get<bool>(j, "flexible");
  s.restart_backoff = Get<TimeMs>(j, "restart_backoff");
  s.spare_nodes = Get<uint32_t>(j, "spare_nodes");
  s.time_limit = GetOptional<TimeMs>(j, "time_limit");
  s.runtime_estimate = GetOptional<TimeMs>(j, "runtime_estimate");
  s.checkpoint_interval = GetOptional<TimeMs>(j, "checkpoint_interval");
  s.deadline = GetOptional<TimeMs>(j, "deadline");
  s.max_restarts = GetOptional<uint32_t>(j, "max_restarts");
  return s;
}

}  // namespace

std::string EncodeEvent(const TimedEvent& e) {
  json j = {{"v", kVersion}, {"at", e.at}};
  if (const auto* x = std::get_if<JobSubmitted>(&e.event)) {
    j["type"] = "submit";
    j["spec"] = SpecJson(x->spec);
  } else if (const auto* x = std::get_if<JobCancelled>(&e.event)) {
    j["type"] = "cancel";
    j["job"] = x->job;
  } else if (const auto* x = std::get_if<JobFinished>(&e.event)) {
    j["type"] = "finish";
    j["job"] = x->job;
    j["ok"] = x->ok;
  } else if (const auto* x = std::get_if<NodeHealthChange>(&e.event)) {
    j["type"] = "health";
    j["node"] = x->node.value();
    j["to"] = NodeHealthName(x->to);
    j["actor"] = ActorName(x->actor);
    j["reason"] = x->reason;
    Optional(j, "device", x->device);
  } else if (const auto* x = std::get_if<GridForecast>(&e.event)) {
    j["type"] = "forecast";
    j["start"] = x->start;
    j["step"] = x->step;
    j["values"] = x->values;
  } else if (const auto* x = std::get_if<TenantUpdate>(&e.event)) {
    j["type"] = "tenant";
    j["tenant"] = x->tenant.value();
    json reserved = json::array();
    for (const Reservation& r : x->reserved)
      reserved.push_back({{"type", r.type.value()}, {"accelerators", r.accelerators}});
    j["reserved"] = reserved;
    Optional(j, "borrow_limit", x->borrow_limit);
    j["weight"] = x->weight;
  }
  return j.dump();
}

Result<TimedEvent> DecodeEvent(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Error("journal record: not a JSON object");
  try {
    if (Get<int>(j, "v") != kVersion)
      return Status::Error(fmt::format("journal record: v: only {} is known", kVersion));
    TimedEvent e{Get<TimeMs>(j, "at"), {}};
    const std::string type = Get<std::string>(j, "type");
    if (type == "submit") {
      e.event = JobSubmitted{SpecOf(Get<json>(j, "spec"))};
    } else if (type == "cancel") {
      e.event = JobCancelled{Get<JobId>(j, "job")};
    } else if (type == "finish") {
      e.event = JobFinished{Get<JobId>(j, "job"), Get<bool>(j, "ok")};
    } else if (type == "health") {
      NodeHealthChange h{NodeId(Get<uint32_t>(j, "node")), NodeHealth::kHealthy, Actor::kOperator,
                         Get<std::string>(j, "reason"), GetOptional<uint32_t>(j, "device")};
      const std::string to = Get<std::string>(j, "to"), actor = Get<std::string>(j, "actor");
      bool found_to = false, found_actor = false;
      for (NodeHealth n : {NodeHealth::kHealthy, NodeHealth::kSuspect, NodeHealth::kDrained, NodeHealth::kRepairing,
                           NodeHealth::kDown}) {
        if (NodeHealthName(n) == to) h.to = n, found_to = true;
      }
      for (Actor a : {Actor::kOperator, Actor::kAgent, Actor::kPolicy}) {
        if (ActorName(a) == actor) h.actor = a, found_actor = true;
      }
      if (!found_to) return Status::Error(fmt::format("journal record: to: unknown health '{}'", to));
      if (!found_actor) return Status::Error(fmt::format("journal record: actor: unknown actor '{}'", actor));
      e.event = std::move(h);
    } else if (type == "forecast") {
      e.event = GridForecast{Get<TimeMs>(j, "start"), Get<TimeMs>(j, "step"), Get<std::vector<double>>(j, "values")};
    } else if (type == "tenant") {
      TenantUpdate t{
          TenantId(Get<uint32_t>(j, "tenant")), {}, GetOptional<uint32_t>(j, "borrow_limit"), Get<double>(j, "weight")};
      for (const json& r : Get<json>(j, "reserved")) {
        t.reserved.push_back({AcceleratorTypeId(Get<uint32_t>(r, "type")), Get<uint32_t>(r, "accelerators")});
      }
      e.event = std::move(t);
    } else {
      return Status::Error(fmt::format("journal record: type: unknown type '{}'", type));
    }
    return e;
  } catch (const std::invalid_argument& error) {
    return Status::Error(fmt::format("journal record: {}", error.what()));
  }
}

}  // namespace joule::io
