// The engine's types as JSON, shared by the journal's records (io/journal_json.h) and the
// control plane's snapshots (io/engine_state_json.h). Decoding throws std::invalid_argument naming
// the field; the public decoders turn that into a Status.
// Thread-safety: stateless.
#pragma once

#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sched/events.h"

namespace joule::io::json_detail {

using nlohmann::json;

template <typename T>
void Optional(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}

inline json SpecJson(const JobSpec& s) {
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

inline JobSpec SpecOf(const json& j) {
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

}  // namespace joule::io::json_detail
