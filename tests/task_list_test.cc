#include "io/task_list.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace joule::io {
namespace {

std::string WriteCsv(const std::string& body) {
  std::string path = (std::filesystem::path(::testing::TempDir()) /
                      (std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".csv"))
                         .string();
  std::ofstream(path) << "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n" << body;
  return path;
}

std::string ErrorOf(const std::string& path) {
  auto r = ReadOpenbTaskList(path, Catalog::BuiltIn());
  return r.ok() ? "(read)" : r.status().message();
}

TEST(TaskListTest, ReadsShapesAndTypeConstraints) {
  std::string path = WriteCsv("a,4000,1024,1,1000,,LS\nb,2000,512,1,250,h100-sxm|h200,BE\nc,8000,0,0,0,,LS\n");
  auto r = ReadOpenbTaskList(path, Catalog::BuiltIn());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].types.Any());
  EXPECT_TRUE((*r)[1].Shared());
  EXPECT_TRUE((*r)[1].types.Allows(*Catalog::BuiltIn().FindAccelerator("h200")));
  EXPECT_FALSE((*r)[1].types.Allows(*Catalog::BuiltIn().FindAccelerator("b200")));
  EXPECT_EQ((*r)[2].gpus, 0u);
}

TEST(TaskListTest, UnknownTypesMatchNothing) {
  const Catalog catalog = Catalog::BuiltIn();
  auto r = ReadOpenbTaskList(WriteCsv("a,4000,1024,1,1000,K80,LS\n"), catalog);
  ASSERT_TRUE(r.ok());
  for (const AcceleratorType& t : catalog.accelerators()) {
    EXPECT_FALSE((*r)[0].types.Allows(*catalog.FindAccelerator(t.name))) << t.name;
  }
}

TEST(TaskListTest, BadRowsNameLineAndColumn) {
  std::string p = WriteCsv("a,4000,1024,1,1000,,LS\nb,x,1024,1,1000,,LS\n");
  EXPECT_EQ(ErrorOf(p), p + ":3: cpu_milli: 'x' is not an integer");
  p = WriteCsv("a,4000,1024,-1,1000,,LS\n");
  EXPECT_EQ(ErrorOf(p), p + ":2: num_gpu: must be >= 0");
  p = WriteCsv("a,4000,1024,2,500,,LS\n");
  EXPECT_EQ(ErrorOf(p), p + ":2: gpu_milli: must be 1000 when num_gpu > 1");
  p = WriteCsv("a,4000,1024,1,1500,,LS\n");
  EXPECT_EQ(ErrorOf(p), p + ":2: gpu_milli: 1500 exceeds one accelerator (1000)");
  p = WriteCsv("");
  EXPECT_EQ(ErrorOf(p), p + ": no tasks listed");
  EXPECT_EQ(ErrorOf("/nonexistent.csv"), "/nonexistent.csv: cannot open file");
}

}  // namespace
}  // namespace joule::io
