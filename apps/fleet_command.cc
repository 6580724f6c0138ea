// `joule fleet SCENARIO [--phase P] [--json]`: loads a scenario and prints its fleet summary.
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "apps/commands.h"
#include "apps/text_format.h"
#include "io/fleet_json.h"
#include "io/scenario.h"
#include "model/fleet_summary.h"

namespace joule::apps {
namespace {

struct FleetOptions {
  std::string scenario;
  std::string phase;
  bool json = false;
};

void PrintBudgets(const FleetSummary& s) {
  fmt::print("\nPower budgets         units  budgeted  tightest headroom at rated load\n");
  for (const LevelBudgets& b : s.budgets) {
    std::string tightest = b.min_headroom_w ? fmt::format("{} ({})", Power(*b.min_headroom_w), b.tightest) : "-";
    fmt::print("  {:<18} {:>7}  {:>8}  {}\n", b.level, Thousands(b.units), Thousands(b.with_budget), tightest);
  }
  fmt::print("  {:<18} {:>7}  {:>8}  {} (facility at PUE against the grid connection)\n", "campus", 1, 1,
             Power(s.grid_headroom_w));
}

void PrintHalls(const FleetSummary& s) {
  fmt::print("\nHalls                 accelerators   IT rated     budget   headroom\n");
  for (const HallSummary& h : s.hall_list) {
    fmt::print("  {:<18} {:>13} {:>10} {:>10} {:>10}\n", h.name, Thousands(h.accelerators), Power(h.it_rated_w),
               h.power_budget_w ? Power(*h.power_budget_w) : "-",
               h.power_budget_w ? Power(*h.power_budget_w - h.it_rated_w) : "-");
  }
}

void PrintTenants(const std::vector<TenantSpec>& tenants, const Catalog& catalog) {
  if (tenants.empty()) return;
  fmt::print("\nTenants               reserved\n");
  for (const TenantSpec& t : tenants) {
    std::string reserved;
    for (const Reservation& r : t.reserved) {
      reserved += fmt::format("{}{} {}", reserved.empty() ? "" : ", ", Thousands(r.accelerators),
                              catalog.accelerator(r.type).name);
    }
    fmt::print("  {:<18}  {}\n", t.name, reserved.empty() ? "none (on demand)" : reserved);
  }
}

void PrintText(const FleetSummary& s, const io::Scenario& scenario) {
  fmt::print("Campus {}{}\n", s.campus, s.phase.empty() ? "" : fmt::format(" (phase {})", s.phase));
  fmt::print("  {} halls, {} rows, {} pods, {} racks, {} nodes, {} accelerators\n", Thousands(s.halls),
             Thousands(s.rows), Thousands(s.pods), Thousands(s.racks), Thousands(s.nodes), Thousands(s.accelerators));
  fmt::print("  {} CPU cores, {} TiB memory\n", Thousands(s.cpu / 1000), Thousands(s.memory / (int64_t{1024} * 1024)));
  fmt::print("\nAccelerators          count      nodes\n");
  for (const TypeCount& t : s.by_type) {
    fmt::print("  {:<18} {:>9} {:>10}\n", t.type, Thousands(t.accelerators), Thousands(t.nodes));
  }
  fmt::print("\nNVLink domains        size      count\n");
  for (const DomainCount& d : s.nvlink) fmt::print("  {:<18} {:>5} {:>10}\n", "", d.accelerators, Thousands(d.domains));
  fmt::print("\nPower\n");
  fmt::print("  IT at rated load    {}  (idle {})\n", Power(s.it_rated_w), Power(s.it_idle_w));
  fmt::print("  facility (PUE {:.2f}) {}\n", s.pue, Power(s.facility_rated_w));
  fmt::print("  grid connection     {}  (headroom {})\n", Power(s.grid_connection_w), Power(s.grid_headroom_w));
  PrintBudgets(s);
  PrintHalls(s);
  fmt::print("\nHeat\n  recoverable at full load {} ({:.0f}% of IT heat into the liquid loop at {:.0f} °C)\n",
             Power(s.recoverable_heat_w), s.liquid_heat_capture * 100, s.supply_temperature_c);
  PrintTenants(scenario.tenants, scenario.fleet.catalog());
}

int RunFleet(const FleetOptions& options) {
  io::LoadOptions load;
  if (!options.phase.empty()) load.phase = options.phase;
  Result<io::Scenario> scenario = io::LoadScenario(options.scenario, load);
  if (!scenario.ok()) {
    std::cerr << scenario.status().message() << "\n";
    return kExitBadInput;
  }
  FleetSummary summary = Summarize(scenario->fleet);
  if (options.json) {
    std::cout << io::FleetSummaryJson(summary, scenario->tenants, scenario->fleet.catalog()).dump(2) << "\n";
  } else {
    PrintText(summary, scenario.value());
  }
  return kExitOk;
}

}  // namespace

void AddFleetCommand(CLI::App& app, CommandFn& run) {
  auto options = std::make_shared<FleetOptions>();
  CLI::App* cmd = app.add_subcommand("fleet", "Summarise a scenario's fleet: counts, power, budgets, heat");
  cmd->add_option("scenario", options->scenario, "Scenario file (YAML)")->required();
  cmd->add_option("--phase", options->phase, "Build-out phase to show (default: the first)");
  cmd->add_flag("--json", options->json, "Print the summary as JSON (schema joule.fleet.v1)");
  cmd->callback([&run, options] { run = [options] { return RunFleet(*options); }; });
}

}  // namespace joule::apps
