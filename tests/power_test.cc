// The power model and the engine's power governor: hand-computed admission and capping, PowerCap
// holds, caps released when room returns, and never over budget on randomised demand.
#include <map>

#include <gtest/gtest.h>

#include "base/rng.h"
#include "power/draw.h"
#include "power/facility.h"
#include "power/heat.h"
#include "sched/engine.h"
#include "tests/test_engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

using testing::Submit;

// H100 (700 W rated, 70 W idle) in 8-GPU nodes whose overhead rises from 300 W idle to 1,000 W;
// racks of two nodes, 50 W idle overhead. One worker of 8 GPUs training at its natural 0.8 of
// rated adds 8 x (560 - 70 + 87.5) = 4,620 W; at the 400 per-mille floor 8 x (280 - 70 + 87.5) =
// 2,380 W. A node idles at 8 x 70 + 300 = 860 W, a rack at 1,770 W.
constexpr Watts kNatural = 4620, kFloor = 2380, kRackIdle = 1770;

// `rows` rows of `racks` racks of two such nodes, with optional row and rack budgets.
Fleet BudgetFleet(uint32_t rows, uint32_t racks, std::optional<Watts> row_budget, std::optional<Watts> rack_budget) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"power", "", 0, 1.0, 0.8, 45};
  const NodeTypeId node = spec.catalog.Add(testing::GpuNode(spec.catalog, 8, 64, 512));
  const RackTypeId rack = spec.catalog.Add(RackType{"r", node, 2, 100, 50, rack_budget});
  HallSpec hall{"h", std::nullopt, {}};
  for (uint32_t r = 0; r < rows; ++r)
    hall.rows.push_back(RowSpec{fmt::format("row{}", r), row_budget, rack, racks, {}, 0});
  spec.halls.push_back(hall);
  return Fleet::Build(std::move(spec));
}

JobSpec Gpus(JobId id, uint32_t workers, uint32_t gpus, int32_t priority, WorkClass work = WorkClass::kTraining) {
  JobSpec j;
  j.id = id;
  j.workers = workers;
  j.worker = TaskShape{1000, 1024, gpus, kMilliPerGpu};
  j.priority = priority;
  j.work = work;
  j.topology = TopologyRule::kAny;
  return j;
}

Decisions Finish(Engine& e, TimeMs now, JobId job) {
  std::vector<Event> events{JobFinished{job, true}};
  return e.Step(now, events);
}

EngineConfig WithCampusBudget(Watts budget) {
  EngineConfig c;
  c.check_invariants = true;  // includes the governor's: ledger exact, no budget over
  c.power.campus_it_budget_w = budget;
  return c;
}

TEST(PowerModelTest, ThroughputUnderACap) {
  const PowerModelSpec m;
  EXPECT_DOUBLE_EQ(Throughput(m, WorkClass::kTraining, 1000), 1.0);
  EXPECT_DOUBLE_EQ(Throughput(m, WorkClass::kTraining, 800), 1.0);
  // 1 - 0.3 x (1 - 400/800)
  EXPECT_DOUBLE_EQ(Throughput(m, WorkClass::kTraining, 400), 0.85);
  // Inference: natural 500, s 0.2: 1 - 0.2 x (1 - 400/500)
  EXPECT_DOUBLE_EQ(Throughput(m, WorkClass::kInference, 400), 0.96);
  EXPECT_EQ(m.of(WorkClass::kOther).natural_permille, 600u);
  // A scenario's own figures: inference drawing 0.6 and slowing by s = 0.5 under a cap.
  PowerModelSpec own;
  own.work[1] = {600, 500};
  EXPECT_DOUBLE_EQ(Throughput(own, WorkClass::kInference, 300), 0.75);
}

TEST(PowerModelTest, DrawUnderALimitByHand) {
  Fleet fleet = BudgetFleet(1, 1, std::nullopt, std::nullopt);
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(fleet, NodeId(0), 8, 1000, WorkClass::kTraining), kNatural);
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(fleet, NodeId(0), 8, 1000, WorkClass::kTraining, 400), kFloor);
  // A limit above the natural draw changes nothing; below idle the accelerator still idles.
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(fleet, NodeId(0), 8, 1000, WorkClass::kTraining, 900), kNatural);
  EXPECT_DOUBLE_EQ(WorkerExtraWatts(fleet, NodeId(0), 8, 1000, WorkClass::kTraining, 50), 8 * 87.5);
  const ExtraLine line = WorkerExtraLine(fleet, NodeId(0), 8, 1000);
  EXPECT_DOUBLE_EQ(line.slope * 800 + line.base, kNatural);
}

