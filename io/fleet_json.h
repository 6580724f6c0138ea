// The stable JSON form of a FleetSummary (schema: docs/fleet-json.md). Keys keep a fixed order so
// the output is byte-identical for the same fleet. Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "model/fleet_summary.h"
#include "model/tenant.h"

namespace joule::io {

nlohmann::ordered_json FleetSummaryJson(const FleetSummary& summary, const std::vector<TenantSpec>& tenants,
                                        const Catalog& catalog);

}  // namespace joule::io
