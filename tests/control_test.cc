// The control plane in process: its configuration file, bearer tokens, job spec encoding, tenant
// quota changes in the engine, and replay — a control plane reopened on its journal shows every
// job exactly as the one that wrote it. (tests/server/server_test.py drives a real server process.)
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "control/auth.h"
#include "control/control_plane.h"
#include "control/journal_records.h"
#include "io/job_spec.h"
#include "io/journal_json.h"
#include "io/server_config.h"
#include "store/journal.h"
#include "tests/test_engine.h"
#include "tests/test_fleets.h"

namespace joule {
namespace {

std::filesystem::path FreshDir() {
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string Write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

const std::string kLabA = "lab-a-secret";
const std::string kOps = "ops-secret";

std::string Config(const std::filesystem::path& dir, const std::string& extra = "") {
  return Write(dir / "server.yaml",
               "scenario: " + std::string(JOULE_SOURCE_DIR) +
                   "/scenarios/dev.yaml\nstate: state.db\ntick_seconds: 0.02\n" +
                   "tokens:\n  - {name: ops, sha256: " + control::Hex(control::Sha256(kOps)) + "}\n" +
                   "  - {name: lab-a, tenant: lab-a, sha256: " + control::Hex(control::Sha256(kLabA)) + "}\n" + extra);
}

TEST(ServerConfigTest, ReadsEverySection) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> c = io::LoadServerConfig(
      Config(dir,
             "listen: 0.0.0.0:7000\nqueues:\n  - {name: a, default_time: 600, max_time: 1-00:00:00}\n"
             "  - {name: b, gpu_types: [gb200]}\npriority_classes:\n  - {name: lo, value: -5}\n"
             "  - {name: hi, value: 5, default: true}\nlimits: {max_body_bytes: 1000, max_page: 50}\n"));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->listen_host, "0.0.0.0");
  EXPECT_EQ(c->listen_port, 7000);
  EXPECT_EQ(c->state, (dir / "state.db").string());
  EXPECT_EQ(c->tick_ms, 20);
  ASSERT_EQ(c->queues.size(), 2u);
  EXPECT_EQ(c->queues[0].default_time, 600'000);
  EXPECT_EQ(*c->queues[0].max_time, 86'400'000);
  EXPECT_EQ(c->queues[1].gpu_types, std::vector<std::string>{"gb200"});
  EXPECT_EQ(c->default_priority_class, "hi");
  EXPECT_EQ(c->limits.max_body_bytes, 1000u);
  EXPECT_EQ(c->limits.max_page, 50u);
  ASSERT_EQ(c->tokens.size(), 2u);
  EXPECT_EQ(c->tokens[1].tenant, "lab-a");
}

TEST(ServerConfigTest, ErrorsNameTheFileLineAndField) {
  const std::filesystem::path dir = FreshDir();
  const struct {
    std::string extra, expected;
  } cases[] = {
      {"listen: nowhere\n", "listen: 'nowhere' must be HOST:PORT"},
      {"listen: 127.0.0.1:70000\n", "listen: '127.0.0.1:70000': the port must be a number from 0 to 65535"},
      {"listen: 127.0.0.1:abc\n", "listen: '127.0.0.1:abc': the port must be a number"},
      {"queues:\n  - {name: a}\n  - {name: a}\n", "queues[1].name: is used by an earlier queue"},
      {"queues:\n  - {name: a, default_time: 7200, max_time: 3600}\n",
       "queues[0].default_time: is longer than max_time"},
      {"priority_classes:\n  - {name: a, value: 1.5}\n", "priority_classes[0].value: must be a whole number"},
      {"limits: {max_page: 0}\n", "limits.max_page"},
      {"colour: red\n", "colour"},
      {"agents_required: yes please\n", "agents_required: must be true or false"},
  };
  for (const auto& c : cases) {
    Result<io::ServerConfig> r = io::LoadServerConfig(Config(dir, c.extra));
    ASSERT_FALSE(r.ok()) << c.extra;
    EXPECT_NE(r.status().message().find(c.expected), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find("server.yaml:"), std::string::npos) << r.status().message();
  }
  Result<io::ServerConfig> r =
      io::LoadServerConfig(Write(dir / "bad.yaml", "scenario: x.yaml\ntokens:\n  - {name: a, sha256: ABC}\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.yaml:3:"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("tokens[0].sha256: must be 64 lowercase hex digits"), std::string::npos);
}

TEST(AuthTest, HashesAndChecksBearerTokens) {
  // FIPS 180-2's test vector.
  EXPECT_EQ(control::Hex(control::Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(control::FromHex(control::Hex(control::Sha256("abc"))), control::Sha256("abc"));
  control::Authenticator auth;
  auth.Add({"ops", std::nullopt}, control::Sha256(kOps));
  auth.Add({"lab-a", TenantId(0)}, control::Sha256(kLabA));
  ASSERT_TRUE(auth.Check("Bearer " + kOps));
  EXPECT_TRUE(auth.Check("Bearer " + kOps)->operator_role());
  ASSERT_TRUE(auth.Check("Bearer " + kLabA));
  EXPECT_EQ(auth.Check("Bearer " + kLabA)->tenant, TenantId(0));
  EXPECT_FALSE(auth.Check("Bearer " + kLabA + "x"));
  EXPECT_FALSE(auth.Check("Bearer "));
  EXPECT_FALSE(auth.Check(kLabA));
  EXPECT_FALSE(auth.Check("Basic " + kLabA));
  EXPECT_NE(control::NewToken(), control::NewToken());
  EXPECT_EQ(control::NewToken().size(), 64u);
}

// A node's credential is the HMAC-SHA256 of its name under the node key: the figure below is
// `printf 'joule node credential\nnode-a' | openssl dgst -sha256 -hmac KEY`.
TEST(AuthTest, NodeCredentialsNameTheirNode) {
  const std::string key = "k0123456789abcdef0123456789abcdef";
  const std::string token = control::NodeToken(key, "node-a");
  EXPECT_EQ(token, "jn1.node-a.1eb1d6bd92b43fc8e9a7fbd55bb83b810ecbe6105e25e3601fc5a7a0024bd566");
  control::Authenticator auth;
  auth.Add({"ops", std::nullopt}, control::Sha256(kOps));
  EXPECT_FALSE(auth.Check("Bearer " + token)) << "no node key: no node is admitted";
  auth.SetNodeKey(key);
  std::optional<control::Principal> who = auth.Check("Bearer " + token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->node, "node-a");
  EXPECT_TRUE(who->agent());
  EXPECT_FALSE(who->operator_role());
  // Another node's name with this MAC, a changed MAC, a truncated one, another key's, trailing bytes.
  std::string renamed = token;
  renamed.replace(4, 6, "node-b");
  EXPECT_FALSE(auth.Check("Bearer " + renamed));
  std::string changed = token;
  changed.back() = changed.back() == '0' ? '1' : '0';
  EXPECT_FALSE(auth.Check("Bearer " + changed));
  EXPECT_FALSE(auth.Check("Bearer " + token.substr(0, token.size() - 1)));
  EXPECT_FALSE(auth.Check("Bearer " + control::NodeToken("another-key-0123456789abcdef012345", "node-a")));
  EXPECT_FALSE(auth.Check("Bearer " + token + std::string("\0junk", 5)));
  EXPECT_FALSE(auth.Check("Bearer jn1."));
  EXPECT_FALSE(auth.Check("Bearer jn1.x"));
  // A name with dots: the MAC is after the last one.
  ASSERT_TRUE(auth.Check("Bearer " + control::NodeToken(key, "a.b.c")));
  EXPECT_EQ(auth.Check("Bearer " + control::NodeToken(key, "a.b.c"))->node, "a.b.c");
  // The operators' tokens still work beside it, and a token followed by a NUL is not one of them.
  EXPECT_TRUE(auth.Check("Bearer " + kOps));
  EXPECT_FALSE(auth.Check("Bearer " + kOps + std::string("\0junk", 5)));
}

TEST(ServerConfigTest, TheNodeKeyIsASecretFile) {
  const std::filesystem::path dir = FreshDir();
  const std::string key = (dir / "node.key").string();
  auto load = [&] { return io::LoadServerConfig(Config(dir, "node_key_file: node.key\n")); };
  EXPECT_NE(load().status().message().find("node.key: no such file"), std::string::npos) << load().status().message();
  std::ofstream(key) << "short\n";
  std::filesystem::permissions(key, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_NE(load().status().message().find("holds 5 bytes; a node key has at least 32"), std::string::npos)
      << load().status().message();
  std::ofstream(key) << std::string(40, 'k') << "\n";
  std::filesystem::permissions(key, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  EXPECT_NE(load().status().message().find("others may read or write it: chmod 600 it"), std::string::npos)
      << load().status().message();
  std::filesystem::permissions(key, std::filesystem::perms::group_read, std::filesystem::perm_options::remove);
  Result<io::ServerConfig> loaded = load();
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->node_key, std::string(40, 'k'));
  // One token for every node's agent is refused, saying what replaces it.
  Result<io::ServerConfig> shared = io::LoadServerConfig(
      Config(dir, "  - {name: agents, agent: true, sha256: " + control::Hex(control::Sha256("x")) + "}\n"));
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.status().message().find("tokens[2].agent: one token for every node's agent is no longer accepted"),
            std::string::npos)
      << shared.status().message();
}

TEST(JobSpecEncodingTest, RoundTripsThroughTheParser) {
  io::SubmitSpec s;
  s.name = "pretrain";
  s.tenant = "lab-a";
  s.queue = "batch";
  s.priority_class = "high";
  s.workers = 512;
  s.gpus = 8;
  s.gpu_type = "gb200";
  s.cpu = 96'500;
  s.memory = 1'536 * 1024 + 512;
  s.topology = TopologyRule::kRequireNvlinkDomain;
  s.time_limit = 7LL * 24 * 3'600'000 + 1;
  s.runtime_estimate = 3'600'000;
  s.checkpoint_interval = 600'000;
  s.after_ok = {3, 4};
  s.max_restarts = 100;
  s.restart_backoff = 30'000;
  s.spare_nodes = 8;
  s.command = {"torchrun", "train.py"};
  s.args = {"--lr", "3e-4"};
  s.env = {{"NCCL_DEBUG", "WARN"}};
  s.tasks_per_worker = 8;
  s.script = "#!/bin/bash\nsrun x\n";
  Result<io::SubmitSpec> back = io::ParseJobSpec(io::EncodeJobSpec(s), "encoded");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(io::EncodeJobSpec(*back), io::EncodeJobSpec(s));
  EXPECT_EQ(back->memory, s.memory);
  EXPECT_EQ(back->time_limit, s.time_limit);
  EXPECT_EQ(back->script, s.script);
}

TEST(JobSpecEncodingTest, PlainJsonFastPathAgreesWithTheYamlPath) {
  const std::vector<std::string> taken = {
      R"({"name":"a","workers":3,"resources":{"gpus":8,"cpu":2.5,"memory_gib":64},"time_limit":3600})",
      R"({"name":"b","topology":"any","after_ok":[1,2],"failure_policy":{"max_restarts":0,"backoff":1.5,"spare_nodes":2},
          "resources":{"gpus":1,"gpu_type":"gb200"},"command":["x"],"args":["-v"],"env":{"A":"1"},"tasks_per_worker":4})",
      R"({"name":"é-ü","queue":"q","tenant":"t","priority_class":"p","checkpoint_interval":600,"runtime_estimate":60})",
  };
  for (const std::string& text : taken) {
    std::optional<io::SubmitSpec> fast = io::ParsePlainJson(text);
    Result<io::SubmitSpec> slow = io::ParseJobSpecYaml(text, "t");
    ASSERT_TRUE(fast) << text;
    ASSERT_TRUE(slow.ok()) << slow.status().message();
    EXPECT_EQ(io::EncodeJobSpec(*fast), io::EncodeJobSpec(*slow)) << text;
  }
  // What the fast path is not sure of goes the YAML way, with its located errors.
  const std::vector<std::string> declined = {
      R"({"name":"a","name":"b"})",              // repeated key: YAML refuses it
      R"({"name":"a","workers":"3"})",           // a count as a string: YAML reads it
      R"({"name":"a","workers":2.0})",           // a float count
      R"({"name":"a","time_limit":"1:00:00"})",  // Slurm's time: the YAML path parses it
      R"({"name":"a
"})",                                            // escapes
      R"({"name":"a","colour":1})",              // unknown field: the YAML path names it
      R"({"name":"a","script":"#!/bin/sh"})",    // scripts
      R"({"name":"","workers":1})",              // broken limits
  };
  for (const std::string& text : declined) EXPECT_FALSE(io::ParsePlainJson(text)) << text;
  // nlohmann's parser stops at a NUL byte: what follows must not be ignored (found by job_spec_fuzz).
  const std::string with_nul("{\"name\":\"a\"}\0{\"x\"", 17);
  EXPECT_FALSE(io::ParsePlainJson(with_nul));
  EXPECT_FALSE(io::ParseJobSpec(with_nul, "body").ok());
  Result<io::SubmitSpec> r = io::ParseJobSpec(R"({"name":"a","colour":1})", "body");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("body:1:"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("colour"), std::string::npos) << r.status().message();
  EXPECT_EQ(io::ParseJobSpec(R"({"name":"a","time_limit":"1:00:00"})", "body")->time_limit, 3'600'000);
}

TEST(TenantUpdateTest, NewReservationMakesBorrowedWorkReclaimable) {
  // lab-b runs beyond its (zero) reservation on every accelerator; once lab-a's reservation is
  // raised, lab-a's job is owed and reclaims them.
  const Catalog catalog = Catalog::BuiltIn();
  Fleet fleet = testing::FleetOf(std::vector<NodeType>(4, testing::GpuNode(catalog, 8, 64, 512)));
  const AcceleratorTypeId h100 = *fleet.catalog().FindAccelerator("h100-sxm");
  Engine engine(fleet, {TenantSpec{"lab-a"}, TenantSpec{"lab-b"}});
  JobSpec borrowed = testing::WholeJob(1, 4, 8);
  borrowed.tenant = TenantId(1);
  std::vector<Event> events{JobSubmitted{borrowed}};
  engine.Step(0, events);
  ASSERT_EQ(engine.state(1), JobState::kRunning);
  events = {JobSubmitted{testing::WholeJob(2, 1, 8)}};
  Decisions d = engine.Step(1000, events);
  EXPECT_TRUE(d.kills.empty());  // nothing owed yet: lab-a waits like anyone else
  events = {TenantUpdate{TenantId(0), {{h100, 8}}, std::nullopt, 1.0}};
  d = engine.Step(2000, events);
  ASSERT_EQ(d.kills.size(), 1u);
  EXPECT_EQ(d.kills[0].reason, KillReason::kPreempted);
  EXPECT_EQ(engine.tenants()[0].reserved.size(), 1u);
  // The update round-trips through the journal encoding.
  Result<io::TimedEvent> back = io::DecodeEvent(io::EncodeEvent({5, events[0]}));
  ASSERT_TRUE(back.ok()) << back.status().message();
  const auto& u = std::get<TenantUpdate>(back->event);
  EXPECT_EQ(u.reserved[0].accelerators, 8u);
  EXPECT_EQ(u.tenant, TenantId(0));
}

// The history's row log: rows of every size, across chunk boundaries (a row larger than a chunk
// gets its own), read back in place, from a copy made midway (which shares the full chunks and
// keeps what it saw), and rebuilt from its chunks; a cut chunk is refused.
TEST(RowLogTest, KeepsRowsAcrossChunksAndCopies) {
  control::RowLog log;
  std::vector<std::string> rows;
  control::RowLog copy;
  for (size_t i = 0; i < 3000; ++i) {
    const size_t size = i % 500 == 7 ? (size_t{3} << 20) : i % 13 == 0 ? 0 : (i * 7919) % 2000;
    rows.push_back(std::string(size, static_cast<char>('a' + i % 26)));
    log.Append(rows.back());
    if (i == 1500) copy = log;
  }
  ASSERT_EQ(log.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(log.row(i), rows[i]) << i;
  ASSERT_EQ(copy.size(), 1501u);
  for (size_t i = 0; i < copy.size(); ++i) ASSERT_EQ(copy.row(i), rows[i]) << i;
  // Rebuilt from its full chunks (as the store keeps them) and its last chunk (as a snapshot does).
  std::vector<std::string> full;
  for (size_t c = 0; c < log.full_chunks(); ++c) full.push_back(*log.chunk(c));
  ASSERT_GT(full.size(), 3u);
  Result<control::RowLog> rebuilt = control::RowLog::FromChunks(full, log.tail());
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status().message();
  ASSERT_EQ(rebuilt->size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(rebuilt->row(i), rows[i]) << i;
  EXPECT_EQ(rebuilt->tail(), log.tail());
  Result<control::RowLog> cut = control::RowLog::FromChunks(full, log.tail().substr(0, log.tail().size() - 1));
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("cut short"), std::string::npos) << cut.status().message();
  full[1].pop_back();
  EXPECT_FALSE(control::RowLog::FromChunks(full, log.tail()).ok());
}

struct JobRow {
  JobId id;
  JobState state;
  PendingReason reason;
  TimeMs started, ended;
  std::vector<NodeId> nodes;
  uint32_t restarts;
  bool retired;
  bool operator==(const JobRow&) const = default;
};

// Every job, the retired ones too.
std::vector<JobRow> Rows(const control::ControlPlane& plane) {
  std::vector<JobRow> rows;
  plane.VisitJobs({"ops", std::nullopt}, {.limit = 1'000'000, .history = true}, [&](const control::JobInfo& j) {
    rows.push_back({j.id, j.state, j.reason, j.started, j.ended, j.nodes, j.restarts, j.retired});
  });
  return rows;
}

// Every node's accelerators in use and jobs, as the API shows them.
std::vector<std::pair<uint32_t, std::vector<JobId>>> NodeRows(const control::ControlPlane& plane) {
  std::vector<std::pair<uint32_t, std::vector<JobId>>> rows;
  plane.VisitNodes([&](NodeId, const control::NodeInfo& n) {
    std::vector<JobId> jobs = n.jobs;
    std::sort(jobs.begin(), jobs.end());
    rows.emplace_back(n.gpus_used, std::move(jobs));
  });
  return rows;
}

TEST(ControlPlaneTest, ReplayRebuildsEveryJobExactly) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config = io::LoadServerConfig(Config(dir));
  ASSERT_TRUE(config.ok()) << config.status().message();
  // A clock that moves 7 s per reading: time limits pass during the test.
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(7'000); };
  std::vector<JobRow> before;
  std::vector<std::pair<uint32_t, std::vector<JobId>>> nodes_live;
  std::string snapshot;
  {
    Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, clock);
    ASSERT_TRUE(plane.ok()) << plane.status().message();
    (*plane)->Start();
    const control::Principal lab_a{"lab-a", TenantId(0)}, ops{"ops", std::nullopt};
    for (int i = 0; i < 40; ++i) {
      io::SubmitSpec s;
      s.name = fmt::format("job-{}", i);
      s.gpus = 1 + i % 8;
      s.workers = 1 + i % 3;
      s.time_limit = (60 + i * 17) * 1000;
      s.priority_class = i % 4 == 0 ? "high" : "normal";
      control::Outcome<control::SubmitResult> r = (*plane)->Submit(lab_a, s, i % 5 == 0 ? fmt::format("k{}", i) : "");
      ASSERT_TRUE(r.ok()) << r.error.message;
      if (i % 7 == 3) {
        ASSERT_TRUE((*plane)->Cancel(ops, r.value->id).ok());
      }
      if (i == 20) {
        ASSERT_TRUE((*plane)->SetNodeHealth(ops, "dev-hgx01-k00-n01", NodeHealth::kDrained, "test").ok());
      }
      if (i == 30) {
        control::QuotaChange q;
        q.weight = 3.0;
        ASSERT_TRUE((*plane)->ChangeQuota(ops, "lab-b", q).ok());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (*plane)->Stop();
    before = Rows(**plane);
    nodes_live = NodeRows(**plane);
    snapshot = (*plane)->EncodeSnapshot();
  }
  size_t running = 0, ended = 0;
  for (const JobRow& r : before) {
    running += r.state == JobState::kRunning;
    ended += r.state == JobState::kCompleted || r.state == JobState::kCancelled || r.state == JobState::kFailed;
  }
  EXPECT_GT(running, 0u);
  EXPECT_GT(ended, 0u);
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Rows(**again), before);
  // A snapshot of the replayed state, restored into a fresh control plane, is that state again:
  // jobs, keys, nodes, quotas, audit log, unconsumed inputs and the engine's state alike.
  EXPECT_EQ((*again)->EncodeSnapshot(), snapshot);
  io::ServerConfig elsewhere = *config;
  elsewhere.state = (dir / "restored.db").string();
  Result<std::unique_ptr<control::ControlPlane>> restored = control::ControlPlane::Create(elsewhere, clock);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  ASSERT_TRUE((*restored)->RestoreSnapshot(snapshot).ok());
  EXPECT_EQ(Rows(**restored), before);
  EXPECT_EQ((*restored)->EncodeSnapshot(), snapshot);
  // The live server refreshed only the nodes each step changed; the replay and the restore
  // refreshed every node.
  EXPECT_EQ(nodes_live, NodeRows(**again));
  EXPECT_EQ(nodes_live, NodeRows(**restored));
  EXPECT_TRUE(std::any_of(nodes_live.begin(), nodes_live.end(), [](const auto& n) { return n.first > 0; }));
  EXPECT_FALSE((*restored)->RestoreSnapshot(R"({"v": 1, "engine": {}})").ok());  // the former JSON form
  std::vector<control::AuditEntry> audit;
  (*again)->VisitAudit(0, 1000, [&](const control::AuditEntry& e) { audit.push_back(e); });
  ASSERT_GE(audit.size(), 40u + 6 + 2);
  EXPECT_EQ(audit[0].action, "submit");
  EXPECT_EQ(audit[0].who, "lab-a");
}

// Ended jobs leave the view job_retention after they end, for the history: still found by id
// (their listing fields, no command), listed only on request, their idempotency keys forgotten;
// a replay and a snapshot rebuild the same history; a cut or corrupted snapshot is refused.
TEST(ControlPlaneTest, EndedJobsRetireToTheHistory) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config = io::LoadServerConfig(Config(dir, "job_retention_seconds: 60\n"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->job_retention_ms, 60'000);
  config->history_chunk_bytes = 200;  // the history in many chunks, as a long one is
  // 1 s per reading, about 50 s per real second with 20 ms ticks.
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(1'000); };
  const control::Principal lab_a{"lab-a", TenantId(0)}, lab_b{"lab-b", TenantId(1)}, ops{"ops", std::nullopt};
  std::vector<JobRow> before;
  std::string snapshot;
  std::vector<JobId> ids;
  {
    Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, clock);
    ASSERT_TRUE(plane.ok()) << plane.status().message();
    control::ControlPlane& p = **plane;
    p.Start();
    io::SubmitSpec s;
    s.gpus = 1;
    for (int i = 0; i < 10; ++i) {
      s.name = fmt::format("short-{}", i);
      s.time_limit = i < 9 ? 5'000 : 86'400'000;  // the last runs a day
      s.command = {"python", "train.py"};
      control::Outcome<control::SubmitResult> r = p.Submit(lab_a, s, fmt::format("k{}", i));
      ASSERT_TRUE(r.ok()) << r.error.message;
      ids.push_back(r.value->id);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (p.Snapshot().retired < 9 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(p.Snapshot().retired, 9u);
    EXPECT_EQ(p.Snapshot().jobs_by_state.at("failed"), 9u);  // counted still: the metric stays monotonic

    control::JobInfo first;
    ASSERT_TRUE(p.VisitJob(lab_a, ids[0], [&](const control::JobInfo& j) { first = j; }).ok());
    EXPECT_TRUE(first.retired);
    EXPECT_EQ(first.id, ids[0]);
    EXPECT_EQ(first.spec.name, "short-0");
    EXPECT_EQ(first.state, JobState::kFailed);
    EXPECT_EQ(first.end_reason, "time limit");
    EXPECT_EQ(first.submitted_by, "lab-a");
    EXPECT_EQ(*first.spec.queue, "batch");
    EXPECT_EQ(*first.spec.time_limit, 5'000);
    EXPECT_GT(first.ended, first.started);
    EXPECT_TRUE(first.spec.command.empty());
    EXPECT_EQ(p.VisitJob(lab_b, ids[0], [](const control::JobInfo&) {}).error.status, 404);

    auto listed = [&](control::JobFilter filter) {
      std::vector<JobId> out;
      p.VisitJobs(ops, filter, [&](const control::JobInfo& j) { out.push_back(j.id); });
      return out;
    };
    EXPECT_EQ(listed({}), std::vector<JobId>{ids[9]});
    EXPECT_EQ(listed({.history = true}), ids);
    EXPECT_EQ(listed({.state = JobState::kRunning, .history = true}), std::vector<JobId>{ids[9]});
    EXPECT_EQ(listed({.state = JobState::kFailed, .history = true}).size(), 9u);
    EXPECT_EQ(listed({.after = ids[2], .limit = 3, .history = true}), (std::vector<JobId>{ids[3], ids[4], ids[5]}));
    EXPECT_TRUE(listed({.tenant = TenantId(1), .history = true}).empty());

    EXPECT_EQ(p.Cancel(ops, ids[0]).error.status, 409);
    io::SubmitSpec after = s;
    after.name = "after";
    after.after_ok = {ids[1]};
    EXPECT_TRUE(p.Submit(lab_a, after, "").ok());
    // The key's job retired: the key names no job any more, and the same submit makes a new one.
    s.name = "short-0";
    s.time_limit = 5'000;
    control::Outcome<control::SubmitResult> reused = p.Submit(lab_a, s, "k0");
    ASSERT_TRUE(reused.ok());
    EXPECT_TRUE(reused.value->created);
    EXPECT_NE(reused.value->id, ids[0]);
    // The running job's key still names it.
    s.name = "short-9";
    s.time_limit = 86'400'000;
    control::Outcome<control::SubmitResult> kept = p.Submit(lab_a, s, "k9");
    ASSERT_TRUE(kept.ok());
    EXPECT_FALSE(kept.value->created);
    EXPECT_EQ(kept.value->id, ids[9]);

    std::vector<control::AuditEntry> audit;
    p.VisitAudit(0, 1000, [&](const control::AuditEntry& e) { audit.push_back(e); });
    ASSERT_GE(audit.size(), 12u);
    for (size_t i = 1; i < audit.size(); ++i) EXPECT_LE(audit[i - 1].seq, audit[i].seq);
    std::vector<control::AuditEntry> later;
    p.VisitAudit(audit[4].seq, 2, [&](const control::AuditEntry& e) { later.push_back(e); });
    ASSERT_EQ(later.size(), 2u);
    EXPECT_GT(later[0].seq, audit[4].seq);
    p.Stop();
    before = Rows(p);
    ASSERT_TRUE(p.SaveSnapshotNow().ok());
    snapshot = p.EncodeSnapshot();
  }
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Rows(**again), before);
  EXPECT_EQ((*again)->EncodeSnapshot(), snapshot);
  // Restored elsewhere, with the history's full chunks read from the first store.
  Result<std::unique_ptr<store::SqliteJournal>> first =
      store::SqliteJournal::Open(config->state, store::OpenMode::kReader);
  ASSERT_TRUE(first.ok()) << first.status().message();
  const control::ControlPlane::ChunkSource chunks = [&](std::string_view log, uint64_t count) {
    return (*first)->LoadChunks(log, count);
  };
  ASSERT_TRUE(chunks("retired", 3).ok()) << chunks("retired", 3).status().message();
  ASSERT_TRUE(chunks("audit", 2).ok());
  io::ServerConfig elsewhere = *config;
  elsewhere.state = (dir / "restored.db").string();
  Result<std::unique_ptr<control::ControlPlane>> restored = control::ControlPlane::Create(elsewhere, clock);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  ::joule::Status missing = (*restored)->RestoreSnapshot(snapshot);
  ASSERT_FALSE(missing.ok());  // its own store lacks the chunks
  EXPECT_NE(missing.message().find("history chunk"), std::string::npos) << missing.message();
  ASSERT_TRUE((*restored)->RestoreSnapshot(snapshot, chunks).ok());
  EXPECT_EQ(Rows(**restored), before);
  EXPECT_EQ((*restored)->EncodeSnapshot(), snapshot);
  // Every cut and every flipped byte is refused (the checksum), naming the snapshot.
  for (size_t cut = 0; cut < snapshot.size(); cut += 1 + cut / 20) {
    EXPECT_FALSE((*restored)->RestoreSnapshot(std::string_view(snapshot).substr(0, cut), chunks).ok())
        << "cut at " << cut;
  }
  for (size_t at = 0; at < snapshot.size(); at += 1 + at / 20) {
    std::string flipped = snapshot;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x5a);
    ::joule::Status st = (*restored)->RestoreSnapshot(flipped, chunks);
    ASSERT_FALSE(st.ok()) << "byte " << at;
    EXPECT_NE(st.message().find("snapshot: "), std::string::npos) << st.message();
  }
  // A refused snapshot leaves nothing behind: the good one restores as before.
  ASSERT_TRUE((*restored)->RestoreSnapshot(snapshot, chunks).ok());
  EXPECT_EQ((*restored)->EncodeSnapshot(), snapshot);
}

TEST(ControlPlaneTest, RefusesWhatTheCallerMayNotDo) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config = io::LoadServerConfig(Config(dir));
  ASSERT_TRUE(config.ok());
  Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, [] { return 1000; });
  ASSERT_TRUE(plane.ok());
  (*plane)->Start();
  const control::Principal lab_a{"lab-a", TenantId(0)}, lab_b{"lab-b", TenantId(1)};
  io::SubmitSpec s;
  s.name = "x";
  s.gpus = 1;
  control::Outcome<control::SubmitResult> job = (*plane)->Submit(lab_a, s, "key");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ((*plane)->Cancel(lab_b, job.value->id).error.status, 404);
  EXPECT_EQ((*plane)->SetNodeHealth(lab_a, "dev-hgx01-k00-n01", NodeHealth::kDrained, "x").error.status, 403);
  EXPECT_EQ((*plane)->ChangeQuota(lab_a, "lab-a", {}).error.status, 403);
  control::Principal ops{"ops", std::nullopt};
  EXPECT_EQ((*plane)->SetNodeHealth(ops, "dev-hgx01-k00-n01", NodeHealth::kDrained, "").error.field, "reason");
  // The same key and request: the same job; another request: refused.
  control::Outcome<control::SubmitResult> again = (*plane)->Submit(lab_a, s, "key");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value->id, job.value->id);
  EXPECT_FALSE(again.value->created);
  s.gpus = 2;
  EXPECT_EQ((*plane)->Submit(lab_a, s, "key").error.status, 422);
  (*plane)->Stop();
  EXPECT_EQ((*plane)->Submit(lab_a, s, "other").error.status, 503);
}

// The principal of node `node`'s agent, as its credential makes it.
control::Principal AgentOf(std::string_view node) {
  return control::Principal{"node:" + std::string(node), std::nullopt, std::string(node)};
}

// An agent's reports: each worker's measured energy journaled once, however often it is
// reported, and kept across a restart; a job's end recorded once; an agent with fewer
// accelerators than its node has refused.
TEST(ControlPlaneTest, AgentReportsAreRecordedOnce) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config = io::LoadServerConfig(Config(dir));
  ASSERT_TRUE(config.ok());
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(10); };
  const control::Principal lab_a{"lab-a", TenantId(0)};
  JobId id = 0;
  std::string node;
  {
    Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, clock);
    ASSERT_TRUE(plane.ok());
    (*plane)->Start();
    io::SubmitSpec s;
    s.name = "measured";
    s.gpus = 8;
    s.gpu_type = "h100-sxm";
    control::Outcome<control::SubmitResult> job = (*plane)->Submit(lab_a, s, "");
    ASSERT_TRUE(job.ok());
    id = job.value->id;
    for (int i = 0; i < 500 && node.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      (void)(*plane)->VisitJob(lab_a, id, [&](const control::JobInfo& j) {
        if (!j.nodes.empty()) node = std::string((*plane)->fleet().NodeName(j.nodes[0]));
      });
    }
    ASSERT_FALSE(node.empty()) << "the job did not start";
    control::AgentReport few;
    few.gpu_count = 4;
    few.gpu_source = "nvml";
    EXPECT_EQ((*plane)->AgentHeartbeat(AgentOf(node), node, few).error.status, 409);
    // Only the node's own agent reports for it: another node's, an operator, a tenant are 403.
    for (const control::Principal& other :
         {AgentOf("dev-hgx01-k00-n03"), control::Principal{"ops", std::nullopt}, lab_a}) {
      EXPECT_EQ((*plane)->AgentHeartbeat(other, node, {}).error.status, 403) << other.name;
    }
    control::AgentReport report;
    report.gpu_count = 8;
    report.running = {{id, 0, 1, 40.0}};
    control::Outcome<control::NodeAssignments> r = (*plane)->AgentHeartbeat(AgentOf(node), node, report);
    ASSERT_TRUE(r.ok()) << r.error.message;
    ASSERT_EQ(r.value->assignments.size(), 1u);
    EXPECT_EQ(r.value->assignments[0].run, 1u);
    // Long polls: one with the version the agent runs is answered once the job's end frees the
    // node; one with another version at once; one with nothing changing when its wait ends.
    const NodeId node_id = *(*plane)->FindNode(node);
    std::promise<control::NodeAssignments> told, stale, quiet;
    (*plane)->WatchNode(node_id, r.value->version, std::chrono::seconds(30),
                        [&told](control::NodeAssignments a) { told.set_value(std::move(a)); });
    (*plane)->WatchNode(node_id, 12345, std::chrono::seconds(30),
                        [&stale](control::NodeAssignments a) { stale.set_value(std::move(a)); });
    ASSERT_EQ(stale.get_future().wait_for(std::chrono::seconds(0)), std::future_status::ready);
    const NodeId other = *(*plane)->FindNode("dev-hgx01-k00-n03");
    const auto quiet_from = std::chrono::steady_clock::now();
    control::Outcome<control::NodeAssignments> idle =
        (*plane)->AgentHeartbeat(AgentOf("dev-hgx01-k00-n03"), "dev-hgx01-k00-n03", {});
    ASSERT_TRUE(idle.ok());
    (*plane)->WatchNode(other, idle.value->version, std::chrono::milliseconds(300),
                        [&quiet](control::NodeAssignments a) { quiet.set_value(std::move(a)); });
    std::future<control::NodeAssignments> telling = told.get_future();
    EXPECT_EQ(telling.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout);
    report.running.clear();
    report.ended = {{id, 0, 0, 1, 100.0}};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*plane)->AgentHeartbeat(AgentOf(node), node, report).ok());
    ASSERT_EQ(telling.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    const control::NodeAssignments after = telling.get();
    EXPECT_TRUE(after.assignments.empty());
    EXPECT_NE(after.version, r.value->version);
    std::future<control::NodeAssignments> quieted = quiet.get_future();
    ASSERT_EQ(quieted.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(quieted.get().version, idle.value->version);
    EXPECT_GE(std::chrono::steady_clock::now() - quiet_from, std::chrono::milliseconds(300));
    for (int i = 0; i < 500; ++i) {
      bool done = false;
      (void)(*plane)->VisitJob(lab_a, id, [&](const control::JobInfo& j) { done = j.state == JobState::kCompleted; });
      if (done) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    (*plane)->Stop();
  }
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok());
  (void)(*again)->VisitJob(lab_a, id, [&](const control::JobInfo& j) {
    EXPECT_EQ(j.state, JobState::kCompleted);
    EXPECT_DOUBLE_EQ(j.energy_joules(), 100.0);
  });
  size_t finishes = 0;
  (*again)->VisitAudit(0, 1000, [&](const control::AuditEntry& e) { finishes += e.action == "finish"; });
  EXPECT_EQ(finishes, 1u);
}

