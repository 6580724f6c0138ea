// `joule agent --server URL --node NAME --token-file F`: the node agent (docs/agent.md). Every
// heartbeat it tells the server it is alive, what its accelerators read (NVML, or simulated), how
// much energy each running worker used, and which workers ended (with their exit codes); the
// answer lists the workers the node must run. It starts each new one as a real process
// (agent/supervisor.h) and stops those no longer assigned (cancel, preemption, time limit, node
// drain): SIGTERM to the whole process group, then SIGKILL after the grace period. With
// --metrics-listen it serves its GPUs' readings in dcgm-exporter's format.

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/dcgm_metrics.h"
#include "agent/supervisor.h"
#include "agent/telemetry.h"
#include "api/http_server.h"
#include "apps/client.h"
#include "apps/commands.h"
#include "io/host_port.h"

namespace joule::apps {
namespace {

using agent::WorkerKey;
using nlohmann::json;

struct AgentOptions {
  std::optional<std::string> server, token, token_file, ca_file;
  std::vector<std::string> worker_env;  // the agent's variables its workers get (--worker-env)
  std::string node, workdir, address = "127.0.0.1";
  double heartbeat_s = 30, grace_s = 10;  // heartbeat: docs/decisions/0012
  std::string telemetry = "auto", nvml_library = "libnvidia-ml.so.1", accelerator_type = "h100-sxm";
  uint32_t accelerators = 0;
  std::string metrics_listen;
  std::string metrics_host;  // metrics_listen, checked and split by RunAgent
  int metrics_port = 0;
  bool apply_power_limits = false;
};

volatile std::sig_atomic_t stop_requested = 0;

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// NVML where it loads (auto, nvml), else the simulated devices the flags declare, else none.
Result<std::unique_ptr<agent::Telemetry>> OpenTelemetry(const AgentOptions& o) {
  if (o.telemetry == "none") return std::unique_ptr<agent::Telemetry>();
  if (o.telemetry != "simulated") {
    Result<std::unique_ptr<agent::Telemetry>> nvml = agent::OpenNvml(o.nvml_library);
    if (nvml.ok() || o.telemetry == "nvml") return nvml;
    fmt::print(stderr, "joule agent: no NVML ({}); {}\n", nvml.status().message(),
               o.accelerators > 0 ? "simulating the declared accelerators" : "no telemetry");
    if (o.accelerators == 0) return std::unique_ptr<agent::Telemetry>();
  }
  if (o.accelerators == 0) return Status::Error("--telemetry simulated: declare the node's --accelerators");
  const Catalog catalog = Catalog::BuiltIn();
  const std::optional<AcceleratorTypeId> type = catalog.FindAccelerator(o.accelerator_type);
  if (!type) return Status::Error(fmt::format("--accelerator-type: unknown type '{}'", o.accelerator_type));
  return agent::OpenSimulated(catalog.accelerator(*type), o.accelerators, o.node, MonotonicMs);
}

json GpuJson(const agent::GpuInfo& g, const agent::GpuReading& r) {
  return {{"index", g.index},
          {"uuid", g.uuid},
          {"model", g.model},
          {"memory_mib", g.memory_mib},
          {"power_watts", r.power_w},
          {"energy_joules", static_cast<double>(r.energy_mj) / 1000},
          {"temperature_c", r.temperature_c},
          {"utilization_percent", r.utilization_pct},
          {"memory_used_mib", r.memory_used_mib},
          {"ecc_corrected", r.ecc_corrected},
          {"ecc_uncorrected", r.ecc_uncorrected},
          {"xid_errors", r.xid_count},
          {"last_xid", r.last_xid},
          {"power_limit_watts", r.power_limit_w}};
}

agent::WorkerLaunch LaunchOf(const json& a) {
  agent::WorkerLaunch l;
  l.key = {a["job"].get<uint64_t>(), a["rank"].get<uint32_t>(), a["run"].get<uint32_t>()};
  l.world_size = a["world_size"].get<uint32_t>();
  l.devices = a["devices"].get<std::vector<uint32_t>>();
  l.master_addr = a["master_addr"].get<std::string>();
  l.master_port = a["master_port"].get<uint16_t>();
  for (const char* part : {"command", "args"}) {
    for (const json& w : a[part]) l.argv.push_back(w.get<std::string>());
  }
  l.env = a["env"].get<std::map<std::string, std::string>>();
  l.script = a["script"].get<std::string>();
  l.tasks = a["tasks_per_worker"].get<uint32_t>();
  return l;
}

class Agent {
 public:
  Agent(const AgentOptions& o, const ClientConfig& config, std::unique_ptr<agent::Supervisor> workers,
        std::unique_ptr<agent::Telemetry> telemetry)
      : o_(o), config_(config), client_(config), workers_(std::move(workers)), telemetry_(std::move(telemetry)) {}

