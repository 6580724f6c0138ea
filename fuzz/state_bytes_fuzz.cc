// libFuzzer target: the binary form of a snapshot's jobs (io/state_bytes.h). Any input is read as
// jobs or refused, never read past its end (the sanitizers watch); what is read encodes to bytes
// that read back to the same encoding (the form is canonical after one round).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "io/state_bytes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  joule::Result<std::vector<joule::EngineState::Job>> jobs = joule::io::DecodeEngineJobs(bytes);
  if (jobs.ok()) {
    const std::string encoded = joule::io::EncodeEngineJobs(*jobs);
    joule::Result<std::vector<joule::EngineState::Job>> back = joule::io::DecodeEngineJobs(encoded);
    if (!back.ok() || joule::io::EncodeEngineJobs(*back) != encoded) std::abort();
  }
  joule::io::ByteReader in(bytes);
  const joule::io::SubmitSpec spec = joule::io::ReadSubmitSpec(in);
  if (in.ok()) {
    std::string encoded;
    joule::io::ByteWriter out(encoded);
    joule::io::WriteSubmitSpec(out, spec);
    joule::io::ByteReader again(encoded);
    const joule::io::SubmitSpec back = joule::io::ReadSubmitSpec(again);
    std::string twice;
    joule::io::ByteWriter out_again(twice);
    joule::io::WriteSubmitSpec(out_again, back);
    if (!again.done() || twice != encoded) std::abort();
  }
  return 0;
}
