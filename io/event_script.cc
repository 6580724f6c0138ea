#include "io/event_script.h"

#include <cmath>
#include <unordered_map>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "io/yaml_fields.h"

namespace joule::io {
namespace {

std::string Indexed(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

class ScriptParser {
 public:
  ScriptParser(std::string path, const Scenario& scenario) : path_(std::move(path)), scenario_(scenario) {
    const Fleet& fleet = scenario.fleet;
    for (uint32_t n = 0; n < fleet.nodes().size(); ++n) nodes_.emplace(std::string(fleet.NodeName(NodeId(n))), n);
  }

  Result<EventScript> Load() {
    return ParseYamlFile<EventScript>(path_, "event script", [&](const YAML::Node& root) {
      Fields top(root, "", {"config", "steps"});
      EventScript script;
      if (top.Has("config")) script.config = Config(Fields(top.Get("config"), "config", kConfigKeys));
      YAML::Node steps = top.List("steps");
      for (size_t i = 0; i < steps.size(); ++i) script.steps.push_back(Step(steps[i], Indexed("steps", i), script));
      return script;
    });
  }

 private:
  static inline const std::vector<std::string_view> kConfigKeys = {
      "backfill_depth", "preemption", "preemption_grace_ms", "preemption_depth", "shared_policy"};

  EngineConfig Config(const Fields& f) {
    EngineConfig c;
    c.check_invariants = true;
    if (f.Has("backfill_depth")) c.backfill_depth = static_cast<uint32_t>(f.Number("backfill_depth", 0, 1000));
    if (f.Has("preemption")) c.preemption = Bool(f, "preemption");
    if (f.Has("preemption_grace_ms")) c.preemption_grace = std::llround(f.Number("preemption_grace_ms", 0, 1e12));
    if (f.Has("preemption_depth")) c.preemption_depth = f.Count("preemption_depth");
    if (f.Has("shared_policy")) {
      std::string name = f.String("shared_policy");
      std::optional<PlacementPolicy> p = ParsePlacementPolicy(name);
      if (!p) f.Fail("shared_policy", fmt::format("unknown policy '{}'", name));
      c.shared_policy = *p;
    }
    return c;
  }

  static bool Bool(const Fields& f, std::string_view key) {
    bool b = false;
    if (!YAML::convert<bool>::decode(f.Get(key), b)) f.Fail(key, "must be true or false");
    return b;
  }

  ScriptStep Step(const YAML::Node& node, const std::string& path, const EventScript& script) {
    Fields f(node, path,
             {"at_ms", "submit", "finish", "fail", "cancel", "node_down", "node_up", "drain", "suspect", "repair"});
    ScriptStep step{std::llround(f.Number("at_ms", 0, 1e15)), {}};
    if (!script.steps.empty() && step.at < script.steps.back().at) {
      f.Fail("at_ms", fmt::format("steps must be in time order (previous step at {})", script.steps.back().at));
    }
    if (f.Has("submit")) {
      YAML::Node jobs = f.List("submit");
      for (size_t i = 0; i < jobs.size(); ++i)
        step.events.push_back(JobSubmitted{Job(jobs[i], Indexed(f.PathOf("submit"), i))});
    }
    for (const char* key : {"finish", "fail", "cancel"}) {
      if (!f.Has(key)) continue;
      YAML::Node ids = f.List(key);
      for (size_t i = 0; i < ids.size(); ++i) {
        JobId id = Id(ids[i], Indexed(f.PathOf(key), i));
        if (std::string_view(key) == "cancel") {
          step.events.push_back(JobCancelled{id});
        } else {
          step.events.push_back(JobFinished{id, std::string_view(key) == "finish"});
        }
      }
    }
    const std::pair<const char*, NodeHealth> health[] = {{"node_down", NodeHealth::kDown},
                                                         {"node_up", NodeHealth::kHealthy},
                                                         {"drain", NodeHealth::kDrained},
                                                         {"suspect", NodeHealth::kSuspect},
                                                         {"repair", NodeHealth::kRepairing}};
    for (auto [key, to] : health) {
      if (!f.Has(key)) continue;
      YAML::Node names = f.List(key);
      for (size_t i = 0; i < names.size(); ++i) {
        NodeId n = NodeNamed(names[i], Indexed(f.PathOf(key), i));
        NodeHealthChange change{n, to, Actor::kOperator, "event script", std::nullopt};
        step.events.emplace_back(std::in_place_type<NodeHealthChange>, std::move(change));
      }
    }
    return step;
  }

  static JobId Id(const YAML::Node& node, const std::string& path) {
    uint64_t id = 0;
    if (!node.IsScalar() || !YAML::convert<uint64_t>::decode(node, id)) ThrowAt(node, path, "must be a job id");
    return id;
  }

  NodeId NodeNamed(const YAML::Node& node, const std::string& path) {
    auto it = node.IsScalar() ? nodes_.find(node.Scalar()) : nodes_.end();
    if (it == nodes_.end()) ThrowAt(node, path, fmt::format("unknown node '{}'", node.IsScalar() ? node.Scalar() : ""));
    return NodeId(it->second);
  }

  JobSpec Job(const YAML::Node& node, const std::string& path) {
    Fields f(node, path,
             {"id", "tenant", "workers", "gpus", "milli", "cpu", "memory_gib", "types", "halls", "node_types",
              "priority", "topology", "estimate_ms", "time_limit_ms", "checkpoint_ms", "after_ok", "max_restarts",
              "backoff_ms", "spare_nodes"});
    JobSpec j;
    if (!f.Has("id")) f.FailMissing("id");
    j.id = Id(f.Get("id"), f.PathOf("id"));
    j.tenant = TenantNamed(f);
    j.workers = f.OptCount("workers").value_or(1);
    j.worker.gpus = static_cast<uint32_t>(f.Has("gpus") ? f.Number("gpus", 0, 1024) : 0);
    j.worker.milli_per_gpu = j.worker.gpus == 0 ? 0 : std::llround(f.Has("milli") ? f.Number("milli", 1, 1000) : 1000);
    j.worker.cpu = std::llround((f.Has("cpu") ? f.Number("cpu", 0, 1e6) : 1) * 1000);
    j.worker.memory = std::llround((f.Has("memory_gib") ? f.Number("memory_gib", 0, 1e6) : 1) * 1024);
    if (f.Has("types")) {
      YAML::Node types = f.List("types");
      for (size_t i = 0; i < types.size(); ++i) {
        auto id = types[i].IsScalar() ? scenario_.fleet.catalog().FindAccelerator(types[i].Scalar()) : std::nullopt;
        if (!id) ThrowAt(types[i], Indexed(f.PathOf("types"), i), "unknown accelerator type");
        j.worker.types.Add(*id);
      }
    }
    if (f.Has("halls")) j.worker.halls = Selector(f, "halls");
    if (f.Has("node_types")) j.worker.node_types = Selector(f, "node_types");
    j.priority = static_cast<int32_t>(f.Has("priority") ? f.Number("priority", -1e6, 1e6) : 0);
    if (f.Has("topology")) j.topology = Topology(f);
    if (f.Has("estimate_ms")) j.runtime_estimate = std::llround(f.Number("estimate_ms", 1, 1e15));
    if (f.Has("time_limit_ms")) j.time_limit = std::llround(f.Number("time_limit_ms", 1, 1e15));
    if (f.Has("checkpoint_ms")) j.checkpoint_interval = std::llround(f.Number("checkpoint_ms", 1, 1e15));
    if (f.Has("max_restarts")) j.max_restarts = static_cast<uint32_t>(std::llround(f.Number("max_restarts", 0, 1e6)));
    if (f.Has("backoff_ms")) j.restart_backoff = std::llround(f.Number("backoff_ms", 0, 1e15));
    if (f.Has("spare_nodes")) j.spare_nodes = static_cast<uint32_t>(std::llround(f.Number("spare_nodes", 0, 1e6)));
    if (f.Has("after_ok")) {
      YAML::Node deps = f.List("after_ok");
      for (size_t i = 0; i < deps.size(); ++i) j.after_ok.push_back(Id(deps[i], Indexed(f.PathOf("after_ok"), i)));
    }
    return j;
  }

  // A node selector: hall or node type names, as a bit mask over their ids.
  uint64_t Selector(const Fields& f, std::string_view key) const {
    const Fleet& fleet = scenario_.fleet;
    uint64_t mask = 0;
    YAML::Node names = f.List(key);
    for (size_t i = 0; i < names.size(); ++i) {
      std::optional<uint32_t> id;
      const std::string name = names[i].IsScalar() ? names[i].Scalar() : "";
      if (key == "halls") {
        for (uint32_t h = 0; h < fleet.halls().size(); ++h) {
          if (fleet.halls()[h].name == name) id = h;
        }
      } else if (auto t = fleet.catalog().FindNode(name)) {
        id = t->value();
      }
      if (!id) {
        ThrowAt(names[i], Indexed(f.PathOf(key), i),
                fmt::format("unknown {} '{}'", key == "halls" ? "hall" : "node type", name));
      }
      if (*id >= 64) ThrowAt(names[i], Indexed(f.PathOf(key), i), "selectors reach the first 64 only");
      mask |= uint64_t{1} << *id;
    }
    return mask;
  }

  static TopologyRule Topology(const Fields& f) {
    static constexpr std::pair<std::string_view, TopologyRule> kRules[] = {
        {"any", TopologyRule::kAny},
        {"prefer-compact", TopologyRule::kPreferCompact},
        {"require-nvlink-domain", TopologyRule::kRequireNvlinkDomain},
    };
    std::string name = f.String("topology");
    for (auto [n, rule] : kRules) {
      if (n == name) return rule;
    }
    f.Fail("topology", "must be any, prefer-compact or require-nvlink-domain");
  }

  TenantId TenantNamed(const Fields& f) {
    if (!f.Has("tenant")) return TenantId(0);
    std::string name = f.String("tenant");
    for (uint32_t t = 0; t < scenario_.tenants.size(); ++t) {
      if (scenario_.tenants[t].name == name) return TenantId(t);
    }
    f.Fail("tenant", fmt::format("unknown tenant '{}'", name));
  }

  std::string path_;
  const Scenario& scenario_;
  std::unordered_map<std::string, uint32_t> nodes_;
};

}  // namespace

Result<EventScript> LoadEventScript(const std::string& path, const Scenario& scenario) {
  return ScriptParser(path, scenario).Load();
}

}  // namespace joule::io
