// The engine under failures: the node health state machine, Slurm's drain and resume, requeue
// under a failure policy, hot spares, and the property that no job is ever lost.
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "base/rng.h"
#include "sched/engine.h"
#include "tests/test_engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::FleetOf;
using testing::GpuNode;
using testing::OneTenant;
using testing::Started;
using testing::Submit;

JobSpec Job(JobId id, uint32_t workers, uint32_t gpus, int32_t priority = 0) {
  return testing::WholeJob(id, workers, gpus, priority);
}

// Six 8-GPU nodes, two to a rack.
struct SixNodes {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = FleetOf(std::vector<NodeType>(6, GpuNode(catalog, 8, 96, 512)), 2);
};

Decisions Health(Engine& e, TimeMs now, NodeId node, NodeHealth to, Actor actor = Actor::kOperator,
                 std::string reason = "test") {
  return e.Step(now, std::vector<Event>{NodeHealthChange{node, to, actor, std::move(reason)}});
}

TEST(NodeHealthTest, StateMachineRecordsEveryTransitionAndRefusesTheRest) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  const NodeId n(0);
  Decisions d = e.Step(5, std::vector<Event>{NodeHealthChange{n, NodeHealth::kSuspect, Actor::kAgent, "XID 79", 3}});
  ASSERT_EQ(d.health.size(), 1u);
  const HealthTransition& t = d.health[0];
  EXPECT_EQ(t.from, NodeHealth::kHealthy);
  EXPECT_EQ(t.to, NodeHealth::kSuspect);
  EXPECT_EQ(t.actor, Actor::kAgent);
  EXPECT_EQ(t.reason, "XID 79");
  EXPECT_EQ(t.at, 5);
  EXPECT_EQ(t.device, 3u);
  EXPECT_FALSE(e.cluster().schedulable(n));
  for (NodeHealth to : {NodeHealth::kDrained, NodeHealth::kRepairing, NodeHealth::kHealthy, NodeHealth::kDown,
                        NodeHealth::kRepairing, NodeHealth::kHealthy}) {
    d = Health(e, 6, n, to, Actor::kPolicy);
    ASSERT_EQ(d.health.size(), 1u) << NodeHealthName(to);
    EXPECT_EQ(d.health[0].to, to);
    EXPECT_EQ(e.health(n), to);
    EXPECT_EQ(e.cluster().schedulable(n), to == NodeHealth::kHealthy);
  }
  // Asking for the state it is in does nothing; suspect only from healthy; no drain of a down node.
  EXPECT_TRUE(Health(e, 7, n, NodeHealth::kHealthy).health.empty());
  Health(e, 8, n, NodeHealth::kDrained);
  d = Health(e, 9, n, NodeHealth::kSuspect);
  ASSERT_EQ(d.health_refused.size(), 1u);
  EXPECT_NE(d.health_refused[0].why.find("only a healthy node can become suspect"), std::string::npos);
  Health(e, 10, n, NodeHealth::kDown);
  d = Health(e, 11, n, NodeHealth::kDrained);
  ASSERT_EQ(d.health_refused.size(), 1u);
  EXPECT_NE(d.health_refused[0].why.find("is down"), std::string::npos);
  EXPECT_EQ(e.health(n), NodeHealth::kDown);
  d = Health(e, 12, NodeId(99), NodeHealth::kDown);
  ASSERT_EQ(d.health_refused.size(), 1u);
  EXPECT_NE(d.health_refused[0].why.find("the fleet has 6 nodes"), std::string::npos);
}

