#include "sched/placement/experiment.h"

#include <map>
#include <tuple>

namespace joule {
namespace {

std::vector<TaskShape> DrawWorkload(std::span<const TaskShape> tasks, MilliGpu target, Rng& rng) {
  std::vector<TaskShape> drawn;
  MilliGpu requested = 0;
  while (requested < target) {
    const TaskShape& t = tasks[rng.Uniform(tasks.size())];
    drawn.push_back(t);
    requested += t.TotalMilliGpu();
  }
  for (size_t i = drawn.size(); i > 1; --i) std::swap(drawn[i - 1], drawn[rng.Uniform(i)]);
  return drawn;
}

// Dense ids for distinct shapes, so placers can cache scores per (node, shape).
std::vector<uint32_t> ShapeIds(const std::vector<TaskShape>& drawn, uint32_t& count) {
  using Key = std::tuple<Millicores, MiB, uint32_t, MilliGpu, uint64_t>;
  std::map<Key, uint32_t> ids;
  std::vector<uint32_t> out;
  for (const TaskShape& t : drawn) {
    auto [it, _] =
        ids.try_emplace({t.cpu, t.memory, t.gpus, t.milli_per_gpu, t.types.mask}, static_cast<uint32_t>(ids.size()));
    out.push_back(it->second);
  }
  count = static_cast<uint32_t>(ids.size());
  return out;
}

PlacementRun RunOne(const Fleet& fleet, std::span<const TaskShape> tasks, const PlacementExperimentOptions& options,
                    uint64_t seed) {
  Rng rng(seed);
  ClusterState state(fleet);
  const double capacity = static_cast<double>(state.capacity_milli());
  std::vector<TaskShape> drawn = DrawWorkload(tasks, static_cast<MilliGpu>(options.inflation * capacity), rng);
  uint32_t shapes = 0;
  std::vector<uint32_t> shape_ids = ShapeIds(drawn, shapes);
  Placer placer(state, options.policy, TypicalTasks(drawn, options.typical_coverage), rng, shapes);

  PlacementRun run{seed, {}, drawn.size(), 0};
  MilliGpu arrived = 0;
  size_t next_checkpoint = 0;
  for (size_t i = 0; i < drawn.size(); ++i) {
    const TaskShape& task = drawn[i];
    if (std::optional<PlacementChoice> choice = placer.Choose(task, shape_ids[i])) {
      state.Allocate(choice->node, task, choice->devices);
      run.placed++;
    }
    arrived += task.TotalMilliGpu();
    while (next_checkpoint < options.checkpoints.size() &&
           static_cast<double>(arrived) >= options.checkpoints[next_checkpoint] * capacity) {
      run.unallocated_pct.push_back(100.0 - static_cast<double>(state.allocated_milli()) / capacity * 100.0);
      next_checkpoint++;
    }
  }
  // Checkpoints beyond what was drawn read the final state.
  while (run.unallocated_pct.size() < options.checkpoints.size()) {
    run.unallocated_pct.push_back(100.0 - static_cast<double>(state.allocated_milli()) / capacity * 100.0);
  }
  return run;
}

}  // namespace

PlacementExperimentResult RunPlacementExperiment(const Fleet& fleet, std::span<const TaskShape> tasks,
                                                 const PlacementExperimentOptions& options) {
  JOULE_CHECK(!tasks.empty() && fleet.accelerator_count() > 0);
  PlacementExperimentResult result;
  result.mean_unallocated_pct.assign(options.checkpoints.size(), 0.0);
  for (uint32_t s = 0; s < options.seeds; ++s) {
    result.runs.push_back(RunOne(fleet, tasks, options, options.first_seed + s));
    for (size_t c = 0; c < options.checkpoints.size(); ++c) {
      result.mean_unallocated_pct[c] += result.runs.back().unallocated_pct[c] / options.seeds;
    }
  }
  return result;
}

}  // namespace joule
