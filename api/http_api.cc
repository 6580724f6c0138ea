#include "api/http_api.h"

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
#include "api/http_server.h"
#include "api/metrics.h"
#include "io/sbatch.h"

namespace joule::api {
namespace {

using control::ApiError;
using control::Principal;
using nlohmann::json;

constexpr size_t kMaxIdempotencyKey = 255;

// RFC 3339 in UTC, to the millisecond; null for 0 (not yet).
json Time(TimeMs ms) {
  if (ms <= 0) return nullptr;
  const std::time_t seconds = ms / 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// A JSON string literal of `text` (UTF-8 passes through; quotes, backslashes and control
// characters are escaped), for the list views written without building a document.
void AppendString(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void AppendTime(std::string& out, TimeMs ms) {
  const json t = Time(ms);
  if (t.is_null()) {
    out += "null";
  } else {
    AppendString(out, t.get_ref<const std::string&>());
  }
}

void Reply(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void Fail(HttpResponse& res, const ApiError& e) {
  Reply(res, e.status, {{"error", {{"status", e.status}, {"field", e.field}, {"message", e.message}}}});
}

// A parser's "source:line:column: path: why" as an error naming the field.
ApiError ParseError(const std::string& message, const std::string& source) {
  static const std::regex kLocated(R"(^(\d+):(\d+): ([^:]+): (.*)$)");
  std::string rest = message;
  if (rest.starts_with(source + ":")) rest = rest.substr(source.size() + 1);
  while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
  std::smatch m;
  if (std::regex_match(rest, m, kLocated)) {
    return {400, m[3].str(), fmt::format("{} (line {}, column {})", m[4].str(), m[1].str(), m[2].str())};
  }
  static const std::regex kLine(R"(^(\d+): ([^:]+): (.*)$)");  // sbatch: "line: --option: why"
  if (std::regex_match(rest, m, kLine)) return {400, m[2].str(), fmt::format("{} (line {})", m[3].str(), m[1].str())};
  return {400, "", rest};
}

std::optional<uint64_t> Number(const std::string& text) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::optional<JobState> StateNamed(std::string_view name) {
  for (JobState s : {JobState::kPending, JobState::kRunning, JobState::kCompleted, JobState::kFailed,
                     JobState::kCancelled, JobState::kRejected}) {
    if (control::StateName(s) == name) return s;
  }
  return std::nullopt;
}

// A node's state as sinfo names it, from its health and its work.
std::string_view NodeState(const control::NodeInfo& n, uint32_t gpus) {
  switch (n.health) {
    case NodeHealth::kHealthy:
      return n.gpus_used == 0 && n.jobs.empty() ? "idle" : (n.gpus_used >= gpus && gpus > 0 ? "allocated" : "mixed");
    case NodeHealth::kSuspect:
      return "suspect";
    case NodeHealth::kDrained:
      return n.jobs.empty() ? "drained" : "draining";
    case NodeHealth::kRepairing:
      return "repairing";
    case NodeHealth::kDown:
      return "down";
  }
  return "unknown";
}

}  // namespace

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
  // server still replaying, a missing or unknown token, an agent's token off the agent routes, a
  // change sent to a follower (307 to the leader).
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
    } else if (who->agent && !route.starts_with("/api/v1/agents/")) {
      Fail(res, {403, "Authorization", "an agent's token is for the agent routes only"});
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

  json NodeNames(const std::vector<NodeId>& nodes) const {
    json names = json::array();
    for (NodeId n : nodes) names.push_back(plane.fleet().NodeName(n));
    return names;
  }

  json JobView(const control::JobInfo& j, bool full) const {
    json v = {{"id", j.id},
              {"name", j.spec.name},
              {"tenant", plane.TenantName(j.tenant)},
              {"queue", *j.spec.queue},
              {"priority_class", *j.spec.priority_class},
              {"priority", j.priority},
              {"state", control::StateName(j.state)},
              {"reason", j.state == JobState::kPending ? json(PendingReasonName(j.reason)) : json(nullptr)},
              {"end_reason", j.end_reason.empty() ? json(nullptr) : json(j.end_reason)},
              {"submitted_at", Time(j.submitted)},
              {"started_at", Time(j.started)},
              {"ended_at", Time(j.ended)},
              {"time_limit_s", *j.spec.time_limit / 1000},
              {"workers", j.spec.workers},
              {"gpus_per_worker", j.spec.gpus},
              {"gpu_type", j.spec.gpu_type ? json(*j.spec.gpu_type) : json(nullptr)},
              {"restarts", j.restarts},
              {"submitted_by", j.submitted_by},
              {"nodes", NodeNames(j.nodes)},
              {"energy_joules", j.energy_joules()}};
    if (full && !j.retired) v["spec"] = io::JobSpecJson(j.spec);
    if (j.retired) v["retired"] = true;
    return v;
  }

  // JobView(j, false), written straight into `out`: lists of 100,000 jobs are the hot read.
  // The fields of a listed job, in order; `fields=` picks some (all by default).
  static constexpr std::array<std::string_view, 20> kJobFields = {
      "id",         "name",     "tenant",       "queue",      "priority_class",
      "priority",   "state",    "reason",       "end_reason", "submitted_at",
      "started_at", "ended_at", "time_limit_s", "workers",    "gpus_per_worker",
      "gpu_type",   "restarts", "submitted_by", "nodes",      "energy_joules"};
  using FieldSet = std::bitset<kJobFields.size()>;

  // JobView(j, false), written straight into `out`: lists of 100,000 jobs are the hot read.
  void AppendJob(std::string& out, const control::JobInfo& j, const FieldSet& fields) const {
    bool first = true;
    auto key = [&](size_t field) {
      if (!fields[field]) return false;
      out += first ? "{\"" : ",\"";
      out += kJobFields[field];
      out += "\":";
      first = false;
      return true;
    };
    auto optional_string = [&](bool present, std::string_view value) {
      if (present) {
        AppendString(out, value);
      } else {
        out += "null";
      }
    };
    if (key(0)) out += std::to_string(j.id);
    if (key(1)) AppendString(out, j.spec.name);
    if (key(2)) AppendString(out, plane.TenantName(j.tenant));
    if (key(3)) AppendString(out, *j.spec.queue);
    if (key(4)) AppendString(out, *j.spec.priority_class);
    if (key(5)) out += std::to_string(j.priority);
    if (key(6)) AppendString(out, control::StateName(j.state));
    if (key(7)) optional_string(j.state == JobState::kPending, PendingReasonName(j.reason));
    if (key(8)) optional_string(!j.end_reason.empty(), j.end_reason);
    if (key(9)) AppendTime(out, j.submitted);
    if (key(10)) AppendTime(out, j.started);
    if (key(11)) AppendTime(out, j.ended);
    if (key(12)) out += std::to_string(*j.spec.time_limit / 1000);
    if (key(13)) out += std::to_string(j.spec.workers);
    if (key(14)) out += std::to_string(j.spec.gpus);
    if (key(15)) optional_string(j.spec.gpu_type.has_value(), j.spec.gpu_type.value_or(""));
    if (key(16)) out += std::to_string(j.restarts);
    if (key(17)) AppendString(out, j.submitted_by);
    if (key(18)) {
      out.push_back('[');
      for (size_t i = 0; i < j.nodes.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendString(out, plane.fleet().NodeName(j.nodes[i]));
      }
      out.push_back(']');
    }
    if (key(19)) out += json(j.energy_joules()).dump();
    out += first ? "{}" : "}";
  }

  json NodeView(const Principal& who, NodeId id, const control::NodeInfo& n) const {
    const Fleet& fleet = plane.fleet();
    const NodeType& type = fleet.node_type(id);
    json jobs = json::array();
    for (JobId job : n.jobs) {
      // A tenant sees its own jobs on a node, not others'.
      bool visible = who.operator_role();
      if (!visible) {
        (void)plane.VisitJob(who, job, [&](const control::JobInfo&) { visible = true; });
      }
      if (visible) jobs.push_back(job);
    }
    return {{"name", fleet.NodeName(id)},
            {"type", type.name},
            {"gpu_type", type.accelerator ? json(fleet.catalog().accelerator(*type.accelerator).name) : json(nullptr)},
            {"gpus", type.accelerators},
            {"gpus_used", n.gpus_used},
            {"health", NodeHealthName(n.health)},
            {"state", NodeState(n, type.accelerators)},
            {"reason", n.reason.empty() ? json(nullptr) : json(n.reason)},
            {"since", Time(n.since)},
            {"rack", fleet.RackName(fleet.node(id).rack)},
            {"jobs", jobs},
            {"agent", n.agent ? AgentJson(*n.agent) : json(nullptr)}};
  }

  static json AgentJson(const control::AgentView& a) {
    json gpus = json::array();
    for (const control::GpuTelemetry& g : a.gpus) {
      gpus.push_back({{"index", g.index},
                      {"uuid", g.uuid},
                      {"model", g.model},
                      {"power_watts", g.power_w},
                      {"energy_joules", g.energy_j},
                      {"temperature_c", g.temperature_c},
                      {"utilization_percent", g.utilization_pct},
                      {"memory_mib", g.memory_mib},
                      {"memory_used_mib", g.memory_used_mib},
                      {"ecc_corrected", g.ecc_corrected},
                      {"ecc_uncorrected", g.ecc_uncorrected},
                      {"xid_errors", g.xid_errors},
                      {"last_xid", g.last_xid},
                      {"power_limit_watts", g.power_limit_w}});
    }
    return {{"address", a.address},
            {"last_heartbeat", Time(a.last_heartbeat)},
            {"gpu_source", a.gpu_source.empty() ? json(nullptr) : json(a.gpu_source)},
            {"driver_version", a.driver_version.empty() ? json(nullptr) : json(a.driver_version)},
            {"power_watts", a.power_w()},
            {"gpus", gpus}};
  }

  json TenantView(TenantId, const TenantSpec& t, const std::vector<uint64_t>& in_use) const {
    const Catalog& catalog = plane.fleet().catalog();
    json reserved = json::object(), used = json::object();
    for (const Reservation& r : t.reserved) reserved[catalog.accelerator(r.type).name] = r.accelerators;
    for (size_t type = 0; type < in_use.size(); ++type) {
      if (in_use[type] > 0)
        used[catalog.accelerator(AcceleratorTypeId(static_cast<uint32_t>(type))).name] = in_use[type];
    }
    return {{"name", t.name},
            {"reserved", reserved},
            {"borrow_limit", t.borrow_limit ? json(*t.borrow_limit) : json(nullptr)},
            {"weight", t.weight},
            {"in_use", used}};
  }

  // ---- Jobs ----

  void SubmitJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    const std::string key = req.get_header_value("Idempotency-Key");
    if (key.size() > kMaxIdempotencyKey) {
      return Fail(res, {400, "Idempotency-Key", fmt::format("at most {} characters", kMaxIdempotencyKey)});
    }
    const std::string type = req.get_header_value("Content-Type");
    io::SubmitSpec spec;
    if (type.starts_with("text/x-shellscript") || req.body.starts_with("#!")) {
      Result<io::BatchJob> batch = io::ParseBatchScript(req.body, "script");
      if (!batch.ok()) return Fail(res, ParseError(batch.status().message(), "script"));
      spec = io::FromBatchJob(*batch);
    } else if (type.empty() || type.starts_with("application/json") || type.starts_with("application/yaml") ||
               type.starts_with("application/x-yaml") || type.starts_with("text/yaml")) {
      Result<io::SubmitSpec> parsed = io::ParseJobSpec(req.body, "body");
      if (!parsed.ok()) return Fail(res, ParseError(parsed.status().message(), "body"));
      spec = std::move(*parsed);
    } else {
      return Fail(res, {415, "Content-Type",
                        "must be application/json, application/yaml or text/x-shellscript (a batch script)"});
    }
    control::Outcome<control::SubmitResult> r = plane.Submit(who, std::move(spec), key);
    if (!r.ok()) return Fail(res, r.error);
    json view;
    // The job as listed; GET /api/v1/jobs/{id} adds the spec as accepted.
    (void)plane.VisitJob(who, r.value->id, [&](const control::JobInfo& j) { view = JobView(j, false); });
    res.set_header("Location", fmt::format("/api/v1/jobs/{}", r.value->id));
    Reply(res, r.value->created ? 201 : 200, view);
  }

  void ListJobs(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    control::JobFilter filter;
    FieldSet fields;
    fields.set();
    for (const auto& [name, value] : req.params) {
      if (name == "state") {
        filter.state = StateNamed(value);
        if (!filter.state) {
          return Fail(res, {400, "state", "must be pending, running, completed, failed, cancelled or rejected"});
        }
      } else if (name == "tenant") {
        filter.tenant = plane.FindTenant(value);
        if (!filter.tenant) return Fail(res, {400, "tenant", fmt::format("'{}' is not a tenant", value)});
      } else if (name == "queue") {
        filter.queue = value;
      } else if (name == "after") {
        std::optional<uint64_t> n = Number(value);
        if (!n) return Fail(res, {400, "after", "must be a job id"});
        filter.after = *n;
      } else if (name == "limit") {
        std::optional<uint64_t> n = Number(value);
        const uint32_t max = plane.config().limits.max_page;
        if (!n || *n == 0 || *n > max) return Fail(res, {400, "limit", fmt::format("must be 1 to {}", max)});
        filter.limit = static_cast<uint32_t>(*n);
      } else if (name == "history") {
        if (value != "true" && value != "false") return Fail(res, {400, "history", "must be true or false"});
        filter.history = value == "true";
      } else if (name == "fields") {
        fields.reset();
        std::stringstream in(value);
        for (std::string f; std::getline(in, f, ',');) {
          auto it = std::find(kJobFields.begin(), kJobFields.end(), f);
          if (it == kJobFields.end()) return Fail(res, {400, "fields", fmt::format("'{}' is not a field of a job", f)});
          fields.set(static_cast<size_t>(it - kJobFields.begin()));
        }
      } else {
        return Fail(res, {400, name, "is not a known parameter (state, tenant, queue, after, limit, history, fields)"});
      }
    }
    std::string body = R"({"jobs":[)";
    JobId last = 0;
    const bool more = plane.VisitJobs(who, filter, [&](const control::JobInfo& j) {
      if (last != 0) body.push_back(',');
      AppendJob(body, j, fields);
      last = j.id;
    });
    body += more ? fmt::format(R"(],"next":{}}})", last) : R"(],"next":null})";
    res.status = 200;
    res.set_content(body, "application/json");
  }

  std::optional<JobId> JobIdOf(const HttpRequest& req, HttpResponse& res) {
    std::optional<uint64_t> id = Number(req.matches[1]);
    if (!id) Fail(res, {400, "id", "must be a job id"});
    return id;
  }

  void GetJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    json view;
    control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, true); });
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 200, view);
  }

  void JobEvents(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    json events = json::array();
    control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) {
      for (const control::JobEvent& e : j.events) events.push_back({{"at", Time(e.at)}, {"what", e.what}});
    });
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 200, {{"events", events}});
  }

  void CancelJob(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    control::Outcome<JobId> r = plane.Cancel(who, *id);
    if (!r.ok()) return Fail(res, r.error);
    json view;
    (void)plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, false); });
    Reply(res, 202, view);
  }

  // ---- Nodes ----

  void ListNodes(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    std::optional<std::string> state;
    for (const auto& [name, value] : req.params) {
      if (name != "state") return Fail(res, {400, name, "is not a known parameter (state)"});
      state = value;
    }
    std::vector<std::pair<NodeId, control::NodeInfo>> nodes;
    plane.VisitNodes([&](NodeId id, const control::NodeInfo& n) { nodes.emplace_back(id, n); });
    json list = json::array();
    for (const auto& [id, n] : nodes) {
      json view = NodeView(who, id, n);
      if (!state || view["state"] == *state || view["health"] == *state) list.push_back(std::move(view));
    }
    Reply(res, 200, {{"nodes", list}});
  }

  void GetNode(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    const std::string name = req.matches[1];
    std::optional<NodeId> id = plane.FindNode(name);
    if (!id) return Fail(res, {404, "name", fmt::format("node {} does not exist", name)});
    std::optional<control::NodeInfo> info;
    plane.VisitNodes([&](NodeId n, const control::NodeInfo& i) {
      if (n == *id) info = i;
    });
    Reply(res, 200, NodeView(who, *id, *info));
  }

  void ChangeNode(const Principal& who, const HttpRequest& req, HttpResponse& res, NodeHealth to) {
    std::optional<json> body = JsonBody(req, res, {"reason"});
    if (!body) return;
    std::string reason;
    if (body->contains("reason")) {
      if (!(*body)["reason"].is_string()) return Fail(res, {400, "reason", "must be a string"});
      reason = (*body)["reason"].get<std::string>();
      if (reason.size() > 1024) return Fail(res, {400, "reason", "at most 1024 characters"});
    }
    const std::string name = req.matches[1];
    control::Outcome<NodeId> r = plane.SetNodeHealth(who, name, to, reason);
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 202, {{"name", name}, {"requested", NodeHealthName(to)}, {"reason", reason}});
  }

  // ---- Tenants, queues, fleet, audit ----

  void ListTenants(const Principal& who, const HttpRequest&, HttpResponse& res) {
    if (!who.operator_role()) return Fail(res, {403, "", "only operators list tenants"});
    json list = json::array();
    plane.VisitTenants([&](TenantId id, const TenantSpec& t, const std::vector<uint64_t>& u) {
      list.push_back(TenantView(id, t, u));
    });
    Reply(res, 200, {{"tenants", list}});
  }

  void GetTenant(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    const std::string name = req.matches[1];
    std::optional<TenantId> id = plane.FindTenant(name);
    if (!id || (!who.operator_role() && who.tenant != *id)) {
      return Fail(res, {404, "name", fmt::format("tenant {} does not exist", name)});
    }
    json view;
    plane.VisitTenants([&](TenantId t, const TenantSpec& spec, const std::vector<uint64_t>& u) {
      if (t == *id) view = TenantView(t, spec, u);
    });
    Reply(res, 200, view);
  }

  void PatchTenant(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    if (!who.operator_role()) return Fail(res, {403, "", "only operators change quotas"});
    std::optional<json> body = JsonBody(req, res, {"reserved", "borrow_limit", "weight"});
    if (!body) return;
    control::QuotaChange change;
    if (body->contains("reserved")) {
      const json& r = (*body)["reserved"];
      if (!r.is_object()) return Fail(res, {400, "reserved", "must map accelerator types to counts"});
      std::vector<Reservation> reserved;
      for (const auto& [type, count] : r.items()) {
        std::optional<AcceleratorTypeId> t = plane.fleet().catalog().FindAccelerator(type);
        if (!t) return Fail(res, {400, "reserved." + type, "is not an accelerator type"});
        if (!count.is_number_unsigned() || count.get<uint64_t>() > 10'000'000) {
          return Fail(res, {400, "reserved." + type, "must be a whole number of accelerators"});
        }
        reserved.push_back({*t, count.get<uint32_t>()});
      }
      change.reserved = std::move(reserved);
    }
    if (body->contains("borrow_limit")) {
      const json& b = (*body)["borrow_limit"];
      if (b.is_null()) {
        change.borrow_limit = std::optional<uint32_t>();
      } else if (b.is_number_unsigned() && b.get<uint64_t>() <= 10'000'000) {
        change.borrow_limit = std::optional<uint32_t>(b.get<uint32_t>());
      } else {
        return Fail(res, {400, "borrow_limit", "must be a whole number of accelerators, or null for no limit"});
      }
    }
    if (body->contains("weight")) {
      const json& w = (*body)["weight"];
      if (!w.is_number() || !(w.get<double>() > 0) || w.get<double>() > 1e6) {
        return Fail(res, {400, "weight", "must be a number > 0"});
      }
      change.weight = w.get<double>();
    }
    const std::string name = req.matches[1];
    control::Outcome<TenantId> r = plane.ChangeQuota(who, name, change);
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 202, {{"name", name}, {"requested", *body}});
  }

  void ListQueues(const Principal& who, const HttpRequest&, HttpResponse& res) {
    if (!who.operator_role()) return Fail(res, {403, "", "only operators list queues"});
    json list = json::array();
    for (const io::QueueSpec& q : plane.config().queues) {
      list.push_back({{"name", q.name},
                      {"gpu_types", q.gpu_types},
                      {"max_time_s", q.max_time ? json(*q.max_time / 1000) : json(nullptr)},
                      {"default_time_s", q.default_time / 1000}});
    }
    json classes = json::array();
    for (const io::PriorityClassSpec& p : plane.config().priority_classes) {
      classes.push_back(
          {{"name", p.name}, {"value", p.value}, {"default", p.name == plane.config().default_priority_class}});
    }
    Reply(res, 200, {{"queues", list}, {"priority_classes", classes}});
  }

  void FleetView(const Principal&, const HttpRequest&, HttpResponse& res) {
    const control::ControlPlane::FleetStatus s = plane.Snapshot();
    json power = json::array();
    for (const PowerGovernor::Budget& b : s.budgets) {
      power.push_back(
          {{"level", PowerLevelName(b.level)}, {"index", b.index}, {"budget_w", b.budget_w}, {"used_w", b.used_w}});
    }
    Reply(res, 200,
          {{"campus", plane.fleet().campus().name},
           {"accelerators", s.accelerators},
           {"accelerators_used", s.accelerators_used},
           {"accelerators_out_of_service", s.accelerators_out},
           {"nodes", s.nodes},
           {"nodes_by_health", s.nodes_by_health},
           {"jobs", s.jobs_by_state},
           {"power_budgets", power},
           {"journal_seq", s.journal_seq},
           {"last_step", Time(s.last_step)},
           {"agents", s.agents},
           {"gpus_measured", s.gpus_measured},
           {"measured_gpu_power_watts", s.measured_gpu_power_w}});
  }

  void AuditLog(const Principal& who, const HttpRequest& req, HttpResponse& res) {
    if (!who.operator_role()) return Fail(res, {403, "", "only operators read the audit log"});
    uint64_t after = 0;
    uint32_t limit = 1000;
    for (const auto& [name, value] : req.params) {
      std::optional<uint64_t> n = Number(value);
      if (name == "after" && n) {
        after = *n;
      } else if (name == "limit" && n && *n > 0 && *n <= plane.config().limits.max_page) {
        limit = static_cast<uint32_t>(*n);
      } else {
        return Fail(res, {400, name, "after (a sequence number) and limit (1 to the page limit) are known"});
      }
    }
    json list = json::array();
    plane.VisitAudit(after, limit, [&](const control::AuditEntry& e) {
      list.push_back({{"seq", e.seq},
                      {"at", Time(e.at)},
                      {"who", e.who},
                      {"action", e.action},
                      {"target", e.target},
                      {"detail", e.detail}});
    });
    Reply(res, 200, {{"entries", list}});
  }

  // ---- Agents ----

  static void ReplyAssignments(HttpResponse& res, const control::NodeAssignments& node) {
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
    Reply(res, 200, {{"assignments", list}, {"version", std::to_string(node.version)}});
  }

  // A heartbeat; with `known` (the version of the assignments the agent runs) and `wait_ms`, a
  // long poll: answered once the node's assignments differ from `known`, or after `wait_ms`.
  void Heartbeat(const Principal& who, const HttpRequest& req, const HttpServer::Respond& respond) {
    HttpResponse res;
    uint64_t known = 0, wait_ms = 0;
    for (const auto& [name, value] : req.params) {
      std::optional<uint64_t> n = Number(value);
      if (name == "known" && n) {
        known = *n;
      } else if (name == "wait_ms" && n && *n <= kMaxWaitMs) {
        wait_ms = *n;
      } else {
        Fail(res,
             {400, name,
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
    // Runs on the I/O thread (the route's): a report of ended workers waits for the journal, so it
    // goes on on the handlers' pool. (A node back from down waits for one commit here: rare.)
    auto report = std::make_shared<control::AgentReport>(std::move(std::get<control::AgentReport>(parsed)));
    if (report->ended.empty()) return HeartbeatReported(who, req, known, wait_ms, std::move(*report), respond);
    server.Offload([this, who, &req, known, wait_ms, report, respond] {  // respond keeps the connection
      HeartbeatReported(who, req, known, wait_ms, std::move(*report), respond);
    });
  }

  void HeartbeatReported(const Principal& who, const HttpRequest& req, uint64_t known, uint64_t wait_ms,
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
  static constexpr uint64_t kMaxWaitMs = 60'000;

  // ---- Routes ----

  void Routes() {
    using namespace std::placeholders;
    auto bind = [this](auto method) { return std::bind(method, this, _1, _2, _3); };
    Open("/healthz", [](const HttpRequest&, HttpResponse& res) { res.set_content("ok\n", "text/plain"); });
    Open("/readyz", [this](const HttpRequest&, HttpResponse& res) {
      if (plane.ready()) {
        return res.set_content(
            plane.leading() ? "ready: leader\n" : fmt::format("ready: follower of {}\n", plane.leader_address()),
            "text/plain");
      }
      const std::optional<std::string> journal = plane.loaded() ? plane.journal_error() : std::nullopt;
      Fail(res, {503, "",
                 journal          ? fmt::format("not ready: the journal failed: {} (retried every {} ms)", *journal,
                                                control::ControlPlane::kRecoverRetryMs)
                 : plane.loaded() ? "not ready: starting, following without a leader, or stopping"
                                  : "not ready: replaying the journal"});
    });
    Open("/metrics", [this](const HttpRequest&, HttpResponse& res) {
      res.set_content(RenderMetrics(plane, metrics), "text/plain; version=0.0.4; charset=utf-8");
    });
    Open("/api/v1/openapi.json",
         [](const HttpRequest&, HttpResponse& res) { res.set_content(OpenApiDocument(), "application/json"); });
    Authed("POST", "/api/v1/jobs", "/api/v1/jobs", bind(&Impl::SubmitJob));
    Authed("GET", "/api/v1/jobs", "/api/v1/jobs", bind(&Impl::ListJobs));
    Authed("GET", R"(/api/v1/jobs/([^/]+))", "/api/v1/jobs/{id}", bind(&Impl::GetJob));
    Authed("GET", R"(/api/v1/jobs/([^/]+)/events)", "/api/v1/jobs/{id}/events", bind(&Impl::JobEvents));
    Authed("POST", R"(/api/v1/jobs/([^/]+)/cancel)", "/api/v1/jobs/{id}/cancel", bind(&Impl::CancelJob));
    Authed("GET", "/api/v1/nodes", "/api/v1/nodes", bind(&Impl::ListNodes));
    Authed("GET", R"(/api/v1/nodes/([^/]+))", "/api/v1/nodes/{name}", bind(&Impl::GetNode));
    Authed("POST", R"(/api/v1/nodes/([^/]+)/drain)", "/api/v1/nodes/{name}/drain",
           [this](const Principal& who, const HttpRequest& req, HttpResponse& res) {
             ChangeNode(who, req, res, NodeHealth::kDrained);
           });
    Authed("POST", R"(/api/v1/nodes/([^/]+)/resume)", "/api/v1/nodes/{name}/resume",
           [this](const Principal& who, const HttpRequest& req, HttpResponse& res) {
             ChangeNode(who, req, res, NodeHealth::kHealthy);
           });
    Authed("GET", "/api/v1/tenants", "/api/v1/tenants", bind(&Impl::ListTenants));
    Authed("GET", R"(/api/v1/tenants/([^/]+))", "/api/v1/tenants/{name}", bind(&Impl::GetTenant));
    Authed("PATCH", R"(/api/v1/tenants/([^/]+))", "/api/v1/tenants/{name}", bind(&Impl::PatchTenant));
    Authed("GET", "/api/v1/queues", "/api/v1/queues", bind(&Impl::ListQueues));
    Authed("GET", "/api/v1/fleet", "/api/v1/fleet", bind(&Impl::FleetView));
    Authed("GET", "/api/v1/audit", "/api/v1/audit", bind(&Impl::AuditLog));
    AuthedAsync(
        "POST", R"(/api/v1/agents/([^/]+)/heartbeat)", "/api/v1/agents/{node}/heartbeat",
        [this](const Principal& who, const HttpRequest& req, const HttpServer::Respond& respond) {
          Heartbeat(who, req, respond);
        },
        /*on_io=*/true);
  }
};

HttpApi::HttpApi(control::ControlPlane& plane) : impl_(std::make_unique<Impl>(plane)) {
  impl_->metrics.set_connections(&impl_->server.counters());
  impl_->Routes();
}

HttpApi::~HttpApi() = default;

Result<int> HttpApi::Bind(const std::string& host, int port) { return impl_->server.Bind(host, port); }

void HttpApi::Serve() { impl_->server.Serve(); }

void HttpApi::Stop() { impl_->server.Stop(); }

}  // namespace joule::api
