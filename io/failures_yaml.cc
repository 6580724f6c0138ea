#include "io/failures_yaml.h"

#include <fmt/format.h>

namespace joule::io {
namespace {

RepairSpec Repair(const Fields& f, RepairSpec repair) {
  if (f.Has("repair_median_h")) repair.median_h = f.Number("repair_median_h", 0, 1e5);
  if (f.Has("repair_sigma")) repair.sigma = f.Number("repair_sigma", 0, 5);
  return repair;
}

DomainLevel Level(const Fields& f) {
  const std::string level = f.String("level");
  for (DomainLevel l : {DomainLevel::kNvlinkDomain, DomainLevel::kRack, DomainLevel::kPod}) {
    if (level == DomainLevelName(l)) return l;
  }
  f.Fail("level", fmt::format("must be nvlink_domain, rack or pod, got '{}'", level));
}

}  // namespace

FailureModelSpec ParseFailures(const Fields& f) {
  FailureModelSpec spec = FailureModelSpec::Defaults();
  if (f.Has("causes")) {
    std::vector<std::string_view> names;
    names.reserve(kFailureCauses);
    for (int c = 0; c < kFailureCauses; ++c) names.push_back(FailureCauseName(static_cast<FailureCause>(c)));
    Fields causes(f.Get("causes"), f.PathOf("causes"), names);
    for (int c = 0; c < kFailureCauses; ++c) {
      if (!causes.Has(names[c])) continue;
      Fields one(causes.Get(names[c]), causes.PathOf(names[c]),
                 {"per_accelerator_hour", "repair_median_h", "repair_sigma"});
      CauseSpec& cause = spec.causes[static_cast<size_t>(c)];
      if (one.Has("per_accelerator_hour")) cause.per_accelerator_hour = one.Number("per_accelerator_hour", 0, 1);
      cause.repair = Repair(one, cause.repair);
    }
  }
  if (f.Has("domains")) {  // replaces the default list; [] for none
    spec.domains.clear();
    YAML::Node list = f.Get("domains");
    if (!list.IsSequence()) f.Fail("domains", "must be a list");
    for (size_t i = 0; i < list.size(); ++i) {
      Fields d(list[i], fmt::format("{}[{}]", f.PathOf("domains"), i),
               {"name", "level", "per_domain_hour", "repair_median_h", "repair_sigma"});
      spec.domains.push_back({d.String("name"), Level(d), d.Number("per_domain_hour", 0, 1), Repair(d, RepairSpec{})});
    }
  }
  if (f.Has("maintenance")) {
    Fields m(f.Get("maintenance"), f.PathOf("maintenance"), {"every_h", "racks", "drain_timeout_h", "duration_h"});
    MaintenanceSpec maintenance;
    if (m.Has("every_h")) maintenance.every_h = m.Positive("every_h");
    if (m.Has("racks")) maintenance.racks = m.Count("racks");
    if (m.Has("drain_timeout_h")) maintenance.drain_timeout_h = m.Number("drain_timeout_h", 0, 1e4);
    if (m.Has("duration_h")) maintenance.duration_h = m.Positive("duration_h");
    spec.maintenance = maintenance;
  }
  if (f.Has("triage_h")) spec.triage_h = f.Number("triage_h", 0, 1e3);
  if (f.Has("restart_overhead_min")) spec.restart_overhead_min = f.Number("restart_overhead_min", 0, 1e4);
  if (f.Has("checkpoint_stall_s")) spec.checkpoint_stall_s = f.Number("checkpoint_stall_s", 0, 1e5);
  return spec;
}

}  // namespace joule::io
