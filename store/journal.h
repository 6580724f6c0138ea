// The durable journal of the control plane's state changes: an ordered list of records (opaque
// bytes here; the server writes engine events encoded by io/journal_json.h), each acknowledged
// only once it is on disk, so that everything acknowledged survives a crash of the process and is
// replayed on restart (and into the twin). `Journal` is the interface another backend (etcd) can
// implement; `SqliteJournal` is the default: one SQLite file in WAL mode.
// Thread-safety: not thread-safe; one thread owns a journal.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace joule::store {

struct JournalEntry {
  uint64_t seq = 0;  // 1, 2, 3, ... without gaps
  std::string payload;
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
};

class SqliteJournal final : public Journal {
 public:
  // Opens (creating if needed) the journal at `path`; errors name the file and SQLite's reason.
  static Result<std::unique_ptr<SqliteJournal>> Open(const std::string& path);
  ~SqliteJournal() override;
  SqliteJournal(const SqliteJournal&) = delete;
  SqliteJournal& operator=(const SqliteJournal&) = delete;

  Result<uint64_t> Append(std::span<const std::string> payloads) override;
  Status Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const override;
  uint64_t last_seq() const override { return last_seq_; }

 private:
  SqliteJournal(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  Status Exec(const char* sql);
  Status Error(std::string_view what) const;

  std::string path_;
  sqlite3* db_;                     // owned; closed by the destructor
  sqlite3_stmt* insert_ = nullptr;  // owned: the append, prepared on first use
  uint64_t last_seq_ = 0;
};

}  // namespace joule::store
