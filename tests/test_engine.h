// Driving the engine in unit tests: a step that submits jobs.
#pragma once

#include <utility>
#include <vector>

#include "sched/engine.h"

namespace joule::testing {

// Submits `jobs` and steps the engine at `now`.
inline Decisions Submit(Engine& e, TimeMs now, std::vector<JobSpec> jobs) {
  std::vector<Event> events;
  events.reserve(jobs.size());
  for (JobSpec& j : jobs) events.push_back(JobSubmitted{std::move(j)});
  return e.Step(now, events);
}

}  // namespace joule::testing
