#include "model/fleet.h"

#include <cmath>

#include <gtest/gtest.h>

#include "model/fleet_summary.h"

namespace joule {
namespace {

// One hall: a row of 3 HGX H100 racks in pods of 2, and a row of 2 GB200 NVL72 racks.
FleetSpec SmallSpec() {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"test", "", 10 * kWattsPerMw, 1.2, 0.8, 45};
  RowSpec hgx{"h-r01", 200 * kWattsPerKw, *spec.catalog.FindRack("hgx-h100-rack"), 3, {}, 2};
  RowSpec nvl{"h-r02", std::nullopt, *spec.catalog.FindRack("gb200-nvl72"), 2, {}, 0};
  spec.halls.push_back(HallSpec{"h", 1 * kWattsPerMw, {hgx, nvl}});
  return spec;
}

TEST(FleetTest, CountsEveryLevel) {
  Fleet f = Fleet::Build(SmallSpec());
  EXPECT_EQ(f.halls().size(), 1u);
  EXPECT_EQ(f.rows().size(), 2u);
  EXPECT_EQ(f.pods().size(), 3u);  // 2 + 1 HGX racks, then one pod of 2 NVL72 racks
  EXPECT_EQ(f.racks().size(), 5u);
  EXPECT_EQ(f.nodes().size(), 3u * 4 + 2 * 18);
  EXPECT_EQ(f.accelerator_count(), 3u * 32 + 2 * 72);
  EXPECT_EQ(f.hall(HallId(0)).accelerators.count, f.accelerator_count());
}

TEST(FleetTest, ChildrenAreConsecutiveAndPointBack) {
  Fleet f = Fleet::Build(SmallSpec());
  for (uint32_t r = 0; r < f.racks().size(); ++r) {
    for (NodeId n : f.rack(RackId(r)).nodes) {
      EXPECT_EQ(f.node(n).rack, RackId(r));
      for (AcceleratorId a : f.node(n).accelerators) EXPECT_EQ(f.NodeOf(a), n);
    }
  }
  EXPECT_EQ(f.pod(PodId(0)).racks.count, 2u);
  EXPECT_EQ(f.pod(PodId(1)).racks.count, 1u);
  EXPECT_EQ(f.HallOf(RackId(4)), HallId(0));
  EXPECT_EQ(f.RowOf(RackId(4)), RowId(1));
}

TEST(FleetTest, NvlinkDomainsAreNodesForHgxAndRacksForNvl72) {
  Fleet f = Fleet::Build(SmallSpec());
  ASSERT_EQ(f.domains().size(), 12u + 2u);
  for (uint32_t d = 0; d < 12; ++d) EXPECT_EQ(f.domain(DomainId(d)).accelerators, 8u);
  EXPECT_EQ(f.domain(DomainId(12)).accelerators, 72u);
  EXPECT_EQ(f.domain(DomainId(12)).nodes.count, 18u);
  EXPECT_EQ(f.node(NodeId(12 + 17)).domain, DomainId(12));
  EXPECT_EQ(f.node(NodeId(12 + 18)).domain, DomainId(13));
}

TEST(FleetTest, DrawAddsUpLevelByLevel) {
  Fleet f = Fleet::Build(SmallSpec());
  const Watts hgx_rack = 4 * (8 * 700 + 4600) + 1500;
  const Watts nvl_rack = 18 * (4 * 1200 + 1000) + 14000;
  EXPECT_EQ(f.rack_draw(RackId(0)).rated_w, hgx_rack);
  EXPECT_EQ(f.row_draw(RowId(0)).rated_w, 3 * hgx_rack);
  EXPECT_EQ(f.row_draw(RowId(1)).rated_w, 2 * nvl_rack);
  EXPECT_EQ(f.it_draw().rated_w, 3 * hgx_rack + 2 * nvl_rack);
  EXPECT_EQ(f.it_draw().idle_w, 3 * (4 * (8 * 70 + 1500) + 1000) + 2 * (18 * (4 * 120 + 400) + 5000));
}

TEST(FleetTest, NamesFollowTheHierarchy) {
  Fleet f = Fleet::Build(SmallSpec());
  EXPECT_EQ(f.NodeName(NodeId(0)), "h-r01-k00-n00");
  EXPECT_EQ(f.NodeName(NodeId(5)), "h-r01-k01-n01");
  EXPECT_EQ(f.RackName(RackId(3)), "h-r02-k00");
}

TEST(FleetTest, ExplicitNodesFillRacksInOrder) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"t", "", kWattsPerMw, 1.0, 0, 30};
  RackTypeId rack = spec.catalog.Add(RackType{"r3", std::nullopt, 3, 100, 50, std::nullopt});
  NodeTypeId h100 = *spec.catalog.FindNode("hgx-h100");
  NodeTypeId b200 = *spec.catalog.FindNode("hgx-b200");
  RowSpec row{"x-r01", std::nullopt, rack, 0, {{"a", h100}, {"b", b200}, {"c", h100}, {"d", h100}}, 0};
  spec.halls.push_back(HallSpec{"x", std::nullopt, {row}});
  Fleet f = Fleet::Build(std::move(spec));
  EXPECT_EQ(f.racks().size(), 2u);
  EXPECT_EQ(f.rack(RackId(1)).nodes.count, 1u);
  EXPECT_EQ(f.NodeName(NodeId(3)), "d");
  EXPECT_EQ(f.node(NodeId(1)).type, b200);
  EXPECT_EQ(f.accelerator_count(), 32u);
}

TEST(FleetSummaryTest, ReportsPowerHeadroomAndHeat) {
  Fleet f = Fleet::Build(SmallSpec());
  FleetSummary s = Summarize(f);
  EXPECT_EQ(s.accelerators, f.accelerator_count());
  ASSERT_EQ(s.by_type.size(), 2u);
  EXPECT_EQ(s.by_type[0].type, "h100-sxm");
  EXPECT_EQ(s.by_type[0].accelerators, 96u);
  EXPECT_EQ(s.by_type[1].accelerators, 144u);
  EXPECT_EQ(s.facility_rated_w, std::llround(static_cast<double>(s.it_rated_w) * 1.2));
  EXPECT_EQ(s.grid_headroom_w, 10 * kWattsPerMw - s.facility_rated_w);
  EXPECT_EQ(s.recoverable_heat_w, std::llround(static_cast<double>(s.it_rated_w) * 0.8));
  const LevelBudgets& rows = s.budgets[1];
  EXPECT_EQ(rows.with_budget, 1u);
  EXPECT_EQ(*rows.min_headroom_w, 200 * kWattsPerKw - f.row_draw(RowId(0)).rated_w);
  EXPECT_EQ(rows.tightest, "h-r01");
  const LevelBudgets& racks = s.budgets[2];
  EXPECT_EQ(racks.with_budget, 5u);
  EXPECT_EQ(*racks.min_headroom_w, 45 * kWattsPerKw - f.rack_draw(RackId(0)).rated_w);
}

}  // namespace
}  // namespace joule
