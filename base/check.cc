#include "base/check.h"

#include <cstdio>
#include <cstdlib>

namespace joule::internal {

void CheckFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "CHECK failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace joule::internal
