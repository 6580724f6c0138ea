// The power model: what a running worker adds to the campus's IT draw, under a power limit, and
// how fast it works then. Both the engine's power governor (sched/power_governor.h) and the twin
// use it; the twin sums draws itself, worker by worker, so its budget check is independent of the
// governor's ledger.
//
// An accelerator draws its idle power when idle and, while working, a share of its rated power set
// by the kind of work — training ~0.8 of rated (reference range 0.75-0.85), LLM inference ~0.5 as a
// mix of prefill near rated and decode at 0.2-0.4, other work (evaluation, batch) 0.6
// (shared/data/README.md). Its node's overhead (CPUs, memory, NICs, fans) rises from idle to
// rated with the share of the node's accelerators in use. Rack overheads stay at idle.
//
// A power limit is a share of the accelerator's rated power in per-mille (1000: rated, the
// default limit, i.e. uncapped). Below the work's natural draw the accelerator draws the limit
// and works at `1 - s * (1 - limit / natural)` of full speed, s the work's cap sensitivity:
// training 0.3, inference 0.2 (prefill 0.5 and decode 0.05, weighted one third to two thirds by
// time), other 0.3. The figures are the campus's PowerModelSpec (model/power_model.h: these
// defaults, or the scenario's). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "model/fleet.h"
#include "model/power_model.h"

namespace joule {

std::optional<WorkClass> ParseWorkClass(std::string_view name);  // training, inference, other
std::string_view WorkClassName(WorkClass work);

inline constexpr uint32_t kRatedPermille = 1000;  // a power limit at rated power: no cap

// Share of full speed at `limit_permille` of rated: 1 at or above the natural draw.
double Throughput(const PowerModelSpec& model, WorkClass work, uint32_t limit_permille);

// Watts one worker adds above the fleet's all-idle draw when it runs on `node` holding
// `accelerators` x `milli_per_accelerator` (fractions add in proportion) under a power limit. The
// accelerator part never falls below idle.
double WorkerExtraWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator,
                        WorkClass work, uint32_t limit_permille = kRatedPermille);

// Idle watts of what one worker holds (accelerators and their share of the node's overhead):
// with WorkerExtraWatts, the power attributed to the job's tenant.
double WorkerIdleWatts(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator);

// The linear form of WorkerExtraWatts for limits at or below the natural draw and at or above idle:
// extra = slope * limit_permille + base. What the governor sums per budget.
struct ExtraLine {
  double slope = 0;  // watts per per-mille of limit
  double base = 0;
};
ExtraLine WorkerExtraLine(const Fleet& fleet, NodeId node, uint32_t accelerators, int64_t milli_per_accelerator);

// Idle draw of an accelerator type as per-mille of its rated power (rounded up): no limit below it
// changes anything.
uint32_t IdlePermille(const AcceleratorType& type);

}  // namespace joule
