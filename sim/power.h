// The twin's power model: what a running job adds to the campus's IT draw. An accelerator draws
// its idle power when idle and a share of its rated power when working — the share set by the
// kind of work (training ~0.8 of rated, LLM inference ~0.5 as a mix of prefill near rated and
// decode at 0.2-0.4; shared/data/README.md) — and its node's overhead (CPUs, memory, NICs, fans)
// rises from idle to rated with the share of the node's accelerators in use. Rack overheads stay
// at idle. Facility power is IT power x the campus PUE. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "model/fleet.h"

namespace joule::sim {

enum class WorkClass : uint8_t { kTraining, kInference, kOther };

std::optional<WorkClass> ParseWorkClass(std::string_view name);  // training, inference, other
std::string_view WorkClassName(WorkClass work);

// Average accelerator draw while working, as a share of rated power: training 0.80 (reference
// range 0.75-0.85), inference 0.50, other (evaluation, batch, data processing) 0.60.
double WorkingShareOfRated(WorkClass work);

// Watts one worker adds above the fleet's all-idle draw when it runs on `node` holding
// `accelerators` x `milli_per_accelerator` (fractions add in proportion).
double WorkerExtraWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator,
                        WorkClass work);

// Idle watts of what one worker holds (accelerators and their share of the node's overhead):
// with WorkerExtraWatts, the power attributed to the job's tenant.
double WorkerIdleWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator);

}  // namespace joule::sim
