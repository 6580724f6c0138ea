#include "control/control_plane.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "control/journal_records.h"
#include "io/journal_json.h"

namespace joule::control {

using nlohmann::json;

std::string StateName(JobState state) {
  std::string name(JobStateName(state));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

// ---- Opening and replay ----

ControlPlane::ControlPlane(io::ServerConfig config, io::Scenario scenario, std::unique_ptr<store::Journal> journal,
                           Clock clock)
    : config_(std::move(config)),
      scenario_(std::move(scenario)),
      clock_(std::move(clock)),
      journal_(std::move(journal)),
      engine_(std::make_unique<Engine>(scenario_.fleet, scenario_.tenants)),
      nodes_(scenario_.fleet.nodes().size()),
      tenants_(scenario_.tenants),
      tenant_use_(scenario_.tenants.size(), std::vector<uint64_t>(scenario_.fleet.catalog().accelerators().size(), 0)) {
  for (const io::TokenSpec& t : config_.tokens) {
    Principal p{t.name, std::nullopt, t.agent};
    if (t.tenant) p.tenant = FindTenant(*t.tenant);
    auth_.Add(std::move(p), FromHex(t.sha256));
  }
  // Indexes the request paths use, built once: node names, and per accelerator type the most a
  // node of the fleet holds (what a worker may ask for).
  const Fleet& fleet = scenario_.fleet;
  node_by_name_.reserve(fleet.nodes().size());
  largest_node_.assign(fleet.catalog().accelerators().size(), 0);
  for (uint32_t n = 0; n < fleet.nodes().size(); ++n) {
    node_by_name_.emplace(fleet.NodeName(NodeId(n)), NodeId(n));
    const NodeType& type = fleet.node_type(NodeId(n));
    if (type.accelerator) {
      uint32_t& largest = largest_node_[type.accelerator->value()];
      largest = std::max(largest, type.accelerators);
    }
  }
}

Result<std::unique_ptr<ControlPlane>> ControlPlane::Open(const io::ServerConfig& config, Clock clock) {
  Result<io::Scenario> scenario = io::LoadScenario(config.scenario);
  if (!scenario.ok()) return scenario.status();
  // Names in the config must exist in the scenario.
  for (size_t i = 0; i < config.tokens.size(); ++i) {
    const io::TokenSpec& t = config.tokens[i];
    if (!t.tenant) continue;
    const bool known = std::any_of(scenario->tenants.begin(), scenario->tenants.end(),
                                   [&](const TenantSpec& s) { return s.name == *t.tenant; });
    if (!known) {
      return Status::Error(
          fmt::format("server config: tokens[{}].tenant: '{}' is not a tenant of {}", i, *t.tenant, config.scenario));
    }
  }
  for (size_t i = 0; i < config.queues.size(); ++i) {
    for (const std::string& type : config.queues[i].gpu_types) {
      if (!scenario->fleet.catalog().FindAccelerator(type)) {
        return Status::Error(
            fmt::format("server config: queues[{}].gpu_types: '{}' is not an accelerator type", i, type));
      }
    }
  }
  // The state file's folder is made if missing (a fresh checkout has no out/).
  if (const std::filesystem::path folder = std::filesystem::path(config.state).parent_path(); !folder.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    if (ec) return Status::Error(fmt::format("{}: cannot make the state folder: {}", config.state, ec.message()));
  }
  Result<std::unique_ptr<store::SqliteJournal>> journal = store::SqliteJournal::Open(config.state);
  if (!journal.ok()) return journal.status();
  std::unique_ptr<ControlPlane> plane(
      new ControlPlane(config, std::move(*scenario), std::move(*journal), std::move(clock)));
  if (::joule::Status s = plane->Replay(); !s.ok()) return s;
  return plane;
}

std::optional<TenantId> ControlPlane::FindTenant(std::string_view name) const {
  for (size_t i = 0; i < scenario_.tenants.size(); ++i) {
    if (scenario_.tenants[i].name == name) return TenantId(static_cast<uint32_t>(i));
  }
  return std::nullopt;
}

std::optional<NodeId> ControlPlane::FindNode(std::string_view name) const {
  auto it = node_by_name_.find(name);
  if (it == node_by_name_.end()) return std::nullopt;
  return it->second;
}

double JobInfo::energy_joules() const {
  double sum = 0;
  for (const auto& [key, joules] : energy_final) sum += joules;
  for (const auto& [key, joules] : energy_live) sum += joules;
  return sum;
}

double AgentView::power_w() const {
  double sum = 0;
  for (const GpuTelemetry& g : gpus) sum += g.power_w;
  return sum;
}

::joule::Status ControlPlane::Replay() {
  std::optional<std::string> error;
  std::unique_lock lock(mu_);
  ::joule::Status read = journal_->Read(0, [&](const store::JournalEntry& entry) {
    if (error) return;
    Result<JournalRecord> r = DecodeRecord(entry.payload);
    if (!r.ok()) {
      error = fmt::format("{}: journal record {}: {}", config_.state, entry.seq, r.status().message());
      return;
    }
    if (r->type == Record::Type::kStep) {
      lock.unlock();
      const Decisions d = RunStep(r->at, r->through);
      lock.lock();
      ApplyDecisions(r->at, d);
      return;
    }
    ApplyInput(entry.seq, *r);
  });
  if (!read.ok()) return read;
  if (error) return ::joule::Status::Error(*error);
  applied_seq_ = journal_->last_seq();
  RefreshNodes();
  return ::joule::Status::Ok();
}

ControlPlane::~ControlPlane() { Stop(); }

void ControlPlane::Start() {
  std::lock_guard lock(mu_);
  if (running_) return;
  running_ = true;
  committer_ = std::thread([this] { CommitLoop(); });
  ticker_ = std::thread([this] { TickLoop(); });
}

void ControlPlane::Stop() {
  {
    std::lock_guard lock(mu_);
    if (!running_) return;
    stopping_ = true;
  }
  commit_wake_.notify_all();
  tick_wake_.notify_all();
  ticker_.join();
  committer_.join();
  std::lock_guard lock(mu_);
  running_ = false;
}

bool ControlPlane::ready() const {
  std::lock_guard lock(mu_);
  return running_ && !stopping_ && !broken_;
}

// ---- The commit pipeline ----

uint64_t ControlPlane::Enqueue(std::shared_ptr<Record> record) {
  std::string payload = EncodeRecord(*record);
  queue_.push_back({std::move(payload), std::move(record)});
  commit_wake_.notify_one();
  return next_ticket_++;
}

// Each waiting thread sleeps on its own condition variable and is woken only when its record is
// durable: one commit wakes the callers it acknowledged, not every caller waiting for the next.
bool ControlPlane::WaitDurable(std::unique_lock<std::mutex>& lock, uint64_t ticket) {
  thread_local std::condition_variable mine;
  if (durable_ticket_ < ticket && !broken_) waiters_.push_back({ticket, &mine});
  mine.wait(lock, [&] { return durable_ticket_ >= ticket || broken_; });
  return durable_ticket_ >= ticket;
}

void ControlPlane::CommitLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    commit_wake_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) return;  // stopping, nothing left
    std::vector<Queued> batch;
    batch.swap(queue_);
    lock.unlock();
    std::vector<std::string> payloads;
    payloads.reserve(batch.size());
    for (Queued& q : batch) payloads.push_back(std::move(q.payload));
    const auto begin = std::chrono::steady_clock::now();
    Result<uint64_t> last = journal_->Append(payloads);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    lock.lock();
    if (!last.ok()) {
      broken_ = last.status().message();
      WakeDurable();
      return;
    }
    const uint64_t first = *last - batch.size() + 1;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].record->type != Record::Type::kStep) ApplyInput(first + i, *batch[i].record);
    }
    applied_seq_ = *last;
    durable_ticket_ += batch.size();
    counters_.journal_records += batch.size();
    counters_.journal_commits++;
    counters_.commit_seconds_sum += seconds;
    WakeDurable();
  }
}

