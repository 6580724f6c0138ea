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
};

}  // namespace joule
