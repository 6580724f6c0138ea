#include "sched/placement/fragmentation.h"

#include <gtest/gtest.h>

namespace joule {
namespace {

TaskShape Task(Millicores cpu, uint32_t gpus, MilliGpu milli) { return TaskShape{cpu, 0, gpus, milli}; }

TEST(TypicalTasksTest, MostFrequentShapesUpToCoverage) {
  std::vector<TaskShape> w(6, Task(4000, 1, 1000));
  w.insert(w.end(), 3, Task(2000, 1, 500));
  w.push_back(Task(8000, 8, 1000));
  std::vector<TypicalTask> t = TypicalTasks(w, 0.85);  // 6 + 3 = 90% >= 85%
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].shape, Task(4000, 1, 1000));
  EXPECT_DOUBLE_EQ(t[0].weight, 6.0 / 9.0);
  EXPECT_DOUBLE_EQ(t[1].weight, 3.0 / 9.0);
  EXPECT_EQ(TypicalTasks(w, 1.0).size(), 3u);
}

// Hand-computed: node with devices {1000, 1000, 400, 0}, 10 cores left, type 0.
//   whole 1-GPU task (4 cores), weight 0.5: fits; unusable = the 400 partial   -> 400
//   shared 0.5 task (2 cores), weight 0.25: fits; unusable = 400 (< 500) + 0   -> 400
//   whole 1-GPU task needing 16 cores, weight 0.25: CPU short; all 2400 unusable
// expected = 0.5 * 400 + 0.25 * 400 + 0.25 * 2400 = 900
TEST(NodeFragmentationTest, MatchesHandComputedCase) {
  std::vector<TypicalTask> typical = {
      {Task(4000, 1, 1000), 0.5}, {Task(2000, 1, 500), 0.25}, {Task(16000, 1, 1000), 0.25}};
  std::vector<uint16_t> left{1000, 1000, 400, 0};
  EXPECT_DOUBLE_EQ(NodeFragmentation(left, 10'000, AcceleratorTypeId(0), typical), 900.0);
}

TEST(NodeFragmentationTest, CpuOnlyTasksAndForeignTypesSeeEverythingUnusable) {
  TypeSet other;
  other.Add(AcceleratorTypeId(3));
  std::vector<TypicalTask> typical = {{Task(1000, 0, 0), 0.5}, {TaskShape{0, 0, 1, 1000, other}, 0.5}};
  std::vector<uint16_t> left{1000, 500};
  EXPECT_DOUBLE_EQ(NodeFragmentation(left, 64'000, AcceleratorTypeId(0), typical), 1500.0);
  EXPECT_DOUBLE_EQ(NodeFragmentation(left, 64'000, std::nullopt, typical), 0.0);  // CPU-only node
}

TEST(NodeFragmentationTest, FullNodeHasNone) {
  std::vector<TypicalTask> typical = {{Task(1000, 1, 1000), 1.0}};
  std::vector<uint16_t> left{0, 0};
  EXPECT_DOUBLE_EQ(NodeFragmentation(left, 0, AcceleratorTypeId(0), typical), 0.0);
}

}  // namespace
}  // namespace joule