// The france-1gw network: 70 °C supply from a 45 °C loop, COP 0.45 x 343.15 / 25 = 6.17670. On
// 15 January the outdoor mean is 12.5 - 8 = 4.5 °C: space heating at (15 - 4.5) / (15 + 5) =
// 0.525 of its span, demand 200 x (0.15 + 0.85 x 0.525) = 119.25 MW. 50 MW of loop heat give
// 50 x COP / (COP - 1) MW, short of the demand; 200 MW cover it.
TEST(HeatTest, HeatPumpAndSeasonalDemandByHand) {
  HeatNetworkSpec n{70, 200e6, 0.15, -5, 15};
  CampusSpec campus;
  campus.supply_temperature_c = 45;
  campus.outdoor_mean_c = 12.5;
  campus.outdoor_amplitude_c = 8;
  const double cop = 0.45 * 343.15 / 25;
  EXPECT_NEAR(*HeatPumpCop(70, 45), cop, 1e-12);
  EXPECT_FALSE(HeatPumpCop(40, 45).has_value());
  const TimeMs jan15 = 14 * kMsPerDay;
  EXPECT_NEAR(OutdoorTemperatureC(campus, jan15), 4.5, 1e-9);
  EXPECT_NEAR(HeatDemandW(n, campus, jan15), 119.25e6, 1e-3);
  // Mid-July: 20.5 °C, above the threshold: hot water only.
  EXPECT_NEAR(HeatDemandW(n, campus, jan15 + 365 * kMsPerDay / 2), 0.15 * 200e6, 1e-3);

  HeatFlow short_of = RecoverHeat(n, campus, 50e6, jan15);
  EXPECT_NEAR(short_of.delivered_w, 50e6 * cop / (cop - 1), 1e-3);
  EXPECT_NEAR(short_of.reused_w, 50e6, 1e-3);
  EXPECT_NEAR(short_of.pump_w, short_of.delivered_w / cop, 1e-3);
  HeatFlow covered = RecoverHeat(n, campus, 200e6, jan15);
  EXPECT_NEAR(covered.delivered_w, 119.25e6, 1e-3);
  EXPECT_NEAR(covered.reused_w, 119.25e6 * (cop - 1) / cop, 1e-3);
  // A loop hotter than the network: a plain exchanger, every delivered watt is campus heat.
  HeatFlow direct = RecoverHeat(HeatNetworkSpec{40, 10e6}, campus, 50e6, jan15);
  EXPECT_EQ(direct.pump_w, 0);
  EXPECT_NEAR(direct.delivered_w, direct.demand_w, 1e-6);
  EXPECT_EQ(direct.reused_w, direct.delivered_w);
}

// PUE 1.10 at rated IT draw, 1.30 at idle, linear between; + 0.01 per °C above 18 °C. The
// 0..rated draw of BudgetFleet(1, 1): idle 1,770 W, rated 2 x (5,600 + 1,000) + 100 = 13,300 W.
// Mid-July (20.5 °C mean with 12.5 ± 8): + 0.025; the hottest day is the same.
TEST(FacilityTest, PueByLoadAndWeather) {
  FleetSpec spec;
  spec.catalog = Catalog::BuiltIn();
  spec.campus = {"pue", "", 0, 1.10, 0.8, 45};
  spec.campus.pue_at_idle = 1.30;
  spec.campus.pue_per_degree_c = 0.01;
  spec.campus.pue_reference_c = 18;
  spec.campus.outdoor_mean_c = 12.5;
  spec.campus.outdoor_amplitude_c = 8;
  const NodeTypeId node = spec.catalog.Add(testing::GpuNode(spec.catalog, 8, 64, 512));
  const RackTypeId rack = spec.catalog.Add(RackType{"r", node, 2, 100, 50, std::nullopt});
  spec.halls.push_back(HallSpec{"h", std::nullopt, {RowSpec{"row", std::nullopt, rack, 1, {}, 0}}});
  Fleet fleet = Fleet::Build(std::move(spec));
  ASSERT_EQ(fleet.it_draw().idle_w, 1770);
  ASSERT_EQ(fleet.it_draw().rated_w, 13300);
  const TimeMs jan15 = 14 * kMsPerDay, jul16 = jan15 + 365 * kMsPerDay / 2;
  EXPECT_NEAR(Pue(fleet, 1770, jan15), 1.30, 1e-12);
  EXPECT_NEAR(Pue(fleet, 13300, jan15), 1.10, 1e-12);
  EXPECT_NEAR(Pue(fleet, (1770 + 13300) / 2.0, jan15), 1.20, 1e-12);
  EXPECT_NEAR(Pue(fleet, 13300, jul16), 1.10 + 0.025, 1e-9);
  EXPECT_NEAR(DesignPue(fleet, 13300), 1.125, 1e-9);
  EXPECT_NEAR(DesignPue(fleet, 1770), 1.325, 1e-9);
}

