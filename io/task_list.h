// Reads a task list in the Alibaba openb format (cluster-trace-gpu-v2023 pod lists:
// name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec],...) into task shapes. Accelerator type
// names in gpu_spec ("V100M16|V100M32") resolve against the fleet's catalog; a spec naming no
// known type can run nowhere. Errors name file:line: column. Thread-safety: stateless.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "model/catalog.h"
#include "sched/resources.h"

namespace joule::io {

Result<std::vector<TaskShape>> ReadOpenbTaskList(const std::string& path, const Catalog& catalog);

// One row with its times, for replaying the list over time (the twin). Times are the trace's
// seconds; absent when the list has no such column or the field is empty.
struct OpenbTask {
  TaskShape shape;
  std::optional<int64_t> creation_s, deletion_s, scheduled_s;
  int line = 0;
};

Result<std::vector<OpenbTask>> ReadOpenbTasks(const std::string& path, const Catalog& catalog);

// "V100M16|V100M32" as a type set over the catalog; a spec naming no known type matches no node.
TypeSet ParseTypeSpec(std::string_view spec, const Catalog& catalog);

}  // namespace joule::io
