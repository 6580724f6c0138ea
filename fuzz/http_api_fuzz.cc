// libFuzzer target: the request path, in process. Each input is one request (method, target,
// headers, body, and which token it presents) answered by the API's handlers over a real control
// plane (the dev campus, a SQLite journal in a temporary folder), through every check a
// connection's request goes through (HttpServer::Dispatch). Invariants: no 5xx and no exception;
// every refusal a JSON error naming its status; a refused request changes nothing (no record of
// a change or a report is journaled).
//
// An input is: byte 0 picks the token (none, operator, tenant lab-a, node dev-hgx01-k00-n00's
// credential, a forged one), byte 1 the method; then the target's line, header lines ("Name:
// value") up to an empty line, and the body.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api/http_api.h"
#include "control/auth.h"
#include "control/control_plane.h"
#include "io/server_config.h"

namespace {

constexpr std::string_view kOperator = "fuzz-operator-token", kTenant = "fuzz-lab-a-token";
constexpr std::string_view kNodeKey = "fuzz-node-key-0123456789abcdef0123456789";
constexpr const char* kNode = "dev-hgx01-k00-n00";

struct Server {
  std::unique_ptr<joule::control::ControlPlane> plane;
  std::unique_ptr<joule::api::HttpApi> api;
};

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "http_api_fuzz: %s\n", why.c_str());
  std::abort();
}

// Reachable for the whole run (never destroyed: the plane's threads outlive any exit order).
Server* Start() {
  std::string dir = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + std::string("/joule-fuzz-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) Die("mkdtemp failed");
  {
    std::ofstream(dir + "/node.key") << kNodeKey << "\n";
    chmod((dir + "/node.key").c_str(), 0600);
    std::ofstream config(dir + "/server.yaml");
    config << "scenario: " << JOULE_SOURCE_DIR << "/scenarios/dev.yaml\n"
           << "state: state.db\ntick_seconds: 3600\nagent_timeout_seconds: 3600\nnode_key_file: node.key\n"
           << "tokens:\n  - {name: ops, sha256: " << joule::control::Hex(joule::control::Sha256(kOperator)) << "}\n"
           << "  - {name: lab-a, tenant: lab-a, sha256: " << joule::control::Hex(joule::control::Sha256(kTenant))
           << "}\n";
  }
  joule::Result<joule::io::ServerConfig> config = joule::io::LoadServerConfig(dir + "/server.yaml");
  if (!config.ok()) Die(config.status().message());
  auto* server = new Server;
  auto clock = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  joule::Result<std::unique_ptr<joule::control::ControlPlane>> plane =
      joule::control::ControlPlane::Open(*config, clock);
  if (!plane.ok()) Die(plane.status().message());
  server->plane = std::move(*plane);
  server->plane->Start();
  server->api = std::make_unique<joule::api::HttpApi>(*server->plane);
  return server;
}

std::string_view Line(std::string_view& rest) {
  const size_t end = rest.find('\n');
  const std::string_view line = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Server* server = Start();
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  joule::api::HttpRequest req;
  static constexpr const char* kMethods[] = {"GET", "POST", "PATCH", "DELETE", "PUT"};
  req.method = data[1] % 6 < 5 ? kMethods[data[1] % 6] : std::string(Line(rest));
  req.target = std::string(Line(rest));
  if (req.target.empty() || req.target.front() != '/') req.target = "/" + req.target;
  for (std::string_view line = Line(rest); !line.empty(); line = Line(rest)) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    req.headers.emplace(std::string(line.substr(0, colon)), std::string(value));
  }
  switch (data[0] % 5) {
    case 1:
      req.headers.emplace("Authorization", "Bearer " + std::string(kOperator));
      break;
    case 2:
      req.headers.emplace("Authorization", "Bearer " + std::string(kTenant));
      break;
    case 3:
      req.headers.emplace("Authorization", "Bearer " + joule::control::NodeToken(kNodeKey, kNode));
      break;
    case 4:
      req.headers.emplace("Authorization",
                          "Bearer " + joule::control::NodeToken("not-the-key-0123456789abcdef0123", kNode));
      break;
    default:
      break;
  }
  req.body = std::string(rest);
  const uint64_t before = server->plane->counters().inputs;
  const std::optional<joule::api::HttpResponse> res =
      server->api->Dispatch(std::move(req), std::chrono::milliseconds(200));
  if (!res) return 0;  // a long poll, answered later
  if (res->status >= 500) Die("a 5xx: " + std::to_string(res->status) + " " + res->body);
  if (res->status >= 400) {
    const nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
    if (!body.is_object() || !body.contains("error") || body["error"].value("status", 0) != res->status ||
        !body["error"].contains("field") || !body["error"]["message"].is_string()) {
      Die("a refusal without its JSON error: " + res->body);
    }
    if (server->plane->counters().inputs != before) Die("a refused request changed the state: " + res->body);
  }
  return 0;
}
