#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

namespace joule::sim {
namespace {

constexpr double kMsPerS = 1000.0;
constexpr double kSlowdownFloorS = 10.0;  // Feitelson's bound: very short jobs do not dominate

double NearestRank(const std::vector<double>& sorted, double p) {
  const double rank = std::ceil(p * static_cast<double>(sorted.size()));
  const size_t index = static_cast<size_t>(std::max(rank, 1.0)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

struct GroupValues {
  std::vector<double> wait, jct;
  double slowdown_sum = 0;
};

void Count(const JobRecord& job, GroupFigures& g, GroupValues& v) {
  g.submitted++;
  if (job.outcome == Outcome::kRejected) g.rejected++;
  if (job.outcome == Outcome::kTimeLimit) g.time_limit++;
  if (job.first_start) {
    g.started++;
    v.wait.push_back(static_cast<double>(*job.first_start - job.submit) / kMsPerS);
  }
  if (job.outcome == Outcome::kCompleted) {
    g.completed++;
    const double jct = static_cast<double>(*job.end - job.submit) / kMsPerS;
    v.jct.push_back(jct);
    v.slowdown_sum += std::max(1.0, jct / std::max(static_cast<double>(job.duration) / kMsPerS, kSlowdownFloorS));
  }
}

void Finish(GroupFigures& g, GroupValues& v) {
  g.wait_s = Distribute(std::move(v.wait));
  g.jct_s = Distribute(std::move(v.jct));
  g.mean_bounded_slowdown = g.completed > 0 ? v.slowdown_sum / static_cast<double>(g.completed) : 0;
}

}  // namespace

Distribution Distribute(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  d.count = values.size();
  double sum = 0;
  for (double x : values) sum += x;
  d.mean = sum / static_cast<double>(values.size());
  d.p50 = NearestRank(values, 0.50);
  d.p95 = NearestRank(values, 0.95);
  d.p99 = NearestRank(values, 0.99);
  d.max = values.back();
  return d;
}

EttrGroup Ettr(const SimResult& r, uint32_t min_accelerators) {
  EttrGroup g{min_accelerators};
  double work = 0, wall = 0, interruptions = 0;
  for (const JobRecord& job : r.jobs) {
    if (job.accelerators < min_accelerators || !job.first_start) continue;
    g.jobs++;
    work += static_cast<double>(job.work_done);
    wall += static_cast<double>(job.end.value_or(r.end) - *job.first_start);
    interruptions += job.interruptions;
    g.failed += job.outcome == Outcome::kFailed;
  }
  if (wall > 0) g.ettr = work / wall;
  g.wall_hours = wall / static_cast<double>(kMsPerHour);
  if (g.jobs > 0) g.interruptions_per_job = interruptions / static_cast<double>(g.jobs);
  return g;
}

Summary Summarize(const SimResult& r) {
  Summary s;
  s.jobs = r.jobs.size();
  GroupValues all;
  std::array<GroupValues, kSizeClasses> by_size;
  std::vector<GroupValues> by_tenant(r.tenant_names.size());
  s.by_tenant.resize(r.tenant_names.size());
  for (const JobRecord& job : r.jobs) {
    const int size = SizeClass(job.accelerators);
    Count(job, s.all, all);
    Count(job, s.by_size[size], by_size[size]);
    Count(job, s.by_tenant[job.tenant.value()], by_tenant[job.tenant.value()]);
    if (size == kSizeClasses - 1 && job.outcome != Outcome::kRejected) {
      const TimeMs waited = job.first_start ? *job.first_start - job.submit : r.end - job.submit;
      s.longest_giant_wait_s = std::max(s.longest_giant_wait_s, static_cast<double>(waited) / kMsPerS);
    }
  }
  Finish(s.all, all);
  for (int c = 0; c < kSizeClasses; ++c) Finish(s.by_size[c], by_size[c]);
  for (size_t t = 0; t < by_tenant.size(); ++t) Finish(s.by_tenant[t], by_tenant[t]);

  s.tenant_utilisation.assign(r.tenant_names.size(), 0.0);
  if (!r.samples.empty() && r.capacity > 0) {
    const double n = static_cast<double>(r.samples.size());
    const double capacity = static_cast<double>(r.capacity) * 1000.0;
    for (const Sample& x : r.samples) {
      s.utilisation += static_cast<double>(x.allocated_milli) / capacity / n;
      s.busy += static_cast<double>(x.busy_milli) / capacity / n;
      s.mean_pending_jobs += x.pending_jobs / n;
      s.max_pending_jobs = std::max<uint64_t>(s.max_pending_jobs, x.pending_jobs);
      s.mean_fragmented_accelerators += static_cast<double>(x.fragmented_milli) / 1000.0 / n;
      for (size_t t = 0; t < x.tenant_milli.size(); ++t) {
        s.tenant_utilisation[t] += static_cast<double>(x.tenant_milli[t]) / capacity / n;
      }
    }
  }
  s.preemptions = r.preemptions;
  s.lost_accelerator_hours = r.lost_accelerator_hours;
  for (const JobRecord& job : r.jobs) s.failed += job.outcome == Outcome::kFailed;
  s.ettr_large = Ettr(r, 1025);
  s.ettr_16k = Ettr(r, 16384);
  if (r.allocated_accelerator_hours > 0) s.goodput = r.useful_accelerator_hours / r.allocated_accelerator_hours;
  s.recover_s = Distribute(r.failures.recover_s);
  s.reservation_breaches = r.reservation_breaches;
  return s;
}

}  // namespace joule::sim
