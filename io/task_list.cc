#include "io/task_list.h"

#include <fmt/format.h>

#include "io/csv.h"

namespace joule::io {
namespace {

// A gpu_spec whose names are all unknown must match no node: this bit names no real type
// (catalogs hold fewer than 63).
constexpr uint64_t kNoKnownType = uint64_t{1} << 63;

TypeSet ParseTypes(std::string_view spec, const Catalog& catalog) {
  TypeSet set;
  bool restricted = false;
  while (!spec.empty()) {
    size_t bar = spec.find('|');
    std::string_view name = spec.substr(0, bar);
    spec = bar == std::string_view::npos ? std::string_view() : spec.substr(bar + 1);
    if (name.empty()) continue;
    restricted = true;
    if (auto id = catalog.FindAccelerator(name)) set.Add(*id);
  }
  if (restricted && set.Any()) set.mask = kNoKnownType;
  return set;
}

}  // namespace

Result<std::vector<TaskShape>> ReadOpenbTaskList(const std::string& path, const Catalog& catalog) {
  CsvReader csv(path);
  if (!csv.status().ok()) return csv.status();
  size_t col[4];
  const char* names[4] = {"cpu_milli", "memory_mib", "num_gpu", "gpu_milli"};
  for (int i = 0; i < 4; ++i) {
    Result<size_t> c = csv.Column(names[i]);
    if (!c.ok()) return c.status();
    col[i] = c.value();
  }
  // Lists without a gpu_spec column (the multigpu resamplings) constrain no type.
  const Result<size_t> spec = csv.Column("gpu_spec");
  std::vector<TaskShape> tasks;
  std::vector<std::string_view> row;
  while (csv.Next(row)) {
    int64_t values[4];
    for (int i = 0; i < 4; ++i) {
      Result<int64_t> v = csv.Int(row, col[i]);
      if (!v.ok()) return v.status();
      if (v.value() < 0) return csv.Error(col[i], "must be >= 0");
      values[i] = v.value();
    }
    auto [cpu, memory, gpus, milli] = std::tuple(values[0], values[1], values[2], values[3]);
    if (milli > kMilliPerGpu) return csv.Error(col[3], fmt::format("{} exceeds one accelerator (1000)", milli));
    if (gpus == 0 && milli != 0) return csv.Error(col[3], "must be 0 when num_gpu is 0");
    if (gpus > 0 && milli == 0) return csv.Error(col[3], "must be > 0 when num_gpu > 0");
    if (gpus > 1 && milli != kMilliPerGpu) return csv.Error(col[3], "must be 1000 when num_gpu > 1");
    tasks.push_back(TaskShape{cpu, memory, static_cast<uint32_t>(gpus), milli,
                              spec.ok() ? ParseTypes(row[*spec], catalog) : TypeSet{}});
  }
  if (tasks.empty()) return Status::Error(fmt::format("{}: no tasks listed", path));
  return tasks;
}

}  // namespace joule::io
