// The control plane's journal records (docs/decisions/0007-control-plane.md): one versioned JSON
// object per accepted change — submit, cancel, health (drain/resume), tenant (quota) — with who
// asked, when, and the engine event it became (io/journal_json.h); and one per scheduling pass
// ("step": its time and the last journal sequence number whose inputs it consumed); and one per
// ended worker's measured energy ("energy", outside the engine); and once, the journal's own
// identity ("cluster": a random id, which node agents bind their state to). Replaying
// the steps with their inputs re-runs the engine exactly as the server ran it: the server does so
// on restart, `joule schedule --journal` to print what it decided. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "io/job_spec.h"
#include "sched/events.h"

namespace joule::control {

struct JournalRecord {
  enum class Type { kSubmit, kCancel, kHealth, kTenant, kStep, kFinish, kEnergy, kCluster };
  Type type = Type::kStep;
  TimeMs at = 0;
  std::string who;
  std::optional<Event> event;  // inputs
  io::SubmitSpec spec;         // submit: as accepted
  std::string key;             // submit: idempotency key, may be empty; cluster: the cluster's id
  uint64_t through = 0;        // step
  // energy (no engine event): one ended worker's measured energy, by job, run and rank
  JobId job = 0;
  uint32_t run = 0, rank = 0;
  double joules = 0;
};

std::string EncodeRecord(const JournalRecord& record);
// Errors name what is wrong ("type: unknown type 'x'").
Result<JournalRecord> DecodeRecord(std::string_view payload);

// Reads the journal at `path` (which must exist) and calls `step` for every scheduling pass in it,
// with the time it ran and the engine events it consumed, in order.
Status ReplaySteps(const std::string& path, const std::function<void(TimeMs at, std::vector<Event> events)>& step);

}  // namespace joule::control
