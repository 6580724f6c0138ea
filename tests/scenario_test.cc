#include "io/scenario.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "model/fleet_summary.h"

namespace joule::io {
namespace {

const std::string kSource = JOULE_SOURCE_DIR;

// Writes `text` to a scenario file in a fresh temporary folder and returns its path.
std::string WriteScenario(const std::string& text, const std::string& name = "s.yaml") {
  std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

std::string ErrorOf(const std::string& path) {
  Result<Scenario> s = LoadScenario(path);
  return s.ok() ? "(loaded)" : s.status().message();
}

// A valid scenario; tests break one thing at a time. Line numbers below refer to this text.
constexpr const char* kCampus = R"(campus:
  name: t
  grid_connection_mw: 1
  pue: 1.1
  liquid_heat_capture: 0.8
  supply_temperature_c: 45
)";

std::string WithHalls(const std::string& halls) { return std::string(kCampus) + "halls:\n" + halls; }

TEST(ScenarioTest, LoadsAValidScenario) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 2
)"));
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.accelerator_count(), 64u);
  EXPECT_EQ(s->fleet.rows()[0].name, "a-r01");
}

TEST(ScenarioTest, CountsReplicateHallsAndRows) {
  std::string path = WriteScenario(WithHalls(R"(  - name: h
    count: 3
    rows:
      - count: 2
        rack_type: hgx-h100-rack
        racks: 1
      - name: x
        rack_type: hgx-h100-rack
        racks: 1
)"));
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.halls().size(), 3u);
  EXPECT_EQ(s->fleet.halls()[2].name, "h3");
  EXPECT_EQ(s->fleet.rows().size(), 9u);
  EXPECT_EQ(s->fleet.rows()[1].name, "h1-r02");
  EXPECT_EQ(s->fleet.rows()[2].name, "h1-x01");
}

TEST(ScenarioTest, UnknownKeyIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        rackz: 2
)"));
  EXPECT_EQ(ErrorOf(path), path +
                               ":11:9: halls[0].rows[0].rackz: unknown key (allowed: name, count, "
                               "power_budget_kw, rack_type, racks, racks_per_pod, nodes_csv)");
}

TEST(ScenarioTest, WrongTypeIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: many
)"));
  EXPECT_EQ(ErrorOf(path), path + ":11:16: halls[0].rows[0].racks: must be a whole number, got 'many'");
}

TEST(ScenarioTest, NegativeCountIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: -4
)"));
  EXPECT_EQ(ErrorOf(path), path + ":11:16: halls[0].rows[0].racks: must be > 0");
}

TEST(ScenarioTest, ZeroCountIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 1
  - name: b
    rows:
      - rack_type: hgx-h100-rack
        racks: 0
)"));
  EXPECT_EQ(ErrorOf(path), path + ":15:16: halls[1].rows[0].racks: must be > 0");
}

TEST(ScenarioTest, MissingFieldIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - racks: 2
)"));
  EXPECT_EQ(ErrorOf(path), path + ":10:9: halls[0].rows[0].rack_type: is required");
}

TEST(ScenarioTest, MissingCampusFieldIsRefused) {
  std::string path = WriteScenario("campus:\n  name: t\n  pue: 1.1\n");
  EXPECT_EQ(ErrorOf(path), path + ":2:3: campus.liquid_heat_capture: is required");
}

