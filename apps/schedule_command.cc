// `joule schedule`: drives the engine through an event script on a scenario's fleet and prints
// every decision, one per line — the golden tests' format and a way to watch the engine think.
#include <iostream>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "apps/commands.h"
#include "control/journal_records.h"
#include "io/event_script.h"
#include "io/scenario.h"
#include "sched/engine.h"

namespace joule::apps {
namespace {

struct ScheduleOptions {
  std::string scenario;
  std::string events;
  std::string journal;
};

std::string Workers(const Fleet& fleet, const std::vector<WorkerPlacement>& workers) {
  std::string out;
  for (const WorkerPlacement& w : workers) {
    out += fmt::format(" {}[{}]", fleet.NodeName(w.node), fmt::join(w.devices, ","));
  }
  return out;
}

void Print(TimeMs at, const Decisions& d, const Fleet& fleet) {
  for (const Rejection& r : d.rejections) fmt::print("t={} reject {}: {}\n", at, r.job, r.reason);
  for (const KillJob& k : d.kills) {
    fmt::print("t={} kill {} {}{}\n", at, k.job, KillReasonName(k.reason),
               k.deadline > at ? fmt::format(" sigkill_at={}", k.deadline) : "");
  }
  for (const HealthTransition& h : d.health) {
    fmt::print("t={} node {} {} -> {} by {}: {}\n", at, fleet.NodeName(h.node), NodeHealthName(h.from),
               NodeHealthName(h.to), ActorName(h.actor), h.reason);
  }
  for (const HealthRefusal& h : d.health_refused) fmt::print("t={} refused {}\n", at, h.why);
  for (const Requeue& r : d.requeues) {
    fmt::print("t={} requeue {} restart={} eligible_at={}: {}\n", at, r.job, r.restarts, r.eligible_at, r.reason);
  }
  for (const JobEnded& x : d.ended) fmt::print("t={} ended {} {}: {}\n", at, x.job, JobStateName(x.state), x.reason);
  for (const StartJob& s : d.starts) {
    fmt::print("t={} start {}{}{}\n", at, s.job, Workers(fleet, s.workers),
               s.spares.empty() ? "" : " spares:" + Workers(fleet, s.spares));
  }
  for (const SparePoolChange& c : d.spare_pool) {
    fmt::print("t={} pool tenant={} {}{}\n", at, c.tenant.value(), c.added ? "+" : "-", fleet.NodeName(c.node));
  }
  for (const SparesAdded& a : d.spares_added) fmt::print("t={} spares {}{}\n", at, a.job, Workers(fleet, a.spares));
  for (const RestartJob& r : d.restarts) {
    fmt::print("t={} restart {}{} spares:{}\n", at, r.job, Workers(fleet, r.workers), Workers(fleet, r.spares));
  }
  for (const PendingChange& p : d.pending) fmt::print("t={} pending {} {}\n", at, p.job, PendingReasonName(p.reason));
}

int RunSchedule(const ScheduleOptions& o) {
  if (o.events.empty() == o.journal.empty()) {
    std::cerr << "joule schedule: give --events (an event script) or --journal (a server's state file)\n";
    return kExitBadInput;
  }
  Result<io::Scenario> scenario = io::LoadScenario(o.scenario);
  if (!scenario.ok()) {
    std::cerr << scenario.status().message() << "\n";
    return kExitBadInput;
  }
  if (!o.journal.empty()) {
    // A server's history, re-run through the engine as the server ran it.
    Engine engine(scenario->fleet, scenario->tenants);
    Status replay = control::ReplaySteps(
        o.journal, [&](TimeMs at, std::vector<Event> events) { Print(at, engine.Step(at, events), scenario->fleet); });
    if (!replay.ok()) {
      std::cerr << replay.message() << "\n";
      return kExitBadInput;
    }
    return kExitOk;
  }
  Result<io::EventScript> script = io::LoadEventScript(o.events, scenario.value());
  if (!script.ok()) {
    std::cerr << script.status().message() << "\n";
    return kExitBadInput;
  }
  std::vector<TenantSpec> tenants = scenario->tenants;
  if (tenants.empty()) tenants.push_back(TenantSpec{"default"});
  Engine engine(scenario->fleet, tenants, script->config);
  std::set<JobId> submitted;
  for (const io::ScriptStep& step : script->steps) {
    for (const Event& e : step.events) {
      if (const auto* s = std::get_if<JobSubmitted>(&e)) submitted.insert(s->spec.id);
    }
    Print(step.at, engine.Step(step.at, step.events), scenario->fleet);
  }
  for (JobId id : submitted) {
    if (std::optional<JobState> state = engine.state(id)) fmt::print("end {} {}\n", id, JobStateName(*state));
  }
  return kExitOk;
}

}  // namespace

void AddScheduleCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<ScheduleOptions>();
  CLI::App* cmd = app.add_subcommand("schedule", "Run the scheduling engine through an event script");
  cmd->add_option("--scenario", o->scenario, "Scenario file (YAML) giving the fleet and tenants")->required();
  CLI::Option* events = cmd->add_option("--events", o->events, "Event script (YAML, docs/event-script.md)");
  CLI::Option* journal =
      cmd->add_option("--journal", o->journal, "A joule server's journal (its state file): replay what it decided");
  events->excludes(journal);
  cmd->callback([&run, o] { run = [o] { return RunSchedule(*o); }; });
}

}  // namespace joule::apps
