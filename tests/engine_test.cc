#include "sched/engine.h"

#include <map>

#include <gtest/gtest.h>

#include "base/rng.h"
#include "tests/test_engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::OneTenant;
using testing::Started;
using testing::Submit;

using testing::FleetOf;
using testing::GpuNode;

JobSpec Job(JobId id, uint32_t workers, uint32_t gpus, int32_t priority = 0) {
  return testing::WholeJob(id, workers, gpus, priority);
}

JobSpec Timed(JobSpec j, TimeMs estimate) {
  j.runtime_estimate = estimate;
  return j;
}

struct TwoNodes {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(catalog, 8, 96, 512), GpuNode(catalog, 8, 96, 512)});
};

TEST(EngineTest, GangStartsWholeOrNotAtAll) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  Decisions d = Submit(e, 0, {Job(1, 2, 8)});
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].workers.size(), 2u);
  EXPECT_NE(d.starts[0].workers[0].node, d.starts[0].workers[1].node);
  // No room for another 8-GPU worker: it waits for resources, nothing partial starts.
  d = Submit(e, 1, {Job(2, 2, 4)});
  EXPECT_TRUE(d.starts.empty());
  EXPECT_EQ(e.pending_reason(2), PendingReason::kResources);
  d = e.Step(2, std::vector<Event>{JobFinished{1, true}});
  EXPECT_TRUE(Started(d, 2));
  EXPECT_EQ(e.state(1), JobState::kCompleted);
}

TEST(EngineTest, ImpossibleSpecsAreRejectedWithAReason) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant());
  JobSpec cpu_heavy = Job(5, 1, 1);
  cpu_heavy.worker.cpu = 200'000;
  JobSpec domain = Job(6, 2, 8);
  domain.topology = TopologyRule::kRequireNvlinkDomain;
  JobSpec self = Job(7, 1, 1);
  self.after_ok = {7};
  JobSpec unknown_dep = Job(8, 1, 1);
  unknown_dep.after_ok = {99};
  JobSpec bad_tenant = Job(9, 1, 1);
  bad_tenant.tenant = TenantId(3);
  JobSpec negative_limit = Job(10, 1, 1);
  negative_limit.time_limit = -5;
  Decisions d = Submit(
      e, 0,
      {Job(1, 0, 1), Job(2, 3, 8), Job(3, 1, 9), cpu_heavy, domain, self, unknown_dep, bad_tenant, negative_limit});
  std::map<JobId, std::string> why;
  for (const Rejection& r : d.rejections) why[r.job] += r.reason;
  EXPECT_EQ(why[1], "workers: must be > 0");
  EXPECT_EQ(why[2], "workers: needs 24 accelerators, the fleet has 16 of the allowed types");
  EXPECT_NE(why[3].find("no node of the fleet can hold one worker"), std::string::npos);
  EXPECT_NE(why[5].find("no node of the fleet can hold one worker"), std::string::npos);
  EXPECT_EQ(why[6], "topology: needs 16 accelerators in one NVLink domain, the largest holds 8");
  EXPECT_EQ(why[7], "after_ok: a job cannot depend on itself");
  EXPECT_EQ(why[8], "after_ok: unknown job 99");
  EXPECT_EQ(why[9], "tenant: unknown tenant");
  EXPECT_EQ(why[10], "time_limit, runtime_estimate and checkpoint_interval must be > 0");
  EXPECT_TRUE(d.starts.empty());
  EXPECT_FALSE(e.state(2).has_value());
  // Ids are unique among accepted jobs.
  Submit(e, 1, {Job(11, 1, 1)});
  d = Submit(e, 2, {Job(11, 1, 1)});
  ASSERT_EQ(d.rejections.size(), 1u);
  EXPECT_EQ(d.rejections[0].reason, "id: job 11 already exists");
}