TEST(NodeHealthTest, DrainLetsWorkFinishResumeTakesWorkAgain) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  Submit(e, 0, {Job(1, 6, 8)});
  const NodeId n = e.placement(1)->at(0).node;
  Decisions d = Health(e, 1, n, NodeHealth::kDrained);
  EXPECT_TRUE(d.kills.empty());
  EXPECT_EQ(e.state(1), JobState::kRunning);  // draining: the work runs on
  EXPECT_EQ(e.jobs_on(n).size(), 1u);
  d = e.Step(2, std::vector<Event>{JobFinished{1, true}});
  ASSERT_EQ(d.ended.size(), 1u);
  EXPECT_EQ(d.ended[0].reason, "completed");
  EXPECT_TRUE(e.jobs_on(n).empty());  // drained
  d = Submit(e, 3, {Job(2, 6, 8)});
  EXPECT_TRUE(d.starts.empty());  // five healthy nodes for six workers
  EXPECT_EQ(e.pending_reason(2), PendingReason::kResources);
  d = Health(e, 4, n, NodeHealth::kHealthy);
  ASSERT_EQ(d.starts.size(), 1u);
}

TEST(NodeHealthTest, SuspectKeepsItsWorkRepairingAndDownKillIt) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  Submit(e, 0, {Job(1, 1, 8), Job(2, 1, 8)});
  const NodeId a = e.placement(1)->at(0).node, b = e.placement(2)->at(0).node;
  EXPECT_TRUE(Health(e, 1, a, NodeHealth::kSuspect).kills.empty());
  EXPECT_EQ(e.state(1), JobState::kRunning);
  Decisions d = Health(e, 2, a, NodeHealth::kRepairing);
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(d.kills[0].reason, KillReason::kNodeDown);
  ASSERT_EQ(d.requeues.size(), 1u);
  EXPECT_NE(d.requeues[0].reason.find("repairing: test"), std::string::npos);
  EXPECT_TRUE(Started(d, 1));  // requeued, and room elsewhere
  d = Health(e, 3, b, NodeHealth::kDown);
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(d.kills[0].job, 2u);
}

TEST(FailurePolicyTest, NodeFailuresRequeueUntilTheLimitThenFailWithAReason) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  JobSpec j = Job(1, 1, 8);
  j.max_restarts = 2;
  j.restart_backoff = 100;
  Submit(e, 0, {j});
  TimeMs now = 1;
  for (uint32_t restart = 1; restart <= 2; ++restart) {
    Decisions d = Health(e, now, e.placement(1)->at(0).node, NodeHealth::kDown);
    ASSERT_EQ(d.requeues.size(), 1u);
    EXPECT_EQ(d.requeues[0].restarts, restart);
    const TimeMs backoff = restart == 1 ? 100 : 200;  // doubled at each restart
    EXPECT_EQ(d.requeues[0].eligible_at, now + backoff);
    EXPECT_TRUE(d.starts.empty());
    EXPECT_EQ(e.pending_reason(1), PendingReason::kBeginTime);
    EXPECT_TRUE(e.Step(now + backoff - 1, {}).starts.empty());
    EXPECT_TRUE(Started(e.Step(now + backoff, {}), 1));
    now += backoff + 1;
  }
  Decisions d = Health(e, now, e.placement(1)->at(0).node, NodeHealth::kDown);
  ASSERT_EQ(d.ended.size(), 1u);
  EXPECT_EQ(d.ended[0].state, JobState::kFailed);
  EXPECT_NE(d.ended[0].reason.find("2 restarts allowed, all used"), std::string::npos);
  EXPECT_EQ(e.state(1), JobState::kFailed);
}

TEST(FailurePolicyTest, OwnFailureIsFinalUnlessRestartsAreAllowed) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  JobSpec plain = Job(1, 1, 8);
  JobSpec retried = Job(2, 1, 8);
  retried.max_restarts = 1;
  Submit(e, 0, {plain, retried});
  Decisions d = e.Step(1, std::vector<Event>{JobFinished{1, false}, JobFinished{2, false}});
  EXPECT_EQ(e.state(1), JobState::kFailed);
  ASSERT_EQ(d.requeues.size(), 1u);
  EXPECT_EQ(d.requeues[0].job, 2u);
  EXPECT_TRUE(Started(d, 2));
  d = e.Step(2, std::vector<Event>{JobFinished{2, false}});
  ASSERT_EQ(d.ended.size(), 1u);
  EXPECT_EQ(d.ended[0].reason, "job failed: 1 restarts allowed, all used");
}

