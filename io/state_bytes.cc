#include "io/state_bytes.h"

#include <fmt/format.h>

namespace joule::io {
namespace {

void WriteStrings(ByteWriter& out, const std::vector<std::string>& v) {
  out.U64(v.size());
  for (const std::string& s : v) out.Str(s);
}

std::vector<std::string> ReadStrings(ByteReader& in) {
  std::vector<std::string> v(in.Count());
  for (std::string& s : v) s = in.Str();
  return v;
}

void WritePlaces(ByteWriter& out, const std::vector<WorkerPlacement>& places) {
  out.U64(places.size());
  for (const WorkerPlacement& p : places) {
    out.U64(p.node.value());
    out.Uints(p.devices);
  }
}

std::vector<WorkerPlacement> ReadPlaces(ByteReader& in) {
  std::vector<WorkerPlacement> places(in.Count());
  for (WorkerPlacement& p : places) {
    p.node = NodeId(in.Uint<uint32_t>());
    p.devices = in.Uints<uint32_t>();
  }
  return places;
}

void WriteJobSpec(ByteWriter& out, const JobSpec& s) {
  out.U64(s.id);
  out.U64(s.tenant.value());
  out.U64(s.workers);
  out.I64(s.worker.cpu);
  out.I64(s.worker.memory);
  out.U64(s.worker.gpus);
  out.I64(s.worker.milli_per_gpu);
  out.U64(s.worker.types.mask);
  out.U64(s.worker.halls);
  out.U64(s.worker.node_types);
  out.Enum(s.topology);
  out.I64(s.priority);
  out.I64(s.submit_time);
  out.OptI64(s.time_limit);
  out.OptI64(s.runtime_estimate);
  out.OptI64(s.checkpoint_interval);
  out.Uints(s.after_ok);
  out.Enum(s.work);
  out.Bool(s.flexible);
  out.OptI64(s.deadline);
  out.OptU64(s.max_restarts);
  out.I64(s.restart_backoff);
  out.U64(s.spare_nodes);
}

JobSpec ReadJobSpec(ByteReader& in) {
  JobSpec s;
  s.id = in.U64();
  s.tenant = TenantId(in.Uint<uint32_t>());
  s.workers = in.Uint<uint32_t>();
  s.worker.cpu = in.I64();
  s.worker.memory = in.I64();
  s.worker.gpus = in.Uint<uint32_t>();
  s.worker.milli_per_gpu = in.I64();
  s.worker.types = TypeSet{in.U64()};
  s.worker.halls = in.U64();
  s.worker.node_types = in.U64();
  s.topology = in.Enum(TopologyRule::kRequireNvlinkDomain);
  s.priority = static_cast<int32_t>(in.I64());
  s.submit_time = in.I64();
  s.time_limit = in.OptI64();
  s.runtime_estimate = in.OptI64();
  s.checkpoint_interval = in.OptI64();
  s.after_ok = in.Uints<JobId>();
  s.work = in.Enum(WorkClass::kOther);
  s.flexible = in.Bool();
  s.deadline = in.OptI64();
  s.max_restarts = in.OptUint<uint32_t>();
  s.restart_backoff = in.I64();
  s.spare_nodes = in.Uint<uint32_t>();
  return s;
}

void WriteEngineJob(ByteWriter& out, const EngineState::Job& job) {
  WriteJobSpec(out, job.spec);
  out.Enum(job.state);
  out.Enum(job.reason);
  out.Enum(job.reported);
  WritePlaces(out, job.workers);
  WritePlaces(out, job.spares);
  out.I64(job.start);
  out.OptI64(job.preempt_at);
  out.U64(job.used_types.mask);
  out.U64(job.used_node_types);
  out.Uints(job.waiting_for);
  out.U64(job.preemptions);
  out.OptI64(job.window);
  out.U64(job.restarts);
  out.I64(job.eligible_at);
  out.U64(job.power_limit);
}

EngineState::Job ReadEngineJob(ByteReader& in) {
  EngineState::Job job;
  job.spec = ReadJobSpec(in);
  job.state = in.Enum(JobState::kRunning);
  job.reason = in.Enum(PendingReason::kBeginTime);
  job.reported = in.Enum(PendingReason::kBeginTime);
  job.workers = ReadPlaces(in);
  job.spares = ReadPlaces(in);
  job.start = in.I64();
  job.preempt_at = in.OptI64();
  job.used_types = TypeSet{in.U64()};
  job.used_node_types = in.U64();
  job.waiting_for = in.Uints<JobId>();
  job.preemptions = in.Uint<uint32_t>();
  job.window = in.OptI64();
  job.restarts = in.Uint<uint32_t>();
  job.eligible_at = in.I64();
  job.power_limit = in.Uint<uint32_t>();
  return job;
}

}  // namespace

void WriteSubmitSpec(ByteWriter& out, const SubmitSpec& s) {
  out.Str(s.name);
  out.OptStr(s.tenant);
  out.OptStr(s.queue);
  out.OptStr(s.priority_class);
  out.U64(s.workers);
  out.U64(s.gpus);
  out.OptStr(s.gpu_type);
  out.I64(s.cpu);
  out.I64(s.memory);
  out.Enum(s.topology);
  out.OptI64(s.time_limit);
  out.OptI64(s.runtime_estimate);
  out.OptI64(s.checkpoint_interval);
  out.Uints(s.after_ok);
  out.OptU64(s.max_restarts);
  out.I64(s.restart_backoff);
  out.U64(s.spare_nodes);
  WriteStrings(out, s.command);
  WriteStrings(out, s.args);
  out.U64(s.env.size());
  for (const auto& [name, value] : s.env) {
    out.Str(name);
    out.Str(value);
  }
  out.U64(s.tasks_per_worker);
  out.Str(s.script);
}

SubmitSpec ReadSubmitSpec(ByteReader& in) {
  SubmitSpec s;
  s.name = in.Str();
  s.tenant = in.OptStr();
  s.queue = in.OptStr();
  s.priority_class = in.OptStr();
  s.workers = in.Uint<uint32_t>();
  s.gpus = in.Uint<uint32_t>();
  s.gpu_type = in.OptStr();
  s.cpu = in.I64();
  s.memory = in.I64();
  s.topology = in.Enum(TopologyRule::kRequireNvlinkDomain);
  s.time_limit = in.OptI64();
  s.runtime_estimate = in.OptI64();
  s.checkpoint_interval = in.OptI64();
  s.after_ok = in.Uints<JobId>();
  s.max_restarts = in.OptUint<uint32_t>();
  s.restart_backoff = in.I64();
  s.spare_nodes = in.Uint<uint32_t>();
  s.command = ReadStrings(in);
  s.args = ReadStrings(in);
  for (size_t i = 0, n = in.Count(); i < n && in.ok(); ++i) {
    std::string name(in.Str());
    s.env[std::move(name)] = in.Str();
  }
  s.tasks_per_worker = in.Uint<uint32_t>();
  s.script = in.Str();
  return s;
}

std::string EncodeEngineJobs(const std::vector<EngineState::Job>& jobs) {
  std::string out;
  ByteWriter w(out);
  w.U64(jobs.size());
  for (const EngineState::Job& job : jobs) WriteEngineJob(w, job);
  return out;
}

Result<std::vector<EngineState::Job>> DecodeEngineJobs(std::string_view bytes) {
  ByteReader in(bytes);
  std::vector<EngineState::Job> jobs(in.Count());
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i] = ReadEngineJob(in);
    if (!in.ok()) return Status::Error(fmt::format("the engine's job {} of {} is malformed", i + 1, jobs.size()));
  }
  if (!in.done()) return Status::Error("bytes after the engine's last job");
  return jobs;
}

}  // namespace joule::io
