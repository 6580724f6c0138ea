// Tenants as a scenario declares them: who has reserved what. The scheduling engine turns these
// into quotas; the fleet summary reports them. Plain values; thread-safe to share.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/catalog.h"

namespace joule {

struct Reservation {
  AcceleratorTypeId type;
  uint32_t accelerators = 0;  // guaranteed capacity of this type
};

struct TenantSpec {
  std::string name;
  std::vector<Reservation> reserved;
  // Most accelerators of idle capacity (others' or unreserved) the tenant may borrow on top of its
  // reservation; empty: no limit.
  std::optional<uint32_t> borrow_limit;
  double weight = 1.0;  // share of surplus capacity relative to other tenants
  // A pool of hot spare nodes the tenant keeps, per accelerator type: whole healthy nodes held
  // idle, counted in its use, which any of its jobs that loses a worker to a failure takes at
  // once (after the job's own spares). Refilled from free nodes after each scheduling pass.
  std::vector<Reservation> spare_nodes;  // `accelerators` counts nodes here
};

}  // namespace joule