// Campus idle 2 racks x 1,770 W = 3,540 W. Budget: idle + job A at natural + 3,000 W. Job B
// (priority 5, one node) needs 4,620 W: 1,620 W short, so A (priority 0) is capped by
// ceil(1,620 / 5.6 W per per-mille) = 290 per-mille, to 510, and B starts uncapped. When B ends,
// A goes back to no cap.
TEST(PowerGovernorTest, CapsLowerPriorityWorkToAdmitAndReleasesIt) {
  Fleet fleet = BudgetFleet(1, 2, std::nullopt, std::nullopt);
  const Watts budget = 2 * kRackIdle + kNatural + 3000;
  Engine e(fleet, {TenantSpec{"t"}}, WithCampusBudget(budget));
  Decisions d = Submit(e, 0, {Gpus(1, 1, 8, 0)});
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].power_limit_permille, kRatedPermille);
  EXPECT_EQ(e.power().budgets()[0].used_w, 2 * kRackIdle + kNatural);

  d = Submit(e, 10, {Gpus(2, 1, 8, 5)});
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].power_limit_permille, kRatedPermille);
  ASSERT_EQ(d.power_limits.size(), 1u);
  EXPECT_EQ(d.power_limits[0].job, 1u);
  EXPECT_EQ(d.power_limits[0].permille, 510u);
  // A at 510: 8 x (357 - 70 + 87.5) = 2,996 W.
  EXPECT_EQ(e.power().budgets()[0].used_w, 2 * kRackIdle + kNatural + 2996);
  EXPECT_LE(e.power().budgets()[0].used_w, budget);

  d = Finish(e, 20, 2);
  ASSERT_EQ(d.power_limits.size(), 1u);
  EXPECT_EQ(d.power_limits[0].job, 1u);
  EXPECT_EQ(d.power_limits[0].permille, kRatedPermille);
  EXPECT_EQ(e.power().limit(1), kRatedPermille);
}

// With 100 W to spare, capping A and B to the floor frees 2 x (4,620 - 2,380) = 4,480 W: not
// enough. B waits with PowerCap and nothing is capped; a later, smaller job of lower priority may
// not take the room B waits for; once A ends B starts.
TEST(PowerGovernorTest, WaitsWithPowerCapAndHoldsTheBudget) {
  Fleet fleet = BudgetFleet(1, 2, std::nullopt, std::nullopt);
  const Watts budget = 2 * kRackIdle + kNatural + 100;
  Engine e(fleet, {TenantSpec{"t"}}, WithCampusBudget(budget));
  Submit(e, 0, {Gpus(1, 1, 8, 0)});
  Decisions d = Submit(e, 10, {Gpus(2, 1, 8, 5), Gpus(3, 1, 1, 0)});
  EXPECT_TRUE(d.starts.empty());
  EXPECT_TRUE(d.power_limits.empty());
  EXPECT_EQ(e.pending_reason(2), PendingReason::kPowerCap);
  EXPECT_EQ(e.pending_reason(3), PendingReason::kPowerCap);
  EXPECT_EQ(e.power().limit(1), kRatedPermille);

  d = Finish(e, 20, 1);
  ASSERT_GE(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].job, 2u);
}