TEST(HotSparesTest, AFailedWorkerMovesToTheNearestSpareAndTheJobRunsOn) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  JobSpec j = Job(1, 3, 8);
  j.spare_nodes = 2;
  Decisions d = Submit(e, 0, {j});
  ASSERT_EQ(d.starts.size(), 1u);
  ASSERT_EQ(d.starts[0].workers.size(), 3u);
  ASSERT_EQ(d.starts[0].spares.size(), 2u);
  const std::vector<WorkerPlacement> workers = d.starts[0].workers, spares = d.starts[0].spares;
  // A worker whose rack holds a spare: that spare must replace it, not the other.
  size_t rank = 0, spare = 0;
  bool found = false;
  for (size_t r = 0; r < workers.size() && !found; ++r) {
    for (size_t s = 0; s < spares.size() && !found; ++s) {
      if (f.fleet.node(workers[r].node).rack == f.fleet.node(spares[s].node).rack) {
        rank = r, spare = s, found = true;
      }
    }
  }
  ASSERT_TRUE(found);
  d = Health(e, 1, workers[rank].node, NodeHealth::kDown, Actor::kAgent);
  EXPECT_TRUE(d.kills.empty());
  EXPECT_TRUE(d.requeues.empty());
  ASSERT_EQ(d.restarts.size(), 1u);
  EXPECT_EQ(d.restarts[0].replaced, 1u);
  for (size_t r = 0; r < workers.size(); ++r) {
    EXPECT_EQ(d.restarts[0].workers[r].node, r == rank ? spares[spare].node : workers[r].node);
  }
  ASSERT_EQ(d.restarts[0].spares.size(), 1u);
  EXPECT_EQ(d.restarts[0].spares[0].node, spares[1 - spare].node);
  EXPECT_EQ(e.state(1), JobState::kRunning);
  // The used spare is replaced from what is free: the sixth node, the only one the job did not hold.
  std::set<uint32_t> held;
  for (const auto& p : workers) held.insert(p.node.value());
  for (const auto& p : spares) held.insert(p.node.value());
  ASSERT_EQ(d.spares_added.size(), 1u);
  ASSERT_EQ(d.spares_added[0].spares.size(), 1u);
  const NodeId sixth = d.spares_added[0].spares[0].node;
  EXPECT_FALSE(held.count(sixth.value()));
  EXPECT_EQ(e.spares(1)->size(), 2u);
  // A spare's node fails: the job loses the spare, not its work; nothing healthy is left to refill.
  d = Health(e, 2, spares[1 - spare].node, NodeHealth::kDown);
  EXPECT_TRUE(d.kills.empty() && d.restarts.empty() && d.spares_added.empty());
  ASSERT_EQ(e.spares(1)->size(), 1u);
  // A worker fails: it moves to the last spare.
  const std::vector<WorkerPlacement> now_on = *e.placement(1);
  d = Health(e, 3, now_on[(rank + 1) % 3].node, NodeHealth::kDown);
  ASSERT_EQ(d.restarts.size(), 1u);
  EXPECT_EQ(d.restarts[0].workers[(rank + 1) % 3].node, sixth);
  // No spare left: back to the queue, with three restarts counted.
  d = Health(e, 4, now_on[(rank + 2) % 3].node, NodeHealth::kDown);
  ASSERT_EQ(d.kills.size(), 1u);
  ASSERT_EQ(d.requeues.size(), 1u);
  EXPECT_EQ(d.requeues[0].restarts, 3u);
  EXPECT_TRUE(d.starts.empty());  // 2 healthy nodes, the gang needs 5 places
}

