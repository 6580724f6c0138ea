#include "io/workload_model.h"

#include <cmath>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "io/csv.h"
#include "io/task_list.h"
#include "io/yaml_fields.h"

namespace joule::io {
namespace {

std::string Indexed(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

class ModelParser {
 public:
  ModelParser(std::string path, const Scenario& scenario) : path_(std::move(path)), scenario_(scenario) {}

  Result<sim::WorkloadModel> Load() {
    return ParseYamlFile<sim::WorkloadModel>(path_, "workload model", [&](const YAML::Node& root) {
      Fields top(root, "", {"description", "tenants"});
      sim::WorkloadModel model;
      YAML::Node tenants = top.List("tenants");
      for (size_t i = 0; i < tenants.size(); ++i) model.tenants.push_back(Tenant(tenants[i], Indexed("tenants", i)));
      return model;
    });
  }

 private:
  sim::TenantWorkload Tenant(const YAML::Node& node, const std::string& path) {
    Fields f(node, path, {"tenant", "jobs", "services"});
    sim::TenantWorkload t;
    const std::string name = f.String("tenant");
    bool found = false;
    for (uint32_t i = 0; i < scenario_.tenants.size(); ++i) {
      if (scenario_.tenants[i].name == name) {
        t.tenant = TenantId(i);
        found = true;
      }
    }
    if (!found) f.Fail("tenant", fmt::format("'{}' is no tenant of the scenario", name));
    if (f.Has("jobs")) {
      YAML::Node jobs = f.List("jobs");
      for (size_t i = 0; i < jobs.size(); ++i)
        t.classes.push_back(Class(jobs[i], f.PathOf("jobs") + fmt::format("[{}]", i)));
    }
    if (f.Has("services")) {
      YAML::Node services = f.List("services");
      for (size_t i = 0; i < services.size(); ++i) {
        t.services.push_back(Service(services[i], f.PathOf("services") + fmt::format("[{}]", i)));
      }
    }
    return t;
  }

  // A [min, max] pair of positive numbers, min <= max.
  static std::pair<double, double> Range(const Fields& f, std::string_view key) {
    YAML::Node n = f.Get(key);
    if (!n.IsSequence() || n.size() != 2) f.Fail(key, "must be a list of two numbers [min, max]");
    double lo = 0, hi = 0;
    if (!YAML::convert<double>::decode(n[0], lo) || !YAML::convert<double>::decode(n[1], hi) || !(lo > 0) ||
        !(hi >= lo)) {
      f.Fail(key, "must be [min, max] with 0 < min <= max");
    }
    return {lo, hi};
  }

  static WorkClass Work(const Fields& f, WorkClass fallback) {
    if (!f.Has("work")) return fallback;
    std::optional<WorkClass> w = ParseWorkClass(f.String("work"));
    if (!w) f.Fail("work", "must be training, inference or other");
    return *w;
  }

  TypeSet Types(const Fields& f) const {
    if (!f.Has("type")) return {};
    const std::string spec = f.String("type");
    TypeSet types = ParseTypeSpec(spec, scenario_.fleet.catalog());
    if (types.mask >> 63) f.Fail("type", fmt::format("'{}' names no accelerator type of the scenario", spec));
    return types;
  }

  sim::JobClass Class(const YAML::Node& node, const std::string& path) {
    Fields f(
        node, path,
        {"class", "per_day", "accelerators", "per_worker", "fraction", "cpu_cores_per_accelerator",
         "memory_gib_per_accelerator", "duration_s", "duration_min", "duration_h", "limit_factor", "checkpoint_min",
         "priority", "type", "topology", "work", "flexible_deadline_h", "max_restarts", "spares_per_1000_workers"});
    sim::JobClass c;
    c.name = f.String("class");
    c.per_day = f.Positive("per_day");
    auto [lo, hi] = Range(f, "accelerators");
    if (lo != std::floor(lo) || hi != std::floor(hi) || hi > 1e6)
      f.Fail("accelerators", "must be whole counts up to 1,000,000");
    c.min_accelerators = static_cast<uint32_t>(lo);
    c.max_accelerators = static_cast<uint32_t>(hi);
    c.per_worker = f.OptCount("per_worker").value_or(1);
    if (c.per_worker > 64) f.Fail("per_worker", "at most 64 accelerators per worker");
    if (f.Has("fraction")) {
      c.milli_per_accelerator = std::llround(f.Number("fraction", 0.001, 1.0) * kMilliPerGpu);
      if (c.milli_per_accelerator < kMilliPerGpu && (c.per_worker != 1 || c.max_accelerators != 1)) {
        f.Fail("fraction", "a shared fraction needs accelerators [1, 1] and per_worker 1");
      }
    }
    c.cpu_per_accelerator = std::llround(f.OptNumber("cpu_cores_per_accelerator", 0, 1e4).value_or(0) * 1000);
    c.memory_per_accelerator = std::llround(f.OptNumber("memory_gib_per_accelerator", 0, 1e6).value_or(0) * 1024);
    const std::string_view unit = f.OneOf({"duration_s", "duration_min", "duration_h"});
    const double scale = unit == "duration_s" ? 1e3 : unit == "duration_min" ? 60e3 : 3600e3;
    auto [dlo, dhi] = Range(f, unit);
    c.min_duration = std::llround(dlo * scale);
    c.max_duration = std::llround(dhi * scale);
    if (f.Has("limit_factor")) {
      auto [flo, fhi] = Range(f, "limit_factor");
      if (flo < 1) f.Fail("limit_factor", "must be >= 1: a time limit below the run time kills every job");
      c.min_limit_factor = flo;
      c.max_limit_factor = fhi;
    }
    if (f.Has("checkpoint_min")) c.checkpoint_interval = std::llround(f.Positive("checkpoint_min") * 60e3);
    c.priority = static_cast<int32_t>(std::llround(f.OptNumber("priority", -1e6, 1e6).value_or(0)));
    c.types = Types(f);
    if (f.Has("topology")) {
      static const std::map<std::string, TopologyRule, std::less<>> kRules = {
          {"any", TopologyRule::kAny},
          {"prefer_compact", TopologyRule::kPreferCompact},
          {"require_nvlink_domain", TopologyRule::kRequireNvlinkDomain}};
      auto it = kRules.find(f.String("topology"));
      if (it == kRules.end()) f.Fail("topology", "must be any, prefer_compact or require_nvlink_domain");
      c.topology = it->second;
    }
    c.work = Work(f, WorkClass::kTraining);
    if (f.Has("max_restarts")) {
      const double n = f.Number("max_restarts", 0, 1e6);
      if (n != std::floor(n)) f.Fail("max_restarts", "must be a whole number");
      c.max_restarts = static_cast<uint32_t>(n);
    }
    if (f.Has("spares_per_1000_workers")) {
      c.spares_per_1000_workers = f.Number("spares_per_1000_workers", 0, 1000);
      if (c.milli_per_accelerator < kMilliPerGpu)
        f.Fail("spares_per_1000_workers", "hot spares need whole accelerators");
    }
    if (f.Has("flexible_deadline_h")) {
      c.flexible_deadline = std::llround(f.Positive("flexible_deadline_h") * 3600e3);
      if (*c.flexible_deadline < static_cast<TimeMs>(static_cast<double>(c.max_duration) * c.max_limit_factor)) {
        f.Fail("flexible_deadline_h",
               "must leave room for the longest run at its time limit (duration x limit_factor)");
      }
    }
    return c;
  }

  sim::InferenceService Service(const YAML::Node& node, const std::string& path) {
    Fields f(node, path,
             {"name", "replicas_at_peak", "accelerators_per_replica", "cpu_cores_per_replica", "memory_gib_per_replica",
              "trough", "peak_hour", "burstiness", "burstiness_trace", "priority", "type", "work"});
    sim::InferenceService s;
    s.name = f.String("name");
    s.peak_replicas = f.Count("replicas_at_peak");
    s.accelerators_per_replica = f.OptCount("accelerators_per_replica").value_or(8);
    if (s.accelerators_per_replica > 64) f.Fail("accelerators_per_replica", "at most 64 accelerators per replica");
    s.cpu_per_replica = std::llround(f.OptNumber("cpu_cores_per_replica", 0, 1e4).value_or(0) * 1000);
    s.memory_per_replica = std::llround(f.OptNumber("memory_gib_per_replica", 0, 1e6).value_or(0) * 1024);
    s.trough = f.OptNumber("trough", 0, 1).value_or(0.3);
    s.peak_hour = static_cast<int>(f.OptNumber("peak_hour", 0, 23).value_or(14));
    if (f.Has("burstiness") && f.Has("burstiness_trace"))
      f.Fail("burstiness", "give burstiness or burstiness_trace, not both");
    if (f.Has("burstiness")) s.burstiness = f.Number("burstiness", 0, 10);
    if (f.Has("burstiness_trace")) {
      std::filesystem::path trace = f.String("burstiness_trace");
      if (trace.is_relative()) trace = std::filesystem::path(path_).parent_path() / trace;
      Result<double> cv = RequestBurstiness(trace.string());
      if (!cv.ok()) f.Fail("burstiness_trace", cv.status().message());
      s.burstiness = *cv;
    }
    s.priority = static_cast<int32_t>(std::llround(f.OptNumber("priority", -1e6, 1e6).value_or(0)));
    s.types = Types(f);
    s.work = Work(f, WorkClass::kInference);
    return s;
  }

  std::string path_;
  const Scenario& scenario_;
};

}  // namespace

Result<sim::WorkloadModel> LoadWorkloadModel(const std::string& path, const Scenario& scenario) {
  return ModelParser(path, scenario).Load();
}

Result<double> RequestBurstiness(const std::string& path) {
  CsvReader csv(path);
  if (!csv.status().ok()) return csv.status();
  Result<size_t> col = csv.Column("TIMESTAMP");
  if (!col.ok()) return col.status();
  std::map<int64_t, uint64_t> per_minute;
  std::vector<std::string_view> row;
  while (csv.Next(row)) {
    std::string_view ts = row[*col];
    int y, mo, d, h, mi;
    if (ts.size() < 16 ||
        std::sscanf(std::string(ts.substr(0, 16)).c_str(), "%4d-%2d-%2d %2d:%2d", &y, &mo, &d, &h, &mi) != 5) {
      return csv.Error(*col, fmt::format("'{}' is not a time YYYY-MM-DD HH:MM:SS", ts));
    }
    per_minute[((int64_t{y} * 12 + mo) * 31 + d) * 1440 + int64_t{h} * 60 + mi]++;
  }
  if (!csv.status().ok()) return csv.status();
  if (per_minute.size() < 2) return Status::Error(fmt::format("{}: fewer than two minutes of requests", path));
  // Minutes without requests inside the span count as zero.
  const int64_t span = per_minute.rbegin()->first - per_minute.begin()->first + 1;
  double sum = 0, sum_sq = 0;
  for (auto [minute, n] : per_minute) {
    sum += static_cast<double>(n);
    sum_sq += static_cast<double>(n) * static_cast<double>(n);
  }
  const double mean = sum / static_cast<double>(span);
  const double variance = sum_sq / static_cast<double>(span) - mean * mean;
  return std::sqrt(std::max(variance, 0.0)) / mean;
}

}  // namespace joule::io