void ControlPlane::WakeDurable() {
  std::erase_if(waiters_, [&](const Waiter& w) {
    if (w.ticket > durable_ticket_ && !broken_) return false;
    w.wake->notify_one();
    return true;
  });
}

void ControlPlane::TickLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_ && !broken_) {
    const TimeMs now = std::max(clock_(), last_step_);
    CheckAgents(now);
    auto step = std::make_shared<Record>();
    step->type = Record::Type::kStep;
    step->at = now;
    step->through = applied_seq_;
    const uint64_t ticket = Enqueue(step);
    lock.unlock();
    const auto begin = std::chrono::steady_clock::now();
    const Decisions d = RunStep(now, step->through);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    lock.lock();
    // Decisions are shown only once the step that made them is durable: a restart re-makes them.
    if (!WaitDurable(lock, ticket)) break;
    ApplyDecisions(now, d);
    counters_.steps++;
    counters_.step_seconds_sum += seconds;
    counters_.step_seconds_max = std::max(counters_.step_seconds_max, seconds);
    tick_wake_.wait_for(lock, std::chrono::milliseconds(config_.tick_ms), [&] { return stopping_; });
  }
}

// ---- Applying records and decisions ----

void ControlPlane::Audit(uint64_t seq, const Record& record, std::string action, std::string target,
                         std::string detail) {
  audit_.push_back({seq, record.at, record.who, std::move(action), std::move(target), std::move(detail)});
}

