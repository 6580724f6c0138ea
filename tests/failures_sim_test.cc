// The twin under failures: one large job against Daly's model of the effective training time
// ratio, the restart and checkpoint arithmetic by hand, and determinism of injected failures.
#include <cmath>

#include <gtest/gtest.h>

#include "sim/metrics.h"
#include "sim/simulator.h"
#include "tests/test_fleets.h"

namespace joule::sim {
namespace {

using joule::testing::FleetOf;
using joule::testing::GpuNode;

constexpr TimeMs kMin = 60'000;
constexpr TimeMs kHour = 60 * kMin;

// Only GPU failures, at `per_gpu_hour`, repaired after `repair_h`; restart R and stall C in minutes.
FailureModelSpec OnlyGpuFailures(double per_gpu_hour, double restart_min, double stall_min, double repair_h = 1) {
  FailureModelSpec spec;
  spec.causes[static_cast<size_t>(FailureCause::kGpu)] = CauseSpec{per_gpu_hour, RepairSpec{repair_h, 0}};
  spec.triage_h = 0;
  spec.restart_overhead_min = restart_min;
  spec.checkpoint_stall_s = stall_min * 60;
  return spec;
}

struct Forty {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf(std::vector<NodeType>(40, GpuNode(catalog, 8, 96, 512)), 4);
};

WorkloadJob BigJob(TimeMs duration, TimeMs checkpoint, uint32_t spares) {
  JobSpec spec;
  spec.id = 1;
  spec.workers = 16;  // 128 GPUs
  spec.worker = TaskShape{1000, 1024, 8, kMilliPerGpu};
  spec.checkpoint_interval = checkpoint;
  spec.spare_nodes = spares;
  return {spec, duration};
}

SimResult RunOne(const Fleet& fleet, WorkloadJob job, FailureModelSpec model, uint64_t seed, TimeMs horizon) {
  SimOptions options;
  options.end = horizon;
  options.tick = 1000;
  options.failures = std::move(model);
  options.failure_seed = seed;
  options.engine.check_invariants = false;
  Simulator sim(fleet, {TenantSpec{"lab"}}, options);
  return sim.Run(Workload{{std::move(job)}, {"lab"}});
}

// Daly (2006): with exponential failures of mean time M, checkpoints every τ of work costing C and
// restarts costing R, the expected wall time per unit of work is M·e^{R/M}·(e^{(τ+C)/M} − 1)/τ.
// The twin's single job, averaged over seeds, must land within a few percent of it.
TEST(DalyModelTest, EttrOfOneLargeJobMatchesDalyOverManySeeds) {
  Forty f;
  const double m_min = 240, tau_min = 30, c_min = 1, r_min = 5;
  const double per_gpu_hour = 60.0 / m_min / 128.0;  // the job's 128 GPUs fail every M on average
  const double daly = tau_min / (m_min * std::exp(r_min / m_min) * (std::exp((tau_min + c_min) / m_min) - 1));
  double work = 0, wall = 0;
  uint64_t interruptions = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SimResult r = RunOne(f.fleet, BigJob(100 * kHour, 30 * kMin, 4), OnlyGpuFailures(per_gpu_hour, r_min, c_min), seed,
                         400 * kHour);
    const JobRecord& job = r.jobs[0];
    ASSERT_EQ(job.outcome, Outcome::kCompleted) << "seed " << seed;
    work += static_cast<double>(job.work_done);
    wall += static_cast<double>(*job.end - *job.first_start);
    interruptions += job.interruptions;
  }
  const double ettr = work / wall;
  EXPECT_NEAR(ettr, daly, 0.03 * daly) << "Daly " << daly << ", twin " << ettr << " over " << interruptions
                                       << " interruptions";
  EXPECT_GT(interruptions, 300u);  // enough failures for the mean to mean something
}

// No failure: the job's wall time is exactly its work plus one stall per checkpoint but the last.
TEST(DalyModelTest, CheckpointStallsWithoutFailures) {
  Forty f;
  SimResult r = RunOne(f.fleet, BigJob(100 * kMin, 30 * kMin, 0), OnlyGpuFailures(0, 5, 1), 1, 1000 * kMin);
  ASSERT_EQ(r.jobs[0].outcome, Outcome::kCompleted);
  // 100 minutes of work in stretches of 30: three checkpoints (30, 60, 90), none after the last.
  EXPECT_EQ(*r.jobs[0].end - *r.jobs[0].first_start, 103 * kMin);
  EXPECT_EQ(r.jobs[0].interruptions, 0u);
}

// On a campus full of work of the same priority, a gang that loses a node without spares waits in
// the queue for room (its failed node's repair, four hours); with spares it goes on at once.
TEST(HotSparesSimTest, SparesSaveTheWaitOnAFullCampus) {
  Forty f;
  auto ettr = [&](uint32_t spares) {
    double work = 0, wall = 0;
    for (uint64_t seed = 1; seed <= 5; ++seed) {
      std::vector<WorkloadJob> jobs = {BigJob(48 * kHour, 10 * kMin, spares)};
      // Fillers: every node the gang leaves, one 8-GPU job each, for days, arriving just after it.
      for (uint32_t i = 0; i < 40 - 16 - spares; ++i) {
        WorkloadJob filler = BigJob(300 * kHour, 10 * kMin, 0);
        filler.spec.id = 100 + i;
        filler.spec.workers = 1;
        filler.spec.submit_time = 1000;
        jobs.push_back(filler);
      }
      SimOptions options;
      options.end = 200 * kHour;
      options.failures = OnlyGpuFailures(1e-3, 5, 0, 4);
      options.failure_seed = seed;
      Simulator sim(f.fleet, {TenantSpec{"lab"}}, options);
      SimResult r = sim.Run(Workload{std::move(jobs), {"lab"}});
      work += static_cast<double>(r.jobs[0].work_done);
      wall += static_cast<double>(r.jobs[0].end.value_or(r.end) - *r.jobs[0].first_start);
    }
    return work / wall;
  };
  const double with = ettr(4), without = ettr(0);
  EXPECT_GT(with, 0.8);
  EXPECT_LT(without, with - 0.1) << "with spares " << with << ", without " << without;
}

// A tenant's spare pool is held: its nodes count in the tenant's allocation from the first step.
TEST(HotSparesSimTest, ATenantsPoolIsAllocatedToIt) {
  Forty f;
  TenantSpec tenant{"lab"};
  tenant.spare_nodes = {{*f.catalog.FindAccelerator("h100-sxm"), 3}};
  SimOptions options;
  options.end = 60 * kMin;
  Simulator sim(f.fleet, {tenant}, options);
  SimResult r = sim.Run(Workload{{BigJob(30 * kMin, 10 * kMin, 0)}, {"lab"}});
  ASSERT_GE(r.samples.size(), 2u);
  EXPECT_EQ(r.samples[1].tenant_milli[0], (16 + 3) * 8 * 1000u);  // the job's 16 nodes and the pool's 3
  EXPECT_EQ(r.samples.back().tenant_milli[0], 3 * 8 * 1000u);     // the job ended; the pool stays
}

TEST(FailureInjectionTest, SameSeedSameFailuresOtherSeedOthers) {
  Forty f;
  auto run = [&](uint64_t seed) {
    return RunOne(f.fleet, BigJob(20 * kHour, 30 * kMin, 2), OnlyGpuFailures(1e-3, 5, 1), seed, 40 * kHour);
  };
  SimResult a = run(7), b = run(7), c = run(8);
  EXPECT_EQ(a.failures.node_failures, b.failures.node_failures);
  EXPECT_EQ(a.jobs[0].end, b.jobs[0].end);
  EXPECT_EQ(a.failures.interruptions, b.failures.interruptions);
  EXPECT_NE(a.failures.node_failures, c.failures.node_failures);
  // Every GPU failure took a node down and back: two more transitions (repairing, healthy) each.
  const uint64_t gpu = a.failures.node_failures[static_cast<size_t>(FailureCause::kGpu)];
  EXPECT_GT(gpu, 0u);
  EXPECT_LE(a.failures.health_transitions, 3 * gpu);
  EXPECT_GE(a.failures.health_transitions, 3 * gpu - 6);  // outages still open at the horizon
}

}  // namespace
}  // namespace joule::sim
