#include "sched/power_governor.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "power/facility.h"

namespace joule {

std::string_view PowerLevelName(PowerLevel level) {
  switch (level) {
    case PowerLevel::kCampus:
      return "campus";
    case PowerLevel::kHall:
      return "hall";
    case PowerLevel::kRow:
      return "row";
    case PowerLevel::kRack:
      return "rack";
  }
  return "?";
}

PowerGovernor::PowerGovernor(const Fleet& fleet, PowerConfig config)
    : fleet_(fleet),
      config_(config),
      hall_budget_(fleet.halls().size()),
      row_budget_(fleet.rows().size()),
      rack_budget_(fleet.racks().size()) {
  if (!config_.enabled) return;
  auto add = [&](PowerLevel level, uint32_t index, Watts budget, Watts idle) {
    budgets_.push_back(Budget{level, index, budget, idle, idle, 0});
    return static_cast<uint32_t>(budgets_.size() - 1);
  };
  Watts campus = 0;
  if (config_.campus_it_budget_w) {
    campus = *config_.campus_it_budget_w;
  } else if (fleet.campus().grid_connection_w > 0) {
    campus = static_cast<Watts>(std::floor(static_cast<double>(fleet.campus().grid_connection_w) /
                                           DesignPue(fleet, static_cast<double>(fleet.it_draw().rated_w))));
  }
  if (campus > 0) campus_ = add(PowerLevel::kCampus, 0, campus, fleet.it_draw().idle_w);
  for (uint32_t h = 0; h < fleet.halls().size(); ++h) {
    if (auto b = fleet.halls()[h].power_budget_w)
      hall_budget_[h] = add(PowerLevel::kHall, h, *b, fleet.hall_draw(HallId(h)).idle_w);
  }
  for (uint32_t r = 0; r < fleet.rows().size(); ++r) {
    if (auto b = fleet.rows()[r].power_budget_w)
      row_budget_[r] = add(PowerLevel::kRow, r, *b, fleet.row_draw(RowId(r)).idle_w);
  }
  for (uint32_t r = 0; r < fleet.racks().size(); ++r) {
    if (auto b = fleet.catalog().rack(fleet.racks()[r].type).power_budget_w) {
      rack_budget_[r] = add(PowerLevel::kRack, r, *b, fleet.rack_draw(RackId(r)).idle_w);
    }
  }
  held_.assign(budgets_.size(), false);
}

Watts PowerGovernor::Draw(const Share& s, uint32_t limit) {
  // A hair below the exact value before rounding up, so that float noise never adds a watt; the
  // twin allows 1 W of rounding when it compares its own sums with the budgets.
  return static_cast<Watts>(std::ceil(s.line.slope * limit + s.line.base - 1e-6));
}

std::vector<PowerGovernor::Share> PowerGovernor::SharesOf(const JobSpec& spec,
                                                          std::span<const WorkerPlacement> workers) const {
  // Every worker's line under each budget above it, then summed per budget (sorted by budget, in
  // the order workers come: the sums are the same on every platform).
  std::vector<Share> all;
  all.reserve(workers.size() * 4);
  for (const WorkerPlacement& w : workers) {
    const ExtraLine line =
        WorkerExtraLine(fleet_, w.node, static_cast<uint32_t>(w.devices.size()), spec.worker.milli_per_gpu);
    if (line.slope == 0 && line.base == 0) continue;
    const RackId rack = fleet_.node(w.node).rack;
    const RowId row = fleet_.RowOf(rack);
    for (std::optional<uint32_t> b :
         {campus_, hall_budget_[fleet_.row(row).hall.value()], row_budget_[row.value()], rack_budget_[rack.value()]}) {
      if (b) all.push_back({*b, line});
    }
  }
  std::stable_sort(all.begin(), all.end(), [](const Share& a, const Share& b) { return a.budget < b.budget; });
  std::vector<Share> shares;
  for (const Share& s : all) {
    if (shares.empty() || shares.back().budget != s.budget) {
      shares.push_back(s);
    } else {
      shares.back().line.slope += s.line.slope;
      shares.back().line.base += s.line.base;
    }
  }
  return shares;
}

void PowerGovernor::BeginPass() { std::fill(held_.begin(), held_.end(), false); }

void PowerGovernor::Add(JobId id, const JobPower& job, int sign) {
  for (const Share& s : job.shares) {
    budgets_[s.budget].used_w += sign * Draw(s, job.limit);
    budgets_[s.budget].cappable_w += sign * (Draw(s, job.limit) - Draw(s, job.floor));
  }
  if (ordered_) Order(id, job, sign);
}

void PowerGovernor::Order(JobId id, const JobPower& job, int sign) {
  const CapKey key{job.priority, job.loss, -static_cast<int64_t>(id)};
  if (sign > 0) {
    if (job.limit > job.floor) cappable_.insert(key);
    if (job.limit < job.natural) capped_.insert(key);
  } else {
    cappable_.erase(key);
    capped_.erase(key);
  }
}

void PowerGovernor::SetLimit(JobId id, JobPower& job, uint32_t limit) {
  if (limit == job.limit) return;
  Add(id, job, -1);
  job.limit = limit;
  Add(id, job, +1);
  changed_.insert(id);
}

// A job's figures at its natural draw. The floor: the configured one, but never below idle or
// above the natural draw of any of the job's accelerator types.
PowerGovernor::JobPower PowerGovernor::Figures(const JobSpec& spec, std::span<const WorkerPlacement> workers,
                                               std::vector<Share> shares) const {
  const PowerModelSpec& model = fleet_.campus().power_model;
  const uint32_t natural = model.of(spec.work).natural_permille;
  uint32_t floor = std::min(model.min_limit_permille, natural);
  for (const WorkerPlacement& w : workers) {
    if (auto type = fleet_.node_type(w.node).accelerator) {
      floor = std::max(floor, std::min(natural, IdlePermille(fleet_.catalog().accelerator(*type))));
    }
  }
  const uint32_t loss = model.of(spec.work).cap_sensitivity_milli * 1000 / natural;
  return JobPower{spec.priority, loss, natural, floor, natural, std::move(shares)};
}

std::optional<uint32_t> PowerGovernor::Admit(const JobSpec& spec, std::span<const WorkerPlacement> workers,
                                             bool ignore_holds) {
  if (budgets_.empty()) return kRatedPermille;
  std::vector<Share> shares = SharesOf(spec, workers);
  if (shares.empty()) return kRatedPermille;  // no accelerators: nothing to govern
  if (!ignore_holds) {
    for (const Share& s : shares) {
      if (held_[s.budget]) return std::nullopt;
    }
  }
  JobPower& job = jobs_[spec.id];
  JOULE_CHECK(job.shares.empty());  // not running already
  job = Figures(spec, workers, std::move(shares));
  Add(spec.id, job, +1);

  std::vector<uint32_t> over;
  for (const Share& s : job.shares) {
    if (budgets_[s.budget].used_w > budgets_[s.budget].budget_w) over.push_back(s.budget);
  }
  struct Undo {
    JobId id;
    uint32_t limit;
    bool was_changed;  // already had a change to report before this admission
  };
  auto refuse = [&](std::span<const Undo> undo) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      SetLimit(it->id, jobs_.at(it->id), it->limit);
      if (!it->was_changed) changed_.erase(it->id);
    }
    for (uint32_t b : over) held_[b] = true;
    Add(spec.id, jobs_.at(spec.id), -1);
    jobs_.erase(spec.id);
    changed_.erase(spec.id);
    return std::nullopt;
  };
  if (over.empty()) return kRatedPermille;
  if (!ordered_) {  // the first shortfall: build the capping order of what runs
    ordered_ = true;
    for (const auto& [id, j] : jobs_) Order(id, j, +1);
  }
  // Even capping everything under a budget cannot make room: refuse without touching anyone.
  for (uint32_t b : over) {
    if (budgets_[b].used_w - budgets_[b].cappable_w > budgets_[b].budget_w) return refuse({});
  }
  std::vector<Undo> undo;
  auto still_over = [&] {
    std::erase_if(over, [&](uint32_t b) { return budgets_[b].used_w <= budgets_[b].budget_w; });
    return !over.empty();
  };
  for (auto it = cappable_.begin(); it != cappable_.end() && std::get<0>(*it) <= spec.priority;) {
    const JobId id = static_cast<JobId>(-std::get<2>(*it));
    ++it;  // SetLimit may erase the current element; the next one stays valid
    JobPower& candidate = jobs_.at(id);
    // Lower it just far enough for the worst budget it shares with the excess.
    uint32_t cut = 0;
    for (const Share& s : candidate.shares) {
      const Budget& b = budgets_[s.budget];
      if (b.used_w <= b.budget_w || s.line.slope <= 0) continue;
      const double need = static_cast<double>(b.used_w - b.budget_w) / s.line.slope;
      cut = std::max(cut, static_cast<uint32_t>(std::min(1000.0, std::ceil(need))));
    }
    if (cut == 0) continue;
    const uint32_t limit = candidate.limit > candidate.floor + cut ? candidate.limit - cut : candidate.floor;
    undo.push_back({id, candidate.limit, changed_.count(id) > 0});
    SetLimit(id, candidate, limit);
    if (!still_over()) {
      changed_.erase(spec.id);
      return Reported(jobs_.at(spec.id));
    }
  }
  return refuse(undo);
}

