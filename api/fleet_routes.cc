// The fleet's routes: nodes, tenants, queues, the fleet's state, the audit log.
#include "api/http_api_impl.h"
#include "base/text.h"

namespace joule::api {

void HttpApi::Impl::ListNodes(const Principal& who, const HttpRequest& req, HttpResponse& res) {
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

void HttpApi::Impl::GetNode(const Principal& who, const HttpRequest& req, HttpResponse& res) {
  const std::string name = req.matches[1];
  std::optional<NodeId> id = plane.FindNode(name);
  if (!id) return Fail(res, {404, "name", fmt::format("node {} does not exist", name)});
  std::optional<control::NodeInfo> info;
  plane.VisitNodes([&](NodeId n, const control::NodeInfo& i) {
    if (n == *id) info = i;
  });
  Reply(res, 200, NodeView(who, *id, *info));
}

void HttpApi::Impl::ChangeNode(const Principal& who, const HttpRequest& req, HttpResponse& res, NodeHealth to) {
  std::optional<json> body = JsonBody(req, res, {"reason"});
  if (!body) return;
  std::string reason;
  if (body->contains("reason")) {
    if (!(*body)["reason"].is_string()) return Fail(res, {400, "reason", "must be a string"});
    reason = (*body)["reason"].get<std::string>();
    if (reason.size() > 1024) return Fail(res, {400, "reason", "at most 1024 characters"});
    if (HasControl(reason)) return Fail(res, {400, "reason", "must not hold control characters"});
  }
  const std::string name = req.matches[1];
  control::Outcome<NodeId> r = plane.SetNodeHealth(who, name, to, reason);
  if (!r.ok()) return Fail(res, r.error);
  Reply(res, 202, {{"name", name}, {"requested", NodeHealthName(to)}, {"reason", reason}});
}

void HttpApi::Impl::ListTenants(const Principal& who, const HttpRequest&, HttpResponse& res) {
  if (!who.operator_role()) return Fail(res, {403, "", "only operators list tenants"});
  json list = json::array();
  plane.VisitTenants(
      [&](TenantId id, const TenantSpec& t, const std::vector<uint64_t>& u) { list.push_back(TenantView(id, t, u)); });
  Reply(res, 200, {{"tenants", list}});
}

void HttpApi::Impl::GetTenant(const Principal& who, const HttpRequest& req, HttpResponse& res) {
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

void HttpApi::Impl::PatchTenant(const Principal& who, const HttpRequest& req, HttpResponse& res) {
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

void HttpApi::Impl::ListQueues(const Principal& who, const HttpRequest&, HttpResponse& res) {
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

void HttpApi::Impl::FleetView(const Principal&, const HttpRequest&, HttpResponse& res) {
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

void HttpApi::Impl::AuditLog(const Principal& who, const HttpRequest& req, HttpResponse& res) {
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

}  // namespace joule::api