void ControlPlane::SetState(JobInfo& job, JobState state) {
  if (job.state == state) return;
  state_count_[job.state]--;
  state_count_[state]++;
  if (job.state == JobState::kRunning) running_jobs_.erase(job.id);
  if (state == JobState::kRunning) running_jobs_.insert(job.id);
  job.state = state;
}

void ControlPlane::ApplyInput(uint64_t seq, const Record& r) {
  if (r.type == Record::Type::kEnergy) {
    if (auto it = jobs_.find(r.job); it != jobs_.end()) {
      JobInfo& job = it->second;
      job.energy_final[{r.run, r.rank}] = r.joules;
      job.energy_live.erase({r.run, r.rank});
    }
    return;
  }
  inputs_.push_back({seq, *r.event});
  if (const auto* e = std::get_if<JobSubmitted>(&*r.event)) {
    JobInfo job;
    job.id = e->spec.id;
    job.spec = r.spec;
    job.tenant = e->spec.tenant;
    job.priority = e->spec.priority;
    job.submitted = r.at;
    job.submitted_by = r.who;
    job.events.push_back({r.at, fmt::format("submitted by {}", r.who)});
    state_count_[JobState::kPending]++;
    next_id_ = std::max(next_id_, job.id + 1);
    // Live, Submit registered the key already; replay registers it here.
    if (!r.key.empty() && !idempotency_.contains({r.who, r.key})) {
      idempotency_[{r.who, r.key}] = {job.id, Sha256(io::EncodeJobSpec(r.spec)), 0};
    }
    Audit(seq, r, "submit", fmt::format("job/{}", job.id), r.spec.name);
    jobs_.emplace(job.id, std::move(job));
  } else if (const auto* e = std::get_if<JobCancelled>(&*r.event)) {
    if (auto it = jobs_.find(e->job); it != jobs_.end()) {
      it->second.events.push_back({r.at, fmt::format("cancel requested by {}", r.who)});
    }
    Audit(seq, r, "cancel", fmt::format("job/{}", e->job), "");
  } else if (const auto* e = std::get_if<JobFinished>(&*r.event)) {
    if (auto it = jobs_.find(e->job); it != jobs_.end()) {
      it->second.events.push_back(
          {r.at, fmt::format("workers exited ({}), reported by {}", e->ok ? "all 0" : "a failure", r.who)});
    }
    Audit(seq, r, "finish", fmt::format("job/{}", e->job), e->ok ? "ok" : "failed");
  } else if (const auto* e = std::get_if<NodeHealthChange>(&*r.event)) {
    Audit(seq, r, e->to == NodeHealth::kHealthy ? "resume" : std::string(NodeHealthName(e->to)),
          fmt::format("node/{}", scenario_.fleet.NodeName(e->node)), e->reason);
  } else if (const auto* e = std::get_if<TenantUpdate>(&*r.event)) {
    TenantSpec& t = tenants_[e->tenant.value()];
    t.reserved = e->reserved;
    t.borrow_limit = e->borrow_limit;
    t.weight = e->weight;
    std::string detail;
    for (const Reservation& res : e->reserved) {
      detail += fmt::format("{}{}={}", detail.empty() ? "reserved " : ",",
                            scenario_.fleet.catalog().accelerator(res.type).name, res.accelerators);
    }
    detail += fmt::format("{}borrow_limit={} weight={}", detail.empty() ? "" : " ",
                          e->borrow_limit ? std::to_string(*e->borrow_limit) : "none", e->weight);
    Audit(seq, r, "quota", fmt::format("tenant/{}", t.name), detail);
  }
}

