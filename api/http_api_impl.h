// The API's insides, shared by its files (internal to api/): http_api.cc holds the plumbing, the
// views and the route table; job_routes.cc, fleet_routes.cc and agent_routes.cc the handlers.
#pragma once

#include <array>
#include <atomic>
#include <bitset>
#include <charconv>
#include <chrono>
#include <ctime>
#include <functional>
#include <regex>
#include <sstream>

#include <sys/socket.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/agent_report.h"
#include "api/http_api.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "io/sbatch.h"

namespace joule::api {

using control::ApiError;
using control::Principal;
using nlohmann::json;

constexpr size_t kMaxIdempotencyKey = 255;

// RFC 3339 in UTC, to the millisecond; null for 0 (not yet).
json Time(TimeMs ms);
// A JSON string literal of `text` (UTF-8 passes through; quotes, backslashes and control
// characters are escaped), for the list views written without building a document.
void AppendString(std::string& out, std::string_view text);
void AppendTime(std::string& out, TimeMs ms);
void Reply(HttpResponse& res, int status, const json& body);
void Fail(HttpResponse& res, const ApiError& e);
// A parser's "source:line:column: path: why" as an error naming the field.
ApiError ParseError(const std::string& message, const std::string& source);
std::optional<uint64_t> Number(const std::string& text);
std::optional<JobState> StateNamed(std::string_view name);
// A node's state as sinfo names it, from its health and its work.
std::string_view NodeState(const control::NodeInfo& n, uint32_t gpus);

struct HttpApi::Impl {
  control::ControlPlane& plane;
  HttpMetrics metrics;
  HttpServer server;

  explicit Impl(control::ControlPlane& p)
      : plane(p),
        server(HttpLimits{.max_body_bytes = p.config().limits.max_body_bytes,
                          .head_timeout = std::chrono::milliseconds(p.config().http.head_timeout_ms),
                          .body_timeout = std::chrono::milliseconds(p.config().http.body_timeout_ms),
                          .idle_timeout = std::chrono::milliseconds(p.config().http.idle_timeout_ms),
                          .max_connections = p.config().http.max_connections,
                          .handler_threads = p.config().http_threads},
               [](HttpResponse& res, int status, std::string_view field, std::string_view rule) {
                 Fail(res, {status, std::string(field), std::string(rule)});
               }) {}

  // ---- Plumbing ----

  using Handler = std::function<void(const Principal&, const HttpRequest&, HttpResponse&)>;

  // What an authenticated route refuses on the request's head, before its body is read: a
  // server still replaying, a missing or unknown token, a node's credential off its agent's route
  // or anyone else's on it, a change sent to a follower (307 to the leader).
  // `who` is the request's token checked (plane.auth().Check).
  std::optional<HttpResponse> Admit(const std::string& route, const HttpRequest& req,
                                    const std::optional<Principal>& who) const {
    HttpResponse res;
    if (!plane.loaded()) {
      res.set_header("Retry-After", "1");
      Fail(res, {503, "", "the server is starting: it is replaying its journal"});
    } else if (!who) {
      res.set_header("WWW-Authenticate", "Bearer");
      Fail(res, {401, "Authorization", "a valid bearer token is required"});
    } else if (who->agent() && !route.starts_with("/api/v1/agents/")) {
      Fail(res, {403, "Authorization", "a node's credential is for its agent's route only"});
    } else if (route.starts_with("/api/v1/agents/") && !who->agent()) {
      Fail(res, {403, "Authorization", "only a node's agent reports for it, with its credential (`joule node-token`)"});
    } else if (route.starts_with("/api/v1/agents/") && (req.matches.size() < 2 || req.matches[1] != who->node)) {
      Fail(res, {403, "Authorization",
                 fmt::format("this credential is node {}'s: it reports for that node only", who->node)});
    } else if (req.method != "GET" && !plane.leading()) {
      ToLeader(req, res);
    } else {
      return std::nullopt;
    }
    return res;
  }

  // An authenticated route: admitted on its head, then run and counted under its template.
  void Authed(const char* method, const std::string& pattern, std::string route, Handler handler) {
    AuthedAsync(method, pattern, std::move(route),
                [handler = std::move(handler)](const Principal& who, const HttpRequest& req,
                                               const HttpServer::Respond& respond) {
                  HttpResponse res;
                  handler(who, req, res);
                  respond(std::move(res));
                });
  }
  // A change sent to a follower: 307 to the leader (the method and body are sent again there),
  // or 503 while no leader is known (an election takes a lease's time at most).
  void ToLeader(const HttpRequest& req, HttpResponse& res) const {
    const std::string leader = plane.leader_address();
    if (leader.empty()) {
      res.set_header("Retry-After", "1");
      Fail(res, {503, "", "this server follows and no leader is known yet: retry"});
      return;
    }
    res.set_header("Location", leader + req.target);
    Fail(res, {307, "", fmt::format("this server follows; send changes to the leader, {}", leader)});
  }

