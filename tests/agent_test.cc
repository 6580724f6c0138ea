// The node agent's parts: workers as real processes under `joule agent-shim` (exit codes, stop with
// SIGTERM then SIGKILL, adoption by a new supervisor), telemetry (simulated; NVML through a
// stand-in library, and through the real one where this machine has a GPU) and the
// dcgm-exporter page.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/dcgm_metrics.h"
#include "agent/supervisor.h"
#include "agent/telemetry.h"

namespace joule::agent {
namespace {

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("joule-supervisor-" + std::to_string(getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Supervisor> Open() {
    Result<std::unique_ptr<Supervisor>> s = Supervisor::Open(dir_, JOULE_BINARY);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.status().message());
    return std::move(*s);
  }
  static WorkerLaunch Shell(uint64_t job, std::string script, std::vector<uint32_t> devices = {}) {
    WorkerLaunch l;
    l.key = {job, 0, 1};
    l.world_size = 2;
    l.devices = std::move(devices);
    l.master_addr = "10.0.0.7";
    l.master_port = 20'007;
    l.argv = {"/bin/sh", "-c", std::move(script)};
    l.env = {{"GREETING", "hello"}};
    return l;
  }
  // Reaps until the worker has an exit code (or 20 s pass).
  static std::optional<int> WaitExit(Supervisor& s, const WorkerKey& key, int64_t grace_ms = -1) {
    for (int i = 0; i < 2000; ++i) {
      if (grace_ms >= 0) s.Stop(key, int64_t{i} * 10, grace_ms);
      s.Reap();
      if (s.workers().at(key).exit_code) return s.workers().at(key).exit_code;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }

  std::filesystem::path dir_;
};

TEST_F(SupervisorTest, RunsTheCommandWithTheJobsEnvironmentAndReportsItsExitCode) {
  std::unique_ptr<Supervisor> s = Open();
  const WorkerLaunch l = Shell(
      7,
      R"(echo "$GREETING $JOULE_JOB_ID $RANK $WORLD_SIZE $MASTER_ADDR:$MASTER_PORT $CUDA_VISIBLE_DEVICES $PWD"; echo oops >&2; exit 3)",
      {2, 5});
  ASSERT_TRUE(s->Start(l).ok());
  EXPECT_EQ(WaitExit(*s, l.key), 3);
  EXPECT_EQ(ReadFile(dir_ / "job-7/rank-0.out"), "hello 7 0 2 10.0.0.7:20007 2,5 " + (dir_ / "job-7").string() + "\n");
  EXPECT_EQ(ReadFile(dir_ / "job-7/rank-0.err"), "oops\n");
}

TEST_F(SupervisorTest, EachTaskOfAWorkerGetsItsRankAndOutput) {
  std::unique_ptr<Supervisor> s = Open();
  WorkerLaunch l = Shell(16, R"(echo "$RANK $LOCAL_RANK $NODE_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE")", {0, 1, 2});
  l.key.rank = 1;
  l.tasks = 3;
  ASSERT_TRUE(s->Start(l).ok());
  EXPECT_EQ(WaitExit(*s, l.key), 0);
  // Worker 1 of 2 with 3 tasks each: global ranks 3, 4, 5 of 6.
  EXPECT_EQ(ReadFile(dir_ / "job-16/rank-3.out"), "3 0 1 6 3\n");
  EXPECT_EQ(ReadFile(dir_ / "job-16/rank-5.out"), "5 2 1 6 3\n");
}

TEST_F(SupervisorTest, AFailedTaskStopsItsSiblingsAndFailsTheWorker) {
  std::unique_ptr<Supervisor> s = Open();
  WorkerLaunch l = Shell(17, R"(if [ "$LOCAL_RANK" = 1 ]; then exit 9; fi; exec sleep 60)");
  l.tasks = 3;
  ASSERT_TRUE(s->Start(l).ok());
  EXPECT_EQ(WaitExit(*s, l.key), 9) << "the failed task's code, the sleeping siblings stopped";
}

TEST_F(SupervisorTest, AWorkerThatCannotStartExitsWith127) {
  std::unique_ptr<Supervisor> s = Open();
  WorkerLaunch l = Shell(8, "");
  l.argv = {"/no/such/program"};
  ASSERT_TRUE(s->Start(l).ok());
  EXPECT_EQ(WaitExit(*s, l.key), 127);
  EXPECT_NE(ReadFile(dir_ / "job-8/rank-0.err").find("cannot run /no/such/program"), std::string::npos);
}

TEST_F(SupervisorTest, StopSendsSigtermToTheWholeGroup) {
  std::unique_ptr<Supervisor> s = Open();
  // The worker's child is in the group too: it must go with it.
  const WorkerLaunch l = Shell(9, "sleep 60 & echo $! > child; wait");
  ASSERT_TRUE(s->Start(l).ok());
  const std::filesystem::path child = dir_ / "job-9/child";
  for (int i = 0; i < 500 && ReadFile(child).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const pid_t pid = std::stoi(ReadFile(child));
  EXPECT_EQ(WaitExit(*s, l.key, 10'000), 128 + SIGTERM);
  for (int i = 0; i < 500 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(kill(pid, 0), 0) << "the worker's child outlived the stop";
}

TEST_F(SupervisorTest, AWorkerIgnoringSigtermIsKilledAfterTheGrace) {
  std::unique_ptr<Supervisor> s = Open();
  const WorkerLaunch l = Shell(10, "trap '' TERM; touch ready; while true; do sleep 0.05; done");
  ASSERT_TRUE(s->Start(l).ok());
  for (int i = 0; i < 500 && !std::filesystem::exists(dir_ / "job-10/ready"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Stop is called every 10 "ms" of the test's clock; SIGKILL comes once 300 have passed.
  EXPECT_EQ(WaitExit(*s, l.key, 300), 128 + SIGKILL);
}

TEST_F(SupervisorTest, ANewSupervisorAdoptsRunningWorkersAndReportsThoseThatEndedMeanwhile) {
  const WorkerLaunch running = Shell(11, "while [ ! -e go ]; do sleep 0.05; done; exit 4");
  WorkerLaunch ended = Shell(12, "exit 5");
  {
    std::unique_ptr<Supervisor> first = Open();
    ASSERT_TRUE(first->Start(running).ok());
    ASSERT_TRUE(first->Start(ended).ok());
    // The first agent goes away without reaping anything (as under SIGKILL).
  }
  for (int i = 0; i < 500 && !std::filesystem::exists(dir_ / "job-12/rank-0.run-1.exit"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::unique_ptr<Supervisor> second = Open();
  ASSERT_EQ(second->workers().size(), 2u);
  EXPECT_TRUE(second->workers().at(running.key).adopted);
  second->Reap();
  EXPECT_EQ(second->workers().at(ended.key).exit_code, 5);
  EXPECT_FALSE(second->workers().at(running.key).exit_code) << "a running worker is not ended";
  std::ofstream(dir_ / "job-11/go").close();
  EXPECT_EQ(WaitExit(*second, running.key), 4);
  second->Forget(running.key);
  second->Forget(ended.key);
  ASSERT_TRUE(second->Save().ok());
  EXPECT_TRUE(Open()->workers().empty());
}

TEST_F(SupervisorTest, AnAdoptedWorkerCanBeStopped) {
  const WorkerLaunch l = Shell(13, "sleep 60");
  {
    std::unique_ptr<Supervisor> first = Open();
    ASSERT_TRUE(first->Start(l).ok());
  }
  std::unique_ptr<Supervisor> second = Open();
  EXPECT_EQ(WaitExit(*second, l.key, 10'000), 128 + SIGTERM);
}

TEST_F(SupervisorTest, AnAdoptedWorkerGoneWithoutAnExitCodeIsReportedLost) {
  const WorkerLaunch l = Shell(14, "sleep 60");
  pid_t group = 0;
  {
    std::unique_ptr<Supervisor> first = Open();
    ASSERT_TRUE(first->Start(l).ok());
    group = first->workers().at(l.key).pgid;
  }
  kill(-group, SIGKILL);       // the shim too: nobody records an exit code
  waitpid(group, nullptr, 0);  // as init does for an agent that is gone
  std::unique_ptr<Supervisor> second = Open();
  EXPECT_EQ(WaitExit(*second, l.key), kExitLost);
}

TEST_F(SupervisorTest, AShimThatCannotRunIsAnErrorOfStart) {
  Result<std::unique_ptr<Supervisor>> s = Supervisor::Open(dir_, "/no/such/joule");
  ASSERT_TRUE(s.ok());
  const Status started = (*s)->Start(Shell(18, "true"));
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.message().find("cannot run /no/such/joule agent-shim: No such file"), std::string::npos)
      << started.message();
  EXPECT_TRUE((*s)->workers().empty());
}

// A session leader of this boot that is not a shim (what a crafted workers.json would name).
pid_t StartStranger() {
  const pid_t stranger = fork();
  if (stranger == 0) {
    setsid();
    execl("/bin/sleep", "sleep", "60", nullptr);
    _exit(127);
  }
  for (int i = 0; i < 500 && getpgid(stranger) != stranger; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return stranger;
}

TEST_F(SupervisorTest, AListFromAnotherBootIsReportedNeverSignalled) {
  // A process group that, after a reboot, happens to carry a saved worker's group id.
  const pid_t stranger = StartStranger();
  std::filesystem::create_directories(dir_ / "job-19");
  std::ofstream(dir_ / "job-19/rank-0.run-1.exit") << "0\n";  // ended before the reboot
  std::ofstream(dir_ / "workers.json") << R"({"boot_id":"another-boot","workers":[)"
                                       << R"({"job":19,"rank":0,"run":1,"pgid":)" << stranger
                                       << R"(,"devices":[0],"energy_joules":5.0,"kill_at_ms":-1},)"
                                       << R"({"job":20,"rank":0,"run":1,"pgid":)" << stranger
                                       << R"(,"devices":[1],"energy_joules":7.0,"kill_at_ms":-1}]})";
  std::unique_ptr<Supervisor> s = Open();
  s->Reap();
  s->Stop({20, 0, 1}, 0, 0);
  s->Stop({20, 0, 1}, 1, 0);
  EXPECT_EQ(s->workers().at({19, 0, 1}).exit_code, 0);
  EXPECT_EQ(s->workers().at({20, 0, 1}).exit_code, kExitLost);
  EXPECT_EQ(waitpid(stranger, nullptr, WNOHANG), 0) << "a process of this boot was signalled";
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
}

// Field 22 of /proc/PID/stat, read here independently of the supervisor's reader.
uint64_t StartTicks(pid_t pid) {
  std::string text = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) fields >> field;
  return std::stoull(field);
}

TEST_F(SupervisorTest, ACraftedListNamingAnotherGroupOfThisBootIsNeverSignalled) {
  // Finding: a crafted workers.json made the agent SIGTERM an unrelated process group. With the
  // group's id alone, or with a start time that is not the process's, nothing is signalled.
  const pid_t stranger = StartStranger();
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "workers.json") << R"({"workers":[)"
                                       << R"({"job":21,"rank":0,"run":1,"pgid":)" << stranger
                                       << R"(,"devices":[0],"energy_joules":0,"kill_at_ms":-1},)"
                                       << R"({"job":22,"rank":0,"run":1,"pgid":)" << stranger
                                       << R"(,"devices":[1],"energy_joules":0,"kill_at_ms":-1,"start_ticks":)"
                                       << StartTicks(stranger) + 1 << "}]}";
  std::unique_ptr<Supervisor> s = Open();
  ASSERT_EQ(s->workers().size(), 2u);
  for (const WorkerKey key : {WorkerKey{21, 0, 1}, WorkerKey{22, 0, 1}}) {
    s->Stop(key, 0, 0);
    s->Stop(key, 1, 0);
  }
  s->Reap();
  EXPECT_EQ(s->workers().at({21, 0, 1}).exit_code, kExitLost);
  EXPECT_EQ(s->workers().at({22, 0, 1}).exit_code, kExitLost);
  EXPECT_EQ(waitpid(stranger, nullptr, WNOHANG), 0) << "an unrelated process group was signalled";
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
}

TEST_F(SupervisorTest, StateOfAnotherIncarnationIsMovedAsideNeverAdoptedOrSignalled) {
  // Finding: after the server's state was reset, a new job 1 failed with the old job 1's exit
  // code and never ran.
  const WorkerLaunch old_running = Shell(1, "sleep 60");
  WorkerLaunch old_ended = Shell(2, "exit 3");
  pid_t group = 0;
  {
    std::unique_ptr<Supervisor> first = Open();
    ASSERT_EQ(first->Bind("cluster-a").value(), false) << "an empty folder has nothing to move";
    ASSERT_TRUE(first->Start(old_running).ok());
    ASSERT_TRUE(first->Start(old_ended).ok());
    group = first->workers().at(old_running.key).pgid;
    EXPECT_EQ(WaitExit(*first, old_ended.key), 3);
    ASSERT_TRUE(first->Save().ok());
  }
  {
    std::unique_ptr<Supervisor> same = Open();  // the same server again: adopted, as before
    EXPECT_EQ(same->Bind("cluster-a").value(), false);
    EXPECT_EQ(same->workers().size(), 2u);
  }
  std::unique_ptr<Supervisor> next = Open();
  ASSERT_EQ(next->workers().size(), 2u);
  EXPECT_EQ(next->Bind("cluster-b").value(), true);
  EXPECT_TRUE(next->workers().empty()) << "another incarnation's workers are forgotten";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "job-1")) << "job 1's folder is moved aside";
  EXPECT_EQ(ReadFile(dir_ / "cluster"), "cluster-b\n");
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "stale")) {
    kept = kept || std::filesystem::exists(e.path() / "job-2/rank-0.run-1.exit");
  }
  EXPECT_TRUE(kept) << "the old state is kept for a human, under stale/";
  EXPECT_EQ(kill(-group, 0), 0) << "the old worker was signalled";
  // The new incarnation's job 1 runs from scratch.
  ASSERT_TRUE(next->Start(Shell(1, "exit 0")).ok());
  EXPECT_EQ(WaitExit(*next, {1, 0, 1}), 0);
  EXPECT_TRUE(Open()->workers().size() == 1);
  kill(-group, SIGKILL);
  waitpid(group, nullptr, 0);
}

TEST_F(SupervisorTest, AWorkerListThatIsNotOneIsRefusedWithItsPath) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "workers.json") << "{not json";
  Result<std::unique_ptr<Supervisor>> s = Supervisor::Open(dir_, JOULE_BINARY);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("workers.json"), std::string::npos) << s.status().message();
}

TEST_F(SupervisorTest, EnergyGoesToTheWorkerOnTheDevice) {
  std::unique_ptr<Supervisor> s = Open();
  const WorkerLaunch l = Shell(15, "sleep 60", {1});
  ASSERT_TRUE(s->Start(l).ok());
  std::vector<GpuReading> r(2);
  r[0].energy_mj = 1'000'000;
  r[1].energy_mj = 2'000'000;
  s->AddEnergy(r);  // the first reading is the baseline
  r[0].energy_mj += 500'000;
  r[1].energy_mj += 250'000;
  s->AddEnergy(r);
  r[1].energy_mj = 1'000;  // the counter restarted (driver reload): no negative energy
  s->AddEnergy(r);
  EXPECT_DOUBLE_EQ(s->workers().at(l.key).energy_j, 250.0);
  EXPECT_EQ(WaitExit(*s, l.key, 10'000), 128 + SIGTERM);
}

TEST(SimulatedTelemetry, IdleThenBusyPowerIntegratesToEnergy) {
  int64_t now = 0;
  const Catalog catalog = Catalog::BuiltIn();
  const AcceleratorType& h100 = catalog.accelerator(*catalog.FindAccelerator("h100-sxm"));
  std::unique_ptr<Telemetry> t = OpenSimulated(h100, 2, "n0", [&] { return now; });
  ASSERT_EQ(t->gpus().size(), 2u);
  EXPECT_EQ(t->gpus()[1].memory_mib, 80u * 1024);
  now = 10'000;  // 10 s idle at 70 W: 700 J
  t->SetBusy({false, true});
  now = 20'000;  // then 10 s: device 1 at 90% of 700 W
  Result<std::vector<GpuReading>> r = t->Read();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].energy_mj, 1'400'000u);
  EXPECT_EQ((*r)[1].energy_mj, 700'000u + 6'300'000u);
  EXPECT_DOUBLE_EQ((*r)[1].power_w, 630);
  EXPECT_EQ((*r)[1].utilization_pct, 100u);
  EXPECT_GT((*r)[1].temperature_c, (*r)[0].temperature_c);
  ASSERT_TRUE(t->SetPowerLimit(1, 400).ok());
  EXPECT_DOUBLE_EQ((*t->Read())[1].power_w, 400);
  EXPECT_FALSE(t->SetPowerLimit(2, 400).ok());
}

TEST(NvmlTelemetry, ReadsEveryFieldThroughTheLibraryInMilliUnits) {
  Result<std::unique_ptr<Telemetry>> t = OpenNvml(FAKE_NVML);
  ASSERT_TRUE(t.ok()) << t.status().message();
  Telemetry& nvml = **t;
  EXPECT_EQ(nvml.source(), "nvml");
  EXPECT_EQ(nvml.driver_version(), "550.54.15");
  ASSERT_EQ(nvml.gpus().size(), 2u);
  EXPECT_EQ(nvml.gpus()[1].uuid, "GPU-fake-1");
  EXPECT_EQ(nvml.gpus()[0].model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(nvml.gpus()[0].memory_mib, 80u * 1024);
  EXPECT_DOUBLE_EQ(nvml.gpus()[0].default_power_limit_w, 700);
  Result<std::vector<GpuReading>> first = nvml.Read();
  ASSERT_TRUE(first.ok()) << first.status().message();
  const GpuReading& g = (*first)[1];
  EXPECT_DOUBLE_EQ(g.power_w, 312.5);
  EXPECT_EQ(g.temperature_c, 41u);
  EXPECT_EQ(g.utilization_pct, 87u);
  EXPECT_EQ(g.memory_used_mib, 1024u);
  EXPECT_EQ(g.ecc_corrected, 3u);
  EXPECT_EQ(g.last_xid, 79u);
  EXPECT_EQ(g.xid_count, 1u);
  EXPECT_EQ((*first)[0].xid_count, 0u);
  const uint64_t before = g.energy_mj;
  EXPECT_EQ((*nvml.Read())[1].energy_mj, before + 1000);
  ASSERT_TRUE(nvml.SetPowerLimit(0, 350).ok());
  EXPECT_DOUBLE_EQ((*nvml.Read())[0].power_limit_w, 350);
  const Status refused = nvml.SetPowerLimit(0, 50);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("nvmlDeviceSetPowerManagementLimit"), std::string::npos) << refused.message();
}

TEST(NvmlTelemetry, MissingLibraryOrSymbolsAreNamed) {
  Result<std::unique_ptr<Telemetry>> none = OpenNvml("/no/such/libnvidia-ml.so.1");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("cannot load /no/such/libnvidia-ml.so.1"), std::string::npos);
  Result<std::unique_ptr<Telemetry>> wrong = OpenNvml("libm.so.6");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("symbols missing: nvmlInit_v2"), std::string::npos)
      << wrong.status().message();
}

// On a machine with an NVIDIA GPU and its driver: real readings, checked for plausibility.
TEST(NvmlOnThisMachine, PowerIsBetweenIdleAndRatedAndEnergyGrows) {
  Result<std::unique_ptr<Telemetry>> t = OpenNvml();
  if (!t.ok()) GTEST_SKIP() << "no NVIDIA GPU here (" << t.status().message() << "): NVML not exercised";
  Telemetry& nvml = **t;
  Result<std::vector<GpuReading>> first = nvml.Read();
  ASSERT_TRUE(first.ok()) << first.status().message();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Result<std::vector<GpuReading>> second = nvml.Read();
  ASSERT_TRUE(second.ok()) << second.status().message();
  for (size_t i = 0; i < nvml.gpus().size(); ++i) {
    const GpuReading& a = (*first)[i];
    const GpuReading& b = (*second)[i];
    std::printf("gpu %zu %s: %.1f W (limit %.0f W, default %.0f W), %d C, %u%%, energy +%llu mJ in 2 s\n", i,
                nvml.gpus()[i].model.c_str(), b.power_w, b.power_limit_w, nvml.gpus()[i].default_power_limit_w,
                static_cast<int>(b.temperature_c), b.utilization_pct,
                static_cast<unsigned long long>(b.energy_mj - a.energy_mj));
    EXPECT_GT(b.power_w, 5.0) << "an idle data-centre GPU draws tens of watts";
    EXPECT_LE(b.power_w, 1.1 * nvml.gpus()[i].default_power_limit_w);
    EXPECT_GT(b.energy_mj, a.energy_mj);
    // Energy over 2 s agrees with the power readings within a wide margin.
    const double joules = static_cast<double>(b.energy_mj - a.energy_mj) / 1000;
    EXPECT_GT(joules, 0.5 * 2 * std::min(a.power_w, b.power_w));
    EXPECT_LT(joules, 2.0 * 2.5 * std::max(a.power_w, b.power_w));
  }
}

TEST(DcgmMetrics, UsesDcgmExportersNamesAndLabels) {
  const std::vector<GpuInfo> gpus = {{0, "GPU-a", "NVIDIA H100 80GB HBM3", 81'920, 700},
                                     {1, "GPU-b", "x\"y", 81'920, 700}};
  std::vector<GpuReading> readings(2);
  readings[0].power_w = 512.25;
  readings[0].energy_mj = 123'456;
  readings[0].memory_used_mib = 1'920;
  readings[1].last_xid = 79;
  AgentMetrics m{"node-7", "550.54.15", &gpus, &readings, {{0, 42}}, 1, 2};
  const std::string text = FormatMetrics(m);
  EXPECT_NE(text.find("# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n"), std::string::npos);
  EXPECT_NE(
      text.find(R"(DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",)"
                R"(Hostname="node-7",DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="42"} 512.25)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n"), std::string::npos);
  EXPECT_NE(text.find(R"(DCGM_FI_DEV_FB_FREE{gpu="0",)"), std::string::npos);
  EXPECT_NE(text.find("} 80000\n"), std::string::npos) << "free = total - used";
  EXPECT_NE(text.find(R"(modelName="x\"y")"), std::string::npos) << "label values escaped";
  EXPECT_NE(text.find(R"(DCGM_FI_DEV_XID_ERRORS{gpu="1",)"), std::string::npos);
  EXPECT_NE(text.find("joule_agent_heartbeat_failures_total 2\n"), std::string::npos);
}

}  // namespace
}  // namespace joule::agent
