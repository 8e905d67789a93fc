#pragma once

#include "coffre/server/config.h"

namespace coffre::server {

// Runs the gateway until SIGTERM/SIGINT. Returns the process exit status.
int RunDaemon(const Config& config);

}  // namespace coffre::server
