// Engine benchmarks on the 505,600-accelerator france-1gw campus (issue: scheduling engine,
// item 10). Targets: (a) >= 100,000 placements/s; (b) a 16,384-GPU gang on a 70%-busy campus in
// <= 10 ms; (c) a pass with 10,000 pending jobs on a 90%-busy campus in <= 100 ms; (d) <= 300 MB
// with 100,000 jobs.
#include <benchmark/benchmark.h>

#include <malloc.h>

#include <algorithm>
#include <memory>
#include <string>

#include "base/rng.h"
#include "io/scenario.h"
#include "sched/engine.h"

namespace joule {
namespace {

const io::Scenario& France() {
  static const std::unique_ptr<io::Scenario> scenario = [] {
    Result<io::Scenario> s = io::LoadScenario(std::string(JOULE_SOURCE_DIR) + "/scenarios/france-1gw.yaml");
    if (!s.ok()) std::abort();
    return std::make_unique<io::Scenario>(std::move(s).value());
  }();
  return *scenario;
}

// Bytes of heap in use (glibc's count): exact, and not fooled by pages kept after free().
double HeapBytes() { return static_cast<double>(mallinfo2().uordblks); }

// Single-node jobs of 1, 2, 4 or 8 whole GPUs, any type, one tenant of five, with estimates.
std::vector<Event> SmallJobs(JobId first, size_t count, Rng& rng) {
  static constexpr uint32_t kSizes[] = {1, 2, 4, 8};
  std::vector<Event> events;
  events.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    JobSpec j;
    j.id = first + i;
    j.tenant = TenantId(static_cast<uint32_t>(rng.Uniform(5)));
    uint32_t gpus = kSizes[rng.Uniform(4)];
    j.worker = TaskShape{Millicores{gpus} * 8000, MiB{gpus} * 64 * 1024, gpus, kMilliPerGpu};
    j.priority = static_cast<int32_t>(rng.Uniform(3));
    j.runtime_estimate = 3'600'000 * static_cast<TimeMs>(1 + rng.Uniform(48));
    events.push_back(JobSubmitted{j});
  }
  return events;
}

// Fills the campus with small jobs until `share` of its accelerators are allocated; jobs that
// found no room are cancelled, so the queue is empty afterwards.
void Fill(Engine& engine, double share, Rng& rng, JobId& next) {
  const double capacity = static_cast<double>(engine.cluster().capacity_milli());
  while (static_cast<double>(engine.cluster().allocated_milli()) < share * capacity) {
    const double missing = share * capacity - static_cast<double>(engine.cluster().allocated_milli());
    const size_t count = std::clamp<size_t>(static_cast<size_t>(missing / 3750), 1, 5000);  // ~3.75 GPUs a job
    std::vector<Event> batch = SmallJobs(next, count, rng);
    engine.Step(0, batch);
    std::vector<Event> cancel;
    for (JobId id = next; id < next + count; ++id) {
      if (engine.state(id) == JobState::kPending) cancel.push_back(JobCancelled{id});
    }
    engine.Step(0, cancel);
    next += count;
  }
}

std::vector<TenantSpec> Tenants() { return France().tenants; }

void BM_PlaceSmallJobsFromEmpty(benchmark::State& state) {
  size_t placed = 0;
  double engine_bytes = 0;  // engine and its 100,000 jobs, after the pass
  for (auto _ : state) {    // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    state.PauseTiming();
    Rng rng(42);
    std::vector<Event> events = SmallJobs(1, 100'000, rng);
    const double heap_before = HeapBytes();
    auto engine = std::make_unique<Engine>(France().fleet, Tenants());
    state.ResumeTiming();
    Decisions d = engine->Step(0, events);
    state.PauseTiming();
    placed = d.starts.size();
    engine_bytes = HeapBytes() - heap_before;
    engine.reset();
    state.ResumeTiming();
  }
  state.counters["placed"] = static_cast<double>(placed);
  state.counters["placements_per_s"] = benchmark::Counter(
      static_cast<double>(placed) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["engine_MB"] = engine_bytes / 1e6;
}
BENCHMARK(BM_PlaceSmallJobsFromEmpty)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

void BM_BigGangOnBusyCampus(benchmark::State& state) {
  Rng rng(7);
  JobId next = 1;
  Engine engine(France().fleet, Tenants());
  Fill(engine, 0.70, rng, next);
  size_t workers = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    JobSpec gang;
    gang.id = next++;
    gang.workers = 4096;  // 16,384 GPUs as 4-GPU workers: fits HGX nodes and GB200 trays
    gang.worker = TaskShape{32'000, MiB{256} * 1024, 4, kMilliPerGpu};
    gang.topology = TopologyRule::kPreferCompact;
    gang.priority = 100;
    Decisions d = engine.Step(1, std::vector<Event>{JobSubmitted{gang}});
    state.PauseTiming();
    workers = d.starts.empty() ? 0 : d.starts[0].workers.size();
    engine.Step(2, std::vector<Event>{JobCancelled{gang.id}});
    state.ResumeTiming();
  }
  state.counters["gang_workers_placed"] = static_cast<double>(workers);
  state.counters["busy_pct"] = 70;
}
BENCHMARK(BM_BigGangOnBusyCampus)->Unit(benchmark::kMillisecond)->Iterations(5);

// 10,000 pending: mostly small jobs plus 2% multi-node gangs of 64-1024 GPUs.
std::vector<Event> TenThousandPending(JobId& next, Rng& rng) {
  std::vector<Event> pending = SmallJobs(next, 9800, rng);
  next += pending.size();
  for (int i = 0; i < 200; ++i) {
    JobSpec g;
    g.id = next++;
    g.tenant = TenantId(static_cast<uint32_t>(rng.Uniform(5)));
    g.workers = 16u << rng.Uniform(5);
    g.worker = TaskShape{32'000, MiB{256} * 1024, 4, kMilliPerGpu};
    g.priority = 2;
    g.runtime_estimate = 3'600'000 * 24;
    pending.push_back(JobSubmitted{g});
  }
  return pending;
}

// (c) The pass that takes 10,000 new pending jobs on a 90%-busy campus, backfill at depth 4.
void BM_PassWith10kPendingOn90PctBusy(benchmark::State& state) {
  size_t started = 0, pending = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    state.PauseTiming();
    Rng rng(11);
    JobId next = 1;
    auto engine = std::make_unique<Engine>(France().fleet, Tenants(), EngineConfig{.backfill_depth = 4});
    Fill(*engine, 0.90, rng, next);
    std::vector<Event> events = TenThousandPending(next, rng);
    state.ResumeTiming();
    Decisions d = engine->Step(1, events);
    state.PauseTiming();
    started = d.starts.size();
    pending = engine->pending_count();
    engine.reset();
    state.ResumeTiming();
  }
  state.counters["started"] = static_cast<double>(started);
  state.counters["left_pending"] = static_cast<double>(pending);
}
BENCHMARK(BM_PassWith10kPendingOn90PctBusy)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

// The next passes, with what could not start still queued (every step runs its pass here: the
// quiet-pass skip would skip them all, see below).
void BM_SteadyPassWithQueueOn90PctBusy(benchmark::State& state) {
  Rng rng(11);
  JobId next = 1;
  Engine engine(France().fleet, Tenants(), {.backfill_depth = 4, .skip_quiet_passes = false});
  Fill(engine, 0.90, rng, next);
  engine.Step(1, TenThousandPending(next, rng));
  TimeMs now = 2;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    engine.Step(now++, {});
  }
  state.counters["pending"] = static_cast<double>(engine.pending_count());
  state.counters["busy_pct"] = 100.0 * static_cast<double>(engine.cluster().allocated_milli()) /
                               static_cast<double>(engine.cluster().capacity_milli());
}
BENCHMARK(BM_SteadyPassWithQueueOn90PctBusy)->Unit(benchmark::kMillisecond)->Iterations(10);

// A campus 90% busy with 100,000 jobs queued that cannot start: the engine built once for both
// benchmarks below.
Engine& QueuedCampus(TimeMs& now, JobId& next) {
  static Engine* engine = nullptr;
  static JobId first_free = 0;
  if (!engine) {
    Rng rng(11);
    engine = new Engine(France().fleet, Tenants(), {.backfill_depth = 4});
    Fill(*engine, 0.90, rng, first_free);
    ++first_free;
    for (int i = 0; i < 10; ++i) {
      std::vector<Event> batch = TenThousandPending(first_free, rng);
      engine->Step(1, batch);
    }
    for (TimeMs t = 2; t < 5; ++t) engine->Step(t, {});
  }
  now = 10;
  next = first_free + 1'000'000;
  return *engine;
}

// The server's backstop tick, nothing having happened: the pass is skipped.
void BM_QuietTickWith100kQueued(benchmark::State& state) {
  TimeMs now;
  JobId next;
  Engine& engine = QueuedCampus(now, next);
  const uint64_t passes = engine.passes();
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    engine.Step(now++, {});
  }
  state.counters["pending"] = static_cast<double>(engine.pending_count());
  state.counters["passes_run"] = static_cast<double>(engine.passes() - passes);
}
BENCHMARK(BM_QuietTickWith100kQueued)->Unit(benchmark::kMicrosecond)->Iterations(1000);

// One submission of a job that cannot start either: the pass runs and walks the queue.
void BM_PassAfterOneSubmitWith100kQueued(benchmark::State& state) {
  TimeMs now;
  JobId next;
  Engine& engine = QueuedCampus(now, next);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark's loop idiom
    JobSpec j;
    j.id = next++;
    j.workers = 64;
    j.worker = TaskShape{32'000, MiB{256} * 1024, 4, kMilliPerGpu};
    j.runtime_estimate = 3'600'000;
    const std::vector<Event> submit = {JobSubmitted{j}};
    engine.Step(now++, submit);
    engine.Step(now++, {});
  }
  state.counters["pending"] = static_cast<double>(engine.pending_count());
}
BENCHMARK(BM_PassAfterOneSubmitWith100kQueued)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace joule

BENCHMARK_MAIN();
