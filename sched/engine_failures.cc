// The engine's failure handling (docs/decisions/0006-failures.md): node health, and what a failure
// does to the jobs on the node — restart on hot spares, requeue under the job's failure policy,
// or fail it. Part of Engine; see engine.h.
#include <algorithm>

#include <fmt/format.h>

#include "base/check.h"
#include "sched/engine.h"
#include "sched/placement/gang.h"

namespace joule {
namespace {

constexpr TimeMs kMaxBackoff = 3'600'000;

// How far apart two nodes are in the topology: 0 in one NVLink domain, then rack, pod, row, hall,
// 5 anywhere else on the campus.
int Distance(const Fleet& fleet, NodeId a, NodeId b) {
  const Node& x = fleet.node(a);
  const Node& y = fleet.node(b);
  if (x.domain && x.domain == y.domain) return 0;
  if (x.rack == y.rack) return 1;
  const PodId pod_x = fleet.rack(x.rack).pod, pod_y = fleet.rack(y.rack).pod;
  if (pod_x == pod_y) return 2;
  const RowId row_x = fleet.pod(pod_x).row, row_y = fleet.pod(pod_y).row;
  if (row_x == row_y) return 3;
  return fleet.row(row_x).hall == fleet.row(row_y).hall ? 4 : 5;
}

}  // namespace

std::optional<std::string> HealthChangeRefusal(std::string_view name, NodeHealth from, NodeHealth to) {
  if (to == NodeHealth::kSuspect && from != NodeHealth::kHealthy) {
    return fmt::format("node {} is {}: only a healthy node can become suspect", name, NodeHealthName(from));
  }
  if (to == NodeHealth::kDrained && (from == NodeHealth::kDown || from == NodeHealth::kRepairing)) {
    return fmt::format("node {} is {}: resume it or finish its repair before draining it", name, NodeHealthName(from));
  }
  return std::nullopt;
}

void Engine::ChangeHealth(TimeMs now, const NodeHealthChange& change, Decisions& out) {
  if (change.node.value() >= health_.size()) {
    out.health_refused.push_back(
        {change.node, change.to, fmt::format("node {}: the fleet has {} nodes", change.node.value(), health_.size())});
    return;
  }
  const NodeHealth from = health_[change.node.value()];
  if (from == change.to) return;
  if (std::optional<std::string> why = HealthChangeRefusal(fleet_.NodeName(change.node), from, change.to)) {
    out.health_refused.push_back({change.node, change.to, std::move(*why)});
    return;
  }
  health_[change.node.value()] = change.to;
  cluster_.SetSchedulable(change.node, change.to == NodeHealth::kHealthy);
  if (change.to != NodeHealth::kHealthy) DropFromPool(change.node, out);
  out.health.push_back({change.node, from, change.to, change.actor, change.reason, now, change.device});
  if (change.to == NodeHealth::kDown || change.to == NodeHealth::kRepairing) {
    const std::string why = fmt::format("node {} {}{}{}", fleet_.NodeName(change.node), NodeHealthName(change.to),
                                        change.reason.empty() ? "" : ": ", change.reason);
    KillJobsOn(now, change.node, why, out);
  }
}

// In job id order, so that the same events give the same decisions.
void Engine::KillJobsOn(TimeMs now, NodeId node, const std::string& why, Decisions& out) {
  std::vector<JobId> hit = jobs_on_[node.value()];
  std::sort(hit.begin(), hit.end());
  for (JobId id : hit) Interrupt(now, jobs_.at(id), node, why, out);
}

void Engine::Interrupt(TimeMs now, Job& job, NodeId node, const std::string& why, Decisions& out) {
  // Spares on the node are lost; the job does not notice.
  std::vector<WorkerPlacement> lost_spares;
  std::erase_if(job.spares, [&](const WorkerPlacement& p) {
    if (p.node != node) return false;
    lost_spares.push_back(p);
    return true;
  });
  ReleaseGang(cluster_, job.spec, lost_spares);
  Hold(job, lost_spares, -1);
  if (!lost_spares.empty()) short_of_spares_.insert(job.spec.id);
  const bool hit =
      std::any_of(job.workers.begin(), job.workers.end(), [&](const WorkerPlacement& p) { return p.node == node; });
  if (!hit) return;
  if (!RestartedThisStep(job.spec.id, out) && !RestartAllowed(job, /*own_failure=*/false)) {
    out.kills.push_back({job.spec.id, KillReason::kNodeDown, now});
    End(job, JobState::kFailed, fmt::format("{}; {} restarts allowed, all used", why, *job.spec.max_restarts), out);
    return;
  }
  if (RestartOnSpares(job, node, out)) return;
  out.kills.push_back({job.spec.id, KillReason::kNodeDown, now});
  Stop(job, JobState::kPending);
  Requeue(now, job, why, out);
}

// Each lost worker takes the nearest spare (then the lowest node id). The job keeps its start, so
// its time limit runs on; its power is admitted again where it now runs.
bool Engine::RestartOnSpares(Job& job, NodeId node, Decisions& out) {
  std::vector<size_t> lost;
  for (size_t rank = 0; rank < job.workers.size(); ++rank) {
    if (job.workers[rank].node == node) lost.push_back(rank);
  }
  if (job.preempt_at) return false;
  const size_t replaced = lost.size();
  // The job's own spares first, then its tenant's pool: chosen before anything changes.
  const size_t own = std::min(lost.size(), job.spares.size());
  std::vector<size_t> pool_picks;
  std::vector<bool> taken(pool_[job.spec.tenant.value()].size(), false);
  for (size_t k = own; k < lost.size(); ++k) {
    const std::optional<size_t> pick = PoolNodeFor(job, node, taken);
    if (!pick) return false;
    taken[*pick] = true;
    pool_picks.push_back(*pick);
  }
  // The failed worker's place goes back; `place` (already allocated to the job) takes its rank.
  auto move_rank = [&](size_t rank, WorkerPlacement place) {
    ReleaseGang(cluster_, job.spec, {job.workers[rank]});
    Hold(job, {job.workers[rank]}, -1);
    job.workers[rank] = std::move(place);
  };
  for (size_t k = 0; k < own; ++k) {
    auto nearest = std::min_element(job.spares.begin(), job.spares.end(), [&](const auto& a, const auto& b) {
      return std::make_pair(Distance(fleet_, node, a.node), a.node.value()) <
             std::make_pair(Distance(fleet_, node, b.node), b.node.value());
    });
    move_rank(lost[k], std::move(*nearest));
    job.spares.erase(nearest);
  }
  std::vector<WorkerPlacement>& pool = pool_[job.spec.tenant.value()];
  for (size_t k = own; k < lost.size(); ++k) {
    const WorkerPlacement spare = pool[pool_picks[k - own]];
    const TaskShape whole = PoolShape(*cluster_.accelerator_type(spare.node));
    cluster_.Release(spare.node, whole, spare.devices);
    in_use_[job.spec.tenant.value()][cluster_.accelerator_type(spare.node)->value()] -= whole.TotalMilliGpu();
    out.spare_pool.push_back({job.spec.tenant, spare.node, /*added=*/false});
    WorkerPlacement place{spare.node, {}};
    for (uint32_t d = 0; d < job.spec.worker.gpus; ++d) place.devices.push_back(d);
    cluster_.Allocate(place.node, job.spec.worker, place.devices);
    Hold(job, {place}, +1);
    move_rank(lost[k], std::move(place));
  }
  std::sort(pool_picks.rbegin(), pool_picks.rend());
  for (size_t i : pool_picks) pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
  short_of_spares_.insert(job.spec.id);
  governor_.Remove(job.spec.id);
  const std::optional<uint32_t> limit = governor_.Admit(job.spec, job.workers, /*ignore_holds=*/true);
  if (!limit) return false;  // no power where the spares are: back to the queue
  // Several nodes of one job failing in the same step (a rack losing power) are one restart.
  if (RestartJob* same_step = RestartedThisStep(job.spec.id, out)) {
    same_step->workers = job.workers;
    same_step->spares = job.spares;
    same_step->replaced += static_cast<uint32_t>(replaced);
    same_step->power_limit_permille = *limit;
    return true;
  }
  job.restarts++;
  out.restarts.push_back({job.spec.id, job.workers, job.spares, static_cast<uint32_t>(replaced), *limit});
  return true;
}

TaskShape Engine::PoolShape(AcceleratorTypeId type) const {
  for (NodeTypeId id : facts_.node_types) {
    const NodeType& t = fleet_.catalog().node(id);
    if (t.accelerator != type) continue;
    TaskShape shape{t.cpu, t.memory, t.accelerators, kMilliPerGpu};
    shape.types.Add(type);
    if (id.value() < 64) shape.node_types = uint64_t{1} << id.value();
    return shape;
  }
  return {};
}

std::optional<size_t> Engine::PoolNodeFor(const Job& job, NodeId failed, const std::vector<bool>& taken) const {
  const std::vector<WorkerPlacement>& pool = pool_[job.spec.tenant.value()];
  const TaskShape& w = job.spec.worker;
  std::optional<size_t> best;
  if (w.gpus == 0 || w.Shared()) return best;
  auto key = [&](size_t i) { return std::make_pair(Distance(fleet_, failed, pool[i].node), pool[i].node.value()); };
  for (size_t i = 0; i < pool.size(); ++i) {
    const NodeType& t = fleet_.node_type(pool[i].node);
    const bool fits = t.accelerator && w.types.Allows(*t.accelerator) && t.accelerators >= w.gpus && t.cpu >= w.cpu &&
                      t.memory >= w.memory;
    if (taken[i] || !fits) continue;
    if (!best || key(i) < key(*best)) best = i;
  }
  return best;
}

void Engine::RefillPools(Decisions& out) {
  for (uint32_t t = 0; t < tenants_.size(); ++t) {
    for (const Reservation& want : tenants_[t].spare_nodes) {
      const TaskShape shape = PoolShape(want.type);
      if (shape.gpus == 0) continue;
      uint32_t have = 0;
      for (const WorkerPlacement& p : pool_[t]) have += cluster_.accelerator_type(p.node) == want.type;
      JobSpec one;
      one.tenant = TenantId(t);
      one.worker = shape;
      one.topology = TopologyRule::kAny;
      for (; have < want.accelerators; ++have) {
        GangResult r = PlaceGang(cluster_, one);
        if (!r.placed()) break;
        in_use_[t][want.type.value()] += shape.TotalMilliGpu();
        out.spare_pool.push_back({TenantId(t), r.workers[0].node, /*added=*/true});
        pool_[t].push_back(std::move(r.workers[0]));
      }
    }
  }
}

void Engine::DropFromPool(NodeId node, Decisions& out) {
  for (uint32_t t = 0; t < pool_.size(); ++t) {
    std::erase_if(pool_[t], [&](const WorkerPlacement& p) {
      if (p.node != node) return false;
      const TaskShape shape = PoolShape(*cluster_.accelerator_type(node));
      cluster_.Release(node, shape, p.devices);
      in_use_[t][cluster_.accelerator_type(node)->value()] -= shape.TotalMilliGpu();
      out.spare_pool.push_back({TenantId(t), node, /*added=*/false});
      return true;
    });
  }
}

void Engine::RefillSpares(Decisions& out) {
  for (auto it = short_of_spares_.begin(); it != short_of_spares_.end();) {
    Job& job = jobs_.at(*it);
    if (job.preempt_at) {  // leaving anyway
      ++it;
      continue;
    }
    JobSpec one = job.spec;
    one.workers = 1;
    one.spare_nodes = 0;
    one.worker.types = job.used_types;
    one.topology = TopologyRule::kAny;
    std::vector<WorkerPlacement> added;
    while (job.spares.size() + added.size() < job.spec.spare_nodes) {
      GangResult r = PlaceGang(cluster_, one);
      if (!r.placed()) break;
      added.push_back(std::move(r.workers[0]));
    }
    if (!added.empty()) {
      Hold(job, added, +1);
      job.spares.insert(job.spares.end(), added.begin(), added.end());
      out.spares_added.push_back({job.spec.id, std::move(added)});
    }
    it = job.spares.size() == job.spec.spare_nodes ? short_of_spares_.erase(it) : std::next(it);
  }
}

RestartJob* Engine::RestartedThisStep(JobId job, Decisions& out) {
  for (RestartJob& r : out.restarts) {
    if (r.job == job) return &r;
  }
  return nullptr;
}

bool Engine::RestartAllowed(Job& job, bool own_failure) const {
  if (!job.spec.max_restarts) return !own_failure;
  return job.restarts < *job.spec.max_restarts;
}

// REQUIRES: the job is stopped (pending, holding nothing).
void Engine::Requeue(TimeMs now, Job& job, const std::string& why, Decisions& out) {
  job.restarts++;
  TimeMs backoff = 0;
  if (job.spec.restart_backoff > 0) {
    backoff = job.spec.restart_backoff;
    for (uint32_t i = 1; i < job.restarts && backoff < kMaxBackoff; ++i) backoff *= 2;
    backoff = std::min(backoff, kMaxBackoff);
  }
  job.eligible_at = now + backoff;
  job.reason = backoff > 0 ? PendingReason::kBeginTime : PendingReason::kNone;
  AddPending(job);
  out.requeues.push_back({job.spec.id, job.restarts, job.eligible_at, why});
}

void Engine::End(Job& job, JobState state, std::string reason, Decisions& out) {
  if (job.state == JobState::kRunning) {
    Stop(job, state);
  } else {
    RemovePending(job);
    job.state = state;
  }
  const JobId id = job.spec.id;
  out.ended.push_back({id, state, std::move(reason)});
  Retire(id);
}

std::vector<WorkerPlacement> Engine::TakeSpares(const JobSpec& spec, std::vector<WorkerPlacement>& gang) {
  std::vector<WorkerPlacement> spares;
  const size_t s = spec.spare_nodes, g = gang.size();
  if (s == 0) return spares;
  JOULE_CHECK(g == spec.workers + s);
  // One spare in the middle of each of `s` equal stretches of the gang (placed in topology order).
  std::vector<size_t> picks;
  for (size_t i = 0; i < s; ++i) picks.push_back((2 * i + 1) * g / (2 * s));
  for (size_t i = picks.size(); i-- > 0;) {
    spares.push_back(std::move(gang[picks[i]]));
    gang.erase(gang.begin() + static_cast<std::ptrdiff_t>(picks[i]));
  }
  std::reverse(spares.begin(), spares.end());
  return spares;
}

}  // namespace joule
