#include "apps/client.h"

#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace joule::apps {

Result<std::string> ReadTokenFile(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::is_regular_file(status)) return Status::Error(fmt::format("{}: no such file", path));
  using std::filesystem::perms;
  if ((status.permissions() & (perms::group_all | perms::others_all)) != perms::none) {
    return Status::Error(fmt::format("{}: others may read or write it: chmod 600 it", path));
  }
  std::ifstream in(path);
  std::string token;
  if (!std::getline(in, token)) return Status::Error(fmt::format("{}: cannot read a token from it", path));
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  if (token.empty()) return Status::Error(fmt::format("{}: its first line is empty", path));
  return token;
}

Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& server,
                                         const std::optional<std::string>& token,
                                         const std::optional<std::string>& token_file,
                                         const std::optional<std::string>& ca_file) {
  ClientConfig config;
  std::string path;
  if (const char* env = std::getenv("JOULE_CONFIG")) {
    path = env;
  } else if (const char* home = std::getenv("HOME")) {
    path = std::string(home) + "/.config/joule/client.yaml";
  }
  if (!path.empty() && std::filesystem::exists(path)) {
    try {
      const YAML::Node root = YAML::LoadFile(path);
      for (const auto& kv : root) {
        const std::string key = kv.first.Scalar();
        if (key == "server") {
          config.server = kv.second.Scalar();
        } else if (key == "token") {
          config.token = kv.second.Scalar();
        } else if (key == "cacert") {
          config.ca_file = kv.second.Scalar();
        } else {
          return Status::Error(fmt::format("{}:{}: {}: unknown key (server, token and cacert are known)", path,
                                           kv.first.Mark().line + 1, key));
        }
      }
    } catch (const YAML::Exception& e) {
      return Status::Error(fmt::format("{}: {}", path, e.what()));
    }
  }
  if (const char* env = std::getenv("JOULE_SERVER")) config.server = env;
  if (const char* env = std::getenv("JOULE_TOKEN")) config.token = env;
  if (const char* env = std::getenv("JOULE_CACERT")) config.ca_file = env;
  if (ca_file) config.ca_file = *ca_file;
  if (!config.ca_file.empty() && !std::filesystem::is_regular_file(config.ca_file)) {
    return Status::Error(fmt::format("CA file {}: no such file", config.ca_file));
  }
  if (server) config.server = *server;
  if (token) config.token = *token;
  if (token_file) {
    Result<std::string> read = ReadTokenFile(*token_file);
    if (!read.ok()) return Status::Error(fmt::format("--token-file {}", read.status().message()));
    config.token = std::move(*read);
  }
  for (const std::string& url : SplitServers(config.server)) {
    if (!(url.starts_with("http://") && url.size() > 7) && !(url.starts_with("https://") && url.size() > 8)) {
      return Status::Error(
          fmt::format("server '{}': must be an http:// or https:// URL, e.g. http://127.0.0.1:6820, or several "
                      "separated by commas (replicas of one control plane)",
                      url));
    }
  }
  return config;
}

// Several servers (HA replicas): requests go to the one that answered last; a follower's 307 names
// the leader, and a server that does not answer or answers 503 (no leader yet, or its journal
// failed) hands the request to the next, for up to kFailoverSeconds. With one server a request
// is sent once (and follows a 307 once).
struct ApiClient::Impl {
  static constexpr int kFailoverSeconds = 15;
  std::vector<std::string> servers;
  std::vector<std::unique_ptr<httplib::Client>> clients;
  size_t current = 0;
  std::string token, ca_file;

  explicit Impl(const ClientConfig& c) : token(c.token), ca_file(c.ca_file) {
    for (const std::string& url : SplitServers(c.server)) Add(url);
  }
  size_t Add(const std::string& url) {
    auto client = std::make_unique<httplib::Client>(url);
    if (url.starts_with("https://")) {  // the server's certificate is checked, against ca_file or the system's CAs
      client->enable_server_certificate_verification(true);
      if (!ca_file.empty()) client->set_ca_cert_path(ca_file.c_str());
    }
    client->set_connection_timeout(5);
    client->set_read_timeout(60);
    client->set_keep_alive(true);
    client->set_tcp_nodelay(true);
    servers.push_back(url);
    clients.push_back(std::move(client));
    return clients.size() - 1;
  }
  httplib::Headers Headers(const std::map<std::string, std::string>& extra) const {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    for (const auto& [k, v] : extra) h.emplace(k, v);
    return h;
  }
  static HttpReply Reply(const httplib::Result& r) {
    if (!r) return {0, "", httplib::to_string(r.error())};
    return {r->status, r->body, "", r->get_header_value("Location")};
  }
  // The server a 307's Location points at (added if it is not one of ours).
  std::optional<size_t> Leader(const std::string& location) {
    const size_t slash = location.find('/', location.find("://") == std::string::npos ? 0 : location.find("://") + 3);
    const std::string base = location.substr(0, slash);
    if (!base.starts_with("http://") && !base.starts_with("https://")) return std::nullopt;
    for (size_t i = 0; i < servers.size(); ++i) {
      if (servers[i] == base) return i;
    }
    return Add(base);
  }
  HttpReply Do(const std::function<httplib::Result(httplib::Client&)>& send) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kFailoverSeconds);
    HttpReply last;
    while (true) {
      const size_t n = clients.size();
      for (size_t i = 0; i < n; ++i) {
        const size_t k = (current + i) % n;
        last = Reply(send(*clients[k]));
        if (last.status == 307) {
          const std::optional<size_t> leader = Leader(last.location);
          if (!leader) continue;
          last = Reply(send(*clients[*leader]));
          if (last.status != 0 && last.status != 503 && last.status != 307) {
            current = *leader;
            return last;
          }
          continue;
        }
        if (last.status != 0 && last.status != 503) {
          current = k;
          return last;
        }
      }
      if (servers.size() == 1 || std::chrono::steady_clock::now() > deadline) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
};

std::vector<std::string> SplitServers(const std::string& servers) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (begin <= servers.size()) {
    const size_t comma = servers.find(',', begin);
    const size_t end = comma == std::string::npos ? servers.size() : comma;
    std::string url = servers.substr(begin, end - begin);
    while (url.size() > 1 && url.back() == '/') url.pop_back();
    out.push_back(std::move(url));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  return out;
}

ApiClient::ApiClient(const ClientConfig& config) : impl_(std::make_unique<Impl>(config)) {}
ApiClient::~ApiClient() = default;

HttpReply ApiClient::Get(const std::string& path) {
  const httplib::Headers h = impl_->Headers({});
  return impl_->Do([&](httplib::Client& c) { return c.Get(path, h); });
}

HttpReply ApiClient::Send(const std::string& method, const std::string& path, const std::string& body,
                          const std::string& content_type, const std::map<std::string, std::string>& headers) {
  const httplib::Headers h = impl_->Headers(headers);
  return impl_->Do([&](httplib::Client& c) {
    if (method == "POST") return c.Post(path, h, body, content_type);
    if (method == "PATCH") return c.Patch(path, h, body, content_type);
    return c.Delete(path, h, body, content_type);
  });
}

std::string DescribeError(const HttpReply& reply) {
  if (reply.status == 0) return fmt::format("no answer from the server: {}", reply.error);
  const nlohmann::json j = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const std::string field = j["error"].value("field", "");
    return fmt::format("{}{}{} (HTTP {})", field, field.empty() ? "" : ": ", j["error"].value("message", ""),
                       reply.status);
  }
  return fmt::format("HTTP {}: {}", reply.status, reply.body);
}

}  // namespace joule::apps
