// Trace readers and the workload model loader: good rows, and bad rows named by file and line.
#include "io/job_traces.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "io/grid_series.h"
#include "io/workload_model.h"

namespace joule::io {
namespace {

struct TempFile {
  std::string path;
  TempFile(const std::string& name, const std::string& text)
      : path((std::filesystem::temp_directory_path() / ("joule_" + std::to_string(::getpid()) + "_" + name)).string()) {
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
};

Scenario Dev() {
  Result<Scenario> s = LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/dev.yaml");
  JOULE_CHECK(s.ok());
  return std::move(s).value();
}

TEST(PhillyTraceTest, TimesAreRelativeAndGangsSplitIntoNodes) {
  Scenario dev = Dev();
  dev.tenants.push_back(TenantSpec{"other"});
  TempFile f("philly.csv",
             "timestamp,duration,num_gpus,gpu_time,cluster\n"
             "2017-10-09 07:01:55,66.0,1,66.0,lab-a\n"
             "2017-10-09 07:00:00,100.5,16,1608,lab-b\n"
             "2017-10-10 07:00:00,10,12,120,6214e9\n");
  Result<sim::Workload> w = ReadPhillyTrace(f.path, dev);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->jobs.size(), 3u);
  const sim::WorkloadJob& first = w->jobs[0];  // sorted by submit: the 16-GPU job came first
  EXPECT_EQ(first.spec.submit_time, 0);
  EXPECT_EQ(first.spec.workers, 2u);
  EXPECT_EQ(first.spec.worker.gpus, 8u);
  EXPECT_EQ(first.duration, 100'500);
  EXPECT_EQ(w->jobs[1].spec.submit_time, 115'000);
  EXPECT_EQ(w->jobs[2].spec.submit_time, 86'400'000);
  EXPECT_EQ(w->jobs[2].spec.workers, 3u);          // 12 GPUs: 3 workers of 4
  EXPECT_EQ(w->jobs[2].spec.tenant, TenantId(3));  // unknown cluster -> other
}

TEST(PhillyTraceTest, BadRowsNameFileLineAndColumn) {
  Scenario dev = Dev();
  TempFile f("philly-bad.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n2017-13-09 07:01:55,66.0,1,66.0,lab-a\n");
  Result<sim::Workload> w = ReadPhillyTrace(f.path, dev);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find(f.path + ":2: timestamp:"), std::string::npos) << w.status().message();
  TempFile g("philly-vc.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66.0,zz\n");
  w = ReadPhillyTrace(g.path, dev);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find(":2: cluster: virtual cluster 'zz'"), std::string::npos) << w.status().message();
}

TEST(JobCsvTest, ReadsEveryColumn) {
  Scenario dev = Dev();
  TempFile f("jobs.csv",
             "id,submit_s,tenant,workers,gpus_per_worker,gpu_milli,gpu_type,cpu_milli,memory_mib,duration_s,"
             "time_limit_s,estimate_s,checkpoint_s,priority\n"
             "7,30,lab-b,2,4,,h100-sxm,8000,1024,3600,7200,5000,600,3\n"
             "8,0,,,1,250,,,,60,,,,\n");
  Result<sim::Workload> w = ReadJobCsv(f.path, dev);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->jobs.size(), 2u);
  const sim::WorkloadJob& shared = w->jobs[0];
  EXPECT_EQ(shared.spec.id, 8u);
  EXPECT_EQ(shared.spec.worker.milli_per_gpu, 250);
  EXPECT_EQ(shared.spec.tenant, TenantId(0));
  const sim::WorkloadJob& gang = w->jobs[1];
  EXPECT_EQ(gang.spec.submit_time, 30'000);
  EXPECT_EQ(gang.spec.tenant, TenantId(1));
  EXPECT_EQ(gang.spec.workers, 2u);
  EXPECT_EQ(gang.spec.worker.gpus, 4u);
  EXPECT_EQ(gang.spec.worker.cpu, 8000);
  EXPECT_EQ(gang.duration, 3'600'000);
  EXPECT_EQ(*gang.spec.time_limit, 7'200'000);
  EXPECT_EQ(*gang.spec.runtime_estimate, 5'000'000);
  EXPECT_EQ(*gang.spec.checkpoint_interval, 600'000);
  EXPECT_EQ(gang.spec.priority, 3);
  EXPECT_FALSE(gang.spec.worker.types.Any());
}

TEST(JobCsvTest, BadInputIsNamed) {
  Scenario dev = Dev();
  struct Case {
    std::string text, expected;
  };
  const std::vector<Case> cases = {
      {"submit_s,duration_s\n0,10\n", "missing column 'gpus_per_worker'"},
      {"submit_s,duration_s,gpus_per_worker,tenant\n0,10,1,nobody\n", ":2: tenant: 'nobody' is no tenant"},
      {"submit_s,duration_s,gpus_per_worker\n0,0,1\n", ":2: duration_s: 0 is not a time in seconds > 0"},
      {"submit_s,duration_s,gpus_per_worker\n0,10,x\n", ":2: gpus_per_worker: 'x' is not an integer"},
      {"submit_s,duration_s,gpus_per_worker,gpu_type\n0,10,1,tpu\n", ":2: gpu_type: 'tpu' names no accelerator type"},
      {"id,submit_s,duration_s,gpus_per_worker\n1,0,10,1\n1,0,10,1\n", ":3: id: job id 1 is repeated"},
      {"submit_s,duration_s,gpus_per_worker\n,10,1\n", ":2: submit_s: is required"},
  };
  for (const Case& c : cases) {
    TempFile f("bad-jobs.csv", c.text);
    Result<sim::Workload> w = ReadJobCsv(f.path, dev);
    ASSERT_FALSE(w.ok()) << c.text;
    EXPECT_NE(w.status().message().find(c.expected), std::string::npos) << w.status().message();
  }
}

TEST(OpenbTraceTest, ReplaysTheDefaultList) {
  const std::string path =
      std::string(JOULE_SOURCE_DIR) + "/../shared/data/traces/alibaba-openb/openb_pod_list_default.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared data not found: " << path;
  Result<Scenario> openb = LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/openb.yaml");
  ASSERT_TRUE(openb.ok()) << openb.status().message();
  Result<sim::Workload> w = ReadOpenbTrace(path, *openb);
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(w->jobs.size(), 8152u);
  // The first row: creation 0, scheduled 0, deletion 12,537,496 s, 12 cores, one whole GPU.
  bool found = false;
  for (const sim::WorkloadJob& j : w->jobs) {
    if (j.origin == 2) {
      found = true;
      EXPECT_EQ(j.spec.submit_time, 0);
      EXPECT_EQ(j.duration, 12'537'496'000);
      EXPECT_EQ(j.spec.worker.cpu, 12'000);
    }
  }
  EXPECT_TRUE(found);
}

TEST(WorkloadModelTest, LoadsAndNamesBadFields) {
  Scenario dev = Dev();
  TempFile good("model.yaml",
                "tenants:\n"
                "  - tenant: lab-a\n"
                "    jobs:\n"
                "      - {class: eval, per_day: 100, accelerators: [1, 8], per_worker: 8, type: h100-sxm,\n"
                "         duration_min: [5, 60], checkpoint_min: 10, priority: 2}\n"
                "    services:\n"
                "      - {name: chat, replicas_at_peak: 4, accelerators_per_replica: 4, burstiness: 0.2}\n");
  Result<sim::WorkloadModel> m = LoadWorkloadModel(good.path, dev);
  ASSERT_TRUE(m.ok()) << m.status().message();
  ASSERT_EQ(m->tenants.size(), 1u);
  const sim::JobClass& c = m->tenants[0].classes[0];
  EXPECT_EQ(c.min_duration, 300'000);
  EXPECT_EQ(c.max_duration, 3'600'000);
  EXPECT_EQ(*c.checkpoint_interval, 600'000);
  EXPECT_DOUBLE_EQ(m->tenants[0].services[0].burstiness, 0.2);

  TempFile bad("bad-model.yaml",
               "tenants:\n"
               "  - tenant: lab-a\n"
               "    jobs:\n"
               "      - {class: eval, per_day: 100, accelerators: [8, 1], duration_min: [5, 60]}\n");
  m = LoadWorkloadModel(bad.path, dev);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find(":4:"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("tenants[0].jobs[0].accelerators"), std::string::npos) << m.status().message();

  TempFile who("who-model.yaml", "tenants:\n  - tenant: nobody\n");
  m = LoadWorkloadModel(who.path, dev);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("'nobody' is no tenant"), std::string::npos) << m.status().message();
}

TEST(WorkloadModelTest, BurstinessOfTheAzureTrace) {
  TempFile f("azure.csv",
             "TIMESTAMP,ContextTokens,GeneratedTokens\n"
             "2023-11-16 18:00:01.5,1,1\n2023-11-16 18:00:30.0,1,1\n2023-11-16 18:00:59.9,1,1\n"
             "2023-11-16 18:02:10.0,1,1\n");
  // Per minute: 3, 0, 1 -> mean 4/3, variance (9 + 0 + 1)/3 - 16/9 = 14/9, CV = sqrt(14)/4.
  Result<double> cv = RequestBurstiness(f.path);
  ASSERT_TRUE(cv.ok()) << cv.status().message();
  EXPECT_NEAR(*cv, std::sqrt(14.0) / 4.0, 1e-12);
}

TEST(GridSeriesTest, ReadsHoursAndNamesBadRows) {
  const std::string header = "Datetime (UTC),Country,Carbon Intensity gCO2eq/kWh (direct)\n";
  TempFile good("grid.csv", header + "31/12/2021 23:00,France,20.5\n01/01/2022 00:00,France,25\n");
  Result<std::vector<double>> g = ReadCarbonIntensity(good.path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(*g, (std::vector<double>{20.5, 25}));
  struct Case {
    std::string rows, expected;
  };
  for (const Case& c : std::vector<Case>{
           {"01/01/2022 00:00,France,-1\n", ":2: Carbon Intensity gCO2eq/kWh (direct): -1 is negative"},
           {"01/01/2022 00:00,France,\n", ":2: Carbon Intensity gCO2eq/kWh (direct): is missing"},
           {"01/01/2022 00:00,France,1\n01/01/2022 02:00,France,1\n", ":3: Datetime (UTC): is not one hour after"},
           {"2022-01-01 00:00,France,1\n", ":2: Datetime (UTC): '2022-01-01 00:00' is not an hour"},
       }) {
    TempFile bad("grid-bad.csv", header + c.rows);
    g = ReadCarbonIntensity(bad.path);
    ASSERT_FALSE(g.ok()) << c.rows;
    EXPECT_NE(g.status().message().find(c.expected), std::string::npos) << g.status().message();
  }
}

// Prices may be negative (markets clear below zero); a missing one is still an error.
TEST(GridSeriesTest, ReadsPricesNegativeIncluded) {
  const std::string header = "Datetime (UTC),Price (EUR/MWh)\n";
  TempFile good("price.csv", header + "01/01/2022 00:00,80.5\n01/01/2022 01:00,-3\n");
  Result<std::vector<double>> p = ReadPrice(good.path);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(*p, (std::vector<double>{80.5, -3}));
  TempFile bad("price-bad.csv", header + "01/01/2022 00:00,\n");
  p = ReadPrice(bad.path);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(":2: Price (EUR/MWh): is missing"), std::string::npos) << p.status().message();
  TempFile carbon("grid-for-price.csv", "Datetime (UTC),Carbon Intensity gCO2eq/kWh (direct)\n01/01/2022 00:00,3\n");
  p = ReadPrice(carbon.path);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("Price (EUR/MWh)"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace joule::io
