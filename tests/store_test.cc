// The control plane's journal: SQLite appends that survive kill -9 of the writer, and engine
// events that round-trip through their journal encoding and replay into the same decisions.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/journal_json.h"
#include "store/etcd_journal.h"
#include "store/journal.h"
#include "tests/test_engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

std::string FreshPath(const std::string& name) {
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::vector<store::JournalEntry> ReadAll(const store::Journal& journal) {
  std::vector<store::JournalEntry> all;
  EXPECT_TRUE(journal.Read(0, [&](const store::JournalEntry& e) { all.push_back(e); }).ok());
  return all;
}

TEST(JournalTest, AppendsInOrderAndReopens) {
  const std::string path = FreshPath("journal.db");
  {
    Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
    ASSERT_TRUE(j.ok()) << j.status().message();
    const std::vector<std::string> first = {"a", std::string("b\0c", 3)};
    Result<uint64_t> seq = (*j)->Append(first);
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, 2u);
    EXPECT_EQ(*(*j)->Append(std::vector<std::string>{"d"}), 3u);
  }
  Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->last_seq(), 3u);
  std::vector<store::JournalEntry> all = ReadAll(**j);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[1].payload, std::string("b\0c", 3));  // bytes, not C strings
  EXPECT_EQ(all[2].seq, 3u);
  std::vector<uint64_t> later;
  ASSERT_TRUE((*j)->Read(2, [&](const store::JournalEntry& e) { later.push_back(e.seq); }).ok());
  EXPECT_EQ(later, std::vector<uint64_t>{3});
  Result<std::unique_ptr<store::SqliteJournal>> bad = store::SqliteJournal::Open("/nonexistent-dir/x/journal.db");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/nonexistent-dir/x/journal.db: cannot open the journal"), std::string::npos);
}

// A writer process appends batches and reports each acknowledged sequence number on a pipe; it is
// killed with SIGKILL mid-stream. Every acknowledged record must be there after reopening, in
// order, once, with nothing after a gap.
TEST(JournalTest, SnapshotsReplaceOlderOnesAndCompactWhatTheyCover) {
  const std::string path = FreshPath("journal.db");
  Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
  ASSERT_TRUE(j.ok());
  EXPECT_FALSE((*j)->LoadSnapshot()->has_value());
  ASSERT_TRUE((*j)->Append(std::vector<std::string>{"a", "b", "c"}).ok());
  ASSERT_TRUE((*j)->SaveSnapshot(2, "state at 2", /*compact=*/false).ok());
  EXPECT_EQ(ReadAll(**j).size(), 3u);  // kept: not compacted
  ASSERT_TRUE((*j)->SaveSnapshot(3, std::string("state\0at 3", 10), /*compact=*/true).ok());
  std::optional<store::Snapshot> newest = *(*j)->LoadSnapshot();
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->seq, 3u);
  EXPECT_EQ(newest->body, std::string("state\0at 3", 10));
  EXPECT_TRUE(ReadAll(**j).empty());
  j->reset();
  // Every record compacted: the sequence goes on from the snapshot's.
  Result<std::unique_ptr<store::SqliteJournal>> again = store::SqliteJournal::Open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->last_seq(), 3u);
  EXPECT_EQ(*(*again)->Append(std::vector<std::string>{"d"}), 4u);
  Result<std::unique_ptr<store::SqliteJournal>> reader = store::SqliteJournal::Open(path, store::OpenMode::kReader);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*(*reader)->LoadSnapshot())->seq, 3u);
}

