#include "store/etcd_journal.h"

#include <httplib.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "base/check.h"

namespace joule::store {
namespace {

using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// etcd's JSON gateway carries keys and values as base64.
std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Unbase64(std::string_view text) {
  if (text.size() % 4 != 0) return Status::Error("etcd answered a value that is not base64");
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return Status::Error("etcd answered a value that is not base64");
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

// A batch of records as one value: each is its length in decimal, a newline, then its bytes.
std::string Pack(std::span<const std::string> payloads) {
  std::string out;
  for (const std::string& p : payloads) {
    out += std::to_string(p.size());
    out += '\n';
    out += p;
  }
  return out;
}

Status Unpack(std::string_view packed, const std::function<void(std::string)>& each) {
  while (!packed.empty()) {
    const size_t newline = packed.find('\n');
    if (newline == std::string_view::npos || newline == 0 || newline > 12) return Status::Error("a batch is damaged");
    const uint64_t length = std::stoull(std::string(packed.substr(0, newline)));
    if (length > packed.size() - newline - 1) return Status::Error("a batch is damaged");
    each(std::string(packed.substr(newline + 1, length)));
    packed.remove_prefix(newline + 1 + length);
  }
  return Status::Ok();
}

// Values are kept at most this large (etcd refuses requests over 1.5 MiB by default): a larger
// batch becomes several keys, four to a transaction. A read asks for many keys at once: group
// commits under light load hold a record or two, and one request per few records made a replay of
// 45,000 records take 30 s.
constexpr size_t kMaxValueBytes = 256 * 1024;
constexpr size_t kKeysPerTxn = 4;
constexpr int kKeysPerRange = 256;

std::string Int(uint64_t v) { return std::to_string(v); }

}  // namespace

// One keep-alive connection per member; the member that answered last is asked first.
class EtcdJournal::Http {
 public:
  explicit Http(const EtcdOptions& options) {
    for (const std::string& endpoint : options.endpoints) {
      auto client = std::make_unique<httplib::Client>(endpoint);
      const auto timeout = std::chrono::milliseconds(options.timeout_ms);
      client->set_connection_timeout(timeout);
      client->set_read_timeout(timeout);
      client->set_write_timeout(timeout);
      client->set_keep_alive(true);
      // Headers and body leave at once: with Nagle's algorithm the body would wait for the ACK
      // of the headers, which the gateway delays up to 40 ms.
      client->set_tcp_nodelay(true);
      clients.push_back(std::move(client));
    }
  }
  std::vector<std::unique_ptr<httplib::Client>> clients;
  size_t preferred = 0;
};

EtcdJournal::EtcdJournal(EtcdOptions options) : options_(std::move(options)), http_(std::make_unique<Http>(options_)) {}

Result<std::unique_ptr<EtcdJournal>> EtcdJournal::Open(EtcdOptions options) {
  if (options.endpoints.empty()) return Status::Error("etcd: no endpoints");
  std::unique_ptr<EtcdJournal> journal(new EtcdJournal(std::move(options)));
  if (Status s = journal->ReadHead(); !s.ok()) return s;
  journal->keeper_ = std::thread([j = journal.get()] { j->KeepAlive(); });
  return journal;
}

EtcdJournal::~EtcdJournal() {
  stopping_ = true;
  if (keeper_.joinable()) keeper_.join();
  Resign();
}

// Members are tried in turn, rounds of them for up to two request timeouts: when one member
// dies, etcd elects another leader, and requests fail for about a second meanwhile.
Result<std::string> EtcdJournal::Call(const std::string& path, const std::string& body) const {
  std::lock_guard lock(call_mu_);
  std::vector<std::string> why;  // each member's answer in the last round
  const size_t n = http_->clients.size();
  // Three request timeouts: long enough for etcd to elect a leader after losing one (its
  // election timeout is 1 s, longer on a loaded machine), short of a client's patience.
  const auto deadline = SteadyClock::now() + std::chrono::milliseconds(3 * options_.timeout_ms);
  do {
    why.clear();
    for (size_t i = 0; i < n; ++i) {
      const size_t k = (http_->preferred + i) % n;
      httplib::Result r = http_->clients[k]->Post(path, body, "application/json");
      if (!r) {
        why.push_back(fmt::format("{}: {}", options_.endpoints[k], httplib::to_string(r.error())));
        continue;
      }
      if (r->status != 200) {
        // The gateway's error: {"error": ..., "code": ..., "message": ...}. A member without quorum
        // answers "request timed out"; another member may have it.
        json e = json::parse(r->body, nullptr, false);
        why.push_back(fmt::format("{}: HTTP {}: {}", options_.endpoints[k], r->status,
                                  e.is_object() && e.contains("message") ? e["message"].get<std::string>() : r->body));
        continue;
      }
      http_->preferred = k;
      return r->body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (SteadyClock::now() < deadline);
  return Status::Error(fmt::format("etcd: no member answered {} ({})", path, fmt::join(why, "; ")));
}

Status EtcdJournal::ReadHead() {
  Result<std::string> r = Call("/v3/kv/range", json{{"key", Base64(options_.prefix + "/head")}}.dump());
  if (!r.ok()) return r.status();
  json answer = json::parse(*r, nullptr, false);
  if (!answer.is_object()) return Status::Error("etcd: the head's range answer is not JSON");
  if (!answer.contains("kvs")) {
    last_seq_ = 0;
    return Status::Ok();
  }
  Result<std::string> value = Unbase64(answer["kvs"][0].value("value", ""));
  if (!value.ok()) return value.status();
  last_seq_ = std::stoull(*value);
  return Status::Ok();
}

Status EtcdJournal::Reopen() { return ReadHead(); }

Result<uint64_t> EtcdJournal::Append(std::span<const std::string> payloads) {
  JOULE_CHECK(!payloads.empty());
  std::string leader_revision;
  {
    std::lock_guard lock(mu_);
    leader_revision = leader_revision_;
  }
  if (!leading_ || leader_revision.empty()) return Status::Error("etcd: this server does not lead: it may not append");
  size_t next = 0;
  while (next < payloads.size()) {
    // Up to kKeysPerTxn values of at most kMaxValueBytes each (a record larger than that alone).
    const uint64_t head = last_seq_;
    uint64_t seq = head;
    json puts = json::array();
    for (size_t keys = 0; keys < kKeysPerTxn && next < payloads.size(); ++keys) {
      const uint64_t first = seq + 1;
      size_t bytes = 0, end = next;
      while (end < payloads.size() && (end == next || bytes + payloads[end].size() <= kMaxValueBytes)) {
        bytes += payloads[end++].size();
      }
      puts.push_back({{"request_put",
                       {{"key", Base64(fmt::format("{}/log/{:020}", options_.prefix, first))},
                        {"value", Base64(Pack(payloads.subspan(next, end - next)))}}}});
      seq += end - next;
      next = end;
    }
    puts.push_back({{"request_put", {{"key", Base64(options_.prefix + "/head")}, {"value", Base64(Int(seq))}}}});
    json head_compare = head == 0 ? json{{"key", Base64(options_.prefix + "/head")},
                                         {"target", "CREATE"},
                                         {"result", "EQUAL"},
                                         {"create_revision", "0"}}
                                  : json{{"key", Base64(options_.prefix + "/head")},
                                         {"target", "VALUE"},
                                         {"result", "EQUAL"},
                                         {"value", Base64(Int(head))}};
    json txn = {{"compare",
                 {head_compare,
                  {{"key", Base64(options_.prefix + "/leader")},
                   {"target", "CREATE"},
                   {"result", "EQUAL"},
                   {"create_revision", leader_revision}}}},
                {"success", puts}};
    Result<std::string> r = Call("/v3/kv/txn", txn.dump());
    if (!r.ok()) return r.status();
    json answer = json::parse(*r, nullptr, false);
    if (!answer.is_object() || !answer.value("succeeded", false)) {
      // Fenced: another server leads now, or appended since this one read the head.
      leading_ = false;
      return Status::Error(fmt::format(
          "etcd: the append was refused: this server no longer leads (its lease ran out or another server took "
          "over), or the journal moved past record {}",
          head));
    }
    last_seq_ = seq;
  }
  return last_seq_.load();
}

Result<std::optional<std::string>> EtcdJournal::BatchHolding(uint64_t seq) const {
  const std::string log = options_.prefix + "/log/";
  Result<std::string> r = Call("/v3/kv/range", json{{"key", Base64(log)},
                                                    {"range_end", Base64(fmt::format("{}{:020}", log, seq) + '\0')},
                                                    {"sort_order", "DESCEND"},
                                                    {"sort_target", "KEY"},
                                                    {"limit", "1"},
                                                    {"keys_only", true}}
                                                   .dump());
  if (!r.ok()) return r.status();
  const json answer = json::parse(*r, nullptr, false);
  if (!answer.is_object() || !answer.contains("kvs")) return std::optional<std::string>();
  Result<std::string> key = Unbase64(answer["kvs"][0].value("key", ""));
  if (!key.ok()) return key.status();
  return std::optional<std::string>(std::move(*key));
}

Status EtcdJournal::Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const {
  const std::string log = options_.prefix + "/log/";
  const std::string log_end = options_.prefix + "/log0";  // '0' follows '/': the end of the log's keys
  // The batch holding record after + 1 may begin before it.
  std::string start = fmt::format("{}{:020}", log, after + 1);
  Result<std::optional<std::string>> holder = BatchHolding(after + 1);
  if (!holder.ok()) return holder.status();
  if (*holder) start = **holder;
  json answer;
  while (true) {
    Result<std::string> page =
        Call("/v3/kv/range",
             json{{"key", Base64(start)}, {"range_end", Base64(log_end)}, {"limit", Int(kKeysPerRange)}}.dump());
    if (!page.ok()) return page.status();
    answer = json::parse(*page, nullptr, false);
    if (!answer.is_object()) return Status::Error("etcd: a range answer is not JSON");
    if (!answer.contains("kvs")) return Status::Ok();
    for (const json& kv : answer["kvs"]) {
      Result<std::string> key = Unbase64(kv.value("key", ""));
      Result<std::string> value = Unbase64(kv.value("value", ""));
      if (!key.ok()) return key.status();
      if (!value.ok()) return value.status();
      uint64_t seq = std::stoull(key->substr(log.size()));
      Status s = Unpack(*value, [&](std::string payload) {
        if (seq > after) visit({seq, std::move(payload)});
        ++seq;
      });
      if (!s.ok()) return Status::Error(fmt::format("etcd: {}: {}", *key, s.message()));
      start = *key + '\0';
    }
    if (!answer.value("more", false)) return Status::Ok();
  }
}

namespace {

constexpr size_t kSnapshotChunkBytes = 1 << 20;
constexpr int kChunksPerRange = 8;

json DeleteRange(const std::string& from, const std::string& to) {
  return {{"request_delete_range", {{"key", Base64(from)}, {"range_end", Base64(to)}}}};
}

}  // namespace

Result<std::optional<Snapshot>> EtcdJournal::LoadSnapshot() const {
  Result<std::string> r = Call("/v3/kv/range", json{{"key", Base64(options_.prefix + "/snapshot")}}.dump());
  if (!r.ok()) return r.status();
  json answer = json::parse(*r, nullptr, false);
  if (!answer.is_object() || !answer.contains("kvs")) return std::optional<Snapshot>();
  Result<std::string> current = Unbase64(answer["kvs"][0].value("value", ""));
  if (!current.ok()) return current.status();
  Snapshot out;
  size_t chunks = 0;
  if (std::sscanf(current->c_str(), "%lu %zu", &out.seq, &chunks) != 2) {
    return Status::Error(fmt::format("etcd: {}/snapshot: '{}' is not '<seq> <chunks>'", options_.prefix, *current));
  }
  Result<std::vector<std::pair<std::string, std::string>>> pieces =
      RangeUnder(fmt::format("{}/snapshot/{:020}/", options_.prefix, out.seq), chunks);
  if (!pieces.ok()) return pieces.status();
  if (pieces->size() != chunks) {
    return Status::Error(fmt::format("etcd: snapshot {} has {} of its {} chunks", out.seq, pieces->size(), chunks));
  }
  for (const auto& [key, value] : *pieces) out.body += value;
  return std::optional<Snapshot>(std::move(out));
}

Result<std::vector<std::pair<std::string, std::string>>> EtcdJournal::RangeUnder(const std::string& prefix,
                                                                                 size_t count) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::string start = prefix;
  const std::string end = prefix.substr(0, prefix.size() - 1) + static_cast<char>(prefix.back() + 1);
  while (out.size() < count) {
    Result<std::string> page =
        Call("/v3/kv/range",
             json{{"key", Base64(start)}, {"range_end", Base64(end)}, {"limit", Int(kChunksPerRange)}}.dump());
    if (!page.ok()) return page.status();
    const json answer = json::parse(*page, nullptr, false);
    if (!answer.is_object() || !answer.contains("kvs")) break;
    for (const json& kv : answer["kvs"]) {
      Result<std::string> key = Unbase64(kv.value("key", ""));
      Result<std::string> value = Unbase64(kv.value("value", ""));
      if (!key.ok()) return key.status();
      if (!value.ok()) return value.status();
      if (out.size() == count) break;
      start = *key + '\0';
      out.emplace_back(std::move(*key), std::move(*value));
    }
    if (answer["kvs"].size() < static_cast<size_t>(kChunksPerRange)) break;
  }
  return out;
}

Status EtcdJournal::SaveSnapshot(uint64_t seq, std::string_view body, bool compact) {
  std::string leader_revision;
  {
    std::lock_guard lock(mu_);
    leader_revision = leader_revision_;
  }
  if (!leading_ || leader_revision.empty()) return Status::Error("etcd: this server does not lead: no snapshot");
  // The chunks first, under a key of this seq that nothing reads until the pointer names it.
  const std::string base = fmt::format("{}/snapshot/{:020}/", options_.prefix, seq);
  size_t chunks = 0;
  do {
    const json put = {
        {"key", Base64(fmt::format("{}{:06}", base, chunks))},
        {"value", Base64(body.substr(std::min(body.size(), chunks * kSnapshotChunkBytes), kSnapshotChunkBytes))}};
    if (Result<std::string> r = Call("/v3/kv/put", put.dump()); !r.ok()) return r.status();
    ++chunks;
  } while (chunks * kSnapshotChunkBytes < body.size());
  // The log keys wholly before record seq + 1: up to the batch that holds it (or the first after).
  const std::string log = options_.prefix + "/log/";
  Result<std::optional<std::string>> holder = BatchHolding(seq + 1);
  if (!holder.ok()) return holder.status();
  const std::string keep = holder->value_or(log);
  json success = {
      {{"request_put",
        {{"key", Base64(options_.prefix + "/snapshot")}, {"value", Base64(fmt::format("{} {}", seq, chunks))}}}},
      DeleteRange(options_.prefix + "/snapshot/", base)};
  if (compact && keep != log) success.push_back(DeleteRange(log, keep));
  const json txn = {{"compare",
                     {{{"key", Base64(options_.prefix + "/leader")},
                       {"target", "CREATE"},
                       {"result", "EQUAL"},
                       {"create_revision", leader_revision}}}},
                    {"success", std::move(success)}};
  Result<std::string> r = Call("/v3/kv/txn", txn.dump());
  if (!r.ok()) return r.status();
  const json answer = json::parse(*r, nullptr, false);
  if (!answer.is_object() || !answer.value("succeeded", false)) {
    leading_ = false;
    return Status::Error("etcd: the snapshot was refused: this server no longer leads");
  }
  // etcd keeps every revision until compacted: drop those before this one (its space is reused;
  // defragmenting gives it back to the disk, an operator's task).
  if (compact) {
    const std::string revision = answer["header"].value("revision", "");
    if (!revision.empty()) (void)Call("/v3/kv/compaction", json{{"revision", revision}}.dump());
  }
  return Status::Ok();
}

// P/chunk/<log>/<index>: written once, never deleted with the log or the snapshots.
Status EtcdJournal::SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) {
  const json put = {{"key", Base64(fmt::format("{}/chunk/{}/{:012}", options_.prefix, log, index))},
                    {"value", Base64(bytes)}};
  Result<std::string> r = Call("/v3/kv/put", put.dump());
  return r.ok() ? Status::Ok() : r.status();
}

Result<std::vector<std::string>> EtcdJournal::LoadChunks(std::string_view log, uint64_t count) const {
  const std::string base = fmt::format("{}/chunk/{}/", options_.prefix, log);
  Result<std::vector<std::pair<std::string, std::string>>> kvs = RangeUnder(base, count);
  if (!kvs.ok()) return kvs.status();
  std::vector<std::string> chunks;
  for (auto& [key, value] : *kvs) {
    if (key != fmt::format("{}{:012}", base, chunks.size())) break;
    chunks.push_back(std::move(value));
  }
  if (chunks.size() != count) {
    return Status::Error(fmt::format("etcd: history chunk {} {} is missing", log, chunks.size()));
  }
  return chunks;
}

Result<bool> EtcdJournal::Campaign(const std::string& address) {
  if (leading_) return true;
  const std::string leader_key = Base64(options_.prefix + "/leader");
  Result<std::string> r = Call("/v3/kv/range", json{{"key", leader_key}}.dump());
  if (!r.ok()) return r.status();
  json answer = json::parse(*r, nullptr, false);
  if (answer.is_object() && answer.contains("kvs")) {
    Result<std::string> value = Unbase64(answer["kvs"][0].value("value", ""));
    std::lock_guard lock(mu_);
    leader_ = value.ok() ? *value : "";
    return false;
  }
  const auto asked = SteadyClock::now();
  Result<std::string> grant = Call("/v3/lease/grant", json{{"TTL", Int(options_.lease_seconds)}}.dump());
  if (!grant.ok()) return grant.status();
  const std::string lease = json::parse(*grant, nullptr, false).value("ID", "");
  if (lease.empty()) return Status::Error("etcd: no lease was granted");
  json txn = {{"compare", {{{"key", leader_key}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}}},
              {"success", {{{"request_put", {{"key", leader_key}, {"value", Base64(address)}, {"lease", lease}}}}}}};
  Result<std::string> won = Call("/v3/kv/txn", txn.dump());
  if (!won.ok()) return won.status();
  answer = json::parse(*won, nullptr, false);
  if (!answer.is_object() || !answer.value("succeeded", false)) {
    (void)Call("/v3/lease/revoke", json{{"ID", lease}}.dump());
    return false;
  }
  if (Status s = ReadHead(); !s.ok()) return s;
  std::lock_guard lock(mu_);
  lease_id_ = lease;
  leader_revision_ = answer["header"].value("revision", "");
  leader_ = address;
  lease_confirmed_ = asked;
  leading_ = true;
  return true;
}

std::string EtcdJournal::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

void EtcdJournal::Resign() {
  std::string lease;
  {
    std::lock_guard lock(mu_);
    lease.swap(lease_id_);
    leader_revision_.clear();
    leading_ = false;
  }
  // Revoking the lease deletes the leader key: the next leader need not wait for it to expire.
  if (!lease.empty()) (void)Call("/v3/lease/revoke", json{{"ID", lease}}.dump());
}

// While leading, renews the lease three times per TTL. Leadership is held only while the last
// renewal etcd confirmed was asked for less than a TTL ago: the lease cannot have run out before
// then, so this server stops leading no later than etcd lets another take over.
void EtcdJournal::KeepAlive() {
  const auto period = std::chrono::milliseconds(options_.lease_seconds * 1000 / 3);
  auto next = SteadyClock::now();
  while (!stopping_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string lease;
    SteadyClock::time_point confirmed;
    {
      std::lock_guard lock(mu_);
      lease = lease_id_;
      confirmed = lease_confirmed_;
    }
    if (!leading_ || lease.empty()) continue;
    const auto now = SteadyClock::now();
    if (now - confirmed >= std::chrono::seconds(options_.lease_seconds)) {
      leading_ = false;
      continue;
    }
    if (now < next) continue;
    next = now + period;
    Result<std::string> r = Call("/v3/lease/keepalive", json{{"ID", lease}}.dump());
    if (!r.ok()) continue;  // retried at the next period, while the lease may still hold
    json answer = json::parse(*r, nullptr, false);
    const bool alive =
        answer.is_object() && answer.contains("result") && std::stoll(answer["result"].value("TTL", "0")) > 0;
    std::lock_guard lock(mu_);
    if (lease != lease_id_) continue;
    if (alive) {
      lease_confirmed_ = now;
    } else {
      leading_ = false;
    }
  }
}

}  // namespace joule::store
