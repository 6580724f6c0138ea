// The CLI over the HTTP API, in Slurm's manner (docs/cli.md):
//   joule submit FILE|-  [--parsable]           sbatch: "Submitted batch job N"
//   joule queue [-t STATES] [-u TENANT] [-p QUEUE] squeue: JOBID PARTITION NAME USER ST TIME NODES NODELIST(REASON)
//   joule nodes [-N]                             sinfo: nodes grouped by type and state
//   joule cancel ID...                           scancel
//   joule drain NODE --reason R / resume NODE    scontrol update state=drain|resume
//   joule show job ID | node NAME                scontrol show
// Every command takes --server, --token and -o text|json|yaml. Exit codes: 0 done, 1 the server
// failed or could not be reached, 2 the request was refused (the reason is printed).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "apps/client.h"
#include "apps/commands.h"
#include "base/text.h"
#include "control/auth.h"

namespace joule::apps {
namespace {

using nlohmann::json;

struct Common {
  std::optional<std::string> server, token, token_file, ca_file;
  std::string output = "text";
};

void AddCommon(CLI::App* cmd, Common& c) {
  cmd->add_option("--server", c.server, "Server URL (else JOULE_SERVER, the client config, http://127.0.0.1:6820)");
  cmd->add_option("--token", c.token,
                  "Bearer token (else JOULE_TOKEN, the client config); visible to other users in ps: prefer "
                  "--token-file");
  cmd->add_option("--token-file", c.token_file, "A file (mode 0600) whose first line is the bearer token");
  cmd->add_option("--cacert", c.ca_file,
                  "https: the CA certificates (PEM) to check the server's against (else JOULE_CACERT)");
  cmd->add_option("-o,--output", c.output, "Output: text, json or yaml")
      ->check(CLI::IsMember({"text", "json", "yaml"}));
}

// What the CLI prints of the server's answers goes through here: a control character (an escape
// sequence in a job's name) reaches the terminal as \xNN, never raw. Lines stay lines.
void PrintText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t end = text.find('\n');
    out += EscapeForTerminal(text.substr(0, end));
    if (end == std::string_view::npos) break;
    out.push_back('\n');
    text.remove_prefix(end + 1);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

YAML::Node ToYaml(const json& j) {
  YAML::Node n;
  if (j.is_object()) {
    n = YAML::Node(YAML::NodeType::Map);
    for (const auto& [k, v] : j.items()) n[k] = ToYaml(v);
  } else if (j.is_array()) {
    n = YAML::Node(YAML::NodeType::Sequence);
    for (const json& v : j) n.push_back(ToYaml(v));
  } else if (j.is_null()) {
    n = YAML::Node(YAML::NodeType::Null);
  } else if (j.is_string()) {
    n = j.get<std::string>();
  } else {
    n = j.dump();
  }
  return n;
}

// Prints json or yaml; false for text (the caller formats it).
bool PrintStructured(const Common& c, const json& j) {
  if (c.output == "json") {
    fmt::print("{}\n", j.dump(2));
    return true;
  }
  if (c.output == "yaml") {
    YAML::Emitter out;
    out << ToYaml(j);
    PrintText(fmt::format("{}\n", out.c_str()));
    return true;
  }
  return false;
}

// Runs `body` with a client, turning configuration problems and refusals into exit codes.
int WithClient(const std::string& command, const Common& c,
               const std::function<int(ApiClient&, const std::function<int(const HttpReply&)>&)>& body) {
  Result<ClientConfig> config = ResolveClientConfig(c.server, c.token, c.token_file, c.ca_file);
  if (!config.ok()) {
    fmt::print(stderr, "joule {}: {}\n", command, config.status().message());
    return kExitBadInput;
  }
  ApiClient client(*config);
  auto fail = [&](const HttpReply& r) {
    fmt::print(stderr, "joule {}: {}\n", command, EscapeForTerminal(DescribeError(r)));
    return r.status >= 400 && r.status < 500 ? kExitBadInput : kExitFailure;
  };
  return body(client, fail);
}

std::optional<json> JsonOf(const HttpReply& r) {
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// Slurm's compressed host lists: "gpu-[1-3,7],cpu-2".
std::string HostList(const std::vector<std::string>& names) {
  std::map<std::string, std::vector<std::pair<uint64_t, size_t>>> by_prefix;  // prefix -> (number, width)
  std::vector<std::string> plain, order;
  for (const std::string& name : names) {
    size_t digits = name.size();
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(name[digits - 1]))) --digits;
    if (digits == name.size() || name.size() - digits > 18) {
      plain.push_back(name);
      continue;
    }
    const std::string prefix = name.substr(0, digits);
    if (!by_prefix.contains(prefix)) order.push_back(prefix);
    by_prefix[prefix].emplace_back(std::stoull(name.substr(digits)), name.size() - digits);
  }
  std::vector<std::string> parts = plain;
  for (const std::string& prefix : order) {
    auto& numbers = by_prefix[prefix];
    std::sort(numbers.begin(), numbers.end());
    numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
    if (numbers.size() == 1) {
      parts.push_back(fmt::format("{}{:0{}}", prefix, numbers[0].first, numbers[0].second));
      continue;
    }
    std::string ranges;
    for (size_t i = 0; i < numbers.size();) {
      size_t j = i;
      while (j + 1 < numbers.size() && numbers[j + 1].first == numbers[j].first + 1 &&
             numbers[j + 1].second == numbers[i].second) {
        ++j;
      }
      ranges += fmt::format("{}{:0{}}", ranges.empty() ? "" : ",", numbers[i].first, numbers[i].second);
      if (j > i) ranges += fmt::format("-{:0{}}", numbers[j].first, numbers[j].second);
      i = j + 1;
    }
    parts.push_back(fmt::format("{}[{}]", prefix, ranges));
  }
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

std::vector<std::string> Strings(const json& list) {
  std::vector<std::string> out;
  for (const json& s : list) out.push_back(s.get<std::string>());
  return out;
}

// squeue's state codes.
std::string_view StateCode(const std::string& state) {
  static const std::map<std::string, std::string_view> kCodes = {{"pending", "PD"},   {"running", "R"},
                                                                 {"completed", "CD"}, {"failed", "F"},
                                                                 {"cancelled", "CA"}, {"rejected", "RJ"}};
  auto it = kCodes.find(state);
  return it == kCodes.end() ? "?" : it->second;
}

// Milliseconds since the epoch of an RFC 3339 time the server wrote ("2026-11-23T02:22:15.123Z").
std::optional<int64_t> ParseTime(const std::string& t) {
  if (t.empty()) return std::nullopt;
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &ms) != 7) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

// squeue's TIME: [days-]hours:minutes:seconds, or minutes:seconds under an hour.
std::string Elapsed(int64_t ms) {
  const int64_t s = std::max<int64_t>(ms, 0) / 1000;
  const int64_t days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60, seconds = s % 60;
  if (days > 0) return fmt::format("{}-{:02}:{:02}:{:02}", days, hours, minutes, seconds);
  if (hours > 0) return fmt::format("{}:{:02}:{:02}", hours, minutes, seconds);
  return fmt::format("{}:{:02}", minutes, seconds);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- submit ----

struct SubmitOptions {
  Common common;
  std::string file;
  bool parsable = false;
  std::string key;
};

int Submit(const SubmitOptions& o) {
  std::string body;
  if (o.file == "-") {
    body.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) {
      fmt::print(stderr, "joule submit: cannot open {}\n", o.file);
      return kExitBadInput;
    }
    body.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string type = body.starts_with("#!")      ? "text/x-shellscript"
                           : o.file.ends_with(".json") ? "application/json"
                                                       : "application/yaml";
  // One key per invocation: a retry after a lost answer cannot submit the job twice.
  const std::string key = o.key.empty() ? control::NewToken().substr(0, 32) : o.key;
  return WithClient("submit", o.common, [&](ApiClient& client, const auto& fail) {
    HttpReply r;
    for (int attempt = 0; attempt < 3; ++attempt) {
      r = client.Send("POST", "/api/v1/jobs", body, type, {{"Idempotency-Key", key}});
      if (r.status != 0 && r.status != 503) break;
    }
    if (r.status != 200 && r.status != 201) return fail(r);
    std::optional<json> job = JsonOf(r);
    if (!job) return fail(r);
    if (PrintStructured(o.common, *job)) return kExitOk;
    if (o.parsable) {
      fmt::print("{}\n", (*job)["id"].get<uint64_t>());
    } else {
      fmt::print("Submitted batch job {}\n", (*job)["id"].get<uint64_t>());
    }
    return kExitOk;
  });
}

// ---- queue ----

struct QueueOptions {
  Common common;
  std::string states;  // comma-separated, or "all"
  std::string tenant, queue;
  bool history = false;  // retired jobs too
};

// What squeue shows of a job, read from a page of jobs by a SAX parser: a DOM of 100,000 jobs
// takes most of a second and ~0.5 GB; the table needs a few fields of each.
struct QueueRow {
  uint64_t id = 0, workers = 0;
  std::string queue, name, tenant, state, reason, end_reason, started_at, ended_at;
  std::vector<std::string> nodes;
};

class PageReader : public nlohmann::json_sax<json> {
 public:
  explicit PageReader(std::vector<QueueRow>& rows) : rows_(rows) {}
  std::optional<uint64_t> next;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t v) override { return number_unsigned(static_cast<number_unsigned_t>(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    if (depth_ == 1 && key_ == "next") next = v;
    if (depth_ == 3 && key_ == "id") rows_.back().id = v;
    if (depth_ == 3 && key_ == "workers") rows_.back().workers = v;
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t& v) override {
    if (depth_ == 3) {
      QueueRow& r = rows_.back();
      std::string* field = key_ == "queue"        ? &r.queue
                           : key_ == "name"       ? &r.name
                           : key_ == "tenant"     ? &r.tenant
                           : key_ == "state"      ? &r.state
                           : key_ == "reason"     ? &r.reason
                           : key_ == "end_reason" ? &r.end_reason
                           : key_ == "started_at" ? &r.started_at
                           : key_ == "ended_at"   ? &r.ended_at
                                                  : nullptr;
      if (field != nullptr) *field = std::move(v);
    } else if (depth_ == 4 && key_ == "nodes") {
      rows_.back().nodes.push_back(std::move(v));
    }
    return true;
  }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    if (++depth_ == 3) rows_.emplace_back();
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool key(string_t& k) override {
    key_ = k;
    return true;
  }
  bool start_array(std::size_t) override {
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  std::vector<QueueRow>& rows_;
  int depth_ = 0;  // 1: the page, 2: the jobs array, 3: a job, 4: its nodes
  std::string key_;
};

int Queue(const QueueOptions& o) {
  std::vector<std::string> states;
  if (o.states.empty()) {
    states = {"pending", "running"};
  } else if (o.states != "all") {
    std::stringstream in(o.states);
    for (std::string s; std::getline(in, s, ',');) {
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
      static const std::map<std::string, std::string> kByCode = {{"pd", "pending"},   {"r", "running"},
                                                                 {"cd", "completed"}, {"f", "failed"},
                                                                 {"ca", "cancelled"}, {"rj", "rejected"}};
      if (kByCode.contains(s)) s = kByCode.at(s);
      states.push_back(s);
    }
  }
  const bool structured = o.common.output != "text";
  return WithClient("queue", o.common, [&](ApiClient& client, const auto& fail) {
    json jobs = json::array();
    std::vector<QueueRow> rows;
    std::vector<std::optional<std::string>> filters;
    if (states.empty()) filters.push_back(std::nullopt);
    for (const std::string& s : states) filters.emplace_back(s);
    for (const auto& state : filters) {
      uint64_t after = 0;
      while (true) {
        std::string path = fmt::format("/api/v1/jobs?limit=100000&after={}", after);
        if (!structured)
          path += "&fields=id,queue,name,tenant,state,reason,end_reason,started_at,ended_at,workers,nodes";
        if (state) path += "&state=" + *state;
        if (!o.tenant.empty()) path += "&tenant=" + o.tenant;
        if (!o.queue.empty()) path += "&queue=" + o.queue;
        if (o.history) path += "&history=true";
        HttpReply r = client.Get(path);
        if (r.status != 200) return fail(r);
        std::optional<uint64_t> next;
        if (structured) {
          std::optional<json> page = JsonOf(r);
          if (!page) return fail(r);
          for (json& j : (*page)["jobs"]) jobs.push_back(std::move(j));
          if (!(*page)["next"].is_null()) next = (*page)["next"].get<uint64_t>();
        } else {
          PageReader reader(rows);
          if (!json::sax_parse(r.body, &reader)) return fail(r);
          next = reader.next;
        }
        if (!next) break;
        after = *next;
      }
    }
    if (structured) {
      std::sort(jobs.begin(), jobs.end(),
                [](const json& a, const json& b) { return a["id"].get<uint64_t>() < b["id"].get<uint64_t>(); });
      PrintStructured(o.common, {{"jobs", jobs}});
      return kExitOk;
    }
    std::sort(rows.begin(), rows.end(), [](const QueueRow& a, const QueueRow& b) { return a.id < b.id; });
    std::string out = fmt::format("{:>8} {:>9} {:>8} {:>8} {:>2} {:>10} {:>6} {}\n", "JOBID", "PARTITION", "NAME",
                                  "USER", "ST", "TIME", "NODES", "NODELIST(REASON)");
    const int64_t now = NowMs();
    for (const QueueRow& j : rows) {
      const std::optional<int64_t> started = ParseTime(j.started_at);
      const std::optional<int64_t> ended = ParseTime(j.ended_at);
      const std::string time = started ? Elapsed(ended.value_or(now) - *started) : "0:00";
      std::string where;
      if (j.state == "running") {
        where = HostList(j.nodes);
      } else if (j.state == "pending") {
        where = fmt::format("({})", j.reason.empty() ? "None" : j.reason);
      } else {
        where = fmt::format("({})", j.end_reason.empty() ? j.state : j.end_reason);
      }
      out += fmt::format("{:>8} {:>9.9} {:>8.8} {:>8.8} {:>2} {:>10} {:>6} {}\n", j.id, j.queue, j.name, j.tenant,
                         StateCode(j.state), time, j.workers, where);
    }
    PrintText(out);
    return kExitOk;
  });
}

// ---- nodes ----

struct NodesOptions {
  Common common;
  bool long_list = false;
};

int Nodes(const NodesOptions& o) {
  return WithClient("nodes", o.common, [&](ApiClient& client, const auto& fail) {
    HttpReply r = client.Get("/api/v1/nodes");
    if (r.status != 200) return fail(r);
    std::optional<json> page = JsonOf(r);
    if (!page) return fail(r);
    if (PrintStructured(o.common, *page)) return kExitOk;
    if (o.long_list) {
      fmt::print("{:<24} {:<14} {:<10} {:>5} {:>5}  {}\n", "NODELIST", "TYPE", "STATE", "GPUS", "USED", "REASON");
      for (const json& n : (*page)["nodes"]) {
        PrintText(fmt::format("{:<24} {:<14} {:<10} {:>5} {:>5}  {}\n", n["name"].get<std::string>(),
                              n["type"].get<std::string>(), n["state"].get<std::string>(), n["gpus"].get<uint64_t>(),
                              n["gpus_used"].get<uint64_t>(),
                              n["reason"].is_string() ? n["reason"].get<std::string>() : "none"));
      }
      return kExitOk;
    }
    // Grouped as sinfo groups them: by (type, state), in first-seen order.
    std::vector<std::pair<std::string, std::string>> order;
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> groups;
    for (const json& n : (*page)["nodes"]) {
      std::pair<std::string, std::string> key{n["type"].get<std::string>(), n["state"].get<std::string>()};
      if (!groups.contains(key)) order.push_back(key);
      groups[key].push_back(n["name"].get<std::string>());
    }
    fmt::print("{:<16} {:>5} {:<10} {}\n", "TYPE", "NODES", "STATE", "NODELIST");
    for (const auto& key : order) {
      PrintText(
          fmt::format("{:<16} {:>5} {:<10} {}\n", key.first, groups[key].size(), key.second, HostList(groups[key])));
    }
    return kExitOk;
  });
}

// ---- cancel, drain, resume ----

struct TargetsOptions {
  Common common;
  std::vector<std::string> targets;
  std::string reason;
};

int Cancel(const TargetsOptions& o) {
  return WithClient("cancel", o.common, [&](ApiClient& client, const auto& fail) {
    int code = kExitOk;
    for (const std::string& id : o.targets) {
      HttpReply r = client.Send("POST", fmt::format("/api/v1/jobs/{}/cancel", id), "", "application/json");
      if (r.status != 202) code = std::max(code, fail(r));
    }
    return code;
  });
}

int ChangeNodes(const TargetsOptions& o, const std::string& verb) {
  return WithClient(verb, o.common, [&](ApiClient& client, const auto& fail) {
    int code = kExitOk;
    const std::string body = o.reason.empty() ? "{}" : json{{"reason", o.reason}}.dump();
    for (const std::string& node : o.targets) {
      HttpReply r = client.Send("POST", fmt::format("/api/v1/nodes/{}/{}", node, verb), body, "application/json");
      if (r.status != 202) code = std::max(code, fail(r));
    }
    return code;
  });
}

// ---- show ----

struct ShowOptions {
  Common common;
  std::string what, name;
};

// scontrol's Key=Value lines.
void PrintKeyValues(const json& j, const std::string& indent) {
  std::string line = indent;
  for (const auto& [key, value] : j.items()) {
    if (value.is_object()) continue;
    std::string text = value.is_string()                                            ? value.get<std::string>()
                       : value.is_null()                                            ? "(null)"
                       : value.is_array() && !value.empty() && value[0].is_string() ? HostList(Strings(value))
                                                                                    : value.dump();
    const std::string item = fmt::format("{}={}", key, text);
    if (line.size() > indent.size() && line.size() + item.size() > 100) {
      PrintText(line + "\n");
      line = indent;
    }
    line += (line.size() > indent.size() ? " " : "") + item;
  }
  if (line.size() > indent.size()) PrintText(line + "\n");
}

int Show(const ShowOptions& o) {
  if (o.what != "job" && o.what != "node") {
    fmt::print(stderr, "joule show: {}: show job ID or show node NAME\n", o.what);
    return kExitBadInput;
  }
  return WithClient("show", o.common, [&](ApiClient& client, const auto& fail) {
    HttpReply r = client.Get(fmt::format("/api/v1/{}s/{}", o.what, o.name));
    if (r.status != 200) return fail(r);
    std::optional<json> j = JsonOf(r);
    if (!j) return fail(r);
    if (PrintStructured(o.common, *j)) return kExitOk;
    PrintKeyValues(*j, "");
    if (j->contains("spec")) PrintKeyValues((*j)["spec"], "   ");
    // A node's agent, then one line per GPU reading (scontrol's CurrentWatts, per device).
    if (const json* agent = j->contains("agent") ? &(*j)["agent"] : nullptr; agent && agent->is_object()) {
      json summary = *agent;
      summary.erase("gpus");
      PrintKeyValues(summary, "   agent: ");
      for (const json& g : (*agent)["gpus"]) {
        fmt::print(
            "   gpu={} power_watts={} power_limit_watts={} temperature_c={} utilization_percent={} "
            "memory_used_mib={} energy_joules={} xid_errors={}\n",
            g.value("index", 0), g.value("power_watts", 0.0), g.value("power_limit_watts", 0.0),
            g.value("temperature_c", 0), g.value("utilization_percent", 0), g.value("memory_used_mib", 0),
            g.value("energy_joules", 0.0), g.value("xid_errors", 0));
      }
    }
    return kExitOk;
  });
}

}  // namespace

void AddClientCommands(CLI::App& app, CommandFn& run) {
  auto submit = std::make_shared<SubmitOptions>();
  CLI::App* cmd = app.add_subcommand("submit", "Submit a job spec (YAML/JSON) or a Slurm batch script (sbatch)");
  cmd->add_option("file", submit->file, "The spec or script; - reads standard input")->required();
  cmd->add_flag("--parsable", submit->parsable, "Print the job id only");
  cmd->add_option("--idempotency-key", submit->key, "Key making a retried submit safe (default: a fresh one)");
  AddCommon(cmd, submit->common);
  cmd->callback([submit, &run] { run = [submit] { return Submit(*submit); }; });

  auto queue = std::make_shared<QueueOptions>();
  cmd = app.add_subcommand("queue", "List jobs (squeue): pending and running unless -t says otherwise");
  cmd->add_option("-t,--states", queue->states, "States, comma-separated (PD,R,CD,F,CA,RJ or names), or all");
  cmd->add_option("-u,--tenant", queue->tenant, "Only this tenant's jobs");
  cmd->add_option("-p,--partition", queue->queue, "Only this queue's jobs");
  cmd->add_flag("-H,--history", queue->history,
                "Also jobs retired from the view (ended more than job_retention_seconds ago), as sacct lists them");
  AddCommon(cmd, queue->common);
  cmd->callback([queue, &run] { run = [queue] { return Queue(*queue); }; });

  auto nodes = std::make_shared<NodesOptions>();
  cmd = app.add_subcommand("nodes", "List nodes (sinfo), grouped by type and state");
  cmd->add_flag("-N,--long", nodes->long_list, "One line per node, with the reason for its state");
  AddCommon(cmd, nodes->common);
  cmd->callback([nodes, &run] { run = [nodes] { return Nodes(*nodes); }; });

  auto cancel = std::make_shared<TargetsOptions>();
  cmd = app.add_subcommand("cancel", "Cancel jobs (scancel)");
  cmd->add_option("ids", cancel->targets, "Job ids")->required();
  AddCommon(cmd, cancel->common);
  cmd->callback([cancel, &run] { run = [cancel] { return Cancel(*cancel); }; });

  auto drain = std::make_shared<TargetsOptions>();
  cmd = app.add_subcommand("drain", "Drain nodes: running work finishes, nothing new starts (operators)");
  cmd->add_option("nodes", drain->targets, "Node names")->required();
  cmd->add_option("--reason", drain->reason, "Why (required, as Slurm requires it)")->required();
  AddCommon(cmd, drain->common);
  cmd->callback([drain, &run] { run = [drain] { return ChangeNodes(*drain, "drain"); }; });

  auto resume = std::make_shared<TargetsOptions>();
  cmd = app.add_subcommand("resume", "Return drained or repaired nodes to service (operators)");
  cmd->add_option("nodes", resume->targets, "Node names")->required();
  cmd->add_option("--reason", resume->reason, "Why (for the audit log)");
  AddCommon(cmd, resume->common);
  cmd->callback([resume, &run] { run = [resume] { return ChangeNodes(*resume, "resume"); }; });

  auto show = std::make_shared<ShowOptions>();
  cmd = app.add_subcommand("show", "Show one job or node in detail (scontrol show)");
  cmd->add_option("what", show->what, "job or node")->required();
  cmd->add_option("name", show->name, "Job id or node name")->required();
  AddCommon(cmd, show->common);
  cmd->callback([show, &run] { run = [show] { return Show(*show); }; });
}

}  // namespace joule::apps
