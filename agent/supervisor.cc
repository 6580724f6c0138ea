#include "agent/supervisor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace joule::agent {
namespace {

using nlohmann::json;

// Everything the forked child needs, built before fork: between fork and exec a process of a
// multi-threaded program may only make async-signal-safe calls (no allocation, no locks).
struct Prepared {
  std::string joule;
  std::vector<std::string> words, env;
  std::vector<char*> argv, envp;
};

Prepared Prepare(const std::string& joule, const std::map<std::string, std::string>& base_env, const WorkerLaunch& l,
                 const std::filesystem::path& dir, const std::filesystem::path& exit_file) {
  Prepared p;
  p.joule = joule;
  const uint32_t tasks = std::max<uint32_t>(1, l.tasks);
  p.words = {"joule",
             "agent-shim",
             exit_file.string(),
             dir.string(),
             std::to_string(l.key.rank * tasks),
             std::to_string(tasks),
             "--"};
  if (!l.script.empty()) {
    p.words.insert(p.words.end(), {"/bin/bash", "script.sh"});
  } else if (!l.argv.empty()) {
    p.words.insert(p.words.end(), l.argv.begin(), l.argv.end());
  } else {
    p.words.push_back("/bin/true");
  }
  // Never the agent's own environment (its credential, its operator's secrets): the documented
  // base (docs/agent.md), then the job's, then what the agent sets.
  std::map<std::string, std::string> env = base_env;
  for (const auto& [k, v] : l.env) env[k] = v;
  std::string devices;
  for (uint32_t d : l.devices) devices += fmt::format("{}{}", devices.empty() ? "" : ",", d);
  env["CUDA_VISIBLE_DEVICES"] = devices;
  env["JOULE_JOB_ID"] = std::to_string(l.key.job);
  env["NODE_RANK"] = std::to_string(l.key.rank);  // the worker's rank; RANK and LOCAL_RANK: the shim's
  env["WORLD_SIZE"] = std::to_string(l.world_size * tasks);
  env["LOCAL_WORLD_SIZE"] = std::to_string(tasks);
  env["MASTER_ADDR"] = l.master_addr;
  env["MASTER_PORT"] = std::to_string(l.master_port);
  for (const auto& [k, v] : env) p.env.push_back(fmt::format("{}={}", k, v));
  for (std::string& w : p.words) p.argv.push_back(w.data());
  p.argv.push_back(nullptr);
  for (std::string& e : p.env) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  return p;
}

void WriteAll(int fd, const char* s, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

// The worker itself, in the shim's child: its signals back to the defaults, then exec.
[[noreturn]] void ExecWorker(char** argv, const char* dir, const char* out_path, const char* err_path) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  const int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int err = open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(126);
  close(out);
  close(err);
  if (chdir(dir) != 0) {
    fmt::print(stderr, "joule agent: cannot enter {}: {}\n", dir, std::strerror(errno));
    _exit(126);
  }
  execvp(argv[0], argv);
  fmt::print(stderr, "joule agent: cannot run {}: {}\n", argv[0], std::strerror(errno));
  _exit(127);
}

bool ParseCount(const char* text, uint32_t& out) {
  const std::string_view s(text);
  return std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc() && !s.empty();
}

// This boot of the machine (Linux): process group ids saved before a reboot mean nothing after it.
std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  in >> id;
  return id;
}

// kill(-1) would signal every process: group ids of 0 and 1 are never signalled.
int SignalGroup(pid_t pgid, int sig) { return pgid > 1 ? kill(-pgid, sig) : -1; }

// What /proc/PID/stat says of a live process (none for a zombie or no process): its group, its
// session and its start time (field 22, clock ticks since boot).
struct ProcStat {
  pid_t pgrp = 0, session = 0;
  uint64_t start = 0;
};
std::optional<ProcStat> ReadStat(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text;
  if (pid <= 1 || !std::getline(in, text)) return std::nullopt;
  const size_t close = text.rfind(')');  // the command's name, in parentheses, may hold anything
  if (close == std::string::npos || close + 2 >= text.size()) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string state, skip;
  ProcStat s;
  fields >> state >> skip >> s.pgrp >> s.session;     // fields 3 to 6
  for (int i = 7; i < 22 && (fields >> skip); ++i) {  // fields 7 to 21
  }
  if (!(fields >> s.start) || state == "Z" || state == "X") return std::nullopt;
  return s;
}

