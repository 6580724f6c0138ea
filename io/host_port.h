// HOST:PORT as `listen:`, `--listen` and `--metrics-listen` take it: a host (name, IPv4, or IPv6
// in brackets) and a port of 0 to 65535 (0: any free port), every digit checked.
// Thread-safety: stateless; call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace joule::io {

struct HostPort {
  std::string host;  // brackets of an IPv6 literal removed
  uint16_t port = 0;
};

// Errors say what is wrong with `text` (without naming the flag or field: the caller does).
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace joule::io
