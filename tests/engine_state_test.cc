// The engine's state saved, encoded, decoded and restored into a fresh engine: from then on the
// restored engine decides exactly what the engine that never stopped decides, step for step, over
// a random campus life (submits of every kind, ends, failures, cancels, drains, quota changes, a
// grid forecast, power budgets tight enough to cap, spare pools). The reference is the engine
// itself, uninterrupted: no expected result is written by hand.
#include <map>
#include <memory>
#include <set>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include "base/rng.h"
#include "io/engine_state_json.h"
#include "io/scenario.h"
#include "io/state_bytes.h"
#include "sched/engine.h"

namespace joule {
namespace {

std::string Places(const std::vector<WorkerPlacement>& places) {
  std::string out;
  for (const WorkerPlacement& p : places) out += fmt::format("{}:{} ", p.node.value(), fmt::join(p.devices, ","));
  return out;
}

// Every field of the decisions, in their order.
std::string Render(const Decisions& d) {
  std::string out;
  for (const StartJob& s : d.starts)
    out += fmt::format("start {} {} {} | {}\n", s.job, Places(s.workers), s.power_limit_permille, Places(s.spares));
  for (const RestartJob& r : d.restarts)
    out += fmt::format("restart {} {} {} {} | {}\n", r.job, Places(r.workers), r.replaced, r.power_limit_permille,
                       Places(r.spares));
  for (const SparesAdded& s : d.spares_added) out += fmt::format("spares {} {}\n", s.job, Places(s.spares));
  for (const SparePoolChange& p : d.spare_pool)
    out += fmt::format("pool {} {} {}\n", p.tenant.value(), p.node.value(), p.added);
  for (const KillJob& k : d.kills) out += fmt::format("kill {} {} {}\n", k.job, static_cast<int>(k.reason), k.deadline);
  for (const PendingChange& p : d.pending) out += fmt::format("pending {} {}\n", p.job, static_cast<int>(p.reason));
  for (const Rejection& r : d.rejections) out += fmt::format("reject {} {}\n", r.job, r.reason);
  for (const PowerLimit& p : d.power_limits) out += fmt::format("limit {} {}\n", p.job, p.permille);
  for (const Requeue& r : d.requeues)
    out += fmt::format("requeue {} {} {} {}\n", r.job, r.restarts, r.eligible_at, r.reason);
  for (const JobEnded& e : d.ended) out += fmt::format("end {} {} {}\n", e.job, static_cast<int>(e.state), e.reason);
  for (const HealthTransition& h : d.health)
    out +=
        fmt::format("health {} {} {} {}\n", h.node.value(), static_cast<int>(h.from), static_cast<int>(h.to), h.reason);
  for (const HealthRefusal& h : d.health_refused) out += fmt::format("refused {} {}\n", h.node.value(), h.why);
  return out;
}

// A random campus life on the dev scenario: what happens at each step, drawn from a seed and from
// what the engine decided before (jobs end only once started).
class Life {
 public:
  Life(const Fleet& fleet, size_t tenants, uint64_t seed) : fleet_(fleet), tenants_(tenants), rng_(seed) {}

  std::vector<Event> Next(TimeMs now) {
    std::vector<Event> events;
    if (now == 0) events.push_back(GridForecast{0, 3'600'000, {50, 20, 80, 10, 60, 30, 90, 40}});
    const uint64_t submits = rng_.Uniform(4);
    for (uint64_t i = 0; i < submits; ++i) events.push_back(JobSubmitted{Job(now)});
    for (JobId id : std::vector<JobId>(running_.begin(), running_.end())) {
      const uint64_t r = rng_.Uniform(100);
      if (r < 12) {
        events.push_back(JobFinished{id, r >= 3});
        running_.erase(id);
      } else if (r < 14) {
        events.push_back(JobCancelled{id});
      }
    }
    if (!pending_.empty() && rng_.Uniform(10) == 0) events.push_back(JobCancelled{*pending_.begin()});
    if (rng_.Uniform(5) == 0) {
      const NodeId node(static_cast<uint32_t>(rng_.Uniform(fleet_.nodes().size())));
      const NodeHealth to[] = {NodeHealth::kDown, NodeHealth::kDrained, NodeHealth::kHealthy, NodeHealth::kRepairing};
      events.push_back(NodeHealthChange{node, to[rng_.Uniform(4)], Actor::kOperator, "test", std::nullopt});
    }
    if (rng_.Uniform(40) == 0) {
      events.push_back(TenantUpdate{TenantId(static_cast<uint32_t>(rng_.Uniform(tenants_))),
                                    {{AcceleratorTypeId(0), static_cast<uint32_t>(rng_.Uniform(24))}},
                                    rng_.Uniform(2) ? std::optional<uint32_t>(rng_.Uniform(40)) : std::nullopt,
                                    1.0 + static_cast<double>(rng_.Uniform(3))});
    }
    return events;
  }

