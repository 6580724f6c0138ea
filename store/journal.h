// The durable journal of the control plane's state changes: an ordered list of records (opaque
// bytes here; the server writes engine events encoded by io/journal_json.h), each acknowledged
// only once it is on disk, so that everything acknowledged survives a crash of the process and is
// replayed on restart (and into the twin). `Journal` is the interface another backend (etcd) can
// implement; `SqliteJournal` is the default: one SQLite file in WAL mode, written by one process
// at a time (an exclusive lock on FILE.lock, which names its holder).
// Thread-safety: not thread-safe; one thread owns a journal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace joule::store {

struct JournalEntry {
  uint64_t seq = 0;  // 1, 2, 3, ... without gaps
  std::string payload;
};

// The server's whole state as of record `seq` (opaque here: control/snapshot.cc writes it). A
// restart loads the newest and replays only the records after it.
struct Snapshot {
  uint64_t seq = 0;
  std::string body;
};

class Journal {
 public:
  virtual ~Journal() = default;
  // Appends the payloads in order as one transaction: all or none. When it returns a sequence
  // number (the last payload's), they are durable. REQUIRES: payloads non-empty.
  virtual Result<uint64_t> Append(std::span<const std::string> payloads) = 0;
  // Calls `visit` for every entry after `after`, in order.
  virtual Status Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const = 0;
  virtual uint64_t last_seq() const = 0;
  // After a failed Append: drops whatever the failure left (connection, transaction) and reads the
  // last sequence number again. Ok when the journal takes appends again.
  virtual Status Reopen() = 0;

  // The newest snapshot, if any. Records up to its seq may have been compacted away: Read from
  // before it may then start later than asked (the caller checks for the gap).
  virtual Result<std::optional<Snapshot>> LoadSnapshot() const = 0;
  // Keeps `body` as the state at record `seq` (REQUIRES: seq <= last_seq()), durably, replacing
  // older snapshots; when `compact`, records up to seq are dropped.
  virtual Status SaveSnapshot(uint64_t seq, std::string_view body, bool compact) = 0;

  // The history's chunks (control/history.h): immutable byte strings, each kept once under
  // (log, index) before a snapshot that counts it is saved. Writing one again writes the same
  // bytes (the history follows from the records alone), so a deposed leader's late write changes
  // nothing and needs no fencing.
  virtual Status SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) = 0;
  // Chunks 0 to count - 1 of `log`, in order; an error names the first one missing.
  virtual Result<std::vector<std::string>> LoadChunks(std::string_view log, uint64_t count) const = 0;

  // Leadership among servers sharing the journal. Only the leader appends; the others read. A
  // SQLite journal's writer is the only one (its lock), so it always leads.
  // Tries to become leader, advertising `address` to the others; true when this server leads.
  virtual Result<bool> Campaign(const std::string& address) {
    (void)address;
    return true;
  }
  // Whether this server still leads (its lease is kept); false after it lost the lease.
  virtual bool leading() const { return true; }
  // The leader's address as last seen ("" unknown or this server).
  virtual std::string leader() const { return ""; }
  // Gives leadership up (a server that stops, or that must rebuild after a failure).
  virtual void Resign() {}
  // Whether SaveSnapshot may run on another thread than the appends (the journal is thread-safe).
  virtual bool concurrent_snapshots() const { return false; }
  // Whether a snapshot may be kept in pieces between appends instead: each SaveSnapshotPiece
  // (index 0, 1, ... of the body cut in order) is durable on its own, and SaveSnapshot(seq, "",
  // compact) then makes them the snapshot. A large snapshot never holds the appends back for long.
  virtual bool snapshot_pieces() const { return false; }
  virtual Status SaveSnapshotPiece(uint64_t seq, uint32_t index, std::string_view bytes) {
    (void)seq, (void)index, (void)bytes;
    return Status::Error("this journal keeps snapshots whole");
  }
  // Once the snapshot at `seq` is saved from pieces, the older ones' pieces are no longer read:
  // each call drops one of them (dropping all at once held the appends back 0.2 s on a campus);
  // true while some are left.
  virtual Result<bool> DropOlderSnapshotPiece(uint64_t seq) {
    (void)seq;
    return false;
  }
};

enum class OpenMode {
  kWriter,  // takes the journal's lock: a second writer is refused, naming the holder
  kReader,  // reads what writers committed; takes no lock, never writes
};

class SqliteJournal final : public Journal {
 public:
  // Opens the journal at `path` (a writer creates it if needed); errors name the file and SQLite's
  // reason, or the process holding the lock.
  static Result<std::unique_ptr<SqliteJournal>> Open(const std::string& path, OpenMode mode = OpenMode::kWriter);
  ~SqliteJournal() override;
  SqliteJournal(const SqliteJournal&) = delete;
  SqliteJournal& operator=(const SqliteJournal&) = delete;

  Result<uint64_t> Append(std::span<const std::string> payloads) override;
  Status Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const override;
  uint64_t last_seq() const override { return last_seq_; }
  Status Reopen() override;
  Result<std::optional<Snapshot>> LoadSnapshot() const override;
  Status SaveSnapshot(uint64_t seq, std::string_view body, bool compact) override;
  Status SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) override;
  Result<std::vector<std::string>> LoadChunks(std::string_view log, uint64_t count) const override;
  bool snapshot_pieces() const override { return true; }
  Status SaveSnapshotPiece(uint64_t seq, uint32_t index, std::string_view bytes) override;
  Result<bool> DropOlderSnapshotPiece(uint64_t seq) override;

 private:
  SqliteJournal(std::string path, OpenMode mode, int lock_fd)
      : path_(std::move(path)), mode_(mode), lock_fd_(lock_fd) {}
  Status Connect();  // opens db_ and reads last_seq_
  void Disconnect();
  Status Exec(const char* sql);
  Status Error(std::string_view what) const;
  // Ends the transaction a BEGIN opened: COMMIT when `ok`, else ROLLBACK with the error of `what`.
  Status Finish(bool ok, std::string_view what);

  std::string path_;
  OpenMode mode_;
  int lock_fd_ = -1;                // owned: FILE.lock, flock'ed exclusively by a writer
  sqlite3* db_ = nullptr;           // owned; closed by the destructor
  sqlite3_stmt* insert_ = nullptr;  // owned: the append, prepared on first use
  uint64_t last_seq_ = 0;
};

}  // namespace joule::store
