// How a campus fails, as data: per-component failure rates by cause, correlated failures of whole
// topology domains, repair times, rolling maintenance, and the cost of a restart. The twin draws
// failures from it (sim/failure_injector.h); a scenario's `failures:` block overrides any figure
// (docs/scenario-format.md). Defaults and their sources: docs/decisions/0006-failures.md.
// Plain values; thread-safe to copy.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/units.h"

namespace joule {

// Causes of interruption, as Meta reported them for Llama 3's pre-training (Dubey et al. 2024,
// table 5: 419 unexpected interruptions in 54 days on 16,384 H100).
enum class FailureCause : uint8_t { kGpu, kHost, kNetwork, kSoftware, kMaintenance };
inline constexpr int kFailureCauses = 5;
std::string_view FailureCauseName(FailureCause cause);

// Repair time: log-normal, by its median and the standard deviation of its logarithm.
struct RepairSpec {
  double median_h = 4;
  double sigma = 1.0;
};

// One cause: how often per accelerator-hour, and how long the node is out. A software failure
// crashes the job on the node and leaves the node in service (no repair).
struct CauseSpec {
  double per_accelerator_hour = 0;
  RepairSpec repair;
};

enum class DomainLevel : uint8_t { kNvlinkDomain, kRack, kPod };
std::string_view DomainLevelName(DomainLevel level);

// A correlated failure: every node of one domain goes down at once (a rack's power shelf, an
// NVL72 rack's NVLink switch tray, a leaf switch).
struct DomainFailureSpec {
  std::string name;
  DomainLevel level = DomainLevel::kRack;
  double per_domain_hour = 0;
  RepairSpec repair;
};

// Rolling maintenance: every `every_h` the next `racks` racks (in rack order, round the campus)
// are drained; after `drain_timeout_h` they go to repair (killing what still runs), and return
// healthy `duration_h` later.
struct MaintenanceSpec {
  double every_h = 24;
  uint32_t racks = 1;
  double drain_timeout_h = 4;
  double duration_h = 4;
};

struct FailureModelSpec {
  std::array<CauseSpec, kFailureCauses> causes{};
  std::vector<DomainFailureSpec> domains;
  std::optional<MaintenanceSpec> maintenance;
  double triage_h = 0.25;  // a failed node is down this long before its repair starts
  // What a job pays on failure, besides its work since the last checkpoint: the restart (process
  // launch, collective setup, loading the checkpoint) and each checkpoint's stall. Daly's R and C.
  double restart_overhead_min = 5;
  double checkpoint_stall_s = 10;

  // Llama 3's causes at 2.0e-5 interruptions per GPU-hour (docs/decisions/0006-failures.md).
  static FailureModelSpec Defaults();
  double PerAcceleratorHour() const;  // all causes
};

}  // namespace joule
