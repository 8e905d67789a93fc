#include "coffre/server/config.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

namespace coffre::server {

Config DevelopmentConfig() {
  Config c;
  c.data_dir = "./var";
  c.create_root_key = true;
  c.create_dev_tenant = true;
  c.log_level = "info";
  return c;
}

Status ParseListen(const std::string& listen, std::string* host, uint16_t* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return Status::InvalidArgument("listen: expected HOST:PORT, got '" + listen + "'");
  }
  std::string h = listen.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned long p = 0;
  for (char c : listen.substr(colon + 1)) {
    if (c < '0' || c > '9') return Status::InvalidArgument("listen: port must be a number 0-65535");
    p = p * 10 + static_cast<unsigned long>(c - '0');
    if (p > 65535) return Status::InvalidArgument("listen: port must be a number 0-65535");
  }
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::Ok();
}

Result<Config> ParseConfig(const std::string& json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) return Status::InvalidArgument("config: not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("config: the top level must be a JSON object");
  Config c;
  static const std::set<std::string> kKnown = {
      "listen", "data_dir", "root_key_file", "create_root_key", "create_dev_tenant", "base_domain", "region",
      "log_level", "io_threads", "worker_threads", "max_connections", "max_header_bytes", "idle_timeout_seconds",
      "read_timeout_seconds"};
  for (const auto& [k, v] : j.items()) {
    if (kKnown.count(k) == 0) return Status::InvalidArgument("config: unknown field '" + k + "'");
  }
  auto str = [&](const char* name, std::string& out) -> Status {
    if (!j.contains(name)) return Status::Ok();
    if (!j[name].is_string()) return Status::InvalidArgument(std::string("config: '") + name + "' must be a string");
    out = j[name].get<std::string>();
    return Status::Ok();
  };
  auto boolean = [&](const char* name, bool& out) -> Status {
    if (!j.contains(name)) return Status::Ok();
    if (!j[name].is_boolean()) return Status::InvalidArgument(std::string("config: '") + name + "' must be true or false");
    out = j[name].get<bool>();
    return Status::Ok();
  };
  auto number = [&](const char* name, uint32_t& out, uint32_t min, uint32_t max) -> Status {
    if (!j.contains(name)) return Status::Ok();
    if (!j[name].is_number_unsigned() || j[name].get<uint64_t>() < min || j[name].get<uint64_t>() > max) {
      return Status::InvalidArgument(std::string("config: '") + name + "' must be an integer from " +
                                     std::to_string(min) + " to " + std::to_string(max));
    }
    out = j[name].get<uint32_t>();
    return Status::Ok();
  };
  COFFRE_RETURN_IF_ERROR(str("listen", c.listen));
  COFFRE_RETURN_IF_ERROR(str("data_dir", c.data_dir));
  COFFRE_RETURN_IF_ERROR(str("root_key_file", c.root_key_file));
  COFFRE_RETURN_IF_ERROR(boolean("create_root_key", c.create_root_key));
  COFFRE_RETURN_IF_ERROR(boolean("create_dev_tenant", c.create_dev_tenant));
  COFFRE_RETURN_IF_ERROR(str("base_domain", c.base_domain));
  COFFRE_RETURN_IF_ERROR(str("region", c.region));
  COFFRE_RETURN_IF_ERROR(str("log_level", c.log_level));
  COFFRE_RETURN_IF_ERROR(number("io_threads", c.io_threads, 1, 64));
  COFFRE_RETURN_IF_ERROR(number("worker_threads", c.worker_threads, 1, 256));
  COFFRE_RETURN_IF_ERROR(number("max_connections", c.max_connections, 1, 1000000));
  COFFRE_RETURN_IF_ERROR(number("max_header_bytes", c.max_header_bytes, 1024, 1024 * 1024));
  COFFRE_RETURN_IF_ERROR(number("idle_timeout_seconds", c.idle_timeout_seconds, 1, 3600));
  COFFRE_RETURN_IF_ERROR(number("read_timeout_seconds", c.read_timeout_seconds, 1, 3600));
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (kLevels.count(c.log_level) == 0) {
    return Status::InvalidArgument("config: 'log_level' must be one of trace, debug, info, warn, error");
  }
  if (c.data_dir.empty()) return Status::InvalidArgument("config: 'data_dir' must not be empty");
  std::string host;
  uint16_t port = 0;
  COFFRE_RETURN_IF_ERROR(ParseListen(c.listen, &host, &port));
  return c;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("config: cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = ParseConfig(ss.str());
  if (!c.ok()) return Status::InvalidArgument(path + ": " + c.status().message());
  return c;
}

}  // namespace coffre::server
