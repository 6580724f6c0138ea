// Slurm batch scripts: the `#SBATCH` directives a Slurm user already writes, read into a request
// the control plane resolves (account → tenant, partition → queue, qos → priority class). Every
// directive is honoured or refused with its line and the reason; none is ignored silently. As in
// Slurm, directives are read up to the first command line of the script. Thread-safe (no state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "base/units.h"
#include "sched/job.h"

namespace joule::io {

struct BatchJob {
  std::string name;  // --job-name / -J
  std::optional<std::string> account, partition, qos;
  uint32_t nodes = 1;                // --nodes / -N: the gang's workers, one per node
  uint32_t gpus_per_node = 0;        // --gpus-per-node, or --gpus / -G divided over the nodes
  uint32_t tasks_per_node = 1;       // --ntasks-per-node: processes the agent starts per worker
  std::optional<TimeMs> time_limit;  // --time / -t
  std::vector<JobId> after_ok;       // --dependency=afterok:ID[:ID...]
  std::string script;                // the whole script, run by each task
};

// `path` names the script in errors: "path:line: --gpus: ...".
Result<BatchJob> ParseBatchScript(std::string_view text, const std::string& path);

// Slurm's time formats: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
// "days-hours:minutes", "days-hours:minutes:seconds". Nullopt when malformed; "UNLIMITED" and
// "INFINITE" are not accepted (a job on a shared campus has a limit).
std::optional<TimeMs> ParseSlurmTime(std::string_view text);

}  // namespace joule::io