TEST(EngineTest, NvlinkDomainRequirementKeepsTheGangInOneRack) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"t", "", 10 * kWattsPerMw, 1.1, 0.8, 45};
  RowSpec hgx{"h-r01", std::nullopt, *spec.catalog.FindRack("hgx-h100-rack"), 1, {}, 0};
  RowSpec nvl{"h-r02", std::nullopt, *spec.catalog.FindRack("gb200-nvl72"), 2, {}, 0};
  spec.halls.push_back(HallSpec{"h", std::nullopt, {hgx, nvl}});
  Fleet fleet = Fleet::Build(std::move(spec));
  Engine e(fleet, OneTenant(), {.check_invariants = true});
  JobSpec j = Job(1, 16, 4);  // 64 GPUs as 16 trays of 4
  j.worker.types.Add(*fleet.catalog().FindAccelerator("gb200"));
  j.topology = TopologyRule::kRequireNvlinkDomain;
  Decisions d = Submit(e, 0, {j});
  ASSERT_EQ(d.starts.size(), 1u);
  std::optional<DomainId> domain;
  for (const WorkerPlacement& w : d.starts[0].workers) {
    ASSERT_TRUE(fleet.node(w.node).domain);
    if (!domain) domain = fleet.node(w.node).domain;
    EXPECT_EQ(fleet.node(w.node).domain, domain);
  }
  // A second 64-GPU gang takes the other rack; a third finds no domain with room.
  d = Submit(e, 1,
             {[&] {
                JobSpec k = j;
                k.id = 2;
                return k;
              }(),
              [&] {
                JobSpec k = j;
                k.id = 3;
                return k;
              }()});
  EXPECT_TRUE(Started(d, 2));
  EXPECT_FALSE(Started(d, 3));
  EXPECT_EQ(e.pending_reason(3), PendingReason::kResources);  // no free GB200 anywhere
  // 8 GPUs free on each rack: 16 in all, but not 16 in one domain.
  JobSpec small = j;
  small.id = 4;
  small.workers = 4;
  d = Submit(e, 2, {small});
  EXPECT_FALSE(Started(d, 4));
  EXPECT_EQ(e.pending_reason(4), PendingReason::kTopology);
}

TEST(EngineTest, HigherPriorityGoesFirst) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant());
  Submit(e, 0, {Job(1, 1, 8)});
  Decisions d = Submit(e, 1, {Job(2, 1, 8, 0), Job(3, 1, 8, 10)});
  EXPECT_TRUE(Started(d, 3));
  EXPECT_FALSE(Started(d, 2));
}

TEST(EngineTest, AfterOkWaitsAndNeverSatisfiedOnFailure) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant());
  JobSpec b = Job(2, 1, 1);
  b.after_ok = {1};
  JobSpec c = Job(4, 1, 1);
  c.after_ok = {3};
  Decisions d = Submit(e, 0, {Job(1, 1, 1), Job(3, 1, 1)});
  d = Submit(e, 1, {b, c});
  EXPECT_FALSE(Started(d, 2));
  EXPECT_EQ(e.pending_reason(2), PendingReason::kDependency);
  d = e.Step(2, std::vector<Event>{JobFinished{1, true}, JobFinished{3, false}});
  EXPECT_TRUE(Started(d, 2));
  EXPECT_EQ(e.pending_reason(4), PendingReason::kDependencyNeverSatisfied);
}

// 16 GPUs; a running 8-GPU job ends at t=100. A 16-GPU gang then holds a reservation at t=100.
// A short 4-GPU job (ends at 50) backfills; a long one (ends at 500) would delay the gang and
// waits. At t=100 the gang starts on time.
// Ended jobs keep only their final state; it still answers state(), after_ok and duplicate ids.
TEST(EngineTest, EndedJobsAreRememberedByStateOnly) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  Submit(e, 0, {Job(1, 1, 8), Job(2, 1, 8)});
  e.Step(10, std::vector<Event>{JobFinished{1, true}, JobFinished{2, false}});
  EXPECT_EQ(e.state(1), JobState::kCompleted);
  EXPECT_EQ(e.state(2), JobState::kFailed);
  EXPECT_EQ(e.placement(1), nullptr);
  JobSpec after_ok = Job(3, 1, 8);
  after_ok.after_ok = {1};
  JobSpec after_failed = Job(4, 1, 8);
  after_failed.after_ok = {2};
  Decisions d = Submit(e, 20, {after_ok, after_failed, Job(1, 1, 1)});
  EXPECT_TRUE(Started(d, 3));
  EXPECT_EQ(e.pending_reason(4), PendingReason::kDependencyNeverSatisfied);
  ASSERT_EQ(d.rejections.size(), 1u);
  EXPECT_EQ(d.rejections[0].reason, "id: job 1 already exists");
}

