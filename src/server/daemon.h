#pragma once

#include <functional>

#include "coffre/server/config.h"

namespace coffre::server {

// Reads the configuration again (the file and the command line's overrides), for SIGHUP.
using ConfigLoader = std::function<Result<Config>()>;

// Runs the gateway until SIGTERM/SIGINT. On SIGHUP, calls `reload` (when set) and applies what
// can change in place (log level and format, limits, tenants' rate limits, timeouts, drain
// deadline); an invalid configuration is logged and changes nothing. Refuses to start (exit 2)
// while another process holds the data directory's lock (data_dir_lock.h). Returns the process
// exit status.
int RunDaemon(const Config& config, const ConfigLoader& reload = {});

}  // namespace coffre::server
