#include "sched/resources.h"

#include <gtest/gtest.h>

#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::FleetOf;
using testing::GpuNode;

TEST(ClusterStateTest, FitsChecksEveryResource) {
  Catalog c = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(c, 4, 32, 256)});
  ClusterState state(fleet);
  NodeId n(0);
  EXPECT_TRUE(state.Fits(n, TaskShape{32'000, int64_t{256} * 1024, 4, 1000}));
  EXPECT_FALSE(state.Fits(n, TaskShape{32'001, 0, 1, 1000}));
  EXPECT_FALSE(state.Fits(n, TaskShape{0, int64_t{256} * 1024 + 1, 1, 1000}));
  EXPECT_FALSE(state.Fits(n, TaskShape{0, 0, 5, 1000}));
  TypeSet h200_only;
  h200_only.Add(*c.FindAccelerator("h200"));
  EXPECT_FALSE(state.Fits(n, TaskShape{0, 0, 1, 1000, h200_only}));
  EXPECT_TRUE(state.Fits(n, TaskShape{1000, 0, 0, 0, h200_only}));  // CPU-only ignores the type
}

TEST(ClusterStateTest, AllocateAndReleaseConserveCapacity) {
  Catalog c = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(c, 4, 32, 256)});
  ClusterState state(fleet);
  NodeId n(0);
  TaskShape shared{2000, 1024, 1, 300};
  std::vector<uint32_t> dev{2};
  uint32_t v = state.version(n);
  state.Allocate(n, shared, dev);
  EXPECT_EQ(state.gpu_left(n)[2], 700);
  EXPECT_EQ(state.cpu_left(n), 30'000);
  EXPECT_EQ(state.allocated_milli(), 300);
  EXPECT_GT(state.version(n), v);
  // A whole-GPU task no longer fits on device 2, but does on the other three.
  EXPECT_TRUE(state.Fits(n, TaskShape{0, 0, 3, 1000}));
  EXPECT_FALSE(state.Fits(n, TaskShape{0, 0, 4, 1000}));
  state.Release(n, shared, dev);
  EXPECT_EQ(state.gpu_left(n)[2], 1000);
  EXPECT_EQ(state.allocated_milli(), 0);
}

TEST(DeviceChoiceTest, WholeTakesFirstFreeSharedTakesTightestFit) {
  std::vector<uint16_t> left{1000, 300, 1000, 600, 1000};
  EXPECT_EQ(FirstFitDevices(left, TaskShape{0, 0, 2, 1000}), (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(FirstFitDevices(left, TaskShape{0, 0, 1, 250}), (std::vector<uint32_t>{1}));
  EXPECT_EQ(FirstFitDevices(left, TaskShape{0, 0, 1, 500}), (std::vector<uint32_t>{3}));
  EXPECT_TRUE(FirstFitDevices(left, TaskShape{0, 0, 4, 1000}).empty());
}

}  // namespace
}  // namespace joule
