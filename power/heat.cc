#include "power/heat.h"

#include "power/facility.h"

#include <algorithm>
#include <cmath>

namespace joule {
namespace {

constexpr double kKelvin = 273.15;

}  // namespace

std::optional<double> HeatPumpCop(double condenser_c, double evaporator_c) {
  if (condenser_c <= evaporator_c) return std::nullopt;
  return 0.45 * (condenser_c + kKelvin) / (condenser_c - evaporator_c);
}

double HeatDemandW(const HeatNetworkSpec& network, const CampusSpec& campus, TimeMs at) {
  const double outdoor = OutdoorTemperatureC(campus, at);
  const double span = network.heating_threshold_c - network.design_outdoor_c;
  const double heating = span > 0 ? std::clamp((network.heating_threshold_c - outdoor) / span, 0.0, 1.0) : 0.0;
  return network.peak_demand_w * (network.base_share + (1 - network.base_share) * heating);
}

HeatFlow RecoverHeat(const HeatNetworkSpec& network, const CampusSpec& campus, double captured_w, TimeMs at) {
  HeatFlow flow;
  flow.demand_w = HeatDemandW(network, campus, at);
  const std::optional<double> cop = HeatPumpCop(network.supply_temperature_c, campus.supply_temperature_c);
  if (!cop || *cop <= 1) {  // a plain exchanger (a COP at or below 1 would be no heat pump at all)
    flow.delivered_w = std::min(flow.demand_w, captured_w);
    flow.reused_w = flow.delivered_w;
    return flow;
  }
  // Delivered heat Q = source heat + work, work = Q / COP: Q = source x COP / (COP - 1).
  flow.delivered_w = std::min(flow.demand_w, captured_w * *cop / (*cop - 1));
  flow.pump_w = flow.delivered_w / *cop;
  flow.reused_w = flow.delivered_w - flow.pump_w;
  return flow;
}

}  // namespace joule
