// What the control plane keeps of the past, compactly: jobs retired from the view after
// `job_retention` (docs/decisions/0010-history.md) and the audit log. Both only grow, a row at a
// time, so they are kept as encoded rows (io/bytes.h) in chunks of about 1 MiB that never change
// once full: the store keeps each full chunk once (store/journal.h), a snapshot holds only the
// last, partial one, and a restart reads them back without parsing JSON. Chunk boundaries follow
// from the rows alone, so every replica that applied the same records holds the same chunks.
// Thread-safety: not thread-safe; the control plane's lock guards its logs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace joule::control {

struct JobInfo;
struct AuditEntry;

// An append-only list of byte rows.
class RowLog {
 public:
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  explicit RowLog(size_t chunk_bytes = kChunkBytes) : chunk_bytes_(chunk_bytes) {}
  void Append(std::string_view row);
  size_t size() const { return index_.size(); }
  std::string_view row(size_t i) const;
  // The full chunks (rows, length-prefixed) and the partial last one.
  size_t full_chunks() const { return full_.size(); }
  const std::shared_ptr<const std::string>& chunk(size_t i) const { return full_[i]; }
  std::string_view tail() const { return tail_; }
  // The log those chunks make; errors name the chunk at fault.
  static Result<RowLog> FromChunks(std::vector<std::string> full, std::string_view tail,
                                   size_t chunk_bytes = kChunkBytes);

 private:
  // Indexes the rows of `bytes`, held as chunk `chunk`; false when they are cut short.
  bool IndexRows(std::string_view bytes, uint32_t chunk);

  size_t chunk_bytes_;
  // Full chunks never change again: a copy of the log (a snapshot's, taken under the view's lock
  // and encoded outside it) shares them; hence shared_ptr. The last chunk is the one appended to.
  std::vector<std::shared_ptr<const std::string>> full_;
  std::string tail_;
  struct Where {
    uint32_t chunk;   // full_.size() while in tail_
    uint32_t offset;  // of the row's length
  };
  std::vector<Where> index_;
};

// A retired job's row: the fields a job's listing shows (as `sacct` keeps them after slurmctld
// forgets a job), without its command, environment, script or event history.
std::string EncodeRetired(const JobInfo& job);
// The row as a job (JobInfo::retired set); errors name what is malformed.
Result<JobInfo> DecodeRetired(std::string_view row);
// Its first two fields, cheaply: the job's id and state.
Result<std::pair<uint64_t, int>> RetiredIdState(std::string_view row);

std::string EncodeAudit(const AuditEntry& entry);
Result<AuditEntry> DecodeAudit(std::string_view row);

}  // namespace joule::control
