// Fuzzes the daemon's configuration parser (server::ParseConfig) and the listen-address parser.
// Errors are values: any exception escaping, or a crash, is a finding.

#include <cstddef>
#include <cstdint>
#include <string>

#include "coffre/server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = coffre::server::ParseConfig(text);
  if (config.ok()) {
    std::string host;
    uint16_t port = 0;
    (void)coffre::server::ParseListen(config->listen, &host, &port);
    (void)config->ResolvedRootKeyFile();
  }
  std::string host;
  uint16_t port = 0;
  (void)coffre::server::ParseListen(text, &host, &port);
  return 0;
}
