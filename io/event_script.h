// Event scripts: a scenario's engine inputs over time, in YAML (format: docs/event-script.md),
// for golden tests and demos (`joule schedule`). Errors name file:line:column and the path.
// Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "io/scenario.h"
#include "sched/engine.h"

namespace joule::io {

struct ScriptStep {
  TimeMs at = 0;
  std::vector<Event> events;
};

struct EventScript {
  EngineConfig config;
  std::vector<ScriptStep> steps;  // in time order
};

// REQUIRES: `scenario` is the fleet the script names nodes and tenants of.
Result<EventScript> LoadEventScript(const std::string& path, const Scenario& scenario);

}  // namespace joule::io
