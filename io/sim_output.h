// Writes a twin run's outputs into a folder: summary.json (schema in docs/sim-output.md),
// timeseries.csv (one row per sample) and report.html (one self-contained page: inline SVG, no
// scripts, works offline). Byte-identical for identical runs. Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "sim/metrics.h"
#include "sim/result.h"

namespace joule::io {

// What the run was, for the header of every output.
struct RunInfo {
  std::string scenario;
  std::string workload;
  uint64_t seed = 0;
  double days = 0;
  std::string policy;
  // Where each rejected job came from ("file:line" or "tenant/class"), parallel to
  // SimResult::rejected.
  std::vector<std::string> rejected_origins;
};

nlohmann::ordered_json SummaryJson(const RunInfo& info, const sim::Summary& summary, const sim::SimResult& result);

// Creates `dir` if needed and writes the three files.
Status WriteSimOutputs(const std::string& dir, const RunInfo& info, const sim::Summary& summary,
                       const sim::SimResult& result);

}  // namespace joule::io
