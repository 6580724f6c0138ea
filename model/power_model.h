// The power model's figures, as a scenario states them (power/draw.h computes with them): per kind
// of work, the average accelerator draw while working and how much a power cap slows it, and the
// lowest power limit the governor sets. Defaults from shared/data/README.md. Plain values.
#pragma once

#include <array>
#include <cstdint>

namespace joule {

enum class WorkClass : uint8_t { kTraining, kInference, kOther };
inline constexpr size_t kWorkClasses = 3;

struct WorkPowerSpec {
  uint32_t natural_permille = 0;       // average draw while working, per-mille of rated
  uint32_t cap_sensitivity_milli = 0;  // s in speed = 1 - s x (1 - limit / natural), thousandths
};

struct PowerModelSpec {
  // Training ~0.8 of rated (0.75-0.85), s 0.3; inference 0.5 as prefill near rated and decode at
  // 0.2-0.4, s 0.2 (prefill 0.5 and decode 0.05 weighted one third to two thirds by time); other
  // work (evaluation, batch) 0.6, s 0.3.
  std::array<WorkPowerSpec, kWorkClasses> work = {{{800, 300}, {500, 200}, {600, 300}}};
  // The lowest limit the governor sets, per-mille of rated: deep caps cost more speed than the
  // linear model says, and accelerators refuse limits far below their default (H100: 200 of 700 W).
  uint32_t min_limit_permille = 400;

  const WorkPowerSpec& of(WorkClass w) const { return work[static_cast<size_t>(w)]; }
};

}  // namespace joule
