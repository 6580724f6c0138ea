// `joule agent --server URL --node NAME --token T`: the node agent (docs/agent.md). Every
// heartbeat it tells the server it is alive and which of its workers ended (with their exit
// codes); the answer lists the workers the node must run. It starts each new one as a real process
// in a session of its own — command and args (or the batch script), the job's env plus
// JOULE_JOB_ID, RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT and CUDA_VISIBLE_DEVICES,
// in WORKDIR/job-ID with its output in rank-R.out and rank-R.err — and stops those no longer
// assigned (cancel, preemption, time limit, node drain): SIGTERM to the whole process group, then
// SIGKILL after the grace period.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/client.h"
#include "apps/commands.h"

namespace joule::apps {
namespace {

using nlohmann::json;

struct AgentOptions {
  std::optional<std::string> server, token;
  std::string node, workdir, address = "127.0.0.1";
  double heartbeat_s = 1, grace_s = 10;
};

struct Worker {
  pid_t pid = 0;
  std::optional<int> exit_code;
  std::optional<std::chrono::steady_clock::time_point> kill_at;  // SIGTERM sent; SIGKILL then
};

volatile std::sig_atomic_t stop_requested = 0;

// Runs in the forked child: never returns.
[[noreturn]] void Exec(const json& a, const std::filesystem::path& dir) {
  setsid();
  if (chdir(dir.c_str()) != 0) _exit(126);
  const uint32_t rank = a["rank"].get<uint32_t>();
  for (const auto& [fd, name] :
       {std::pair{1, fmt::format("rank-{}.out", rank)}, {2, fmt::format("rank-{}.err", rank)}}) {
    const int out = open(name.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0 || dup2(out, fd) < 0) _exit(126);
    close(out);
  }
  for (const auto& [k, v] : a["env"].items()) setenv(k.c_str(), v.get<std::string>().c_str(), 1);
  std::string devices;
  for (const json& d : a["devices"]) devices += (devices.empty() ? "" : ",") + std::to_string(d.get<uint32_t>());
  setenv("CUDA_VISIBLE_DEVICES", devices.c_str(), 1);
  setenv("JOULE_JOB_ID", std::to_string(a["job"].get<uint64_t>()).c_str(), 1);
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(a["world_size"].get<uint32_t>()).c_str(), 1);
  setenv("LOCAL_RANK", "0", 1);
  setenv("MASTER_ADDR", a["master_addr"].get<std::string>().c_str(), 1);
  setenv("MASTER_PORT", std::to_string(a["master_port"].get<uint32_t>()).c_str(), 1);
  std::vector<std::string> words;
  if (!a["script"].get<std::string>().empty()) {
    words = {"/bin/bash", "script.sh"};
  } else {
    for (const json& w : a["command"]) words.push_back(w.get<std::string>());
    for (const json& w : a["args"]) words.push_back(w.get<std::string>());
  }
  if (words.empty()) words = {"/bin/true"};
  std::vector<char*> argv;
  argv.reserve(words.size() + 1);
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  fmt::print(stderr, "joule agent: cannot run {}: {}\n", words[0], std::strerror(errno));
  _exit(127);
}

std::optional<pid_t> Start(const json& a, const std::filesystem::path& workdir) {
  const std::filesystem::path dir = workdir / fmt::format("job-{}", a["job"].get<uint64_t>());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return std::nullopt;
  if (const std::string script = a["script"].get<std::string>(); !script.empty()) {
    std::ofstream(dir / "script.sh") << script;
  }
  const pid_t pid = fork();
  if (pid < 0) return std::nullopt;
  if (pid == 0) Exec(a, dir);
  return pid;
}

int RunAgent(const AgentOptions& o) {
  Result<ClientConfig> config = ResolveClientConfig(o.server, o.token);
  if (!config.ok()) {
    fmt::print(stderr, "joule agent: {}\n", config.status().message());
    return kExitBadInput;
  }
  const std::filesystem::path workdir =
      o.workdir.empty() ? std::filesystem::path("joule-agent") / o.node : std::filesystem::path(o.workdir);
  std::error_code ec;
  std::filesystem::create_directories(workdir, ec);
  if (ec) {
    fmt::print(stderr, "joule agent: --workdir {}: {}\n", workdir.string(), ec.message());
    return kExitBadInput;
  }
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  ApiClient client(*config);
  using Key = std::tuple<uint64_t, uint32_t, uint32_t>;  // job, rank, run
  std::map<Key, Worker> workers;
  const auto grace =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(o.grace_s));
  fmt::print(stderr, "joule agent: node {} reporting to {}, work in {}\n", o.node, config->server, workdir.string());
  bool was_answered = true;
  while (!stop_requested) {
    // Reap what ended.
    int status = 0;
    for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
      for (auto& [key, w] : workers) {
        if (w.pid == pid) w.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
    }
    json ended = json::array();
    for (const auto& [key, w] : workers) {
      if (w.exit_code) {
        ended.push_back({{"job", std::get<0>(key)},
                         {"rank", std::get<1>(key)},
                         {"run", std::get<2>(key)},
                         {"exit_code", *w.exit_code}});
      }
    }
    const HttpReply r = client.Send("POST", fmt::format("/api/v1/agents/{}/heartbeat", o.node),
                                    json{{"address", o.address}, {"ended", ended}}.dump(), "application/json");
    const json answer = r.status == 200 ? json::parse(r.body, nullptr, false) : json();
    if (!answer.is_object() || !answer.contains("assignments")) {
      // Keep running what runs: the server decides when a silent node's work is lost.
      if (was_answered) fmt::print(stderr, "joule agent: heartbeat: {}\n", DescribeError(r));
      was_answered = false;
      if (r.status >= 400 && r.status < 500 && r.status != 429) return kExitBadInput;
    } else {
      was_answered = true;
      std::map<Key, const json*> assigned;
      for (const json& a : answer["assignments"]) {
        assigned[{a["job"].get<uint64_t>(), a["rank"].get<uint32_t>(), a["run"].get<uint32_t>()}] = &a;
      }
      for (const auto& [key, a] : assigned) {
        if (workers.contains(key)) continue;
        // A new run of a job starts once its earlier run's processes here are gone (ports, GPU memory).
        const uint64_t job = std::get<0>(key);
        const uint32_t run = std::get<2>(key);
        const bool earlier_alive = std::any_of(workers.begin(), workers.end(), [&](const auto& w) {
          return std::get<0>(w.first) == job && std::get<2>(w.first) != run && !w.second.exit_code;
        });
        if (earlier_alive) continue;
        if (std::optional<pid_t> pid = Start(*a, workdir)) {
          workers[key] = {*pid, std::nullopt, std::nullopt};
          fmt::print(stderr, "joule agent: job {} rank {} run {} started, pid {}\n", std::get<0>(key), std::get<1>(key),
                     std::get<2>(key), *pid);
        } else {
          workers[key] = {0, 126, std::nullopt};
        }
      }
      const auto now = std::chrono::steady_clock::now();
      for (auto it = workers.begin(); it != workers.end();) {
        Worker& w = it->second;
        if (assigned.contains(it->first)) {
          ++it;
        } else if (w.exit_code) {
          it = workers.erase(it);  // the server has it: no longer assigned
        } else {
          if (!w.kill_at) {
            kill(-w.pid, SIGTERM);
            w.kill_at = now + grace;
            fmt::print(stderr, "joule agent: job {} rank {} run {} no longer assigned: SIGTERM\n",
                       std::get<0>(it->first), std::get<1>(it->first), std::get<2>(it->first));
          } else if (now >= *w.kill_at) {
            kill(-w.pid, SIGKILL);
          }
          ++it;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.heartbeat_s));
  }
  fmt::print(stderr, "joule agent: stopping; {} worker(s) left running\n", workers.size());
  return kExitOk;
}

}  // namespace

void AddAgentCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<AgentOptions>();
  CLI::App* cmd = app.add_subcommand("agent", "Run a node's workers for a joule server (the node agent)");
  cmd->add_option("--server", o->server, "Server URL (else JOULE_SERVER, the client config)");
  cmd->add_option("--token", o->token, "The agents' bearer token (else JOULE_TOKEN, the client config)");
  cmd->add_option("--node", o->node, "This node's name in the server's fleet")->required();
  cmd->add_option("--workdir", o->workdir, "Where jobs run and write their output (default joule-agent/NODE)");
  cmd->add_option("--address", o->address, "This node's address for MASTER_ADDR (default 127.0.0.1)");
  cmd->add_option("--heartbeat-seconds", o->heartbeat_s, "Between heartbeats (default 1)")
      ->check(CLI::Range(0.05, 60.0));
  cmd->add_option("--grace-seconds", o->grace_s, "SIGTERM to SIGKILL (default 10)")->check(CLI::Range(0.0, 3600.0));
  cmd->callback([&run, o] { run = [o] { return RunAgent(*o); }; });
}

}  // namespace joule::apps
