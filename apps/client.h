// The CLI's side of the HTTP API: where the server is and which token to present, from flags
// (--token-file, --token), then the environment (JOULE_SERVER, JOULE_TOKEN), then a config file (JOULE_CONFIG, else
// ~/.config/joule/client.yaml: `server:` and `token:`), else http://127.0.0.1:6820 without a token.
// Thread-safety: one client per thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace joule::apps {

struct ClientConfig {
  // One URL, or several separated by commas: replicas of one control plane (docs/ha.md), tried in
  // turn; a follower's redirect to the leader is followed.
  std::string server = "http://127.0.0.1:6820";
  std::string token;
  // https servers: the CA certificates (PEM) to check theirs against; empty: the system's.
  std::string ca_file;
};

std::vector<std::string> SplitServers(const std::string& servers);

// `token_file` (--token-file), when given, wins over `token` (--token), JOULE_TOKEN and the config;
// the CA file comes from `ca_file` (--cacert), else JOULE_CACERT, else the config's `cacert:`.
Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& server,
                                         const std::optional<std::string>& token,
                                         const std::optional<std::string>& token_file = std::nullopt,
                                         const std::optional<std::string>& ca_file = std::nullopt);
// A token file's first line; errors name the file: missing, empty, or readable by others.
Result<std::string> ReadTokenFile(const std::string& path);

struct HttpReply {
  int status = 0;  // 0: no answer (the error says why)
  std::string body;
  std::string error;
  std::string location;  // a redirect's target
};

class ApiClient {
 public:
  explicit ApiClient(const ClientConfig& config);
  ~ApiClient();
  HttpReply Get(const std::string& path);
  HttpReply Send(const std::string& method, const std::string& path, const std::string& body,
                 const std::string& content_type, const std::map<std::string, std::string>& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "resources.gpus: must be ... (HTTP 400)" from an error reply.
std::string DescribeError(const HttpReply& reply);

}  // namespace joule::apps
