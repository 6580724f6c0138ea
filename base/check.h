// JOULE_CHECK: aborts loudly when an invariant is broken. Not for bad input (use Status).
// Active in every build type: a scheduler that double-books silently is worse than one that stops.
#pragma once

namespace joule::internal {
[[noreturn]] void CheckFailed(const char* expr, const char* file, int line);
}  // namespace joule::internal

#define JOULE_CHECK(cond)                                                   \
  do {                                                                      \
    if (!(cond)) ::joule::internal::CheckFailed(#cond, __FILE__, __LINE__); \
  } while (false)
