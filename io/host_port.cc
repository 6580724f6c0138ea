#include "io/host_port.h"

#include <charconv>

#include <fmt/format.h>

namespace joule::io {

Result<HostPort> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Status::Error(fmt::format("'{}' must be HOST:PORT, e.g. 127.0.0.1:6820", text));
  }
  HostPort out;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']')
      return Status::Error(fmt::format("'{}': unclosed [ of an IPv6 host", text));
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status::Error(fmt::format("'{}': an IPv6 host goes in brackets, e.g. [::1]:6820", text));
  }
  out.host = std::string(host);
  const std::string_view port = text.substr(colon + 1);
  unsigned value = 0;
  const std::from_chars_result parsed = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || port.size() > 5 || parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() ||
      value > 65535) {
    return Status::Error(fmt::format("'{}': the port must be a number from 0 to 65535 (0: any free port)", text));
  }
  out.port = static_cast<uint16_t>(value);
  return out;
}

}  // namespace joule::io