// A snapshot kept in pieces between appends: read back whole; a later one never finished (a
// crash between its pieces) leaves the finished one in place; once the next is finished, the
// older pieces are dropped one by one.
TEST(JournalTest, SnapshotsKeptInPiecesBetweenAppends) {
  const std::string path = FreshPath("pieces.db");
  Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
  ASSERT_TRUE(j.ok());
  ASSERT_TRUE((*j)->snapshot_pieces());
  ASSERT_TRUE((*j)->Append(std::vector<std::string>{"a", "b"}).ok());
  ASSERT_TRUE((*j)->SaveSnapshotPiece(2, 0, std::string("one\0", 4)).ok());
  ASSERT_TRUE((*j)->Append(std::vector<std::string>{"c"}).ok());  // an append between pieces
  ASSERT_TRUE((*j)->SaveSnapshotPiece(2, 1, "two").ok());
  EXPECT_FALSE((*j)->LoadSnapshot()->has_value());  // not a snapshot until finished
  ASSERT_TRUE((*j)->SaveSnapshot(2, "", /*compact=*/true).ok());
  EXPECT_EQ((*(*j)->LoadSnapshot())->body, std::string("one\0two", 7));
  EXPECT_EQ(ReadAll(**j).size(), 1u);  // record 3 stays
  ASSERT_TRUE((*j)->SaveSnapshotPiece(3, 0, "half of a later one").ok());
  j->reset();
  Result<std::unique_ptr<store::SqliteJournal>> again = store::SqliteJournal::Open(path);
  ASSERT_TRUE(again.ok());
  std::optional<store::Snapshot> kept = *(*again)->LoadSnapshot();
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->seq, 2u);
  EXPECT_EQ(kept->body, std::string("one\0two", 7));
  ASSERT_TRUE((*again)->Append(std::vector<std::string>{"d"}).ok());
  ASSERT_TRUE((*again)->SaveSnapshotPiece(4, 0, "four").ok());
  ASSERT_TRUE((*again)->SaveSnapshot(4, "", /*compact=*/false).ok());
  EXPECT_EQ((*(*again)->LoadSnapshot())->body, "four");
  // The older pieces (two of the finished snapshot, one of the unfinished) go one a call.
  for (int left = 3; left > 0; --left) {
    Result<bool> more = (*again)->DropOlderSnapshotPiece(4);
    ASSERT_TRUE(more.ok());
    EXPECT_TRUE(*more) << left;
    EXPECT_EQ((*(*again)->LoadSnapshot())->body, "four");
  }
  EXPECT_FALSE(*(*again)->DropOlderSnapshotPiece(4));
  Result<std::unique_ptr<store::SqliteJournal>> reader = store::SqliteJournal::Open(path, store::OpenMode::kReader);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*(*reader)->LoadSnapshot())->body, "four");
}

// The history's chunks (control/history.h) on one store: written once each, read back in order,
// written again with the same bytes harmlessly, a missing one named.
void ChunksRoundTrip(store::Journal& journal) {
  std::vector<std::string> chunks;
  for (int i = 0; i < 3; ++i) chunks.push_back(std::string(size_t{1} << 20, static_cast<char>('x' + i)) + '\0');
  for (size_t i = 0; i < chunks.size(); ++i) ASSERT_TRUE(journal.SaveChunk("retired", i, chunks[i]).ok());
  ASSERT_TRUE(journal.SaveChunk("audit", 0, "a").ok());
  ASSERT_TRUE(journal.SaveChunk("retired", 1, chunks[1]).ok());  // again, as a new leader would
  Result<std::vector<std::string>> back = journal.LoadChunks("retired", 3);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, chunks);
  Result<std::vector<std::string>> two = journal.LoadChunks("retired", 2);
  ASSERT_TRUE(two.ok()) << two.status().message();
  EXPECT_EQ(two->size(), 2u);
  EXPECT_EQ(journal.LoadChunks("audit", 1)->at(0), "a");
  EXPECT_TRUE(journal.LoadChunks("audit", 0)->empty());
  Result<std::vector<std::string>> missing = journal.LoadChunks("retired", 4);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("history chunk retired 3 is missing"), std::string::npos)
      << missing.status().message();
}

TEST(JournalTest, HistoryChunksOnSqlite) {
  const std::string path = FreshPath("state.db");
  Result<std::unique_ptr<store::SqliteJournal>> journal = store::SqliteJournal::Open(path);
  ASSERT_TRUE(journal.ok());
  ChunksRoundTrip(**journal);
  // A reader sees them; a journal that never kept one says which is missing.
  Result<std::unique_ptr<store::SqliteJournal>> reader = store::SqliteJournal::Open(path, store::OpenMode::kReader);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->LoadChunks("retired", 3)->size(), 3u);
  Result<std::unique_ptr<store::SqliteJournal>> other = store::SqliteJournal::Open(FreshPath("other.db"));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE((*other)->LoadChunks("audit", 1).ok());
}

uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size), 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// The same on a real etcd (Debian's etcd-server, which scripts/install-deps.sh installs): one
// member on loopback, started and stopped by the test.
TEST(JournalTest, HistoryChunksOnEtcd) {
  if (std::system("command -v etcd > /dev/null") != 0) GTEST_SKIP() << "etcd is not installed";
  const std::string dir = FreshPath("etcd");
  const uint16_t client = FreePort(), peer = FreePort();
  const std::string client_url = "http://127.0.0.1:" + std::to_string(client);
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
  const pid_t etcd = fork();
  ASSERT_GE(etcd, 0);
  if (etcd == 0) {
    const std::string log = dir + ".log";
    (void)freopen(log.c_str(), "w", stderr);
    execlp("etcd", "etcd", "--data-dir", dir.c_str(), "--listen-client-urls", client_url.c_str(),
           "--advertise-client-urls", client_url.c_str(), "--listen-peer-urls", peer_url.c_str(),
           "--initial-advertise-peer-urls", peer_url.c_str(), "--initial-cluster", ("default=" + peer_url).c_str(),
           static_cast<char*>(nullptr));
    _exit(127);
  }
  Result<std::unique_ptr<store::EtcdJournal>> journal = Status::Error("not yet");
  for (int i = 0; i < 100 && !journal.ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    journal = store::EtcdJournal::Open({.endpoints = {client_url}, .prefix = "/test"});
  }
  if (journal.ok()) ChunksRoundTrip(**journal);
  EXPECT_TRUE(journal.ok()) << journal.status().message();
  journal = Status::Error("closed");
  kill(etcd, SIGTERM);
  waitpid(etcd, nullptr, 0);
}