// A tenant's pool: one whole node held idle from the first step; a job of the tenant without spares
// of its own moves onto it when a worker's node fails; the pool refills from what is free; a pool
// node that fails leaves the pool.
TEST(HotSparesTest, ATenantsPoolCoversItsJobsAndRefills) {
  SixNodes f;
  TenantSpec tenant{"t"};
  tenant.spare_nodes = {{*f.catalog.FindAccelerator("h100-sxm"), 1}};
  Engine e(f.fleet, {tenant}, {.check_invariants = true});
  Decisions d = Submit(e, 0, {Job(1, 3, 8)});
  ASSERT_EQ(d.starts.size(), 1u);
  ASSERT_EQ(d.spare_pool.size(), 1u);
  EXPECT_TRUE(d.spare_pool[0].added);
  const NodeId pooled = d.spare_pool[0].node;
  const NodeId failed = d.starts[0].workers[1].node;
  d = Health(e, 1, failed, NodeHealth::kDown);
  EXPECT_TRUE(d.kills.empty());
  ASSERT_EQ(d.restarts.size(), 1u);
  EXPECT_EQ(d.restarts[0].workers[1].node, pooled);
  ASSERT_EQ(d.spare_pool.size(), 2u);  // taken, then a free node joins the pool
  EXPECT_FALSE(d.spare_pool[0].added);
  EXPECT_TRUE(d.spare_pool[1].added);
  const NodeId refill = d.spare_pool[1].node;
  EXPECT_NE(refill, failed);
  // Only two healthy free nodes were left: a job of two whole nodes no longer fits beside the pool.
  d = Submit(e, 2, {Job(2, 2, 8)});
  EXPECT_TRUE(d.starts.empty());
  d = Health(e, 3, refill, NodeHealth::kDown);
  ASSERT_GE(d.spare_pool.size(), 1u);
  EXPECT_FALSE(d.spare_pool[0].added);
  EXPECT_EQ(d.spare_pool[0].node, refill);
}

TEST(HotSparesTest, SparesCountAgainstTheGangAndAreOnlyForWholeAccelerators) {
  SixNodes f;
  Engine e(f.fleet, OneTenant(), {.check_invariants = true});
  JobSpec too_big = Job(1, 5, 8);
  too_big.spare_nodes = 2;
  JobSpec shared = Job(2, 1, 1);
  shared.worker.milli_per_gpu = 500;
  shared.spare_nodes = 1;
  Decisions d = Submit(e, 0, {too_big, shared});
  ASSERT_EQ(d.rejections.size(), 2u);
  EXPECT_NE(d.rejections[0].reason.find("needs 56 accelerators"), std::string::npos);
  EXPECT_NE(d.rejections[1].reason.find("spare_nodes"), std::string::npos);
}