TEST(ScenarioTest, HeatNetworkIsReadAndChecked) {
  const std::string halls = "halls:\n  - name: a\n    rows:\n      - rack_type: gb200-nvl72\n        racks: 1\n";
  std::string path =
      WriteScenario(std::string(kCampus) +
                    "  heat_network: {supply_temperature_c: 70, peak_demand_mw: 20, base_share: 0.2}\n" + halls);
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE(s->fleet.campus().heat_network.has_value());
  EXPECT_EQ(s->fleet.campus().heat_network->peak_demand_w, 20e6);
  EXPECT_EQ(s->fleet.campus().heat_network->base_share, 0.2);
  EXPECT_EQ(s->fleet.campus().heat_network->heating_threshold_c, 15);  // the default
  path =
      WriteScenario(std::string(kCampus) + "  heat_network: {supply_temperature_c: 70, peak_demand_mw: -3}\n" + halls);
  EXPECT_NE(ErrorOf(path).find(":7:60: campus.heat_network.peak_demand_mw: must be > 0"), std::string::npos)
      << ErrorOf(path);
  path = WriteScenario(std::string(kCampus) + "  heat_network: {peak_demand_mw: 3}\n" + halls);
  EXPECT_NE(ErrorOf(path).find("campus.heat_network.supply_temperature_c: is required"), std::string::npos)
      << ErrorOf(path);
  path = WriteScenario(std::string(kCampus) +
                       "  heat_network: {supply_temperature_c: 70, peak_demand_mw: 3, design_outdoor_c: 20}\n" + halls);
  EXPECT_NE(ErrorOf(path).find("heating_threshold_c: must be above design_outdoor_c"), std::string::npos)
      << ErrorOf(path);
}

TEST(ScenarioTest, FailuresAndSparePoolsAreReadAndChecked) {
  const std::string halls = "halls:\n  - name: a\n    rows:\n      - rack_type: gb200-nvl72\n        racks: 1\n";
  std::string path = WriteScenario(WithHalls(halls.substr(7)) +
                                   "tenants:\n  - {name: lab, spare_nodes: {gb200: 2}}\n"
                                   "failures:\n  causes: {gpu: {per_accelerator_hour: 1e-4}}\n"
                                   "  maintenance: {every_h: 12}\n  restart_overhead_min: 3\n");
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_EQ(s->tenants[0].spare_nodes.size(), 1u);
  EXPECT_EQ(s->tenants[0].spare_nodes[0].accelerators, 2u);
  ASSERT_TRUE(s->failures.has_value());
  EXPECT_EQ(s->failures->causes[static_cast<size_t>(FailureCause::kGpu)].per_accelerator_hour, 1e-4);
  // The rest keeps the defaults.
  EXPECT_EQ(s->failures->causes[static_cast<size_t>(FailureCause::kNetwork)].per_accelerator_hour,
            FailureModelSpec::Defaults().causes[static_cast<size_t>(FailureCause::kNetwork)].per_accelerator_hour);
  EXPECT_EQ(s->failures->domains.size(), 3u);
  ASSERT_TRUE(s->failures->maintenance.has_value());
  EXPECT_EQ(s->failures->maintenance->every_h, 12);
  EXPECT_EQ(s->failures->restart_overhead_min, 3);
  path = WriteScenario(WithHalls(halls.substr(7)) + "tenants:\n  - {name: lab, spare_nodes: {h100-sxm: 1}}\n");
  EXPECT_NE(ErrorOf(path).find("tenants[0].spare_nodes.h100-sxm: the fleet has no h100-sxm nodes"), std::string::npos)
      << ErrorOf(path);
  path = WriteScenario(WithHalls(halls.substr(7)) + "failures:\n  causes: {cosmic: {per_accelerator_hour: 1}}\n");
  EXPECT_NE(ErrorOf(path).find("failures.causes.cosmic: unknown key"), std::string::npos) << ErrorOf(path);
  path = WriteScenario(WithHalls(halls.substr(7)) + "failures:\n  causes: {gpu: {per_accelerator_hour: -1}}\n");
  EXPECT_NE(ErrorOf(path).find("failures.causes.gpu.per_accelerator_hour"), std::string::npos) << ErrorOf(path);
  path = WriteScenario(WithHalls(halls.substr(7)) + "failures:\n");
  s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_TRUE(s->failures.has_value());  // an empty block: the defaults
}

