// libFuzzer target: job specs (io/job_spec.h). Any input is answered with a spec or an error,
// never a crash; a spec that parses passes CheckSpec and round-trips through its JSON encoding,
// which the server journals and replays.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  joule::Result<joule::io::SubmitSpec> spec = joule::io::ParseJobSpec(text, "fuzz");
  if (!spec.ok() || joule::io::CheckSpec(*spec)) return 0;
  const std::string encoded = joule::io::EncodeJobSpec(*spec);
  joule::Result<joule::io::SubmitSpec> back = joule::io::ParseJobSpec(encoded, "encoded");
  if (!back.ok() || joule::io::EncodeJobSpec(*back) != encoded) std::abort();
  return 0;
}
