// Loads a scenario file (YAML; format in docs/scenario-format.md) into a Fleet and its tenants.
// Every problem in the file, or in a node list it reads, is returned as one Status whose message
// starts with "file:line:column: path:". Relative paths inside a scenario resolve against the
// scenario file's folder. Thread-safety: stateless; call from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "model/failure_model.h"
#include "model/fleet.h"
#include "model/tenant.h"

namespace joule::io {

struct Scenario {
  Fleet fleet;
  std::vector<TenantSpec> tenants;
  std::vector<std::string> phases;           // declared build-out phases, in order; empty if none
  std::optional<FailureModelSpec> failures;  // the `failures:` block; none: the twin injects none
};

struct LoadOptions {
  // Build-out phase to load: the fleet holds the halls of this phase and all earlier ones, under
  // this phase's grid connection. Empty: the first phase.
  std::optional<std::string> phase;
};

Result<Scenario> LoadScenario(const std::string& path, const LoadOptions& options = {});

}  // namespace joule::io
