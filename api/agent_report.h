// The body of an agent's heartbeat (POST /api/v1/agents/{node}/heartbeat, docs/api.md), checked
// field by field: errors name the field ("ended[2].exit_code") and what it must be.
// Thread-safety: a function over its arguments.
#pragma once

#include <string_view>
#include <variant>

#include "control/control_plane.h"

namespace joule::api {

std::variant<control::AgentReport, control::ApiError> ParseAgentReport(std::string_view body);

}  // namespace joule::api
