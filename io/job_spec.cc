#include "io/job_spec.h"

#include <cmath>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "base/text.h"
#include "io/sbatch.h"
#include "io/yaml_fields.h"

namespace joule::io {
namespace {

constexpr std::string_view kTopologyNames[] = {"any", "prefer-compact", "require-nvlink-domain"};

std::optional<TopologyRule> TopologyNamed(std::string_view name) {
  for (size_t i = 0; i < std::size(kTopologyNames); ++i) {
    if (kTopologyNames[i] == name) return static_cast<TopologyRule>(i);
  }
  return std::nullopt;
}

std::string Indexed(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

uint32_t WholeCount(const Fields& f, const char* key, double min, double max) {
  const double n = f.Number(key, min, max);
  if (n != std::floor(n)) f.Fail(key, "must be a whole number");
  return static_cast<uint32_t>(n);
}

std::vector<std::string> Strings(const Fields& f, const char* key) {
  const YAML::Node list = f.Get(key);
  if (!list.IsSequence()) f.Fail(key, "must be a list of strings");
  if (list.size() > kMaxArgs) f.Fail(key, fmt::format("at most {} entries", kMaxArgs));
  std::vector<std::string> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].IsScalar()) ThrowAt(list[i], Indexed(f.PathOf(key), i), "must be a string");
    out.push_back(list[i].Scalar());
  }
  return out;
}

SubmitSpec Parse(const YAML::Node& root) {
  Fields f(root, "",
           {"name", "tenant", "queue", "priority_class", "workers", "resources", "topology", "time_limit",
            "runtime_estimate", "checkpoint_interval", "after_ok", "failure_policy", "command", "args", "env",
            "tasks_per_worker", "script"});
  SubmitSpec s;
  s.name = f.String("name");
  if (s.name.empty() || s.name.size() > kMaxNameLength) {
    f.Fail("name", fmt::format("must be 1 to {} characters", kMaxNameLength));
  }
  s.tenant = f.OptString("tenant");
  s.queue = f.OptString("queue");
  s.priority_class = f.OptString("priority_class");
  if (f.Has("workers")) s.workers = WholeCount(f, "workers", 1, 1e6);
  if (f.Has("resources")) {
    Fields r(f.Get("resources"), f.PathOf("resources"), {"gpus", "gpu_type", "cpu", "memory_gib"});
    if (r.Has("gpus")) s.gpus = WholeCount(r, "gpus", 0, 1024);
    s.gpu_type = r.OptString("gpu_type");
    if (r.Has("cpu")) s.cpu = std::llround(r.Number("cpu", 0, 1e5) * 1000);
    if (r.Has("memory_gib")) s.memory = std::llround(r.Number("memory_gib", 0, 1e6) * 1024);
  }
  if (f.Has("topology")) {
    const std::optional<TopologyRule> t = TopologyNamed(f.String("topology"));
    if (!t) f.Fail("topology", "must be any, prefer-compact or require-nvlink-domain");
    s.topology = *t;
  }
  if (f.Has("time_limit")) s.time_limit = f.Duration("time_limit");
  if (f.Has("runtime_estimate")) s.runtime_estimate = f.Duration("runtime_estimate");
  if (f.Has("checkpoint_interval")) s.checkpoint_interval = f.Duration("checkpoint_interval");
  if (f.Has("after_ok")) {
    const YAML::Node ids = f.List("after_ok");
    for (size_t i = 0; i < ids.size(); ++i) {
      uint64_t id = 0;
      if (!ids[i].IsScalar() || !YAML::convert<uint64_t>::decode(ids[i], id)) {
        ThrowAt(ids[i], Indexed(f.PathOf("after_ok"), i), "must be a job id");
      }
      s.after_ok.push_back(id);
    }
  }
  if (f.Has("failure_policy")) {
    Fields p(f.Get("failure_policy"), f.PathOf("failure_policy"), {"max_restarts", "backoff", "spare_nodes"});
    if (p.Has("max_restarts")) s.max_restarts = WholeCount(p, "max_restarts", 0, 1e6);
    if (p.Has("backoff")) s.restart_backoff = p.Duration("backoff");
    if (p.Has("spare_nodes")) s.spare_nodes = WholeCount(p, "spare_nodes", 0, 1e6);
    if (s.spare_nodes > 0 && s.gpus == 0) p.Fail("spare_nodes", "hot spares are for workers with GPUs");
  }
  if (f.Has("command")) s.command = Strings(f, "command");
  if (f.Has("args")) s.args = Strings(f, "args");
  if (f.Has("env")) {
    const YAML::Node env = f.Get("env");
    if (!env.IsMap()) f.Fail("env", "must be a mapping of names to strings");
    if (env.size() > kMaxEnv) f.Fail("env", fmt::format("at most {} variables", kMaxEnv));
    for (const auto& kv : env) {
      if (!kv.second.IsScalar()) ThrowAt(kv.second, f.PathOf("env") + "." + kv.first.Scalar(), "must be a string");
      s.env[kv.first.Scalar()] = kv.second.Scalar();
    }
  }
  if (f.Has("tasks_per_worker")) s.tasks_per_worker = WholeCount(f, "tasks_per_worker", 1, 1024);
  if (f.Has("script")) s.script = f.String("script");
  if (s.command.empty() && !s.args.empty()) f.Fail("args", "needs a command");
  return s;
}

}  // namespace