// Budgets at every level: a rack budget binds before the campus does.
TEST(PowerGovernorTest, RackBudgetBinds) {
  // Rack budget: idle + one node at natural + one at the floor.
  Fleet fleet = BudgetFleet(1, 2, std::nullopt, kRackIdle + kNatural + kFloor);
  EngineConfig c;
  c.check_invariants = true;
  Engine e(fleet, {TenantSpec{"t"}}, c);
  // Two single-node jobs: the second lands on the first one's rack (best fit) or the other; either
  // way no rack is over and at most one is capped.
  Decisions d = Submit(e, 0, {Gpus(1, 1, 8, 0), Gpus(2, 1, 8, 0), Gpus(3, 1, 8, 0), Gpus(4, 1, 8, 0)});
  EXPECT_EQ(d.starts.size(), 4u);
  int capped = 0;
  for (JobId j = 1; j <= 4; ++j) capped += e.power().limit(j) != kRatedPermille;
  EXPECT_EQ(capped, 2);  // one per rack, down to 400 per-mille
  for (const PowerGovernor::Budget& b : e.power().budgets()) EXPECT_LE(b.used_w, b.budget_w);
}

// Randomised demand on a fleet with rack, row and campus budgets well below rated draw: after every
// step, the draw recomputed from the decisions alone (placements and limits, summed worker by
// worker) is within every budget; when the work thins out, every cap is released.
TEST(PowerGovernorTest, NeverOverBudgetOnRandomisedDemand) {
  const Watts rack_rated = 2 * (8 * 700 + 1000) + 100;
  Fleet fleet = BudgetFleet(3, 4, 3 * rack_rated, rack_rated * 3 / 4);  // rows oversubscribed 33%, racks 33%
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    EngineConfig c;
    c.check_invariants = true;
    c.power.campus_it_budget_w = fleet.it_draw().rated_w * 6 / 10;
    Engine e(fleet, {TenantSpec{"a"}, TenantSpec{"b"}}, c);
    Rng rng(seed);
    auto pick = [&](int64_t lo, int64_t hi) {
      return lo + static_cast<int64_t>(rng.Uniform(static_cast<uint64_t>(hi - lo + 1)));
    };
    std::map<JobId, std::pair<std::vector<WorkerPlacement>, uint32_t>> running;
    std::map<JobId, JobSpec> specs;
    JobId next = 1;
    int capped = 0, raised = 0, refused = 0;  // the test must exercise all three
    std::multimap<TimeMs, JobId> leaving;     // preempted: they draw until their SIGKILL deadline
    auto check = [&](const Decisions& d, TimeMs now) {
      for (auto it = leaving.begin(); it != leaving.end() && it->first <= now; it = leaving.erase(it)) {
        running.erase(it->second);
      }
      for (const StartJob& s : d.starts) {
        running[s.job] = {s.workers, s.power_limit_permille};
        capped += s.power_limit_permille < kRatedPermille;
      }
      for (const PowerLimit& p : d.power_limits) {
        running.at(p.job).second = p.permille;
        capped += p.permille < kRatedPermille;
        raised += p.permille == kRatedPermille;
      }
      for (const PendingChange& p : d.pending) refused += p.reason == PendingReason::kPowerCap;
      for (const KillJob& k : d.kills) {
        if (k.deadline > now) {
          leaving.emplace(k.deadline, k.job);
        } else {
          running.erase(k.job);
        }
      }
      std::map<std::pair<PowerLevel, uint32_t>, double> draw;
      for (const auto& [id, run] : running) {
        for (const WorkerPlacement& w : run.first) {
          const double watts = WorkerExtraWatts(fleet, w.node, 8, kMilliPerGpu, specs.at(id).work, run.second) *
                               static_cast<double>(w.devices.size()) / 8.0;
          const RackId rack = fleet.node(w.node).rack;
          draw[{PowerLevel::kRack, rack.value()}] += watts;
          draw[{PowerLevel::kRow, fleet.RowOf(rack).value()}] += watts;
          draw[{PowerLevel::kCampus, 0}] += watts;
        }
      }
      for (const PowerGovernor::Budget& b : e.power().budgets()) {
        const Watts idle = b.level == PowerLevel::kCampus ? fleet.it_draw().idle_w
                           : b.level == PowerLevel::kRow  ? fleet.row_draw(RowId(b.index)).idle_w
                                                          : fleet.rack_draw(RackId(b.index)).idle_w;
        const double measured = draw[{b.level, b.index}] + static_cast<double>(idle);
        ASSERT_LE(measured, static_cast<double>(b.budget_w) + 1e-6)
            << "seed " << seed << " at " << now << " " << PowerLevelName(b.level) << " " << b.index;
      }
    };
    for (TimeMs now = 0; now < 400; ++now) {
      std::vector<Event> events;
      for (int i = pick(0, 2); i > 0; --i) {
        JobSpec j = Gpus(next++, static_cast<uint32_t>(pick(1, 3)), pick(0, 1) ? 8 : 2,
                         static_cast<int32_t>(pick(0, 3)), static_cast<WorkClass>(pick(0, 2)));
        j.tenant = TenantId(static_cast<uint32_t>(pick(0, 1)));
        specs[j.id] = j;
        events.push_back(JobSubmitted{j});
      }
      if (!running.empty() && pick(0, 2) == 0) {
        auto it = running.begin();
        std::advance(it, pick(0, static_cast<int64_t>(running.size()) - 1));
        events.push_back(JobFinished{it->first, true});
        running.erase(it);
      }
      check(e.Step(now, events), now);
    }
    // Drain: cancel everything queued, finish all but one running job: its cap must be gone.
    std::vector<Event> events;
    for (const auto& [id, spec] : specs) {
      if (e.state(id) == JobState::kPending) events.push_back(JobCancelled{id});
    }
    while (running.size() > 1) {
      events.push_back(JobFinished{running.begin()->first, true});
      running.erase(running.begin());
    }
    check(e.Step(1000, events), 1000);
    ASSERT_EQ(running.size(), 1u);
    EXPECT_EQ(e.power().limit(running.begin()->first), kRatedPermille) << "seed " << seed;
    EXPECT_GT(capped, 0);
    EXPECT_GT(raised, 0);
    EXPECT_GT(refused, 0);
  }
}