TEST(ScenarioTest, PowerModelAndPueAreReadAndChecked) {
  const std::string halls = "halls:\n  - name: a\n    rows:\n      - rack_type: gb200-nvl72\n        racks: 1\n";
  std::string path =
      WriteScenario(std::string(kCampus) +
                    "  pue_at_idle: 1.3\n  pue_per_degree_c: 0.01\n  outdoor_mean_c: 15\n"
                    "  power_model: {inference: {draw: 0.6, cap_sensitivity: 0.5}, min_power_limit: 0.3}\n" +
                    halls);
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  const CampusSpec& c = s->fleet.campus();
  EXPECT_EQ(c.pue_at_idle, 1.3);
  EXPECT_EQ(c.pue_per_degree_c, 0.01);
  EXPECT_EQ(c.outdoor_mean_c, 15);
  EXPECT_EQ(c.power_model.of(WorkClass::kInference).natural_permille, 600u);
  EXPECT_EQ(c.power_model.of(WorkClass::kInference).cap_sensitivity_milli, 500u);
  EXPECT_EQ(c.power_model.of(WorkClass::kTraining).natural_permille, 800u);  // the default stays
  EXPECT_EQ(c.power_model.min_limit_permille, 300u);
  path = WriteScenario(std::string(kCampus) + "  power_model: {training: {cap_sensitivity: 2}}\n" + halls);
  EXPECT_NE(ErrorOf(path).find("campus.power_model.training.cap_sensitivity:"), std::string::npos) << ErrorOf(path);
  path = WriteScenario(std::string(kCampus) + "  power_model: {decode: {draw: 0.3}}\n" + halls);
  EXPECT_NE(ErrorOf(path).find("decode"), std::string::npos) << ErrorOf(path);
  path = WriteScenario(std::string(kCampus) + "  pue_at_idle: 0.5\n" + halls);
  EXPECT_NE(ErrorOf(path).find("campus.pue_at_idle:"), std::string::npos) << ErrorOf(path);
}

TEST(ScenarioTest, DuplicateNameIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 1
  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 1
)"));
  EXPECT_EQ(ErrorOf(path), path + ":12:11: halls[1].name: duplicate hall name 'a'");
}

TEST(ScenarioTest, DuplicateTypeNameIsRefused) {
  std::string path = WriteScenario(std::string(kCampus) + R"(accelerator_types:
  - {name: x1, memory_gib: 16, rated_w: 300, idle_w: 30, nvlink_domain: 8}
  - {name: x1, memory_gib: 16, rated_w: 300, idle_w: 30, nvlink_domain: 8}
)");
  EXPECT_EQ(ErrorOf(path), path + ":9:12: accelerator_types[1].name: duplicate name 'x1'");
}

TEST(ScenarioTest, UnknownAcceleratorTypeIsRefused) {
  std::string path = WriteScenario(std::string(kCampus) + R"(node_types:
  - name: n
    accelerator: h900
    accelerators: 8
    cpu_cores: 100
    memory_gib: 1000
    overhead_w: 1000
    idle_overhead_w: 100
)");
  EXPECT_EQ(ErrorOf(path), path +
                               ":9:18: node_types[0].accelerator: unknown accelerator type 'h900' (known: "
                               "h100-sxm, h200, b200, gb200, mi300x)");
}

TEST(ScenarioTest, RackBudgetBelowIdleIsRefused) {
  std::string path = WriteScenario(std::string(kCampus) + R"(rack_types:
  - name: tight
    node_type: hgx-h100
    nodes: 4
    overhead_w: 1000
    idle_overhead_w: 500
    power_budget_kw: 5
halls:
  - name: a
    rows:
      - rack_type: tight
        racks: 1
)");
  // Idle: 4 x (8 x 70 + 1500) + 500 = 8,740 W.
  EXPECT_EQ(ErrorOf(path), path +
                               ":13:22: rack_types[0].power_budget_kw: 5.0 kW is below what one rack needs "
                               "at idle (8.7 kW)");
}

