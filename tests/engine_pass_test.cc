// The quiet-pass skip: an engine that skips the passes it judges would decide nothing must decide
// exactly what an engine running every pass decides, on random workloads that exercise what a pass
// depends on (fair share, backfill holds, preemption grace, time limits, restart backoff, failures,
// low-carbon windows), with many steps that bring no event.
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "base/rng.h"
#include "sched/engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::FleetOf;
using testing::GpuNode;

void Put(std::ostream& o, const std::vector<WorkerPlacement>& places) {
  for (const WorkerPlacement& p : places) {
    o << p.node.value() << '[';
    for (uint32_t d : p.devices) o << d << ',';
    o << ']';
  }
}

// Everything a step decided but the pending reasons (a skipped pass does not restate them).
std::string Describe(const Decisions& d) {
  std::ostringstream o;
  for (const StartJob& s : d.starts) {
    o << "start " << s.job << " @" << s.power_limit_permille << ' ';
    Put(o, s.workers);
    Put(o, s.spares);
    o << '\n';
  }
  for (const RestartJob& r : d.restarts) {
    o << "restart " << r.job << ' ' << r.replaced << ' ';
    Put(o, r.workers);
    o << '\n';
  }
  for (const SparesAdded& s : d.spares_added) {
    o << "spares " << s.job << ' ';
    Put(o, s.spares);
    o << '\n';
  }
  for (const SparePoolChange& c : d.spare_pool) o << "pool " << c.tenant.value() << ' ' << c.node.value() << c.added;
  for (const KillJob& k : d.kills)
    o << "kill " << k.job << ' ' << static_cast<int>(k.reason) << ' ' << k.deadline << '\n';
  for (const Rejection& r : d.rejections) o << "reject " << r.job << ' ' << r.reason << '\n';
  for (const PowerLimit& p : d.power_limits) o << "limit " << p.job << ' ' << p.permille << '\n';
  for (const Requeue& r : d.requeues) o << "requeue " << r.job << ' ' << r.eligible_at << '\n';
  for (const JobEnded& e : d.ended)
    o << "ended " << e.job << ' ' << static_cast<int>(e.state) << ' ' << e.reason << '\n';
  for (const HealthTransition& h : d.health) o << "health " << h.node.value() << ' ' << static_cast<int>(h.to) << '\n';
  return o.str();
}