  // The same for a handler that may answer later (a long poll), counted when it answers; Authed's
  // handlers are these answering at once.
  using AsyncHandler = std::function<void(const Principal&, const HttpRequest&, const HttpServer::Respond&)>;
  // on_io: the handler does not wait, or offloads what does (HttpServer::RouteOnIo).
  void AuthedAsync(const char* method, const std::string& pattern, std::string route, AsyncHandler handler,
                   bool on_io = false) {
    std::invoke(
        on_io ? &HttpServer::RouteOnIo : &HttpServer::RouteAsync, server, method, pattern,
        [this, route, handler = std::move(handler)](const HttpRequest& req, const HttpServer::Respond& respond) {
          const auto begin = std::chrono::steady_clock::now();
          HttpServer::Respond counted = [this, route, method = req.method, begin, respond](HttpResponse res) {
            metrics.Observe(method, route, res.status,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
            respond(std::move(res));
          };
          // Admitted on its head already; the server's state may have changed since.
          const std::optional<Principal> who = plane.auth().Check(req.get_header_value("Authorization"));
          if (std::optional<HttpResponse> refused = Admit(route, req, who)) return counted(std::move(*refused));
          handler(*who, req, counted);
        },
        [this, route](const HttpRequest& req) {
          std::optional<HttpResponse> refused =
              Admit(route, req, plane.auth().Check(req.get_header_value("Authorization")));
          if (refused) metrics.Observe(req.method, route, refused->status, 0);
          return refused;
        });
  }

  // A route without a token (probes, metrics, the OpenAPI document), counted under its path.
  void Open(const std::string& path, HttpServer::Handler handler) {
    server.Route("GET", path, [this, path, handler = std::move(handler)](const HttpRequest& req, HttpResponse& res) {
      const auto begin = std::chrono::steady_clock::now();
      handler(req, res);
      metrics.Observe(req.method, path, res.status,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    });
  }

  static std::optional<json> JsonBody(const HttpRequest& req, HttpResponse& res,
                                      std::initializer_list<std::string_view> allowed) {
    json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      Fail(res, {400, "", "the body must be a JSON object"});
      return std::nullopt;
    }
    for (const auto& [key, value] : body.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        Fail(res, {400, key, "is not a known field"});
        return std::nullopt;
      }
    }
    return body;
  }

  // ---- Views ----

  json NodeNames(const std::vector<NodeId>& nodes) const;

  json JobView(const control::JobInfo& j, bool full) const;

  // The fields of a listed job, in order; `fields=` picks some (all by default).
  static constexpr std::array<std::string_view, 20> kJobFields = {
      "id",         "name",     "tenant",       "queue",      "priority_class",
      "priority",   "state",    "reason",       "end_reason", "submitted_at",
      "started_at", "ended_at", "time_limit_s", "workers",    "gpus_per_worker",
      "gpu_type",   "restarts", "submitted_by", "nodes",      "energy_joules"};
  using FieldSet = std::bitset<kJobFields.size()>;

  // JobView(j, false), written straight into `out`: lists of 100,000 jobs are the hot read.
  void AppendJob(std::string& out, const control::JobInfo& j, const FieldSet& fields) const;

  json NodeView(const Principal& who, NodeId id, const control::NodeInfo& n) const;

  static json AgentJson(const control::AgentView& a);

  json TenantView(TenantId, const TenantSpec& t, const std::vector<uint64_t>& in_use) const;

  // ---- Jobs ----

  void SubmitJob(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void ListJobs(const Principal& who, const HttpRequest& req, HttpResponse& res);

  std::optional<JobId> JobIdOf(const HttpRequest& req, HttpResponse& res);

  void GetJob(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void JobEvents(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void CancelJob(const Principal& who, const HttpRequest& req, HttpResponse& res);

  // ---- Nodes ----

  void ListNodes(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void GetNode(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void ChangeNode(const Principal& who, const HttpRequest& req, HttpResponse& res, NodeHealth to);

  // ---- Tenants, queues, fleet, audit ----

  void ListTenants(const Principal& who, const HttpRequest&, HttpResponse& res);

  void GetTenant(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void PatchTenant(const Principal& who, const HttpRequest& req, HttpResponse& res);

  void ListQueues(const Principal& who, const HttpRequest&, HttpResponse& res);

  void FleetView(const Principal&, const HttpRequest&, HttpResponse& res);

  void AuditLog(const Principal& who, const HttpRequest& req, HttpResponse& res);

  // ---- Agents ----

  static void ReplyAssignments(HttpResponse& res, const control::NodeAssignments& node);

  // A heartbeat; with `known` (the version of the assignments the agent runs) and `wait_ms`, a
  // long poll: answered once the node's assignments differ from `known`, or after `wait_ms`.
  void Heartbeat(const Principal& who, const HttpRequest& req, const HttpServer::Respond& respond);

  void HeartbeatReported(const Principal& who, const HttpRequest& req, uint64_t known, uint64_t wait_ms,
                         control::AgentReport report, const HttpServer::Respond& respond);
  static constexpr uint64_t kMaxWaitMs = 60'000;

  // ---- Routes ----

  void Routes();
};

}  // namespace joule::api