// Random submissions (of three priorities, so preemption too), completions, own failures,
// cancellations and health changes of every kind:
// every accepted job gets exactly one end, with a reason; a failed job used all its restarts
// (or had none allowed for its own failure); no job ends twice or vanishes. Half the seeds give
// the tenant a spare pool; the engine's invariant check (capacity conserved, pools included) runs
// after every step.
TEST(FailurePropertyTest, NoJobIsEverLost) {
  uint64_t preempted = 0, on_spares = 0, requeued = 0, from_pool = 0, refused = 0;  // what the seeds exercised
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SixNodes f;
    TenantSpec tenant{"t"};
    if (seed % 2 == 0) tenant.spare_nodes = {{*f.catalog.FindAccelerator("h100-sxm"), 1}};  // a pool too
    Engine e(f.fleet, {tenant}, {.preemption_grace = 3, .check_invariants = true});
    Rng rng(seed);
    std::map<JobId, JobSpec> accepted;
    std::map<JobId, uint32_t> restarts;
    std::map<JobId, JobEnded> ended;
    std::set<JobId> running;
    JobId next = 1;
    auto record = [&](const Decisions& d) {
      for (const Rejection& r : d.rejections) accepted.erase(r.job);
      for (const Requeue& r : d.requeues) {  // before starts: a requeued job may start again in the same step
        restarts[r.job] = r.restarts;
        running.erase(r.job);
      }
      for (const StartJob& s : d.starts) running.insert(s.job);
      for (const RestartJob& r : d.restarts) restarts[r.job]++;
      for (const KillJob& k : d.kills) preempted += k.reason == KillReason::kPreempted;
      on_spares += d.restarts.size();
      requeued += d.requeues.size();
      for (const SparePoolChange& c : d.spare_pool) from_pool += !c.added;
      refused += d.health_refused.size();
      for (const JobEnded& x : d.ended) {
        ASSERT_TRUE(ended.emplace(x.job, x).second) << "job " << x.job << " ended twice";
        EXPECT_FALSE(x.reason.empty());
        running.erase(x.job);
      }
    };
    for (TimeMs now = 1; now < 400; ++now) {
      std::vector<Event> events;
      if (rng.Uniform(3) == 0) {
        JobSpec j = Job(next++, 1 + static_cast<uint32_t>(rng.Uniform(3)), 8, static_cast<int32_t>(rng.Uniform(3)));
        if (rng.Uniform(2) == 0) j.max_restarts = static_cast<uint32_t>(rng.Uniform(3));
        if (rng.Uniform(3) == 0) j.spare_nodes = static_cast<uint32_t>(rng.Uniform(2));
        if (rng.Uniform(3) == 0) j.restart_backoff = 1 + static_cast<TimeMs>(rng.Uniform(5));
        accepted[j.id] = j;
        events.push_back(JobSubmitted{j});
      }
      for (JobId id : running) {
        if (rng.Uniform(8) == 0) events.push_back(JobFinished{id, rng.Uniform(4) != 0});
      }
      if (rng.Uniform(30) == 0 && next > 1) events.push_back(JobCancelled{1 + rng.Uniform(next - 1)});
      if (rng.Uniform(4) == 0) {
        const NodeId n(static_cast<uint32_t>(rng.Uniform(6)));
        const auto to = static_cast<NodeHealth>(rng.Uniform(5));
        events.push_back(NodeHealthChange{n, to, Actor::kPolicy, "random"});
      }
      Decisions d = e.Step(now, events);
      record(d);
    }
    // Heal every node, then let everything run out.
    std::vector<Event> heal;
    for (uint32_t n = 0; n < 6; ++n) heal.push_back(NodeHealthChange{NodeId(n), NodeHealth::kHealthy});
    record(e.Step(400, heal));
    for (TimeMs now = 401; now < 2000 && ended.size() < accepted.size(); ++now) {
      std::vector<Event> events;
      events.reserve(running.size());
      for (JobId id : running) events.push_back(JobFinished{id, true});
      record(e.Step(now, events));
    }
    for (const auto& [id, spec] : accepted) {
      EXPECT_TRUE(ended.count(id)) << "seed " << seed << ": job " << id << " never ended, "
                                   << JobStateName(*e.state(id)) << " " << PendingReasonName(e.pending_reason(id));
    }
    ASSERT_EQ(ended.size(), accepted.size()) << "seed " << seed;
    for (const auto& [id, x] : ended) {
      ASSERT_TRUE(accepted.count(id));
      EXPECT_EQ(e.state(id), x.state);
      if (x.state == JobState::kFailed && x.reason.find("restarts allowed") != std::string::npos) {
        EXPECT_EQ(restarts[id], *accepted[id].max_restarts) << "job " << id;
      }
      if (x.state == JobState::kCompleted) {
        EXPECT_EQ(x.reason, "completed");
      }
    }
  }
  EXPECT_GT(preempted, 0u);
  EXPECT_GT(on_spares, 0u);
  EXPECT_GT(requeued, 0u);
  EXPECT_GT(from_pool, 0u);
  EXPECT_GT(refused, 0u);
}

}  // namespace
}  // namespace joule
