#include "sched/placement/placer.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace joule {
namespace {

// Scale of the baselines' scores, and the normalisers of DotProd and BestFit: the largest node of
// the FGD paper's cluster (128 CPU cores, 8 GPUs), as its simulator uses them.
constexpr int64_t kMaxScore = 100;
constexpr double kMaxSpecCpu = 128'000;
constexpr double kMaxSpecGpu = 8'000;

constexpr std::array<std::pair<std::string_view, PlacementPolicy>, 6> kPolicyNames = {{
    {"random", PlacementPolicy::kRandom},
    {"dotprod", PlacementPolicy::kDotProduct},
    {"packing", PlacementPolicy::kPacking},
    {"bestfit", PlacementPolicy::kBestFit},
    {"fgd", PlacementPolicy::kFgd},
    {"joule", PlacementPolicy::kJoule},
}};

int64_t TotalLeft(std::span<const uint16_t> left) {
  int64_t total = 0;
  for (uint16_t l : left) total += l;
  return total;
}

double DotProductScore(const ClusterState& state, NodeId node, const TaskShape& task) {
  double dot = static_cast<double>(state.cpu_left(node)) / kMaxSpecCpu * static_cast<double>(task.cpu) / kMaxSpecCpu +
               static_cast<double>(TotalLeft(state.gpu_left(node))) / kMaxSpecGpu *
                   static_cast<double>(task.TotalMilliGpu()) / kMaxSpecGpu;
  return static_cast<double>(static_cast<int64_t>(kMaxScore * (1 - dot / 2)));
}

// GPU packing: shared devices first, then free devices on a used node, then an idle node.
double PackingScore(std::span<const uint16_t> left, const TaskShape& task) {
  if (task.TotalMilliGpu() == 0) return 0;
  const int64_t n = static_cast<int64_t>(left.size());
  int64_t free = std::count(left.begin(), left.end(), kMilliPerGpu);
  if (free == n) return static_cast<double>(std::max(kMaxScore / 3 - free, free));
  std::vector<uint32_t> order(left.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return left[a] < left[b]; });
  int64_t wanted = task.gpus, free_used = 0, free_ratio = 0;
  for (uint32_t d : order) {
    if (wanted == 0) break;
    if (task.milli_per_gpu > left[d]) continue;
    --wanted;
    free_used += left[d] == kMilliPerGpu;
    free_ratio += int64_t{left[d]} * 100 / kMilliPerGpu;
  }
  if (free_used > 0) return static_cast<double>(std::max(kMaxScore / 2 - free_used, kMaxScore / 3));
  return static_cast<double>(std::max(kMaxScore - free_ratio / 10, kMaxScore / 2));
}

// The node's dominant share in use, 0..1: the larger of its allocated accelerator and CPU shares.
// Joule's tie-break among nodes of equal fragmentation score: the busiest node first, so work
// piles onto nodes already in use and idle nodes stay whole, whatever their size
// (docs/decisions/0003).
double DominantShareInUse(const ClusterState& state, NodeId node) {
  const NodeType& type = state.fleet().node_type(node);
  const std::span<const uint16_t> left = state.gpu_left(node);
  double gpu_used = 0;
  if (!left.empty()) {
    const double capacity = static_cast<double>(left.size()) * kMilliPerGpu;
    gpu_used = 1.0 - static_cast<double>(TotalLeft(left)) / capacity;
  }
  double cpu_used = 0;
  if (type.cpu > 0) cpu_used = 1.0 - static_cast<double>(state.cpu_left(node)) / static_cast<double>(type.cpu);
  return std::max(gpu_used, cpu_used);
}

double BestFitRawScore(const ClusterState& state, NodeId node, const TaskShape& task) {
  double waste = 0.5 * static_cast<double>(state.cpu_left(node) - task.cpu) / kMaxSpecCpu +
                 0.5 * static_cast<double>(TotalLeft(state.gpu_left(node)) - task.TotalMilliGpu()) / kMaxSpecGpu;
  return static_cast<double>(static_cast<int64_t>((1.0 - waste) * kMaxScore));
}

