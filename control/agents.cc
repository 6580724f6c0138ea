// The control plane's side of node agents: heartbeats, workers' ends and energy, silent nodes.
#include "control/control_plane.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/journal_json.h"

namespace joule::control {

// ---- Agents ----

void ControlPlane::CheckAgents(TimeMs now) {
  auto mark_down = [&](uint32_t n, std::string reason) {
    auto record = std::make_shared<Record>();
    record->type = Record::Type::kHealth;
    record->at = now;
    record->who = "server";
    record->event = NodeHealthChange{NodeId(n), NodeHealth::kDown, Actor::kAgent, std::move(reason), std::nullopt};
    Enqueue(record);
  };
  // agents_required: a node no agent has registered for within the timeout is down, as Slurm
  // holds a node whose slurmd never registered; checked once, then silence does the rest.
  if (!first_tick_) first_tick_ = now;
  if (config_.agents_required && !registrations_checked_ && now - *first_tick_ > config_.agent_timeout_ms) {
    registrations_checked_ = true;
    for (uint32_t n = 0; n < nodes_.size(); ++n) {
      const NodeHealth health = nodes_[n].health;
      if (agent_marked_down_.contains(n) || (health != NodeHealth::kHealthy && health != NodeHealth::kSuspect)) {
        continue;
      }
      mark_down(
          n, fmt::format("no agent registered within {:.1f} s", static_cast<double>(config_.agent_timeout_ms) / 1000));
      agent_marked_down_[n] = true;
    }
  }
  // The sweep for silent agents walks every node with an agent: once a second (or a quarter of the
  // timeout) is enough; passes come far more often on a busy campus.
  if (now < next_silence_check_) return;
  next_silence_check_ = now + std::min<TimeMs>(1000, config_.agent_timeout_ms / 4);
  for (auto& [n, marked_down] : agent_marked_down_) {
    const TimeMs last = nodes_[n].agent ? nodes_[n].agent->last_heartbeat : 0;
    if (marked_down || now - last <= config_.agent_timeout_ms) continue;
    const NodeHealth health = nodes_[n].health;
    if (health == NodeHealth::kDown || health == NodeHealth::kRepairing) continue;
    mark_down(n, fmt::format("agent silent for {:.1f} s", static_cast<double>(now - last) / 1000));
    marked_down = true;
  }
}

std::optional<uint64_t> ControlPlane::JournalEnergy(JobInfo& job, const WorkerExit& e, TimeMs now,
                                                    const std::string& who) {
  const double joules = std::max(0.0, e.energy_j.value_or(0));
  if (!e.energy_j || e.run == 0 || e.run > job.run ||
      !job.energy_final.emplace(std::pair{e.run, e.rank}, joules).second) {
    return std::nullopt;
  }
  job.energy_live.erase({e.run, e.rank});  // final now, journaled below
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kEnergy;
  record->at = now;
  record->who = who;
  record->job = job.id;
  record->run = e.run;
  record->rank = e.rank;
  record->joules = joules;
  return Enqueue(record);
}

bool ControlPlane::AgentHeartbeatWaits(std::string_view name, const AgentReport& report) const {
  if (!report.ended.empty()) return true;
  std::lock_guard lock(mu_);
  const std::optional<NodeId> node = FindNode(name);
  if (!node) return false;
  const NodeInfo& info = nodes_[node->value()];
  const auto marked = agent_marked_down_.find(node->value());
  return (marked != agent_marked_down_.end() && marked->second) ||
         (info.health == NodeHealth::kDown && info.actor == Actor::kAgent);
}

Outcome<NodeAssignments> ControlPlane::AgentHeartbeat(const Principal& who, std::string_view name, AgentReport report) {
  if (!who.agent()) return ApiError{403, "Authorization", "only a node's agent reports for it, with its credential"};
  if (who.node != name) {
    return ApiError{403, "Authorization",
                    fmt::format("this credential is node {}'s: it reports for that node only", who.node)};
  }
  std::unique_lock lock(mu_);
  if (!Accepting()) return NotAccepting();
  const std::optional<NodeId> node = FindNode(name);
  if (!node) return ApiError{404, "name", fmt::format("node {} does not exist", name)};
  const NodeType& type = scenario_.fleet.node_type(*node);
  if (report.gpu_count && *report.gpu_count < type.accelerators) {
    return ApiError{409, "gpus.count",
                    fmt::format("node {} has {} accelerators in the fleet ({}); its agent found {} ({})", name,
                                type.accelerators, type.name, *report.gpu_count, report.gpu_source)};
  }
  const TimeMs now = std::max(clock_(), last_step_);
  EnsureClusterId();  // a journal from before ids, or one whose first record failed
  bool& marked_down = agent_marked_down_[node->value()];
  std::optional<AgentView>& view = nodes_[node->value()].agent;
  if (view && !report.gpu_count && report.gpus.empty()) {  // a quick report: the readings stand
    view->address = report.address;
    view->last_heartbeat = now;
  } else {
    view = AgentView{report.address, now, report.gpu_source, report.driver_version, std::move(report.gpus)};
  }
  std::optional<uint64_t> last_ticket;
  auto enqueue = [&](Record::Type type, Event event) {
    auto record = std::make_shared<Record>();
    record->type = type;
    record->at = now;
    record->who = who.name;
    record->event = std::move(event);
    last_ticket = Enqueue(record);
  };
  // Back: a node this server marked down for its agent's silence, or one marked so before a
  // restart of the server (the journal keeps the health, not this map).
  const NodeInfo& info = nodes_[node->value()];
  if (marked_down || (info.health == NodeHealth::kDown && info.actor == Actor::kAgent)) {
    marked_down = false;
    if (info.health == NodeHealth::kDown) {
      enqueue(Record::Type::kHealth,
              NodeHealthChange{*node, NodeHealth::kHealthy, Actor::kAgent, "agent back", std::nullopt});
    }
  }
  for (const WorkerEnergy& w : report.running) {
    auto it = jobs_.find(w.job);
    if (it == jobs_.end() || w.run == 0 || w.run > it->second.run || it->second.energy_final.contains({w.run, w.rank}))
      continue;
    it->second.energy_live[{w.run, w.rank}] = std::max(0.0, w.energy_j);
  }
  for (const WorkerExit& e : report.ended) {
    auto it = jobs_.find(e.job);
    if (it == jobs_.end()) continue;
    JobInfo& job = it->second;
    if (std::optional<uint64_t> ticket = JournalEnergy(job, e, now, who.name)) last_ticket = ticket;
    if (job.state != JobState::kRunning || finishing_.contains(e.job)) continue;
    if (e.run != job.run || e.rank >= job.nodes.size() || job.nodes[e.rank] != *node) continue;
    std::map<uint32_t, int>& codes = exits_[e.job];
    codes[e.rank] = e.exit_code;
    const bool failed = e.exit_code != 0;
    if (failed || codes.size() == job.nodes.size()) {
      finishing_.insert(e.job);
      enqueue(Record::Type::kFinish, JobFinished{e.job, !failed});
    }
  }
  // The agent forgets what it reported once answered: the answer waits for those records.
  if (last_ticket && !WaitDurable(lock, *last_ticket)) {
    return JournalFailed("report");
  }
  return AssignmentsOf(*node);
}

NodeAssignments ControlPlane::AssignmentsOf(NodeId node) const {
  NodeAssignments result;
  std::vector<Assignment>& out = result.assignments;
  // The node's jobs (a job with several workers here is listed once), not every running job.
  std::vector<JobId> here = nodes_[node.value()].jobs;
  std::sort(here.begin(), here.end());
  here.erase(std::unique(here.begin(), here.end()), here.end());
  for (JobId id : here) {
    if (!running_jobs_.contains(id)) continue;
    const JobInfo& job = jobs_.at(id);
    for (uint32_t rank = 0; rank < job.nodes.size(); ++rank) {
      if (job.nodes[rank] != node) continue;
      const std::optional<AgentView>& master = nodes_[job.nodes[0].value()].agent;
      out.push_back({id, rank, static_cast<uint32_t>(job.nodes.size()),
                     rank < job.devices.size() ? job.devices[rank] : std::vector<uint32_t>{},
                     !master || master->address.empty() ? "127.0.0.1" : master->address,
                     static_cast<uint16_t>(20'000 + id % 40'000), job.spec, job.run, job.power_limit_permille});
    }
  }
  // FNV-1a over what the agent acts on: which workers, which run, their devices' power limit,
  // where rank 0 listens.
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 1099511628211ULL;
  };
  for (const Assignment& a : out) {
    mix(a.job);
    mix(a.rank);
    mix(a.run);
    mix(a.power_limit_permille);
    for (char c : a.master_addr) mix(static_cast<unsigned char>(c));
  }
  result.version = h == 0 ? 1 : h;
  result.cluster = cluster_id_;
  return result;
}

