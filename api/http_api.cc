// The API's plumbing, views and route table; the handlers are in job_routes.cc, fleet_routes.cc and
// agent_routes.cc (api/http_api_impl.h declares what they share).
#include "api/http_api_impl.h"

namespace joule::api {

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
  // Never throws: a byte that is not UTF-8 (none should reach here) is written as U+FFFD.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
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

json HttpApi::Impl::NodeNames(const std::vector<NodeId>& nodes) const {
  json names = json::array();
  for (NodeId n : nodes) names.push_back(plane.fleet().NodeName(n));
  return names;
}

json HttpApi::Impl::JobView(const control::JobInfo& j, bool full) const {
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
void HttpApi::Impl::AppendJob(std::string& out, const control::JobInfo& j, const FieldSet& fields) const {
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

json HttpApi::Impl::NodeView(const Principal& who, NodeId id, const control::NodeInfo& n) const {
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

json HttpApi::Impl::AgentJson(const control::AgentView& a) {
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

json HttpApi::Impl::TenantView(TenantId, const TenantSpec& t, const std::vector<uint64_t>& in_use) const {
  const Catalog& catalog = plane.fleet().catalog();
  json reserved = json::object(), used = json::object();
  for (const Reservation& r : t.reserved) reserved[catalog.accelerator(r.type).name] = r.accelerators;
  for (size_t type = 0; type < in_use.size(); ++type) {
    if (in_use[type] > 0) used[catalog.accelerator(AcceleratorTypeId(static_cast<uint32_t>(type))).name] = in_use[type];
  }
  return {{"name", t.name},
          {"reserved", reserved},
          {"borrow_limit", t.borrow_limit ? json(*t.borrow_limit) : json(nullptr)},
          {"weight", t.weight},
          {"in_use", used}};
}

void HttpApi::Impl::Routes() {
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
  // Open to scrapers without a token, minus the tenants' series; a token shows those it may see
  // (docs/security.md). A token that is not one is a 401: a misconfigured scraper should notice.
  Open("/metrics", [this](const HttpRequest& req, HttpResponse& res) {
    std::optional<Principal> reader;
    if (req.has_header("Authorization")) {
      reader = plane.auth().Check(req.get_header_value("Authorization"));
      if (!reader) {
        res.set_header("WWW-Authenticate", "Bearer");
        return Fail(res, {401, "Authorization", "not a valid bearer token (scrape without one for the open page)"});
      }
    }
    res.set_content(RenderMetrics(plane, metrics, reader), "text/plain; version=0.0.4; charset=utf-8");
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

HttpApi::HttpApi(control::ControlPlane& plane) : impl_(std::make_unique<Impl>(plane)) {
  impl_->metrics.set_connections(&impl_->server.counters());
  impl_->Routes();
}

HttpApi::~HttpApi() = default;

Result<int> HttpApi::Bind(const std::string& host, int port) { return impl_->server.Bind(host, port); }

Status HttpApi::UseTls(const std::string& certificate, const std::string& key) {
  return impl_->server.UseTls(certificate, key);
}

void HttpApi::Serve() { impl_->server.Serve(); }

void HttpApi::Stop() { impl_->server.Stop(); }

std::optional<HttpResponse> HttpApi::Dispatch(HttpRequest request, std::chrono::milliseconds wait) {
  return impl_->server.Dispatch(std::move(request), wait);
}

}  // namespace joule::api
