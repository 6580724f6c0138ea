#include "api/http_api.h"

#include <httplib.h>

#include <array>
#include <atomic>
#include <bitset>
#include <charconv>
#include <chrono>
#include <ctime>
#include <regex>
#include <sstream>

#include <sys/socket.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "api/agent_report.h"
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

void Reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void Fail(httplib::Response& res, const ApiError& e) {
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
  httplib::Server server;
  HttpMetrics metrics;
  int listen_socket = -1;

  explicit Impl(control::ControlPlane& p) : plane(p) {}

  // ---- Plumbing ----

  using Handler = std::function<void(const Principal&, const httplib::Request&, httplib::Response&)>;

  // Authenticates, runs, and counts the request under its route's template.
  httplib::Server::Handler Authed(std::string route, Handler handler) {
    return [this, route = std::move(route), handler = std::move(handler)](const httplib::Request& req,
                                                                          httplib::Response& res) {
      const auto begin = std::chrono::steady_clock::now();
      std::optional<Principal> who = plane.auth().Check(req.get_header_value("Authorization"));
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
        handler(*who, req, res);
      }
      metrics.Observe(req.method, route, res.status,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    };
  }
  // A change sent to a follower: 307 to the leader (the method and body are sent again there),
  // or 503 while no leader is known (an election takes a lease's time at most).
  void ToLeader(const httplib::Request& req, httplib::Response& res) {
    const std::string leader = plane.leader_address();
    if (leader.empty()) {
      res.set_header("Retry-After", "1");
      Fail(res, {503, "", "this server follows and no leader is known yet: retry"});
      return;
    }
    res.set_header("Location", leader + req.target);
    Fail(res, {307, "", fmt::format("this server follows; send changes to the leader, {}", leader)});
  }

  httplib::Server::Handler Open(std::string route, httplib::Server::Handler handler) {
    return [this, route = std::move(route), handler = std::move(handler)](const httplib::Request& req,
                                                                          httplib::Response& res) {
      const auto begin = std::chrono::steady_clock::now();
      handler(req, res);
      metrics.Observe(req.method, route, res.status,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
    };
  }

  static std::optional<json> JsonBody(const httplib::Request& req, httplib::Response& res,
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

  void SubmitJob(const Principal& who, const httplib::Request& req, httplib::Response& res) {
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

  void ListJobs(const Principal& who, const httplib::Request& req, httplib::Response& res) {
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

  std::optional<JobId> JobIdOf(const httplib::Request& req, httplib::Response& res) {
    std::optional<uint64_t> id = Number(req.matches[1].str());
    if (!id) Fail(res, {400, "id", "must be a job id"});
    return id;
  }

  void GetJob(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    json view;
    control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, true); });
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 200, view);
  }

  void JobEvents(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    json events = json::array();
    control::Outcome<bool> r = plane.VisitJob(who, *id, [&](const control::JobInfo& j) {
      for (const control::JobEvent& e : j.events) events.push_back({{"at", Time(e.at)}, {"what", e.what}});
    });
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 200, {{"events", events}});
  }

  void CancelJob(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    std::optional<JobId> id = JobIdOf(req, res);
    if (!id) return;
    control::Outcome<JobId> r = plane.Cancel(who, *id);
    if (!r.ok()) return Fail(res, r.error);
    json view;
    (void)plane.VisitJob(who, *id, [&](const control::JobInfo& j) { view = JobView(j, false); });
    Reply(res, 202, view);
  }

  // ---- Nodes ----

  void ListNodes(const Principal& who, const httplib::Request& req, httplib::Response& res) {
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

  void GetNode(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
    std::optional<NodeId> id = plane.FindNode(name);
    if (!id) return Fail(res, {404, "name", fmt::format("node {} does not exist", name)});
    std::optional<control::NodeInfo> info;
    plane.VisitNodes([&](NodeId n, const control::NodeInfo& i) {
      if (n == *id) info = i;
    });
    Reply(res, 200, NodeView(who, *id, *info));
  }

  void ChangeNode(const Principal& who, const httplib::Request& req, httplib::Response& res, NodeHealth to) {
    std::optional<json> body = JsonBody(req, res, {"reason"});
    if (!body) return;
    std::string reason;
    if (body->contains("reason")) {
      if (!(*body)["reason"].is_string()) return Fail(res, {400, "reason", "must be a string"});
      reason = (*body)["reason"].get<std::string>();
      if (reason.size() > 1024) return Fail(res, {400, "reason", "at most 1024 characters"});
    }
    const std::string name = req.matches[1].str();
    control::Outcome<NodeId> r = plane.SetNodeHealth(who, name, to, reason);
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 202, {{"name", name}, {"requested", NodeHealthName(to)}, {"reason", reason}});
  }

  // ---- Tenants, queues, fleet, audit ----

  void ListTenants(const Principal& who, const httplib::Request&, httplib::Response& res) {
    if (!who.operator_role()) return Fail(res, {403, "", "only operators list tenants"});
    json list = json::array();
    plane.VisitTenants([&](TenantId id, const TenantSpec& t, const std::vector<uint64_t>& u) {
      list.push_back(TenantView(id, t, u));
    });
    Reply(res, 200, {{"tenants", list}});
  }

  void GetTenant(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1].str();
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

  void PatchTenant(const Principal& who, const httplib::Request& req, httplib::Response& res) {
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
    const std::string name = req.matches[1].str();
    control::Outcome<TenantId> r = plane.ChangeQuota(who, name, change);
    if (!r.ok()) return Fail(res, r.error);
    Reply(res, 202, {{"name", name}, {"requested", *body}});
  }

  void ListQueues(const Principal& who, const httplib::Request&, httplib::Response& res) {
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

  void FleetView(const Principal&, const httplib::Request&, httplib::Response& res) {
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

  void AuditLog(const Principal& who, const httplib::Request& req, httplib::Response& res) {
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

  void Heartbeat(const Principal& who, const httplib::Request& req, httplib::Response& res) {
    std::variant<control::AgentReport, control::ApiError> report = ParseAgentReport(req.body);
    if (auto* bad = std::get_if<control::ApiError>(&report)) return Fail(res, *bad);
    control::Outcome<std::vector<control::Assignment>> r =
        plane.AgentHeartbeat(who, req.matches[1].str(), std::move(std::get<control::AgentReport>(report)));
    if (!r.ok()) return Fail(res, r.error);
    json list = json::array();
    for (const control::Assignment& a : *r.value) {
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
    Reply(res, 200, {{"assignments", list}});
  }

  // ---- Routes ----

  void Routes() {
    using namespace std::placeholders;
    auto bind = [this](auto method) { return std::bind(method, this, _1, _2, _3); };
    server.Get("/healthz", Open("/healthz", [](const httplib::Request&, httplib::Response& res) {
                 res.set_content("ok\n", "text/plain");
               }));
    server.Get("/readyz", Open("/readyz", [this](const httplib::Request&, httplib::Response& res) {
                 if (plane.ready()) {
                   return res.set_content(plane.leading()
                                              ? "ready: leader\n"
                                              : fmt::format("ready: follower of {}\n", plane.leader_address()),
                                          "text/plain");
                 }
                 const std::optional<std::string> journal = plane.loaded() ? plane.journal_error() : std::nullopt;
                 Fail(res, {503, "",
                            journal ? fmt::format("not ready: the journal failed: {} (retried every {} ms)", *journal,
                                                  control::ControlPlane::kRecoverRetryMs)
                            : plane.loaded() ? "not ready: starting, following without a leader, or stopping"
                                             : "not ready: replaying the journal"});
               }));
    server.Get("/metrics", Open("/metrics", [this](const httplib::Request&, httplib::Response& res) {
                 res.set_content(RenderMetrics(plane, metrics), "text/plain; version=0.0.4; charset=utf-8");
               }));
    server.Get("/api/v1/openapi.json",
               Open("/api/v1/openapi.json", [](const httplib::Request&, httplib::Response& res) {
                 res.set_content(OpenApiDocument(), "application/json");
               }));
    server.Post("/api/v1/jobs", Authed("/api/v1/jobs", bind(&Impl::SubmitJob)));
    server.Get("/api/v1/jobs", Authed("/api/v1/jobs", bind(&Impl::ListJobs)));
    server.Get(R"(/api/v1/jobs/([^/]+))", Authed("/api/v1/jobs/{id}", bind(&Impl::GetJob)));
    server.Get(R"(/api/v1/jobs/([^/]+)/events)", Authed("/api/v1/jobs/{id}/events", bind(&Impl::JobEvents)));
    server.Post(R"(/api/v1/jobs/([^/]+)/cancel)", Authed("/api/v1/jobs/{id}/cancel", bind(&Impl::CancelJob)));
    server.Get("/api/v1/nodes", Authed("/api/v1/nodes", bind(&Impl::ListNodes)));
    server.Get(R"(/api/v1/nodes/([^/]+))", Authed("/api/v1/nodes/{name}", bind(&Impl::GetNode)));
    server.Post(R"(/api/v1/nodes/([^/]+)/drain)",
                Authed("/api/v1/nodes/{name}/drain",
                       [this](const Principal& who, const httplib::Request& req, httplib::Response& res) {
                         ChangeNode(who, req, res, NodeHealth::kDrained);
                       }));
    server.Post(R"(/api/v1/nodes/([^/]+)/resume)",
                Authed("/api/v1/nodes/{name}/resume",
                       [this](const Principal& who, const httplib::Request& req, httplib::Response& res) {
                         ChangeNode(who, req, res, NodeHealth::kHealthy);
                       }));
    server.Get("/api/v1/tenants", Authed("/api/v1/tenants", bind(&Impl::ListTenants)));
    server.Get(R"(/api/v1/tenants/([^/]+))", Authed("/api/v1/tenants/{name}", bind(&Impl::GetTenant)));
    server.Patch(R"(/api/v1/tenants/([^/]+))", Authed("/api/v1/tenants/{name}", bind(&Impl::PatchTenant)));
    server.Get("/api/v1/queues", Authed("/api/v1/queues", bind(&Impl::ListQueues)));
    server.Get("/api/v1/fleet", Authed("/api/v1/fleet", bind(&Impl::FleetView)));
    server.Get("/api/v1/audit", Authed("/api/v1/audit", bind(&Impl::AuditLog)));
    server.Post(R"(/api/v1/agents/([^/]+)/heartbeat)",
                Authed("/api/v1/agents/{node}/heartbeat", bind(&Impl::Heartbeat)));
    // Whatever httplib answers by itself (no route, body too large, malformed request) gets the
    // same JSON error body.
    server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string rule = res.status == 404   ? fmt::format("no route for {} {}", req.method, req.path)
                               : res.status == 413 ? "the body is larger than the server's limit"
                                                   : fmt::format("the request was refused (HTTP {})", res.status);
      Fail(res, {res.status, res.status == 413 ? "body" : "", rule});
    });
  }
};

HttpApi::HttpApi(control::ControlPlane& plane) : impl_(std::make_unique<Impl>(plane)) {
  const size_t threads = plane.config().http_threads;
  impl_->server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->server.set_payload_max_length(plane.config().limits.max_body_bytes);
  impl_->server.set_keep_alive_max_count(100'000);
  // Requests and answers are small: send them at once rather than wait for delayed ACKs (Nagle).
  impl_->server.set_tcp_nodelay(true);
  // Remember the listening socket: Bind deepens its backlog past the library's built-in 5, which
  // would drop the connections of a burst of clients.
  impl_->server.set_socket_options([impl = impl_.get()](int sock) {
    ListenAlone(sock);
    impl->listen_socket = sock;
  });
  impl_->Routes();
}

HttpApi::~HttpApi() = default;

void ListenAlone(int sock) {
  // SO_REUSEADDR only: a restarted server may bind while old connections sit in TIME_WAIT, but no
  // second live process may listen on the port (the library's default adds SO_REUSEPORT, which
  // would let two servers split the clients between them).
  const int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

Result<int> HttpApi::Bind(const std::string& host, int port) {
  const int bound =
      port == 0 ? impl_->server.bind_to_any_port(host) : (impl_->server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return Status::Error(
        fmt::format("cannot listen on {}:{}: the port is in use (another server?) or the address "
                    "is not this machine's",
                    host, port));
  }
  if (impl_->listen_socket >= 0) ::listen(impl_->listen_socket, SOMAXCONN);
  return bound;
}

void HttpApi::Serve() { impl_->server.listen_after_bind(); }

void HttpApi::Stop() { impl_->server.stop(); }

}  // namespace joule::api
