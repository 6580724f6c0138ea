#include "sched/placement/fragmentation.h"

#include <algorithm>
#include <map>
#include <tuple>

namespace joule {

std::vector<TypicalTask> TypicalTasks(std::span<const TaskShape> workload, double coverage) {
  using Key = std::tuple<Millicores, MilliGpu, uint32_t, uint64_t>;
  std::map<Key, uint64_t> counts;
  for (const TaskShape& t : workload) counts[{t.cpu, t.milli_per_gpu, t.gpus, t.types.mask}]++;
  std::vector<std::pair<Key, uint64_t>> sorted(counts.begin(), counts.end());
  // Most frequent first; equal counts in descending key order (stable and independent of input order).
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first > b.first;
  });
  std::vector<TypicalTask> typical;
  const double target = coverage * static_cast<double>(workload.size());
  double covered = 0;
  for (const auto& [key, count] : sorted) {
    if (covered >= target) break;
    auto [cpu, milli, gpus, mask] = key;
    typical.push_back({TaskShape{cpu, 0, gpus, milli, TypeSet{mask}}, static_cast<double>(count)});
    covered += static_cast<double>(count);
  }
  for (TypicalTask& t : typical) t.weight /= covered;
  return typical;
}

double NodeFragmentation(std::span<const uint16_t> gpu_left, Millicores cpu_left, std::optional<AcceleratorTypeId> type,
                         std::span<const TypicalTask> typical) {
  int64_t total = 0;
  for (uint16_t left : gpu_left) total += left;
  if (total == 0 || !type) return 0;
  double frag = 0;
  for (const TypicalTask& t : typical) {
    const TaskShape& s = t.shape;
    int64_t unusable = total;
    if (s.gpus > 0 && s.types.Allows(*type) && cpu_left >= s.cpu) {
      uint32_t fitting = 0;
      int64_t too_small = 0;
      for (uint16_t left : gpu_left) {
        if (left >= s.milli_per_gpu) {
          ++fitting;
        } else {
          too_small += left;
        }
      }
      if (fitting >= s.gpus) unusable = too_small;
    }
    frag += t.weight * static_cast<double>(unusable);
  }
  return frag;
}

}  // namespace joule
