// Engine events as journal records (store/journal.h): one JSON object per event with its time,
// `{"v": 1, "at": ms, "type": "submit" | "cancel" | "finish" | "health" | "forecast", ...}`. The
// server journals what it hands the engine; replaying the records into a fresh engine rebuilds
// its state, and the twin can replay production history. Thread-safe (no state).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "sched/events.h"

namespace joule::io {

struct TimedEvent {
  TimeMs at = 0;
  Event event;
};

std::string EncodeEvent(const TimedEvent& event);
// Errors name the field and what is wrong.
Result<TimedEvent> DecodeEvent(std::string_view json);

}  // namespace joule::io
