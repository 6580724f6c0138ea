#include "io/fleet_json.h"

namespace joule::io {
namespace {

using Json = nlohmann::ordered_json;

Json Optional(const std::optional<Watts>& w) { return w ? Json(*w) : Json(nullptr); }

Json Tenants(const std::vector<TenantSpec>& tenants, const Catalog& catalog) {
  Json list = Json::array();
  for (const TenantSpec& t : tenants) {
    Json reserved = Json::object();
    for (const Reservation& r : t.reserved) reserved[catalog.accelerator(r.type).name] = r.accelerators;
    list.push_back({{"name", t.name},
                    {"reserved", reserved},
                    {"borrow_limit", t.borrow_limit ? Json(*t.borrow_limit) : Json(nullptr)},
                    {"weight", t.weight}});
  }
  return list;
}

}  // namespace

nlohmann::ordered_json FleetSummaryJson(const FleetSummary& s, const std::vector<TenantSpec>& tenants,
                                        const Catalog& catalog) {
  Json types = Json::array();
  for (const TypeCount& t : s.by_type)
    types.push_back({{"type", t.type}, {"accelerators", t.accelerators}, {"nodes", t.nodes}});
  Json domains = Json::array();
  for (const DomainCount& d : s.nvlink) domains.push_back({{"size", d.accelerators}, {"count", d.domains}});
  Json halls = Json::array();
  for (const HallSummary& h : s.hall_list) {
    halls.push_back({{"name", h.name},
                     {"accelerators", h.accelerators},
                     {"it_rated_w", h.it_rated_w},
                     {"power_budget_w", Optional(h.power_budget_w)},
                     {"headroom_w", h.power_budget_w ? Json(*h.power_budget_w - h.it_rated_w) : Json(nullptr)}});
  }
  Json budgets = Json::array();
  for (const LevelBudgets& b : s.budgets) {
    budgets.push_back({{"level", b.level},
                       {"units", b.units},
                       {"with_budget", b.with_budget},
                       {"total_budget_w", b.total_budget_w},
                       {"min_headroom_w", Optional(b.min_headroom_w)},
                       {"tightest", b.with_budget ? Json(b.tightest) : Json(nullptr)}});
  }
  return Json{{"schema", "joule.fleet.v1"},
              {"campus", s.campus},
              {"phase", s.phase.empty() ? Json(nullptr) : Json(s.phase)},
              {"counts",
               {{"halls", s.halls},
                {"rows", s.rows},
                {"pods", s.pods},
                {"racks", s.racks},
                {"nodes", s.nodes},
                {"accelerators", s.accelerators}}},
              {"cpu_millicores", s.cpu},
              {"memory_mib", s.memory},
              {"accelerators_by_type", types},
              {"nvlink_domains", domains},
              {"power",
               {{"it_rated_w", s.it_rated_w},
                {"it_idle_w", s.it_idle_w},
                {"pue", s.pue},
                {"facility_rated_w", s.facility_rated_w},
                {"grid_connection_w", s.grid_connection_w},
                {"grid_headroom_w", s.grid_headroom_w}}},
              {"budgets", budgets},
              {"halls", halls},
              {"heat",
               {{"liquid_capture", s.liquid_heat_capture},
                {"recoverable_w", s.recoverable_heat_w},
                {"supply_temperature_c", s.supply_temperature_c}}},
              {"tenants", Tenants(tenants, catalog)}};
}

}  // namespace joule::io