void PowerGovernor::Remove(JobId job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  Add(job, it->second, -1);
  jobs_.erase(it);
  changed_.erase(job);
  room_returned_ = true;
}

void PowerGovernor::RaiseLimits() {
  if (!room_returned_) return;
  room_returned_ = false;
  // From the top of the capping order down; SetLimit may drop the job from capped_, so the walk
  // goes on from its key.
  for (auto it = capped_.end(); it != capped_.begin();) {
    if (campus_ && budgets_[*campus_].used_w >= budgets_[*campus_].budget_w) return;
    const CapKey key = *--it;
    const JobId id = static_cast<JobId>(-std::get<2>(key));
    JobPower& job = jobs_.at(id);
    uint32_t raise = job.natural - job.limit;
    for (const Share& s : job.shares) {
      const Budget& b = budgets_[s.budget];
      if (held_[s.budget] || b.used_w >= b.budget_w) {
        raise = 0;
        break;
      }
      if (s.line.slope > 0) {
        const double room = std::floor(static_cast<double>(b.budget_w - b.used_w) / s.line.slope);
        raise = std::min(raise, static_cast<uint32_t>(std::min(room, 1000.0)));
      }
    }
    // Rounding up per budget may overshoot by a watt: step back until every budget holds.
    while (raise > 0) {
      bool fits = true;
      for (const Share& s : job.shares) {
        const Budget& b = budgets_[s.budget];
        if (b.used_w - Draw(s, job.limit) + Draw(s, job.limit + raise) > b.budget_w) fits = false;
      }
      if (fits) break;
      --raise;
    }
    if (raise > 0) SetLimit(id, job, job.limit + raise);
    it = capped_.lower_bound(key);
  }
}

