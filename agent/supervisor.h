// The agent's workers as processes (docs/agent.md, docs/decisions/0008). Each worker runs under a
// small shim, `joule agent-shim` (ShimMain): a process that leads a new session (so the worker and
// everything it starts form one process group), starts the worker, waits for it and writes its
// exit code to a file before exiting with it. It is a program of its own, not a fork of the agent,
// so that signals and `pkill` aimed at the agent do not reach it. The agent learns exits from its
// own children; an agent that restarts learns them from those files. What the supervisor knows is
// saved in WORKDIR/workers.json after every change, so a new agent process adopts the workers an
// earlier one left running and reports those that ended while no agent watched; a list saved
// before the machine rebooted is only reported (exit files, else lost), never signalled. Stopping
// a worker is SIGTERM to its group, SIGKILL after the grace.
// What the folder holds belongs to one incarnation of the server (Bind: the journal's cluster id,
// kept in WORKDIR/cluster): state from another (a server whose state was reset, another campus)
// is moved aside to WORKDIR/stale/, never adopted, reported or signalled. An adopted worker's
// group is signalled only while its shim provably leads it: the process with the group's id is a
// session leader started at the time the list recorded (/proc/PID/stat), so a list edited to name
// another process group, or a pid reused since, is never signalled. Thread-safety: one thread.
#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/telemetry.h"
#include "base/status.h"

namespace joule::agent {

struct WorkerKey {
  uint64_t job = 0;
  uint32_t rank = 0, run = 0;
  auto operator<=>(const WorkerKey&) const = default;
};

// What one worker runs (an assignment from the server).
struct WorkerLaunch {
  WorkerKey key;
  uint32_t world_size = 1;
  std::vector<uint32_t> devices;
  std::string master_addr;
  uint16_t master_port = 0;
  std::vector<std::string> argv;  // command and args; empty with a script: bash script.sh
  std::map<std::string, std::string> env;
  std::string script;
  uint32_t tasks = 1;  // processes of the worker (tasks_per_worker): ranks rank*tasks ... +tasks-1
};

// A worker whose process the shim could not tell the end of (killed with it, or gone while no
// agent watched): reported with this exit code.
constexpr int kExitLost = 255;

struct Worker {
  WorkerKey key;
  pid_t pgid = 0;  // the shim's pid, leader of the worker's process group
  std::vector<uint32_t> devices;
  std::optional<int> exit_code;
  bool adopted = false;         // started by an earlier agent process
  int64_t kill_at_ms = -1;      // stopping: SIGTERM sent, SIGKILL at this monotonic time
  double energy_j = 0;          // its devices' measured energy while it ran
  bool metered_to_end = false;  // ended, and the reading interval it ended in is counted
  uint64_t start_ticks = 0;     // the shim's start (ticks since boot); 0 unknown: never signalled once adopted
};

// The environment a worker starts from, before its job's `env` and what the agent sets
// (CUDA_VISIBLE_DEVICES, RANK, ...): PATH=/usr/local/bin:/usr/bin:/bin, LANG=C.UTF-8, the agent's
// HOME, USER and LOGNAME, and the agent's variables named in `pass` (--worker-env). Nothing else
// of the agent's environment reaches a worker: not its credential, not its operator's secrets.
std::map<std::string, std::string> WorkerBaseEnv(const std::vector<std::string>& pass = {});

class Supervisor {
 public:
  // Opens (creating) `workdir` and takes over what an earlier agent left in workers.json.
  // `joule` is the binary whose `agent-shim` runs each worker (default: this process's own);
  // workers start from `base_env` (WorkerBaseEnv).
  static Result<std::unique_ptr<Supervisor>> Open(std::filesystem::path workdir, std::string joule = "",
                                                  std::map<std::string, std::string> base_env = WorkerBaseEnv());

  // Starts a worker in WORKDIR/job-ID: output appended to rank-R.out and rank-R.err.
  Status Start(const WorkerLaunch& launch);
  // Learns which workers ended (their exit codes) and removes what their processes left behind.
  void Reap();
  // SIGTERM to the worker's group on the first call, SIGKILL once `now_ms` passes the grace.
  void Stop(const WorkerKey& key, int64_t now_ms, int64_t grace_ms);
  // The server has the worker's end: drop it.
  void Forget(const WorkerKey& key);
  // Adds each device's energy since the previous reading to the worker using it then (running, or
  // ended since the previous reading).
  void AddEnergy(const std::vector<GpuReading>& readings);
  Status Save() const;
  // Binds the folder to the server's incarnation `cluster`: the same as recorded, nothing
  // changes; another, or none recorded while the folder holds workers, and they are moved aside
  // (returns true then) and forgotten without a signal.
  Result<bool> Bind(const std::string& cluster);

  const std::map<WorkerKey, Worker>& workers() const { return workers_; }
  const std::filesystem::path& workdir() const { return workdir_; }

 private:
  Supervisor(std::filesystem::path workdir, std::string joule)
      : workdir_(std::move(workdir)), joule_(std::move(joule)) {}
  std::filesystem::path JobDir(uint64_t job) const;
  std::filesystem::path ExitFile(const WorkerKey& key) const;
  std::optional<int> ReadExitFile(const WorkerKey& key) const;
  Status Load();
  // Whether signalling the worker's group reaches the worker: a child of this process, or an
  // adopted shim still leading its session, started when recorded.
  bool Ours(const Worker& w) const;
  // Stops signalling `pgid` (unless Ours) and sends `sig`.
  void Signal(const Worker& w, int sig) const;

  std::filesystem::path workdir_;
  std::string joule_;
  std::map<std::string, std::string> base_env_;
  std::string boot_id_;  // saved with the workers: a list from another boot is not adopted
  std::map<WorkerKey, Worker> workers_;
  std::vector<std::optional<uint64_t>> last_energy_mj_;  // per device: the previous reading
};

// `joule agent-shim EXIT_FILE DIR FIRST_RANK TASKS -- COMMAND...`: runs TASKS copies of COMMAND in
// DIR, task t with RANK=FIRST_RANK+t and LOCAL_RANK=t and its output appended to rank-RANK.out
// and .err; waits for them (stopping the others with SIGTERM when one fails), writes the worker's
// exit code — the first failed task's (128 + signal when killed), else 0 — to EXIT_FILE and exits
// with it. SIGTERM, SIGINT and SIGHUP are for the tasks: the shim blocks them.
int ShimMain(int argc, char** argv);

}  // namespace joule::agent
