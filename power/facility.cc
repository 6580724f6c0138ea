#include "power/facility.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace joule {
namespace {

constexpr double kColdestDay = 14;  // 15 January, days since 1 January
constexpr double kDaysPerYear = 365;

double Warmth(const CampusSpec& campus, double outdoor_c) {
  return campus.pue_per_degree_c * std::max(0.0, outdoor_c - campus.pue_reference_c);
}

}  // namespace

double OutdoorTemperatureC(const CampusSpec& campus, TimeMs at) {
  const double day = static_cast<double>(at) / static_cast<double>(kMsPerDay);
  const double phase = 2 * std::numbers::pi * (day - kColdestDay) / kDaysPerYear;
  return campus.outdoor_mean_c - campus.outdoor_amplitude_c * std::cos(phase);
}

double Pue(const Fleet& fleet, double it_w, TimeMs at) {
  const CampusSpec& campus = fleet.campus();
  double pue = campus.pue;
  const double idle = static_cast<double>(fleet.it_draw().idle_w), rated = static_cast<double>(fleet.it_draw().rated_w);
  if (campus.pue_at_idle > 0 && rated > idle) {
    const double load = std::clamp((it_w - idle) / (rated - idle), 0.0, 1.0);
    pue = campus.pue_at_idle + (campus.pue - campus.pue_at_idle) * load;
  }
  return pue + Warmth(campus, OutdoorTemperatureC(campus, at));
}

double DesignPue(const Fleet& fleet, double it_w) {
  const CampusSpec& campus = fleet.campus();
  return Pue(fleet, it_w, 0) - Warmth(campus, OutdoorTemperatureC(campus, 0)) +
         Warmth(campus, campus.outdoor_mean_c + campus.outdoor_amplitude_c);
}

}  // namespace joule