// Lab b's 16-GPU head job holds the whole fleet for when b's running job ends; lab a reserved 8
// GPUs and its 8-GPU job bound to that type starts at once all the same: reserved capacity
// belongs to its owner, another tenant's backfill hold does not keep it waiting.
TEST(EngineTest, ReservationOwnerIsNotHeldBackByAnotherTenantsHold) {
  TwoNodes f;
  const AcceleratorTypeId h100 = *f.catalog.FindAccelerator("h100-sxm");
  Engine e(f.fleet, {TenantSpec{"a", {Reservation{h100, 8}}}, TenantSpec{"b"}},
           {.preemption = false, .check_invariants = true});
  JobSpec running = Timed(Job(1, 1, 8), 1000);
  running.tenant = TenantId(1);
  JobSpec head = Timed(Job(2, 2, 8, /*priority=*/10), 1000);
  head.tenant = TenantId(1);
  ASSERT_TRUE(Started(Submit(e, 0, {running}), 1));
  Submit(e, 1, {head});
  EXPECT_EQ(e.pending_reason(2), PendingReason::kResources);
  JobSpec other = Timed(Job(3, 1, 8), 5000);  // another tenant, no reservation: must wait
  other.tenant = TenantId(1);
  JobSpec owner = Timed(Job(4, 1, 8), 5000);
  owner.worker.types.Add(h100);
  Decisions d = Submit(e, 10, {other, owner});
  EXPECT_FALSE(Started(d, 3));
  EXPECT_TRUE(Started(d, 4));
}

TEST(EngineTest, EasyBackfillNeverDelaysTheReservation) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.preemption = false, .check_invariants = true});
  Submit(e, 0, {Timed(Job(1, 1, 8), 100)});
  Decisions d = Submit(e, 1, {Timed(Job(2, 2, 8, 5), 1000), Timed(Job(3, 1, 4), 49), Timed(Job(4, 1, 4), 500)});
  EXPECT_FALSE(Started(d, 2));
  EXPECT_TRUE(Started(d, 3));
  EXPECT_FALSE(Started(d, 4));
  EXPECT_EQ(e.pending_reason(4), PendingReason::kPriority);
  d = e.Step(50, std::vector<Event>{JobFinished{3, true}});
  EXPECT_FALSE(Started(d, 4));
  d = e.Step(100, std::vector<Event>{JobFinished{1, true}});
  EXPECT_TRUE(Started(d, 2));
}

TEST(EngineTest, WithoutReservationsSmallJobsCanStarveTheGang) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.backfill_depth = 0, .preemption = false});
  Submit(e, 0, {Timed(Job(1, 1, 8), 100)});
  Decisions d = Submit(e, 1, {Timed(Job(2, 2, 8, 5), 1000), Timed(Job(4, 1, 4), 500)});
  EXPECT_TRUE(Started(d, 4));  // the long job takes the free GPUs: the gang will wait past t=100
}

TEST(EngineTest, BorrowingLimitCapsTheTenant) {
  TwoNodes f;
  std::vector<TenantSpec> tenants = {TenantSpec{"a", {{*f.catalog.FindAccelerator("h100-sxm"), 4}}, 4},
                                     TenantSpec{"b"}};
  Engine e(f.fleet, tenants);
  JobSpec b = Job(3, 1, 8);
  b.tenant = TenantId(1);
  Decisions d = Submit(e, 0, {Job(1, 1, 8), Job(2, 1, 1), b});
  EXPECT_TRUE(Started(d, 1));  // 4 reserved + 4 borrowed
  EXPECT_FALSE(Started(d, 2));
  EXPECT_EQ(e.pending_reason(2), PendingReason::kQuotaExceeded);
  EXPECT_TRUE(Started(d, 3));  // no limit for b
}

TEST(EngineTest, NodeDownKillsAndRequeuesDrainLetsWorkFinish) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  Decisions d = Submit(e, 0, {Job(1, 1, 8), Job(2, 1, 8)});
  ASSERT_EQ(d.starts.size(), 2u);
  NodeId n1 = e.placement(1)->at(0).node;
  NodeId n2 = e.placement(2)->at(0).node;
  d = e.Step(1,
             std::vector<Event>{NodeHealthChange{n1, NodeHealth::kDown}, NodeHealthChange{n2, NodeHealth::kDrained}});
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(d.kills[0].job, 1u);
  EXPECT_EQ(d.kills[0].reason, KillReason::kNodeDown);
  EXPECT_EQ(e.state(1), JobState::kPending);  // requeued; nowhere to go
  EXPECT_EQ(e.state(2), JobState::kRunning);  // drain lets it run
  d = e.Step(2, std::vector<Event>{JobFinished{2, true}});
  EXPECT_TRUE(d.starts.empty());  // the drained node takes no new work
  d = e.Step(3, std::vector<Event>{NodeHealthChange{n1, NodeHealth::kHealthy}});
  EXPECT_TRUE(Started(d, 1));
}

