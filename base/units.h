// Integer units used across Joule. Power in watts, energy in joules, CPU in millicores, memory in
// MiB, time in milliseconds, fractions of an accelerator in milli-accelerators (1000 = one).
#pragma once

#include <cstdint>

namespace joule {

using Watts = int64_t;
using Millicores = int64_t;
using MiB = int64_t;
using TimeMs = int64_t;
using MilliGpu = int64_t;

inline constexpr MilliGpu kMilliPerGpu = 1000;
inline constexpr TimeMs kMsPerHour = 3'600'000;
inline constexpr TimeMs kMsPerDay = 24 * kMsPerHour;
inline constexpr Watts kWattsPerKw = 1000;
inline constexpr Watts kWattsPerMw = 1000 * 1000;

}  // namespace joule
