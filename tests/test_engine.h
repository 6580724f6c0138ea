// Driving the engine in unit tests: a step that submits jobs, a job of whole accelerators, whether
// a step started a job.
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

// `workers` workers of `gpus` whole accelerators each (CPU-only when 0), 1 core and 1 GiB.
inline JobSpec WholeJob(JobId id, uint32_t workers, uint32_t gpus, int32_t priority = 0) {
  JobSpec j;
  j.id = id;
  j.workers = workers;
  j.worker = TaskShape{1000, 1024, gpus, gpus > 0 ? kMilliPerGpu : 0};
  j.priority = priority;
  return j;
}

inline std::vector<TenantSpec> OneTenant() { return {TenantSpec{"t"}}; }

inline bool Started(const Decisions& d, JobId id) {
  for (const StartJob& s : d.starts) {
    if (s.job == id) return true;
  }
  return false;
}

}  // namespace joule::testing
