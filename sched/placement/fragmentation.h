// GPU fragmentation as defined by Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
// Workloads with Fragmentation Gradient Descent" (USENIX ATC'23): the expected amount of a node's
// free accelerator capacity that a task drawn from the workload could not use.
// Pure functions; thread-safe.
#pragma once

#include <span>
#include <vector>

#include "sched/resources.h"

namespace joule {

struct TypicalTask {
  TaskShape shape;  // memory is not part of the measure and is left 0
  double weight = 0;
};

// The workload's distinct task shapes (CPU, accelerator count and fraction, types) by frequency,
// most frequent first, cut once they cover `coverage` (0..1] of all tasks, weights renormalised
// to sum to 1. The paper's setting is 0.95, CPU-only tasks included.
std::vector<TypicalTask> TypicalTasks(std::span<const TaskShape> workload, double coverage);

// Expected unusable milli-GPU on one node: for each typical task, all free capacity when the task
// cannot run there (type, CPU or accelerators short; and always for CPU-only tasks), otherwise
// the free capacity of devices with less room than the task needs per device.
double NodeFragmentation(std::span<const uint16_t> gpu_left, Millicores cpu_left, std::optional<AcceleratorTypeId> type,
                         std::span<const TypicalTask> typical);

}  // namespace joule