// Writes `text` to `path` through a temporary file and a rename: a crash leaves the old or the new.
Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) return Status::Error(fmt::format("{}: cannot write", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return Status::Error(fmt::format("{}: {}", path.string(), ec.message()));
  return Status::Ok();
}

}  // namespace

std::map<std::string, std::string> WorkerBaseEnv(const std::vector<std::string>& pass) {
  std::map<std::string, std::string> env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"LANG", "C.UTF-8"}};
  for (const char* name : {"HOME", "USER", "LOGNAME"}) {
    if (const char* value = std::getenv(name)) env[name] = value;
  }
  for (const std::string& name : pass) {
    if (const char* value = std::getenv(name.c_str())) env[name] = value;
  }
  return env;
}

Result<std::unique_ptr<Supervisor>> Supervisor::Open(std::filesystem::path workdir, std::string joule,
                                                     std::map<std::string, std::string> base_env) {
  std::error_code ec;
  std::filesystem::create_directories(workdir, ec);
  if (ec) return Status::Error(fmt::format("{}: {}", workdir.string(), ec.message()));
  workdir = std::filesystem::absolute(workdir, ec);
  if (joule.empty()) joule = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec) return Status::Error(fmt::format("cannot find the joule binary: {}", ec.message()));
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(workdir), std::move(joule)));
  s->base_env_ = std::move(base_env);
  s->boot_id_ = BootId();
  if (Status loaded = s->Load(); !loaded.ok()) return loaded;
  return s;
}

std::filesystem::path Supervisor::JobDir(uint64_t job) const { return workdir_ / fmt::format("job-{}", job); }

std::filesystem::path Supervisor::ExitFile(const WorkerKey& k) const {
  return JobDir(k.job) / fmt::format("rank-{}.run-{}.exit", k.rank, k.run);
}

std::optional<int> Supervisor::ReadExitFile(const WorkerKey& key) const {
  std::ifstream in(ExitFile(key));
  int code = 0;
  if (in >> code) return code;
  return std::nullopt;
}

