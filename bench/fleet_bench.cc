// Fleet benchmarks: load and build the 500,000-accelerator france-1gw campus from its scenario
// file, and report the memory the fleet holds. Targets (issue: foundation): < 1 s, < 200 MB.
#include <benchmark/benchmark.h>

#include <fstream>
#include <string>

#include "io/scenario.h"
#include "model/fleet_summary.h"

namespace joule {
namespace {

const std::string kFrance = std::string(JOULE_SOURCE_DIR) + "/scenarios/france-1gw.yaml";

// Resident set size of this process in bytes ("VmRSS" or "VmHWM" for the peak), from /proc.
double ProcessBytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string key;
  double kib = 0;
  while (status >> key) {
    if (key == field + ":") {
      status >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

void BM_LoadFrance1Gw(benchmark::State& state) {
  size_t accelerators = 0, fleet_bytes = 0;
  double rss_before = ProcessBytes("VmRSS"), rss_growth = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    Result<io::Scenario> scenario = io::LoadScenario(kFrance);
    if (!scenario.ok()) {
      state.SkipWithError(scenario.status().message().c_str());
      return;
    }
    accelerators = scenario->fleet.accelerator_count();
    fleet_bytes = scenario->fleet.MemoryBytes();
    rss_growth = std::max(rss_growth, ProcessBytes("VmRSS") - rss_before);
    benchmark::DoNotOptimize(scenario);
  }
  state.counters["accelerators"] = static_cast<double>(accelerators);
  state.counters["fleet_MB"] = static_cast<double>(fleet_bytes) / 1e6;
  state.counters["rss_growth_MB"] = rss_growth / 1e6;
  state.counters["peak_rss_MB"] = ProcessBytes("VmHWM") / 1e6;
}
BENCHMARK(BM_LoadFrance1Gw)->Unit(benchmark::kMillisecond);

void BM_SummarizeFrance1Gw(benchmark::State& state) {
  Result<io::Scenario> scenario = io::LoadScenario(kFrance);
  if (!scenario.ok()) {
    state.SkipWithError(scenario.status().message().c_str());
    return;
  }
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    benchmark::DoNotOptimize(Summarize(scenario->fleet));
  }
}
BENCHMARK(BM_SummarizeFrance1Gw)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace joule

BENCHMARK_MAIN();