// Min-max normalisation to 0..100 in integers, as the Kubernetes framework's score extension.
void Normalize(std::vector<double>& scores) {
  if (scores.empty()) return;
  auto [lo, hi] = std::minmax_element(scores.begin(), scores.end());
  const int64_t low = static_cast<int64_t>(*lo), range = static_cast<int64_t>(*hi) - low;
  for (double& s : scores) {
    if (range == 0) {
      s = 0;
      continue;
    }
    const int64_t normalised = (static_cast<int64_t>(s) - low) * kMaxScore / range;  // integers, as the framework
    s = static_cast<double>(normalised);
  }
}

}  // namespace

std::optional<PlacementPolicy> ParsePlacementPolicy(std::string_view name) {
  for (auto [n, p] : kPolicyNames) {
    if (n == name) return p;
  }
  return std::nullopt;
}

std::string_view PolicyName(PlacementPolicy policy) {
  for (auto [n, p] : kPolicyNames) {
    if (p == policy) return n;
  }
  return "?";
}

Placer::Placer(const ClusterState& state, PlacementPolicy policy, std::vector<TypicalTask> typical, Rng& rng,
               uint32_t shapes)
    : state_(state), policy_(policy), typical_(std::move(typical)), rng_(rng), shapes_(shapes) {
  if (policy_ == PlacementPolicy::kFgd || policy_ == PlacementPolicy::kJoule) {
    cache_.resize(static_cast<size_t>(state.fleet().nodes().size()) * shapes_);
    node_frag_.assign(state.fleet().nodes().size(), {UINT32_MAX, 0.0});
  }
}

std::optional<PlacementChoice> Placer::Choose(const TaskShape& task, uint32_t shape_id) {
  JOULE_CHECK(shapes_ == 0 || shape_id < shapes_);
  std::vector<NodeId> feasible;
  for (uint32_t i = 0; i < state_.fleet().nodes().size(); ++i) {
    if (state_.Fits(NodeId(i), task)) feasible.push_back(NodeId(i));
  }
  if (feasible.empty()) return std::nullopt;
  if (policy_ == PlacementPolicy::kRandom) return ChooseRandom(task, feasible);

  std::vector<Scored> scores;
  scores.reserve(feasible.size());
  for (NodeId node : feasible) {
    if (cache_.empty()) {
      scores.push_back(Score(node, task));
    } else {
      scores.push_back(Cached(node, task, shape_id));
    }
  }
  if (policy_ == PlacementPolicy::kBestFit) {
    std::vector<double> raw;
    raw.reserve(scores.size());
    for (const Scored& s : scores) raw.push_back(s.score);
    Normalize(raw);
    for (size_t i = 0; i < raw.size(); ++i) scores[i].score = raw[i];
  }
  return SelectBest(feasible, scores);
}

std::optional<PlacementChoice> Placer::ChooseRandom(const TaskShape& task, const std::vector<NodeId>& feasible) {
  NodeId node = feasible[rng_.Uniform(feasible.size())];
  std::span<const uint16_t> left = state_.gpu_left(node);
  if (!task.Shared()) return PlacementChoice{node, FirstFitDevices(left, task)};
  uint32_t seen = 0, chosen = 0;
  for (uint32_t d = 0; d < left.size(); ++d) {
    if (left[d] >= task.milli_per_gpu && rng_.Uniform(++seen) == 0) chosen = d;
  }
  return PlacementChoice{node, {chosen}};
}

// The best score wins; among equal scores, the better tie-break (only Joule's scorer sets one),
// then the first node in fleet order. Breaking the baselines' ties by node order, not uniformly
// at random, is what reproduces the FGD paper's published figures (docs/decisions/0001).
std::optional<PlacementChoice> Placer::SelectBest(const std::vector<NodeId>& feasible,
                                                  const std::vector<Scored>& scores) {
  size_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i) {
    const Scored& s = scores[i];
    const Scored& b = scores[best];
    if (s.score > b.score || (s.score == b.score && s.tiebreak > b.tiebreak)) best = i;
  }
  return PlacementChoice{feasible[best], scores[best].devices};
}