  int Run() {
    std::optional<std::thread> metrics;
    if (!o_.metrics_listen.empty()) {
      metrics_server_.Route("GET", "/metrics", [this](const api::HttpRequest&, api::HttpResponse& res) {
        std::lock_guard lock(metrics_mu_);
        res.set_content(metrics_text_, "text/plain; version=0.0.4");
      });
      if (Result<int> bound = metrics_server_.Bind(o_.metrics_host, o_.metrics_port); !bound.ok()) {
        fmt::print(stderr, "joule agent: --metrics-listen {}: {}\n", o_.metrics_listen, bound.status().message());
        return kExitBadInput;
      }
      metrics.emplace([this] { metrics_server_.Serve(); });
    }
    const int code = Loop();
    if (metrics) {
      metrics_server_.Stop();
      metrics->join();
    }
    return code;
  }

 private:
  // A heartbeat's body and the ended workers it reports.
  struct Report {
    json body;
    std::set<WorkerKey> ended;
  };

  // Heartbeats as long polls: the server answers at once when the node's assignments differ from
  // those this agent runs (`known`), else after the heartbeat interval, so a new worker starts
  // and a cancelled one stops the moment the server decides. Beside it, ReportEnds tells the
  // server of a worker's end the moment it happens, on a connection of its own.
  int Loop() {
    std::thread reporter([this] { ReportEnds(); });
    int code = kExitOk;
    while (!stop_requested) {
      Report report;
      std::vector<agent::GpuReading> readings;
      {
        std::lock_guard lock(mu_);
        workers_->Reap();
        readings = Read();
        report = Heartbeat(readings, /*with_gpus=*/true);
      }
      const uint64_t wait_ms = was_answered_ ? static_cast<uint64_t>(o_.heartbeat_s * 1000) : 0;
      const HttpReply r = client_.Send(
          "POST", fmt::format("/api/v1/agents/{}/heartbeat?known={}&wait_ms={}", o_.node, known_.load(), wait_ms),
          report.body.dump(), "application/json");
      const bool answered = Answered(r, report);
      if (!answered && r.status >= 400 && r.status < 500 && r.status != 429) {
        code = kExitBadInput;
        break;
      }
      PublishMetrics(readings);
      if (!answered) std::this_thread::sleep_for(std::chrono::duration<double>(o_.heartbeat_s));
    }
    stop_requested = 1;
    reporter.join();
    if (code == kExitOk) {
      fmt::print(stderr, "joule agent: stopping; {} worker(s) left running (a new agent adopts them)\n",
                 workers_->workers().size());
    }
    return code;
  }

  // Every 20 ms: a worker that ended and that no answered heartbeat has carried yet is reported
  // now (its exit code and energy, no GPU readings), and the answer applied.
  void ReportEnds() {
    ApiClient reporter(config_);
    while (!stop_requested) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      Report report;
      {
        std::lock_guard lock(mu_);
        workers_->Reap();
        if (!bound_) continue;  // nothing is told before the server is known to be the folder's
        const bool unreported = std::any_of(workers_->workers().begin(), workers_->workers().end(), [&](const auto& w) {
          return w.second.exit_code && !told_ends_.contains(w.first);
        });
        if (!unreported) continue;
        report = Heartbeat({}, /*with_gpus=*/false);
      }
      const HttpReply r = reporter.Send("POST", fmt::format("/api/v1/agents/{}/heartbeat", o_.node), report.body.dump(),
                                        "application/json");
      (void)Answered(r, report);
    }
  }

