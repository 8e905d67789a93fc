#pragma once

// The daemon's configuration: one JSON file, every setting with a safe default, validated at
// start with messages that name the bad field.

#include <cstdint>
#include <string>

#include "coffre/common/status.h"

namespace coffre::server {

struct Config {
  std::string listen = "127.0.0.1:9000";  // host:port; port 0 picks a free port
  std::string data_dir = "/var/lib/coffre";
  std::string root_key_file;              // default: <data_dir>/root.key
  // Development convenience: create the root key file when it is missing. Never in production,
  // where the key comes from a credential and a missing key must stop the daemon.
  bool create_root_key = false;
  // Development convenience: create tenant "dev" at first start and save its credentials in
  // <data_dir>/dev-credentials.json (mode 0600).
  bool create_dev_tenant = false;
  std::string base_domain = "localhost";
  std::string region = "us-east-1";
  std::string log_level = "info";         // trace, debug, info, warn, error
  uint32_t io_threads = 2;
  uint32_t worker_threads = 8;
  uint32_t max_connections = 1024;
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t idle_timeout_seconds = 60;
  uint32_t read_timeout_seconds = 30;

  std::string ResolvedRootKeyFile() const {
    return root_key_file.empty() ? data_dir + "/root.key" : root_key_file;
  }
};

// The configuration `make run` uses: data under ./var, dev key and tenant created on demand.
Config DevelopmentConfig();

Result<Config> LoadConfigFile(const std::string& path);
Result<Config> ParseConfig(const std::string& json_text);
// Splits "host:port" (IPv6 as "[::1]:9000").
Status ParseListen(const std::string& listen, std::string* host, uint16_t* port);

}  // namespace coffre::server