const Placer::Scored& Placer::Cached(NodeId node, const TaskShape& task, uint32_t shape_id) {
  CacheEntry& entry = cache_[static_cast<size_t>(node.value()) * shapes_ + shape_id];
  if (entry.version != state_.version(node)) {
    entry.scored = Score(node, task);
    entry.version = state_.version(node);
  }
  return entry.scored;
}

Placer::Scored Placer::Score(NodeId node, const TaskShape& task) {
  std::span<const uint16_t> left = state_.gpu_left(node);
  switch (policy_) {
    case PlacementPolicy::kDotProduct:
      return {DotProductScore(state_, node, task), FirstFitDevices(left, task)};
    case PlacementPolicy::kPacking:
      return {PackingScore(left, task), FirstFitDevices(left, task)};
    case PlacementPolicy::kBestFit:
      return {BestFitRawScore(state_, node, task), FirstFitDevices(left, task)};
    case PlacementPolicy::kFgd:
      return ScoreFragmentation(node, task, /*busiest_first=*/false);
    case PlacementPolicy::kJoule:
      return ScoreFragmentation(node, task, /*busiest_first=*/true);
    case PlacementPolicy::kRandom:
      break;
  }
  JOULE_CHECK(false);
  return {};
}

double Placer::Fragmentation(NodeId node) {
  auto& [version, frag] = node_frag_[node.value()];
  if (version != state_.version(node)) {
    frag = NodeFragmentation(state_.gpu_left(node), state_.cpu_left(node), state_.accelerator_type(node), typical_);
    version = state_.version(node);
  }
  return frag;
}

// Fragmentation gradient: how much the node's expected unusable capacity grows if the task lands
// there, mapped through sigmoid(-growth / 1000) to integer levels 0..100, as FGD's simulator
// does. FGD leaves ties to fleet order; Joule's scorer breaks them by the node's dominant share in
// use (busiest first), then fleet order.
Placer::Scored Placer::ScoreFragmentation(NodeId node, const TaskShape& task, bool busiest_first) {
  const double before = Fragmentation(node);
  std::span<const uint16_t> left = state_.gpu_left(node);
  std::array<uint16_t, 64> after_left{};
  JOULE_CHECK(left.size() <= after_left.size());
  std::copy(left.begin(), left.end(), after_left.begin());
  std::span<uint16_t> after(after_left.data(), left.size());
  const Millicores cpu_after = state_.cpu_left(node) - task.cpu;
  const std::optional<AcceleratorTypeId> type = state_.accelerator_type(node);
  auto score_of = [&](double frag_after) {
    double gain = before - frag_after;
    return static_cast<double>(static_cast<int64_t>(1.0 / (1.0 + std::exp(-gain / 1000)) * kMaxScore));
  };
  const double tiebreak = busiest_first ? DominantShareInUse(state_, node) : 0.0;
  if (task.Shared()) {
    Scored best{-1e300, {}, tiebreak};
    for (uint32_t d = 0; d < left.size(); ++d) {
      if (left[d] < task.milli_per_gpu) continue;
      after[d] = static_cast<uint16_t>(left[d] - task.milli_per_gpu);
      double s = score_of(NodeFragmentation(after, cpu_after, type, typical_));
      after[d] = left[d];
      if (best.devices.empty() || s > best.score) best = {s, {d}, tiebreak};
    }
    return best;
  }
  std::vector<uint32_t> devices = FirstFitDevices(left, task);
  for (uint32_t d : devices) after[d] = static_cast<uint16_t>(after[d] - task.milli_per_gpu);
  return {score_of(NodeFragmentation(after, cpu_after, type, typical_)), std::move(devices), tiebreak};
}

}  // namespace joule
