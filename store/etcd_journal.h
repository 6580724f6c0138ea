// The journal kept in etcd (store: {etcd: ...} in the server config; docs/ha.md), through etcd's
// v3 JSON gateway, so that several `joule server` replicas share one history and one of them
// leads. Layout under the prefix P:
//   P/log/<first seq, 20 digits>  a batch of records (one group commit), packed;
//   P/head                        the last sequence number appended (decimal);
//   P/leader                      the leading server's address, attached to its lease;
//   P/snapshot                    "<seq> <chunks>": the newest snapshot, made current (and the
//                                 log keys it covers deleted) by one fenced transaction;
//   P/snapshot/<seq>/<chunk>      its body, in chunks of at most 1 MiB.
// An append is one etcd transaction conditioned on P/head still holding the last sequence number
// this journal read and, while leading, on P/leader still being the key this server created:
// a server that lost its lease (paused, cut off) can never append after another took over — its
// transaction fails and it learns it is no longer leader (docs/decisions/0009).
// Thread-safety: every member may be called from any thread; requests are serialized.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "store/journal.h"

namespace joule::store {

struct EtcdOptions {
  std::vector<std::string> endpoints;  // http://HOST:PORT of etcd members, tried in turn
  std::string prefix = "/joule";       // every key lives under it: several campuses share a cluster
  int lease_seconds = 2;               // the leader's lease: a dead leader is replaced after this
  int timeout_ms = 1500;               // one request to one member
};

class EtcdJournal final : public Journal {
 public:
  // Connects (any endpoint answering) and reads the head. Errors name the endpoints and why.
  static Result<std::unique_ptr<EtcdJournal>> Open(EtcdOptions options);
  ~EtcdJournal() override;
  EtcdJournal(const EtcdJournal&) = delete;
  EtcdJournal& operator=(const EtcdJournal&) = delete;

  Result<uint64_t> Append(std::span<const std::string> payloads) override;
  Status Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const override;
  uint64_t last_seq() const override { return last_seq_; }
  Status Reopen() override;
  Result<std::optional<Snapshot>> LoadSnapshot() const override;
  Status SaveSnapshot(uint64_t seq, std::string_view body, bool compact) override;
  Status SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) override;
  Result<std::vector<std::string>> LoadChunks(std::string_view log, uint64_t count) const override;

  Result<bool> Campaign(const std::string& address) override;
  bool leading() const override { return leading_; }
  std::string leader() const override;
  void Resign() override;
  bool concurrent_snapshots() const override { return true; }

 private:
  explicit EtcdJournal(EtcdOptions options);
  class Http;
  // POSTs `body` to the gateway's `path` (e.g. "/v3/kv/txn") on the first member that answers;
  // the parsed JSON text of the answer.
  Result<std::string> Call(const std::string& path, const std::string& body) const;
  Status ReadHead();
  // The key of the batch holding record `seq`, or of the last batch before it (none: no batch).
  Result<std::optional<std::string>> BatchHolding(uint64_t seq) const;
  // The keys under `prefix` (which ends in '/') and their values, in key order, at most `count`,
  // read kChunksPerRange to a request (values are up to 1 MiB).
  Result<std::vector<std::pair<std::string, std::string>>> RangeUnder(const std::string& prefix, size_t count) const;
  void KeepAlive();  // the lease keeper's loop while leading

  EtcdOptions options_;
  std::unique_ptr<Http> http_;
  mutable std::mutex call_mu_;  // one request at a time over the members' connections
  std::atomic<uint64_t> last_seq_ = 0;
  mutable std::mutex mu_;
  std::string lease_id_;         // GUARDED_BY(mu_): the lease this server campaigns with ("" none)
  std::string leader_revision_;  // GUARDED_BY(mu_): create revision of P/leader while leading
  std::string leader_;           // GUARDED_BY(mu_): the leader's address as last read
  std::chrono::steady_clock::time_point lease_confirmed_;  // GUARDED_BY(mu_): when the last renewal was asked
  std::atomic<bool> leading_ = false;
  std::atomic<bool> stopping_ = false;
  std::thread keeper_;
};

}  // namespace joule::store
