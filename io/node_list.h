// Reads a row's nodes from a CSV node list (such as the Alibaba openb GPU node list), as a
// scenario's `nodes_csv` section describes it. Nodes of the same shape (accelerator type and
// count, CPU, memory) share one node type added to the catalog. Thread-safety: none needed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "model/fleet.h"

namespace joule::io {

// Throws YamlError for problems in the section itself and Status for problems in the CSV file
// (REQUIRES: called inside a scenario loader that catches both). Relative CSV paths resolve
// against `base_dir`.
std::vector<ExplicitNode> ReadNodeList(const YAML::Node& section, const std::string& path,
                                       const std::filesystem::path& base_dir, Catalog& catalog);

}  // namespace joule::io