// The fast path for plain JSON (the API's usual body): nlohmann's parser instead of yaml-cpp's,
// several times faster. It accepts only what it is sure of — integers where counts go, numbers or
// nothing for durations, strings without escapes, no repeated keys — and gives up (nullopt) on
// anything else, valid or not, which then takes the YAML path and its located errors. Accepted
// specs equal the YAML path's (checked by fuzz/job_spec_fuzz.cc).
std::optional<SubmitSpec> ParsePlainJson(const std::string& text) {
  using nlohmann::json;
  // nlohmann's lexer takes a NUL byte for the end of the input: what follows one would be ignored.
  if (text.find_first_of(std::string_view("\\\0", 2)) != std::string::npos) return std::nullopt;
  bool repeated = false;
  std::vector<std::vector<std::string>> keys;
  const json root = json::parse(
      text,
      [&](int, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        if (event == json::parse_event_t::object_end) keys.pop_back();
        if (event == json::parse_event_t::key) {
          const std::string& key = parsed.get_ref<const std::string&>();
          if (std::find(keys.back().begin(), keys.back().end(), key) != keys.back().end()) repeated = true;
          keys.back().push_back(key);
        }
        return true;
      },
      /*allow_exceptions=*/false);
  if (repeated || !root.is_object()) return std::nullopt;
  auto only = [](const json& j, std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : j.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) return false;
    }
    return true;
  };
  auto whole = [](const json& j, uint64_t min, uint64_t max) -> std::optional<uint32_t> {
    if (!j.is_number_unsigned() || j.get<uint64_t>() < min || j.get<uint64_t>() > max) return std::nullopt;
    return static_cast<uint32_t>(j.get<uint64_t>());
  };
  auto text_of = [](const json& j) -> std::optional<std::string> {
    if (!j.is_string()) return std::nullopt;
    const std::string& v = j.get_ref<const std::string&>();
    for (char c : v) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    }
    if (v.empty() || v.front() == ' ' || v.back() == ' ') return std::nullopt;
    return v;
  };
  auto duration = [](const json& j) -> std::optional<TimeMs> {
    if (!j.is_number()) return std::nullopt;
    const double seconds = j.get<double>();
    if (!(seconds > 0) || seconds > 1e9) return std::nullopt;
    return std::llround(seconds * 1000);
  };
  auto strings = [&](const json& j) -> std::optional<std::vector<std::string>> {
    if (!j.is_array() || j.size() > kMaxArgs) return std::nullopt;
    std::vector<std::string> out;
    for (const json& e : j) {
      std::optional<std::string> v = text_of(e);
      if (!v) return std::nullopt;
      out.push_back(std::move(*v));
    }
    return out;
  };
  if (!only(root, {"name", "tenant", "queue", "priority_class", "workers", "resources", "topology", "time_limit",
                   "runtime_estimate", "checkpoint_interval", "after_ok", "failure_policy", "command", "args", "env",
                   "tasks_per_worker", "script"})) {
    return std::nullopt;
  }
  SubmitSpec s;
  for (const auto& [key, value] : root.items()) {
    if (key == "name" || key == "tenant" || key == "queue" || key == "priority_class") {
      std::optional<std::string> v = text_of(value);
      if (!v) return std::nullopt;
      if (key == "name") s.name = *v;
      if (key == "tenant") s.tenant = *v;
      if (key == "queue") s.queue = *v;
      if (key == "priority_class") s.priority_class = *v;
    } else if (key == "workers" || key == "tasks_per_worker") {
      std::optional<uint32_t> n = key == "workers" ? whole(value, 1, 1'000'000) : whole(value, 1, 1024);
      if (!n) return std::nullopt;
      (key == "workers" ? s.workers : s.tasks_per_worker) = *n;
    } else if (key == "resources") {
      if (!value.is_object() || !only(value, {"gpus", "gpu_type", "cpu", "memory_gib"})) return std::nullopt;
      for (const auto& [rk, rv] : value.items()) {
        if (rk == "gpus") {
          std::optional<uint32_t> n = whole(rv, 0, 1024);
          if (!n) return std::nullopt;
          s.gpus = *n;
        } else if (rk == "gpu_type") {
          s.gpu_type = text_of(rv);
          if (!s.gpu_type) return std::nullopt;
        } else {
          const double max = rk == "cpu" ? 1e5 : 1e6;
          if (!rv.is_number() || rv.get<double>() < 0 || rv.get<double>() > max) return std::nullopt;
          (rk == "cpu" ? s.cpu : s.memory) = std::llround(rv.get<double>() * (rk == "cpu" ? 1000 : 1024));
        }
      }
    } else if (key == "topology") {
      const std::optional<std::string> name = text_of(value);
      const std::optional<TopologyRule> t = name ? TopologyNamed(*name) : std::nullopt;
      if (!t) return std::nullopt;
      s.topology = *t;
    } else if (key == "time_limit" || key == "runtime_estimate" || key == "checkpoint_interval") {
      std::optional<TimeMs> d = duration(value);
      if (!d) return std::nullopt;
      (key == "time_limit" ? s.time_limit : key == "runtime_estimate" ? s.runtime_estimate : s.checkpoint_interval) = d;
    } else if (key == "after_ok") {
      if (!value.is_array() || value.empty()) return std::nullopt;
      for (const json& id : value) {
        if (!id.is_number_unsigned()) return std::nullopt;
        s.after_ok.push_back(id.get<uint64_t>());
      }
    } else if (key == "failure_policy") {
      if (!value.is_object() || !only(value, {"max_restarts", "backoff", "spare_nodes"})) return std::nullopt;
      for (const auto& [pk, pv] : value.items()) {
        if (pk == "backoff") {
          std::optional<TimeMs> d = duration(pv);
          if (!d) return std::nullopt;
          s.restart_backoff = *d;
        } else {
          std::optional<uint32_t> n = whole(pv, 0, 1'000'000);
          if (!n) return std::nullopt;
          if (pk == "max_restarts") s.max_restarts = *n;
          if (pk == "spare_nodes") s.spare_nodes = *n;
        }
      }
    } else if (key == "command" || key == "args") {
      std::optional<std::vector<std::string>> v = strings(value);
      if (!v) return std::nullopt;
      (key == "command" ? s.command : s.args) = std::move(*v);
    } else if (key == "env") {
      if (!value.is_object() || value.size() > kMaxEnv) return std::nullopt;
      for (const auto& [ek, ev] : value.items()) {
        std::optional<std::string> v = text_of(ev);
        if (!v || !text_of(json(ek))) return std::nullopt;
        s.env[ek] = *v;
      }
    } else if (key == "script") {
      return std::nullopt;  // multi-line text: the YAML path
    }
  }
  if (s.name.empty() || s.name.size() > kMaxNameLength) return std::nullopt;
  if (s.spare_nodes > 0 && s.gpus == 0) return std::nullopt;
  if (s.command.empty() && !s.args.empty()) return std::nullopt;
  return s;
}

