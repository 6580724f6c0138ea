#include "sim/tenant_model.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <tuple>

#include <fmt/format.h>

#include "base/rng.h"

namespace joule::sim {
namespace {

constexpr TimeMs kHour = kMsPerHour;
constexpr TimeMs kDay = kMsPerDay;

// Sort keys of a generated job, beside it: (submit time, tenant, class or service, draw).
struct Key {
  TimeMs submit;
  uint32_t origin;  // tenant and class in model order
  uint64_t draw;
  bool operator<(const Key& o) const { return std::tie(submit, origin, draw) < std::tie(o.submit, o.origin, o.draw); }
};

struct Drafts {
  std::vector<WorkloadJob> jobs;
  std::vector<Key> keys;
  void Add(WorkloadJob job, uint32_t origin, uint64_t draw) {
    keys.push_back({job.spec.submit_time, origin, draw});
    job.origin = origin;
    jobs.push_back(std::move(job));
  }
};

double LogUniform(Rng& rng, double lo, double hi) {
  return std::exp(std::log(lo) + rng.UnitDouble() * (std::log(hi) - std::log(lo)));
}

// A standard normal deviate (Box-Muller), from the generator alone.
double Normal(Rng& rng) {
  const double u1 = 1.0 - rng.UnitDouble();
  const double u2 = rng.UnitDouble();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint32_t DrawSize(Rng& rng, const JobClass& c) {
  const double lo = std::log2(std::max(c.min_accelerators, 1u));
  const double hi = std::log2(std::max(c.max_accelerators, c.min_accelerators));
  const uint32_t size = static_cast<uint32_t>(std::exp2(std::round(lo + rng.UnitDouble() * (hi - lo))));
  return std::clamp(size, c.min_accelerators, c.max_accelerators);
}

void GenerateClass(const JobClass& c, TenantId tenant, TimeMs horizon, Rng& rng, uint32_t origin, Drafts& out) {
  if (c.per_day <= 0) return;
  const double mean_gap = static_cast<double>(kDay) / c.per_day;
  double t = -std::log(1.0 - rng.UnitDouble()) * mean_gap;
  for (uint64_t draw = 0; t < static_cast<double>(horizon); ++draw) {
    const uint32_t size = DrawSize(rng, c);
    const uint32_t per_worker = std::min(c.per_worker, size);
    JobSpec spec;
    spec.tenant = tenant;
    spec.workers = std::max(1u, size / per_worker);
    spec.worker = TaskShape{c.cpu_per_accelerator * per_worker, c.memory_per_accelerator * per_worker, per_worker,
                            c.milli_per_accelerator, c.types};
    spec.topology = c.topology;
    spec.priority = c.priority;
    spec.submit_time = static_cast<TimeMs>(t);
    const TimeMs duration = std::max<TimeMs>(
        1000,
        static_cast<TimeMs>(LogUniform(rng, static_cast<double>(c.min_duration), static_cast<double>(c.max_duration))));
    const double factor = c.min_limit_factor + rng.UnitDouble() * (c.max_limit_factor - c.min_limit_factor);
    spec.time_limit = static_cast<TimeMs>(static_cast<double>(duration) * factor);
    spec.runtime_estimate = spec.time_limit;
    spec.checkpoint_interval = c.checkpoint_interval;
    spec.work = c.work;
    spec.max_restarts = c.max_restarts;
    if (c.spares_per_1000_workers > 0) {
      spec.spare_nodes =
          std::max<uint32_t>(1, static_cast<uint32_t>(std::llround(c.spares_per_1000_workers * spec.workers / 1000.0)));
    }
    if (c.flexible_deadline) {
      spec.flexible = true;
      spec.deadline = spec.submit_time + *c.flexible_deadline;
    }
    out.Add(WorkloadJob{std::move(spec), duration, 0}, origin, draw);
    t += -std::log(1.0 - rng.UnitDouble()) * mean_gap;
  }
}

// Replicas each hour follow the daily curve times a burst factor; replica slot i lives through
// every maximal run of hours where the count exceeds i (the newest replica is the first to go),
// and each such run becomes one job lasting the run's length.
void GenerateService(const InferenceService& s, TenantId tenant, TimeMs horizon, Rng& rng, uint32_t origin,
                     Drafts& out) {
  const int64_t hours = (horizon + kHour - 1) / kHour;
  std::vector<uint32_t> replicas(static_cast<size_t>(hours));
  for (int64_t h = 0; h < hours; ++h) {
    const double phase = 2.0 * std::numbers::pi * static_cast<double>((h % 24) - s.peak_hour) / 24.0;
    const double curve = s.trough + (1.0 - s.trough) * (0.5 + 0.5 * std::cos(phase));
    const double burst = std::max(0.0, 1.0 + s.burstiness * Normal(rng));
    const double n = std::round(static_cast<double>(s.peak_replicas) * curve * burst);
    replicas[static_cast<size_t>(h)] = static_cast<uint32_t>(std::max(1.0, n));
  }
  const uint32_t most = *std::max_element(replicas.begin(), replicas.end());
  uint64_t draw = 0;
  for (uint32_t slot = 0; slot < most; ++slot) {
    for (int64_t h = 0; h < hours;) {
      if (replicas[static_cast<size_t>(h)] <= slot) {
        ++h;
        continue;
      }
      int64_t until = h;
      while (until < hours && replicas[static_cast<size_t>(until)] > slot) ++until;
      JobSpec spec;
      spec.tenant = tenant;
      spec.workers = 1;
      spec.worker =
          TaskShape{s.cpu_per_replica, s.memory_per_replica, s.accelerators_per_replica, kMilliPerGpu, s.types};
      spec.priority = s.priority;
      spec.submit_time = h * kHour;
      spec.runtime_estimate = (until - h) * kHour;
      spec.work = s.work;
      out.Add(WorkloadJob{std::move(spec), (until - h) * kHour, 0}, origin, draw++);
      h = until;
    }
  }
}

}  // namespace

Workload Generate(const WorkloadModel& model, const std::vector<TenantSpec>& tenants, TimeMs horizon, uint64_t seed) {
  Workload w;
  for (const TenantSpec& t : tenants) w.tenant_names.push_back(t.name);
  Drafts drafts;
  for (uint32_t tr = 0; tr < model.tenants.size(); ++tr) {
    const TenantWorkload& tw = model.tenants[tr];
    const std::string& tenant = tenants[tw.tenant.value()].name;
    uint32_t rank = 0;
    // Each class and service draws from its own stream, so adding one leaves the others alone.
    for (const JobClass& c : tw.classes) {
      Rng rng(seed ^ (uint64_t{tr} << 40) ^ (uint64_t{rank++} << 20) ^ 0x5eed);
      w.origins.push_back(fmt::format("{}/{}", tenant, c.name));
      GenerateClass(c, tw.tenant, horizon, rng, static_cast<uint32_t>(w.origins.size() - 1), drafts);
    }
    for (const InferenceService& s : tw.services) {
      Rng rng(seed ^ (uint64_t{tr} << 40) ^ (uint64_t{rank++} << 20) ^ 0x1f3d);
      w.origins.push_back(fmt::format("{}/{}", tenant, s.name));
      GenerateService(s, tw.tenant, horizon, rng, static_cast<uint32_t>(w.origins.size() - 1), drafts);
    }
  }
  // Order by key, permuting the jobs in place (a month is millions of jobs: no second copy).
  std::vector<uint32_t> order(drafts.jobs.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return drafts.keys[a] < drafts.keys[b]; });
  drafts.keys = {};
  for (uint32_t i = 0; i < order.size(); ++i) {
    // Position i takes job order[i]; follow the cycle through the positions it displaces.
    uint32_t from = order[i], at = i;
    if (from == i) continue;
    WorkloadJob held = std::move(drafts.jobs[i]);
    while (from != i) {
      drafts.jobs[at] = std::move(drafts.jobs[from]);
      order[at] = at;
      at = from;
      from = order[at];
    }
    drafts.jobs[at] = std::move(held);
    order[at] = at;
  }
  w.jobs = std::move(drafts.jobs);
  for (uint32_t i = 0; i < w.jobs.size(); ++i) w.jobs[i].spec.id = i + 1;
  return w;
}

}  // namespace joule::sim
