#include "io/server_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "io/host_port.h"
#include "io/sbatch.h"
#include "io/yaml_fields.h"

namespace joule::io {
namespace {

std::string Resolve(const std::string& config_path, const std::string& path) {
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(config_path).parent_path() / p).lexically_normal().string();
}

bool IsSha256Hex(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void Listen(const Fields& f, ServerConfig& c) {
  Result<HostPort> listen = ParseHostPort(f.String("listen"));
  if (!listen.ok()) f.Fail("listen", listen.status().message());
  c.listen_host = listen->host;
  c.listen_port = listen->port;
}

void Store(const Fields& f, ServerConfig& c) {
  Fields store(f.Get("store"), "store", {"sqlite", "etcd"});
  if (store.Has("sqlite") == store.Has("etcd")) store.Fail("", "must name one backend: sqlite or etcd");
  if (store.Has("sqlite")) {
    Fields sqlite(store.Get("sqlite"), "store.sqlite", {"path"});
    c.state = sqlite.String("path");
    return;
  }
  Fields etcd(store.Get("etcd"), "store.etcd", {"endpoints", "prefix", "lease_seconds", "timeout_ms"});
  EtcdStoreSpec spec;
  const YAML::Node endpoints = etcd.List("endpoints");
  if (endpoints.size() == 0) etcd.Fail("endpoints", "must list at least one etcd member, e.g. http://127.0.0.1:2379");
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const std::string path = fmt::format("{}[{}]", etcd.PathOf("endpoints"), i);
    if (!endpoints[i].IsScalar()) ThrowAt(endpoints[i], path, "must be a URL");
    const std::string url = endpoints[i].Scalar();
    if (url.rfind("http://", 0) != 0 || !ParseHostPort(url.substr(7)).ok()) {
      ThrowAt(endpoints[i], path, "must be http://HOST:PORT");
    }
    spec.endpoints.push_back(url);
  }
  if (etcd.Has("prefix")) {
    spec.prefix = etcd.String("prefix");
    if (spec.prefix.empty() || spec.prefix.front() != '/' || spec.prefix.back() == '/') {
      etcd.Fail("prefix", "must begin with / and not end with one, e.g. /joule/campus-1");
    }
  }
  if (etcd.Has("lease_seconds")) spec.lease_seconds = static_cast<uint32_t>(etcd.Number("lease_seconds", 1, 60));
  if (etcd.Has("timeout_ms")) spec.timeout_ms = static_cast<uint32_t>(etcd.Number("timeout_ms", 50, 60'000));
  c.etcd = std::move(spec);
}

void Tokens(const Fields& f, ServerConfig& c) {
  const YAML::Node list = f.List("tokens");
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    Fields t(list[i], fmt::format("tokens[{}]", i), {"name", "tenant", "sha256", "agent"});
    if (t.Has("agent")) {
      t.Fail("agent",
             "one token for every node's agent is no longer accepted: each agent presents its own node's "
             "credential (node_key_file:, then `joule node-token`; docs/security.md)");
    }
    TokenSpec spec{t.String("name"), t.OptString("tenant"), t.String("sha256")};
    if (!names.insert(spec.name).second) t.Fail("name", "is used by an earlier token");
    if (!IsSha256Hex(spec.sha256)) {
      t.Fail("sha256", "must be 64 lowercase hex digits: the SHA-256 of the token (`joule token` makes one)");
    }
    c.tokens.push_back(std::move(spec));
  }
}

void NodeKey(const Fields& f, ServerConfig& c, const std::string& config_path) {
  c.node_key_file = Resolve(config_path, f.String("node_key_file"));
  Result<std::string> key = ReadNodeKey(c.node_key_file);
  if (!key.ok()) f.Fail("node_key_file", key.status().message());
  c.node_key = std::move(*key);
}

void Queues(const Fields& f, ServerConfig& c) {
  const YAML::Node list = f.List("queues");
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    Fields q(list[i], fmt::format("queues[{}]", i), {"name", "gpu_types", "max_time", "default_time"});
    QueueSpec spec{q.String("name")};
    if (!names.insert(spec.name).second) q.Fail("name", "is used by an earlier queue");
    if (q.Has("gpu_types")) {
      const YAML::Node types = q.List("gpu_types");
      for (size_t k = 0; k < types.size(); ++k) {
        if (!types[k].IsScalar()) ThrowAt(types[k], fmt::format("{}[{}]", q.PathOf("gpu_types"), k), "must be a name");
        spec.gpu_types.push_back(types[k].Scalar());
      }
    }
    if (q.Has("max_time")) spec.max_time = q.Duration("max_time");
    if (q.Has("default_time")) spec.default_time = q.Duration("default_time");
    if (spec.max_time && spec.default_time > *spec.max_time) q.Fail("default_time", "is longer than max_time");
    c.queues.push_back(std::move(spec));
  }
}

void PriorityClasses(const Fields& f, ServerConfig& c) {
  const YAML::Node list = f.List("priority_classes");
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    Fields p(list[i], fmt::format("priority_classes[{}]", i), {"name", "value", "default"});
    PriorityClassSpec spec{p.String("name"), static_cast<int32_t>(p.Number("value", -1e6, 1e6))};
    if (spec.value != p.Number("value", -1e6, 1e6)) p.Fail("value", "must be a whole number");
    if (!names.insert(spec.name).second) p.Fail("name", "is used by an earlier priority class");
    if (p.Has("default")) {
      if (!p.Get("default").IsScalar() ||
          (p.Get("default").Scalar() != "true" && p.Get("default").Scalar() != "false")) {
        p.Fail("default", "must be true or false");
      }
      if (p.Get("default").Scalar() == "true") {
        if (!c.default_priority_class.empty()) p.Fail("default", "another priority class is the default already");
        c.default_priority_class = spec.name;
      }
    }
    c.priority_classes.push_back(std::move(spec));
  }
}

