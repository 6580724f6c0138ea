// The agents' route: heartbeats and long polls.
#include "api/http_api_impl.h"

namespace joule::api {

void HttpApi::Impl::ReplyAssignments(HttpResponse& res, const control::NodeAssignments& node) {
  json list = json::array();
  for (const control::Assignment& a : node.assignments) {
    list.push_back({{"job", a.job},
                    {"rank", a.rank},
                    {"run", a.run},
                    {"world_size", a.world_size},
                    {"devices", a.devices},
                    {"master_addr", a.master_addr},
                    {"master_port", a.master_port},
                    {"name", a.spec.name},
                    {"command", a.spec.command},
                    {"args", a.spec.args},
                    {"env", a.spec.env},
                    {"script", a.spec.script},
                    {"tasks_per_worker", a.spec.tasks_per_worker},
                    {"power_limit_permille", a.power_limit_permille}});
  }
  json answer = {{"assignments", list}, {"version", std::to_string(node.version)}};
  if (!node.cluster.empty()) answer["cluster"] = node.cluster;
  Reply(res, 200, answer);
}

// A heartbeat; with `known` (the version of the assignments the agent runs) and `wait_ms`, a
// long poll: answered once the node's assignments differ from `known`, or after `wait_ms`.
void HttpApi::Impl::Heartbeat(const Principal& who, const HttpRequest& req, const HttpServer::Respond& respond) {
  HttpResponse res;
  uint64_t known = 0, wait_ms = 0;
  for (const auto& [name, value] : req.params) {
    std::optional<uint64_t> n = Number(value);
    if (name == "known" && n) {
      known = *n;
    } else if (name == "wait_ms" && n && *n <= kMaxWaitMs) {
      wait_ms = *n;
    } else {
      Fail(res, {400, name,
                 name == "known" || name == "wait_ms"
                     ? fmt::format("must be a number{}", name == "wait_ms" ? fmt::format(" up to {}", kMaxWaitMs) : "")
                     : "is not a known parameter (known, wait_ms)"});
      return respond(std::move(res));
    }
  }
  std::variant<control::AgentReport, control::ApiError> parsed = ParseAgentReport(req.body);
  if (auto* bad = std::get_if<control::ApiError>(&parsed)) {
    Fail(res, *bad);
    return respond(std::move(res));
  }
  // Runs on the I/O thread (the route's): a heartbeat that waits for the journal (ended workers,
  // a node back from down: thousands at once after a partition) goes on on the handlers' pool.
  control::AgentReport& report = std::get<control::AgentReport>(parsed);
  if (!plane.AgentHeartbeatWaits(req.matches[1], report)) {
    return HeartbeatReported(who, req, known, wait_ms, std::move(report), respond);
  }
  // `respond` keeps the connection, and with it `req`, until it is called.
  server.Offload([this, who, &req, known, wait_ms, report = std::move(report), respond]() mutable {
    HeartbeatReported(who, req, known, wait_ms, std::move(report), respond);
  });
}

void HttpApi::Impl::HeartbeatReported(const Principal& who, const HttpRequest& req, uint64_t known, uint64_t wait_ms,
                                      control::AgentReport report, const HttpServer::Respond& respond) {
  HttpResponse res;
  control::Outcome<control::NodeAssignments> r = plane.AgentHeartbeat(who, req.matches[1], std::move(report));
  if (!r.ok()) {
    Fail(res, r.error);
    return respond(std::move(res));
  }
  if (wait_ms == 0 || r.value->version != known) {
    ReplyAssignments(res, *r.value);
    return respond(std::move(res));
  }
  // Below the agent timeout, so that a long poll is also a heartbeat in time.
  const auto wait = std::chrono::milliseconds(
      std::min<uint64_t>(wait_ms, static_cast<uint64_t>(plane.config().agent_timeout_ms / 2)));
  plane.WatchNode(*plane.FindNode(req.matches[1]), known, wait, [respond](control::NodeAssignments node) {
    HttpResponse later;
    ReplyAssignments(later, node);
    respond(std::move(later));
  });
}

}  // namespace joule::api