TEST(EngineTest, TimeLimitKills) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant());
  JobSpec j = Job(1, 1, 1);
  j.time_limit = 60;
  Submit(e, 0, {j});
  EXPECT_TRUE(e.Step(59, {}).kills.empty());
  Decisions d = e.Step(60, {});
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(d.kills[0].reason, KillReason::kTimeLimit);
  EXPECT_EQ(e.state(1), JobState::kFailed);
}

TEST(EngineTest, CancelStopsRunningAndPendingJobs) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant());
  Submit(e, 0, {Job(1, 2, 8), Job(2, 1, 8)});
  Decisions d = e.Step(1, std::vector<Event>{JobCancelled{1}, JobCancelled{2}});
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(e.state(1), JobState::kCancelled);
  EXPECT_EQ(e.state(2), JobState::kCancelled);
  EXPECT_EQ(e.cluster().allocated_milli(), 0);
}

TEST(EngineTest, SharedFractionsFillPartlyUsedDevicesFirst) {
  TwoNodes f;
  for (PlacementPolicy policy : {PlacementPolicy::kFgd, PlacementPolicy::kJoule}) {
    Engine e(f.fleet, OneTenant(), {.check_invariants = true, .shared_policy = policy});
    JobSpec half = Job(1, 1, 1);
    half.worker.milli_per_gpu = 500;
    JobSpec third = Job(2, 1, 1);
    third.worker.milli_per_gpu = 300;
    Decisions d = Submit(e, 0, {half, Job(3, 1, 1), Job(4, 1, 1)});
    ASSERT_TRUE(Started(d, 1));
    const WorkerPlacement first = e.placement(1)->at(0);
    d = Submit(e, 1, {third});
    ASSERT_TRUE(Started(d, 2)) << PolicyName(policy);
    EXPECT_EQ(e.placement(2)->at(0).node, first.node) << PolicyName(policy);
    EXPECT_EQ(e.placement(2)->at(0).devices, first.devices) << PolicyName(policy);
  }
}

TEST(EngineTest, NodeSelectorsRestrictHallsAndNodeTypes) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"t", "", 10 * kWattsPerMw, 1.1, 0.8, 45};
  RackTypeId h100 = *spec.catalog.FindRack("hgx-h100-rack");
  RackTypeId h200 = *spec.catalog.FindRack("hgx-h200-rack");
  spec.halls.push_back(HallSpec{"a", std::nullopt, {RowSpec{"a-r01", std::nullopt, h100, 1, {}, 0}}});
  spec.halls.push_back(
      HallSpec{"b",
               std::nullopt,
               {RowSpec{"b-r01", std::nullopt, h100, 1, {}, 0}, RowSpec{"b-r02", std::nullopt, h200, 1, {}, 0}}});
  Fleet fleet = Fleet::Build(std::move(spec));
  Engine e(fleet, OneTenant(), {.check_invariants = true});
  JobSpec in_b = Job(1, 1, 8);
  in_b.worker.halls = uint64_t{1} << 1;
  JobSpec on_h200 = Job(2, 1, 8);
  on_h200.worker.node_types = uint64_t{1} << fleet.catalog().FindNode("hgx-h200")->value();
  JobSpec nowhere = Job(3, 1, 8);
  nowhere.worker.halls = uint64_t{1} << 5;
  Decisions d = Submit(e, 0, {in_b, on_h200, nowhere});
  ASSERT_TRUE(Started(d, 1) && Started(d, 2));
  EXPECT_EQ(fleet.HallOf(fleet.node(e.placement(1)->at(0).node).rack), HallId(1));
  EXPECT_EQ(fleet.node_type(e.placement(2)->at(0).node).name, "hgx-h200");
  ASSERT_EQ(d.rejections.size(), 1u);
  EXPECT_EQ(d.rejections[0].reason, "worker.halls: names a hall the fleet does not have");
}

