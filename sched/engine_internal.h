// What the engine's stages (engine.cc, engine_pass.cc, engine_preempt.cc, engine_failures.cc)
// share and nothing else needs: expected ends and the backfill hold.
#pragma once

#include <cstdint>

#include "sched/engine.h"

namespace joule {

inline constexpr TimeMs kNever = INT64_MAX;

inline TimeMs ExpectedRuntime(const JobSpec& spec) {
  if (spec.runtime_estimate) return *spec.runtime_estimate;
  if (spec.time_limit) return *spec.time_limit;
  return kNever;
}

inline TimeMs ExpectedEnd(TimeMs start, const JobSpec& spec) {
  const TimeMs runtime = ExpectedRuntime(spec);
  return runtime == kNever ? kNever : start + runtime;
}

inline bool Overlaps(TypeSet a, TypeSet b) { return a.Any() || b.Any() || (a.mask & b.mask) != 0; }

// A blocked job's claim on the future: at `start`, enough accelerators of `types` will be free
// for it, with `spare` more than it needs; later jobs may use the spare without delaying it.
struct Engine::BackfillHold {
  JobId job = 0;
  TenantId tenant;
  TimeMs start = 0;
  TypeSet types;
  uint64_t spare = 0;
};

}  // namespace joule
