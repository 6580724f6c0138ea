#include "control/journal_records.h"

#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/journal_json.h"
#include "store/journal.h"

namespace joule::control {
namespace {

using nlohmann::json;

constexpr int kRecordVersion = 1;
constexpr const char* kTypeNames[] = {"submit", "cancel", "health", "tenant", "step", "finish", "energy", "cluster"};
constexpr int kTypes = 8;

}  // namespace

// Built by concatenation: the event and the spec are JSON texts already.
std::string EncodeRecord(const JournalRecord& r) {
  using Type = JournalRecord::Type;
  std::string out =
      fmt::format(R"({{"v":{},"type":"{}","at":{})", kRecordVersion, kTypeNames[static_cast<int>(r.type)], r.at);
  if (!r.who.empty()) out += R"(,"who":)" + json(r.who).dump();
  if (r.event) out += R"(,"event":)" + io::EncodeEvent({r.at, *r.event});
  if (r.type == Type::kSubmit) {
    out += R"(,"spec":)" + io::EncodeJobSpec(r.spec);
    if (!r.key.empty()) out += R"(,"key":)" + json(r.key).dump();
  }
  if (r.type == Type::kStep) out += fmt::format(R"(,"through":{})", r.through);
  if (r.type == Type::kCluster) out += R"(,"cluster":)" + json(r.key).dump();
  if (r.type == Type::kEnergy) {
    out += fmt::format(R"(,"job":{},"run":{},"rank":{},"joules":{})", r.job, r.run, r.rank, json(r.joules).dump());
  }
  out += '}';
  return out;
}

Result<JournalRecord> DecodeRecord(std::string_view payload) {
  const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("type") || !j.contains("at") || !j["at"].is_number_integer() ||
      !j["type"].is_string() || j.value("v", 0) != kRecordVersion) {
    return Status::Error("not a version-1 record (v, type and at are required)");
  }
  JournalRecord r;
  const std::string type = j["type"].get<std::string>();
  r.at = j["at"].get<TimeMs>();
  if (j.contains("who")) {
    if (!j["who"].is_string()) return Status::Error("who: must be a string");
    r.who = j["who"].get<std::string>();
  }
  int t = 0;
  while (t < kTypes && type != kTypeNames[t]) ++t;
  if (t == kTypes) return Status::Error(fmt::format("type: unknown type '{}'", type));
  r.type = static_cast<JournalRecord::Type>(t);
  if (r.type == JournalRecord::Type::kStep) {
    if (!j.contains("through") || !j["through"].is_number_unsigned()) return Status::Error("through: is required");
    r.through = j["through"].get<uint64_t>();
    return r;
  }
  if (r.type == JournalRecord::Type::kCluster) {
    if (!j.contains("cluster") || !j["cluster"].is_string() || j["cluster"].get<std::string>().empty()) {
      return Status::Error("cluster: is required");
    }
    r.key = j["cluster"].get<std::string>();
    return r;
  }
  if (r.type == JournalRecord::Type::kEnergy) {
    for (const char* field : {"job", "run", "rank"}) {
      if (!j.contains(field) || !j[field].is_number_unsigned())
        return Status::Error(fmt::format("{}: is required", field));
    }
    if (!j.contains("joules") || !j["joules"].is_number() || j["joules"].get<double>() < 0) {
      return Status::Error("joules: must be a number >= 0");
    }
    r.job = j["job"].get<JobId>();
    r.run = j["run"].get<uint32_t>();
    r.rank = j["rank"].get<uint32_t>();
    r.joules = j["joules"].get<double>();
    return r;
  }
  if (!j.contains("event")) return Status::Error("event: is required");
  Result<io::TimedEvent> event = io::DecodeEvent(j["event"].dump());
  if (!event.ok()) return event.status();
  r.event = std::move(event->event);
  if (r.type == JournalRecord::Type::kSubmit) {
    if (!j.contains("spec")) return Status::Error("spec: is required");
    Result<io::SubmitSpec> spec = io::ParseJobSpec(j["spec"].dump(), "spec");
    if (!spec.ok()) return spec.status();
    r.spec = std::move(*spec);
    if (j.contains("key")) {
      if (!j["key"].is_string()) return Status::Error("key: must be a string");
      r.key = j["key"].get<std::string>();
    }
  }
  return r;
}

Status ReplaySteps(const std::string& path, const std::function<void(TimeMs, std::vector<Event>)>& step) {
  if (!std::filesystem::exists(path)) return Status::Error(fmt::format("{}: no such journal", path));
  // A reader: a running server may hold the journal meanwhile.
  Result<std::unique_ptr<store::SqliteJournal>> journal = store::SqliteJournal::Open(path, store::OpenMode::kReader);
  if (!journal.ok()) return journal.status();
  std::vector<std::pair<uint64_t, Event>> inputs;
  std::optional<std::string> error;
  uint64_t last = 0;
  Status read = (*journal)->Read(0, [&](const store::JournalEntry& entry) {
    if (error) return;
    if (entry.seq != ++last) {
      error = fmt::format(
          "{}: records 1 to {} were compacted into a snapshot (compact_journal: true): the history "
          "before it cannot be replayed",
          path, entry.seq - 1);
      return;
    }
    Result<JournalRecord> r = DecodeRecord(entry.payload);
    if (!r.ok()) {
      error = fmt::format("{}: journal record {}: {}", path, entry.seq, r.status().message());
      return;
    }
    if (r->type == JournalRecord::Type::kEnergy || r->type == JournalRecord::Type::kCluster) return;  // no engine input
    if (r->type != JournalRecord::Type::kStep) {
      inputs.emplace_back(entry.seq, std::move(*r->event));
      return;
    }
    size_t n = 0;
    while (n < inputs.size() && inputs[n].first <= r->through) ++n;
    std::vector<Event> events;
    events.reserve(n);
    for (size_t i = 0; i < n; ++i) events.push_back(std::move(inputs[i].second));
    inputs.erase(inputs.begin(), inputs.begin() + static_cast<std::ptrdiff_t>(n));
    step(r->at, std::move(events));
  });
  if (!read.ok()) return read;
  if (error) return Status::Error(*error);
  return Status::Ok();
}

}  // namespace joule::control