// ---- Preemption ----

// Node 0: job 1 (8 GPUs). Node 1: jobs 2 and 3 (4 GPUs each). All priority 0 unless given.
struct Busy {
  TwoNodes f;
  Engine e;
  explicit Busy(EngineConfig config, int32_t p1 = 0, int32_t p2 = 0, int32_t p3 = 0) : e(f.fleet, OneTenant(), config) {
    Submit(e, 0, {Job(1, 1, 8, p1)});
    Submit(e, 0, {Job(2, 1, 4, p2), Job(3, 1, 4, p3)});
  }
};

std::vector<JobId> Killed(const Decisions& d, KillReason reason) {
  std::vector<JobId> ids;
  for (const KillJob& k : d.kills) {
    if (k.reason == reason) ids.push_back(k.job);
  }
  return ids;
}

TEST(PreemptionTest, FewestVictimsThenGraceThenRequeue) {
  Busy b({.preemption_grace = 30, .check_invariants = true});
  Decisions d = Submit(b.e, 10, {Job(9, 1, 8, 5)});
  EXPECT_EQ(Killed(d, KillReason::kPreempted), std::vector<JobId>{1});  // one victim, not two
  EXPECT_EQ(d.kills[0].deadline, 40);
  EXPECT_EQ(b.e.pending_reason(9), PendingReason::kPreempting);
  d = b.e.Step(39, {});
  EXPECT_FALSE(Started(d, 9));  // the victim keeps its GPUs through the grace period
  EXPECT_EQ(b.e.state(1), JobState::kRunning);
  d = b.e.Step(40, {});
  EXPECT_TRUE(Started(d, 9));
  EXPECT_EQ(b.e.state(1), JobState::kPending);  // requeued
}

TEST(PreemptionTest, LowestPriorityGoesFirst) {
  Busy b({.preemption_grace = 0, .check_invariants = true}, /*p1=*/3, /*p2=*/1, /*p3=*/1);
  Decisions d = Submit(b.e, 10, {Job(9, 1, 8, 5)});
  // Jobs 2 and 3 (priority 1) make room together; job 1 (priority 3) is spared.
  EXPECT_EQ(Killed(d, KillReason::kPreempted), (std::vector<JobId>{2, 3}));
  EXPECT_TRUE(Started(d, 9));  // no grace: starts in the same pass
}

TEST(PreemptionTest, SparesVictimsTheJobDoesNotNeed) {
  Busy b({.preemption_grace = 0, .check_invariants = true}, 0, 0, 0);
  // A 4-GPU job needs one victim of 4 GPUs, not the 8-GPU job nor both small ones.
  Decisions d = Submit(b.e, 10, {Job(9, 1, 4, 5)});
  ASSERT_EQ(Killed(d, KillReason::kPreempted).size(), 1u);
  EXPECT_NE(Killed(d, KillReason::kPreempted)[0], 1u);
}

TEST(PreemptionTest, LeastWorkLostSinceCheckpointGoesFirst) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.preemption_grace = 0});
  JobSpec a = Job(1, 1, 8);
  a.checkpoint_interval = 100;  // at t=150 it has lost 50 ms since its checkpoint
  JobSpec b = Job(2, 1, 8);     // no checkpoint: loses all 150 ms
  Submit(e, 0, {a, b});
  Decisions d = Submit(e, 150, {Job(9, 1, 8, 5)});
  EXPECT_EQ(Killed(d, KillReason::kPreempted), std::vector<JobId>{1});
}

TEST(PreemptionTest, EqualPriorityIsNotPreemptedAndGangsDieWhole) {
  TwoNodes f;
  Engine e(f.fleet, OneTenant(), {.preemption_grace = 0, .check_invariants = true});
  Submit(e, 0, {Job(1, 2, 8, 1)});  // one gang over both nodes
  Decisions d = Submit(e, 1, {Job(2, 1, 8, 1)});
  EXPECT_TRUE(d.kills.empty());
  d = Submit(e, 2, {Job(3, 1, 4, 2)});
  EXPECT_EQ(Killed(d, KillReason::kPreempted), std::vector<JobId>{1});
  EXPECT_EQ(e.placement(1), nullptr);  // both workers gone
  EXPECT_TRUE(Started(d, 3));
}

