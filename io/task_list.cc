#include "io/task_list.h"

#include <fmt/format.h>

#include "io/csv.h"

namespace joule::io {
namespace {

// A gpu_spec whose names are all unknown must match no node: this bit names no real type
// (catalogs hold fewer than 63).
constexpr uint64_t kNoKnownType = uint64_t{1} << 63;

}  // namespace

TypeSet ParseTypeSpec(std::string_view spec, const Catalog& catalog) {
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

Result<std::vector<OpenbTask>> ReadOpenbTasks(const std::string& path, const Catalog& catalog) {
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
  const Result<size_t> time_cols[3] = {csv.Column("creation_time"), csv.Column("deletion_time"),
                                       csv.Column("scheduled_time")};
  std::vector<OpenbTask> tasks;
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
    OpenbTask task{TaskShape{cpu, memory, static_cast<uint32_t>(gpus), milli,
                             spec.ok() ? ParseTypeSpec(row[*spec], catalog) : TypeSet{}}};
    task.line = csv.line();
    std::optional<int64_t>* times[3] = {&task.creation_s, &task.deletion_s, &task.scheduled_s};
    for (int i = 0; i < 3; ++i) {
      if (!time_cols[i].ok() || row[*time_cols[i]].empty()) continue;
      Result<int64_t> v = csv.Int(row, *time_cols[i]);
      if (!v.ok()) return v.status();
      if (v.value() < 0) return csv.Error(*time_cols[i], "must be >= 0");
      *times[i] = v.value();
    }
    tasks.push_back(task);
  }
  if (tasks.empty()) return Status::Error(fmt::format("{}: no tasks listed", path));
  return tasks;
}

Result<std::vector<TaskShape>> ReadOpenbTaskList(const std::string& path, const Catalog& catalog) {
  Result<std::vector<OpenbTask>> tasks = ReadOpenbTasks(path, catalog);
  if (!tasks.ok()) return tasks.status();
  std::vector<TaskShape> shapes;
  shapes.reserve(tasks->size());
  for (const OpenbTask& t : *tasks) shapes.push_back(t.shape);
  return shapes;
}

}  // namespace joule::io