Decisions ControlPlane::RunStep(TimeMs at, uint64_t through) {
  std::vector<Event> events;
  {
    std::lock_guard lock(mu_);
    size_t n = 0;
    while (n < inputs_.size() && inputs_[n].seq <= through) ++n;
    events.reserve(n);
    for (size_t i = 0; i < n; ++i) events.push_back(std::move(inputs_[i].event));
    inputs_.erase(inputs_.begin(), inputs_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  return engine_->Step(at, events);
}

void ControlPlane::ApplyDecisions(TimeMs at, const Decisions& d) {
  last_step_ = at;
  const Fleet& fleet = scenario_.fleet;
  auto job = [&](JobId id) -> JobInfo* {
    auto it = jobs_.find(id);
    return it == jobs_.end() ? nullptr : &it->second;
  };
  auto nodes_of = [](const std::vector<WorkerPlacement>& workers) {
    std::vector<NodeId> nodes;
    nodes.reserve(workers.size());
    for (const WorkerPlacement& w : workers) nodes.push_back(w.node);
    return nodes;
  };
  for (const Rejection& r : d.rejections) {
    if (JobInfo* j = job(r.job)) {
      SetState(*j, JobState::kRejected);
      j->end_reason = r.reason;
      j->ended = at;
      j->events.push_back({at, fmt::format("rejected: {}", r.reason)});
    }
  }
  // A job requeued by this step's events may start again in its pass: requeues come first.
  for (const Requeue& r : d.requeues) {
    if (JobInfo* j = job(r.job)) {
      SetState(*j, JobState::kPending);
      j->restarts = r.restarts;
      j->nodes.clear();
      j->events.push_back({at, fmt::format("requeued: {}", r.reason)});
    }
  }
  for (const StartJob& s : d.starts) {
    if (JobInfo* j = job(s.job)) {
      SetState(*j, JobState::kRunning);
      j->reason = PendingReason::kNone;
      j->started = at;
      j->nodes = nodes_of(s.workers);
      j->devices.clear();
      for (const WorkerPlacement& w : s.workers) j->devices.push_back(w.devices);
      exits_.erase(s.job);
      finishing_.erase(s.job);
      j->run++;
      j->power_limit_permille = s.power_limit_permille;
      j->events.push_back({at, fmt::format("started on {} node(s){}", j->nodes.size(),
                                           s.power_limit_permille < kRatedPermille
                                               ? fmt::format(", power capped at {}‰", s.power_limit_permille)
                                               : "")});
    }
  }
  for (const RestartJob& r : d.restarts) {
    if (JobInfo* j = job(r.job)) {
      j->nodes = nodes_of(r.workers);
      j->devices.clear();
      for (const WorkerPlacement& w : r.workers) j->devices.push_back(w.devices);
      exits_.erase(r.job);
      finishing_.erase(r.job);
      j->run++;
      j->restarts++;
      j->events.push_back({at, fmt::format("restarted on spares ({} worker(s) moved)", r.replaced)});
    }
  }
  for (const KillJob& k : d.kills) {
    if (JobInfo* j = job(k.job)) {
      j->events.push_back({at, fmt::format("stop: {}", KillReasonName(k.reason))});
      if (k.reason == KillReason::kPreempted) preempting_.push_back(k.job);
    }
  }
  for (const PowerLimit& p : d.power_limits) {
    if (JobInfo* j = job(p.job)) j->power_limit_permille = p.permille;
  }
  for (const PendingChange& p : d.pending) {
    if (JobInfo* j = job(p.job)) j->reason = p.reason;
  }
  for (const JobEnded& e : d.ended) {
    exits_.erase(e.job);
    finishing_.erase(e.job);
    if (JobInfo* j = job(e.job)) {
      SetState(*j, e.state);
      j->reason = PendingReason::kNone;
      j->end_reason = e.reason;
      j->ended = at;
      j->nodes.clear();
      j->events.push_back({at, fmt::format("{}: {}", StateName(e.state), e.reason)});
    }
  }
  // Preempted jobs go back to pending when their grace period ends, without a decision of their own.
  std::erase_if(preempting_, [&](JobId id) {
    JobInfo* j = job(id);
    const std::optional<JobState> state = engine_->state(id);
    if (j == nullptr || !state || *state == JobState::kRunning) return j == nullptr;
    if (*state == JobState::kPending) {
      SetState(*j, JobState::kPending);
      j->nodes.clear();
      j->events.push_back({at, "requeued: preempted"});
    }
    return true;
  });
  for (const HealthTransition& h : d.health) {
    NodeInfo& n = nodes_[h.node.value()];
    n.health = h.to;
    n.reason = h.reason;
    n.since = at;
    n.actor = h.actor;
  }
  for (const HealthRefusal& r : d.health_refused) {
    audit_.push_back({applied_seq_, at, "engine", "refused", fmt::format("node/{}", fleet.NodeName(r.node)), r.why});
  }
  budgets_.assign(engine_->power().budgets().begin(), engine_->power().budgets().end());
  RefreshNodes();
}

void ControlPlane::RefreshNodes() {
  const Fleet& fleet = scenario_.fleet;
  const ClusterState& cluster = engine_->cluster();
  for (uint32_t n = 0; n < fleet.nodes().size(); ++n) {
    NodeInfo& info = nodes_[n];
    uint32_t used = 0;
    for (uint16_t left : cluster.gpu_left(NodeId(n))) used += left < kMilliPerGpu ? 1 : 0;
    info.gpus_used = used;
    const std::span<const JobId> on = engine_->jobs_on(NodeId(n));
    info.jobs.assign(on.begin(), on.end());
  }
  for (auto& per_type : tenant_use_) std::fill(per_type.begin(), per_type.end(), 0);
  for (JobId id : running_jobs_) {
    const JobInfo& j = jobs_.at(id);
    for (NodeId n : j.nodes) {
      if (std::optional<AcceleratorTypeId> t = fleet.node_type(n).accelerator) {
        tenant_use_[j.tenant.value()][t->value()] += j.spec.gpus;
      }
    }
  }
}

// ---- Requests ----

Outcome<JobSpec> ControlPlane::Resolve(const Principal& who, io::SubmitSpec& spec) const {
  JobSpec job;
  if (who.tenant) {
    if (spec.tenant && *spec.tenant != TenantName(*who.tenant)) {
      return ApiError{403, "tenant", fmt::format("you may submit as tenant '{}' only", TenantName(*who.tenant))};
    }
    spec.tenant = TenantName(*who.tenant);
    job.tenant = *who.tenant;
  } else {
    if (!spec.tenant) return ApiError{400, "tenant", "is required when an operator submits"};
    std::optional<TenantId> t = FindTenant(*spec.tenant);
    if (!t) return ApiError{400, "tenant", fmt::format("'{}' is not a tenant", *spec.tenant)};
    job.tenant = *t;
  }
  const io::QueueSpec* queue = &config_.queues.front();
  if (spec.queue) {
    auto it = std::find_if(config_.queues.begin(), config_.queues.end(),
                           [&](const io::QueueSpec& q) { return q.name == *spec.queue; });
    if (it == config_.queues.end()) return ApiError{400, "queue", fmt::format("'{}' is not a queue", *spec.queue)};
    queue = &*it;
  }
  spec.queue = queue->name;
  const std::string& class_name = spec.priority_class.value_or(config_.default_priority_class);
  auto pc = std::find_if(config_.priority_classes.begin(), config_.priority_classes.end(),
                         [&](const io::PriorityClassSpec& p) { return p.name == class_name; });
  if (pc == config_.priority_classes.end()) {
    return ApiError{400, "priority_class", fmt::format("'{}' is not a priority class", class_name)};
  }
  spec.priority_class = pc->name;
  job.priority = pc->value;
  if (spec.workers > config_.limits.max_workers) {
    return ApiError{400, "workers", fmt::format("at most {} workers", config_.limits.max_workers)};
  }
  const Catalog& catalog = scenario_.fleet.catalog();
  if (spec.gpu_type) {
    std::optional<AcceleratorTypeId> t = catalog.FindAccelerator(*spec.gpu_type);
    if (!t) return ApiError{400, "resources.gpu_type", fmt::format("'{}' is not an accelerator type", *spec.gpu_type)};
    if (!queue->gpu_types.empty() &&
        std::find(queue->gpu_types.begin(), queue->gpu_types.end(), *spec.gpu_type) == queue->gpu_types.end()) {
      return ApiError{400, "resources.gpu_type",
                      fmt::format("queue '{}' does not run on {}", queue->name, *spec.gpu_type)};
    }
    job.worker.types.Add(*t);
  } else {
    for (const std::string& name : queue->gpu_types) job.worker.types.Add(*catalog.FindAccelerator(name));
  }
  if (spec.gpus > 0) {
    uint32_t largest = 0;
    for (uint32_t t = 0; t < largest_node_.size(); ++t) {
      if (job.worker.types.Allows(AcceleratorTypeId(t))) largest = std::max(largest, largest_node_[t]);
    }
    if (spec.gpus > largest) {
      return ApiError{400, "resources.gpus",
                      fmt::format("at most {} per worker: no node of the allowed types has more", largest)};
    }
  }
  if (!spec.time_limit) spec.time_limit = queue->default_time;
  if (queue->max_time && *spec.time_limit > *queue->max_time) {
    return ApiError{400, "time_limit",
                    fmt::format("queue '{}' takes at most {} s", queue->name, *queue->max_time / 1000)};
  }
  if (spec.name.empty()) spec.name = "sbatch";
  // Only what replays is journaled: the spec must read back as it is written.
  if (std::optional<io::SpecProblem> problem = io::CheckSpec(spec))
    return ApiError{400, problem->field, problem->message};
  for (size_t i = 0; i < spec.after_ok.size(); ++i) {
    auto it = jobs_.find(spec.after_ok[i]);
    if (it == jobs_.end() || !Visible(who, it->second)) {
      return ApiError{400, fmt::format("after_ok[{}]", i), fmt::format("job {} does not exist", spec.after_ok[i])};
    }
  }
  job.workers = spec.workers;
  job.worker.cpu = spec.cpu;
  job.worker.memory = spec.memory;
  job.worker.gpus = spec.gpus;
  job.worker.milli_per_gpu = spec.gpus > 0 ? kMilliPerGpu : 0;
  job.topology = spec.topology;
  job.time_limit = spec.time_limit;
  job.runtime_estimate = spec.runtime_estimate;
  job.checkpoint_interval = spec.checkpoint_interval;
  job.after_ok = spec.after_ok;
  job.max_restarts = spec.max_restarts;
  job.restart_backoff = spec.restart_backoff;
  job.spare_nodes = spec.spare_nodes;
  return job;
}

Outcome<SubmitResult> ControlPlane::Submit(const Principal& who, io::SubmitSpec spec,
                                           const std::string& idempotency_key) {
  std::unique_lock lock(mu_);
  if (!Accepting()) return ApiError{503, "", "the server is not accepting changes"};
  Outcome<JobSpec> job = Resolve(who, spec);
  if (!job.ok()) return job.error;
  std::optional<Digest> request;
  if (!idempotency_key.empty()) {
    request = Sha256(io::EncodeJobSpec(spec));
    auto it = idempotency_.find({who.name, idempotency_key});
    if (it != idempotency_.end()) {
      if (it->second.request != *request) {
        return ApiError{422, "Idempotency-Key", "was used for a different request"};
      }
      const IdempotencyEntry entry = it->second;
      if (!WaitDurable(lock, entry.ticket)) return ApiError{503, "", "the journal failed: the job was not accepted"};
      return SubmitResult{entry.job, false};
    }
  }
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kSubmit;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->key = idempotency_key;
  job.value->id = next_id_++;
  job.value->submit_time = record->at;
  const JobId id = job.value->id;
  record->event = JobSubmitted{std::move(*job.value)};
  record->spec = std::move(spec);
  const uint64_t ticket = Enqueue(record);
  if (request) idempotency_[{who.name, idempotency_key}] = {id, *request, ticket};
  if (!WaitDurable(lock, ticket)) return ApiError{503, "", "the journal failed: the job was not accepted"};
  counters_.submits++;
  return SubmitResult{id, true};
}

Outcome<JobId> ControlPlane::Cancel(const Principal& who, JobId id) {
  std::unique_lock lock(mu_);
  if (!Accepting()) return ApiError{503, "", "the server is not accepting changes"};
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !Visible(who, it->second))
    return ApiError{404, "id", fmt::format("job {} does not exist", id)};
  const JobState state = it->second.state;
  if (state != JobState::kPending && state != JobState::kRunning) {
    return ApiError{409, "state", fmt::format("job {} is {} already", id, StateName(state))};
  }
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kCancel;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = JobCancelled{id};
  if (!WaitDurable(lock, Enqueue(record))) return ApiError{503, "", "the journal failed: the cancel was not accepted"};
  return id;
}

Outcome<NodeId> ControlPlane::SetNodeHealth(const Principal& who, std::string_view name, NodeHealth to,
                                            std::string reason) {
  if (!who.operator_role()) return ApiError{403, "", "only operators drain and resume nodes"};
  if (to == NodeHealth::kDrained && reason.empty()) return ApiError{400, "reason", "is required to drain a node"};
  std::unique_lock lock(mu_);
  if (!Accepting()) return ApiError{503, "", "the server is not accepting changes"};
  const std::optional<NodeId> node = FindNode(name);
  if (!node) return ApiError{404, "name", fmt::format("node {} does not exist", name)};
  const NodeHealth from = nodes_[node->value()].health;
  if (std::optional<std::string> why = HealthChangeRefusal(name, from, to)) return ApiError{409, "state", *why};
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kHealth;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = NodeHealthChange{*node, to, Actor::kOperator, std::move(reason), std::nullopt};
  if (!WaitDurable(lock, Enqueue(record))) return ApiError{503, "", "the journal failed: the change was not accepted"};
  return *node;
}

Outcome<TenantId> ControlPlane::ChangeQuota(const Principal& who, std::string_view name, const QuotaChange& change) {
  if (!who.operator_role()) return ApiError{403, "", "only operators change quotas"};
  std::unique_lock lock(mu_);
  if (!Accepting()) return ApiError{503, "", "the server is not accepting changes"};
  const std::optional<TenantId> tenant = FindTenant(name);
  if (!tenant) return ApiError{404, "name", fmt::format("tenant {} does not exist", name)};
  const TenantSpec& now = tenants_[tenant->value()];
  TenantUpdate update{*tenant, change.reserved.value_or(now.reserved), change.borrow_limit.value_or(now.borrow_limit),
                      change.weight.value_or(now.weight)};
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kTenant;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = std::move(update);
  if (!WaitDurable(lock, Enqueue(record))) return ApiError{503, "", "the journal failed: the change was not accepted"};
  return *tenant;
}

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

Outcome<std::vector<Assignment>> ControlPlane::AgentHeartbeat(const Principal& who, std::string_view name,
                                                              AgentReport report) {
  if (!who.agent && !who.operator_role()) return ApiError{403, "", "only agents report for nodes"};
  std::unique_lock lock(mu_);
  if (!Accepting()) return ApiError{503, "", "the server is not accepting changes"};
  const std::optional<NodeId> node = FindNode(name);
  if (!node) return ApiError{404, "name", fmt::format("node {} does not exist", name)};
  const NodeType& type = scenario_.fleet.node_type(*node);
  if (report.gpu_count && *report.gpu_count < type.accelerators) {
    return ApiError{409, "gpus.count",
                    fmt::format("node {} has {} accelerators in the fleet ({}); its agent found {} ({})", name,
                                type.accelerators, type.name, *report.gpu_count, report.gpu_source)};
  }
  const TimeMs now = std::max(clock_(), last_step_);
  bool& marked_down = agent_marked_down_[node->value()];
  nodes_[node->value()].agent =
      AgentView{report.address, now, report.gpu_source, report.driver_version, std::move(report.gpus)};
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
    return ApiError{503, "", "the journal failed: the report was not accepted"};
  }
  std::vector<Assignment> out;
  // The node's jobs (a job with several workers here is listed once), not every running job.
  std::vector<JobId> here = nodes_[node->value()].jobs;
  std::sort(here.begin(), here.end());
  here.erase(std::unique(here.begin(), here.end()), here.end());
  for (JobId id : here) {
    if (!running_jobs_.contains(id)) continue;
    const JobInfo& job = jobs_.at(id);
    for (uint32_t rank = 0; rank < job.nodes.size(); ++rank) {
      if (job.nodes[rank] != *node) continue;
      const std::optional<AgentView>& master = nodes_[job.nodes[0].value()].agent;
      out.push_back({id, rank, static_cast<uint32_t>(job.nodes.size()),
                     rank < job.devices.size() ? job.devices[rank] : std::vector<uint32_t>{},
                     !master || master->address.empty() ? "127.0.0.1" : master->address,
                     static_cast<uint16_t>(20'000 + id % 40'000), job.spec, job.run, job.power_limit_permille});
    }
  }
  return out;
}

