#include "model/failure_model.h"

namespace joule {

std::string_view FailureCauseName(FailureCause cause) {
  switch (cause) {
    case FailureCause::kGpu:
      return "gpu";
    case FailureCause::kHost:
      return "host";
    case FailureCause::kNetwork:
      return "network";
    case FailureCause::kSoftware:
      return "software";
    case FailureCause::kMaintenance:
      return "maintenance";
  }
  return "?";
}

std::string_view DomainLevelName(DomainLevel level) {
  switch (level) {
    case DomainLevel::kNvlinkDomain:
      return "nvlink_domain";
    case DomainLevel::kRack:
      return "rack";
    case DomainLevel::kPod:
      return "pod";
  }
  return "?";
}

// Rates: Llama 3's interruption shares (GPU 64%, software 13%, network 8%, unplanned host
// maintenance 8%, other host hardware 5%, the last 2% counted as host) of 2.0e-5 per GPU-hour.
// Repair times and domain rates are the project's assumptions (no public per-cause figures):
// see docs/decisions/0006-failures.md.
FailureModelSpec FailureModelSpec::Defaults() {
  FailureModelSpec spec;
  auto set = [&](FailureCause cause, double share, double median_h) {
    spec.causes[static_cast<size_t>(cause)] = CauseSpec{share * 2.0e-5, RepairSpec{median_h, 1.0}};
  };
  set(FailureCause::kGpu, 0.64, 24);
  set(FailureCause::kHost, 0.07, 8);
  set(FailureCause::kNetwork, 0.08, 2);
  set(FailureCause::kSoftware, 0.13, 0);
  set(FailureCause::kMaintenance, 0.08, 4);
  spec.domains = {
      {"rack power shelf", DomainLevel::kRack, 1e-5, {4, 0.7}},
      {"NVLink switch tray", DomainLevel::kNvlinkDomain, 1e-5, {8, 0.7}},
      {"leaf switch", DomainLevel::kPod, 5e-6, {2, 0.7}},
  };
  return spec;
}

double FailureModelSpec::PerAcceleratorHour() const {
  double sum = 0;
  for (const CauseSpec& c : causes) sum += c.per_accelerator_hour;
  return sum;
}

}  // namespace joule