std::vector<std::pair<JobId, uint32_t>> PowerGovernor::TakeChanges() {
  std::vector<std::pair<JobId, uint32_t>> out;
  out.reserve(changed_.size());
  for (JobId id : changed_) out.emplace_back(id, Reported(jobs_.at(id)));
  changed_.clear();
  return out;
}

std::optional<uint32_t> PowerGovernor::limit(JobId job) const {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::nullopt;
  return Reported(it->second);
}

std::optional<uint32_t> PowerGovernor::saved_limit(JobId job) const {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.limit;
}

void PowerGovernor::SetFlags(bool ordered, bool room_returned, std::span<const JobId> changed) {
  ordered_ = ordered;
  room_returned_ = room_returned;
  changed_ = {changed.begin(), changed.end()};
}

void PowerGovernor::Restore(const JobSpec& spec, std::span<const WorkerPlacement> workers, uint32_t limit) {
  if (budgets_.empty()) return;
  std::vector<Share> shares = SharesOf(spec, workers);
  if (shares.empty()) return;
  JobPower& job = jobs_[spec.id];
  job = Figures(spec, workers, std::move(shares));
  job.limit = std::clamp(limit, job.floor, job.natural);
  Add(spec.id, job, +1);
}

void PowerGovernor::CheckInvariants() const {
  std::vector<Watts> used(budgets_.size()), cappable(budgets_.size());
  for (size_t i = 0; i < budgets_.size(); ++i) used[i] = budgets_[i].idle_w;
  for (const auto& [id, job] : jobs_) {
    JOULE_CHECK(job.floor <= job.limit && job.limit <= job.natural);
    for (const Share& s : job.shares) {
      used[s.budget] += Draw(s, job.limit);
      cappable[s.budget] += Draw(s, job.limit) - Draw(s, job.floor);
    }
  }
  for (size_t i = 0; i < budgets_.size(); ++i) {
    JOULE_CHECK(used[i] == budgets_[i].used_w && cappable[i] == budgets_[i].cappable_w);
    JOULE_CHECK(budgets_[i].used_w <= budgets_[i].budget_w);
  }
}

}  // namespace joule
