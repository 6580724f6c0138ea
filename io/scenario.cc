#include "io/scenario.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "io/failures_yaml.h"
#include "io/node_list.h"
#include "io/yaml_fields.h"
#include "power/facility.h"

namespace joule::io {
namespace {

Watts ToWatts(double value, double scale) { return std::llround(value * scale); }

std::string Kw(Watts w) { return fmt::format("{:.1f} kW", static_cast<double>(w) / kWattsPerKw); }

std::string Indexed(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

struct ParsedHall {
  HallSpec spec;
  size_t phase = 0;
  Site budget_site;
  std::vector<Site> row_budget_sites;
};

class Parser {
 public:
  Parser(std::string path, LoadOptions options) : path_(std::move(path)), options_(std::move(options)) {}

  Result<Scenario> Load() {
    return ParseYamlFile<Scenario>(path_, "scenario file", [&](const YAML::Node& root) { return Parse(root); });
  }

 private:
  Result<Scenario> Parse(const YAML::Node& root) {
    if (!root || root.IsNull()) return Status::Error(fmt::format("{}: empty scenario file", path_));
    Fields top(
        root, "",
        {"description", "campus", "accelerator_types", "node_types", "rack_types", "halls", "tenants", "failures"});
    if (top.Has("description")) (void)top.String("description");
    spec_.catalog = Catalog::BuiltIn();
    if (!top.Has("campus")) top.FailMissing("campus");
    ParseCampus(Fields(top.Get("campus"), "campus",
                       {"name", "grid_connection_mw", "phases", "pue", "liquid_heat_capture", "supply_temperature_c",
                        "heat_network", "power_model", "pue_at_idle", "pue_per_degree_c", "pue_reference_c",
                        "outdoor_mean_c", "outdoor_amplitude_c"}));
    ForEach(top, "accelerator_types", [&](const Fields& f) { ParseAcceleratorType(f); });
    ForEach(top, "node_types", [&](const Fields& f) { ParseNodeType(f); });
    ForEach(top, "rack_types", [&](const Fields& f) { ParseRackType(f); });
    YAML::Node halls = top.List("halls");
    for (size_t i = 0; i < halls.size(); ++i) ParseHall(halls[i], Indexed("halls", i));
    SelectPhase();
    if (spec_.halls.empty()) top.Fail("halls", fmt::format("no hall belongs to phase '{}'", spec_.campus.phase));

    Scenario scenario{Fleet::Build(std::move(spec_)), {}, phases_};
    CheckBudgets(scenario.fleet);
    if (top.Has("tenants")) scenario.tenants = ParseTenants(top, scenario.fleet);
    if (top.Has("failures")) {
      YAML::Node block = top.Get("failures");
      scenario.failures = ParseFailures(block.IsNull() ? Fields(YAML::Node(YAML::NodeType::Map), "failures", {})
                                                       : Fields(block, "failures",
                                                                {"causes", "domains", "maintenance", "triage_h",
                                                                 "restart_overhead_min", "checkpoint_stall_s"}));
    }
    return scenario;
  }

  template <typename Fn>
  void ForEach(const Fields& parent, std::string_view key, Fn fn) {
    if (!parent.Has(key)) return;
    YAML::Node list = parent.List(key);
    for (size_t i = 0; i < list.size(); ++i) fn(TypeFields(list[i], Indexed(parent.PathOf(key), i), key));
  }

  Fields TypeFields(const YAML::Node& node, std::string path, std::string_view kind) {
    if (kind == "accelerator_types") {
      return Fields(node, std::move(path), {"name", "memory_gib", "rated_w", "idle_w", "nvlink_domain"});
    }
    if (kind == "node_types") {
      return Fields(
          node, std::move(path),
          {"name", "accelerator", "accelerators", "cpu_cores", "memory_gib", "overhead_w", "idle_overhead_w"});
    }
    return Fields(node, std::move(path),
                  {"name", "node_type", "nodes", "overhead_w", "idle_overhead_w", "power_budget_kw"});
  }

  void ParseCampus(const Fields& f) {
    spec_.campus.name = f.String("name");
    spec_.campus.pue = f.Number("pue", 1.0, 3.0);
    spec_.campus.liquid_heat_capture = f.Number("liquid_heat_capture", 0.0, 1.0);
    spec_.campus.supply_temperature_c = f.Number("supply_temperature_c", 0.0, 100.0);
    CampusSpec& c = spec_.campus;
    c.pue_at_idle = f.OptNumber("pue_at_idle", 1.0, 5.0).value_or(0);
    c.pue_per_degree_c = f.OptNumber("pue_per_degree_c", 0.0, 0.1).value_or(0);
    c.pue_reference_c = f.OptNumber("pue_reference_c", -40.0, 50.0).value_or(c.pue_reference_c);
    c.outdoor_mean_c = f.OptNumber("outdoor_mean_c", -40.0, 40.0).value_or(c.outdoor_mean_c);
    c.outdoor_amplitude_c = f.OptNumber("outdoor_amplitude_c", 0.0, 40.0).value_or(c.outdoor_amplitude_c);
    if (f.Has("power_model")) {
      Fields m(f.Get("power_model"), f.PathOf("power_model"), {"training", "inference", "other", "min_power_limit"});
      PowerModelSpec& model = spec_.campus.power_model;
      const std::array<std::pair<const char*, WorkClass>, kWorkClasses> classes = {
          {{"training", WorkClass::kTraining}, {"inference", WorkClass::kInference}, {"other", WorkClass::kOther}}};
      auto permille = [](double share) { return static_cast<uint32_t>(std::llround(share * 1000)); };
      for (auto [name, work] : classes) {
        if (!m.Has(name)) continue;
        Fields w(m.Get(name), m.PathOf(name), {"draw", "cap_sensitivity"});
        WorkPowerSpec& spec = model.work[static_cast<size_t>(work)];
        if (w.Has("draw")) spec.natural_permille = permille(w.Number("draw", 0.01, 1.0));
        if (w.Has("cap_sensitivity")) spec.cap_sensitivity_milli = permille(w.Number("cap_sensitivity", 0.0, 1.0));
      }
      if (m.Has("min_power_limit")) model.min_limit_permille = permille(m.Number("min_power_limit", 0.05, 1.0));
    }
    if (f.Has("heat_network")) {
      Fields h(f.Get("heat_network"), f.PathOf("heat_network"),
               {"supply_temperature_c", "peak_demand_mw", "base_share", "design_outdoor_c", "heating_threshold_c"});
      HeatNetworkSpec n;
      n.supply_temperature_c = h.Number("supply_temperature_c", 20.0, 150.0);
      n.peak_demand_w = h.Positive("peak_demand_mw") * static_cast<double>(kWattsPerMw);
      n.base_share = h.OptNumber("base_share", 0.0, 1.0).value_or(n.base_share);
      n.design_outdoor_c = h.OptNumber("design_outdoor_c", -60.0, 30.0).value_or(n.design_outdoor_c);
      n.heating_threshold_c = h.OptNumber("heating_threshold_c", -30.0, 40.0).value_or(n.heating_threshold_c);
      if (n.heating_threshold_c <= n.design_outdoor_c) {
        h.Fail("heating_threshold_c", "must be above design_outdoor_c");
      }
      spec_.campus.heat_network = n;
    }
    if (f.OneOf({"grid_connection_mw", "phases"}) == "grid_connection_mw") {
      spec_.campus.grid_connection_w = ToWatts(f.Positive("grid_connection_mw"), kWattsPerMw);
      grid_site_ = f.SiteOf("grid_connection_mw");
      if (options_.phase) throw Status::Error(fmt::format("{}: campus declares no phases; drop --phase", path_));
      return;
    }
    YAML::Node phases = f.List("phases");
    std::optional<size_t> chosen;
    for (size_t i = 0; i < phases.size(); ++i) {
      Fields p(phases[i], Indexed("campus.phases", i), {"name", "grid_connection_mw"});
      std::string name = p.String("name");
      Watts grid = ToWatts(p.Positive("grid_connection_mw"), kWattsPerMw);
      if (std::find(phases_.begin(), phases_.end(), name) != phases_.end()) p.Fail("name", "duplicate phase name");
      phases_.push_back(name);
      if (chosen || (options_.phase && *options_.phase != name)) continue;
      chosen = i;
      spec_.campus.phase = name;
      spec_.campus.grid_connection_w = grid;
      grid_site_ = p.SiteOf("grid_connection_mw");
    }
    if (!chosen) {
      throw Status::Error(
          fmt::format("{}: unknown phase '{}' (declared: {})", path_, *options_.phase, fmt::join(phases_, ", ")));
    }
    chosen_phase_ = *chosen;
  }

  static void CheckNew(const Fields& f, std::map<std::string, bool>& seen) {
    std::string name = f.String("name");
    if (seen.count(name)) f.Fail("name", fmt::format("duplicate name '{}'", name));
    seen[name] = true;
  }

  void ParseAcceleratorType(const Fields& f) {
    CheckNew(f, accelerator_names_);
    AcceleratorType t{f.String("name"), f.Count("memory_gib"), ToWatts(f.Positive("rated_w"), 1),
                      ToWatts(f.Positive("idle_w"), 1), f.Count("nvlink_domain")};
    if (t.idle_w > t.rated_w) f.Fail("idle_w", fmt::format("must not exceed rated_w ({} W)", t.rated_w));
    spec_.catalog.Add(std::move(t));
  }

  void ParseNodeType(const Fields& f) {
    CheckNew(f, node_names_);
    NodeType t;
    t.name = f.String("name");
    t.accelerator = AcceleratorNamed(f, "accelerator");
    t.accelerators = f.Count("accelerators");
    t.cpu = ToWatts(f.Positive("cpu_cores"), 1000);
    t.memory = ToWatts(f.Positive("memory_gib"), 1024);
    t.overhead_rated_w = ToWatts(f.Number("overhead_w", 0, 1e6), 1);
    t.overhead_idle_w = ToWatts(f.Number("idle_overhead_w", 0, 1e6), 1);
    if (t.overhead_idle_w > t.overhead_rated_w) f.Fail("idle_overhead_w", "must not exceed overhead_w");
    spec_.catalog.Add(std::move(t));
  }

  void ParseRackType(const Fields& f) {
    CheckNew(f, rack_names_);
    RackType t;
    t.name = f.String("name");
    if (f.Has("node_type")) {
      std::string node = f.String("node_type");
      auto id = spec_.catalog.FindNode(node);
      if (!id) f.Fail("node_type", fmt::format("unknown node type '{}'", node));
      t.node_type = *id;
    }
    t.nodes = f.Count("nodes");
    t.overhead_rated_w = ToWatts(f.Number("overhead_w", 0, 1e7), 1);
    t.overhead_idle_w = ToWatts(f.Number("idle_overhead_w", 0, 1e7), 1);
    if (t.overhead_idle_w > t.overhead_rated_w) f.Fail("idle_overhead_w", "must not exceed overhead_w");
    if (f.Has("power_budget_kw")) {
      t.power_budget_w = ToWatts(f.Positive("power_budget_kw"), kWattsPerKw);
    }
    RackTypeId id = spec_.catalog.Add(std::move(t));
    rack_budget_sites_[id.value()] = f.SiteOf("power_budget_kw");
  }

  AcceleratorTypeId AcceleratorNamed(const Fields& f, std::string_view key) {
    std::string name = f.String(key);
    auto id = spec_.catalog.FindAccelerator(name);
    if (!id) f.Fail(key, fmt::format("unknown accelerator type '{}' (known: {})", name, KnownAccelerators()));
    return *id;
  }

  std::string KnownAccelerators() const {
    std::vector<std::string> names;
    for (const AcceleratorType& t : spec_.catalog.accelerators()) names.push_back(t.name);
    return fmt::format("{}", fmt::join(names, ", "));
  }

  // Every hall is parsed and checked, whatever its phase; SelectPhase() then keeps the built ones.
  void ParseHall(const YAML::Node& node, const std::string& path) {
    Fields f(node, path, {"name", "count", "phase", "power_budget_mw", "rows"});
    std::string name = f.String("name");
    uint32_t count = f.OptCount("count").value_or(1);
    size_t phase = PhaseOf(f);
    YAML::Node rows = f.List("rows");
    for (uint32_t c = 0; c < count; ++c) {
      ParsedHall parsed{HallSpec{}, phase, f.SiteOf("power_budget_mw"), {}};
      HallSpec& hall = parsed.spec;
      hall.name = count == 1 ? name : fmt::format("{}{}", name, c + 1);
      if (!hall_names_.insert({hall.name, true}).second)
        f.Fail("name", fmt::format("duplicate hall name '{}'", hall.name));
      if (f.Has("power_budget_mw")) hall.power_budget_w = ToWatts(f.Positive("power_budget_mw"), kWattsPerMw);
      std::map<std::string, uint32_t> row_numbers;
      for (size_t i = 0; i < rows.size(); ++i) ParseRow(rows[i], Indexed(f.PathOf("rows"), i), parsed, row_numbers);
      parsed_halls_.push_back(std::move(parsed));
    }
  }

  size_t PhaseOf(const Fields& f) const {
    if (!f.Has("phase")) return 0;  // halls without a phase belong to the first one
    std::string phase = f.String("phase");
    auto it = std::find(phases_.begin(), phases_.end(), phase);
    if (it == phases_.end()) f.Fail("phase", fmt::format("unknown phase '{}'", phase));
    return static_cast<size_t>(it - phases_.begin());
  }

  // The fleet of a phase holds its halls and those of every earlier phase.
  void SelectPhase() {
    for (ParsedHall& parsed : parsed_halls_) {
      if (parsed.phase > chosen_phase_) continue;
      spec_.halls.push_back(std::move(parsed.spec));
      hall_budget_sites_.push_back(parsed.budget_site);
      row_budget_sites_.insert(row_budget_sites_.end(), parsed.row_budget_sites.begin(), parsed.row_budget_sites.end());
    }
  }

  void ParseRow(const YAML::Node& node, const std::string& path, ParsedHall& hall,
                std::map<std::string, uint32_t>& numbers) {
    Fields f(node, path, {"name", "count", "power_budget_kw", "rack_type", "racks", "racks_per_pod", "nodes_csv"});
    std::string base = f.OptString("name").value_or("r");
    uint32_t count = f.OptCount("count").value_or(1);
    RowSpec row;
    std::string rack_type = f.String("rack_type");
    auto type = spec_.catalog.FindRack(rack_type);
    if (!type) f.Fail("rack_type", fmt::format("unknown rack type '{}'", rack_type));
    row.rack_type = *type;
    row.racks_per_pod = f.OptCount("racks_per_pod").value_or(0);
    if (f.Has("power_budget_kw")) row.power_budget_w = ToWatts(f.Positive("power_budget_kw"), kWattsPerKw);
    if (f.OneOf({"racks", "nodes_csv"}) == "racks") {
      row.racks = f.Count("racks");
      if (!spec_.catalog.rack(row.rack_type).node_type) {
        f.Fail("rack_type",
               fmt::format("rack type '{}' has no node_type; list the row's nodes with nodes_csv", rack_type));
      }
    } else {
      row.nodes = ReadNodeList(f.Get("nodes_csv"), f.PathOf("nodes_csv"), BaseDir(), spec_.catalog);
    }
    for (uint32_t c = 0; c < count; ++c) {
      RowSpec copy = row;
      copy.name = fmt::format("{}-{}{:02}", hall.spec.name, base, ++numbers[base]);
      hall.spec.rows.push_back(std::move(copy));
      hall.row_budget_sites.push_back(f.SiteOf("power_budget_kw"));
    }
  }

  std::filesystem::path BaseDir() const { return std::filesystem::path(path_).parent_path(); }

  // A budget must at least cover the idle draw of everything under it: below that no schedule
  // can keep it, whatever runs.
  void CheckBudgets(const Fleet& fleet) {
    for (uint32_t i = 0; i < fleet.racks().size(); ++i) {
      const Rack& rack = fleet.racks()[i];
      const RackType& type = fleet.catalog().rack(rack.type);
      Watts idle = fleet.rack_draw(RackId(i)).idle_w;
      if (type.power_budget_w && *type.power_budget_w < idle) {
        rack_budget_sites_.at(rack.type.value())
            .Throw(fmt::format("{} is below what one rack needs at idle ({})", Kw(*type.power_budget_w), Kw(idle)));
      }
    }
    for (uint32_t i = 0; i < fleet.rows().size(); ++i) {
      CheckLevel(fleet.rows()[i].power_budget_w, fleet.row_draw(RowId(i)).idle_w, row_budget_sites_[i], "row");
    }
    for (uint32_t i = 0; i < fleet.halls().size(); ++i) {
      CheckLevel(fleet.halls()[i].power_budget_w, fleet.hall_draw(HallId(i)).idle_w, hall_budget_sites_[i], "hall");
    }
    const double idle = static_cast<double>(fleet.it_draw().idle_w);
    Watts facility_idle = std::llround(idle * DesignPue(fleet, idle));
    CheckLevel(fleet.campus().grid_connection_w, facility_idle, grid_site_, "campus at its PUE");
  }

  static void CheckLevel(std::optional<Watts> budget, Watts idle, const Site& site, std::string_view what) {
    if (!budget || *budget >= idle) return;
    site.Throw(fmt::format("{} is below the idle draw of the {} it feeds ({})", Kw(*budget), what, Kw(idle)));
  }

  std::vector<TenantSpec> ParseTenants(const Fields& top, const Fleet& fleet) {
    std::vector<TenantSpec> tenants;
    std::map<std::string, bool> names;
    std::vector<uint64_t> available(fleet.catalog().accelerators().size(), 0);
    for (const Node& node : fleet.nodes()) {
      const NodeType& type = fleet.catalog().node(node.type);
      if (type.accelerator) available[type.accelerator->value()] += type.accelerators;
    }
    std::vector<uint64_t> reserved(available.size(), 0);
    YAML::Node list = top.List("tenants");
    for (size_t i = 0; i < list.size(); ++i) {
      Fields f(list[i], Indexed("tenants", i), {"name", "reserved", "borrow_limit", "weight", "spare_nodes"});
      CheckNew(f, names);
      // A borrow limit of 0 makes the reservation a hard partition (a virtual cluster).
      std::optional<uint32_t> borrow;
      if (std::optional<double> b = f.OptNumber("borrow_limit", 0, 4e9)) {
        if (*b != std::floor(*b)) f.Fail("borrow_limit", "must be a whole number of accelerators");
        borrow = static_cast<uint32_t>(*b);
      }
      TenantSpec t{f.String("name"), {}, borrow, f.OptPositive("weight").value_or(1.0)};
      if (f.Has("reserved")) {
        std::vector<std::string_view> keys;
        for (const AcceleratorType& type : fleet.catalog().accelerators()) keys.push_back(type.name);
        Fields r(f.Get("reserved"), f.PathOf("reserved"), keys);
        for (const AcceleratorType& type : fleet.catalog().accelerators()) {
          if (!r.Has(type.name)) continue;
          AcceleratorTypeId id = *fleet.catalog().FindAccelerator(type.name);
          uint32_t n = r.Count(type.name);
          reserved[id.value()] += n;
          if (reserved[id.value()] > available[id.value()]) {
            r.Fail(type.name, fmt::format("reservations of {} total {} but the fleet has {}", type.name,
                                          reserved[id.value()], available[id.value()]));
          }
          t.reserved.push_back({id, n});
        }
      }
      if (f.Has("spare_nodes")) {  // type -> whole nodes kept as the tenant's hot spares
        std::vector<std::string_view> keys;
        for (const AcceleratorType& type : fleet.catalog().accelerators()) keys.push_back(type.name);
        Fields r(f.Get("spare_nodes"), f.PathOf("spare_nodes"), keys);
        for (const AcceleratorType& type : fleet.catalog().accelerators()) {
          if (!r.Has(type.name)) continue;
          const AcceleratorTypeId id = *fleet.catalog().FindAccelerator(type.name);
          if (available[id.value()] == 0) r.Fail(type.name, fmt::format("the fleet has no {} nodes", type.name));
          t.spare_nodes.push_back({id, r.Count(type.name)});
        }
      }
      tenants.push_back(std::move(t));
    }
    return tenants;
  }

  std::string path_;
  LoadOptions options_;
  FleetSpec spec_;
  std::vector<std::string> phases_;
  std::map<std::string, bool> accelerator_names_, node_names_, rack_names_, hall_names_;
  std::map<uint32_t, Site> rack_budget_sites_;
  std::vector<Site> hall_budget_sites_, row_budget_sites_;
  Site grid_site_;
  std::vector<ParsedHall> parsed_halls_;
  size_t chosen_phase_ = 0;
};

}  // namespace

Result<Scenario> LoadScenario(const std::string& path, const LoadOptions& options) {
  return Parser(path, options).Load();
}

}  // namespace joule::io
