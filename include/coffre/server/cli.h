#pragma once

namespace coffre::server {

// Entry point of the `coffre` binary: parses the subcommand and runs it. Returns the exit status.
int Main(int argc, char** argv);

}  // namespace coffre::server
