// `joule server --config FILE`: the control plane over HTTP until SIGINT or SIGTERM.
// `joule token [--tenant T] [--name N]`: a fresh bearer token and the config entry that admits it.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "api/http_api.h"
#include "apps/commands.h"
#include "control/control_plane.h"
#include "io/host_port.h"

namespace joule::apps {
namespace {

struct ServerOptions {
  std::string config;
  std::optional<std::string> listen;
};

TimeMs WallClockMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int RunServer(const ServerOptions& options) {
  // Every client connection is a descriptor: take as many as the system allows this process.
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  Result<io::ServerConfig> config = io::LoadServerConfig(options.config);
  if (!config.ok()) {
    fmt::print(stderr, "joule server: {}\n", config.status().message());
    return kExitBadInput;
  }
  if (options.listen) {
    Result<io::HostPort> listen = io::ParseHostPort(*options.listen);
    if (!listen.ok()) {
      fmt::print(stderr, "joule server: --listen: {}\n", listen.status().message());
      return kExitBadInput;
    }
    config->listen_host = listen->host;
    config->listen_port = listen->port;
  }
  // SIGINT and SIGTERM end the server; they are waited for on a thread of their own.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const auto begin = std::chrono::steady_clock::now();
  Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Create(
      *config, WallClockMs, [](std::string_view line) { fmt::print(stderr, "joule server: {}\n", line); });
  if (!plane.ok()) {
    fmt::print(stderr, "joule server: {}\n", plane.status().message());
    return kExitBadInput;
  }
  // The port opens before the replay: probes hear 503 "replaying" rather than nothing at all.
  api::HttpApi http(**plane);
  if (config->tls) {
    if (::joule::Status tls = http.UseTls(config->tls->certificate, config->tls->key); !tls.ok()) {
      fmt::print(stderr, "joule server: tls: {}\n", tls.message());
      return kExitBadInput;
    }
  }
  const std::string scheme = config->tls ? "https" : "http";
  Result<int> port = http.Bind(config->listen_host, config->listen_port);
  if (!port.ok()) {
    fmt::print(stderr, "joule server: {}\n", port.status().message());
    return kExitBadInput;
  }
  fmt::print(stderr, "joule server: listening on {}://{}:{} (replaying the journal)\n", scheme, config->listen_host,
             *port);
  std::atomic<bool> stopped = false;
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    fmt::print(stderr, "joule server: {}: stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    stopped = true;
    http.Stop();
  });
  std::thread serving([&] { http.Serve(); });
  const ::joule::Status loaded = (*plane)->Load();
  if (!loaded.ok()) {
    fmt::print(stderr, "joule server: {}\n", loaded.message());
    http.Stop();
    serving.join();
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return kExitBadInput;
  }
  const control::ControlPlane::FleetStatus status = (*plane)->Snapshot();
  const std::string address = config->advertise.empty() ? fmt::format("{}://{}:{}", scheme,
                                                                      config->listen_host.find(':') == std::string::npos
                                                                          ? config->listen_host
                                                                          : "[" + config->listen_host + "]",
                                                                      *port)
                                                        : config->advertise;
  if (!stopped) (*plane)->Start(address);
  const uint64_t snapshot = (*plane)->counters().snapshot_seq;
  fmt::print(
      stderr, "joule server: {} ({} nodes, {} accelerators); journal {} replayed ({} records{}) in {:.2f} s; {}\n",
      (*plane)->fleet().campus().name, status.nodes, status.accelerators,
      config->etcd ? fmt::format("etcd {}{}", fmt::join(config->etcd->endpoints, ","), config->etcd->prefix)
                   : config->state,
      status.journal_seq,
      snapshot ? fmt::format(": the snapshot at record {}, then {}", snapshot, status.journal_seq - snapshot) : "",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(),
      (*plane)->leading() ? "leading" : "following: waiting to lead");
  serving.join();
  (*plane)->Stop();
  waiter.join();
  return kExitOk;
}

}  // namespace

void AddServerCommand(CLI::App& app, CommandFn& run) {
  auto options = std::make_shared<ServerOptions>();
  CLI::App* cmd = app.add_subcommand("server", "Run the control plane: the engine in real time behind the HTTP API");
  cmd->add_option("--config", options->config, "Server configuration (YAML; docs/server.md)")->required();
  cmd->add_option("--listen", options->listen, "HOST:PORT to listen on, overriding the config (port 0: any free)");
  cmd->callback([options, &run] { run = [options] { return RunServer(*options); }; });

  auto token = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* tok = app.add_subcommand("token", "Make a fresh bearer token and the server config entry that admits it");
  tok->add_option("--name", token->first, "Who holds it, as the audit log will name them")->required();
  tok->add_option("--tenant", token->second, "The tenant it acts for (none: an operator's token)");
  tok->callback([token, &run] {
    run = [token] {
      const std::string secret = control::NewToken();
      fmt::print("token: {}\n", secret);
      fmt::print("# the server config's entry (tokens:), which keeps only its SHA-256:\n");
      fmt::print("- name: {}\n", token->first);
      if (!token->second.empty()) fmt::print("  tenant: {}\n", token->second);
      fmt::print("  sha256: {}\n", control::Hex(control::Sha256(secret)));
      return kExitOk;
    };
  });
}

}  // namespace joule::apps