TEST(ScenarioTest, RowBudgetBelowIdleIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 2
        power_budget_kw: 10
)"));
  // Idle of two racks: 2 x (4 x (8 x 70 + 1500) + 1000) = 18,480 W.
  EXPECT_EQ(ErrorOf(path), path +
                               ":12:26: halls[0].rows[0].power_budget_kw: 10.0 kW is below the idle draw of "
                               "the row it feeds (18.5 kW)");
}

TEST(ScenarioTest, GridBelowIdleIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: gb200-nvl72
        racks: 60
)"));
  // Idle: 60 x (18 x (4 x 120 + 400) + 5000) = 1,250,400 W; x 1.1 = 1,375.4 kW > 1 MW.
  EXPECT_EQ(ErrorOf(path), path +
                               ":3:23: campus.grid_connection_mw: 1000.0 kW is below the idle draw of the "
                               "campus at its PUE it feeds (1375.4 kW)");
}

TEST(ScenarioTest, SyntaxErrorNamesLine) {
  std::string path = WriteScenario("campus:\n  name: [unclosed\n");
  std::string error = ErrorOf(path);
  EXPECT_EQ(error.rfind(path + ":3:", 0), 0u) << error;
  EXPECT_NE(error.find("syntax"), std::string::npos) << error;
}

TEST(ScenarioTest, MissingFileIsReported) {
  EXPECT_EQ(ErrorOf("/nonexistent/x.yaml"), "/nonexistent/x.yaml: cannot open scenario file");
}

TEST(ScenarioTest, OverReservationIsRefused) {
  std::string path = WriteScenario(WithHalls(R"(  - name: a
    rows:
      - rack_type: hgx-h100-rack
        racks: 1
tenants:
  - name: x
    reserved: {h100-sxm: 20}
  - name: y
    reserved: {h100-sxm: 20}
)"));
  EXPECT_EQ(ErrorOf(path), path +
                               ":16:26: tenants[1].reserved.h100-sxm: reservations of h100-sxm total 40 but "
                               "the fleet has 32");
}

TEST(ScenarioTest, PhasesSelectHallsAndGrid) {
  std::string path = WriteScenario(R"(campus:
  name: t
  pue: 1.1
  liquid_heat_capture: 0.8
  supply_temperature_c: 45
  phases:
    - {name: p1, grid_connection_mw: 1}
    - {name: p2, grid_connection_mw: 2}
halls:
  - name: a
    rows: [{rack_type: hgx-h100-rack, racks: 1}]
  - name: b
    phase: p2
    rows: [{rack_type: hgx-h100-rack, racks: 2}]
)");
  Result<Scenario> first = LoadScenario(path);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->fleet.accelerator_count(), 32u);
  EXPECT_EQ(first->fleet.campus().phase, "p1");
  Result<Scenario> second = LoadScenario(path, {.phase = "p2"});
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->fleet.accelerator_count(), 96u);
  EXPECT_EQ(second->fleet.campus().grid_connection_w, 2 * kWattsPerMw);
  Result<Scenario> bad = LoadScenario(path, {.phase = "p9"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), path + ": unknown phase 'p9' (declared: p1, p2)");
}

TEST(ScenarioTest, NodeListCsvFillsRacks) {
  std::string csv = WriteScenario(
      "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,h100-sxm\n"
      "n1,64000,262144,2,h100-sxm\nn2,96000,524288,8,h200\n",
      "nodes.csv");
  std::string path = WriteScenario(std::string(kCampus) + R"(rack_types:
  - {name: r2, nodes: 2, overhead_w: 100, idle_overhead_w: 50}
halls:
  - name: a
    rows:
      - rack_type: r2
        nodes_csv: {path: nodes.csv, node_overhead_w: 500, node_idle_overhead_w: 200}
)");
  Result<Scenario> s = LoadScenario(path);
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.nodes().size(), 3u);
  EXPECT_EQ(s->fleet.racks().size(), 2u);
  EXPECT_EQ(s->fleet.accelerator_count(), 12u);
  EXPECT_EQ(s->fleet.NodeName(NodeId(2)), "n2");
  EXPECT_EQ(s->fleet.node_type(NodeId(0)).name, "h100-sxmx2-64c-256g");
  EXPECT_EQ(s->fleet.node(NodeId(0)).type, s->fleet.node(NodeId(1)).type);
}

