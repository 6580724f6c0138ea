#include <iostream>
#include <string_view>

#include "agent/supervisor.h"
#include "apps/commands.h"

namespace joule::apps {

int Main(int argc, char** argv) {
  // The agent's per-worker shim (agent/supervisor.h): not a user command, kept out of the help.
  if (argc >= 2 && std::string_view(argv[1]) == "agent-shim") return agent::ShimMain(argc - 2, argv + 2);
  CLI::App app("Joule: control plane and digital twin for gigawatt-scale AI datacenters", "joule");
  app.require_subcommand(1);
  CommandFn run;
  AddFleetCommand(app, run);
  AddPlaceCommand(app, run);
  AddScheduleCommand(app, run);
  AddSimCommand(app, run);
  AddServerCommand(app, run);
  AddNodeTokenCommand(app, run);
  AddClientCommands(app, run);
  AddAgentCommand(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }
  return run();
}

}  // namespace joule::apps
