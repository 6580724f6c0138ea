// The job spec users submit to the control plane, YAML or JSON, in the spirit of Kueue and
// JobSet: a name, who runs it (tenant, queue, priority class), a gang of identical workers with
// their resources, topology, time limit, checkpoints, dependencies, failure policy, and what to
// run (command, args, env). Unknown fields are refused; every error names the field and where.
// The server resolves tenant, queue and priority class against its configuration. Thread-safe (no
// state).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "io/sbatch.h"
#include "sched/job.h"

namespace joule::io {

struct SubmitSpec {
  std::string name;
  std::optional<std::string> tenant, queue, priority_class;
  uint32_t workers = 1;
  uint32_t gpus = 0;  // per worker, whole accelerators
  std::optional<std::string> gpu_type;
  Millicores cpu = 1000;  // per worker
  MiB memory = 1024;      // per worker
  TopologyRule topology = TopologyRule::kPreferCompact;
  // Seconds, or Slurm's "HH:MM:SS" / "D-HH:MM:SS" forms (a bare number is seconds, not minutes).
  std::optional<TimeMs> time_limit, runtime_estimate, checkpoint_interval;
  std::vector<JobId> after_ok;
  std::optional<uint32_t> max_restarts;
  TimeMs restart_backoff = 0;
  uint32_t spare_nodes = 0;
  std::vector<std::string> command, args;
  std::map<std::string, std::string> env;
  uint32_t tasks_per_worker = 1;  // processes the agent starts per worker (Slurm's --ntasks-per-node)
  std::string script;             // a batch script each task runs (from `#SBATCH` scripts), if any
};

// Limits a spec must keep (the API's 4xx names the one broken).
inline constexpr size_t kMaxNameLength = 63;  // a Kubernetes DNS label
inline constexpr size_t kMaxArgs = 4096;
inline constexpr size_t kMaxEnv = 1024;

// `source` names the text in errors ("request body", a file name): "source:line:column: path: why".
Result<SubmitSpec> ParseJobSpec(const std::string& text, const std::string& source);
// ParseJobSpec's two paths, for tests: plain JSON (nullopt: not sure, take the other path), and YAML.
std::optional<SubmitSpec> ParsePlainJson(const std::string& text);
Result<SubmitSpec> ParseJobSpecYaml(const std::string& text, const std::string& source);

// What ParseJobSpec would refuse in a spec built another way (from a batch script): the field and
// the rule it breaks, or nullopt. Strings must be UTF-8. A spec that passes encodes to a job spec
// ParseJobSpec reads back (the server journals only such specs, so that it can replay them).
struct SpecProblem {
  std::string field, message;
};
std::optional<SpecProblem> CheckSpec(const SubmitSpec& spec);

// The spec as a JSON job spec that ParseJobSpec reads back to the same value (the server journals
// and shows specs in this form; durations in seconds).
std::string EncodeJobSpec(const SubmitSpec& spec);
nlohmann::json JobSpecJson(const SubmitSpec& spec);  // the same, as a JSON value

// A Slurm batch script's request as a job spec: account → tenant, partition → queue, qos →
// priority class, nodes → workers, GPUs per node → GPUs per worker; each task runs the script.
SubmitSpec FromBatchJob(const BatchJob& job);

}  // namespace joule::io
