#include "apps/text_format.h"

#include <cstdlib>

#include <fmt/format.h>

namespace joule::apps {

std::string Thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Power(int64_t watts) {
  double w = static_cast<double>(watts);
  int64_t magnitude = std::llabs(watts);
  if (magnitude >= 1'000'000'000) return fmt::format("{:.2f} GW", w / 1e9);
  if (magnitude >= 1'000'000) return fmt::format("{:.1f} MW", w / 1e6);
  if (magnitude >= 1'000) return fmt::format("{:.1f} kW", w / 1e3);
  return fmt::format("{} W", watts);
}

}  // namespace joule::apps
