// Who is calling: bearer tokens checked against the configuration's SHA-256 digests, and node
// agents' credentials (docs/security.md). Tokens are never stored or logged, only their digests; a
// presented token is hashed and compared with every configured digest in constant time
// (CRYPTO_memcmp), so neither the comparison nor the number of digests it stops at tells an
// attacker how close a guess was. A node's credential, "jn1.NODE.MAC", is the HMAC-SHA256 of the
// node's name under the server's node key (node_key_file): it names the one node it acts for, the
// server keeps no list of them (113,600 nodes), and `joule node-token` issues them offline from the
// same key. Thread-safe after construction.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sched/job.h"

namespace joule::control {

// An operator acts on everything; a tenant's principal sees and acts on its own jobs only.
struct Principal {
  std::string name;
  std::optional<TenantId> tenant;  // empty: an operator (or an agent)
  std::string node;                // a node's agent: the node its credential is for; the agent route only

  bool agent() const { return !node.empty(); }
  bool operator_role() const { return !tenant.has_value() && !agent(); }
};

using Digest = std::array<unsigned char, 32>;

Digest Sha256(std::string_view data);
std::string Hex(const Digest& digest);
// REQUIRES: `hex` is 64 lowercase hex digits.
Digest FromHex(std::string_view hex);
// A fresh token: 32 bytes from the system's CSPRNG, as 64 hex digits (for `joule token`).
std::string NewToken();

// The credential of `node` under `key`: "jn1." + node + "." + 64 hex digits of
// HMAC-SHA256(key, "joule node credential\n" + node).
std::string NodeToken(std::string_view key, std::string_view node);

class Authenticator {
 public:
  void Add(Principal principal, const Digest& digest) { entries_.push_back({std::move(principal), digest}); }
  // Nodes' credentials are checked against `key` (none accepted without one).
  void SetNodeKey(std::string_view key);
  // The principal whose token this is, from an `Authorization` header value ("Bearer <token>").
  std::optional<Principal> Check(std::string_view authorization) const;

 private:
  // HMAC-SHA256 under the node key with its padded key blocks hashed once: a check costs two
  // context copies and three short hashes (0.5 µs), not a key schedule and an algorithm fetch.
  // Shared, not owned: immutable once made, and an Authenticator may be copied.
  struct NodeMac;
  std::shared_ptr<const NodeMac> node_mac_;
  struct Entry {
    Principal principal;
    Digest digest;
  };
  std::vector<Entry> entries_;
};

}  // namespace joule::control
