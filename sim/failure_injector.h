// Draws a campus's failures from its failure model (model/failure_model.h), in time order and
// from a seeded generator: node failures by cause (a Poisson process over the campus's
// accelerators, the node hit chosen by accelerator, so an 8-GPU server fails twice as often as a
// 4-GPU tray), correlated failures of whole domains, and rolling maintenance windows.
// Thread-safety: not thread-safe; one per twin run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/rng.h"
#include "model/failure_model.h"
#include "model/fleet.h"

namespace joule::sim {

struct Failure {
  TimeMs at = 0;
  std::vector<NodeId> nodes;  // one for a component failure, the whole domain for a correlated one
  FailureCause cause = FailureCause::kGpu;
  std::optional<size_t> domain;    // index into the model's domains, for a correlated failure
  std::optional<uint32_t> device;  // the failed accelerator, for a GPU failure
  TimeMs repair = 0;               // how long the nodes stay out (0: software, no repair)
  std::string reason;
};

struct MaintenanceWindow {
  TimeMs at = 0;
  std::vector<RackId> racks;
};

class FailureInjector {
 public:
  // REQUIRES: the fleet outlives the injector.
  FailureInjector(const Fleet& fleet, FailureModelSpec spec, uint64_t seed);

  const Failure& peek() const { return next_; }
  Failure Take();  // the next failure; draws the one after
  std::optional<MaintenanceWindow> peek_maintenance() const { return maintenance_; }
  MaintenanceWindow TakeMaintenance();  // REQUIRES: peek_maintenance()
  const FailureModelSpec& spec() const { return spec_; }

 private:
  void Draw();
  MaintenanceWindow Window(TimeMs at);  // the next racks in turn
  TimeMs RepairTime(const RepairSpec& repair);
  double Normal();

  const Fleet& fleet_;
  FailureModelSpec spec_;
  Rng rng_;
  double node_rate_per_ms_ = 0;                            // all causes, the whole campus
  std::vector<double> domain_rate_per_ms_;                 // per domain spec, all its domains
  std::vector<std::vector<std::vector<NodeId>>> domains_;  // per domain spec: each domain's nodes
  TimeMs clock_ = 0;
  Failure next_;
  std::optional<MaintenanceWindow> maintenance_;
  uint32_t next_rack_ = 0;
};

}  // namespace joule::sim
