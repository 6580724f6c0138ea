// Binary forms (io/bytes.h) of what a control-plane snapshot holds per live job: the spec as
// accepted (io/job_spec.h) and the engine's state of the job (sched/engine_state.h). JSON of a
// hundred thousand pending jobs took seconds to parse back (every spec parsed again); these read
// back in a fraction of that. Readers leave the ByteReader failed on malformed input (an enum out
// of range, a count longer than the bytes left); the caller checks it once per job.
// Thread-safety: stateless.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "io/bytes.h"
#include "io/job_spec.h"
#include "sched/engine_state.h"

namespace joule::io {

void WriteSubmitSpec(ByteWriter& out, const SubmitSpec& spec);
SubmitSpec ReadSubmitSpec(ByteReader& in);

// The engine's jobs (EngineState::jobs) as one byte string; errors name the job at fault.
std::string EncodeEngineJobs(const std::vector<EngineState::Job>& jobs);
Result<std::vector<EngineState::Job>> DecodeEngineJobs(std::string_view bytes);

}  // namespace joule::io
