// The power governor: the engine's ledger of every power budget on the campus — each rack
// (its type's power shelf), row (power domain), hall, and the campus's grid connection (as IT
// power: the connection divided by the PUE at full load on the hottest day, power/facility.h) —
// and the power limits of running jobs.
//
// A budget's draw is the idle draw of everything it feeds plus, for each running worker under it,
// what the worker adds at its job's power limit (power/draw.h), rounded up per job and budget, so
// the ledger never understates what the twin or the agents would measure from the same model.
//
//   admission — a job starts only if every budget above its workers holds it. When one would not,
//               the governor lowers the power limits of running work of the job's priority or lower
//               — lowest priority first, then the most power-elastic (least speed lost per watt
//               saved), then the newest — never below the power model's minimum limit, the job itself among
//               them, just far enough. When even that cannot make room nothing changes, the job
//               waits with reason PowerCap, and the budgets it lacked are held for the rest of the
//               pass: later (lower-ranked) jobs may not take what it waits for, so a large job is
//               not starved by a stream of small ones.
//   release   — when jobs end, limits go back up: highest priority first, least elastic first, as
//               far as every budget allows, except on budgets a waiting job holds.
//
// Limits are per job (one per-mille of rated power for all its accelerators); Decisions carry
// them (StartJob::power_limit_permille, Decisions::power_limits) so agents can apply them.
// Thread-safety: not thread-safe; owned by the engine's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "model/fleet.h"
#include "power/draw.h"
#include "sched/events.h"
#include "sched/job.h"

namespace joule {

struct PowerConfig {
  bool enabled = true;  // off: no budgets, every job uncapped (the "uncapped campus" baseline)
  // Replaces the campus budget derived from the grid connection (IT watts): how oversubscription
  // studies shrink the envelope of a fleet.
  std::optional<Watts> campus_it_budget_w;
};

enum class PowerLevel : uint8_t { kCampus, kHall, kRow, kRack };

std::string_view PowerLevelName(PowerLevel level);

class PowerGovernor {
 public:
  struct Budget {
    PowerLevel level;
    uint32_t index;  // hall, row or rack id; 0 for the campus
    Watts budget_w;
    Watts idle_w;      // idle draw of everything it feeds
    Watts used_w;      // idle_w + running work at its limits
    Watts cappable_w;  // what lowering every running job under it to the floor would save
  };

  // REQUIRES: the fleet outlives the governor.
  PowerGovernor(const Fleet& fleet, PowerConfig config);

  // Starts a new scheduling pass: budgets held by jobs waiting in the last pass are free again.
  void BeginPass();
  // Whether the campus budget is held by a waiting job (then no job may start but one owed a
  // reservation; checking this first saves placing jobs that power would refuse).
  bool CampusHeld() const { return !budgets_.empty() && campus_ && held_[*campus_]; }
  // Admits a job placed on `workers` (see the header): its limit, or nullopt for PowerCap. On
  // success the job is in the ledger. `ignore_holds`: the job is owed its reservation.
  std::optional<uint32_t> Admit(const JobSpec& spec, std::span<const WorkerPlacement> workers, bool ignore_holds);
  // The job stopped running: its draw leaves the ledger.
  void Remove(JobId job);
  // Raises limits where jobs ended since the last call left room.
  void RaiseLimits();
  // Jobs whose limit changed since the last call, with their limit now; jobs removed meanwhile are
  // left out.
  std::vector<std::pair<JobId, uint32_t>> TakeChanges();

  // Snapshots (sched/engine_state.h): a running job's own limit (not as reported), the flags and
  // changes a pass leaves; Restore puts a running job back in the ledger at its limit, without
  // admission. REQUIRES for Restore: SetFlags first, then the jobs.
  std::optional<uint32_t> saved_limit(JobId job) const;
  bool ordered() const { return ordered_; }
  bool room_returned() const { return room_returned_; }
  std::vector<JobId> changed() const { return {changed_.begin(), changed_.end()}; }
  void SetFlags(bool ordered, bool room_returned, std::span<const JobId> changed);
  void Restore(const JobSpec& spec, std::span<const WorkerPlacement> workers, uint32_t limit);

  // The job's limit, per-mille of rated (kRatedPermille when uncapped); nullopt if not running.
  std::optional<uint32_t> limit(JobId job) const;
  std::span<const Budget> budgets() const { return budgets_; }
  // Aborts unless every budget's used and cappable watts equal the sum over running jobs, and
  // no budget is over (tests, debug).
  void CheckInvariants() const;

 private:
  struct Share {
    uint32_t budget;
    ExtraLine line;  // the job's workers under this budget
  };
  struct JobPower {
    int32_t priority = 0;
    uint32_t loss = 0;     // speed lost per per-mille of limit, x1e6: the elasticity order
    uint32_t natural = 0;  // per-mille: uncapped draw
    uint32_t floor = 0;    // per-mille: lowest limit the governor sets
    uint32_t limit = 0;    // per-mille, floor..natural
    std::vector<Share> shares;
  };
  using CapKey = std::tuple<int32_t, uint32_t, int64_t>;  // priority, loss, -id: capping order

  static Watts Draw(const Share& s, uint32_t limit);
  // The limit decisions carry: kRatedPermille when the job runs at its natural draw.
  static uint32_t Reported(const JobPower& job) { return job.limit >= job.natural ? kRatedPermille : job.limit; }
  void Add(JobId id, const JobPower& job, int sign);    // in or out of the ledger and the order
  void Order(JobId id, const JobPower& job, int sign);  // in or out of the capping order
  void SetLimit(JobId id, JobPower& job, uint32_t limit);
  JobPower Figures(const JobSpec& spec, std::span<const WorkerPlacement> workers, std::vector<Share> shares) const;
  std::vector<Share> SharesOf(const JobSpec& spec, std::span<const WorkerPlacement> workers) const;

  const Fleet& fleet_;
  PowerConfig config_;
  std::vector<Budget> budgets_;
  std::vector<bool> held_;
  std::optional<uint32_t> campus_;
  std::vector<std::optional<uint32_t>> hall_budget_, row_budget_, rack_budget_;  // budget index by id
  std::unordered_map<JobId, JobPower> jobs_;
  // The capping order, kept from the first shortfall on (a campus that never runs short pays
  // nothing for it): running jobs above their floor, and those below their natural draw.
  bool ordered_ = false;
  std::set<CapKey> cappable_;
  std::set<CapKey> capped_;
  std::set<JobId> changed_;
  bool room_returned_ = false;
};

}  // namespace joule