Status Supervisor::Start(const WorkerLaunch& l) {
  const std::filesystem::path dir = JobDir(l.key.job);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::Error(fmt::format("{}: {}", dir.string(), ec.message()));
  std::filesystem::remove(ExitFile(l.key), ec);
  if (!l.script.empty()) {
    std::ofstream script(dir / "script.sh");
    script << l.script;
    if (!script.flush()) return Status::Error(fmt::format("{}: cannot write", (dir / "script.sh").string()));
  }
  const Prepared p = Prepare(joule_, base_env_, l, dir, ExitFile(l.key));
  // A close-on-exec pipe tells when the child has its own session and has become the shim (the
  // pipe closes) or why it could not (an errno arrives): a stop never signals a group not made yet.
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) return Status::Error(fmt::format("pipe: {}", std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) {
    close(exec_pipe[0]);
    close(exec_pipe[1]);
    return Status::Error(fmt::format("fork: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    close(exec_pipe[0]);
    setsid();
    execve(p.joule.c_str(), p.argv.data(), p.envp.data());
    const int error = errno;
    WriteAll(exec_pipe[1], reinterpret_cast<const char*>(&error), sizeof(error));
    _exit(127);
  }
  close(exec_pipe[1]);
  int error = 0;
  ssize_t n = 0;
  while ((n = read(exec_pipe[0], &error, sizeof(error))) < 0 && errno == EINTR) {
  }
  close(exec_pipe[0]);
  if (n > 0) {
    waitpid(pid, nullptr, 0);
    return Status::Error(fmt::format("cannot run {} agent-shim: {}", joule_, std::strerror(error)));
  }
  Worker& w = workers_[l.key] = Worker{l.key, pid, l.devices, std::nullopt, false, -1, 0};
  const std::optional<ProcStat> stat = ReadStat(pid);
  w.start_ticks = stat ? stat->start : 0;
  return Save();
}

void Supervisor::Reap() {
  int status = 0;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
    for (auto& [key, w] : workers_) {
      if (w.pgid != pid || w.exit_code) continue;
      const std::optional<int> recorded = ReadExitFile(key);
      w.exit_code = recorded ? *recorded : (WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      // What the worker started and left behind: the group is still this child's (a pid that
      // leads a group with members is never reused).
      SignalGroup(w.pgid, SIGKILL);
    }
  }
  for (auto& [key, w] : workers_) {
    if (w.exit_code || !w.adopted) continue;
    if (std::optional<int> recorded = ReadExitFile(key)) {
      w.exit_code = *recorded;
      Signal(w, SIGKILL);
    } else if (!Ours(w)) {  // its shim is gone (or the list names a process that is not it)
      w.exit_code = kExitLost;
    }
  }
}

void Supervisor::Stop(const WorkerKey& key, int64_t now_ms, int64_t grace_ms) {
  auto it = workers_.find(key);
  if (it == workers_.end() || it->second.exit_code) return;
  Worker& w = it->second;
  if (w.kill_at_ms < 0) {
    Signal(w, SIGTERM);
    w.kill_at_ms = now_ms + grace_ms;
  } else if (now_ms >= w.kill_at_ms) {
    Signal(w, SIGKILL);
  }
}

bool Supervisor::Ours(const Worker& w) const {
  if (w.pgid <= 1) return false;
  if (!w.adopted) return true;
  const std::optional<ProcStat> stat = ReadStat(w.pgid);
  return w.start_ticks != 0 && stat && stat->pgrp == w.pgid && stat->session == w.pgid && stat->start == w.start_ticks;
}

void Supervisor::Signal(const Worker& w, int sig) const {
  if (Ours(w)) SignalGroup(w.pgid, sig);
}

Result<bool> Supervisor::Bind(const std::string& cluster) {
  const std::filesystem::path path = workdir_ / "cluster";
  std::string recorded;
  {
    std::ifstream in(path);
    std::getline(in, recorded);
  }
  if (recorded == cluster) return false;
  std::error_code ec;
  bool state = !workers_.empty();
  for (const auto& entry : std::filesystem::directory_iterator(workdir_, ec)) {
    const std::string name = entry.path().filename().string();
    state = state || name == "workers.json" || name.starts_with("job-");
  }
  if (state) {
    // Another incarnation's (or an unbound folder's): kept for a human to read, never acted on.
    const std::filesystem::path aside =
        workdir_ / "stale" / fmt::format("{}-{}", recorded.empty() ? "unbound" : recorded, std::time(nullptr));
    std::filesystem::create_directories(aside, ec);
    if (ec) return Status::Error(fmt::format("{}: {}", aside.string(), ec.message()));
    std::vector<std::filesystem::path> moving;
    for (const auto& entry : std::filesystem::directory_iterator(workdir_, ec)) {
      const std::string name = entry.path().filename().string();
      if (name == "workers.json" || name.starts_with("job-")) moving.push_back(entry.path());
    }
    for (const std::filesystem::path& p : moving) {
      std::filesystem::rename(p, aside / p.filename(), ec);
      if (ec) return Status::Error(fmt::format("{}: {}", p.string(), ec.message()));
    }
    workers_.clear();
    last_energy_mj_.clear();
  }
  if (Status s = WriteFileAtomically(path, cluster + "\n"); !s.ok()) return s;
  if (Status s = Save(); !s.ok()) return s;
  return state;
}

void Supervisor::Forget(const WorkerKey& key) { workers_.erase(key); }

void Supervisor::AddEnergy(const std::vector<GpuReading>& readings) {
  last_energy_mj_.resize(readings.size());
  for (size_t d = 0; d < readings.size(); ++d) {
    const uint64_t now = readings[d].energy_mj;
    const std::optional<uint64_t> before = last_energy_mj_[d];
    last_energy_mj_[d] = now;
    if (!before || now < *before) continue;  // first reading, or the counter restarted
    for (auto& [key, w] : workers_) {
      if (w.metered_to_end) continue;
      for (uint32_t dev : w.devices) {
        if (dev == d) w.energy_j += static_cast<double>(now - *before) / 1000;
      }
    }
  }
  for (auto& [key, w] : workers_) w.metered_to_end = w.exit_code.has_value();
}

Status Supervisor::Save() const {
  json list = json::array();
  for (const auto& [key, w] : workers_) {
    json j = {{"job", key.job},
              {"rank", key.rank},
              {"run", key.run},
              {"pgid", w.pgid},
              {"devices", w.devices},
              {"energy_joules", w.energy_j},
              {"start_ticks", w.start_ticks},
              {"kill_at_ms", w.kill_at_ms >= 0 ? 0 : -1}};
    if (w.exit_code) j["exit_code"] = *w.exit_code;
    list.push_back(std::move(j));
  }
  return WriteFileAtomically(workdir_ / "workers.json", json{{"boot_id", boot_id_}, {"workers", list}}.dump() + "\n");
}

Status Supervisor::Load() {
  const std::filesystem::path path = workdir_ / "workers.json";
  std::ifstream in(path);
  if (!in) return Status::Ok();  // a first start
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, false);
  if (!j.is_object() || !j.contains("workers") || !j["workers"].is_array()) {
    return Status::Error(fmt::format("{}: not an agent's worker list; move it away to start afresh", path.string()));
  }
  // Saved during another boot: none of those processes exists any more, and their group ids may
  // now be other processes'. Workers that ended before the reboot left their exit files.
  const bool rebooted = j.value("boot_id", boot_id_) != boot_id_;
  for (const json& w : j["workers"]) {
    try {
      Worker worker;
      worker.key = {w.at("job").get<uint64_t>(), w.at("rank").get<uint32_t>(), w.at("run").get<uint32_t>()};
      worker.pgid = w.at("pgid").get<pid_t>();
      worker.devices = w.at("devices").get<std::vector<uint32_t>>();
      worker.energy_j = w.at("energy_joules").get<double>();
      worker.start_ticks = w.value("start_ticks", uint64_t{0});
      if (w.contains("exit_code")) worker.exit_code = w["exit_code"].get<int>();
      worker.adopted = true;
      // A stop in progress goes on: SIGKILL at once if the worker is still there when next asked.
      worker.kill_at_ms = w.value("kill_at_ms", -1) >= 0 ? 0 : -1;
      if (rebooted) {
        worker.pgid = 0;  // never signalled
        if (!worker.exit_code) worker.exit_code = ReadExitFile(worker.key).value_or(kExitLost);
      }
      workers_[worker.key] = std::move(worker);
    } catch (const json::exception& e) {
      return Status::Error(fmt::format("{}: a worker entry: {}", path.string(), e.what()));
    }
  }
  return Status::Ok();
}

int ShimMain(int argc, char** argv) {
  uint32_t first_rank = 0, tasks = 0;
  if (argc < 6 || std::string_view(argv[4]) != "--" || !ParseCount(argv[2], first_rank) ||
      !ParseCount(argv[3], tasks) || tasks == 0) {
    fmt::print(stderr, "usage: joule agent-shim EXIT_FILE DIR FIRST_RANK TASKS -- COMMAND... (run by joule agent)\n");
    return 2;
  }
  const std::string exit_file = argv[0], dir = argv[1], tmp = fmt::format("{}.tmp", exit_file);
  // Blocked, not ignored: a task inherits the mask, so a SIGTERM that reaches it before it
  // unblocks (ExecWorker) waits for it instead of being lost as an ignored one would be.
  sigset_t worker_signals;
  sigemptyset(&worker_signals);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&worker_signals, sig);
  sigprocmask(SIG_BLOCK, &worker_signals, nullptr);
  std::vector<pid_t> running;
  for (uint32_t t = 0; t < tasks; ++t) {
    const std::string rank = std::to_string(first_rank + t);
    const std::string out = fmt::format("{}/rank-{}.out", dir, rank), err = fmt::format("{}/rank-{}.err", dir, rank);
    const pid_t task = fork();
    if (task < 0) break;
    if (task == 0) {  // the shim has one thread: the environment may be changed here
      setenv("RANK", rank.c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(t).c_str(), 1);
      ExecWorker(argv + 5, dir.c_str(), out.c_str(), err.c_str());
    }
    running.push_back(task);
  }
  // The worker's code: its first task to fail (the others are then stopped), else 0.
  int code = running.size() == tasks ? 0 : 126;
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      code = kExitLost;
      break;
    }
    if (std::erase(running, pid) == 0) continue;
    const int task_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (task_code != 0 && code == 0) {
      code = task_code;
      for (pid_t other : running) kill(other, SIGTERM);
    }
  }
  {
    std::ofstream file(tmp, std::ios::trunc);
    file << code << '\n';
  }
  std::error_code ec;
  std::filesystem::rename(tmp, exit_file, ec);
  if (ec) fmt::print(stderr, "joule agent-shim: {}: {}\n", exit_file, ec.message());
  return code;
}

}  // namespace joule::agent
