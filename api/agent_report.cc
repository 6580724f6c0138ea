#include "api/agent_report.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace joule::api {
namespace {

using nlohmann::json;

// A failed check: where and why.
struct Bad {
  std::string field, message;
};

// Checks that `j` is an object whose keys are among `required` and `optional`, with every
// required one present.
void Shape(const json& j, const std::string& at, std::initializer_list<const char*> required,
           std::initializer_list<const char*> optional = {}) {
  if (!j.is_object()) throw Bad{at, "must be an object"};
  // A heartbeat has a dozen objects of a dozen keys: linear scans, no allocation.
  for (const char* k : required) {
    if (!j.contains(k)) throw Bad{at.empty() ? k : fmt::format("{}.{}", at, k), "is required"};
  }
  auto in = [](std::initializer_list<const char*> keys, const std::string& key) {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return key == k; });
  };
  for (const auto& [key, value] : j.items()) {
    if (!in(required, key) && !in(optional, key)) {
      throw Bad{at.empty() ? key : fmt::format("{}.{}", at, key), "is not a known field"};
    }
  }
}

template <typename T>
T Unsigned(const json& j, const std::string& at, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max()) {
    throw Bad{fmt::format("{}.{}", at, key), "must be a whole number >= 0"};
  }
  return v.get<T>();
}

double NonNegative(const json& j, const std::string& at, const char* key) {
  const json& v = j.at(key);
  if (!v.is_number() || v.get<double>() < 0) throw Bad{fmt::format("{}.{}", at, key), "must be a number >= 0"};
  return v.get<double>();
}

std::string Text(const json& j, const std::string& at, const char* key, size_t max = 255) {
  const json& v = j.at(key);
  if (!v.is_string() || v.get<std::string>().size() > max) {
    throw Bad{at.empty() ? key : fmt::format("{}.{}", at, key),
              fmt::format("must be a string of at most {} bytes", max)};
  }
  return v.get<std::string>();
}

const json& List(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_array()) throw Bad{key, "must be a list"};
  return v;
}

control::GpuTelemetry Gpu(const json& d, const std::string& at) {
  Shape(d, at, {"index"},
        {"uuid", "model", "memory_mib", "power_watts", "energy_joules", "temperature_c", "utilization_percent",
         "memory_used_mib", "ecc_corrected", "ecc_uncorrected", "xid_errors", "last_xid", "power_limit_watts"});
  control::GpuTelemetry g;
  g.index = Unsigned<uint32_t>(d, at, "index");
  auto text = [&](const char* k) { return d.contains(k) ? Text(d, at, k) : std::string(); };
  auto count = [&](const char* k) { return d.contains(k) ? Unsigned<uint64_t>(d, at, k) : uint64_t{0}; };
  auto number = [&](const char* k) { return d.contains(k) ? NonNegative(d, at, k) : 0.0; };
  g.uuid = text("uuid");
  g.model = text("model");
  g.memory_mib = count("memory_mib");
  g.memory_used_mib = count("memory_used_mib");
  g.power_w = number("power_watts");
  g.energy_j = number("energy_joules");
  g.power_limit_w = number("power_limit_watts");
  g.temperature_c = static_cast<uint32_t>(std::min<uint64_t>(count("temperature_c"), 1000));
  g.utilization_pct = static_cast<uint32_t>(std::min<uint64_t>(count("utilization_percent"), 100));
  g.ecc_corrected = count("ecc_corrected");
  g.ecc_uncorrected = count("ecc_uncorrected");
  g.xid_errors = count("xid_errors");
  g.last_xid = count("last_xid");
  return g;
}

control::AgentReport Parse(const json& body) {
  Shape(body, "", {}, {"address", "ended", "running", "gpus"});
  control::AgentReport r;
  if (body.contains("address")) r.address = Text(body, "", "address");
  if (body.contains("ended")) {
    const json& list = List(body, "ended");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at = fmt::format("ended[{}]", i);
      Shape(list[i], at, {"job", "rank", "run", "exit_code"}, {"energy_joules"});
      if (!list[i]["exit_code"].is_number_integer()) throw Bad{at + ".exit_code", "must be a whole number"};
      control::WorkerExit e{Unsigned<JobId>(list[i], at, "job"), Unsigned<uint32_t>(list[i], at, "rank"),
                            list[i]["exit_code"].get<int>(), Unsigned<uint32_t>(list[i], at, "run"), std::nullopt};
      if (list[i].contains("energy_joules")) e.energy_j = NonNegative(list[i], at, "energy_joules");
      r.ended.push_back(e);
    }
  }
  if (body.contains("running")) {
    const json& list = List(body, "running");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at = fmt::format("running[{}]", i);
      Shape(list[i], at, {"job", "rank", "run", "energy_joules"});
      r.running.push_back({Unsigned<JobId>(list[i], at, "job"), Unsigned<uint32_t>(list[i], at, "rank"),
                           Unsigned<uint32_t>(list[i], at, "run"), NonNegative(list[i], at, "energy_joules")});
    }
  }
  if (body.contains("gpus")) {
    const json& g = body["gpus"];
    Shape(g, "gpus", {"source", "count"}, {"driver_version", "devices"});
    r.gpu_source = Text(g, "gpus", "source", 32);
    r.gpu_count = Unsigned<uint32_t>(g, "gpus", "count");
    if (g.contains("driver_version")) r.driver_version = Text(g, "gpus", "driver_version", 64);
    if (g.contains("devices")) {
      if (!g["devices"].is_array() || g["devices"].size() > 1024)
        throw Bad{"gpus.devices", "must be a list (at most 1024)"};
      for (size_t i = 0; i < g["devices"].size(); ++i)
        r.gpus.push_back(Gpu(g["devices"][i], fmt::format("gpus.devices[{}]", i)));
    }
  }
  return r;
}

}  // namespace

std::variant<control::AgentReport, control::ApiError> ParseAgentReport(std::string_view text) {
  const json body = text.empty() ? json::object() : json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) return control::ApiError{400, "", "the body must be a JSON object"};
  try {
    return Parse(body);
  } catch (const Bad& bad) {
    return control::ApiError{400, bad.field, bad.message};
  }
}

}  // namespace joule::api