TEST(PreemptionTest, OwnerReclaimsBorrowedCapacity) {
  TwoNodes f;
  AcceleratorTypeId h100 = *f.catalog.FindAccelerator("h100-sxm");
  std::vector<TenantSpec> tenants = {TenantSpec{"owner", {{h100, 8}}}, TenantSpec{"borrower"}};
  Engine e(f.fleet, tenants, {.preemption_grace = 0, .check_invariants = true});
  JobSpec b1 = Job(1, 1, 8), b2 = Job(2, 1, 8);
  b1.tenant = b2.tenant = TenantId(1);
  Submit(e, 0, {b1, b2});                      // the borrower holds all 16 GPUs, 8 of them reserved for the owner
  Decisions d = Submit(e, 1, {Job(3, 1, 8)});  // same priority, within the owner's reservation
  EXPECT_EQ(Killed(d, KillReason::kPreempted).size(), 1u);
  EXPECT_TRUE(Started(d, 3));
  // Beyond its reservation, the owner cannot reclaim.
  d = Submit(e, 2, {Job(4, 1, 8)});
  EXPECT_TRUE(d.kills.empty());
}

// ---- Property test: random fleets and workloads, decisions checked against an independent
// ledger (the obviously-correct reference): no device over 1000 milli, no node over its CPU or
// memory, every start places exactly the gang's workers on nodes of allowed types, and a job
// starts only once.

struct Ledger {
  const Fleet& fleet;
  std::vector<int64_t> device_milli;
  std::vector<Millicores> cpu;
  std::vector<MiB> memory;
  std::map<JobId, std::pair<JobSpec, std::vector<WorkerPlacement>>> running;

  explicit Ledger(const Fleet& f)
      : fleet(f), device_milli(f.accelerator_count(), 0), cpu(f.nodes().size(), 0), memory(f.nodes().size(), 0) {}

  void Apply(const JobSpec& spec, const std::vector<WorkerPlacement>& workers, int sign) {
    for (const WorkerPlacement& w : workers) {
      cpu[w.node.value()] += sign * spec.worker.cpu;
      memory[w.node.value()] += sign * spec.worker.memory;
      for (uint32_t d : w.devices) {
        device_milli[fleet.node(w.node).accelerators.first.value() + d] += sign * spec.worker.milli_per_gpu;
      }
    }
  }
  void Start(const JobSpec& spec, const std::vector<WorkerPlacement>& workers) {
    ASSERT_FALSE(running.count(spec.id)) << "job started twice: " << spec.id;
    ASSERT_EQ(workers.size(), spec.workers) << "partial gang " << spec.id;
    for (const WorkerPlacement& w : workers) {
      ASSERT_EQ(w.devices.size(), spec.worker.gpus);
      const NodeType& t = fleet.node_type(w.node);
      if (spec.worker.gpus > 0) {
        ASSERT_TRUE(t.accelerator && spec.worker.types.Allows(*t.accelerator));
      }
    }
    Apply(spec, workers, +1);
    running[spec.id] = {spec, workers};
    for (uint32_t n = 0; n < fleet.nodes().size(); ++n) {
      ASSERT_LE(cpu[n], fleet.node_type(NodeId(n)).cpu);
      ASSERT_LE(memory[n], fleet.node_type(NodeId(n)).memory);
    }
    for (int64_t m : device_milli) ASSERT_LE(m, kMilliPerGpu);
  }
  void End(JobId id) {
    auto it = running.find(id);
    if (it == running.end()) return;
    Apply(it->second.first, it->second.second, -1);
    running.erase(it);
  }
};

