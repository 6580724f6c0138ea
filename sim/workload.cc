#include "sim/workload.h"

#include "base/check.h"

#include <algorithm>
#include <cmath>

namespace joule::sim {

void SortBySubmit(Workload& workload) {
  std::sort(workload.jobs.begin(), workload.jobs.end(), [](const WorkloadJob& a, const WorkloadJob& b) {
    return a.spec.submit_time != b.spec.submit_time ? a.spec.submit_time < b.spec.submit_time : a.spec.id < b.spec.id;
  });
}

void ScaleArrivals(Workload& workload, double factor) {
  JOULE_CHECK(factor > 0);
  for (WorkloadJob& j : workload.jobs) {
    const TimeMs submit = static_cast<TimeMs>(std::llround(static_cast<double>(j.spec.submit_time) * factor));
    if (j.spec.deadline) *j.spec.deadline += submit - j.spec.submit_time;  // the same slack after the new arrival
    j.spec.submit_time = submit;
  }
}

int SizeClass(uint64_t accelerators) {
  if (accelerators <= 8) return 0;
  if (accelerators <= 128) return 1;
  if (accelerators <= 1024) return 2;
  return 3;
}

const char* SizeClassName(int size_class) {
  static constexpr const char* kNames[kSizeClasses] = {"1-8", "9-128", "129-1024", "1025+"};
  return kNames[size_class];
}

uint64_t Accelerators(const JobSpec& spec) { return uint64_t{spec.workers} * spec.worker.gpus; }

}  // namespace joule::sim
