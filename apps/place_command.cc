// `joule place`: the FGD paper's placement experiment on a scenario's fleet and a task list.
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "io/scenario.h"
#include "io/task_list.h"
#include "sched/placement/experiment.h"

namespace joule::apps {
namespace {

struct PlaceOptions {
  std::string scenario;
  std::string pods;
  std::string policy = "joule";
  uint32_t seeds = 10;
  uint64_t first_seed = 42;
  bool json = false;
};

Result<std::vector<PlacementPolicy>> ParsePolicies(const std::string& list) {
  std::vector<PlacementPolicy> policies;
  std::string text = list == "all" ? "random,dotprod,packing,bestfit,fgd,joule" : list;
  std::stringstream in(text);
  std::string name;
  while (std::getline(in, name, ',')) {
    std::optional<PlacementPolicy> p = ParsePlacementPolicy(name);
    if (!p) {
      return Status::Error(fmt::format(
          "--policy: unknown policy '{}' (known: random, dotprod, packing, bestfit, fgd, joule, all)", name));
    }
    policies.push_back(*p);
  }
  if (policies.empty()) return Status::Error("--policy: no policy given");
  return policies;
}

nlohmann::ordered_json ToJson(PlacementPolicy policy, const PlacementExperimentOptions& options,
                              const PlacementExperimentResult& r) {
  nlohmann::ordered_json checkpoints = nlohmann::ordered_json::array();
  for (size_t c = 0; c < options.checkpoints.size(); ++c) {
    checkpoints.push_back(
        {{"arrived_pct", std::llround(options.checkpoints[c] * 100)}, {"unallocated_pct", r.mean_unallocated_pct[c]}});
  }
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const PlacementRun& run : r.runs) {
    runs.push_back(
        {{"seed", run.seed}, {"tasks", run.tasks}, {"placed", run.placed}, {"unallocated_pct", run.unallocated_pct}});
  }
  return {{"policy", PolicyName(policy)}, {"mean", checkpoints}, {"runs", runs}};
}

int RunPlace(const PlaceOptions& o) {
  Result<std::vector<PlacementPolicy>> policies = ParsePolicies(o.policy);
  if (!policies.ok()) {
    std::cerr << policies.status().message() << "\n";
    return kExitBadInput;
  }
  Result<io::Scenario> scenario = io::LoadScenario(o.scenario);
  if (!scenario.ok()) {
    std::cerr << scenario.status().message() << "\n";
    return kExitBadInput;
  }
  Result<std::vector<TaskShape>> tasks = io::ReadOpenbTaskList(o.pods, scenario->fleet.catalog());
  if (!tasks.ok()) {
    std::cerr << tasks.status().message() << "\n";
    return kExitBadInput;
  }
  PlacementExperimentOptions options;
  options.seeds = o.seeds;
  options.first_seed = o.first_seed;
  nlohmann::ordered_json out = {
      {"schema", "joule.place.v1"}, {"scenario", o.scenario},     {"tasks", o.pods},
      {"seeds", o.seeds},           {"first_seed", o.first_seed}, {"policies", nlohmann::ordered_json::array()}};
  if (!o.json) {
    fmt::print("Unallocated GPU share (%), mean of {} seeds, when arrived requests reach:\n", o.seeds);
    fmt::print("{:<10} {:>8} {:>8} {:>8} {:>8}\n", "policy", "90%", "100%", "110%", "130%");
  }
  for (PlacementPolicy policy : policies.value()) {
    options.policy = policy;
    PlacementExperimentResult r = RunPlacementExperiment(scenario->fleet, tasks.value(), options);
    if (o.json) {
      out["policies"].push_back(ToJson(policy, options, r));
    } else {
      const auto& m = r.mean_unallocated_pct;
      fmt::print("{:<10} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f}\n", PolicyName(policy), m[0], m[1], m[2], m[3]);
      std::fflush(stdout);
    }
  }
  if (o.json) std::cout << out.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

void AddPlaceCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<PlaceOptions>();
  CLI::App* cmd = app.add_subcommand("place", "Run the FGD paper's placement experiment on a task list");
  cmd->add_option("--scenario", o->scenario, "Scenario file (YAML) giving the fleet")->required();
  cmd->add_option("--pods", o->pods, "Task list (openb pod-list CSV)")->required();
  cmd->add_option("--policy", o->policy, "random, dotprod, packing, bestfit, fgd, joule; comma list or 'all'")
      ->capture_default_str();
  cmd->add_option("--seeds", o->seeds, "Number of seeds")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--first-seed", o->first_seed, "First seed")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print results as JSON (schema joule.place.v1)");
  cmd->callback([&run, o] { run = [o] { return RunPlace(*o); }; });
}

}  // namespace joule::apps