  void Saw(const Decisions& d) {
    for (const StartJob& s : d.starts) {
      running_.insert(s.job);
      pending_.erase(s.job);
    }
    for (const Requeue& r : d.requeues) {
      running_.erase(r.job);
      pending_.insert(r.job);
    }
    for (const JobEnded& e : d.ended) {
      running_.erase(e.job);
      pending_.erase(e.job);
    }
    for (const Rejection& r : d.rejections) pending_.erase(r.job);
  }

 private:
  JobSpec Job(TimeMs now) {
    JobSpec j;
    j.id = next_id_++;
    j.tenant = TenantId(static_cast<uint32_t>(rng_.Uniform(tenants_)));
    j.workers = rng_.Uniform(50) == 0 ? 0 : 1 + static_cast<uint32_t>(rng_.Uniform(3));  // 0: refused
    const uint32_t gpus[] = {0, 1, 1, 2, 4, 8, 8};
    j.worker = TaskShape{1000, 4096, gpus[rng_.Uniform(7)], 0};
    j.worker.milli_per_gpu = j.worker.gpus > 0 ? kMilliPerGpu : 0;
    if (j.worker.gpus == 1 && rng_.Uniform(4) == 0) j.worker.milli_per_gpu = 250 * (1 + rng_.Uniform(3));
    const int32_t priorities[] = {-100, 0, 0, 100};
    j.priority = priorities[rng_.Uniform(4)];
    if (rng_.Uniform(5) > 0) j.time_limit = (30 + static_cast<TimeMs>(rng_.Uniform(600))) * 1000;
    if (rng_.Uniform(3) == 0) j.runtime_estimate = (20 + static_cast<TimeMs>(rng_.Uniform(300))) * 1000;
    if (rng_.Uniform(3) == 0) j.checkpoint_interval = 60'000;
    if (rng_.Uniform(3) == 0) j.max_restarts = static_cast<uint32_t>(rng_.Uniform(3));
    j.restart_backoff = static_cast<TimeMs>(rng_.Uniform(3)) * 10'000;
    if (j.worker.gpus >= 4 && j.worker.milli_per_gpu == kMilliPerGpu && rng_.Uniform(2) == 0) j.spare_nodes = 1;
    if (next_id_ > 3 && rng_.Uniform(8) == 0) j.after_ok = {next_id_ - 2 - rng_.Uniform(next_id_ - 2)};
    if (rng_.Uniform(10) == 0) {
      j.flexible = true;
      j.deadline = now + 4 * 3'600'000;
    }
    j.work = static_cast<WorkClass>(rng_.Uniform(3));
    pending_.insert(j.id);
    return j;
  }

