#include "apps/client.h"

#include <httplib.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace joule::apps {

Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& server,
                                         const std::optional<std::string>& token) {
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
        } else {
          return Status::Error(
              fmt::format("{}:{}: {}: unknown key (server and token are known)", path, kv.first.Mark().line + 1, key));
        }
      }
    } catch (const YAML::Exception& e) {
      return Status::Error(fmt::format("{}: {}", path, e.what()));
    }
  }
  if (const char* env = std::getenv("JOULE_SERVER")) config.server = env;
  if (const char* env = std::getenv("JOULE_TOKEN")) config.token = env;
  if (server) config.server = *server;
  if (token) config.token = *token;
  if (!config.server.starts_with("http://")) {
    return Status::Error(fmt::format("server '{}': must be an http:// URL, e.g. http://127.0.0.1:6820", config.server));
  }
  return config;
}

struct ApiClient::Impl {
  httplib::Client client;
  std::string token;
  explicit Impl(const ClientConfig& c) : client(c.server), token(c.token) {
    client.set_connection_timeout(5);
    client.set_read_timeout(60);
    client.set_keep_alive(true);
    client.set_tcp_nodelay(true);
  }
  httplib::Headers Headers(const std::map<std::string, std::string>& extra) const {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    for (const auto& [k, v] : extra) h.emplace(k, v);
    return h;
  }
  static HttpReply Reply(const httplib::Result& r) {
    if (!r) return {0, "", httplib::to_string(r.error())};
    return {r->status, r->body, ""};
  }
};

ApiClient::ApiClient(const ClientConfig& config) : impl_(std::make_unique<Impl>(config)) {}
ApiClient::~ApiClient() = default;

HttpReply ApiClient::Get(const std::string& path) { return Impl::Reply(impl_->client.Get(path, impl_->Headers({}))); }

HttpReply ApiClient::Send(const std::string& method, const std::string& path, const std::string& body,
                          const std::string& content_type, const std::map<std::string, std::string>& headers) {
  const httplib::Headers h = impl_->Headers(headers);
  if (method == "POST") return Impl::Reply(impl_->client.Post(path, h, body, content_type));
  if (method == "PATCH") return Impl::Reply(impl_->client.Patch(path, h, body, content_type));
  return Impl::Reply(impl_->client.Delete(path, h, body, content_type));
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
