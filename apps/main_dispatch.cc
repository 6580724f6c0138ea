#include <iostream>

#include "apps/commands.h"

namespace joule::apps {

int Main(int argc, char** argv) {
  CLI::App app("Joule: control plane and digital twin for gigawatt-scale AI datacenters", "joule");
  app.require_subcommand(1);
  CommandFn run;
  AddFleetCommand(app, run);
  AddPlaceCommand(app, run);
  AddScheduleCommand(app, run);
  AddSimCommand(app, run);
  AddServerCommand(app, run);
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
