// The tenant workload model: per tenant, job classes arriving as Poisson processes with
// log-uniform sizes and durations (pre-training gangs, fine-tuning, evaluation batches), and
// inference services whose replica count follows a daily demand curve with bursts. Generate()
// turns a model into a Workload with a seeded generator: same model, horizon and seed, same jobs.
// The YAML form is read by io/workload_model.h (format in docs/workload-model.md).
// Thread-safety: plain values and a pure function.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/tenant.h"
#include "sched/job.h"
#include "sim/workload.h"

namespace joule::sim {

struct JobClass {
  std::string name;
  double per_day = 0;                     // mean arrivals per day (Poisson)
  uint32_t min_accelerators = 1;          // sizes are powers of two drawn uniformly in log2 between
  uint32_t max_accelerators = 1;          //   these bounds, at least one worker
  uint32_t per_worker = 1;                // accelerators per worker (a node's or a tray's count)
  MilliGpu milli_per_accelerator = 1000;  // < 1000: shared fraction (per_worker must be 1)
  Millicores cpu_per_accelerator = 0;
  MiB memory_per_accelerator = 0;
  TimeMs min_duration = 60'000;  // log-uniform between these
  TimeMs max_duration = 60'000;
  // Time limit (also the runtime estimate) = duration x a factor drawn uniformly in this range:
  // users ask for more than they use.
  double min_limit_factor = 1.2, max_limit_factor = 3.0;
  std::optional<TimeMs> checkpoint_interval;
  int32_t priority = 0;
  TypeSet types;
  TopologyRule topology = TopologyRule::kPreferCompact;
  WorkClass work = WorkClass::kTraining;
  // Flexible jobs: each must end within this long of its submission and may wait for low-carbon
  // hours until then.
  std::optional<TimeMs> flexible_deadline;
  // Failure policy and hot spares (JobSpec::max_restarts, spare_nodes): spares per 1,000 workers,
  // at least one when set.
  std::optional<uint32_t> max_restarts;
  double spares_per_1000_workers = 0;
};

struct InferenceService {
  std::string name;
  uint32_t accelerators_per_replica = 8;
  Millicores cpu_per_replica = 0;
  MiB memory_per_replica = 0;
  uint32_t peak_replicas = 1;
  double trough = 0.3;      // replicas at the daily low / at the peak
  int peak_hour = 14;       // hour of day of the peak (0-23)
  double burstiness = 0.0;  // coefficient of variation of hourly demand around the curve
  int32_t priority = 0;
  TypeSet types;
  WorkClass work = WorkClass::kInference;
};

struct TenantWorkload {
  TenantId tenant;
  std::vector<JobClass> classes;
  std::vector<InferenceService> services;
};

struct WorkloadModel {
  std::vector<TenantWorkload> tenants;
};

// Jobs submitted in [0, horizon), ids 1..N in (submit time, tenant, class, draw) order.
Workload Generate(const WorkloadModel& model, const std::vector<TenantSpec>& tenants, TimeMs horizon, uint64_t seed);

}  // namespace joule::sim
