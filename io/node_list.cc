#include "io/node_list.h"

#include <map>
#include <tuple>

#include <fmt/format.h>

#include "io/csv.h"
#include "io/yaml_fields.h"

namespace joule::io {
namespace {

template <typename T>
T Take(Result<T> result) {
  if (!result.ok()) throw result.status();
  return std::move(result).value();
}

struct Columns {
  size_t name, cpu, memory, accelerators, type;
};

Columns FindColumns(const Fields& f, const CsvReader& csv) {
  std::map<std::string, std::string> names = {{"name", "sn"},
                                              {"cpu_milli", "cpu_milli"},
                                              {"memory_mib", "memory_mib"},
                                              {"accelerators", "gpu"},
                                              {"accelerator_type", "model"}};
  if (f.Has("columns")) {
    Fields c(f.Get("columns"), f.PathOf("columns"),
             {"name", "cpu_milli", "memory_mib", "accelerators", "accelerator_type"});
    for (auto& [key, column] : names) column = c.OptString(key).value_or(column);
  }
  return Columns{Take(csv.Column(names["name"])), Take(csv.Column(names["cpu_milli"])),
                 Take(csv.Column(names["memory_mib"])), Take(csv.Column(names["accelerators"])),
                 Take(csv.Column(names["accelerator_type"]))};
}

}  // namespace

std::vector<ExplicitNode> ReadNodeList(const YAML::Node& section, const std::string& path,
                                       const std::filesystem::path& base_dir, Catalog& catalog) {
  Fields f(section, path, {"path", "columns", "node_overhead_w", "node_idle_overhead_w"});
  std::filesystem::path file = f.String("path");
  if (file.is_relative()) file = base_dir / file;
  Watts overhead = std::llround(f.Number("node_overhead_w", 0, 1e6));
  Watts idle_overhead = std::llround(f.Number("node_idle_overhead_w", 0, 1e6));
  if (idle_overhead > overhead) f.Fail("node_idle_overhead_w", "must not exceed node_overhead_w");

  CsvReader csv(file.lexically_normal().string());
  if (!csv.status().ok()) f.Fail("path", csv.status().message());
  Columns col = FindColumns(f, csv);
  std::map<std::tuple<uint32_t, int64_t, int64_t, int64_t>, NodeTypeId> shapes;
  std::vector<ExplicitNode> nodes;
  std::vector<std::string_view> row;
  while (csv.Next(row)) {
    int64_t count = Take(csv.Int(row, col.accelerators));
    int64_t cpu = Take(csv.Int(row, col.cpu));
    int64_t memory = Take(csv.Int(row, col.memory));
    if (count < 0) throw csv.Error(col.accelerators, "must be >= 0");
    std::optional<AcceleratorTypeId> type;
    if (count > 0) {
      type = catalog.FindAccelerator(row[col.type]);
      if (!type) throw csv.Error(col.type, fmt::format("unknown accelerator type '{}'", row[col.type]));
    }
    if (cpu <= 0) throw csv.Error(col.cpu, "must be > 0");
    if (memory <= 0) throw csv.Error(col.memory, "must be > 0");
    if (row[col.name].empty()) throw csv.Error(col.name, "must not be empty");
    auto key = std::make_tuple(type ? type->value() : UINT32_MAX, count, cpu, memory);
    auto it = shapes.find(key);
    if (it == shapes.end()) {
      std::string name = type ? fmt::format("{}x{}-{}c-{}g", row[col.type], count, cpu / 1000, memory / 1024)
                              : fmt::format("cpu-{}c-{}g", cpu / 1000, memory / 1024);
      NodeTypeId id =
          catalog.Add(NodeType{name, type, static_cast<uint32_t>(count), cpu, memory, overhead, idle_overhead});
      it = shapes.emplace(key, id).first;
    }
    nodes.push_back({std::string(row[col.name]), it->second});
  }
  if (nodes.empty()) f.Fail("path", fmt::format("{}: no nodes listed", csv.path()));
  return nodes;
}

}  // namespace joule::io
