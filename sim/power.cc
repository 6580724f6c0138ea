#include "sim/power.h"

#include <algorithm>
#include <array>

namespace joule::sim {
namespace {

constexpr std::array<std::pair<std::string_view, WorkClass>, 3> kNames = {{
    {"training", WorkClass::kTraining},
    {"inference", WorkClass::kInference},
    {"other", WorkClass::kOther},
}};

}  // namespace

std::optional<WorkClass> ParseWorkClass(std::string_view name) {
  for (auto [n, w] : kNames) {
    if (n == name) return w;
  }
  return std::nullopt;
}

std::string_view WorkClassName(WorkClass work) {
  for (auto [n, w] : kNames) {
    if (w == work) return n;
  }
  return "?";
}

double WorkingShareOfRated(WorkClass work) {
  switch (work) {
    case WorkClass::kTraining:
      return 0.80;
    case WorkClass::kInference:
      return 0.50;
    case WorkClass::kOther:
      break;
  }
  return 0.60;
}

double WorkerExtraWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator,
                        WorkClass work) {
  const NodeType& type = fleet.node_type(node);
  if (!type.accelerator || type.accelerators == 0) return 0;
  const AcceleratorType& acc = fleet.catalog().accelerator(*type.accelerator);
  const double share = static_cast<double>(milli_per_accelerator) / 1000.0 * accelerators;
  const double working =
      std::max(WorkingShareOfRated(work) * static_cast<double>(acc.rated_w), static_cast<double>(acc.idle_w));
  const double per_accelerator = working - static_cast<double>(acc.idle_w) +
                                 static_cast<double>(type.overhead_rated_w - type.overhead_idle_w) / type.accelerators;
  return share * per_accelerator;
}

double WorkerIdleWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator) {
  const NodeType& type = fleet.node_type(node);
  if (!type.accelerator || type.accelerators == 0) return 0;
  const AcceleratorType& acc = fleet.catalog().accelerator(*type.accelerator);
  const double share = static_cast<double>(milli_per_accelerator) / 1000.0 * accelerators;
  return share * (static_cast<double>(acc.idle_w) + static_cast<double>(type.overhead_idle_w) / type.accelerators);
}

}  // namespace joule::sim
