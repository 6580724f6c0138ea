#include "store/journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/check.h"

namespace joule::store {
namespace {

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { ok_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK; }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return ok_; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
};

bool HasTable(sqlite3* db, const char* name) {
  Statement s(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  if (!s.ok()) return false;
  sqlite3_bind_text(s.get(), 1, name, -1, SQLITE_STATIC);
  return sqlite3_step(s.get()) == SQLITE_ROW;
}

// Takes the exclusive lock of a writer on `path`.lock and writes who holds it there. The kernel
// releases the lock when the process ends however it ends (kill -9 included), so a stale file
// never blocks a restart; a live holder is named in the error.
Result<int> LockJournal(const std::string& path) {
  const std::string lock_path = path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Error(
        fmt::format("{}: cannot open the journal: its lock {}: {}", path, lock_path, std::strerror(errno)));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[256] = {};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return Status::Error(fmt::format("{}: cannot lock {}: {}", path, lock_path, std::strerror(error)));
    }
    std::string who(holder, n > 0 ? static_cast<size_t>(n) : 0);
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    return Status::Error(fmt::format(
        "{}: the journal is held by another joule server ({}); one server writes a state: stop that one, or give "
        "this one another state",
        path, who.empty() ? "holder unknown" : who));
  }
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string who = fmt::format("pid {} on {}\n", ::getpid(), host);
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) != static_cast<ssize_t>(who.size())) {
    // The lock is held all the same; only the holder's name is missing for whoever is refused.
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<SqliteJournal>> SqliteJournal::Open(const std::string& path, OpenMode mode) {
  int lock_fd = -1;
  if (mode == OpenMode::kWriter) {
    Result<int> fd = LockJournal(path);
    if (!fd.ok()) return fd.status();
    lock_fd = *fd;
  }
  std::unique_ptr<SqliteJournal> journal(new SqliteJournal(path, mode, lock_fd));
  if (Status s = journal->Connect(); !s.ok()) return s;
  return journal;
}

Status SqliteJournal::Connect() {
  const int flags = mode_ == OpenMode::kWriter ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    Disconnect();
    return Status::Error(fmt::format("{}: cannot open the journal: {}", path_, why));
  }
  // WAL with a full sync at every commit: an acknowledged append survives a crash of the process
  // and of the machine.
  if (mode_ == OpenMode::kWriter) {
    for (const char* sql : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                            "CREATE TABLE IF NOT EXISTS journal (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
                            "CREATE TABLE IF NOT EXISTS snapshot (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)",
                            "CREATE TABLE IF NOT EXISTS chunk (log TEXT NOT NULL, idx INTEGER NOT NULL, "
                            "bytes BLOB NOT NULL, PRIMARY KEY (log, idx))",
                            // A snapshot kept in pieces: its row's body is empty.
                            "CREATE TABLE IF NOT EXISTS snapshot_piece (seq INTEGER NOT NULL, idx INTEGER NOT NULL, "
                            "bytes BLOB NOT NULL, PRIMARY KEY (seq, idx))"}) {
      if (Status s = Exec(sql); !s.ok()) return s;
    }
  }
  // The last record, or the newest snapshot's when compaction left no record after it.
  Statement last(
      db_, mode_ == OpenMode::kWriter || HasTable(db_, "snapshot")
               ? "SELECT MAX(COALESCE((SELECT MAX(seq) FROM journal), 0), COALESCE((SELECT MAX(seq) FROM snapshot), 0))"
               : "SELECT COALESCE(MAX(seq), 0) FROM journal");
  if (!last.ok() || sqlite3_step(last.get()) != SQLITE_ROW) return Error("reading the last record");
  last_seq_ = static_cast<uint64_t>(sqlite3_column_int64(last.get(), 0));
  return Status::Ok();
}

void SqliteJournal::Disconnect() {
  sqlite3_finalize(insert_);
  insert_ = nullptr;
  sqlite3_close(db_);
  db_ = nullptr;
}

Status SqliteJournal::Reopen() {
  Disconnect();
  return Connect();
}