TEST(QuietPassTest, SkippingDecidesExactlyWhatEveryPassDecides) {
  uint64_t skipped = 0, steps = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    Rng rng(seed);
    Catalog c = Catalog::BuiltIn();
    std::vector<NodeType> types;
    const uint32_t nodes = 4 + static_cast<uint32_t>(rng.Uniform(8));
    for (uint32_t i = 0; i < nodes; ++i) {
      types.push_back(GpuNode(c, rng.Uniform(2) ? 8 : 4, 64, 512, rng.Uniform(2) ? "h100-sxm" : "h200"));
    }
    Fleet fleet = FleetOf(types, 2);
    const AcceleratorTypeId h100 = *c.FindAccelerator("h100-sxm");
    std::vector<TenantSpec> tenants = {TenantSpec{"a", {Reservation{h100, 8}}, 8}, TenantSpec{"b", {}, 16},
                                       TenantSpec{"c"}};
    tenants[2].weight = 2;
    const QueueOrder orders[] = {QueueOrder::kPriorityFairShareAge, QueueOrder::kFifo, QueueOrder::kShortestFirst};
    EngineConfig config{.order = orders[seed % 3],
                        .backfill_depth = static_cast<uint32_t>(rng.Uniform(3)),
                        .fair_share_half_life = 50,
                        .preemption = rng.Uniform(4) != 0,
                        .preemption_grace = static_cast<TimeMs>(rng.Uniform(8)),
                        .check_invariants = true};
    Engine skipping(fleet, tenants, config);
    config.skip_quiet_passes = false;
    Engine every(fleet, tenants, config);
    std::map<JobId, bool> running;
    JobId next = 1;
    TimeMs now = 0;
    for (int step = 0; step < 400; ++step) {
      now += 1 + static_cast<TimeMs>(rng.Uniform(4));
      std::vector<Event> events;
      if (step == 0) events.push_back(GridForecast{0, 40, {90, 30, 60, 20, 80, 50, 70, 40, 90, 10, 60, 30}});
      // One step in three brings events: the others are the ticks a quiet pass may skip.
      if (rng.Uniform(3) == 0) {
        for (uint64_t k = 1 + rng.Uniform(3); k > 0; --k) {
          JobSpec j;
          j.id = next++;
          j.tenant = TenantId(static_cast<uint32_t>(rng.Uniform(3)));
          j.workers = 1 + static_cast<uint32_t>(rng.Uniform(3));
          j.worker = TaskShape{4000, 1024, static_cast<uint32_t>(1 + rng.Uniform(8)), kMilliPerGpu};
          if (rng.Uniform(3) == 0) j.worker.types.Add(h100);
          j.priority = static_cast<int32_t>(rng.Uniform(3));
          if (rng.Uniform(4) != 0) j.runtime_estimate = 5 + static_cast<TimeMs>(rng.Uniform(60));
          if (rng.Uniform(4) == 0) j.time_limit = 10 + static_cast<TimeMs>(rng.Uniform(80));
          if (rng.Uniform(3) == 0) {
            j.max_restarts = 2;
            j.restart_backoff = 1 + static_cast<TimeMs>(rng.Uniform(20));
          }
          if (rng.Uniform(8) == 0 && j.runtime_estimate) {
            j.flexible = true;
            j.deadline = now + *j.runtime_estimate + 100 + static_cast<TimeMs>(rng.Uniform(300));
          }
          events.push_back(JobSubmitted{j});
        }
        for (const auto& [id, live] : running) {
          if (live && rng.Uniform(6) == 0) events.push_back(JobFinished{id, rng.Uniform(4) != 0});
        }
        if (rng.Uniform(10) == 0) {
          events.push_back(NodeHealthChange{NodeId(static_cast<uint32_t>(rng.Uniform(nodes))),
                                            rng.Uniform(2) ? NodeHealth::kDown : NodeHealth::kHealthy});
        }
      }
      const Decisions a = skipping.Step(now, events);
      const Decisions b = every.Step(now, events);
      ASSERT_EQ(Describe(a), Describe(b)) << "seed " << seed << ", step " << step << " at " << now;
      for (const StartJob& s : b.starts) running[s.job] = true;
      for (const RestartJob& r : b.restarts) running[r.job] = true;
      for (const KillJob& k : b.kills) running[k.job] = false;
      for (const JobEnded& e : b.ended) running.erase(e.job);
      for (const Requeue& r : b.requeues) running[r.job] = false;
      for (const Event& e : events) {
        if (const auto* f = std::get_if<JobFinished>(&e)) running[f->job] = false;
      }
    }
    ASSERT_EQ(every.passes(), 400u);
    skipped += every.passes() - skipping.passes();
    steps += every.passes();
  }
  // The skip is real: of the two steps in three without events, about half are skipped (the
  // others follow a decision or come when a hold, a backoff or a window changes what may start).
  EXPECT_GT(skipped, steps / 5) << skipped << " of " << steps << " passes skipped";
}

// A server's backstop tick over a queue that cannot start runs no pass; an event brings one back.
TEST(QuietPassTest, TicksOverABlockedQueueRunNoPass) {
  Catalog c = Catalog::BuiltIn();
  Fleet fleet = FleetOf({GpuNode(c, 8, 96, 512)});
  Engine engine(fleet, {TenantSpec{"t"}});
  std::vector<Event> jobs;
  for (JobId id = 1; id <= 50; ++id) {
    JobSpec j;
    j.id = id;
    j.workers = 1;
    j.worker = TaskShape{1000, 1024, 8, kMilliPerGpu};
    jobs.push_back(JobSubmitted{j});
  }
  EXPECT_EQ(engine.Step(1, jobs).starts.size(), 1u);
  engine.Step(2, {});  // the start's step is followed by one more pass
  const uint64_t passes = engine.passes();
  for (TimeMs t = 3; t < 1000; ++t) EXPECT_TRUE(Describe(engine.Step(t, {})).empty());
  EXPECT_EQ(engine.passes(), passes);
  const std::vector<Event> end = {JobFinished{1, true}};
  const Decisions d = engine.Step(1000, end);
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].job, 2u);
  EXPECT_EQ(engine.passes(), passes + 1);
}

}  // namespace
}  // namespace joule