void ControlPlane::WatchNode(NodeId node, uint64_t known, std::chrono::milliseconds wait,
                             std::function<void(NodeAssignments)> notify) {
  std::unique_lock lock(mu_);
  NodeAssignments now = AssignmentsOf(node);
  if (now.version != known || !Accepting() || wait.count() <= 0) {
    lock.unlock();
    notify(std::move(now));
    return;
  }
  watchers_.emplace(node.value(), Watcher{known, std::chrono::steady_clock::now() + wait, std::move(notify)});
}

void ControlPlane::NotifyWatchers(std::unique_lock<std::mutex>& lock, bool all) {
  std::vector<std::pair<std::function<void(NodeAssignments)>, NodeAssignments>> due;
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  for (uint32_t n : touched_) {
    auto [first, last] = watchers_.equal_range(n);
    if (first == last) continue;
    const NodeAssignments now = AssignmentsOf(NodeId(n));
    for (auto it = first; it != last;) {
      if (it->second.known == now.version) {
        ++it;
        continue;
      }
      due.emplace_back(std::move(it->second.notify), now);
      it = watchers_.erase(it);
    }
  }
  touched_.clear();
  const auto now = std::chrono::steady_clock::now();
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (!all && it->second.deadline > now) {
      ++it;
      continue;
    }
    due.emplace_back(std::move(it->second.notify), AssignmentsOf(NodeId(it->first)));
    it = watchers_.erase(it);
  }
  if (due.empty()) return;
  lock.unlock();
  for (auto& [notify, assignments] : due) notify(std::move(assignments));
  lock.lock();
}

}  // namespace joule::control
