// libFuzzer target: job specs (io/job_spec.h). Any input is answered with a spec or an error,
// never a crash; a spec that parses passes CheckSpec and round-trips through its JSON encoding,
// which the server journals and replays; and where the plain-JSON fast path accepts a spec, the
// YAML path reads the same one (tabs aside, which JSON allows between tokens and YAML does not).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<joule::io::SubmitSpec> fast = joule::io::ParsePlainJson(text);
  joule::Result<joule::io::SubmitSpec> slow = joule::io::ParseJobSpecYaml(text, "fuzz");
  if (fast) {
    if (slow.ok()) {
      if (joule::io::EncodeJobSpec(*fast) != joule::io::EncodeJobSpec(*slow)) std::abort();
    } else if (text.find('\t') == std::string::npos) {
      std::abort();
    }
  }
  joule::Result<joule::io::SubmitSpec> spec = joule::io::ParseJobSpec(text, "fuzz");
  if (!spec.ok() || joule::io::CheckSpec(*spec)) return 0;
  const std::string encoded = joule::io::EncodeJobSpec(*spec);
  joule::Result<joule::io::SubmitSpec> back = joule::io::ParseJobSpec(encoded, "encoded");
  if (!back.ok() || joule::io::EncodeJobSpec(*back) != encoded) std::abort();
  return 0;
}
