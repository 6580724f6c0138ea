// Subcommands of the `joule` binary. Each Add*Command registers its options on the CLI11 app and
// sets `run` to the function that executes it. Exit codes: 0 success, 1 runtime failure,
// 2 bad input (flags, files).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace joule::apps {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitBadInput = 2;

using CommandFn = std::function<int()>;

void AddFleetCommand(CLI::App& app, CommandFn& run);
void AddPlaceCommand(CLI::App& app, CommandFn& run);
void AddScheduleCommand(CLI::App& app, CommandFn& run);
void AddSimCommand(CLI::App& app, CommandFn& run);
void AddServerCommand(CLI::App& app, CommandFn& run);  // server and token
void AddNodeTokenCommand(CLI::App& app, CommandFn& run);
void AddClientCommands(CLI::App& app, CommandFn& run);
void AddAgentCommand(CLI::App& app, CommandFn& run);  // submit, queue, nodes, cancel, drain, resume, show

int Main(int argc, char** argv);

}  // namespace joule::apps
