// What one twin run recorded: every job's outcome and a time series of the campus. The raw
// material of sim/metrics.h and of the report writers (io/sim_output.h). Plain values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/failure_model.h"
#include "sched/job.h"

namespace joule::sim {

// kFailed: ended by a failure after its last allowed restart (or its own failure, none allowed).
enum class Outcome : uint8_t { kQueued, kRunning, kCompleted, kTimeLimit, kRejected, kFailed };

struct JobRecord {
  JobId id = 0;
  TenantId tenant;
  uint32_t accelerators = 0;  // asked for; a shared fraction counts as one
  TimeMs submit = 0;
  TimeMs duration = 0;  // true run time
  std::optional<TimeMs> first_start;
  std::optional<TimeMs> end;  // completed or killed at its time limit
  Outcome outcome = Outcome::kQueued;
  uint32_t preemptions = 0;
  bool flexible = false;
  std::optional<TimeMs> deadline;
  double energy_wh = 0;        // IT energy of what it held while running
  double carbon_g = 0;         // its facility energy x the grid's intensity, with a grid series
  double cost_eur = 0;         // its facility energy x the price, with a price series
  double peak_w = 0;           // the most IT power it drew at once
  uint32_t interruptions = 0;  // runs a failure ended (restarts on spares included)
  TimeMs work_done = 0;        // work done by the horizon: saved, or complete; ms at full speed
};

// The campus at one instant. Milli-accelerators throughout.
struct Sample {
  TimeMs at = 0;
  uint32_t pending_jobs = 0;
  uint32_t running_jobs = 0;
  uint64_t pending_milli = 0;          // asked by queued jobs
  uint64_t allocated_milli = 0;        // held by jobs
  uint64_t busy_milli = 0;             // held by jobs not being stopped (preemption grace excluded)
  uint64_t fragmented_milli = 0;       // free whole accelerators no queued job can use (metrics.h)
  std::vector<uint64_t> tenant_milli;  // allocated, per tenant
  std::vector<uint64_t> type_milli;    // allocated, per accelerator type
  double it_w = 0;                     // IT power (power/draw.h)
  double facility_w = 0;               // IT power x the PUE at this load and day (power/facility.h)
  std::vector<double> hall_it_w;       // IT power per hall
  double heat_demand_w = 0;            // the heating network's demand (power/heat.h), when there is one
  double heat_delivered_w = 0;         // heat delivered into it
  uint64_t out_accelerators = 0;       // on nodes not healthy (suspect, drained, repairing, down)
};

// What failures did (sim/failure_injector.h, docs/sim-output.md).
struct FailureFigures {
  bool enabled = false;
  std::array<uint64_t, kFailureCauses> node_failures{};  // component failures by cause; software: jobs crashed
  std::vector<std::string> domain_names;                 // the model's correlated failures
  std::vector<uint64_t> domain_failures;
  uint64_t maintenance_windows = 0;
  uint64_t interruptions = 0;   // runs a failure ended
  uint64_t spare_restarts = 0;  // of which went on at once on hot spares
  uint64_t requeues = 0;
  uint64_t spares_used = 0;  // workers moved onto spares
  uint64_t health_transitions = 0, health_refused = 0;
  // Accelerator-hours held by runs a failure ended that did not become saved work (work since the
  // last checkpoint, restart overhead, checkpoint stalls).
  double lost_accelerator_hours = 0;
  std::vector<double> recover_s;  // per interruption: until the job works again (restart overhead included)
  // Jobs that ended failed, with the engine's reason, in the order they failed (few: kept apart
  // from the job records, which number millions).
  struct Failed {
    uint32_t job;  // index into SimResult::jobs
    std::string reason;
  };
  std::vector<Failed> failed;
};

struct SimResult {
  TimeMs end = 0;  // the horizon
  TimeMs tick = 0;
  std::vector<std::string> tenant_names;
  std::vector<std::string> type_names;  // accelerator types of the catalog
  std::vector<std::string> hall_names;
  std::vector<double> hall_rated_w;  // each hall's IT draw at rated power
  uint64_t capacity = 0;             // accelerators in the fleet
  std::vector<JobRecord> jobs;       // workload order
  // Jobs the engine refused (they could never run on this campus), with its reason, in the order
  // refused.
  struct Rejected {
    uint32_t job;  // index into jobs
    std::string reason;
  };
  std::vector<Rejected> rejected;
  std::vector<Sample> samples;
  uint64_t steps = 0;   // engine steps
  uint64_t events = 0;  // events handed to the engine
  uint64_t preemptions = 0;
  double lost_accelerator_hours = 0;  // work since the last checkpoint, lost to preemption
  // Episodes of a tenant held below its reservation of a type, with a queued job that fits in the
  // shortfall, for longer than the preemption grace plus two ticks (sim/simulator.cc).
  uint64_t reservation_breaches = 0;
  // Energy, integrated over samples (each sample's power held until the next).
  double pue = 1.0;  // facility energy / IT energy over the run
  Watts grid_connection_w = 0;
  double liquid_heat_capture = 0;
  double idle_it_w = 0;  // the fleet's IT draw with nothing running
  double it_energy_wh = 0;
  double facility_energy_wh = 0;
  double peak_it_w = 0;
  double peak_facility_w = 0;
  std::vector<double> tenant_energy_wh;       // IT energy of what each tenant's jobs held
  std::vector<double> hall_energy_wh;         // IT energy per hall
  std::optional<double> carbon_g;             // facility energy x grid intensity, when a series is given
  std::optional<double> cost_eur;             // facility energy x price, when a price series is given
  std::vector<double> tenant_peak_w;          // the most IT power each tenant's jobs held at a sample
  std::vector<double> tenant_heat_reused_wh;  // reused heat, shared by each sample's IT power
  // Heat recovery, when the campus feeds a heating network (power/heat.h): the network's demand,
  // heat delivered, campus heat reused in it, heat pumps' electricity; the pumps' COP.
  bool heat_network = false;
  double heat_demand_wh = 0, heat_delivered_wh = 0, heat_reused_wh = 0, heat_pump_wh = 0;
  std::optional<double> heat_pump_cop;
  // Power budgets (sched/power_governor.h), as the twin measures them from its own sums: per level
  // (campus, hall, row, rack) the budgets there, and the steps that ended with a budget more than
  // 1 W over (any is a bug), and the largest excess seen.
  std::vector<std::string> budget_levels;  // level names, by PowerLevel
  std::vector<uint64_t> budgets_by_level;
  std::vector<uint64_t> violations_by_level;
  double max_violation_w = 0;
  std::optional<double> campus_budget_w;  // IT watts; none when the campus has no budget
  double design_pue = 1.0;                // the PUE the campus budget assumes (power/facility.h)
  double job_pue = 1.0;                   // the full-load PUE, by which a job's carbon counts its facility share
  // Work: accelerator-hours of work done at full speed (completed jobs, and progress of the jobs
  // still running or saved at a checkpoint when the horizon cuts them), and the accelerator-hours
  // power limits cost (held x (1 - speed)).
  double useful_accelerator_hours = 0;
  double completed_accelerator_hours = 0;  // of the jobs that completed only
  double capping_lost_accelerator_hours = 0;
  uint64_t power_limit_changes = 0;        // limits the engine changed on running jobs
  double allocated_accelerator_hours = 0;  // held (spares, grace periods included), over samples
  FailureFigures failures;
};

}  // namespace joule::sim
