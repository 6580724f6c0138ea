// Reads an hourly grid carbon-intensity series (Electricity Maps CSV export: a `Datetime (UTC)`
// column, one row per hour, and `Carbon Intensity gCO2eq/kWh (direct)`) into gCO2e/kWh by hour,
// the first row being hour 0 of a twin run. A missing, non-numeric or negative value, or a row
// that is not one hour after the one before, fails with file:line: column. Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace joule::io {

Result<std::vector<double>> ReadCarbonIntensity(const std::string& path);

// An hourly price series: the same `Datetime (UTC)` column and `Price (EUR/MWh)`. Prices may be
// negative (day-ahead markets clear below zero when wind and sun overflow); missing or
// non-numeric values fail as above.
Result<std::vector<double>> ReadPrice(const std::string& path);

}  // namespace joule::io
