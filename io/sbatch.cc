#include "io/sbatch.h"

#include <algorithm>
#include <charconv>
#include <map>

#include <fmt/format.h>

namespace joule::io {
namespace {

std::optional<uint64_t> Number(std::string_view s) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Short options Slurm users write, by their long names.
const std::map<std::string_view, std::string_view>& ShortOptions() {
  static const std::map<std::string_view, std::string_view> kShort = {
      {"J", "job-name"},  {"G", "gpus"}, {"N", "nodes"},   {"t", "time"},
      {"p", "partition"}, {"q", "qos"},  {"A", "account"}, {"d", "dependency"}};
  return kShort;
}

}  // namespace

std::optional<TimeMs> ParseSlurmTime(std::string_view text) {
  constexpr TimeMs kS = 1000, kM = 60 * kS, kH = 60 * kM, kD = 24 * kH;
  std::optional<uint64_t> days;
  std::string_view rest = text;
  if (const size_t dash = text.find('-'); dash != std::string_view::npos) {
    days = Number(text.substr(0, dash));
    if (!days) return std::nullopt;
    rest = text.substr(dash + 1);
  }
  std::vector<uint64_t> parts;
  for (std::string_view p : Split(rest, ':')) {
    std::optional<uint64_t> n = Number(p);
    if (!n) return std::nullopt;
    parts.push_back(*n);
  }
  // Beyond a billion of any unit the products below could overflow; no queue allows such times.
  constexpr uint64_t kMaxField = 1'000'000'000;
  if ((days && *days > kMaxField) ||
      std::any_of(parts.begin(), parts.end(), [](uint64_t n) { return n > kMaxField; })) {
    return std::nullopt;
  }
  TimeMs t = 0;
  if (days) {  // days-hours[:minutes[:seconds]]
    if (parts.empty() || parts.size() > 3) return std::nullopt;
    t = static_cast<TimeMs>(*days) * kD + static_cast<TimeMs>(parts[0]) * kH;
    if (parts.size() > 1) t += static_cast<TimeMs>(parts[1]) * kM;
    if (parts.size() > 2) t += static_cast<TimeMs>(parts[2]) * kS;
  } else if (parts.size() == 1) {  // minutes
    t = static_cast<TimeMs>(parts[0]) * kM;
  } else if (parts.size() == 2) {  // minutes:seconds
    t = static_cast<TimeMs>(parts[0]) * kM + static_cast<TimeMs>(parts[1]) * kS;
  } else if (parts.size() == 3) {  // hours:minutes:seconds
    t = static_cast<TimeMs>(parts[0]) * kH + static_cast<TimeMs>(parts[1]) * kM + static_cast<TimeMs>(parts[2]) * kS;
  } else {
    return std::nullopt;
  }
  return t > 0 ? std::optional<TimeMs>(t) : std::nullopt;
}

Result<BatchJob> ParseBatchScript(std::string_view text, const std::string& path) {
  BatchJob job;
  job.script = std::string(text);
  std::optional<uint32_t> gpus_total, gpus_per_node;
  auto fail = [&](size_t line, std::string_view option, const std::string& why) {
    return Status::Error(fmt::format("{}:{}: --{}: {}", path, line, option, why));
  };
  size_t line_no = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_no;
    line = Trim(line);
    if (line.empty() || (line.front() == '#' && line.substr(0, 7) != "#SBATCH")) continue;
    if (line.front() != '#') break;  // the first command: Slurm reads no directive after it
    std::string_view args = Trim(line.substr(7));
    // One option per directive line, "--name=value", "--name value", "-X value" or "-Xvalue".
    std::string_view name, value;
    if (args.substr(0, 2) == "--") {
      args.remove_prefix(2);
      const size_t cut = args.find_first_of("= \t");
      name = args.substr(0, cut);
      value = cut == std::string_view::npos ? "" : Trim(args.substr(cut + 1));
    } else if (args.size() >= 2 && args.front() == '-') {
      auto it = ShortOptions().find(args.substr(1, 1));
      if (it == ShortOptions().end()) {
        return Status::Error(fmt::format("{}:{}: {}: not supported", path, line_no, args.substr(0, 2)));
      }
      name = it->second;
      value = Trim(args.substr(2));
    } else {
      return Status::Error(fmt::format("{}:{}: #SBATCH: expected an option such as --nodes=2", path, line_no));
    }
    static const std::vector<std::string_view> kKnown = {"job-name", "account",   "partition",     "qos",
                                                         "nodes",    "gpus",      "gpus-per-node", "ntasks-per-node",
                                                         "time",     "dependency"};
    if (std::find(kKnown.begin(), kKnown.end(), name) == kKnown.end()) return fail(line_no, name, "not supported");
    if (value.empty()) return fail(line_no, name, "needs a value");
    auto count = [&](uint64_t max) -> std::optional<uint32_t> {
      std::optional<uint64_t> n = Number(value);
      if (!n || *n == 0 || *n > max) return std::nullopt;
      return static_cast<uint32_t>(*n);
    };
    if (name == "job-name") {
      job.name = std::string(value);
    } else if (name == "account") {
      job.account = std::string(value);
    } else if (name == "partition") {
      if (value.find(',') != std::string_view::npos) return fail(line_no, name, "one partition only");
      job.partition = std::string(value);
    } else if (name == "qos") {
      job.qos = std::string(value);
    } else if (name == "nodes") {
      std::optional<uint32_t> n = count(1'000'000);
      if (!n)
        return fail(line_no, name, fmt::format("'{}': must be a node count (a range min-max is not supported)", value));
      job.nodes = *n;
    } else if (name == "gpus" || name == "gpus-per-node") {
      // "type:count" is Slurm's way of naming a GPU type: the partition says the type here.
      std::optional<uint32_t> n = count(1'000'000);
      if (!n)
        return fail(line_no, name, fmt::format("'{}': must be a count (name the GPU type with --partition)", value));
      (name == "gpus" ? gpus_total : gpus_per_node) = *n;
    } else if (name == "ntasks-per-node") {
      std::optional<uint32_t> n = count(1024);
      if (!n) return fail(line_no, name, fmt::format("'{}': must be a count from 1 to 1024", value));
      job.tasks_per_node = *n;
    } else if (name == "time") {
      job.time_limit = ParseSlurmTime(value);
      if (!job.time_limit) {
        return fail(line_no, name,
                    fmt::format("'{}': must be minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, above 0", value));
      }
    } else if (name == "dependency") {
      std::vector<std::string_view> parts = Split(value, ':');
      if (parts[0] != "afterok") {
        return fail(line_no, name, fmt::format("'{}': only afterok:ID[:ID...] is supported", parts[0]));
      }
      if (parts.size() < 2) return fail(line_no, name, "afterok needs at least one job id");
      for (size_t i = 1; i < parts.size(); ++i) {
        std::optional<uint64_t> id = Number(parts[i]);
        if (!id) return fail(line_no, name, fmt::format("'{}': not a job id", parts[i]));
        job.after_ok.push_back(*id);
      }
    }
  }
  if (gpus_total && gpus_per_node && *gpus_total != *gpus_per_node * job.nodes) {
    return Status::Error(fmt::format("{}: --gpus {} disagrees with --gpus-per-node {} on {} nodes", path, *gpus_total,
                                     *gpus_per_node, job.nodes));
  }
  if (gpus_total && !gpus_per_node) {
    if (*gpus_total % job.nodes != 0) {
      return Status::Error(
          fmt::format("{}: --gpus {} cannot be spread evenly over {} nodes (gangs have identical workers)", path,
                      *gpus_total, job.nodes));
    }
    gpus_per_node = *gpus_total / job.nodes;
  }
  job.gpus_per_node = gpus_per_node.value_or(0);
  return job;
}

}  // namespace joule::io
