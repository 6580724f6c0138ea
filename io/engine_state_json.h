// The engine's state (sched/engine_state.h) as JSON, for the control plane's snapshots. Enums are
// their numbers, doubles keep every digit (they round-trip exactly), ids are the engine's.
// Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "sched/engine_state.h"

namespace joule::io {

nlohmann::json EngineStateJson(const EngineState& state);
// Errors name the field that is missing, mistyped or out of range.
Result<EngineState> EngineStateOf(const nlohmann::json& j);

}  // namespace joule::io