// ---- Reads ----

Outcome<bool> ControlPlane::VisitJob(const Principal& who, JobId id,
                                     const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !Visible(who, it->second))
    return ApiError{404, "id", fmt::format("job {} does not exist", id)};
  visit(it->second);
  return true;
}

bool ControlPlane::VisitJobs(const Principal& who, const JobFilter& filter,
                             const std::function<void(const JobInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  for (auto it = jobs_.upper_bound(filter.after); it != jobs_.end(); ++it) {
    const JobInfo& j = it->second;
    if (!Visible(who, j) || (filter.tenant && j.tenant != *filter.tenant) ||
        (filter.state && j.state != *filter.state) || (filter.queue && j.spec.queue != *filter.queue)) {
      continue;
    }
    if (n == filter.limit) return true;
    visit(j);
    ++n;
  }
  return false;
}

void ControlPlane::VisitNodes(const std::function<void(NodeId, const NodeInfo&)>& visit) const {
  std::lock_guard lock(mu_);
  for (uint32_t n = 0; n < nodes_.size(); ++n) visit(NodeId(n), nodes_[n]);
}

void ControlPlane::VisitTenants(
    const std::function<void(TenantId, const TenantSpec&, const std::vector<uint64_t>&)>& visit) const {
  std::lock_guard lock(mu_);
  for (uint32_t t = 0; t < tenants_.size(); ++t) visit(TenantId(t), tenants_[t], tenant_use_[t]);
}

void ControlPlane::VisitAudit(uint64_t after, uint32_t limit,
                              const std::function<void(const AuditEntry&)>& visit) const {
  std::lock_guard lock(mu_);
  auto it = std::upper_bound(audit_.begin(), audit_.end(), after,
                             [](uint64_t seq, const AuditEntry& e) { return seq < e.seq; });
  for (uint32_t n = 0; it != audit_.end() && n < limit; ++it, ++n) visit(*it);
}

ControlPlane::FleetStatus ControlPlane::Snapshot() const {
  std::lock_guard lock(mu_);
  FleetStatus s;
  const Fleet& fleet = scenario_.fleet;
  s.accelerators = fleet.accelerator_count();
  s.nodes = nodes_.size();
  for (uint32_t n = 0; n < nodes_.size(); ++n) {
    const NodeInfo& info = nodes_[n];
    s.accelerators_used += info.gpus_used;
    if (info.health != NodeHealth::kHealthy) s.accelerators_out += fleet.node_type(NodeId(n)).accelerators;
    s.nodes_by_health[std::string(NodeHealthName(info.health))]++;
  }
  for (const auto& [state, count] : state_count_) s.jobs_by_state[StateName(state)] = count;
  s.pending = state_count_.contains(JobState::kPending) ? state_count_.at(JobState::kPending) : 0;
  s.running = state_count_.contains(JobState::kRunning) ? state_count_.at(JobState::kRunning) : 0;
  s.budgets = budgets_;
  s.journal_seq = applied_seq_;
  s.last_step = last_step_;
  for (const auto& [n, marked_down] : agent_marked_down_) {
    if (marked_down || !nodes_[n].agent) continue;
    s.agents++;
    s.gpus_measured += nodes_[n].agent->gpus.size();
    s.measured_gpu_power_w += nodes_[n].agent->power_w();
  }
  return s;
}

Counters ControlPlane::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace joule::control