SqliteJournal::~SqliteJournal() {
  Disconnect();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status SqliteJournal::Finish(bool ok, std::string_view what) {
  if (!ok) {
    Status error = Error(what);
    (void)Exec("ROLLBACK");
    return error;
  }
  if (Status s = Exec("COMMIT"); !s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  return Status::Ok();
}

Status SqliteJournal::Error(std::string_view what) const {
  return Status::Error(fmt::format("{}: {}: {}", path_, what, sqlite3_errmsg(db_)));
}

Status SqliteJournal::Exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return Status::Ok();
  std::string why = message ? message : "unknown error";
  sqlite3_free(message);
  return Status::Error(fmt::format("{}: {}: {}", path_, sql, why));
}

Result<uint64_t> SqliteJournal::Append(std::span<const std::string> payloads) {
  JOULE_CHECK(!payloads.empty());
  JOULE_CHECK(mode_ == OpenMode::kWriter);
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  // Prepared once, kept for the journal's life: a commit is the hot path of every change.
  if (insert_ == nullptr && sqlite3_prepare_v3(db_, "INSERT INTO journal (seq, payload) VALUES (?, ?)", -1,
                                               SQLITE_PREPARE_PERSISTENT, &insert_, nullptr) != SQLITE_OK) {
    Status error = Error("preparing the append");
    (void)Exec("ROLLBACK");
    return error;
  }
  uint64_t seq = last_seq_;
  bool ok = true;
  for (size_t i = 0; ok && i < payloads.size(); ++i) {
    sqlite3_reset(insert_);
    sqlite3_bind_int64(insert_, 1, static_cast<sqlite3_int64>(++seq));
    sqlite3_bind_blob(insert_, 2, payloads[i].data(), static_cast<int>(payloads[i].size()), SQLITE_STATIC);
    ok = sqlite3_step(insert_) == SQLITE_DONE;
  }
  sqlite3_reset(insert_);
  if (Status s = Finish(ok, "appending"); !s.ok()) return s;
  last_seq_ = seq;
  return seq;
}

Status SqliteJournal::Read(uint64_t after, const std::function<void(const JournalEntry&)>& visit) const {
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  Statement select(db_, "SELECT seq, payload FROM journal WHERE seq > ? ORDER BY seq");
  if (!select.ok()) return Error("reading");
  sqlite3_bind_int64(select.get(), 1, static_cast<sqlite3_int64>(after));
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    JournalEntry entry;
    entry.seq = static_cast<uint64_t>(sqlite3_column_int64(select.get(), 0));
    const auto* bytes = static_cast<const char*>(sqlite3_column_blob(select.get(), 1));
    entry.payload.assign(bytes ? bytes : "", static_cast<size_t>(sqlite3_column_bytes(select.get(), 1)));
    visit(entry);
  }
  return rc == SQLITE_DONE ? Status::Ok() : Error("reading");
}

Result<std::optional<Snapshot>> SqliteJournal::LoadSnapshot() const {
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  if (!HasTable(db_, "snapshot")) return std::optional<Snapshot>();
  Statement select(db_, "SELECT seq, body FROM snapshot ORDER BY seq DESC LIMIT 1");
  if (!select.ok()) return Error("reading the snapshot");
  const int rc = sqlite3_step(select.get());
  if (rc == SQLITE_DONE) return std::optional<Snapshot>();
  if (rc != SQLITE_ROW) return Error("reading the snapshot");
  Snapshot out;
  out.seq = static_cast<uint64_t>(sqlite3_column_int64(select.get(), 0));
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(select.get(), 1));
  out.body.assign(bytes ? bytes : "", static_cast<size_t>(sqlite3_column_bytes(select.get(), 1)));
  if (out.body.empty() && HasTable(db_, "snapshot_piece")) {
    // Kept in pieces; a piece missing or out of place shows in the snapshot's checksum.
    Statement pieces(db_, "SELECT bytes FROM snapshot_piece WHERE seq = ? ORDER BY idx");
    if (!pieces.ok()) return Error("reading the snapshot's pieces");
    sqlite3_bind_int64(pieces.get(), 1, static_cast<sqlite3_int64>(out.seq));
    int rc = SQLITE_ROW;
    while ((rc = sqlite3_step(pieces.get())) == SQLITE_ROW) {
      const auto* piece = static_cast<const char*>(sqlite3_column_blob(pieces.get(), 0));
      out.body.append(piece ? piece : "", static_cast<size_t>(sqlite3_column_bytes(pieces.get(), 0)));
    }
    if (rc != SQLITE_DONE) return Error("reading the snapshot's pieces");
  }
  return std::optional<Snapshot>(std::move(out));
}