  const Fleet& fleet_;
  size_t tenants_;
  Rng rng_;
  JobId next_id_ = 1;
  std::set<JobId> running_, pending_;
};

// The engine's state as the control plane's snapshot keeps it: its jobs in the binary form, the
// rest as JSON (control/snapshot.cc), on two lines.
std::string Encoded(const Engine& e) {
  EngineState s = e.Save();
  const std::string jobs = io::EncodeEngineJobs(s.jobs);
  s.jobs.clear();
  return io::EngineStateJson(s).dump() + "\n" + jobs;
}

Result<EngineState> Decoded(const std::string& saved) {
  const size_t line = saved.find('\n');
  Result<EngineState> s = io::EngineStateOf(nlohmann::json::parse(saved.substr(0, line)));
  if (!s.ok()) return s;
  Result<std::vector<EngineState::Job>> jobs = io::DecodeEngineJobs(std::string_view(saved).substr(line + 1));
  if (!jobs.ok()) return jobs.status();
  s->jobs = std::move(*jobs);
  return s;
}

// How often each kind of decision came: the test asserts the life reached every part of the state.
void Count(const Decisions& d, std::map<std::string, size_t>& seen) {
  seen["start"] += d.starts.size();
  seen["restart on spares"] += d.restarts.size();
  seen["spares added"] += d.spares_added.size();
  seen["spare pool"] += d.spare_pool.size();
  seen["requeue"] += d.requeues.size();
  seen["power limit"] += d.power_limits.size();
  seen["health"] += d.health.size();
  seen["rejection"] += d.rejections.size();
  for (const KillJob& k : d.kills) seen[fmt::format("kill {}", KillReasonName(k.reason))]++;
  for (const PendingChange& p : d.pending) seen[fmt::format("pending {}", PendingReasonName(p.reason))]++;
  for (const StartJob& st : d.starts) seen["capped start"] += st.power_limit_permille != kRatedPermille;
}

TEST(EngineStateTest, RestoredEngineDecidesExactlyAsTheOneThatNeverStopped) {
  Result<io::Scenario> scenario = io::LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/dev.yaml");
  ASSERT_TRUE(scenario.ok()) << scenario.status().message();
  std::vector<TenantSpec> tenants = scenario->tenants;
  tenants[0].spare_nodes = {{AcceleratorTypeId(0), 1}};  // a spare pool to keep
  EngineConfig config;
  config.check_invariants = true;
  config.preemption_grace = 20'000;
  config.power.campus_it_budget_w = 60'000;  // tight: jobs are capped and wait for power
  std::map<std::string, size_t> seen;
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(fmt::format("seed {}", seed));
    Engine a(scenario->fleet, tenants, config);
    Life life(scenario->fleet, tenants.size(), seed);
    TimeMs now = 0;
    // Run a while; then, every fifth step, save, encode, decode and restore into a fresh engine
    // and compare its next decisions with the engine that never stopped; and keep one restored
    // engine (from step 100) running beside it to the end. (Every step catches a little more and
    // costs minutes under the sanitizers.)
    std::unique_ptr<Engine> b;
    size_t running = 0, pending = 0;
    for (int step = 0; step < 450; ++step, now += 10'000) {
      std::unique_ptr<Engine> fresh;
      if (step >= 100 && step % 5 == 0) {
        const std::string saved = Encoded(a);
        Result<EngineState> decoded = Decoded(saved);
        ASSERT_TRUE(decoded.ok()) << decoded.status().message();
        fresh = std::make_unique<Engine>(scenario->fleet, tenants, config);
        ASSERT_TRUE(fresh->Restore(*decoded).ok());
        ASSERT_EQ(Encoded(*fresh), saved) << "step " << step;
        if (!b) b = std::move(fresh);
      }
      const std::vector<Event> events = life.Next(now);
      const Decisions da = a.Step(now, events);
      if (b) {
        const std::string expected = Render(da);
        ASSERT_EQ(Render(b->Step(now, events)), expected) << "step " << step;
        if (fresh) {
          ASSERT_EQ(Render(fresh->Step(now, events)), expected) << "restored at step " << step;
        }
        Count(da, seen);
        running += a.running_count();
        pending += a.pending_count();
      }
      life.Saw(da);
    }
    EXPECT_EQ(Encoded(*b), Encoded(a));
    EXPECT_GT(running, 300u);  // the life kept the campus busy, with a queue
    EXPECT_GT(pending, 300u);
  }
  for (const char* kind : {"start", "restart on spares", "spares added", "spare pool", "requeue", "power limit",
                           "capped start", "health", "rejection", "kill Preempted", "kill TimeLimit", "kill NodeDown",
                           "kill Cancelled", "pending PowerCap", "pending LowCarbonWait", "pending Dependency",
                           "pending BeginTime", "pending QuotaExceeded", "pending Preempting"}) {
    EXPECT_GT(seen[kind], 0u) << kind << " never happened after the restore";
  }
}

TEST(EngineStateTest, StateThatDoesNotFitTheFleetIsRefused) {
  Result<io::Scenario> scenario = io::LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/dev.yaml");
  ASSERT_TRUE(scenario.ok());
  Engine a(scenario->fleet, scenario->tenants);
  EngineState s = a.Save();
  s.health.pop_back();
  Engine b(scenario->fleet, scenario->tenants);
  Status st = b.Restore(s);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("nodes"), std::string::npos) << st.message();
  EXPECT_FALSE(io::EngineStateOf(nlohmann::json::parse(R"({"jobs": [{"spec": 1}]})")).ok());
}

// Every cut of the binary form of a busy engine's jobs, and every flipped byte, is refused or
// read as some jobs; never a read past the bytes (the sanitizers would see it).
TEST(EngineStateTest, MalformedBinaryJobsAreRefusedNotOverread) {
  Result<io::Scenario> scenario = io::LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/dev.yaml");
  ASSERT_TRUE(scenario.ok());
  Engine a(scenario->fleet, scenario->tenants);
  Life life(scenario->fleet, scenario->tenants.size(), 7);
  for (TimeMs now = 0; now < 400'000; now += 10'000) life.Saw(a.Step(now, life.Next(now)));
  const std::string bytes = io::EncodeEngineJobs(a.Save().jobs);
  Result<std::vector<EngineState::Job>> whole = io::DecodeEngineJobs(bytes);
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  ASSERT_GT(whole->size(), 10u);
  EXPECT_EQ(io::EncodeEngineJobs(*whole), bytes);
  for (size_t cut = 0; cut < bytes.size(); cut += 1 + cut / 50) {
    EXPECT_FALSE(io::DecodeEngineJobs(std::string_view(bytes).substr(0, cut)).ok()) << "cut at " << cut;
  }
  for (size_t at = 0; at < bytes.size(); at += 1 + at / 50) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0xff);
    (void)io::DecodeEngineJobs(flipped);
  }
}

}  // namespace
}  // namespace joule
