// The agents' heartbeat body (api/agent_report.cc): what is read, and every refusal naming its
// field and rule.
#include "api/agent_report.h"

#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace joule::api {
namespace {

control::ApiError Refused(const std::string& body) {
  auto r = ParseAgentReport(body);
  if (!std::holds_alternative<control::ApiError>(r)) {
    ADD_FAILURE() << "accepted: " << body;
    return {};
  }
  return std::get<control::ApiError>(r);
}

control::AgentReport Read(const std::string& body) {
  auto r = ParseAgentReport(body);
  if (auto* e = std::get_if<control::ApiError>(&r)) {
    ADD_FAILURE() << "refused: " << e->field << " " << e->message << " in " << body;
    return {};
  }
  return std::get<control::AgentReport>(r);
}

std::string Device(int index, const std::string& extra = "") {
  return fmt::format(
      R"({{"index":{},"uuid":"GPU-{}","model":"NVIDIA H100 80GB HBM3","memory_mib":81920,"power_watts":512.5,)"
      R"("energy_joules":1000,"temperature_c":61,"utilization_percent":97,"memory_used_mib":40000,)"
      R"("ecc_corrected":3,"ecc_uncorrected":0,"xid_errors":1,"last_xid":79,"power_limit_watts":700.0{}}})",
      index, index, extra);
}

TEST(AgentReport, ReadsEveryField) {
  const control::AgentReport r =
      Read(R"({"address":"10.1.2.3","ended":[{"job":7,"rank":1,"run":2,"exit_code":137,"energy_joules":12.5}],)"
           R"("running":[{"job":8,"rank":0,"run":1,"energy_joules":3}],)"
           R"("gpus":{"source":"nvml","count":2,"driver_version":"550.54","devices":[)" +
           Device(0) + "," + Device(1) + "]}}");
  EXPECT_EQ(r.address, "10.1.2.3");
  ASSERT_EQ(r.ended.size(), 1u);
  EXPECT_EQ(r.ended[0].job, 7u);
  EXPECT_EQ(r.ended[0].rank, 1u);
  EXPECT_EQ(r.ended[0].run, 2u);
  EXPECT_EQ(r.ended[0].exit_code, 137);
  EXPECT_EQ(r.ended[0].energy_j, 12.5);
  ASSERT_EQ(r.running.size(), 1u);
  EXPECT_EQ(r.running[0].job, 8u);
  EXPECT_EQ(r.running[0].energy_j, 3.0);
  EXPECT_EQ(r.gpu_source, "nvml");
  EXPECT_EQ(r.gpu_count, 2u);
  EXPECT_EQ(r.driver_version, "550.54");
  ASSERT_EQ(r.gpus.size(), 2u);
  const control::GpuTelemetry& g = r.gpus[1];
  EXPECT_EQ(g.index, 1u);
  EXPECT_EQ(g.uuid, "GPU-1");
  EXPECT_EQ(g.model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(g.memory_mib, 81920u);
  EXPECT_EQ(g.memory_used_mib, 40000u);
  EXPECT_EQ(g.power_w, 512.5);
  EXPECT_EQ(g.energy_j, 1000.0);
  EXPECT_EQ(g.power_limit_w, 700.0);
  EXPECT_EQ(g.temperature_c, 61u);
  EXPECT_EQ(g.utilization_pct, 97u);
  EXPECT_EQ(g.ecc_corrected, 3u);
  EXPECT_EQ(g.xid_errors, 1u);
  EXPECT_EQ(g.last_xid, 79u);
}

TEST(AgentReport, AnEmptyBodyOrObjectIsAQuickHeartbeat) {
  for (const std::string body : {"", "{}", " { } "}) {
    const control::AgentReport r = Read(body);
    EXPECT_TRUE(r.ended.empty() && r.running.empty() && r.gpus.empty() && !r.gpu_count) << body;
  }
}

TEST(AgentReport, ARepeatedFieldCountsOnceItsLastValue) {
  EXPECT_EQ(Read(R"({"address":"a","address":"b"})").address, "b");
  const control::AgentReport r =
      Read(R"({"gpus":{"source":"nvml","count":1,"devices":[)" + Device(0, R"(,"temperature_c":40)") + "]}}");
  EXPECT_EQ(r.gpus.at(0).temperature_c, 40u);
}

TEST(AgentReport, ReadingsAreClampedToTheirRange) {
  const control::AgentReport r = Read(R"({"gpus":{"source":"nvml","count":1,"devices":[)" +
                                      Device(0, R"(,"temperature_c":5000,"utilization_percent":250)") + "]}}");
  EXPECT_EQ(r.gpus.at(0).temperature_c, 1000u);
  EXPECT_EQ(r.gpus.at(0).utilization_pct, 100u);
}

TEST(AgentReport, RefusalsNameTheFieldAndTheRule) {
  struct Case {
    std::string body, field, message;
  };
  const std::string bad_utf8 = "{\"address\":\"\xff\xfe\"}";
  const Case cases[] = {
      {"[]", "", "the body must be a JSON object"},
      {"{\"address\":", "", "the body must be a JSON object"},
      {bad_utf8, "", "the body must be a JSON object"},
      {R"({"nodes":1})", "nodes", "is not a known field"},
      {R"({"address":7})", "address", "must be a string of at most 255 bytes"},
      {R"({"address":")" + std::string(256, 'a') + R"("})", "address", "must be a string of at most 255 bytes"},
      {R"({"ended":{}})", "ended", "must be a list"},
      {R"({"ended":[7]})", "ended[0]", "must be an object"},
      {R"({"ended":[{"job":1,"rank":0,"run":1}]})", "ended[0].exit_code", "is required"},
      {R"({"ended":[{"job":1,"rank":0,"run":1,"exit_code":1.5}]})", "ended[0].exit_code",
       "must be a whole number >= 0"},
      // Exit statuses are 0 to 255: 4294967296 once read as 0 and completed the job.
      {R"({"ended":[{"job":1,"rank":0,"run":1,"exit_code":4294967296}]})", "ended[0].exit_code",
       "must be an exit status, 0 to 255"},
      {R"({"ended":[{"job":1,"rank":0,"run":1,"exit_code":256}]})", "ended[0].exit_code",
       "must be an exit status, 0 to 255"},
      {R"({"ended":[{"job":1,"rank":0,"run":1,"exit_code":-1}]})", "ended[0].exit_code", "must be a whole number >= 0"},
      {R"({"ended":[{"job":-1,"rank":0,"run":1,"exit_code":0}]})", "ended[0].job", "must be a whole number >= 0"},
      {R"({"ended":[{"job":1,"rank":0,"run":1,"exit_code":0,"energy_joules":-1}]})", "ended[0].energy_joules",
       "must be a number >= 0"},
      {R"({"running":[{"job":1,"rank":0,"run":1,"energy_joules":"x"}]})", "running[0].energy_joules",
       "must be a number >= 0"},
      {R"({"running":[{"job":1,"rank":4294967296,"run":1,"energy_joules":0}]})", "running[0].rank",
       "must be a whole number >= 0"},
      {R"({"gpus":{"count":1}})", "gpus.source", "is required"},
      {R"({"gpus":{"source":"nvml","count":1,"devices":{}}})", "gpus.devices", "must be a list (at most 1024)"},
      {R"({"gpus":{"source":"nvml","count":1,"devices":[{"uuid":"x"}]}})", "gpus.devices[0].index", "is required"},
      {R"({"gpus":{"source":"nvml","count":1,"devices":[)" + Device(0) + "," + Device(1, R"(,"fan":1)") + "]}}",
       "gpus.devices[1].fan", "is not a known field"},
      {R"({"gpus":{"source":"nvml","count":1,"devices":[)" + Device(0, R"(,"power_watts":-5)") + "]}}",
       "gpus.devices[0].power_watts", "must be a number >= 0"},
  };
  for (const Case& c : cases) {
    const control::ApiError e = Refused(c.body);
    EXPECT_EQ(e.status, 400) << c.body;
    EXPECT_EQ(e.field, c.field) << c.body;
    EXPECT_EQ(e.message, c.message) << c.body;
  }
}

// What a forged or broken agent might send: nesting past any depth a parser allows, a number past
// 64 bits, a NUL in a key. Each is a 400, never a crash.
TEST(AgentReport, HostileBodiesAreRefused) {
  const std::string deep = R"({"address":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  EXPECT_EQ(Refused(deep).status, 400);
  EXPECT_EQ(Refused(R"({"ended":[{"job":123456789012345678901234567890,"rank":0,"run":1,"exit_code":0}]})").status,
            400);
  constexpr char kNulInKey[] = "{\"addr\0ess\":\"x\"}";
  EXPECT_EQ(Refused(std::string(kNulInKey, sizeof kNulInKey - 1)).status, 400);
}

TEST(AgentReport, TooManyDevicesAndALargeBodyAreRefusedOrRead) {
  std::string devices;
  for (int i = 0; i < 1025; ++i) {
    if (i > 0) devices += ",";
    devices += Device(i);
  }
  const control::ApiError e = Refused(R"({"gpus":{"source":"nvml","count":1,"devices":[)" + devices + "]}}");
  EXPECT_EQ(e.field, "gpus.devices");
  // 1,024 devices (about 400 KB): read by a parser of its own, then a small report by the kept one.
  devices = devices.substr(0, devices.rfind(",{"));
  EXPECT_EQ(Read(R"({"gpus":{"source":"nvml","count":1024,"devices":[)" + devices + "]}}").gpus.size(), 1024u);
  EXPECT_EQ(Read(R"({"address":"x"})").address, "x");
}

}  // namespace
}  // namespace joule::api
