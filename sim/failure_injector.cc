#include "sim/failure_injector.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace joule::sim {
namespace {

constexpr double kMsPerHourD = 3'600'000.0;
constexpr TimeMs kNever = std::numeric_limits<TimeMs>::max();

}  // namespace

FailureInjector::FailureInjector(const Fleet& fleet, FailureModelSpec spec, uint64_t seed)
    : fleet_(fleet), spec_(std::move(spec)), rng_(seed) {
  node_rate_per_ms_ = spec_.PerAcceleratorHour() * fleet.accelerator_count() / kMsPerHourD;
  for (const DomainFailureSpec& d : spec_.domains) {
    std::vector<std::vector<NodeId>> groups;
    auto nodes_of = [](IdRange<NodeId> range, std::vector<NodeId>& into) {
      for (NodeId n : range) into.push_back(n);
    };
    switch (d.level) {
      case DomainLevel::kNvlinkDomain:
        for (const NvlinkDomain& domain : fleet.domains()) {
          if (domain.nodes.count < 2) continue;  // a one-node domain fails with its node
          nodes_of(domain.nodes, groups.emplace_back());
        }
        break;
      case DomainLevel::kRack:
        for (const Rack& rack : fleet.racks()) nodes_of(rack.nodes, groups.emplace_back());
        break;
      case DomainLevel::kPod:
        for (const Pod& pod : fleet.pods()) {
          std::vector<NodeId>& nodes = groups.emplace_back();
          for (RackId r : pod.racks) nodes_of(fleet.rack(r).nodes, nodes);
        }
        break;
    }
    domain_rate_per_ms_.push_back(d.per_domain_hour * static_cast<double>(groups.size()) / kMsPerHourD);
    domains_.push_back(std::move(groups));
  }
  if (spec_.maintenance && !fleet.racks().empty()) {
    maintenance_ = Window(std::llround(spec_.maintenance->every_h * kMsPerHourD));
  }
  Draw();
}

double FailureInjector::Normal() {  // Box-Muller
  const double u = 1.0 - rng_.UnitDouble(), v = rng_.UnitDouble();
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
}

TimeMs FailureInjector::RepairTime(const RepairSpec& repair) {
  if (repair.median_h <= 0) return 0;
  return std::max<TimeMs>(1, std::llround(repair.median_h * std::exp(repair.sigma * Normal()) * kMsPerHourD));
}

void FailureInjector::Draw() {
  double total = node_rate_per_ms_;
  for (double r : domain_rate_per_ms_) total += r;
  next_ = Failure{};
  if (total <= 0) {
    next_.at = kNever;
    return;
  }
  const double wait = -std::log(1.0 - rng_.UnitDouble()) / total;
  clock_ += std::max<TimeMs>(1, std::llround(wait));
  next_.at = clock_;
  double pick = rng_.UnitDouble() * total;
  if (pick < node_rate_per_ms_ || domain_rate_per_ms_.empty()) {
    // Which cause, then which accelerator (so which node).
    double c = rng_.UnitDouble() * spec_.PerAcceleratorHour();
    int cause = 0;
    while (cause < kFailureCauses - 1 && c >= spec_.causes[cause].per_accelerator_hour) {
      c -= spec_.causes[cause].per_accelerator_hour;
      ++cause;
    }
    const AcceleratorId accelerator(static_cast<uint32_t>(rng_.Uniform(fleet_.accelerator_count())));
    const NodeId node = fleet_.NodeOf(accelerator);
    next_.nodes = {node};
    next_.cause = static_cast<FailureCause>(cause);
    next_.repair = RepairTime(spec_.causes[cause].repair);
    if (next_.cause == FailureCause::kGpu) {
      next_.device = accelerator.value() - fleet_.node(node).accelerators.first.value();
      next_.reason = fmt::format("gpu: accelerator {} failed", *next_.device);
    } else {
      next_.reason = fmt::format("{} failure", FailureCauseName(next_.cause));
    }
    return;
  }
  pick -= node_rate_per_ms_;
  size_t d = 0;
  while (d + 1 < domain_rate_per_ms_.size() && pick >= domain_rate_per_ms_[d]) pick -= domain_rate_per_ms_[d++];
  const std::vector<std::vector<NodeId>>& groups = domains_[d];
  next_.nodes = groups[rng_.Uniform(groups.size())];
  next_.cause = FailureCause::kHost;
  next_.domain = d;
  next_.repair = RepairTime(spec_.domains[d].repair);
  next_.reason = fmt::format("{} failure ({} nodes)", spec_.domains[d].name, next_.nodes.size());
}

Failure FailureInjector::Take() {
  Failure taken = std::move(next_);
  Draw();
  return taken;
}

MaintenanceWindow FailureInjector::Window(TimeMs at) {
  MaintenanceWindow window{at, {}};
  for (uint32_t i = 0; i < spec_.maintenance->racks && i < fleet_.racks().size(); ++i) {
    window.racks.push_back(RackId(next_rack_));
    next_rack_ = (next_rack_ + 1) % static_cast<uint32_t>(fleet_.racks().size());
  }
  return window;
}

MaintenanceWindow FailureInjector::TakeMaintenance() {
  MaintenanceWindow taken = std::move(*maintenance_);
  maintenance_ = Window(taken.at + std::llround(spec_.maintenance->every_h * kMsPerHourD));
  return taken;
}

}  // namespace joule::sim
