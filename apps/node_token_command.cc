// `joule node-token --key-file KEY NODE...`: the credentials node agents present (docs/security.md).
// Made offline from the server's node key, so that provisioning 113,600 nodes needs no server and
// the server keeps no list: `--new-key` makes the key (0600), `--scenario` issues one for every
// node of a fleet, `--out-dir` writes each to DIR/NODE.token (0600) instead of printing it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apps/commands.h"
#include "control/auth.h"
#include "io/scenario.h"
#include "io/server_config.h"

namespace joule::apps {
namespace {

struct NodeTokenOptions {
  std::string key_file, scenario, out_dir;
  bool new_key = false;
  std::vector<std::string> nodes;
};

// Writes `text` to a new file only its owner may read; an existing file is not replaced.
Status WriteSecret(const std::string& path, const std::string& text, bool replace) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (replace ? O_TRUNC : O_EXCL), 0600);
  if (fd < 0) return Status::Error(fmt::format("{}: {}", path, std::strerror(errno)));
  bool ok = fchmod(fd, 0600) == 0;
  for (size_t done = 0; ok && done < text.size();) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    ok = n > 0;
    done += ok ? static_cast<size_t>(n) : 0;
  }
  ok = fsync(fd) == 0 && ok;
  const int error = errno;
  close(fd);
  if (!ok) return Status::Error(fmt::format("{}: {}", path, std::strerror(error)));
  return Status::Ok();
}

int RunNodeToken(const NodeTokenOptions& o) {
  if (o.new_key) {
    if (!o.nodes.empty() || !o.scenario.empty()) {
      fmt::print(stderr, "joule node-token: --new-key makes the key only; issue credentials with a second call\n");
      return kExitBadInput;
    }
    if (std::filesystem::exists(o.key_file)) {  // provisioning runs again: the key stays, and every credential
      fmt::print(stderr, "joule node-token: {} exists: kept (to rotate the key, remove it first)\n", o.key_file);
      return kExitOk;
    }
    // 32 random bytes as 64 hex digits: printable, so that the key travels in configuration tools.
    if (Status s = WriteSecret(o.key_file, control::NewToken() + "\n", false); !s.ok()) {
      fmt::print(stderr, "joule node-token: --new-key {}\n", s.message());
      return kExitBadInput;
    }
    fmt::print(stderr, "joule node-token: a new node key in {} (keep it as secret as the operators' tokens)\n",
               o.key_file);
    return kExitOk;
  }
  Result<std::string> key = io::ReadNodeKey(o.key_file);
  if (!key.ok()) {
    fmt::print(stderr, "joule node-token: --key-file {}\n", key.status().message());
    return kExitBadInput;
  }
  std::vector<std::string> nodes = o.nodes;
  if (!o.scenario.empty()) {
    Result<io::Scenario> scenario = io::LoadScenario(o.scenario);
    if (!scenario.ok()) {
      fmt::print(stderr, "joule node-token: --scenario {}\n", scenario.status().message());
      return kExitBadInput;
    }
    for (uint32_t n = 0; n < scenario->fleet.nodes().size(); ++n)
      nodes.emplace_back(scenario->fleet.NodeName(NodeId(n)));
  }
  if (nodes.empty()) {
    fmt::print(stderr, "joule node-token: name the nodes, or give --scenario for all of its fleet's\n");
    return kExitBadInput;
  }
  for (const std::string& node : nodes) {
    if (node.empty() || node.find_first_of("/\\ \t\r\n") != std::string::npos) {
      fmt::print(stderr, "joule node-token: '{}' is not a node name\n", node);
      return kExitBadInput;
    }
  }
  if (!o.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.out_dir, ec);
    if (ec) {
      fmt::print(stderr, "joule node-token: --out-dir {}: {}\n", o.out_dir, ec.message());
      return kExitBadInput;
    }
    for (const std::string& node : nodes) {
      const std::string path = (std::filesystem::path(o.out_dir) / (node + ".token")).string();
      if (Status s = WriteSecret(path, control::NodeToken(*key, node) + "\n", true); !s.ok()) {
        fmt::print(stderr, "joule node-token: {}\n", s.message());
        return kExitFailure;
      }
    }
    fmt::print(stderr, "joule node-token: {} credential(s) in {}\n", nodes.size(), o.out_dir);
    return kExitOk;
  }
  for (const std::string& node : nodes) {
    if (nodes.size() == 1) {
      fmt::print("{}\n", control::NodeToken(*key, node));
    } else {
      fmt::print("{} {}\n", node, control::NodeToken(*key, node));
    }
  }
  return kExitOk;
}

}  // namespace

void AddNodeTokenCommand(CLI::App& app, CommandFn& run) {
  auto o = std::make_shared<NodeTokenOptions>();
  CLI::App* cmd = app.add_subcommand(
      "node-token", "Issue node agents' credentials from the server's node key (one per node; docs/security.md)");
  cmd->add_option("--key-file", o->key_file, "The node key (the server config's node_key_file)")->required();
  cmd->add_flag("--new-key", o->new_key, "Make a fresh node key in --key-file, unless that file exists");
  cmd->add_option("--scenario", o->scenario, "Issue one for every node of this scenario's fleet");
  cmd->add_option("--out-dir", o->out_dir, "Write each to DIR/NODE.token (mode 0600) instead of printing");
  cmd->add_option("nodes", o->nodes, "Nodes' names; with one, only its credential is printed, else NODE CREDENTIAL");
  cmd->callback([o, &run] { run = [o] { return RunNodeToken(*o); }; });
}

}  // namespace joule::apps
