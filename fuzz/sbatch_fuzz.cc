// libFuzzer target: Slurm batch scripts (io/sbatch.h). Any input is answered with a request or an
// error naming its line, never a crash; a request the server would accept (CheckSpec) encodes to a
// job spec that reads back the same, so that the server can replay it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/job_spec.h"
#include "io/sbatch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  joule::Result<joule::io::BatchJob> job = joule::io::ParseBatchScript(text, "fuzz");
  if (!job.ok()) {
    if (job.status().message().rfind("fuzz:", 0) != 0) std::abort();  // errors name the script
    return 0;
  }
  joule::io::SubmitSpec spec = joule::io::FromBatchJob(*job);
  if (spec.name.empty()) spec.name = "sbatch";
  if (joule::io::CheckSpec(spec)) return 0;
  const std::string encoded = joule::io::EncodeJobSpec(spec);
  joule::Result<joule::io::SubmitSpec> back = joule::io::ParseJobSpec(encoded, "encoded");
  if (!back.ok() || joule::io::EncodeJobSpec(*back) != encoded) std::abort();
  return 0;
}