TEST(EnginePropertyTest, RandomWorkloadsNeverDoubleBookAndGangsStayWhole) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    Rng rng(seed);
    Catalog c = Catalog::BuiltIn();
    std::vector<NodeType> types;
    uint32_t nodes = 3 + static_cast<uint32_t>(rng.Uniform(10));
    for (uint32_t i = 0; i < nodes; ++i) {
      const char* accel = rng.Uniform(2) ? "h100-sxm" : "h200";
      types.push_back(GpuNode(c, rng.Uniform(2) ? 8 : 4, 32 + 32 * static_cast<int64_t>(rng.Uniform(3)), 512, accel));
    }
    Fleet fleet = FleetOf(types, 2);
    std::vector<TenantSpec> tenants = {TenantSpec{"a", {}, 12}, TenantSpec{"b"}};
    Engine engine(fleet, tenants,
                  {.backfill_depth = static_cast<uint32_t>(rng.Uniform(3)),
                   .preemption = rng.Uniform(4) != 0,
                   .preemption_grace = static_cast<TimeMs>(rng.Uniform(6)),
                   .check_invariants = true});
    Ledger ledger(fleet);
    std::multimap<TimeMs, JobId> releases;  // preempted jobs hold their resources until then
    std::map<JobId, JobSpec> submitted;
    JobId next = 1;
    for (TimeMs now = 0; now < 200; ++now) {
      std::vector<Event> events;
      for (uint64_t k = rng.Uniform(3); k > 0; --k) {
        JobSpec j;
        j.id = next++;
        j.tenant = TenantId(static_cast<uint32_t>(rng.Uniform(2)));
        j.workers = 1 + static_cast<uint32_t>(rng.Uniform(3));
        uint64_t kind = rng.Uniform(4);
        uint32_t gpus = kind == 0 ? 1 : static_cast<uint32_t>(1 + rng.Uniform(8));
        j.worker = TaskShape{static_cast<Millicores>(1000 * (1 + rng.Uniform(16))), 1024, gpus,
                             kind == 0 ? static_cast<MilliGpu>(100 * (1 + rng.Uniform(9))) : kMilliPerGpu};
        if (kind == 3) j.worker = TaskShape{4000, 1024, 0, 0};
        if (rng.Uniform(4) == 0) j.worker.types.Add(*c.FindAccelerator("h200"));
        j.priority = static_cast<int32_t>(rng.Uniform(3));
        j.runtime_estimate = 5 + static_cast<TimeMs>(rng.Uniform(40));
        if (rng.Uniform(5) == 0 && next > 3) j.after_ok = {next - 2};
        submitted[j.id] = j;
        events.push_back(JobSubmitted{j});
      }
      for (const auto& [id, entry] : ledger.running) {
        if (rng.Uniform(10) == 0) events.push_back(JobFinished{id, rng.Uniform(6) != 0});
      }
      if (rng.Uniform(40) == 0)
        events.push_back(NodeHealthChange{NodeId(static_cast<uint32_t>(rng.Uniform(nodes))), NodeHealth::kDown});
      if (rng.Uniform(20) == 0)
        events.push_back(NodeHealthChange{NodeId(static_cast<uint32_t>(rng.Uniform(nodes))), NodeHealth::kHealthy});
      for (const Event& ev : events) {
        if (const auto* f = std::get_if<JobFinished>(&ev)) ledger.End(f->job);
      }
      while (!releases.empty() && releases.begin()->first <= now) {
        ledger.End(releases.begin()->second);
        releases.erase(releases.begin());
      }
      Decisions d = engine.Step(now, events);
      for (const KillJob& k : d.kills) {
        if (k.reason == KillReason::kPreempted && k.deadline > now) {
          releases.insert({k.deadline, k.job});
        } else {
          ledger.End(k.job);
        }
      }
      for (const StartJob& s : d.starts) {
        ledger.Start(submitted.at(s.job), s.workers);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
    EXPECT_GT(next, 100u);
  }
}

