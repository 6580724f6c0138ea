// What the twin replays: jobs with the truth the engine never sees — how long each really runs.
// Trace readers (io/) and the tenant workload model (sim/tenant_model.h) produce a Workload; the
// simulator feeds its jobs to the engine at their submit times. Plain values; thread-safe to copy.
#pragma once

#include <string>
#include <vector>

#include "sched/job.h"

namespace joule::sim {

struct WorkloadJob {
  JobSpec spec;         // spec.submit_time is the arrival time
  TimeMs duration = 0;  // run time if never interrupted, > 0
  // Where it came from: a trace's line number, or for a generated job the index of its
  // "tenant/class" name in Workload::origins. A number, not a string: a month is millions of jobs.
  uint32_t origin = 0;
};

// Jobs by submit time, then id. Rows that could never run anywhere are kept here too: the engine
// rejects them with a reason and the simulator counts them.
struct Workload {
  std::vector<WorkloadJob> jobs;
  std::vector<std::string> tenant_names;  // TenantId -> name, as the engine's tenants
  std::vector<std::string> origins;       // generated workloads: "tenant/class" by origin
};

// Sorts jobs by (submit time, id); ids must be unique.
void SortBySubmit(Workload& workload);

// Multiplies every submit time by `factor` (> 0): the same jobs arriving denser (< 1) or sparser,
// to replay a trace at another load; deadlines keep their distance from the arrival. Order is kept.
void ScaleArrivals(Workload& workload, double factor);

// Job-size classes the metrics break figures down by, by accelerators asked (fractions count as
// one): one node (1-8), one rack or NVLink domain (9-128), one pod (129-1,024), more ("giant").
inline constexpr int kSizeClasses = 4;
int SizeClass(uint64_t accelerators);
const char* SizeClassName(int size_class);

// Accelerators a job asks for, counting a shared fraction as one.
uint64_t Accelerators(const JobSpec& spec);

}  // namespace joule::sim
