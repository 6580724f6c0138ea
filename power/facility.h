// The facility around the IT: outdoor temperature over the year and the PUE it and the IT load
// give (model/fleet.h, CampusSpec). Pure functions; thread-safe.
#pragma once

#include "base/units.h"
#include "model/fleet.h"

namespace joule {

// The day's mean outdoor temperature: a yearly cosine, coldest on 15 January (time 0 is 1 January).
double OutdoorTemperatureC(const CampusSpec& campus, TimeMs at);

// PUE at IT draw `it_w` and time `at`: `pue` at the fleet's rated IT draw, `pue_at_idle` at its
// idle draw, linear in between (clamped), plus `pue_per_degree_c` per °C above `pue_reference_c`.
double Pue(const Fleet& fleet, double it_w, TimeMs at);

// The highest PUE over the year (the hottest day) at IT draw `it_w`. At the fleet's rated draw it
// sets the campus's IT budget: the grid connection divided by it, so that facility power stays
// within the connection all year.
double DesignPue(const Fleet& fleet, double it_w);

}  // namespace joule