  // Applies an answer to `report` (false: none, or an error, logged once).
  bool Answered(const HttpReply& r, const Report& report) {
    const json answer = r.status == 200 ? json::parse(r.body, nullptr, false) : json();
    std::lock_guard lock(mu_);
    if (!answer.is_object() || !answer.contains("assignments")) {
      // Keep running what runs: the server decides when a silent node's work is lost.
      if (was_answered_) fmt::print(stderr, "joule agent: heartbeat: {}\n", DescribeError(r));
      was_answered_ = false;
      failures_++;
      return false;
    }
    if (!bound_ && !Bind(answer)) return false;
    was_answered_ = true;
    for (const WorkerKey& key : report.ended) told_ends_.insert(key);
    Apply(answer["assignments"], report.ended);
    known_ = std::strtoull(answer.value("version", "0").c_str(), nullptr, 10);
    if (Status s = workers_->Save(); !s.ok()) fmt::print(stderr, "joule agent: {}\n", s.message());
    return true;
  }

  // REQUIRES: mu_ held. The first answer names the server's incarnation (its journal's cluster
  // id): the work folder is bound to it, and what it holds of another is moved aside unread.
  // False while the server has no id yet (a fresh journal's first moments): asked again later.
  bool Bind(const json& answer) {
    const std::string cluster = answer.value("cluster", "");
    if (cluster.empty() || cluster.find_first_of("/\\.") != std::string::npos) return false;
    Result<bool> moved = workers_->Bind(cluster);
    if (!moved.ok()) {
      fmt::print(stderr, "joule agent: {}\n", moved.status().message());
      return false;
    }
    if (*moved) {
      fmt::print(stderr,
                 "joule agent: the work folder held another server's state (not cluster {}): moved to {}/stale, "
                 "nothing of it adopted or signalled\n",
                 cluster, workers_->workdir().string());
    }
    told_ends_.clear();
    bound_ = true;
    return true;
  }

  std::vector<agent::GpuReading> Read() {
    if (!telemetry_) return {};
    std::vector<bool> busy(telemetry_->gpus().size(), false);
    for (const auto& [key, w] : workers_->workers()) {
      for (uint32_t d : w.devices) {
        if (!w.exit_code && d < busy.size()) busy[d] = true;
      }
    }
    telemetry_->SetBusy(busy);
    Result<std::vector<agent::GpuReading>> r = telemetry_->Read();
    if (!r.ok()) {
      fmt::print(stderr, "joule agent: telemetry: {}\n", r.status().message());
      return {};
    }
    workers_->AddEnergy(*r);
    return std::move(*r);
  }

  Report Heartbeat(const std::vector<agent::GpuReading>& readings, bool with_gpus) const {
    Report report;
    json ended = json::array(), running = json::array(), gpus = json::array();
    for (const auto& [key, w] : workers_->workers()) {
      json entry = {{"job", key.job}, {"rank", key.rank}, {"run", key.run}, {"energy_joules", w.energy_j}};
      if (w.exit_code) {
        entry["exit_code"] = *w.exit_code;
        ended.push_back(std::move(entry));
        report.ended.insert(key);
      } else {
        running.push_back(std::move(entry));
      }
    }
    if (!bound_) {  // the folder's workers may be another server's: none is reported before Bind
      ended = json::array();
      running = json::array();
      report.ended.clear();
    }
    json body = {{"address", o_.address}, {"ended", ended}, {"running", running}};
    if (telemetry_ && with_gpus) {
      for (size_t i = 0; i < readings.size(); ++i) gpus.push_back(GpuJson(telemetry_->gpus()[i], readings[i]));
      body["gpus"] = {{"source", telemetry_->source()},
                      {"count", telemetry_->gpus().size()},
                      {"driver_version", telemetry_->driver_version()},
                      {"devices", gpus}};
    }
    report.body = std::move(body);
    return report;
  }