TEST(EnginePropertyTest, SameEventsSameDecisions) {
  TwoNodes f;
  auto run = [&] {
    Engine e(f.fleet, OneTenant());
    std::vector<std::vector<JobId>> starts;
    for (TimeMs t = 0; t < 30; ++t) {
      Decisions d = Submit(e, t, {Timed(Job(2 * t + 1, 1, 1 + t % 8), 7), Timed(Job(2 * t + 2, 2, 2), 3)});
      std::vector<Event> done;
      starts.emplace_back();
      for (const StartJob& s : d.starts) starts.back().push_back(s.job);
      if (t >= 5) e.Step(t, std::vector<Event>{JobFinished{static_cast<JobId>(2 * (t - 5) + 1), true}});
    }
    return starts;
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace joule

namespace joule {
namespace {

// Reservations honoured: 8-GPU nodes, node-sized jobs that finish exactly at their estimates,
// a steady stream of them. A high-priority gang of k nodes arrives; from what runs at that
// moment, the latest it can need to wait is T* = the end of the (k - free)-th earliest-ending
// running job (or now, with k nodes free). EASY backfill must start it by T*, whatever arrives
// afterwards.
TEST(EnginePropertyTest, LargeGangStartsByItsReservationTime) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    Catalog c = Catalog::BuiltIn();
    const uint32_t nodes = 4 + static_cast<uint32_t>(rng.Uniform(8));
    Fleet fleet = FleetOf(std::vector<NodeType>(nodes, GpuNode(c, 8, 96, 512)), 4);
    Engine e(fleet, OneTenant(), {.backfill_depth = 1, .preemption = false, .check_invariants = true});
    std::map<JobId, TimeMs> estimate;  // every small job's runtime, which is also its estimate
    std::map<JobId, TimeMs> ends;      // running small jobs -> end time
    JobId next = 1;
    const JobId gang = 1'000'000;
    const uint32_t k = 1 + static_cast<uint32_t>(rng.Uniform(nodes));
    const TimeMs gang_at = 50 + static_cast<TimeMs>(rng.Uniform(50));
    std::optional<TimeMs> deadline, started;
    for (TimeMs now = 0; now < 5000 && !started; ++now) {
      std::vector<Event> events;
      for (auto it = ends.begin(); it != ends.end();) {
        if (it->second == now) {
          events.push_back(JobFinished{it->first, true});
          it = ends.erase(it);
        } else {
          ++it;
        }
      }
      if (now % 3 == 0) {
        estimate[next] = 5 + static_cast<TimeMs>(rng.Uniform(60));
        events.push_back(JobSubmitted{Timed(Job(next, 1, 8), estimate[next])});
        ++next;
      }
      if (now == gang_at) {
        std::vector<TimeMs> running;
        for (const auto& [id, end] : ends) {
          if (end > now) running.push_back(end);
        }
        std::sort(running.begin(), running.end());
        const uint32_t free = nodes - static_cast<uint32_t>(running.size());
        deadline = free >= k ? now : running[k - free - 1];
        events.push_back(JobSubmitted{Timed(Job(gang, k, 8, 10), 1000)});
      }
      Decisions d = e.Step(now, events);
      for (const StartJob& s : d.starts) {
        if (s.job == gang) {
          started = now;
        } else {
          ends[s.job] = now + estimate.at(s.job);
        }
      }
    }
    ASSERT_TRUE(deadline.has_value());
    ASSERT_TRUE(started.has_value()) << "seed " << seed;
    EXPECT_LE(*started, *deadline) << "seed " << seed << ", gang of " << k << " on " << nodes << " nodes";
  }
}

// Reclaim happens: the owner reserved R GPUs; a borrower fills the fleet with node-sized jobs. With
// no grace, an owner's job that fits in what the owner has left of its reservation starts in the
// very pass it is submitted.
TEST(EnginePropertyTest, OwnerJobsWithinReservationStartAtOnce) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    Catalog c = Catalog::BuiltIn();
    const uint32_t nodes = 3 + static_cast<uint32_t>(rng.Uniform(6));
    Fleet fleet = FleetOf(std::vector<NodeType>(nodes, GpuNode(c, 8, 96, 512)), 4);
    const uint32_t reserved_nodes = 1 + static_cast<uint32_t>(rng.Uniform(nodes - 1));
    std::vector<TenantSpec> tenants = {TenantSpec{"owner", {{*c.FindAccelerator("h100-sxm"), 8 * reserved_nodes}}},
                                       TenantSpec{"borrower"}};
    Engine e(fleet, tenants, {.preemption_grace = 0, .check_invariants = true});
    JobId next = 1;
    uint32_t owner_nodes = 0;
    for (TimeMs now = 0; now < 300; ++now) {
      std::vector<Event> events;
      JobSpec b = Job(next++, 1, 8, static_cast<int32_t>(rng.Uniform(3)));
      b.tenant = TenantId(1);
      events.push_back(JobSubmitted{b});
      const bool owner_submits = rng.Uniform(10) == 0 && owner_nodes < reserved_nodes;
      const JobId owner_job = next++;
      if (owner_submits) {
        JobSpec o = Job(owner_job, 1, 8);
        o.tenant = TenantId(0);
        events.push_back(JobSubmitted{o});
      }
      Decisions d = e.Step(now, events);
      if (owner_submits) {
        ASSERT_EQ(e.state(owner_job), JobState::kRunning) << "seed " << seed << " at " << now;
        ++owner_nodes;
      }
    }
  }
}

}  // namespace
}  // namespace joule