Result<SubmitSpec> ParseJobSpecYaml(const std::string& text, const std::string& source) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return Status::Error(fmt::format("{}: a job spec must be a mapping", source));
    return Parse(root);
  } catch (...) {
    return CurrentParseError(source, "job spec");
  }
}

Result<SubmitSpec> ParseJobSpec(const std::string& text, const std::string& source) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {
    if (std::optional<SubmitSpec> spec = ParsePlainJson(text)) return std::move(*spec);
  }
  return ParseJobSpecYaml(text, source);
}

std::optional<SpecProblem> CheckSpec(const SubmitSpec& s) {
  if (s.name.empty() || s.name.size() > kMaxNameLength) {
    return SpecProblem{"name", fmt::format("must be 1 to {} characters", kMaxNameLength)};
  }
  auto text = [](const std::string& value) { return IsUtf8(value); };
  if (!text(s.name)) return SpecProblem{"name", "must be UTF-8"};
  // Names are printed on operators' terminals (`joule queue`): no escape sequences in them.
  if (HasControl(s.name)) return SpecProblem{"name", "must not hold control characters"};
  for (const auto& [field, o] : {std::pair{"tenant", &s.tenant}, std::pair{"queue", &s.queue},
                                 std::pair{"priority_class", &s.priority_class}, std::pair{"gpu_type", &s.gpu_type}}) {
    if (*o && !text(**o)) return SpecProblem{field, "must be UTF-8"};
    if (*o && HasControl(**o)) return SpecProblem{field, "must not hold control characters"};
  }
  if (s.workers < 1 || s.workers > 1'000'000) return SpecProblem{"workers", "must be 1 to 1000000"};
  if (s.gpus > 1024) return SpecProblem{"resources.gpus", "must be 0 to 1024"};
  if (s.tasks_per_worker < 1 || s.tasks_per_worker > 1024) return SpecProblem{"tasks_per_worker", "must be 1 to 1024"};
  constexpr TimeMs kLongest = TimeMs{1'000'000'000} * 1000;
  for (const auto& [field, value] :
       {std::pair{"time_limit", s.time_limit}, std::pair{"runtime_estimate", s.runtime_estimate},
        std::pair{"checkpoint_interval", s.checkpoint_interval}}) {
    if (value && (*value <= 0 || *value > kLongest)) return SpecProblem{field, "must be > 0 seconds"};
  }
  if (s.command.size() > kMaxArgs || s.args.size() > kMaxArgs)
    return SpecProblem{"args", fmt::format("at most {} entries", kMaxArgs)};
  if (s.env.size() > kMaxEnv) return SpecProblem{"env", fmt::format("at most {} variables", kMaxEnv)};
  for (const std::string& a : s.command) {
    if (!text(a)) return SpecProblem{"command", "must be UTF-8"};
  }
  for (const std::string& a : s.args) {
    if (!text(a)) return SpecProblem{"args", "must be UTF-8"};
  }
  for (const auto& [k, v] : s.env) {
    if (!text(k) || !text(v)) return SpecProblem{"env", "must be UTF-8"};
  }
  if (!text(s.script)) return SpecProblem{"script", "must be UTF-8"};
  return std::nullopt;
}

SubmitSpec FromBatchJob(const BatchJob& job) {
  SubmitSpec s;
  s.name = job.name;
  s.tenant = job.account;
  s.queue = job.partition;
  s.priority_class = job.qos;
  s.workers = job.nodes;
  s.gpus = job.gpus_per_node;
  s.tasks_per_worker = job.tasks_per_node;
  s.time_limit = job.time_limit;
  s.after_ok = job.after_ok;
  s.script = job.script;
  return s;
}

std::string EncodeJobSpec(const SubmitSpec& s) { return JobSpecJson(s).dump(); }

nlohmann::json JobSpecJson(const SubmitSpec& s) {
  using nlohmann::json;
  auto seconds = [](TimeMs ms) { return static_cast<double>(ms) / 1000.0; };
  json resources = {{"gpus", s.gpus},
                    {"cpu", static_cast<double>(s.cpu) / 1000.0},
                    {"memory_gib", static_cast<double>(s.memory) / 1024.0}};
  if (s.gpu_type) resources["gpu_type"] = *s.gpu_type;
  json j = {{"name", s.name},
            {"workers", s.workers},
            {"resources", resources},
            {"topology", kTopologyNames[static_cast<int>(s.topology)]},
            {"tasks_per_worker", s.tasks_per_worker}};
  if (s.tenant) j["tenant"] = *s.tenant;
  if (s.queue) j["queue"] = *s.queue;
  if (s.priority_class) j["priority_class"] = *s.priority_class;
  if (s.time_limit) j["time_limit"] = seconds(*s.time_limit);
  if (s.runtime_estimate) j["runtime_estimate"] = seconds(*s.runtime_estimate);
  if (s.checkpoint_interval) j["checkpoint_interval"] = seconds(*s.checkpoint_interval);
  if (!s.after_ok.empty()) j["after_ok"] = s.after_ok;
  json policy = json::object();
  if (s.max_restarts) policy["max_restarts"] = *s.max_restarts;
  if (s.restart_backoff > 0) policy["backoff"] = seconds(s.restart_backoff);
  if (s.spare_nodes > 0) policy["spare_nodes"] = s.spare_nodes;
  if (!policy.empty()) j["failure_policy"] = policy;
  if (!s.command.empty()) j["command"] = s.command;
  if (!s.args.empty()) j["args"] = s.args;
  if (!s.env.empty()) j["env"] = s.env;
  if (!s.script.empty()) j["script"] = s.script;
  return j;
}

}  // namespace joule::io
