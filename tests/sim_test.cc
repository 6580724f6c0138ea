// The twin: metrics against hand-computed cases, the event core's timing rules, determinism, the
// tenant workload model's generator.
#include <cmath>

#include <gtest/gtest.h>

#include "power/draw.h"
#include "sim/metrics.h"
#include "sim/simulator.h"
#include "sim/tenant_model.h"
#include "tests/test_fleets.h"

namespace joule::sim {
namespace {

using joule::testing::FleetOf;
using joule::testing::GpuNode;

constexpr TimeMs kS = 1000;

WorkloadJob Job(JobId id, TimeMs submit_s, uint32_t gpus, TimeMs duration_s, uint32_t workers = 1) {
  JobSpec spec;
  spec.id = id;
  spec.tenant = TenantId(0);
  spec.workers = workers;
  spec.worker = TaskShape{1000, 1024, gpus, kMilliPerGpu};
  spec.submit_time = submit_s * kS;
  return {spec, duration_s * kS};
}

struct TwinFixture {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(catalog, 8, 96, 512), GpuNode(catalog, 8, 96, 512)});

  SimResult Run(std::vector<WorkloadJob> jobs, SimOptions options = {}) {
    Workload w{std::move(jobs), {"lab"}};
    SortBySubmit(w);
    if (options.end == SimOptions{}.end) options.end = SimOptions::kRunToCompletion;
    options.engine.check_invariants = true;
    Simulator sim(fleet, {TenantSpec{"lab"}}, options);
    return sim.Run(w);
  }
};

TEST(MetricsTest, DistributionByNearestRank) {
  Distribution d = Distribute({4, 1, 3, 2});
  EXPECT_EQ(d.count, 4u);
  EXPECT_DOUBLE_EQ(d.mean, 2.5);
  EXPECT_DOUBLE_EQ(d.p50, 2);  // ceil(0.5 * 4) = 2nd value
  EXPECT_DOUBLE_EQ(d.p95, 4);  // ceil(0.95 * 4) = 4th
  EXPECT_DOUBLE_EQ(d.max, 4);
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  Distribution h = Distribute(hundred);
  EXPECT_DOUBLE_EQ(h.p95, 95);
  EXPECT_DOUBLE_EQ(h.p99, 99);
  EXPECT_EQ(Distribute({}).count, 0u);
}

TEST(MetricsTest, SizeClassesByAccelerators) {
  EXPECT_EQ(SizeClass(1), 0);
  EXPECT_EQ(SizeClass(8), 0);
  EXPECT_EQ(SizeClass(9), 1);
  EXPECT_EQ(SizeClass(128), 1);
  EXPECT_EQ(SizeClass(1024), 2);
  EXPECT_EQ(SizeClass(1025), 3);
}

