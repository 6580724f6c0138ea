// Readers of job traces into the twin's Workload (sim/workload.h): the Microsoft Philly job list,
// the Alibaba openb pod lists with their times, and Joule's generic job CSV (docs/job-csv.md).
// Tenants resolve against the scenario's tenants by name. Every bad row fails the whole read with
// "file:line: column: message". Thread-safety: stateless.
#pragma once

#include <string>

#include "base/status.h"
#include "io/scenario.h"
#include "sim/workload.h"

namespace joule::io {

// Philly (`timestamp,duration,num_gpus,gpu_time,cluster`): submit times relative to the earliest
// row; `cluster` (the virtual cluster) names the tenant, or the tenant `other` when the scenario
// has no tenant of that name. Gangs over 8 GPUs become workers of 8 (or of the largest power of
// two dividing the count).
Result<sim::Workload> ReadPhillyTrace(const std::string& path, const Scenario& scenario);

// An openb pod list with creation_time, deletion_time and scheduled_time (seconds): each pod is a
// one-worker job submitted at creation, running deletion - scheduled (creation when not
// scheduled) seconds, for the scenario's first tenant.
Result<sim::Workload> ReadOpenbTrace(const std::string& path, const Scenario& scenario);

// Joule's generic job CSV: submit_s, duration_s, gpus_per_worker required; workers, tenant, id,
// gpu_milli, gpu_type, cpu_milli, memory_mib, priority, time_limit_s, estimate_s, checkpoint_s
// optional (docs/job-csv.md).
Result<sim::Workload> ReadJobCsv(const std::string& path, const Scenario& scenario);

}  // namespace joule::io
