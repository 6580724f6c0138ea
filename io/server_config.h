// The control plane's configuration file (`joule server --config FILE`, docs/server.md): the
// scenario whose fleet and tenants it serves, where it listens and keeps its state, who may call
// it (bearer tokens, stored as SHA-256 hashes; nodes' agents by the node key's credentials), its queues (Slurm's
// partitions) and priority classes (Slurm's QOS), and the API's limits. Errors are "file:line:column: path: why".
// Thread-safety: stateless; call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "base/units.h"

namespace joule::io {

// A caller: an operator (acts on everything) or one tenant (sees and acts on its own jobs only).
struct TokenSpec {
  std::string name;                   // who, in the audit log
  std::optional<std::string> tenant;  // empty: an operator
  std::string sha256;                 // hex digest of the token; the token itself is never stored
};

struct QueueSpec {
  std::string name;
  std::vector<std::string> gpu_types;  // accelerator types its jobs may run on; empty: any
  std::optional<TimeMs> max_time;      // longest time limit it takes (Slurm's MaxTime)
  TimeMs default_time = 3'600'000;     // a job's time limit when it gives none (Slurm's DefaultTime)
};

struct PriorityClassSpec {
  std::string name;
  int32_t value = 0;  // the engine's priority: higher runs first and may preempt lower
};

struct ServerLimits {
  size_t max_body_bytes = 1 << 20;  // a request body larger than this gets 413
  uint32_t max_workers = 131'072;   // workers in one job
  uint32_t max_page = 100'000;      // jobs in one page of a list
  uint32_t max_pending_per_tenant = 1'000'000;
};

// The journal in etcd instead of the SQLite file: several servers on one config, one leading.
struct EtcdStoreSpec {
  std::vector<std::string> endpoints;  // http://HOST:PORT of the etcd members
  std::string prefix = "/joule";       // the keys' prefix in etcd
  uint32_t lease_seconds = 2;          // the leader's lease: a dead leader is replaced within it
  uint32_t timeout_ms = 1500;          // one request to one member
};

// The API's connections (api/http_server.h): how long a client may take, how many may be open.
struct HttpSpec {
  TimeMs head_timeout_ms = 10'000;   // a request's head, from its first byte
  TimeMs body_timeout_ms = 30'000;   // its body
  TimeMs idle_timeout_ms = 120'000;  // a keep-alive connection waiting for its next request
  uint32_t max_connections = 50'000;
};

// TLS on the listener: a PEM certificate (its chain after it) and its key (mode 0600).
struct TlsSpec {
  std::string certificate, key;  // resolved against the config file's folder
};

struct ServerConfig {
  std::string scenario;  // resolved against the config file's folder
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 6820;           // beside slurmrestd's customary 6820
  std::string state = "joule-state.db";  // the SQLite journal, resolved like `scenario`
  std::optional<EtcdStoreSpec> etcd;     // store: {etcd: ...}: the journal in etcd, not `state`
  std::string advertise;                 // the URL other replicas send clients to; "" http(s)://listen
  std::optional<TlsSpec> tls;            // absent: plain HTTP
  TimeMs tick_ms = 1000;                 // one scheduling pass per tick
  uint32_t http_threads = 64;            // requests handled at once (connections cost no thread)
  HttpSpec http;
  TimeMs agent_timeout_ms = 90'000;  // a node whose agent is silent this long is marked down (3 heartbeats)
  bool agents_required = false;      // nodes with no agent after agent_timeout_ms are marked down
  // A snapshot after this many records (0: never; unset: ControlPlane::kSnapshotRecords). A
  // restart loads the newest and replays the records after it.
  std::optional<uint32_t> snapshot_records;
  bool compact_journal = false;  // SQLite: drop records a snapshot covers (etcd always does)
  // An ended job stays in the view (lists, its events, its spec) this long, then is retired to
  // the history: still found by id, listed on request, its row compact (Slurm's MinJobAge).
  TimeMs job_retention_ms = 300'000;
  size_t history_chunk_bytes = size_t{1} << 20;   // the history's chunks (control/history.h); tests make them small
  size_t snapshot_piece_bytes = size_t{1} << 20;  // a snapshot kept in pieces between appends (SQLite); the same
  std::vector<TokenSpec> tokens;
  // The key nodes' credentials are made with (control/auth.h), read from node_key_file: at least
  // 32 bytes, in a file only its owner may read. Empty: no agent is admitted.
  std::string node_key_file, node_key;
  std::vector<QueueSpec> queues;  // the first is the default
  std::vector<PriorityClassSpec> priority_classes;
  std::string default_priority_class;
  ServerLimits limits;
};

Result<ServerConfig> LoadServerConfig(const std::string& path);

// The node key in `path`, without a trailing newline; errors name the file: missing, readable or
// writable by others than its owner, or shorter than kMinNodeKeyBytes.
constexpr size_t kMinNodeKeyBytes = 32;
Result<std::string> ReadNodeKey(const std::string& path);

}  // namespace joule::io