// agents_required: a node no agent registers for is marked down once the timeout passes; its
// agent brings it back, also after a restart of the server (the journal keeps the health).
TEST(ControlPlaneTest, NodesWithoutAgentsGoDownAndComeBackWithThem) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config =
      io::LoadServerConfig(Config(dir, "agent_timeout_seconds: 0.5\nagents_required: true\n"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(5); };

  auto node = [](control::ControlPlane& plane, std::string_view name) {
    control::NodeInfo info;
    plane.VisitNodes([&](NodeId id, const control::NodeInfo& n) {
      if (plane.fleet().NodeName(id) == name) info = n;
    });
    return info;
  };
  auto beat_until = [&](control::ControlPlane& plane, std::string_view beating, auto done) {
    for (int i = 0; i < 400 && !done(); ++i) {
      ASSERT_TRUE(plane.AgentHeartbeat(AgentOf(beating), beating, {}).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(done());
  };
  {
    Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, clock);
    ASSERT_TRUE(plane.ok());
    (*plane)->Start();
    beat_until(**plane, "dev-hgx01-k00-n00",
               [&] { return node(**plane, "dev-hgx01-k00-n01").health == NodeHealth::kDown; });
    EXPECT_EQ(node(**plane, "dev-hgx01-k00-n01").reason, "no agent registered within 0.5 s");
    EXPECT_EQ(node(**plane, "dev-hgx01-k00-n00").health, NodeHealth::kHealthy);
    // What the API answers off its I/O threads: a heartbeat bringing a node back, or telling ends.
    EXPECT_TRUE((*plane)->AgentHeartbeatWaits("dev-hgx01-k00-n01", {}));
    EXPECT_FALSE((*plane)->AgentHeartbeatWaits("dev-hgx01-k00-n00", {}));
    control::AgentReport ends;
    ends.ended.push_back({1, 0, 0, 1, std::nullopt});
    EXPECT_TRUE((*plane)->AgentHeartbeatWaits("dev-hgx01-k00-n00", ends));
    (*plane)->Stop();
  }
  config->agents_required = false;
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok());
  (*again)->Start();
  EXPECT_EQ(node(**again, "dev-hgx01-k00-n01").health, NodeHealth::kDown);
  EXPECT_TRUE((*again)->AgentHeartbeatWaits("dev-hgx01-k00-n01", {}));  // down as the journal says
  beat_until(**again, "dev-hgx01-k00-n01",
             [&] { return node(**again, "dev-hgx01-k00-n01").health == NodeHealth::kHealthy; });
  EXPECT_FALSE((*again)->AgentHeartbeatWaits("dev-hgx01-k00-n01", {}));
  (*again)->Stop();
}