TEST(ScenarioTest, BadNodeListRowNamesFileLineAndColumn) {
  std::string csv = WriteScenario(
      "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,h100-sxm\n"
      "n1,64000,262144,two,h100-sxm\n",
      "nodes.csv");
  std::string path = WriteScenario(std::string(kCampus) + R"(rack_types:
  - {name: r2, nodes: 2, overhead_w: 100, idle_overhead_w: 50}
halls:
  - name: a
    rows:
      - rack_type: r2
        nodes_csv: {path: nodes.csv, node_overhead_w: 500, node_idle_overhead_w: 200}
)");
  EXPECT_EQ(ErrorOf(path), csv + ":3: gpu: 'two' is not an integer");
}

TEST(ScenarioTest, UnknownTypeInNodeListIsRefused) {
  std::string csv = WriteScenario("sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,2,K80\n", "nodes.csv");
  std::string path = WriteScenario(std::string(kCampus) + R"(rack_types:
  - {name: r2, nodes: 2, overhead_w: 100, idle_overhead_w: 50}
halls:
  - name: a
    rows:
      - rack_type: r2
        nodes_csv: {path: nodes.csv, node_overhead_w: 500, node_idle_overhead_w: 200}
)");
  EXPECT_EQ(ErrorOf(path), csv + ":2: model: unknown accelerator type 'K80'");
}

// ---- The shipped scenarios ----

TEST(ShippedScenarioTest, DevLoads) {
  Result<Scenario> s = LoadScenario(kSource + "/scenarios/dev.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.accelerator_count(), 32u + 72u);
  EXPECT_EQ(s->tenants.size(), 3u);
}

TEST(ShippedScenarioTest, France1GwHoldsHalfAMillionAcceleratorsUnder1Gw) {
  Result<Scenario> s = LoadScenario(kSource + "/scenarios/france-1gw.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  FleetSummary summary = Summarize(s->fleet);
  EXPECT_GE(summary.accelerators, 480'000u);
  EXPECT_LE(summary.accelerators, 520'000u);
  EXPECT_EQ(summary.grid_connection_w, 1000 * kWattsPerMw);
  EXPECT_LE(summary.facility_rated_w, summary.grid_connection_w);
  Result<Scenario> growth = LoadScenario(kSource + "/scenarios/france-1gw.yaml", {.phase = "2028"});
  ASSERT_TRUE(growth.ok()) << growth.status().message();
  EXPECT_GT(Summarize(growth->fleet).facility_rated_w, 1000 * kWattsPerMw);
}

TEST(ShippedScenarioTest, EclairionMistralLoads) {
  Result<Scenario> s = LoadScenario(kSource + "/scenarios/eclairion-mistral.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.accelerator_count(), 18'000u);
  EXPECT_EQ(s->tenants.size(), 1u);
}

TEST(ShippedScenarioTest, OpenbMatchesTheTraceNodeList) {
  const std::string csv = kSource + "/../shared/data/traces/alibaba-openb/openb_node_list_gpu_node.csv";
  if (!std::filesystem::exists(csv)) GTEST_SKIP() << "shared data not present: " << csv;
  Result<Scenario> s = LoadScenario(kSource + "/scenarios/openb.yaml");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->fleet.nodes().size(), 1213u);
  EXPECT_EQ(s->fleet.accelerator_count(), 6212u);
}

}  // namespace
}  // namespace joule::io