TEST(JournalTest, OneWriterAtATimeNamingTheHolder) {
  const std::string path = FreshPath("journal.db");
  Result<std::unique_ptr<store::SqliteJournal>> writer = store::SqliteJournal::Open(path);
  ASSERT_TRUE(writer.ok()) << writer.status().message();
  ASSERT_TRUE((*writer)->Append(std::vector<std::string>{"a"}).ok());
  Result<std::unique_ptr<store::SqliteJournal>> second = store::SqliteJournal::Open(path);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(path + ": the journal is held by another joule server (pid " +
                                           std::to_string(getpid()) + " on "),
            std::string::npos)
      << second.status().message();
  // Readers (`joule schedule --journal`) read beside the writer.
  Result<std::unique_ptr<store::SqliteJournal>> reader = store::SqliteJournal::Open(path, store::OpenMode::kReader);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  EXPECT_EQ(ReadAll(**reader).size(), 1u);
  // A writer killed with SIGKILL leaves the lock file, not the lock.
  writer->reset();
  int held[2];
  ASSERT_EQ(pipe(held), 0);
  const pid_t child = fork();
  if (child == 0) {
    Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
    const char ok = j.ok() ? '1' : '0';
    if (write(held[1], &ok, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(held[0], &ok, 1), 1);
  ASSERT_EQ(ok, '1');
  Result<std::unique_ptr<store::SqliteJournal>> blocked = store::SqliteJournal::Open(path);
  ASSERT_FALSE(blocked.ok());
  EXPECT_NE(blocked.status().message().find("(pid " + std::to_string(child) + " on "), std::string::npos);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  Result<std::unique_ptr<store::SqliteJournal>> after = store::SqliteJournal::Open(path);
  ASSERT_TRUE(after.ok()) << after.status().message();
  EXPECT_EQ((*after)->last_seq(), 1u);
}

TEST(JournalTest, EveryAcknowledgedAppendSurvivesKillDashNine) {
  const std::string path = FreshPath("journal.db");
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
    if (!j.ok()) _exit(2);
    for (uint64_t n = 0;; n += 5) {
      std::vector<std::string> batch;
      for (uint64_t i = 1; i <= 5; ++i) batch.push_back("record " + std::to_string(n + i));
      Result<uint64_t> seq = (*j)->Append(batch);
      if (!seq.ok()) _exit(3);
      const uint64_t acked = *seq;
      if (write(fds[1], &acked, sizeof acked) != sizeof acked) _exit(4);
    }
  }
  close(fds[1]);
  uint64_t acked = 0;
  for (int i = 0; i < 60; ++i) ASSERT_EQ(read(fds[0], &acked, sizeof acked), static_cast<ssize_t>(sizeof acked));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  // Acknowledgements written before the kill and not yet read: the latest is the floor.
  uint64_t more = 0;
  while (read(fds[0], &more, sizeof more) == static_cast<ssize_t>(sizeof more)) acked = std::max(acked, more);
  close(fds[0]);
  Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
  ASSERT_TRUE(j.ok()) << j.status().message();
  std::vector<store::JournalEntry> all = ReadAll(**j);
  ASSERT_GE(all.size(), acked);
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(all[i].seq, i + 1);
    ASSERT_EQ(all[i].payload, "record " + std::to_string(i + 1));
  }
  EXPECT_EQ(all.size() % 5, 0u);  // batches are transactions: all or none
}

