#include "sched/placement/placer.h"

#include <set>

#include <gtest/gtest.h>

#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::FleetOf;
using testing::GpuNode;

const TaskShape kWhole1{1000, 1024, 1, 1000};
const TaskShape kWhole2{1000, 1024, 2, 1000};
const TaskShape kShared200{1000, 1024, 1, 200};

// Node 0: idle 8 GPUs. Node 1: 4 GPUs, two partly used, left {200, 1000, 1000, 500}.
struct Fixture {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(catalog, 8, 96, 512), GpuNode(catalog, 4, 96, 512)});
  ClusterState state{fleet};
  Rng rng{7};

  Fixture() {
    std::vector<uint32_t> d0{0}, d3{3};
    state.Allocate(NodeId(1), TaskShape{0, 0, 1, 800}, d0);
    state.Allocate(NodeId(1), TaskShape{0, 0, 1, 500}, d3);
  }
  std::optional<PlacementChoice> Place(PlacementPolicy p, const TaskShape& t, std::vector<TypicalTask> typical = {}) {
    Placer placer(state, p, std::move(typical), rng, 1);
    return placer.Choose(t, 0);
  }
};

TEST(PlacerTest, PackingPrefersUsedNodesAndSharedDevices) {
  Fixture f;
  // Used node with free devices scores 50 - 2 = 48; the idle 8-GPU node max(33 - 8, 8) = 25.
  auto c = f.Place(PlacementPolicy::kPacking, kWhole2);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->node, NodeId(1));
  EXPECT_EQ(c->devices, (std::vector<uint32_t>{1, 2}));
  // A 0.2 fraction goes on the tightest device with room: device 0 (200 left).
  c = f.Place(PlacementPolicy::kPacking, kShared200);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->node, NodeId(1));
  EXPECT_EQ(c->devices, (std::vector<uint32_t>{0}));
}

TEST(PlacerTest, BestFitAndDotProductPreferTheFullerNode) {
  Fixture f;
  EXPECT_EQ(f.Place(PlacementPolicy::kBestFit, kWhole1)->node, NodeId(1));
  EXPECT_EQ(f.Place(PlacementPolicy::kDotProduct, kWhole1)->node, NodeId(1));
}

TEST(PlacerTest, FragmentationScorersFillPartialDevicesFirst) {
  Fixture f;
  // Typical workload: mostly whole GPUs, some 0.2 fractions. A 0.2 fraction on an idle device
  // would strand 0.8 for whole-GPU tasks; on device 0 (200 left) it removes a fragment.
  std::vector<TypicalTask> typical = {{TaskShape{1000, 0, 1, 1000}, 0.7}, {TaskShape{1000, 0, 1, 200}, 0.3}};
  for (PlacementPolicy p : {PlacementPolicy::kFgd, PlacementPolicy::kJoule}) {
    auto c = f.Place(p, kShared200, typical);
    ASSERT_TRUE(c) << PolicyName(p);
    EXPECT_EQ(c->node, NodeId(1)) << PolicyName(p);
    EXPECT_EQ(c->devices, (std::vector<uint32_t>{0})) << PolicyName(p);
  }
}

// Three idle-looking 8-GPU nodes that FGD scores alike for a whole-GPU workload: node 0 idle,
// node 1 with 2 GPUs taken, node 2 with its GPUs idle but 3/4 of its CPU taken. FGD takes the
// first node; Joule's scorer the one whose dominant resource is most in use: node 2 (CPU 75%)
// before node 1 (GPU 25%).
TEST(PlacerTest, JouleBreaksFragmentationTiesOnTheBusiestNode) {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(catalog, 8, 96, 512), GpuNode(catalog, 8, 96, 512), GpuNode(catalog, 8, 96, 512)});
  ClusterState state(fleet);
  std::vector<uint32_t> d01{0, 1};
  state.Allocate(NodeId(1), TaskShape{2000, 0, 2, 1000}, d01);
  state.Allocate(NodeId(2), TaskShape{72'000, 0, 0, 0}, {});
  std::vector<TypicalTask> typical = {{TaskShape{1000, 0, 1, 1000}, 1.0}};
  Rng rng(1);
  auto place = [&](PlacementPolicy p) {
    Placer placer(state, p, typical, rng, 1);
    return placer.Choose(kWhole1, 0)->node;
  };
  EXPECT_EQ(place(PlacementPolicy::kFgd), NodeId(0));
  EXPECT_EQ(place(PlacementPolicy::kJoule), NodeId(2));
  // With node 2's CPU freed, node 1 (GPUs 25% in use) is the busiest.
  state.Release(NodeId(2), TaskShape{72'000, 0, 0, 0}, {});
  EXPECT_EQ(place(PlacementPolicy::kJoule), NodeId(1));
}

TEST(PlacerTest, NothingFitsGivesNoChoice) {
  Fixture f;
  for (PlacementPolicy p : {PlacementPolicy::kRandom, PlacementPolicy::kDotProduct, PlacementPolicy::kPacking,
                            PlacementPolicy::kBestFit, PlacementPolicy::kFgd, PlacementPolicy::kJoule}) {
    EXPECT_FALSE(f.Place(p, TaskShape{0, 0, 9, 1000})) << PolicyName(p);
    EXPECT_FALSE(f.Place(p, TaskShape{97'000, 0, 1, 1000})) << PolicyName(p);
  }
}

TEST(PlacerTest, RandomReachesEveryFeasibleNodeAndRepeatsWithTheSeed) {
  Catalog c = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(c, 8, 96, 512), GpuNode(c, 8, 96, 512), GpuNode(c, 8, 96, 512)});
  ClusterState state(fleet);
  auto draw = [&](uint64_t seed) {
    Rng rng(seed);
    Placer placer(state, PlacementPolicy::kRandom, {}, rng, 1);
    std::vector<uint32_t> nodes;
    nodes.reserve(60);
    for (int i = 0; i < 60; ++i) nodes.push_back(placer.Choose(kWhole1, 0)->node.value());
    return nodes;
  };
  std::vector<uint32_t> a = draw(1);
  EXPECT_EQ(a, draw(1));
  EXPECT_NE(a, draw(2));
  EXPECT_EQ(std::set<uint32_t>(a.begin(), a.end()).size(), 3u);
}

TEST(PlacerTest, PolicyNamesRoundTrip) {
  for (std::string_view n : {"random", "dotprod", "packing", "bestfit", "fgd", "joule"}) {
    ASSERT_TRUE(ParsePlacementPolicy(n)) << n;
    EXPECT_EQ(PolicyName(*ParsePlacementPolicy(n)), n);
  }
  EXPECT_FALSE(ParsePlacementPolicy("tetris"));
}

}  // namespace
}  // namespace joule
