// Number formatting for people: thousands separators and power with a fitting unit.
#pragma once

#include <cstdint>
#include <string>

namespace joule::apps {

std::string Thousands(int64_t n);
// "1.23 GW", "807.3 MW", "45.0 kW", "700 W"; negative values keep their sign.
std::string Power(int64_t watts);

}  // namespace joule::apps
