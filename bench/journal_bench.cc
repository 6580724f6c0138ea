// The control plane's journal: durable appends per second, one record per transaction (each
// acknowledged submit on its own fsync) and in batches (group commit: the records that arrived
// during one fsync committed together). Issue: control plane, target ≥ 5,000 durable submits/s.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/journal_json.h"
#include "store/journal.h"

namespace joule {
namespace {

void BM_JournalAppend(benchmark::State& state) {
  const auto dir = std::filesystem::temp_directory_path() / "joule-journal-bench";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  Result<std::unique_ptr<store::SqliteJournal>> journal = store::SqliteJournal::Open((dir / "journal.db").string());
  if (!journal.ok()) {
    state.SkipWithError(journal.status().message().c_str());
    return;
  }
  // A realistic record: a submitted 64-worker training job.
  JobSpec spec;
  spec.id = 1;
  spec.workers = 64;
  spec.worker = TaskShape{64'000, MiB{512} * 1024, 8, kMilliPerGpu};
  spec.time_limit = 86'400'000;
  spec.checkpoint_interval = 600'000;
  const std::string record = io::EncodeEvent({0, JobSubmitted{spec}});
  const std::vector<std::string> batch(static_cast<size_t>(state.range(0)), record);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    if (!(*journal)->Append(batch).ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["record_bytes"] = static_cast<double>(record.size());
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_JournalAppend)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace joule

BENCHMARK_MAIN();
