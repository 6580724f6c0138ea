#include "io/journal_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/engine_json.h"

namespace joule::io {
namespace {

using namespace json_detail;

constexpr int kVersion = 1;

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
