// Loads a tenant workload model (YAML; format in docs/workload-model.md) into
// sim::WorkloadModel, resolving tenants and accelerator types against a scenario. An inference
// service may take its burstiness from a request trace in the Azure LLM inference format
// (TIMESTAMP column): the coefficient of variation of its per-minute request counts.
// Errors: "file:line:column: path: message". Thread-safety: stateless.
#pragma once

#include <string>

#include "base/status.h"
#include "io/scenario.h"
#include "sim/tenant_model.h"

namespace joule::io {

Result<sim::WorkloadModel> LoadWorkloadModel(const std::string& path, const Scenario& scenario);

// Coefficient of variation (stddev / mean) of requests per minute in an Azure LLM inference
// trace (`TIMESTAMP` as "YYYY-MM-DD HH:MM:SS[.fraction]").
Result<double> RequestBurstiness(const std::string& path);

}  // namespace joule::io
