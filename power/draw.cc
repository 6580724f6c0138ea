#include "power/draw.h"

#include <algorithm>
#include <array>

namespace joule {
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

double Throughput(const PowerModelSpec& model, WorkClass work, uint32_t limit_permille) {
  const uint32_t natural = model.of(work).natural_permille;
  if (limit_permille >= natural) return 1.0;
  const double s = model.of(work).cap_sensitivity_milli / 1000.0;
  return 1.0 - s * (1.0 - static_cast<double>(limit_permille) / natural);
}

uint32_t IdlePermille(const AcceleratorType& type) {
  if (type.rated_w <= 0) return 0;
  return static_cast<uint32_t>((type.idle_w * 1000 + type.rated_w - 1) / type.rated_w);
}

ExtraLine WorkerExtraLine(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator) {
  const NodeType& type = fleet.node_type(node);
  if (!type.accelerator || type.accelerators == 0) return {};
  const AcceleratorType& acc = fleet.catalog().accelerator(*type.accelerator);
  const double share = static_cast<double>(milli_per_accelerator) / 1000.0 * accelerators;
  const double overhead = static_cast<double>(type.overhead_rated_w - type.overhead_idle_w) / type.accelerators;
  return {share * static_cast<double>(acc.rated_w) / 1000.0, share * (overhead - static_cast<double>(acc.idle_w))};
}

double WorkerExtraWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator,
                        WorkClass work, uint32_t limit_permille) {
  const NodeType& type = fleet.node_type(node);
  if (!type.accelerator || type.accelerators == 0) return 0;
  const AcceleratorType& acc = fleet.catalog().accelerator(*type.accelerator);
  const double share = static_cast<double>(milli_per_accelerator) / 1000.0 * accelerators;
  const double drawn = std::min(fleet.campus().power_model.of(work).natural_permille, limit_permille) *
                       static_cast<double>(acc.rated_w) / 1000.0;
  const double working = std::max(drawn, static_cast<double>(acc.idle_w));
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

}  // namespace joule