  // REQUIRES: mu_ held. Starts what is assigned and new, stops what is no longer assigned, and
  // forgets ended workers that the answered heartbeat reported (`reported`) and that are no longer
  // assigned; an end not yet reported stays until a heartbeat carries it.
  void Apply(const json& assignments, const std::set<WorkerKey>& reported) {
    std::map<WorkerKey, const json*> assigned;
    for (const json& a : assignments) {
      assigned[{a["job"].get<uint64_t>(), a["rank"].get<uint32_t>(), a["run"].get<uint32_t>()}] = &a;
    }
    for (const auto& [key, a] : assigned) {
      if (workers_->workers().contains(key)) {
        LimitPower(*a);
        continue;
      }
      // A new run of a job starts once its earlier run's processes here are gone (ports, GPU memory).
      const WorkerKey wanted = key;  // clang 14 does not capture structured bindings
      const bool earlier_alive = std::any_of(
          workers_->workers().begin(), workers_->workers().end(),
          [&](const auto& w) { return w.first.job == wanted.job && w.first.run != wanted.run && !w.second.exit_code; });
      if (earlier_alive) continue;
      if (Status s = workers_->Start(LaunchOf(*a)); !s.ok()) {
        fmt::print(stderr, "joule agent: job {} rank {}: {}\n", key.job, key.rank, s.message());
        continue;
      }
      LimitPower(*a);
      fmt::print(stderr, "joule agent: job {} rank {} run {} started, process group {}\n", key.job, key.rank, key.run,
                 workers_->workers().at(key).pgid);
    }
    const int64_t now = MonotonicMs();
    std::vector<WorkerKey> forget;
    for (const auto& [key, w] : workers_->workers()) {
      if (assigned.contains(key)) continue;
      if (w.exit_code) {
        if (reported.contains(key)) forget.push_back(key);
        continue;
      }
      if (w.kill_at_ms < 0) {
        fmt::print(stderr, "joule agent: job {} rank {} run {} no longer assigned: SIGTERM\n", key.job, key.rank,
                   key.run);
      }
      workers_->Stop(key, now, static_cast<int64_t>(o_.grace_s * 1000));
    }
    for (const WorkerKey& key : forget) {
      RestorePower(workers_->workers().at(key));
      workers_->Forget(key);
      told_ends_.erase(key);
    }
  }

  // With --apply-power-limits: each device of the worker limited to the job's share of its default.
  void LimitPower(const json& a) {
    if (!o_.apply_power_limits || !telemetry_) return;
    const uint32_t permille = a.value("power_limit_permille", 1000u);
    for (const json& d : a["devices"]) {
      const uint32_t dev = d.get<uint32_t>();
      auto applied = applied_permille_.find(dev);
      const uint32_t current = applied == applied_permille_.end() ? 1000 : applied->second;  // none: the default
      if (dev >= telemetry_->gpus().size() || current == permille) continue;
      const double watts = telemetry_->gpus()[dev].default_power_limit_w * permille / 1000;
      if (Status s = telemetry_->SetPowerLimit(dev, watts); !s.ok()) {
        fmt::print(stderr, "joule agent: {}\n", s.message());
      }
      applied_permille_[dev] = permille;
    }
  }
  void RestorePower(const agent::Worker& w) {
    if (!o_.apply_power_limits || !telemetry_) return;
    for (uint32_t dev : w.devices) {
      auto it = applied_permille_.find(dev);
      if (it == applied_permille_.end() || dev >= telemetry_->gpus().size()) continue;
      if (Status s = telemetry_->SetPowerLimit(dev, telemetry_->gpus()[dev].default_power_limit_w); !s.ok()) {
        fmt::print(stderr, "joule agent: {}\n", s.message());
      }
      applied_permille_.erase(it);
    }
  }

