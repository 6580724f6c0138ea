// libFuzzer target: the agent report parser (api/agent_report.h), which reads every heartbeat
// before any check of who sent it. Any input is a report or a 400 naming the field; a report
// holds only what the parser promises: exit statuses 0 to 255, an address of at most 255 bytes,
// non-negative energies.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "api/agent_report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = joule::api::ParseAgentReport(text);
  if (const auto* error = std::get_if<joule::control::ApiError>(&parsed)) {
    if (error->status != 400 || error->message.empty()) std::abort();
    return 0;
  }
  const joule::control::AgentReport& r = std::get<joule::control::AgentReport>(parsed);
  if (r.address.size() > 255) std::abort();
  for (const joule::control::WorkerExit& e : r.ended) {
    if (e.exit_code < 0 || e.exit_code > 255 || (e.energy_j && *e.energy_j < 0)) std::abort();
  }
  for (const joule::control::WorkerEnergy& w : r.running) {
    if (w.energy_j < 0) std::abort();
  }
  return 0;
}
