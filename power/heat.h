// Heat recovery: the campus's liquid loop feeds heat pumps that lift its heat to a district heating
// network's supply temperature, up to what the network demands. Reference figures
// (shared/data/README.md): ~85% of IT heat reaches the liquid loop at ~45 °C; a heat pump's COP is
// about 0.45 x T_cond / (T_cond - T_evap) in kelvin (45% of Carnot); ERF (ISO/IEC 30134-6) = reused
// energy / total facility energy; ERE = (1 - ERF) x PUE.
//
// The network's demand follows the season: a base load (hot water) all year, plus space heating
// in proportion to how far the day's outdoor temperature (power/facility.h) is below the heating
// threshold, reaching the peak at the design temperature. Pure functions; thread-safe.
#pragma once

#include <optional>

#include "base/units.h"
#include "model/fleet.h"

namespace joule {

// 0.45 x T_cond / (T_cond - T_evap), temperatures in °C; nullopt when the loop is at least as
// hot as the network (heat goes across a plain exchanger, no heat pump).
std::optional<double> HeatPumpCop(double condenser_c, double evaporator_c);

double HeatDemandW(const HeatNetworkSpec& network, const CampusSpec& campus, TimeMs at);

// One instant of heat recovery from `captured_w` of loop heat at the campus's loop temperature.
struct HeatFlow {
  double demand_w = 0;     // the network's demand
  double delivered_w = 0;  // heat into the network: min(demand, what the captured heat can give)
  double reused_w = 0;     // campus heat in what was delivered (the rest is heat-pump work)
  double pump_w = 0;       // heat pumps' electricity
};
HeatFlow RecoverHeat(const HeatNetworkSpec& network, const CampusSpec& campus, double captured_w, TimeMs at);

}  // namespace joule
