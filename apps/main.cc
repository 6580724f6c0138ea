// The `joule` binary: every subcommand lives in this library; main only hands over.
#include "apps/commands.h"

int main(int argc, char** argv) { return joule::apps::Main(argc, argv); }
