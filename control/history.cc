#include "control/history.h"

#include <fmt/format.h>

#include "control/control_plane.h"
#include "io/bytes.h"

namespace joule::control {

void RowLog::Append(std::string_view row) {
  std::string prefix;
  io::ByteWriter(prefix).U64(row.size());
  if (!tail_.empty() && tail_.size() + prefix.size() + row.size() > chunk_bytes_) {
    full_.push_back(std::make_shared<const std::string>(std::move(tail_)));
    tail_ = std::string();
  }
  index_.push_back({static_cast<uint32_t>(full_.size()), static_cast<uint32_t>(tail_.size())});
  tail_ += prefix;
  tail_ += row;
}

std::string_view RowLog::row(size_t i) const {
  const Where w = index_[i];
  const std::string_view chunk = w.chunk < full_.size() ? std::string_view(*full_[w.chunk]) : std::string_view(tail_);
  io::ByteReader in(chunk.substr(w.offset));
  return in.Str();  // written by Append: well formed
}

bool RowLog::IndexRows(std::string_view bytes, uint32_t chunk) {
  io::ByteReader in(bytes);
  while (!in.done()) {
    const size_t offset = in.offset();
    (void)in.Str();
    if (!in.ok()) return false;
    index_.push_back({chunk, static_cast<uint32_t>(offset)});
  }
  return true;
}

Result<RowLog> RowLog::FromChunks(std::vector<std::string> full, std::string_view tail, size_t chunk_bytes) {
  RowLog log(chunk_bytes);
  for (std::string& chunk : full) {
    const auto index = static_cast<uint32_t>(log.full_.size());
    if (chunk.empty() || !log.IndexRows(chunk, index)) {
      return Status::Error(fmt::format("chunk {} is empty or cut short", index));
    }
    log.full_.push_back(std::make_shared<const std::string>(std::move(chunk)));
  }
  if (!log.IndexRows(tail, static_cast<uint32_t>(log.full_.size())))
    return Status::Error("the last chunk is cut short");
  log.tail_ = tail;
  return log;
}

namespace {

constexpr uint64_t kRetiredVersion = 1;

}  // namespace

std::string EncodeRetired(const JobInfo& j) {
  std::string row;
  io::ByteWriter w(row);
  w.U64(j.id);
  w.Enum(j.state);
  w.U64(kRetiredVersion);
  w.U64(j.tenant.value());
  w.I64(j.priority);
  w.Str(j.end_reason);
  w.I64(j.submitted);
  w.I64(j.started);
  w.I64(j.ended);
  w.U64(j.restarts);
  w.U64(j.run);
  w.Str(j.submitted_by);
  w.F64(j.energy_joules());
  const io::SubmitSpec& s = j.spec;
  w.Str(s.name);
  w.Str(s.queue.value_or(""));
  w.Str(s.priority_class.value_or(""));
  w.U64(s.workers);
  w.U64(s.gpus);
  w.OptStr(s.gpu_type);
  w.I64(s.cpu);
  w.I64(s.memory);
  w.I64(s.time_limit.value_or(0));
  return row;
}

Result<std::pair<uint64_t, int>> RetiredIdState(std::string_view row) {
  io::ByteReader in(row);
  const uint64_t id = in.U64();
  const JobState state = in.Enum(JobState::kRejected);
  if (!in.ok()) return Status::Error("a retired job's row is malformed");
  return std::pair<uint64_t, int>{id, static_cast<int>(state)};
}

Result<JobInfo> DecodeRetired(std::string_view row) {
  io::ByteReader in(row);
  JobInfo j;
  j.retired = true;
  j.id = in.U64();
  j.state = in.Enum(JobState::kRejected);
  if (in.U64() != kRetiredVersion || !in.ok()) {
    return Status::Error(fmt::format("the retired row of job {} is malformed or of another version", j.id));
  }
  j.tenant = TenantId(in.Uint<uint32_t>());
  j.priority = static_cast<int32_t>(in.I64());
  j.end_reason = in.Str();
  j.submitted = in.I64();
  j.started = in.I64();
  j.ended = in.I64();
  j.restarts = in.Uint<uint32_t>();
  j.run = in.Uint<uint32_t>();
  j.submitted_by = in.Str();
  if (const double energy = in.F64(); energy != 0) j.energy_final[{0, 0}] = energy;
  io::SubmitSpec& spec = j.spec;
  spec.name = in.Str();
  spec.queue = std::string(in.Str());
  spec.priority_class = std::string(in.Str());
  spec.workers = in.Uint<uint32_t>();
  spec.gpus = in.Uint<uint32_t>();
  spec.gpu_type = in.OptStr();
  spec.cpu = in.I64();
  spec.memory = in.I64();
  spec.time_limit = in.I64();
  if (!in.done()) return Status::Error(fmt::format("the retired row of job {} is malformed", j.id));
  return j;
}

std::string EncodeAudit(const AuditEntry& e) {
  std::string row;
  io::ByteWriter w(row);
  w.U64(e.seq);
  w.I64(e.at);
  w.Str(e.who);
  w.Str(e.action);
  w.Str(e.target);
  w.Str(e.detail);
  return row;
}

Result<AuditEntry> DecodeAudit(std::string_view row) {
  io::ByteReader in(row);
  AuditEntry e;
  e.seq = in.U64();
  e.at = in.I64();
  e.who = in.Str();
  e.action = in.Str();
  e.target = in.Str();
  e.detail = in.Str();
  if (!in.done()) return Status::Error("an audit row is malformed");
  return e;
}

}  // namespace joule::control
