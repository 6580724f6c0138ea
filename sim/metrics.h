// The figures of a twin run, computed from its records (sim/result.h): wait and completion time
// percentiles by job-size class and tenant, bounded slowdown, utilisation, fragmentation,
// preemption losses, reservation breaches. Pure functions; thread-safe.
//
// Definitions (docs/sim-output.md):
//   wait        first start - submit, over jobs that started;
//   JCT         end - submit, over jobs that completed;
//   slowdown    bounded slowdown max(1, JCT / max(duration, 10 s)), over completed jobs;
//   percentiles nearest rank on the sorted values (p50 of {1,2,3,4} is 2);
//   utilisation mean over samples of allocated / capacity;
//   ETTR        effective training time ratio of a group of jobs: work done (saved, or complete)
//               / wall time from first start to end (or the horizon), summed over the group's
//               started jobs; queueing after a failure counts as wall time (Meta's definition);
//   goodput     useful accelerator-hours / accelerator-hours allocated (spares included).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "sim/result.h"
#include "sim/workload.h"

namespace joule::sim {

struct Distribution {
  uint64_t count = 0;
  double mean = 0, p50 = 0, p95 = 0, p99 = 0, max = 0;
};

// REQUIRES: nothing; an empty input gives all zeros.
Distribution Distribute(std::vector<double> values);

struct GroupFigures {
  uint64_t submitted = 0, started = 0, completed = 0, time_limit = 0, rejected = 0;
  Distribution wait_s;
  Distribution jct_s;
  double mean_bounded_slowdown = 0;
};

// Jobs of at least `min_accelerators` that started.
struct EttrGroup {
  uint32_t min_accelerators = 0;
  uint64_t jobs = 0;
  double ettr = 0;
  double wall_hours = 0;
  double interruptions_per_job = 0;
  uint64_t failed = 0;  // ended failed after their last allowed restart
};

struct Summary {
  uint64_t jobs = 0;
  GroupFigures all;
  std::array<GroupFigures, kSizeClasses> by_size;
  std::vector<GroupFigures> by_tenant;
  double utilisation = 0;                  // allocated share, mean over samples
  double busy = 0;                         // busy share, mean over samples
  std::vector<double> tenant_utilisation;  // each tenant's allocated share of the campus
  double mean_pending_jobs = 0;
  uint64_t max_pending_jobs = 0;
  double mean_fragmented_accelerators = 0;
  uint64_t preemptions = 0;
  double lost_accelerator_hours = 0;
  uint64_t reservation_breaches = 0;
  // The longest wait of any gang of more than 1,024 accelerators, including those still queued
  // at the horizon (their wait so far); 0 when there were none.
  double longest_giant_wait_s = 0;
  uint64_t failed = 0;  // jobs ended by failures (sim/result.h Outcome::kFailed)
  // Failures: ETTR of large gangs (over 1,024 accelerators) and of 16k-accelerator jobs (16,384 or
  // more), goodput, time to recover.
  EttrGroup ettr_large, ettr_16k;
  double goodput = 0;
  Distribution recover_s;
};

EttrGroup Ettr(const SimResult& result, uint32_t min_accelerators);

Summary Summarize(const SimResult& result);

}  // namespace joule::sim