Status SqliteJournal::SaveSnapshot(uint64_t seq, std::string_view body, bool compact) {
  JOULE_CHECK(mode_ == OpenMode::kWriter && seq <= last_seq_);
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  if (Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  bool ok = true;
  {
    Statement insert(db_, "INSERT OR REPLACE INTO snapshot (seq, body) VALUES (?, ?)");
    Statement older(db_, "DELETE FROM snapshot WHERE seq < ?");
    // Older snapshots' pieces, and those of one never finished (a crash between its pieces): at
    // once after a whole body; one by one after pieces (DropOlderSnapshotPiece).
    Statement older_pieces(db_, "DELETE FROM snapshot_piece WHERE seq < ?");
    Statement records(db_, "DELETE FROM journal WHERE seq <= ?");
    ok = insert.ok() && older.ok() && older_pieces.ok() && records.ok();
    if (ok) {
      sqlite3_bind_int64(insert.get(), 1, static_cast<sqlite3_int64>(seq));
      // An empty body (kept in pieces) is an empty blob, not NULL: a null pointer would bind NULL.
      sqlite3_bind_blob(insert.get(), 2, body.empty() ? "" : body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
      sqlite3_bind_int64(older.get(), 1, static_cast<sqlite3_int64>(seq));
      sqlite3_bind_int64(older_pieces.get(), 1, static_cast<sqlite3_int64>(seq));
      sqlite3_bind_int64(records.get(), 1, static_cast<sqlite3_int64>(seq));
      ok = sqlite3_step(insert.get()) == SQLITE_DONE && sqlite3_step(older.get()) == SQLITE_DONE &&
           (body.empty() || sqlite3_step(older_pieces.get()) == SQLITE_DONE) &&
           (!compact || sqlite3_step(records.get()) == SQLITE_DONE);
    }
  }
  return Finish(ok, "saving a snapshot");
}

Status SqliteJournal::SaveSnapshotPiece(uint64_t seq, uint32_t index, std::string_view bytes) {
  JOULE_CHECK(mode_ == OpenMode::kWriter);
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  Statement insert(db_, "INSERT OR REPLACE INTO snapshot_piece (seq, idx, bytes) VALUES (?, ?, ?)");
  if (!insert.ok()) return Error("saving a snapshot's piece");
  sqlite3_bind_int64(insert.get(), 1, static_cast<sqlite3_int64>(seq));
  sqlite3_bind_int64(insert.get(), 2, index);
  sqlite3_bind_blob(insert.get(), 3, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
  return sqlite3_step(insert.get()) == SQLITE_DONE ? Status::Ok() : Error("saving a snapshot's piece");
}

Result<bool> SqliteJournal::DropOlderSnapshotPiece(uint64_t seq) {
  JOULE_CHECK(mode_ == OpenMode::kWriter);
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  Statement drop(db_,
                 "DELETE FROM snapshot_piece WHERE rowid = (SELECT rowid FROM snapshot_piece WHERE seq < ? LIMIT 1)");
  if (!drop.ok()) return Error("dropping an older snapshot's piece");
  sqlite3_bind_int64(drop.get(), 1, static_cast<sqlite3_int64>(seq));
  if (sqlite3_step(drop.get()) != SQLITE_DONE) return Error("dropping an older snapshot's piece");
  return sqlite3_changes(db_) > 0;
}

Status SqliteJournal::SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) {
  JOULE_CHECK(mode_ == OpenMode::kWriter);
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  Statement insert(db_, "INSERT OR REPLACE INTO chunk (log, idx, bytes) VALUES (?, ?, ?)");
  if (!insert.ok()) return Error("saving a history chunk");
  sqlite3_bind_text(insert.get(), 1, log.data(), static_cast<int>(log.size()), SQLITE_STATIC);
  sqlite3_bind_int64(insert.get(), 2, static_cast<sqlite3_int64>(index));
  sqlite3_bind_blob(insert.get(), 3, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC);
  return sqlite3_step(insert.get()) == SQLITE_DONE ? Status::Ok() : Error("saving a history chunk");
}

Result<std::vector<std::string>> SqliteJournal::LoadChunks(std::string_view log, uint64_t count) const {
  if (db_ == nullptr) return Status::Error(fmt::format("{}: the journal is closed after a failure", path_));
  std::vector<std::string> chunks;
  if (count == 0) return chunks;
  if (!HasTable(db_, "chunk")) return Status::Error(fmt::format("{}: history chunk {} 0 is missing", path_, log));
  Statement select(db_, "SELECT idx, bytes FROM chunk WHERE log = ? AND idx < ? ORDER BY idx");
  if (!select.ok()) return Error("reading the history");
  sqlite3_bind_text(select.get(), 1, log.data(), static_cast<int>(log.size()), SQLITE_STATIC);
  sqlite3_bind_int64(select.get(), 2, static_cast<sqlite3_int64>(count));
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(select.get())) == SQLITE_ROW) {
    if (static_cast<uint64_t>(sqlite3_column_int64(select.get(), 0)) != chunks.size()) break;
    const auto* bytes = static_cast<const char*>(sqlite3_column_blob(select.get(), 1));
    chunks.emplace_back(bytes ? bytes : "", static_cast<size_t>(sqlite3_column_bytes(select.get(), 1)));
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Error("reading the history");
  if (chunks.size() != count) {
    return Status::Error(fmt::format("{}: history chunk {} {} is missing", path_, log, chunks.size()));
  }
  return chunks;
}

}  // namespace joule::store
