// The preempt stage: victims for jobs that cannot start (docs/decisions/0002).
#include "sched/engine.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "base/check.h"
#include "sched/engine_internal.h"
#include "sched/placement/gang.h"

namespace joule {
// ---- Preemption ----

bool Engine::FinishPreemptions(TimeMs now) {
  const bool any = !preempting_.empty() && preempting_.begin()->first <= now;
  while (!preempting_.empty() && preempting_.begin()->first <= now) {
    Job& victim = jobs_.at(preempting_.begin()->second);
    Stop(victim, JobState::kPending);
    victim.preemptions++;
    victim.reason = PendingReason::kNone;
    AddPending(victim);
  }
  return any;
}

bool Engine::OwedOneType(const Job& job) const {
  return std::popcount(job.spec.worker.types.mask) == 1 && FitsInReservation(job);
}

bool Engine::FitsInReservation(const Job& job) const {
  const uint32_t u = job.spec.tenant.value();
  const uint64_t milli =
      static_cast<uint64_t>(job.spec.worker.TotalMilliGpu()) * (job.spec.workers + job.spec.spare_nodes);
  for (uint32_t t = 0; t < reserved_milli_[u].size(); ++t) {
    const uint64_t reserved = reserved_milli_[u][t];
    if (reserved > 0 && job.spec.worker.types.Allows(AcceleratorTypeId(t)) && in_use_[u][t] + milli <= reserved) {
      return true;
    }
  }
  return false;
}

// Whether another tenant uses more than its reservation of a type the job may run on: only then
// can reclaim find victims.
bool Engine::OthersBorrow(const Job& job) const {
  for (uint32_t u = 0; u < tenants_.size(); ++u) {
    if (u == job.spec.tenant.value()) continue;
    for (uint32_t t = 0; t < in_use_[u].size(); ++t) {
      if (job.spec.worker.types.Allows(AcceleratorTypeId(t)) && BorrowingOn(u, t)) return true;
    }
  }
  return false;
}

// Running jobs this job may evict: its own tenant's jobs of lower priority; other tenants' jobs
// only while those tenants run beyond their reservation, and then when of lower priority or when
// the job reclaims its own reservation. In running-job order (by id); TryPreempt ranks them.
std::vector<Engine::Candidate> Engine::VictimCandidates(TimeMs now, const Job& job) const {
  const bool reclaim = FitsInReservation(job);
  // Node types that could hold one worker of the job when empty: a victim elsewhere cannot help.
  uint64_t hostable = 0;
  const TaskShape& w = job.spec.worker;
  for (NodeTypeId id : facts_.node_types) {
    const NodeType& t = fleet_.catalog().node(id);
    const bool type_ok = w.gpus == 0 || (t.accelerator && w.types.Allows(*t.accelerator));
    const bool selected = w.node_types == 0 || ((w.node_types >> id.value()) & 1);
    if (type_ok && selected && t.accelerators >= w.gpus && t.cpu >= w.cpu && t.memory >= w.memory) {
      hostable |= id.value() < 64 ? uint64_t{1} << id.value() : ~uint64_t{0};
    }
  }
  std::vector<Candidate> candidates;
  auto consider = [&](Job* k) {
    if (k->preempt_at || (!reclaim && k->spec.priority >= job.spec.priority)) return;
    if ((k->used_node_types & hostable) == 0) return;
    const uint64_t held = k->used_types.mask;
    const uint64_t wanted = job.spec.worker.types.Any() ? ~uint64_t{0} : job.spec.worker.types.mask;
    const bool useful = job.spec.worker.gpus == 0 || (held & wanted) != 0;
    // Another tenant's job is fair game only while that tenant runs beyond its reservation on the
    // victim's types: work inside a reservation is guaranteed against other tenants.
    const bool other_tenant = k->spec.tenant != job.spec.tenant;
    bool borrowed = false;
    if (other_tenant) {
      for (uint64_t bits = held; bits != 0 && !borrowed; bits &= bits - 1) {
        borrowed = BorrowingOn(k->spec.tenant.value(), static_cast<uint32_t>(std::countr_zero(bits)));
      }
    }
    const bool lower = k->spec.priority < job.spec.priority;
    const bool eligible = other_tenant ? borrowed && (lower || reclaim) : lower;
    if (!useful || !eligible) return;
    const TimeMs elapsed = now - k->start;
    const TimeMs since_checkpoint = k->spec.checkpoint_interval ? elapsed % *k->spec.checkpoint_interval : elapsed;
    const int64_t size = static_cast<int64_t>(Accelerators(*k));
    candidates.push_back({k, !borrowed, since_checkpoint * size, size});
  };
  if (reclaim) {
    for (const auto& [id, k] : running_) consider(k);
    return candidates;
  }
  // Only lower priorities qualify: their levels, each in id order, merged into the id order the
  // full walk gives.
  std::vector<Candidate> merged;
  auto by_id = [](const Candidate& a, const Candidate& b) { return a.job->spec.id < b.job->spec.id; };
  for (auto level = running_by_priority_.begin();
       level != running_by_priority_.end() && level->first < job.spec.priority; ++level) {
    const size_t before = candidates.size();
    for (const auto& [id, k] : level->second) consider(k);
    if (before == 0) continue;
    merged.resize(candidates.size());
    std::merge(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(before),
               candidates.begin() + static_cast<std::ptrdiff_t>(before), candidates.end(), merged.begin(), by_id);
    candidates.swap(merged);
  }
  return candidates;
}

// Victim choice (docs/decisions/0002): the lowest priority ceiling that makes room — never
// evict higher-priority work to spare lower — then the fewest victims, then the least work lost,
// borrowed capacity first. Within a ceiling: one victim if one suffices (the best by borrowed,
// then least work lost), else victims borrowed first and largest first until the job fits, then
// victims the job can do without are spared. The cluster state is restored exactly: victims
// keep their resources through the grace period.
bool Engine::TryPreempt(TimeMs now, Job& job, Decisions& out) {
  // A victim frees its spares too.
  auto release = [&](const Job* v) {
    ReleaseGang(cluster_, v->spec, v->workers);
    ReleaseGang(cluster_, v->spec, v->spares);
  };
  auto restore = [&](const Job* v) {
    for (const WorkerPlacement& p : v->workers) cluster_.Allocate(p.node, v->spec.worker, p.devices);
    for (const WorkerPlacement& p : v->spares) cluster_.Allocate(p.node, v->spec.worker, p.devices);
  };
  const JobSpec gang = GangSpec(job.spec);
  auto job_fits = [&] {
    GangResult r = PlaceGang(cluster_, gang);
    if (r.placed()) ReleaseGang(cluster_, gang, r.workers);
    return r.placed();
  };
  constexpr size_t kSingleProbes = 64;
  constexpr size_t kSparingProbes = 16;
  const CandidateKey key{job.spec.priority, job.spec.tenant.value(), job.spec.worker.types.mask,
                         job.spec.worker.gpus == 0};
  auto cached = pass_candidates_.find(key);
  if (cached == pass_candidates_.end()) {
    cached = pass_candidates_.emplace(key, VictimCandidates(now, job)).first;
  } else {
    std::erase_if(cached->second,
                  [](const Candidate& c) { return c.job->preempt_at || c.job->state != JobState::kRunning; });
  }
  const std::vector<Candidate>& all = cached->second;
  // Counting before probing: a fit test costs a placement, a count costs nothing.
  uint64_t free = 0;
  for (uint32_t t = 0; t < fleet_.catalog().accelerators().size(); ++t) {
    if (job.spec.worker.types.Allows(AcceleratorTypeId(t))) free += cluster_.free_whole(AcceleratorTypeId(t));
  }
  const uint64_t need = Accelerators(job);
  const uint64_t shortfall = need > free ? need - free : 0;
  std::vector<int32_t> ceilings;  // distinct priorities: a handful
  for (const Candidate& c : all) {
    if (std::find(ceilings.begin(), ceilings.end(), c.job->spec.priority) == ceilings.end()) {
      ceilings.push_back(c.job->spec.priority);
    }
  }
  std::sort(ceilings.begin(), ceilings.end());

  std::vector<Job*> victims;
  for (int32_t ceiling : ceilings) {
    // One victim: the best few that could cover the shortfall alone.
    std::vector<const Candidate*> singles;
    for (const Candidate& c : all) {
      if (c.job->spec.priority <= ceiling && static_cast<uint64_t>(c.size) >= shortfall) singles.push_back(&c);
    }
    auto better = [](const Candidate* a, const Candidate* b) {
      return std::tie(a->not_borrowed, a->lost, a->job->spec.id) < std::tie(b->not_borrowed, b->lost, b->job->spec.id);
    };
    const size_t probes = std::min(singles.size(), kSingleProbes);
    std::partial_sort(singles.begin(), singles.begin() + static_cast<std::ptrdiff_t>(probes), singles.end(), better);
    for (size_t i = 0; i < probes && victims.empty(); ++i) {
      release(singles[i]->job);
      if (job_fits()) victims.push_back(singles[i]->job);
      restore(singles[i]->job);
    }
    if (!victims.empty()) break;
    // Several: borrowed first, largest first (bucketed by size: sizes are few), id order within.
    std::map<std::pair<bool, int64_t>, std::vector<Job*>> buckets;
    for (const Candidate& c : all) {
      if (c.job->spec.priority <= ceiling) buckets[{c.not_borrowed, -c.size}].push_back(c.job);
    }
    bool fits = false;
    uint64_t freed = 0;
    for (auto& [key, jobs] : buckets) {
      for (Job* v : jobs) {
        release(v);
        victims.push_back(v);
        freed += static_cast<uint64_t>(-key.second);
        if (freed >= shortfall && (fits = job_fits())) break;
      }
      if (fits) break;
    }
    if (fits) {
      for (size_t i = victims.size(), tries = 0; i-- > 0 && tries < kSparingProbes; ++tries) {
        restore(victims[i]);
        if (job_fits()) {
          victims.erase(victims.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          release(victims[i]);
        }
      }
      for (Job* v : victims) restore(v);
      break;
    }
    for (Job* v : victims) restore(v);
    victims.clear();
  }
  if (victims.empty()) return false;
  const TimeMs deadline = now + config_.preemption_grace;
  for (Job* v : victims) {
    v->preempt_at = deadline;
    preempting_.insert({deadline, v->spec.id});
    out.kills.push_back({v->spec.id, KillReason::kPreempted, deadline});
    job.waiting_for.push_back(v->spec.id);
  }
  job.reason = PendingReason::kPreempting;
  if (config_.preemption_grace > 0) return true;
  FinishPreemptions(now);
  job.waiting_for.clear();
  GangResult r = PlaceGang(cluster_, gang);
  JOULE_CHECK(r.placed());
  std::vector<WorkerPlacement> spares = TakeSpares(job.spec, r.workers);
  if (std::optional<uint32_t> limit = AdmitPower(job, r.workers, spares, OwedOneType(job))) {
    Started(now, job, std::move(r.workers), std::move(spares), *limit, out);
  }
  return true;
}

}  // namespace joule