void Limits(const Fields& f, ServerConfig& c) {
  Fields l(f.Get("limits"), "limits", {"max_body_bytes", "max_workers", "max_page", "max_pending_per_tenant"});
  if (auto n = l.OptCount("max_body_bytes")) c.limits.max_body_bytes = *n;
  if (auto n = l.OptCount("max_workers")) c.limits.max_workers = *n;
  if (auto n = l.OptCount("max_page")) c.limits.max_page = *n;
  if (auto n = l.OptCount("max_pending_per_tenant")) c.limits.max_pending_per_tenant = *n;
}

ServerConfig Parse(const YAML::Node& root, const std::string& path) {
  Fields f(root, "",
           {"scenario", "listen", "advertise", "state", "store", "tick_seconds", "http_threads", "http",
            "agent_timeout_seconds", "agents_required", "snapshot_records", "compact_journal", "job_retention_seconds",
            "tokens", "node_key_file", "tls", "queues", "priority_classes", "limits"});
  ServerConfig c;
  c.scenario = Resolve(path, f.String("scenario"));
  if (f.Has("listen")) Listen(f, c);
  if (f.Has("state")) c.state = f.String("state");
  if (f.Has("store")) {
    if (f.Has("state")) f.Fail("store", "give state: or store:, not both");
    Store(f, c);
  }
  c.state = Resolve(path, c.state);
  if (f.Has("advertise")) {
    c.advertise = f.String("advertise");
    if ((c.advertise.rfind("http://", 0) != 0 && c.advertise.rfind("https://", 0) != 0) || c.advertise.back() == '/') {
      f.Fail("advertise", "must be the URL clients reach this server at, e.g. http://10.0.0.5:6820");
    }
  }
  if (f.Has("tick_seconds")) {
    c.tick_ms = std::llround(f.Number("tick_seconds", 0.01, 3600) * 1000);
  }
  if (auto n = f.OptCount("http_threads")) c.http_threads = *n;
  if (f.Has("http")) {
    Fields h(f.Get("http"), "http",
             {"head_timeout_seconds", "body_timeout_seconds", "idle_timeout_seconds", "max_connections"});
    auto seconds = [&](const char* key, TimeMs& ms) {
      if (h.Has(key)) ms = std::llround(h.Number(key, 0.1, 3600) * 1000);
    };
    seconds("head_timeout_seconds", c.http.head_timeout_ms);
    seconds("body_timeout_seconds", c.http.body_timeout_ms);
    seconds("idle_timeout_seconds", c.http.idle_timeout_ms);
    if (auto n = h.OptCount("max_connections")) c.http.max_connections = *n;
  }
  if (f.Has("agent_timeout_seconds")) {
    c.agent_timeout_ms = std::llround(f.Number("agent_timeout_seconds", 0.1, 86'400) * 1000);
  }
  if (f.Has("snapshot_records")) c.snapshot_records = static_cast<uint32_t>(f.Number("snapshot_records", 0, 1e9));
  if (f.Has("job_retention_seconds")) {
    c.job_retention_ms = std::llround(f.Number("job_retention_seconds", 0, 365.0 * 86'400) * 1000);
  }
  if (f.Has("compact_journal")) {
    const std::string compact = f.String("compact_journal");
    if (compact != "true" && compact != "false") f.Fail("compact_journal", "must be true or false");
    c.compact_journal = compact == "true";
  }
  if (f.Has("agents_required")) {
    const std::string required = f.String("agents_required");
    if (required != "true" && required != "false") f.Fail("agents_required", "must be true or false");
    c.agents_required = required == "true";
  }
  Tokens(f, c);
  if (f.Has("node_key_file")) NodeKey(f, c, path);
  if (f.Has("tls")) {
    Fields t(f.Get("tls"), "tls", {"certificate", "key"});
    c.tls = TlsSpec{Resolve(path, t.String("certificate")), Resolve(path, t.String("key"))};
    for (const auto& [field, file] : {std::pair{"certificate", c.tls->certificate}, std::pair{"key", c.tls->key}}) {
      std::error_code ec;
      const auto status = std::filesystem::status(file, ec);
      if (ec || !std::filesystem::is_regular_file(status)) t.Fail(field, fmt::format("{}: no such file", file));
      using std::filesystem::perms;
      if (std::string_view(field) == "key" &&
          (status.permissions() & (perms::group_all | perms::others_all)) != perms::none) {
        t.Fail(field, fmt::format("{}: others may read or write it: chmod 600 it", file));
      }
    }
  }
  if (f.Has("queues")) {
    Queues(f, c);
  } else {
    c.queues.push_back({"batch"});
  }
  if (f.Has("priority_classes")) {
    PriorityClasses(f, c);
  } else {
    c.priority_classes = {{"low", -100}, {"normal", 0}, {"high", 100}};
    c.default_priority_class = "normal";
  }
  if (c.default_priority_class.empty()) c.default_priority_class = c.priority_classes.front().name;
  if (f.Has("limits")) Limits(f, c);
  return c;
}

}  // namespace

// A secret file: as ssh refuses a private key others may read, so does the server.
Result<std::string> ReadNodeKey(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::is_regular_file(status)) {
    return Status::Error(fmt::format("{}: no such file (`joule node-token --new-key FILE` makes one)", path));
  }
  using std::filesystem::perms;
  if ((status.permissions() & (perms::group_all | perms::others_all)) != perms::none) {
    return Status::Error(fmt::format("{}: others may read or write it: chmod 600 it", path));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (!in) return Status::Error(fmt::format("{}: cannot read it", path));
  std::string key = bytes.str();
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  if (key.size() < kMinNodeKeyBytes) {
    return Status::Error(
        fmt::format("{}: holds {} bytes; a node key has at least {}", path, key.size(), kMinNodeKeyBytes));
  }
  return key;
}

Result<ServerConfig> LoadServerConfig(const std::string& path) {
  return ParseYamlFile<ServerConfig>(path, "server config", [&](const YAML::Node& root) { return Parse(root, path); });
}

}  // namespace joule::io
