// A small, seeded, portable random generator (SplitMix64). The engine and the twin take one of
// these explicitly, never a global: the same seed gives the same sequence on every platform,
// unlike std::uniform_int_distribution, whose algorithm is left to the library.
// Thread-safety: one instance per thread.
#pragma once

#include <cstdint>

#include "base/check.h"

namespace joule {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // The generator's whole state: Rng(state()) continues the same sequence.
  uint64_t state() const { return state_; }

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), without modulo bias. REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    JOULE_CHECK(n > 0);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }

  // Uniform in [0, 1).
  double UnitDouble() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

}  // namespace joule
