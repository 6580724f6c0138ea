// Reads a task list in the Alibaba openb format (cluster-trace-gpu-v2023 pod lists:
// name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec],...) into task shapes. Accelerator type
// names in gpu_spec ("V100M16|V100M32") resolve against the fleet's catalog; a spec naming no
// known type can run nowhere. Errors name file:line: column. Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "model/catalog.h"
#include "sched/resources.h"

namespace joule::io {

Result<std::vector<TaskShape>> ReadOpenbTaskList(const std::string& path, const Catalog& catalog);

}  // namespace joule::io