  void PublishMetrics(const std::vector<agent::GpuReading>& readings) {
    if (o_.metrics_listen.empty()) return;
    agent::AgentMetrics m;
    m.hostname = o_.node;
    size_t running = 0;
    for (const auto& [key, w] : workers_->workers()) {
      if (w.exit_code) continue;
      running++;
      for (uint32_t d : w.devices) m.job_of_gpu[d] = key.job;
    }
    m.workers_running = running;
    m.heartbeats_failed = failures_;
    if (telemetry_) {
      m.driver_version = telemetry_->driver_version();
      m.gpus = &telemetry_->gpus();
      m.readings = &readings;
    }
    std::string text = agent::FormatMetrics(m);
    std::lock_guard lock(metrics_mu_);
    metrics_text_ = std::move(text);
  }

  const AgentOptions& o_;
  const ClientConfig config_;
  ApiClient client_;  // the long poll's connection (ReportEnds has its own)
  // Guards the workers, the telemetry and what follows, between the long poll and ReportEnds.
  std::mutex mu_;
  std::atomic<uint64_t> known_{0};  // the version of the assignments this agent runs (0: none yet)
  std::set<WorkerKey> told_ends_;   // ended workers an answered heartbeat reported
  std::unique_ptr<agent::Supervisor> workers_;
  std::unique_ptr<agent::Telemetry> telemetry_;
  bool was_answered_ = true;
  bool bound_ = false;  // the work folder is bound to the server answering (Bind)
  uint64_t failures_ = 0;
  std::map<uint32_t, uint32_t> applied_permille_;  // devices this agent limited: the job's share
  // A scraper's endpoint: a few connections, answered from the last readings.
  api::HttpServer metrics_server_{
      api::HttpLimits{.max_body_bytes = 0, .max_connections = 256, .handler_threads = 1, .io_threads = 1},
      [](api::HttpResponse& res, int status, std::string_view, std::string_view rule) {
        res.status = status;
        res.set_content(std::string(rule) + "\n", "text/plain");
      }};
  std::mutex metrics_mu_;
  std::string metrics_text_;  // GUARDED_BY(metrics_mu_)
};

int RunAgent(AgentOptions& o) {
  if (o.token) {
    fmt::print(stderr,
               "joule agent: --token would show the node's credential to every user of the machine (ps): give "
               "--token-file FILE or JOULE_TOKEN\n");
    return kExitBadInput;
  }
  for (const std::string& name : o.worker_env) {
    if (name.empty() || name.find('=') != std::string::npos || name.starts_with("JOULE_")) {
      fmt::print(stderr, "joule agent: --worker-env {}: must name a variable, not one of the agent's own (JOULE_*)\n",
                 name);
      return kExitBadInput;
    }
  }
  Result<ClientConfig> config = ResolveClientConfig(o.server, std::nullopt, o.token_file, o.ca_file);
  if (!config.ok()) {
    fmt::print(stderr, "joule agent: {}\n", config.status().message());
    return kExitBadInput;
  }
  unsetenv("JOULE_TOKEN");  // the agent holds it; nothing it starts needs to see it
  if (!o.metrics_listen.empty()) {
    Result<io::HostPort> listen = io::ParseHostPort(o.metrics_listen);
    if (!listen.ok()) {
      fmt::print(stderr, "joule agent: --metrics-listen: {}\n", listen.status().message());
      return kExitBadInput;
    }
    o.metrics_host = listen->host;
    o.metrics_port = listen->port;
  }
  const std::filesystem::path workdir =
      o.workdir.empty() ? std::filesystem::path("joule-agent") / o.node : std::filesystem::path(o.workdir);
  Result<std::unique_ptr<agent::Supervisor>> workers =
      agent::Supervisor::Open(workdir, "", agent::WorkerBaseEnv(o.worker_env));
  if (!workers.ok()) {
    fmt::print(stderr, "joule agent: --workdir {}\n", workers.status().message());
    return kExitBadInput;
  }
  Result<std::unique_ptr<agent::Telemetry>> telemetry = OpenTelemetry(o);
  if (!telemetry.ok()) {
    fmt::print(stderr, "joule agent: {}\n", telemetry.status().message());
    return kExitBadInput;
  }
  std::signal(SIGTERM, [](int) { stop_requested = 1; });
  std::signal(SIGINT, [](int) { stop_requested = 1; });
  fmt::print(stderr, "joule agent: node {} reporting to {}, work in {}, {} worker(s) taken over, telemetry: {}\n",
             o.node, config->server, workdir.string(), (*workers)->workers().size(),
             *telemetry ? fmt::format("{} ({} device(s))", (*telemetry)->source(), (*telemetry)->gpus().size())
                        : std::string("none"));
  Agent agent(o, *config, std::move(*workers), std::move(*telemetry));
  return agent.Run();
}

}  // namespace

void AddAgentCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<AgentOptions>();
  CLI::App* cmd = app.add_subcommand("agent", "Run a node's workers for a joule server (the node agent)");
  cmd->add_option("--server", o->server, "Server URL (else JOULE_SERVER, the client config)");
  cmd->add_option("--token-file", o->token_file,
                  "A file (mode 0600) holding this node's credential (`joule node-token`); else JOULE_TOKEN, the "
                  "client config");
  cmd->add_option("--cacert", o->ca_file,
                  "https: the CA certificates (PEM) to check the server's against (else JOULE_CACERT)");
  cmd->add_option("--token", o->token, "Refused: a credential in the command line is visible in ps")
      ->group("");  // kept only to say why it is refused
  cmd->add_option("--worker-env", o->worker_env,
                  "An environment variable of the agent's that workers get too (repeatable; e.g. LD_LIBRARY_PATH); "
                  "workers otherwise start from a clean environment (docs/agent.md)");
  cmd->add_option("--node", o->node, "This node's name in the server's fleet")->required();
  cmd->add_option("--workdir", o->workdir, "Where jobs run and write their output (default joule-agent/NODE)");
  cmd->add_option("--address", o->address, "This node's address for MASTER_ADDR (default 127.0.0.1)");
  cmd->add_option("--heartbeat-seconds", o->heartbeat_s,
                  "A heartbeat, with the GPUs' readings, at least this often: its long poll waits this long for new "
                  "work (default 30)")
      ->check(CLI::Range(0.05, 60.0));
  cmd->add_option("--grace-seconds", o->grace_s, "SIGTERM to SIGKILL (default 10)")->check(CLI::Range(0.0, 3600.0));
  cmd->add_option("--telemetry", o->telemetry,
                  "auto (NVML if it loads, else the declared accelerators simulated), nvml, simulated or none")
      ->check(CLI::IsMember({"auto", "nvml", "simulated", "none"}));
  cmd->add_option("--nvml-library", o->nvml_library, "NVML's library (default libnvidia-ml.so.1, from the driver)");
  cmd->add_option("--accelerators", o->accelerators, "Simulated telemetry: how many accelerators the node has")
      ->check(CLI::Range(1u, 1024u));
  cmd->add_option("--accelerator-type", o->accelerator_type,
                  "Simulated telemetry: their type in the built-in catalog (default h100-sxm)");
  cmd->add_option("--metrics-listen", o->metrics_listen,
                  "Serve GPU metrics in dcgm-exporter's format at HOST:PORT/metrics (dcgm-exporter uses :9400)");
  cmd->add_flag("--apply-power-limits", o->apply_power_limits,
                "Set each device's power limit to the engine's cap for the job on it (off: read only)");
  cmd->callback([&run, o] { run = [o] { return RunAgent(*o); }; });
}

}  // namespace joule::apps