// With snapshots every few records (and compaction), a restart loads the newest and replays only
// what follows it, and shows every job as the server that wrote them did; the offline replay of
// a compacted journal says why it cannot start at the beginning.
TEST(ControlPlaneTest, RestartFromASnapshotShowsEveryJobAsBefore) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config =
      io::LoadServerConfig(Config(dir, "snapshot_records: 25\ncompact_journal: true\njob_retention_seconds: 30\n"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  config->history_chunk_bytes = 300;    // the history in many chunks, kept as the snapshots go
  config->snapshot_piece_bytes = 1000;  // and each snapshot in many pieces between appends
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(3'000); };
  std::vector<JobRow> before;
  std::string snapshot;
  uint64_t snapshot_seq = 0;
  {
    Result<std::unique_ptr<control::ControlPlane>> plane = control::ControlPlane::Open(*config, clock);
    ASSERT_TRUE(plane.ok()) << plane.status().message();
    (*plane)->Start();
    const control::Principal lab_a{"lab-a", TenantId(0)}, ops{"ops", std::nullopt};
    for (int i = 0; i < 60; ++i) {
      io::SubmitSpec s;
      s.name = fmt::format("job-{}", i);
      s.gpus = 1 + i % 8;
      s.time_limit = (30 + i * 7) * 1000;
      control::Outcome<control::SubmitResult> r = (*plane)->Submit(lab_a, s, fmt::format("k{}", i));
      ASSERT_TRUE(r.ok()) << r.error.message;
      if (i % 9 == 4) {
        ASSERT_TRUE((*plane)->Cancel(ops, r.value->id).ok());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(8));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (*plane)->Stop();
    before = Rows(**plane);
    snapshot = (*plane)->EncodeSnapshot();
    EXPECT_GT((*plane)->counters().snapshots, 1u);
    snapshot_seq = (*plane)->counters().snapshot_seq;
  }
  ASSERT_GT(snapshot_seq, 0u);
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->counters().snapshot_seq, snapshot_seq);  // loaded, not replayed from record 1
  EXPECT_EQ(Rows(**again), before);
  EXPECT_EQ((*again)->EncodeSnapshot(), snapshot);
  // Some jobs retired (their rows in the store's chunks), some did not.
  EXPECT_TRUE(std::any_of(before.begin(), before.end(), [](const JobRow& r) { return r.retired; }));
  auto live = std::find_if(before.rbegin(), before.rend(), [](const JobRow& r) { return !r.retired; });
  ASSERT_NE(live, before.rend());
  // A retried submit of a job still in the view finds it through the snapshot's idempotency keys.
  (*again)->Start();
  const int i = static_cast<int>(live->id) - 1;  // ids follow the submits
  io::SubmitSpec s;
  s.name = fmt::format("job-{}", i);
  s.gpus = 1 + i % 8;
  s.time_limit = (30 + i * 7) * 1000;
  control::Outcome<control::SubmitResult> retry = (*again)->Submit({"lab-a", TenantId(0)}, s, fmt::format("k{}", i));
  ASSERT_TRUE(retry.ok()) << retry.error.message;
  EXPECT_FALSE(retry.value->created);
  EXPECT_EQ(retry.value->id, live->id);
  (*again)->Stop();
  Status replay = control::ReplaySteps(config->state, [](TimeMs, std::vector<Event>) {});
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.message().find("were compacted into a snapshot"), std::string::npos) << replay.message();
}

// A journal whose appends (and reopens) fail while `failing` is set, as a full or failed disk's do.
class FaultyJournal final : public store::Journal {
 public:
  FaultyJournal(std::unique_ptr<store::Journal> inner, std::shared_ptr<std::atomic<bool>> failing)
      : inner_(std::move(inner)), failing_(std::move(failing)) {}
  Result<uint64_t> Append(std::span<const std::string> payloads) override {
    if (*failing_) return Status::Error("state.db: appending: database or disk is full");
    return inner_->Append(payloads);
  }
  Status Read(uint64_t after, const std::function<void(const store::JournalEntry&)>& visit) const override {
    return inner_->Read(after, visit);
  }
  uint64_t last_seq() const override { return inner_->last_seq(); }
  Status Reopen() override {
    if (*failing_) return Status::Error("state.db: cannot open the journal: disk I/O error");
    return inner_->Reopen();
  }
  Result<std::optional<store::Snapshot>> LoadSnapshot() const override { return inner_->LoadSnapshot(); }
  Status SaveSnapshot(uint64_t seq, std::string_view body, bool compact) override {
    if (*failing_) return Status::Error("state.db: saving a snapshot: database or disk is full");
    return inner_->SaveSnapshot(seq, body, compact);
  }
  Status SaveChunk(std::string_view log, uint64_t index, std::string_view bytes) override {
    if (*failing_) return Status::Error("state.db: saving a history chunk: database or disk is full");
    return inner_->SaveChunk(log, index, bytes);
  }
  Result<std::vector<std::string>> LoadChunks(std::string_view log, uint64_t count) const override {
    return inner_->LoadChunks(log, count);
  }

 private:
  std::unique_ptr<store::Journal> inner_;
  std::shared_ptr<std::atomic<bool>> failing_;
};

TEST(ControlPlaneTest, FailedJournalRefusesChangesThenRecoversWithNothingLost) {
  const std::filesystem::path dir = FreshDir();
  Result<io::ServerConfig> config = io::LoadServerConfig(Config(dir));
  ASSERT_TRUE(config.ok());
  auto clock = [t = std::make_shared<std::atomic<TimeMs>>(1'700'000'000'000)] { return t->fetch_add(1'000); };
  auto failing = std::make_shared<std::atomic<bool>>(false);
  auto lines = std::make_shared<std::vector<std::string>>();
  auto lines_mu = std::make_shared<std::mutex>();
  control::Log log = [lines, lines_mu](std::string_view line) {
    std::lock_guard lock(*lines_mu);
    lines->emplace_back(line);
  };
  const control::Principal lab_a{"lab-a", TenantId(0)};
  io::SubmitSpec s;
  s.name = "x";
  s.gpus = 1;
  s.time_limit = 3'600'000;
  std::vector<JobRow> rows;
  {
    Result<std::unique_ptr<store::SqliteJournal>> sqlite = store::SqliteJournal::Open(config->state);
    ASSERT_TRUE(sqlite.ok());
    Result<std::unique_ptr<control::ControlPlane>> plane =
        control::ControlPlane::Open(*config, clock, log, std::make_unique<FaultyJournal>(std::move(*sqlite), failing));
    ASSERT_TRUE(plane.ok()) << plane.status().message();
    (*plane)->Start();
    std::vector<JobId> accepted;
    for (int i = 0; i < 5; ++i) accepted.push_back((*plane)->Submit(lab_a, s, fmt::format("k{}", i)).value->id);
    *failing = true;
    control::Outcome<control::SubmitResult> refused = (*plane)->Submit(lab_a, s, "during");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error.status, 503);
    EXPECT_NE(refused.error.message.find("disk is full"), std::string::npos) << refused.error.message;
    EXPECT_FALSE((*plane)->ready());
    ASSERT_TRUE((*plane)->journal_error().has_value());
    EXPECT_EQ((*plane)->counters().journal_failures, 1u);
    // Still failing past a retry: still refused, the reason now the reopen's.
    std::this_thread::sleep_for(std::chrono::milliseconds(control::ControlPlane::kRecoverRetryMs + 300));
    EXPECT_EQ((*plane)->Submit(lab_a, s, "during").error.status, 503);
    EXPECT_NE((*plane)->journal_error()->find("disk I/O error"), std::string::npos);
    *failing = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!(*plane)->ready() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE((*plane)->ready());
    EXPECT_EQ((*plane)->counters().journal_recoveries, 1u);
    // The refused submit was never accepted: its key makes a new job now, and every accepted one is
    // there with its key.
    control::Outcome<control::SubmitResult> after = (*plane)->Submit(lab_a, s, "during");
    ASSERT_TRUE(after.ok()) << after.error.message;
    EXPECT_TRUE(after.value->created);
    EXPECT_GT(after.value->id, accepted.back());
    for (int i = 0; i < 5; ++i) {
      control::Outcome<control::SubmitResult> retry = (*plane)->Submit(lab_a, s, fmt::format("k{}", i));
      ASSERT_TRUE(retry.ok());
      EXPECT_FALSE(retry.value->created);
      EXPECT_EQ(retry.value->id, accepted[i]);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    (*plane)->Stop();
    rows = Rows(**plane);
  }
  EXPECT_EQ(rows.size(), 6u);
  {
    std::lock_guard lock(*lines_mu);
    ASSERT_GE(lines->size(), 2u);
    EXPECT_NE(lines->front().find("the journal failed, changes are refused until it recovers"), std::string::npos);
    auto recovered = std::find_if(lines->begin(), lines->end(), [](const std::string& l) {
      return l.find("the journal recovered") != std::string::npos;
    });
    ASSERT_NE(recovered, lines->end());
    // Rebuilt, it leads again (a SQLite journal's writer always does).
    EXPECT_TRUE(std::any_of(recovered, lines->end(),
                            [](const std::string& l) { return l.find("leading from journal record") == 0; }));
  }
  // What the recovered server showed is what a restart on the same journal shows.
  Result<std::unique_ptr<control::ControlPlane>> again = control::ControlPlane::Open(*config, clock);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Rows(**again), rows);
}

}  // namespace
}  // namespace joule