TEST(JournalJsonTest, EveryEventRoundTrips) {
  JobSpec spec = testing::WholeJob(7, 3, 4, 5);
  spec.tenant = TenantId(2);
  spec.time_limit = 3'600'000;
  spec.checkpoint_interval = 600'000;
  spec.after_ok = {1, 2};
  spec.work = WorkClass::kInference;
  spec.flexible = true;
  spec.deadline = 99;
  spec.max_restarts = 4;
  spec.restart_backoff = 1000;
  spec.spare_nodes = 2;
  spec.worker.types.mask = 0b101;
  spec.topology = TopologyRule::kRequireNvlinkDomain;
  const std::vector<Event> events = {JobSubmitted{spec}, JobCancelled{9}, JobFinished{7, false},
                                     NodeHealthChange{NodeId(3), NodeHealth::kRepairing, Actor::kAgent, "XID 79", 6},
                                     GridForecast{0, 3'600'000, {12.5, -3}}};
  for (const Event& event : events) {
    const std::string text = io::EncodeEvent({42, event});
    Result<io::TimedEvent> back = io::DecodeEvent(text);
    ASSERT_TRUE(back.ok()) << back.status().message() << " in " << text;
    EXPECT_EQ(back->at, 42);
    EXPECT_EQ(io::EncodeEvent(*back), text);  // nothing lost on the way
  }
  Result<io::TimedEvent> submitted = io::DecodeEvent(io::EncodeEvent({0, events[0]}));
  ASSERT_TRUE(submitted.ok());
  const JobSpec& decoded = std::get<JobSubmitted>(submitted->event).spec;
  EXPECT_EQ(decoded.max_restarts, 4u);
  EXPECT_EQ(decoded.worker, spec.worker);
  EXPECT_EQ(decoded.after_ok, spec.after_ok);
  EXPECT_EQ(io::DecodeEvent("[1]").status().message(), "journal record: not a JSON object");
  EXPECT_EQ(io::DecodeEvent(R"({"v": 1, "at": 0, "type": "cancel"})").status().message(),
            "journal record: job: is required");
  EXPECT_EQ(io::DecodeEvent(R"({"v": 1, "at": "x", "type": "cancel", "job": 1})").status().message(),
            "journal record: at: has the wrong type");
  EXPECT_EQ(io::DecodeEvent(R"({"v": 2, "at": 0})").status().message(), "journal record: v: only 1 is known");
}

// What the engine was told, journaled and replayed into a fresh engine, gives the same decisions.
TEST(JournalJsonTest, ReplayGivesTheSameDecisions) {
  Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = testing::FleetOf(std::vector<NodeType>(6, testing::GpuNode(catalog, 8, 96, 512)), 2);
  const std::string path = FreshPath("journal.db");
  std::vector<std::vector<Event>> steps = {
      {JobSubmitted{testing::WholeJob(1, 3, 8)}, JobSubmitted{testing::WholeJob(2, 2, 8, 1)}},
      {NodeHealthChange{NodeId(0), NodeHealth::kDown, Actor::kAgent, "gpu"}},
      {JobFinished{2, true}, JobSubmitted{testing::WholeJob(3, 1, 8)}},
      {NodeHealthChange{NodeId(0), NodeHealth::kHealthy, Actor::kOperator, "repaired"}, JobCancelled{3}}};
  std::string live;
  {
    Engine engine(fleet, {TenantSpec{"t"}});
    Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
    ASSERT_TRUE(j.ok());
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<std::string> records;
      for (const Event& e : steps[s]) records.push_back(io::EncodeEvent({static_cast<TimeMs>(s), e}));
      ASSERT_TRUE((*j)->Append(records).ok());
      Decisions d = engine.Step(static_cast<TimeMs>(s), steps[s]);
      live += fmt::format("{} {} {} {};", d.starts.size(), d.kills.size(), d.requeues.size(), d.ended.size());
    }
  }
  Engine engine(fleet, {TenantSpec{"t"}});
  Result<std::unique_ptr<store::SqliteJournal>> j = store::SqliteJournal::Open(path);
  ASSERT_TRUE(j.ok());
  std::string replayed;
  std::vector<Event> batch;
  TimeMs at = 0;
  auto step = [&] {
    Decisions d = engine.Step(at, batch);
    replayed += fmt::format("{} {} {} {};", d.starts.size(), d.kills.size(), d.requeues.size(), d.ended.size());
    batch.clear();
  };
  ASSERT_TRUE((*j)->Read(0,
                         [&](const store::JournalEntry& entry) {
                           Result<io::TimedEvent> e = io::DecodeEvent(entry.payload);
                           ASSERT_TRUE(e.ok());
                           if (e->at != at && !batch.empty()) step();
                           at = e->at;
                           batch.push_back(std::move(e->event));
                         })
                  .ok());
  step();
  EXPECT_EQ(replayed, live);
  EXPECT_EQ(engine.state(2), JobState::kCompleted);
  EXPECT_EQ(engine.state(3), JobState::kCancelled);
}

}  // namespace
}  // namespace joule