// Two 16-GPU gangs on a 16-GPU fleet, FIFO: the second starts when the first ends.
// A: submit 0, 100 s -> runs 0..100. B: submit 0, 50 s -> waits 100, ends 150. C: 1 GPU at 5 s
// fits nowhere until 150 (ticks of 10 s) -> starts 150, ends 170.
TEST(SimulatorTest, WaitsAndCompletionTimesByHand) {
  TwinFixture f;
  SimOptions o;
  o.engine.order = QueueOrder::kFifo;
  o.sample_interval = 50 * kS;
  SimResult r = f.Run({Job(1, 0, 8, 100, 2), Job(2, 0, 8, 50, 2), Job(3, 5, 1, 20)}, o);
  ASSERT_EQ(r.jobs.size(), 3u);
  EXPECT_EQ(*r.jobs[0].first_start, 0);
  EXPECT_EQ(*r.jobs[0].end, 100 * kS);
  EXPECT_EQ(*r.jobs[1].first_start, 100 * kS);
  EXPECT_EQ(*r.jobs[1].end, 150 * kS);
  EXPECT_EQ(*r.jobs[2].first_start, 150 * kS);
  EXPECT_EQ(*r.jobs[2].end, 170 * kS);
  Summary s = Summarize(r);
  EXPECT_EQ(s.all.completed, 3u);
  EXPECT_DOUBLE_EQ(s.all.wait_s.mean, (0 + 100 + 145) / 3.0);
  EXPECT_DOUBLE_EQ(s.all.jct_s.mean, (100 + 150 + 165) / 3.0);
  // Bounded slowdown: 100/100, 150/50, 165/20 -> (1 + 3 + 8.25) / 3.
  EXPECT_DOUBLE_EQ(s.all.mean_bounded_slowdown, (1 + 3 + 8.25) / 3.0);
  EXPECT_EQ(s.by_size[1].completed, 2u);  // the 16-GPU gangs
  // Samples at 0, 50, 100, 150: the whole fleet is held at 0 and 50 (A), 100 (B) and 150 (C: 1).
  ASSERT_GE(r.samples.size(), 4u);
  EXPECT_EQ(r.samples[0].allocated_milli, 16'000u);
  EXPECT_EQ(r.samples[1].allocated_milli, 16'000u);
  EXPECT_EQ(r.samples[2].allocated_milli, 16'000u);
  EXPECT_EQ(r.samples[3].allocated_milli, 1'000u);
  EXPECT_EQ(r.samples[1].pending_jobs, 2u);
}

// A 6-GPU job leaves 2 free on node 0, a 7-GPU job 1 on node 1; a queued 4-GPU job can use
// neither: 3 accelerators fragmented. Once the 6-GPU job ends the 4-GPU one fits and nothing is.
TEST(SimulatorTest, FragmentedCountsFreeAcceleratorsNoQueuedJobCanUse) {
  TwinFixture f;
  SimOptions o;
  o.sample_interval = 50 * kS;
  SimResult r = f.Run({Job(1, 0, 6, 100), Job(2, 0, 7, 200), Job(3, 0, 4, 10)}, o);
  ASSERT_GE(r.samples.size(), 3u);
  EXPECT_EQ(r.samples[0].pending_jobs, 1u);
  EXPECT_EQ(r.samples[0].fragmented_milli, 3'000u);
  EXPECT_EQ(r.samples[1].fragmented_milli, 3'000u);
  EXPECT_EQ(*r.jobs[2].first_start, 100 * kS);
  EXPECT_EQ(r.samples[2].pending_jobs, 0u);  // at 100 s the 4-GPU job started
  EXPECT_EQ(r.samples[2].fragmented_milli, 0u);
  EXPECT_DOUBLE_EQ(Summarize(r).mean_fragmented_accelerators,
                   static_cast<double>(3 + 3) / static_cast<double>(r.samples.size()));
}

TEST(SimulatorTest, ShortestFirstWithTrueDurationsRunsTheShortJobFirst) {
  TwinFixture f;
  SimOptions o;
  o.engine.order = QueueOrder::kShortestFirst;
  o.oracle_estimates = true;
  SimResult r = f.Run({Job(1, 0, 8, 100, 2), Job(2, 0, 8, 50, 2)}, o);
  EXPECT_EQ(*r.jobs[1].first_start, 0);
  EXPECT_EQ(*r.jobs[0].first_start, 50 * kS);
}

TEST(SimulatorTest, TimeLimitKillsTheJob) {
  TwinFixture f;
  WorkloadJob j = Job(1, 0, 1, 100);
  j.spec.time_limit = 30 * kS;
  SimResult r = f.Run({j});
  EXPECT_EQ(r.jobs[0].outcome, Outcome::kTimeLimit);
  EXPECT_EQ(*r.jobs[0].end, 30 * kS);
}

// A high-priority gang preempts a low-priority one that checkpoints every 40 s: killed at 100 s
// (grace 0), it keeps 80 s of work, loses 20 s x 16 GPUs, and finishes its remaining 70 s later.
TEST(SimulatorTest, PreemptionKeepsWorkUpToTheLastCheckpoint) {
  TwinFixture f;
  WorkloadJob low = Job(1, 0, 8, 150, 2);
  low.spec.checkpoint_interval = 40 * kS;
  WorkloadJob high = Job(2, 100, 8, 10, 2);
  high.spec.priority = 10;
  SimOptions o;
  o.engine.preemption_grace = 0;
  SimResult r = f.Run({low, high}, o);
  EXPECT_EQ(r.preemptions, 1u);
  EXPECT_EQ(r.jobs[0].preemptions, 1u);
  EXPECT_DOUBLE_EQ(r.lost_accelerator_hours, 20.0 * 16 / 3600);
  EXPECT_EQ(*r.jobs[1].first_start, 100 * kS);
  EXPECT_EQ(*r.jobs[1].end, 110 * kS);
  EXPECT_EQ(r.jobs[0].outcome, Outcome::kCompleted);
  EXPECT_EQ(*r.jobs[0].end, (110 + 70) * kS);
}

TEST(SimulatorTest, JobsLargerThanTheFleetAreRejectedAndCounted) {
  TwinFixture f;
  SimResult r = f.Run({Job(1, 0, 8, 10, 3), Job(2, 0, 1, 10)});
  EXPECT_EQ(r.jobs[0].outcome, Outcome::kRejected);
  EXPECT_EQ(Summarize(r).all.rejected, 1u);
  EXPECT_EQ(r.jobs[1].outcome, Outcome::kCompleted);
}

// Lab a reserves 8 of the 16 GPUs; lab b borrows all 16 first. When a's 8-GPU job arrives the
// engine reclaims (preempts b) within the grace period: no breach. With preemption off, a is owed
// its reservation for the whole of b's run: one breach.
TEST(SimulatorTest, ReservationBreachesCountWhenTheOwnerIsNotServed) {
  TwinFixture f;
  const AcceleratorTypeId h100 = *f.catalog.FindAccelerator("h100-sxm");
  std::vector<TenantSpec> tenants = {TenantSpec{"a", {Reservation{h100, 8}}}, TenantSpec{"b"}};
  WorkloadJob borrower = Job(1, 0, 8, 1000, 2);
  borrower.spec.tenant = TenantId(1);
  WorkloadJob owner = Job(2, 100, 8, 50);
  owner.spec.worker.types.Add(h100);  // a reservation is owed to jobs bound to its type
  Workload w{{borrower, owner}, {"a", "b"}};
  for (bool preemption : {true, false}) {
    SimOptions o;
    o.end = SimOptions::kRunToCompletion;
    o.engine.preemption = preemption;
    o.engine.check_invariants = true;
    SimResult r = Simulator(f.fleet, tenants, o).Run(w);
    EXPECT_EQ(r.reservation_breaches, preemption ? 0u : 1u) << preemption;
    if (preemption) {
      EXPECT_LE(*r.jobs[1].first_start, (100 + 30 + 20) * kS);
    }
  }
}

// H100: rated 700 W, idle 70 W; the test node: 8 of them, overhead 1,000 W rated, 300 W idle.
// Training draws 0.8 x 700 = 560 W per accelerator, inference 350 W; the node's overhead rises
// by (1000 - 300) / 8 = 87.5 W per accelerator in use.
TEST(PowerTest, WorkerWattsByHand) {
  TwinFixture f;
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(f.fleet, NodeId(0), 4, 1000, WorkClass::kTraining), 4 * (560 - 70 + 87.5));
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(f.fleet, NodeId(0), 4, 1000, WorkClass::kInference), 4 * (350 - 70 + 87.5));
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(f.fleet, NodeId(0), 1, 250, WorkClass::kInference), 0.25 * (350 - 70 + 87.5));
  EXPECT_DOUBLE_EQ(WorkerIdleWatts(f.fleet, NodeId(0), 4, 1000), 4 * (70 + 300 / 8.0));
}

// One 8-GPU training job for the first hour of a two-hour run, samples hourly: IT energy is the
// idle fleet for two hours plus the job's extra for one; carbon weighs each hour's facility
// energy (PUE 1.1) by that hour's intensity.
TEST(PowerTest, EnergyAndCarbonByHand) {
  TwinFixture f;
  SimOptions o;
  o.end = 7'200 * kS;
  o.sample_interval = 3'600 * kS;
  o.grid_g_per_kwh = {10, 20, 30};
  SimResult r = f.Run({Job(1, 0, 8, 3'600)}, o);
  const double idle = static_cast<double>(f.fleet.it_draw().idle_w);
  const double job = 8 * (560 - 70 + 87.5);
  ASSERT_EQ(r.samples.size(), 3u);
  EXPECT_DOUBLE_EQ(r.samples[0].it_w, idle + job);
  EXPECT_DOUBLE_EQ(r.samples[1].it_w, idle);
  EXPECT_DOUBLE_EQ(r.it_energy_wh, (idle + job) + idle);
  ASSERT_EQ(r.hall_energy_wh.size(), 1u);  // one hall: all of it
  EXPECT_DOUBLE_EQ(r.hall_energy_wh[0], r.it_energy_wh);
  EXPECT_DOUBLE_EQ(r.tenant_energy_wh[0], job + 8 * (70 + 300 / 8.0));
  EXPECT_DOUBLE_EQ(r.peak_it_w, idle + job);
  ASSERT_TRUE(r.carbon_g.has_value());
  EXPECT_NEAR(*r.carbon_g, (idle + job) * 1.1 / 1000 * 10 + idle * 1.1 / 1000 * 20, 1e-9);
}

// Job 1 (priority 0) trains on one node; at 600 s job 2 (priority 5) needs the other and the
// campus budget has only 3,000 W to spare, so job 1 is capped to 510 per-mille (see
// PowerGovernorTest): it then works at 1 - 0.3 x (1 - 510/800) = 0.89125 of full speed and its
// last 3,000 s of work take 3,000 / 0.89125 s. No budget is exceeded.
TEST(PowerTest, CappedJobRunsSlowerAndNoBudgetIsExceeded) {
  TwinFixture f;
  SimOptions o;
  o.engine.power.campus_it_budget_w = f.fleet.it_draw().idle_w + 8 * 577.5 + 3000;
  WorkloadJob low = Job(1, 0, 8, 3'600), high = Job(2, 600, 8, 3'600);
  high.spec.priority = 5;
  SimResult r = f.Run({low, high}, o);
  const double speed = 1 - 0.3 * (1 - 510.0 / 800);
  EXPECT_EQ(*r.jobs[1].first_start, 600 * kS);
  EXPECT_EQ(*r.jobs[1].end, 4'200 * kS);
  const TimeMs capped_ms = static_cast<TimeMs>(std::ceil(3'000'000 / speed));
  EXPECT_EQ(*r.jobs[0].end, 600 * kS + capped_ms);
  EXPECT_EQ(r.power_limit_changes, 1u);  // job 2 ends after job 1: nothing to raise
  EXPECT_NEAR(r.capping_lost_accelerator_hours, 8 * (1 - speed) * static_cast<double>(capped_ms) / 3.6e6, 1e-6);
  EXPECT_DOUBLE_EQ(r.useful_accelerator_hours, 2 * 8 * 1.0);
  ASSERT_EQ(r.budgets_by_level.size(), 4u);
  EXPECT_EQ(r.budgets_by_level[0], 1u);  // the campus
  for (uint64_t v : r.violations_by_level) EXPECT_EQ(v, 0u);
  EXPECT_EQ(r.max_violation_w, 0);
}

WorkloadModel SmallModel() {
  JobClass eval;
  eval.name = "eval";
  eval.per_day = 1000;
  eval.min_accelerators = 1;
  eval.max_accelerators = 8;
  eval.per_worker = 8;
  eval.min_duration = 60 * kS;
  eval.max_duration = 3600 * kS;
  InferenceService chat;
  chat.name = "chat";
  chat.peak_replicas = 10;
  chat.trough = 0.3;
  chat.burstiness = 0;
  return {{TenantWorkload{TenantId(0), {eval}, {chat}}}};
}

TEST(TenantModelTest, SameSeedSameJobsAndPoissonCounts) {
  const std::vector<TenantSpec> tenants = {TenantSpec{"lab"}};
  const TimeMs day = 86'400 * kS;
  Workload a = Generate(SmallModel(), tenants, day, 7);
  Workload b = Generate(SmallModel(), tenants, day, 7);
  Workload c = Generate(SmallModel(), tenants, day, 8);
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].spec.submit_time, b.jobs[i].spec.submit_time);
    EXPECT_EQ(a.jobs[i].duration, b.jobs[i].duration);
  }
  EXPECT_NE(a.jobs.size() == c.jobs.size() && a.jobs[5].spec.submit_time == c.jobs[5].spec.submit_time, true);
  uint64_t evals = 0;
  for (const WorkloadJob& j : a.jobs) {
    EXPECT_EQ(j.spec.id, static_cast<JobId>(&j - a.jobs.data()) + 1);
    if (a.origins[j.origin] != "lab/eval") continue;
    ++evals;
    const uint64_t size = Accelerators(j.spec);
    EXPECT_TRUE(size == 1 || size == 2 || size == 4 || size == 8) << size;
    EXPECT_GE(j.duration, 60 * kS);
    EXPECT_LE(j.duration, 3600 * kS);
    EXPECT_GE(*j.spec.time_limit, j.duration);
  }
  // Poisson with mean 1000: within five standard deviations (~158).
  EXPECT_NEAR(static_cast<double>(evals), 1000.0, 160.0);
}

// Without bursts the replica count follows the daily curve: 10 at the peak hour, 3 at the trough
// (12 hours away); replica-hours add up to the curve's sum over the day.
TEST(TenantModelTest, ServiceReplicasFollowTheDailyCurve) {
  Workload w = Generate(SmallModel(), {TenantSpec{"lab"}}, 86'400 * kS, 1);
  std::vector<int> replicas(24, 0);
  for (const WorkloadJob& j : w.jobs) {
    if (w.origins[j.origin] != "lab/chat") continue;
    for (TimeMs h = j.spec.submit_time / 3'600'000; h < (j.spec.submit_time + j.duration) / 3'600'000; ++h) {
      replicas[static_cast<size_t>(h)]++;
    }
  }
  EXPECT_EQ(replicas[14], 10);
  EXPECT_EQ(replicas[2], 3);
  for (int h = 0; h < 24; ++h) EXPECT_GE(replicas[static_cast<size_t>(h)], 3) << h;
}

TEST(SimulatorTest, SameWorkloadSameResult) {
  TwinFixture f;
  WorkloadModel model = SmallModel();
  model.tenants[0].services.clear();  // two replicas would hold this 16-GPU fleet all day
  model.tenants[0].classes[0].per_day = 300;
  Workload w = Generate(model, {TenantSpec{"lab"}}, 86'400 * kS, 3);
  SimOptions o;
  o.end = 86'400 * kS;
  Simulator s1(f.fleet, {TenantSpec{"lab"}}, o), s2(f.fleet, {TenantSpec{"lab"}}, o);
  SimResult a = s1.Run(w), b = s2.Run(w);
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].first_start, b.jobs[i].first_start);
    EXPECT_EQ(a.jobs[i].end, b.jobs[i].end);
  }
  EXPECT_GT(Summarize(a).all.completed, 100u);
}

}  // namespace
}  // namespace joule::sim
