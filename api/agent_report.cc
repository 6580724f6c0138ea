#include "api/agent_report.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <simdjson.h>

namespace joule::api {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

// A campus's agents send some 4,000 of these a second, each with a dozen GPUs' readings: they are
// read with simdjson (Debian's libsimdjson-dev) into its tape, not into a tree of maps, and
// checked in one walk (a third of a heartbeat's cost went to parsing it into nlohmann::json).

// A failed check: where and why.
struct Bad {
  std::string field, message;
};

std::string Path(std::string_view at, std::string_view key) {
  return at.empty() ? std::string(key) : fmt::format("{}.{}", at, key);
}

// The value of `key` in `o`: the last one where the key repeats (as other JSON readers take it).
std::optional<element> Find(const object& o, std::string_view key) {
  std::optional<element> found;
  for (const auto field : o) {
    if (field.key == key) found = field.value;
  }
  return found;
}

// Checks that `j` is an object whose keys are among `required` and `optional`, with every
// required one present.
object Shape(const element& j, std::string_view at, std::initializer_list<std::string_view> required,
             std::initializer_list<std::string_view> optional = {}) {
  object o;
  if (j.get(o) != simdjson::SUCCESS) throw Bad{std::string(at), "must be an object"};
  for (std::string_view k : required) {
    if (!Find(o, k)) throw Bad{Path(at, k), "is required"};
  }
  auto in = [](std::initializer_list<std::string_view> keys, std::string_view key) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  for (const auto field : o) {
    if (!in(required, field.key) && !in(optional, field.key)) throw Bad{Path(at, field.key), "is not a known field"};
  }
  return o;
}

// A whole number >= 0 (written without a fraction or exponent).
std::optional<uint64_t> WholeNumber(const element& v) {
  if (v.type() == element_type::UINT64) return v.get_uint64().value_unsafe();
  if (v.type() == element_type::INT64 && v.get_int64().value_unsafe() >= 0) {
    return static_cast<uint64_t>(v.get_int64().value_unsafe());
  }
  return std::nullopt;
}

template <typename T>
T Unsigned(const element& v, std::string_view at, std::string_view key) {
  const std::optional<uint64_t> n = WholeNumber(v);
  if (!n || *n > std::numeric_limits<T>::max()) throw Bad{Path(at, key), "must be a whole number >= 0"};
  return static_cast<T>(*n);
}

double NonNegative(const element& v, std::string_view at, std::string_view key) {
  double d = 0;
  switch (v.type()) {
    case element_type::DOUBLE:
      d = v.get_double().value_unsafe();
      break;
    case element_type::INT64:
      d = static_cast<double>(v.get_int64().value_unsafe());
      break;
    case element_type::UINT64:
      d = static_cast<double>(v.get_uint64().value_unsafe());
      break;
    default:
      throw Bad{Path(at, key), "must be a number >= 0"};
  }
  if (!(d >= 0)) throw Bad{Path(at, key), "must be a number >= 0"};
  return d;
}

std::string Text(const element& v, std::string_view at, std::string_view key, size_t max = 255) {
  std::string_view s;
  if (v.get(s) != simdjson::SUCCESS || s.size() > max) {
    throw Bad{Path(at, key), fmt::format("must be a string of at most {} bytes", max)};
  }
  return std::string(s);
}

simdjson::dom::array List(const element& v, std::string_view key) {
  simdjson::dom::array a;
  if (v.get(a) != simdjson::SUCCESS) throw Bad{std::string(key), "must be a list"};
  return a;
}

control::GpuTelemetry Gpu(const element& d, const std::string& at) {
  const object o =
      Shape(d, at, {"index"},
            {"uuid", "model", "memory_mib", "power_watts", "energy_joules", "temperature_c", "utilization_percent",
             "memory_used_mib", "ecc_corrected", "ecc_uncorrected", "xid_errors", "last_xid", "power_limit_watts"});
  control::GpuTelemetry g;
  // One walk over the fields (Shape checked their names); a repeated field is checked each time,
  // the last one counts.
  for (const auto field : o) {
    const std::string_view k = field.key;
    const element& v = field.value;
    if (k == "index") {
      g.index = Unsigned<uint32_t>(v, at, k);
    } else if (k == "uuid") {
      g.uuid = Text(v, at, k);
    } else if (k == "model") {
      g.model = Text(v, at, k);
    } else if (k == "memory_mib") {
      g.memory_mib = Unsigned<uint64_t>(v, at, k);
    } else if (k == "memory_used_mib") {
      g.memory_used_mib = Unsigned<uint64_t>(v, at, k);
    } else if (k == "power_watts") {
      g.power_w = NonNegative(v, at, k);
    } else if (k == "energy_joules") {
      g.energy_j = NonNegative(v, at, k);
    } else if (k == "power_limit_watts") {
      g.power_limit_w = NonNegative(v, at, k);
    } else if (k == "temperature_c") {
      g.temperature_c = static_cast<uint32_t>(std::min<uint64_t>(Unsigned<uint64_t>(v, at, k), 1000));
    } else if (k == "utilization_percent") {
      g.utilization_pct = static_cast<uint32_t>(std::min<uint64_t>(Unsigned<uint64_t>(v, at, k), 100));
    } else if (k == "ecc_corrected") {
      g.ecc_corrected = Unsigned<uint64_t>(v, at, k);
    } else if (k == "ecc_uncorrected") {
      g.ecc_uncorrected = Unsigned<uint64_t>(v, at, k);
    } else if (k == "xid_errors") {
      g.xid_errors = Unsigned<uint64_t>(v, at, k);
    } else if (k == "last_xid") {
      g.last_xid = Unsigned<uint64_t>(v, at, k);
    }
  }
  return g;
}

control::AgentReport Parse(const element& body) {
  const object top = Shape(body, "", {}, {"address", "ended", "running", "gpus"});
  control::AgentReport r;
  if (std::optional<element> v = Find(top, "address")) r.address = Text(*v, "", "address");
  if (std::optional<element> v = Find(top, "ended")) {
    size_t i = 0;
    for (const element e : List(*v, "ended")) {
      const std::string at = fmt::format("ended[{}]", i++);
      const object o = Shape(e, at, {"job", "rank", "run", "exit_code"}, {"energy_joules"});
      // A process's exit status, as the shim writes it (128 + the signal for a killed one): 0 to 255.
      const uint64_t code = Unsigned<uint64_t>(*Find(o, "exit_code"), at, "exit_code");
      if (code > 255) throw Bad{at + ".exit_code", "must be an exit status, 0 to 255"};
      control::WorkerExit exit{Unsigned<JobId>(*Find(o, "job"), at, "job"),
                               Unsigned<uint32_t>(*Find(o, "rank"), at, "rank"), static_cast<int>(code),
                               Unsigned<uint32_t>(*Find(o, "run"), at, "run"), std::nullopt};
      if (std::optional<element> j = Find(o, "energy_joules")) exit.energy_j = NonNegative(*j, at, "energy_joules");
      r.ended.push_back(exit);
    }
  }
  if (std::optional<element> v = Find(top, "running")) {
    size_t i = 0;
    for (const element e : List(*v, "running")) {
      const std::string at = fmt::format("running[{}]", i++);
      const object o = Shape(e, at, {"job", "rank", "run", "energy_joules"});
      r.running.push_back({Unsigned<JobId>(*Find(o, "job"), at, "job"),
                           Unsigned<uint32_t>(*Find(o, "rank"), at, "rank"),
                           Unsigned<uint32_t>(*Find(o, "run"), at, "run"),
                           NonNegative(*Find(o, "energy_joules"), at, "energy_joules")});
    }
  }
  if (std::optional<element> v = Find(top, "gpus")) {
    const object g = Shape(*v, "gpus", {"source", "count"}, {"driver_version", "devices"});
    r.gpu_source = Text(*Find(g, "source"), "gpus", "source", 32);
    r.gpu_count = Unsigned<uint32_t>(*Find(g, "count"), "gpus", "count");
    if (std::optional<element> d = Find(g, "driver_version")) r.driver_version = Text(*d, "gpus", "driver_version", 64);
    if (std::optional<element> d = Find(g, "devices")) {
      simdjson::dom::array devices;
      if (d->get(devices) != simdjson::SUCCESS || devices.size() > 1024) {
        throw Bad{"gpus.devices", "must be a list (at most 1024)"};
      }
      size_t i = 0;
      for (const element e : devices) {
        r.gpus.push_back(Gpu(e, fmt::format("gpus.devices[{}]", i)));
        i++;
      }
    }
  }
  return r;
}

}  // namespace

std::variant<control::AgentReport, control::ApiError> ParseAgentReport(std::string_view text) {
  if (text.empty()) return control::AgentReport{};
  // A parser keeps the room of the largest document it read: each thread keeps one for reports
  // of the usual size; a larger one (up to the body limit) gets a parser of its own, let go after.
  constexpr size_t kKeptRoom = 64 * 1024;
  thread_local simdjson::dom::parser kept;
  std::optional<simdjson::dom::parser> own;
  simdjson::dom::parser& parser = text.size() <= kKeptRoom ? kept : own.emplace();
  element body;
  if (parser.parse(text.data(), text.size()).get(body) != simdjson::SUCCESS || body.type() != element_type::OBJECT) {
    return control::ApiError{400, "", "the body must be a JSON object"};
  }
  try {
    return Parse(body);
  } catch (const Bad& bad) {
    return control::ApiError{400, bad.field, bad.message};
  }
}

}  // namespace joule::api
