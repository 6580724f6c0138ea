// The control plane's changes: requests resolved, checked and journaled before they are answered.
#include "control/control_plane.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/journal_json.h"

namespace joule::control {

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
    std::optional<JobInfo> holder;
    const JobInfo* dependency = Lookup(spec.after_ok[i], holder);
    if (dependency == nullptr || !Visible(who, *dependency)) {
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
  if (!Accepting()) return NotAccepting();
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
      if (!WaitDurable(lock, entry.ticket)) return JournalFailed("job");
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
  if (!WaitDurable(lock, ticket)) return JournalFailed("job");
  counters_.submits++;
  return SubmitResult{id, true};
}

Outcome<JobId> ControlPlane::Cancel(const Principal& who, JobId id) {
  std::unique_lock lock(mu_);
  if (!Accepting()) return NotAccepting();
  std::optional<JobInfo> holder;
  const JobInfo* job = Lookup(id, holder);
  if (job == nullptr || !Visible(who, *job)) return ApiError{404, "id", fmt::format("job {} does not exist", id)};
  const JobState state = job->state;
  if (state != JobState::kPending && state != JobState::kRunning) {
    return ApiError{409, "state", fmt::format("job {} is {} already", id, StateName(state))};
  }
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kCancel;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = JobCancelled{id};
  if (!WaitDurable(lock, Enqueue(record))) return JournalFailed("cancel");
  return id;
}

Outcome<NodeId> ControlPlane::SetNodeHealth(const Principal& who, std::string_view name, NodeHealth to,
                                            std::string reason) {
  if (!who.operator_role()) return ApiError{403, "", "only operators drain and resume nodes"};
  if (to == NodeHealth::kDrained && reason.empty()) return ApiError{400, "reason", "is required to drain a node"};
  std::unique_lock lock(mu_);
  if (!Accepting()) return NotAccepting();
  const std::optional<NodeId> node = FindNode(name);
  if (!node) return ApiError{404, "name", fmt::format("node {} does not exist", name)};
  const NodeHealth from = nodes_[node->value()].health;
  if (std::optional<std::string> why = HealthChangeRefusal(name, from, to)) return ApiError{409, "state", *why};
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kHealth;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = NodeHealthChange{*node, to, Actor::kOperator, std::move(reason), std::nullopt};
  if (!WaitDurable(lock, Enqueue(record))) return JournalFailed("change");
  return *node;
}

Outcome<TenantId> ControlPlane::ChangeQuota(const Principal& who, std::string_view name, const QuotaChange& change) {
  if (!who.operator_role()) return ApiError{403, "", "only operators change quotas"};
  std::unique_lock lock(mu_);
  if (!Accepting()) return NotAccepting();
  const std::optional<TenantId> tenant = FindTenant(name);
  if (!tenant) return ApiError{404, "name", fmt::format("tenant {} does not exist", name)};
  const TenantSpec& now = tenants_[tenant->value()];
  // As the scenario's reservations are checked at start: all tenants' together within the fleet.
  if (change.reserved) {
    std::vector<uint64_t> reserved(fleet_accelerators_.size(), 0);
    for (size_t t = 0; t < tenants_.size(); ++t) {
      for (const Reservation& r : t == tenant->value() ? *change.reserved : tenants_[t].reserved) {
        reserved[r.type.value()] += r.accelerators;
      }
    }
    for (const Reservation& r : *change.reserved) {
      const std::string& type = scenario_.fleet.catalog().accelerator(r.type).name;
      if (reserved[r.type.value()] > fleet_accelerators_[r.type.value()]) {
        return ApiError{400, "reserved." + type,
                        fmt::format("reservations of {} would total {} but the fleet has {}", type,
                                    reserved[r.type.value()], fleet_accelerators_[r.type.value()])};
      }
    }
  }
  TenantUpdate update{*tenant, change.reserved.value_or(now.reserved), change.borrow_limit.value_or(now.borrow_limit),
                      change.weight.value_or(now.weight)};
  auto record = std::make_shared<Record>();
  record->type = Record::Type::kTenant;
  record->at = std::max(clock_(), last_step_);
  record->who = who.name;
  record->event = std::move(update);
  if (!WaitDurable(lock, Enqueue(record))) return JournalFailed("change");
  return *tenant;
}

}  // namespace joule::control