// Hourly forecast 100, 100, 20, 100, ... g/kWh. A flexible one-hour job due in five hours (slack
// 4 h, of which it uses the first half) waits for hour 2 (LowCarbonWait), then starts; one due in
// two hours cannot reach it and starts now; a flexible job without a deadline is refused.
TEST(FlexibleJobTest, WaitsForTheLowCarbonHourWithinItsDeadline) {
  Fleet fleet = BudgetFleet(1, 2, std::nullopt, std::nullopt);
  Engine e(fleet, {TenantSpec{"t"}}, EngineConfig{.check_invariants = true});
  constexpr TimeMs kHour = 3'600'000;
  std::vector<Event> events{GridForecast{0, kHour, {100, 100, 20, 100, 100, 100}}};
  JobSpec late = Gpus(1, 1, 8, 0), soon = Gpus(2, 1, 8, 0), bad = Gpus(3, 1, 8, 0);
  for (JobSpec* j : {&late, &soon, &bad}) {
    j->flexible = true;
    j->runtime_estimate = kHour;
  }
  late.deadline = 5 * kHour;
  soon.deadline = 2 * kHour;
  for (const JobSpec& j : {late, soon, bad}) events.push_back(JobSubmitted{j});
  Decisions d = e.Step(0, events);
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].job, 2u);
  EXPECT_EQ(e.pending_reason(1), PendingReason::kLowCarbonWait);
  ASSERT_EQ(d.rejections.size(), 1u);
  EXPECT_EQ(d.rejections[0].reason, "deadline: a flexible job needs one");
  EXPECT_TRUE(e.Step(kHour, {}).starts.empty());
  // Half past one: a run from now averages (100 + 20) / 2 = 60, from hour 2 it averages 20.
  EXPECT_TRUE(e.Step(kHour + kHour / 2, {}).starts.empty());
  d = e.Step(2 * kHour, {});
  ASSERT_EQ(d.starts.size(), 1u);
  EXPECT_EQ(d.starts[0].job, 1u);
}

}  // namespace
}  // namespace joule
