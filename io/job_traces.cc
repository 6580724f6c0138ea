#include "io/job_traces.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include "io/csv.h"
#include "io/task_list.h"

namespace joule::io {
namespace {

constexpr TimeMs kMsPerS = 1000;

sim::Workload Named(const Scenario& scenario) {
  sim::Workload w;
  for (const TenantSpec& t : scenario.tenants) w.tenant_names.push_back(t.name);
  if (w.tenant_names.empty()) w.tenant_names.push_back("default");
  return w;
}

std::optional<TenantId> FindTenant(const sim::Workload& w, std::string_view name) {
  for (uint32_t i = 0; i < w.tenant_names.size(); ++i) {
    if (w.tenant_names[i] == name) return TenantId(i);
  }
  return std::nullopt;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "YYYY-MM-DD HH:MM:SS" as seconds since the epoch, or nothing.
std::optional<int64_t> ParseTimestamp(std::string_view s) {
  int y, mo, d, h, mi, se;
  if (s.size() != 19 ||
      std::sscanf(std::string(s).c_str(), "%4d-%2d-%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &se) != 6) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  return DaysFromCivil(y, mo, d) * 86400 + int64_t{h} * 3600 + int64_t{mi} * 60 + se;
}

uint32_t PerWorker(uint32_t gpus) {
  if (gpus <= 8) return gpus;
  for (uint32_t p : {8u, 4u, 2u}) {
    if (gpus % p == 0) return p;
  }
  return 1;
}

Result<size_t> Required(const CsvReader& csv, std::string_view name) { return csv.Column(name); }

std::optional<size_t> Optional(const CsvReader& csv, std::string_view name) {
  Result<size_t> c = csv.Column(name);
  return c.ok() ? std::optional<size_t>(*c) : std::nullopt;
}

}  // namespace

Result<sim::Workload> ReadPhillyTrace(const std::string& path, const Scenario& scenario) {
  CsvReader csv(path);
  if (!csv.status().ok()) return csv.status();
  size_t col[4];
  const char* names[4] = {"timestamp", "duration", "num_gpus", "cluster"};
  for (int i = 0; i < 4; ++i) {
    Result<size_t> c = Required(csv, names[i]);
    if (!c.ok()) return c.status();
    col[i] = *c;
  }
  sim::Workload w = Named(scenario);
  const std::optional<TenantId> other = FindTenant(w, "other");
  std::vector<int64_t> submit_s;
  std::vector<std::string_view> row;
  while (csv.Next(row)) {
    std::optional<int64_t> ts = ParseTimestamp(row[col[0]]);
    if (!ts) return csv.Error(col[0], fmt::format("'{}' is not a time of the form YYYY-MM-DD HH:MM:SS", row[col[0]]));
    Result<double> duration = csv.Double(row, col[1]);
    if (!duration.ok()) return duration.status();
    if (!(*duration >= 0)) return csv.Error(col[1], "must be >= 0 seconds");
    Result<int64_t> gpus = csv.Int(row, col[2]);
    if (!gpus.ok()) return gpus.status();
    if (*gpus < 1 || *gpus > 1'000'000) return csv.Error(col[2], fmt::format("{} is not a GPU count >= 1", *gpus));
    std::optional<TenantId> tenant = FindTenant(w, row[col[3]]);
    if (!tenant) tenant = other;
    if (!tenant) {
      return csv.Error(
          col[3],
          fmt::format("virtual cluster '{}' is no tenant of the scenario (and it has no tenant 'other')", row[col[3]]));
    }
    const uint32_t per_worker = PerWorker(static_cast<uint32_t>(*gpus));
    JobSpec spec;
    spec.id = w.jobs.size() + 1;
    spec.tenant = *tenant;
    spec.workers = static_cast<uint32_t>(*gpus) / per_worker;
    spec.worker = TaskShape{0, 0, per_worker, kMilliPerGpu};
    const TimeMs ms = std::max<TimeMs>(kMsPerS, std::llround(*duration * kMsPerS));
    w.jobs.push_back({std::move(spec), ms, static_cast<uint32_t>(csv.line())});
    submit_s.push_back(*ts);
  }
  if (!csv.status().ok()) return csv.status();
  if (w.jobs.empty()) return Status::Error(fmt::format("{}: no jobs listed", path));
  const int64_t first = *std::min_element(submit_s.begin(), submit_s.end());
  for (size_t i = 0; i < w.jobs.size(); ++i) w.jobs[i].spec.submit_time = (submit_s[i] - first) * kMsPerS;
  sim::SortBySubmit(w);
  return w;
}

Result<sim::Workload> ReadOpenbTrace(const std::string& path, const Scenario& scenario) {
  Result<std::vector<OpenbTask>> tasks = ReadOpenbTasks(path, scenario.fleet.catalog());
  if (!tasks.ok()) return tasks.status();
  sim::Workload w = Named(scenario);
  for (const OpenbTask& t : *tasks) {
    if (!t.creation_s || !t.deletion_s) {
      return Status::Error(
          fmt::format("{}:{}: creation_time, deletion_time: both are needed to replay a task", path, t.line));
    }
    const int64_t began = t.scheduled_s.value_or(*t.creation_s);
    if (*t.deletion_s < began) {
      return Status::Error(fmt::format("{}:{}: deletion_time: {} is before the task was scheduled ({})", path, t.line,
                                       *t.deletion_s, began));
    }
    JobSpec spec;
    spec.id = w.jobs.size() + 1;
    spec.tenant = TenantId(0);
    spec.worker = t.shape;
    spec.submit_time = *t.creation_s * kMsPerS;
    const TimeMs ms = std::max<TimeMs>(kMsPerS, (*t.deletion_s - began) * kMsPerS);
    // The pod lists mix training, inference and notebooks without saying which: "other".
    spec.work = WorkClass::kOther;
    w.jobs.push_back({std::move(spec), ms, static_cast<uint32_t>(t.line)});
  }
  sim::SortBySubmit(w);
  return w;
}

Result<sim::Workload> ReadJobCsv(const std::string& path, const Scenario& scenario) {
  CsvReader csv(path);
  if (!csv.status().ok()) return csv.status();
  Result<size_t> submit = Required(csv, "submit_s"), duration = Required(csv, "duration_s"),
                 per_worker = Required(csv, "gpus_per_worker");
  for (const Result<size_t>* c : {&submit, &duration, &per_worker}) {
    if (!c->ok()) return c->status();
  }
  const std::optional<size_t> workers = Optional(csv, "workers"), tenant = Optional(csv, "tenant"),
                              id = Optional(csv, "id"), milli = Optional(csv, "gpu_milli"),
                              type = Optional(csv, "gpu_type"), cpu = Optional(csv, "cpu_milli"),
                              memory = Optional(csv, "memory_mib"), priority = Optional(csv, "priority"),
                              limit = Optional(csv, "time_limit_s"), estimate = Optional(csv, "estimate_s"),
                              checkpoint = Optional(csv, "checkpoint_s"), work = Optional(csv, "work");
  sim::Workload w = Named(scenario);
  std::unordered_set<JobId> ids;
  std::vector<std::string_view> row;
  Status error = Status::Ok();
  // An optional integer column: its value, `fallback` when the column or field is empty.
  auto integer = [&](std::optional<size_t> c, int64_t fallback, int64_t min, int64_t max) -> std::optional<int64_t> {
    if (!c || row[*c].empty()) return fallback;
    Result<int64_t> v = csv.Int(row, *c);
    if (!v.ok()) {
      error = v.status();
      return std::nullopt;
    }
    if (*v < min || *v > max) {
      error = csv.Error(*c, fmt::format("{} is out of range [{}, {}]", *v, min, max));
      return std::nullopt;
    }
    return *v;
  };
  auto seconds = [&](std::optional<size_t> c, bool positive) -> std::optional<std::optional<TimeMs>> {
    if (!c || row[*c].empty()) return std::optional<TimeMs>();
    Result<double> v = csv.Double(row, *c);
    if (!v.ok()) {
      error = v.status();
      return std::nullopt;
    }
    if (!(*v >= 0) || (positive && *v <= 0) || *v > 1e10) {
      error = csv.Error(*c, fmt::format("{} is not a time in seconds{}", *v, positive ? " > 0" : " >= 0"));
      return std::nullopt;
    }
    return std::optional<TimeMs>(std::llround(*v * kMsPerS));
  };
  while (csv.Next(row)) {
    auto at = seconds(*submit, false);
    auto run = seconds(*duration, true);
    auto gpus = integer(*per_worker, 0, 0, 64);
    auto count = integer(workers, 1, 1, 1'000'000);
    auto job_id = integer(id, static_cast<int64_t>(w.jobs.size()) + 1, 1, INT64_MAX);
    auto m = integer(milli, kMilliPerGpu, 1, kMilliPerGpu);
    auto c = integer(cpu, 0, 0, INT64_MAX / 2);
    auto mem = integer(memory, 0, 0, INT64_MAX / 2);
    auto prio = integer(priority, 0, -1'000'000, 1'000'000);
    auto lim = seconds(limit, true);
    auto est = seconds(estimate, true);
    auto ckpt = seconds(checkpoint, true);
    if (!error.ok()) return error;
    if (!at->has_value() || !run->has_value()) {
      return csv.Error(at->has_value() ? *duration : *submit, "is required");
    }
    if (*m < kMilliPerGpu && *gpus != 1) return csv.Error(*milli, "a fraction below 1000 needs gpus_per_worker 1");
    JobSpec spec;
    spec.id = static_cast<JobId>(*job_id);
    if (!ids.insert(spec.id).second) return csv.Error(*id, fmt::format("job id {} is repeated", spec.id));
    spec.tenant = TenantId(0);
    if (tenant && !row[*tenant].empty()) {
      std::optional<TenantId> t = FindTenant(w, row[*tenant]);
      if (!t) return csv.Error(*tenant, fmt::format("'{}' is no tenant of the scenario", row[*tenant]));
      spec.tenant = *t;
    }
    TypeSet types;
    if (type && !row[*type].empty()) {
      types = ParseTypeSpec(row[*type], scenario.fleet.catalog());
      if (types.mask >> 63)
        return csv.Error(*type, fmt::format("'{}' names no accelerator type of the scenario", row[*type]));
    }
    spec.workers = static_cast<uint32_t>(*count);
    spec.worker = TaskShape{*c, *mem, static_cast<uint32_t>(*gpus), *gpus == 0 ? 0 : *m, types};
    spec.priority = static_cast<int32_t>(*prio);
    spec.submit_time = **at;
    spec.time_limit = *lim;
    spec.runtime_estimate = *est;
    spec.checkpoint_interval = *ckpt;
    if (work && !row[*work].empty()) {
      std::optional<WorkClass> parsed = ParseWorkClass(row[*work]);
      if (!parsed) return csv.Error(*work, fmt::format("'{}' is not training, inference or other", row[*work]));
      spec.work = *parsed;
    }
    w.jobs.push_back({std::move(spec), **run, static_cast<uint32_t>(csv.line())});
  }
  if (!csv.status().ok()) return csv.status();
  if (w.jobs.empty()) return Status::Error(fmt::format("{}: no jobs listed", path));
  sim::SortBySubmit(w);
  return w;
}

}  // namespace joule::io
