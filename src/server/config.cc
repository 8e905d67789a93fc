#include "coffre/server/config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "coffre/s3/bucket_name.h"
#include "coffre/upstream/options.h"

namespace coffre::server {

Config DevelopmentConfig() {
  Config c;
  c.data_dir = "./var";
  c.development = true;
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

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

namespace {

// The path with every symlink of its existing part followed and "." and ".." removed: where the
// file really is, whichever way the config spells it.
std::filesystem::path Resolved(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) return std::filesystem::path(path).lexically_normal();
  // weakly_canonical leaves a dangling symlink as it is: follow it to where it points.
  for (int hops = 0; hops < 40 && std::filesystem::is_symlink(absolute, ec); ++hops) {
    const std::filesystem::path target = std::filesystem::read_symlink(absolute, ec);
    if (ec) break;
    absolute = target.is_absolute() ? target : absolute.parent_path() / target;
  }
  std::filesystem::path resolved = std::filesystem::weakly_canonical(absolute, ec);
  if (ec) resolved = absolute.lexically_normal();
  if (!resolved.has_filename()) resolved = resolved.parent_path();  // "dir/" and "dir" alike
  return resolved;
}

bool IsWithin(const std::filesystem::path& dir, const std::filesystem::path& file) {
  auto d = dir.begin();
  auto f = file.begin();
  for (; d != dir.end(); ++d, ++f) {
    if (f == file.end() || *d != *f) return false;
  }
  return true;
}

}  // namespace

Status CheckRootKeyPlacement(const Config& config) {
  if (config.development || config.root_key_source != "file") return Status::Ok();
  const std::string key_file = config.ResolvedRootKeyFile();
  const std::filesystem::path key = Resolved(key_file);
  const std::filesystem::path data = Resolved(config.data_dir);
  if (!IsWithin(data, key)) return Status::Ok();
  const std::string spelled =
      config.root_key_file.empty() ? "root_key_file (default " + key_file + ")" : "root_key_file " + key_file;
  const std::string resolves = key.string() == key_file ? "" : " (resolves to " + key.string() + ")";
  return Status::InvalidArgument(
      spelled + resolves + " is inside data_dir " + config.data_dir +
      ": every copy or snapshot of the data directory would carry the key that decrypts it. Keep the root "
      "key outside data_dir: e.g. /etc/coffre/root.key (root-owned, mode 0600), given to the service by "
      "systemd with LoadCredential=root.key:/etc/coffre/root.key and \"root_key_file\": "
      "\"/run/credentials/coffre.service/root.key\" (as config/coffre.service and config/coffre.example.json "
      "do), or \"root_key_source\": \"credential\" (docs/KEYS.md). Only a development setup "
      "(\"development\": true) may keep it there.");
}

namespace {

constexpr double kMaxRate = 1'000'000;

// {"requests_per_second": N, "burst": M}; `path` names it in messages.
Result<ops::RateLimit> ParseRateLimit(const nlohmann::json& j, const std::string& path) {
  if (!j.is_object()) {
    return Status::InvalidArgument("config: '" + path +
                                   "' must be an object {\"requests_per_second\": N, \"burst\": M}");
  }
  for (const auto& [k, v] : j.items()) {
    if (k != "requests_per_second" && k != "burst") {
      return Status::InvalidArgument("config: unknown field '" + path + "." + k +
                                     "' (allowed: requests_per_second, burst)");
    }
  }
  ops::RateLimit limit;
  if (!j.contains("requests_per_second") || !j["requests_per_second"].is_number() ||
      j["requests_per_second"].get<double>() < 0 || j["requests_per_second"].get<double>() > kMaxRate) {
    return Status::InvalidArgument("config: '" + path +
                                   ".requests_per_second' must be a number from 0 (no limit) to 1000000");
  }
  limit.requests_per_second = j["requests_per_second"].get<double>();
  // Without a burst, one second's worth of requests may come at once.
  limit.burst = std::max(1.0, std::ceil(limit.requests_per_second));
  if (j.contains("burst")) {
    if (!j["burst"].is_number_unsigned() || j["burst"].get<uint64_t>() < 1 ||
        j["burst"].get<uint64_t>() > static_cast<uint64_t>(kMaxRate)) {
      return Status::InvalidArgument("config: '" + path + ".burst' must be an integer from 1 to 1000000");
    }
    limit.burst = static_cast<double>(j["burst"].get<uint64_t>());
  }
  return limit;
}

Result<ops::RateLimits> ParseRateLimits(const nlohmann::json& j) {
  if (!j.is_object()) {
    return Status::InvalidArgument("config: 'rate_limits' must be an object with \"default\" and/or \"tenants\"");
  }
  ops::RateLimits limits;
  for (const auto& [k, v] : j.items()) {
    if (k == "default") {
      COFFRE_ASSIGN_OR_RETURN(limits.default_limit, ParseRateLimit(v, "rate_limits.default"));
    } else if (k == "tenants") {
      if (!v.is_object()) {
        return Status::InvalidArgument("config: 'rate_limits.tenants' must be an object keyed by tenant name or id");
      }
      for (const auto& [tenant, limit] : v.items()) {
        if (tenant.empty()) {
          return Status::InvalidArgument("config: 'rate_limits.tenants' keys must be tenant names or ids, not \"\"");
        }
        COFFRE_ASSIGN_OR_RETURN(limits.tenants[tenant], ParseRateLimit(limit, "rate_limits.tenants." + tenant));
      }
    } else {
      return Status::InvalidArgument("config: unknown field 'rate_limits." + k + "' (allowed: default, tenants)");
    }
  }
  return limits;
}

// The endpoint as the upstream client will take it: a well-formed URL, plain http only to loopback
// unless allowed, a bucket name the addressing style can carry.
Status CheckUpstreamEndpoint(const StorageConfig& s) {
  if (auto resolved = upstream::ResolveEndpoint(UpstreamClientOptions(s)); !resolved.ok()) {
    return Status::InvalidArgument("config: 'storage': " + resolved.status().message());
  }
  return Status::Ok();
}

Result<StorageConfig> ParseStorage(const nlohmann::json& j) {
  if (!j.is_object()) {
    return Status::InvalidArgument("config: 'storage' must be an object, e.g. {\"backend\": \"local\"}");
  }
  static const std::set<std::string> kS3Fields = {"endpoint",
                                                  "region",
                                                  "bucket",
                                                  "prefix",
                                                  "addressing_style",
                                                  "access_key_id",
                                                  "secret_access_key_file",
                                                  "tls_ca_file",
                                                  "allow_plaintext",
                                                  "request_timeout_seconds",
                                                  "connect_timeout_seconds"};
  StorageConfig s;
  std::map<std::string, std::string*> strings = {{"backend", &s.backend},
                                                 {"endpoint", &s.endpoint},
                                                 {"region", &s.region},
                                                 {"bucket", &s.bucket},
                                                 {"prefix", &s.prefix},
                                                 {"addressing_style", &s.addressing_style},
                                                 {"access_key_id", &s.access_key_id},
                                                 {"secret_access_key_file", &s.secret_access_key_file},
                                                 {"tls_ca_file", &s.tls_ca_file}};
  for (const auto& [k, v] : j.items()) {
    if (k == "allow_plaintext") {
      if (!v.is_boolean()) return Status::InvalidArgument("config: 'storage.allow_plaintext' must be true or false");
      s.allow_plaintext = v.get<bool>();
    } else if (k == "request_timeout_seconds" || k == "connect_timeout_seconds") {
      const int max = k == "request_timeout_seconds" ? 600 : 120;
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > max) {
        return Status::InvalidArgument("config: 'storage." + k + "' must be a whole number of seconds from 1 to " +
                                       std::to_string(max));
      }
      (k == "request_timeout_seconds" ? s.request_timeout_seconds : s.connect_timeout_seconds) = v.get<int>();
    } else if (auto it = strings.find(k); it != strings.end()) {
      if (!v.is_string()) return Status::InvalidArgument("config: 'storage." + k + "' must be a string");
      *it->second = v.get<std::string>();
    } else if (k == "secret_access_key") {
      return Status::InvalidArgument(
          "config: 'storage.secret_access_key' is not read from the config: put the secret in a file of mode 0600 "
          "and name it in 'storage.secret_access_key_file'");
    } else {
      return Status::InvalidArgument("config: unknown field 'storage." + k + "'");
    }
  }
  if (s.backend == "local") {
    for (const auto& [k, v] : j.items()) {
      if (kS3Fields.count(k) != 0) {
        return Status::InvalidArgument("config: 'storage." + k + "' applies only to \"backend\": \"s3\"");
      }
    }
    return s;
  }
  if (s.backend != "s3") {
    return Status::InvalidArgument("config: 'storage.backend' must be \"local\" or \"s3\", got \"" + s.backend + "\"");
  }
  for (const char* required : {"endpoint", "region", "bucket", "access_key_id", "secret_access_key_file"}) {
    if (strings[required]->empty()) {
      return Status::InvalidArgument(std::string("config: 'storage.") + required +
                                     "' is required with \"backend\": \"s3\"");
    }
  }
  if (!s3::IsValidBucketName(s.bucket)) {
    return Status::InvalidArgument("config: 'storage.bucket' \"" + s.bucket +
                                   "\" is not a valid S3 bucket name (3-63 of a-z, 0-9, '.', '-')");
  }
  if (s.addressing_style != "path" && s.addressing_style != "virtual") {
    return Status::InvalidArgument("config: 'storage.addressing_style' must be \"path\" or \"virtual\"");
  }
  COFFRE_RETURN_IF_ERROR(CheckUpstreamEndpoint(s));
  if (s.prefix.size() > 512 || (!s.prefix.empty() && (s.prefix.front() == '/' || s.prefix.back() != '/')) ||
      std::any_of(s.prefix.begin(), s.prefix.end(), [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; })) {
    return Status::InvalidArgument(
        "config: 'storage.prefix' must be \"\" or up to 512 printable characters ending in '/' (not starting with "
        "'/')");
  }
  if (s.secret_access_key_file.front() != '/') {
    return Status::InvalidArgument("config: 'storage.secret_access_key_file' must be an absolute path");
  }
  return s;
}

// Every top-level field must be one this version knows: a misspelt one would otherwise be
// ignored silently.
Status CheckKnownFields(const nlohmann::json& j) {
  static const std::set<std::string> kKnown = {"listen",
                                               "data_dir",
                                               "root_key_file",
                                               "development",
                                               "create_root_key",
                                               "create_dev_tenant",
                                               "base_domain",
                                               "region",
                                               "sigv2",
                                               "log_level",
                                               "io_threads",
                                               "worker_threads",
                                               "commit_threads",
                                               "max_connections",
                                               "max_bodies_per_tenant",
                                               "max_header_bytes",
                                               "idle_timeout_seconds",
                                               "read_timeout_seconds",
                                               "admin_listen",
                                               "min_free_megabytes",
                                               "drain_timeout_seconds",
                                               "tls_cert_file",
                                               "tls_key_file",
                                               "allow_plaintext",
                                               "access_log",
                                               "audit_checkpoint_records",
                                               "audit_checkpoint_seconds",
                                               "rotate_after_days",
                                               "root_key_source",
                                               "root_key_credential",
                                               "log_format",
                                               "rate_limits",
                                               "scrub_interval_hours",
                                               "scrub_bytes_per_second",
                                               "lifecycle_interval_seconds",
                                               "lifecycle_actions_per_second",
                                               "packed_blob_max_bytes",
                                               "dual_control",
                                               "dual_control_approval_minutes",
                                               "storage"};
  for (const auto& [k, v] : j.items()) {
    if (kKnown.count(k) == 0) return Status::InvalidArgument("config: unknown field '" + k + "'");
  }
  return Status::Ok();
}

// Plain HTTP only on loopback addresses, unless TLS is set up or plain HTTP explicitly allowed.
Status CheckListenAddresses(const Config& c) {
  std::string host;
  uint16_t port = 0;
  COFFRE_RETURN_IF_ERROR(ParseListen(c.listen, &host, &port));
  const bool plain_ok = !c.tls_cert_file.empty() || c.allow_plaintext;
  if (!plain_ok && !IsLoopbackHost(host)) {
    return Status::InvalidArgument("config: 'listen' " + c.listen +
                                   " is not a loopback address: set tls_cert_file and tls_key_file, or "
                                   "allow_plaintext: true to serve plain HTTP there");
  }
  if (!c.admin_listen.empty()) {
    if (Status st = ParseListen(c.admin_listen, &host, &port); !st.ok()) {
      return Status::InvalidArgument("config: 'admin_listen': " + st.message() + " (or \"\" to disable)");
    }
    if (!plain_ok && !IsLoopbackHost(host)) {
      return Status::InvalidArgument("config: 'admin_listen' " + c.admin_listen +
                                     " is not a loopback address: set tls_cert_file and tls_key_file, or "
                                     "allow_plaintext: true to serve plain HTTP there");
    }
  }
  return Status::Ok();
}

}  // namespace

uint32_t WorkerThreads(const Config& config) {
  if (config.worker_threads != 0) return config.worker_threads;
  const uint32_t for_cpu = std::max(4u, 2 * std::thread::hardware_concurrency());
  // In gateway mode a read holds its worker for the upstream's round trips, milliseconds each
  // rather than a disk's microseconds: with a handful of workers, a few clients would fill them.
  return config.storage.backend == "s3" ? std::max(kGatewayWorkerThreads, for_cpu) : for_cpu;
}

Result<Config> ParseConfig(const std::string& json_text) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) return Status::InvalidArgument("config: not valid JSON");
  if (!j.is_object()) return Status::InvalidArgument("config: the top level must be a JSON object");
  Config c;
  COFFRE_RETURN_IF_ERROR(CheckKnownFields(j));
  auto str = [&](const char* name, std::string& out) -> Status {
    if (!j.contains(name)) return Status::Ok();
    if (!j[name].is_string()) return Status::InvalidArgument(std::string("config: '") + name + "' must be a string");
    out = j[name].get<std::string>();
    return Status::Ok();
  };
  auto boolean = [&](const char* name, bool& out) -> Status {
    if (!j.contains(name)) return Status::Ok();
    if (!j[name].is_boolean())
      return Status::InvalidArgument(std::string("config: '") + name + "' must be true or false");
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
  COFFRE_RETURN_IF_ERROR(boolean("development", c.development));
  COFFRE_RETURN_IF_ERROR(boolean("create_root_key", c.create_root_key));
  COFFRE_RETURN_IF_ERROR(boolean("create_dev_tenant", c.create_dev_tenant));
  COFFRE_RETURN_IF_ERROR(str("base_domain", c.base_domain));
  COFFRE_RETURN_IF_ERROR(str("region", c.region));
  COFFRE_RETURN_IF_ERROR(boolean("sigv2", c.sigv2));
  COFFRE_RETURN_IF_ERROR(str("log_level", c.log_level));
  COFFRE_RETURN_IF_ERROR(number("io_threads", c.io_threads, 1, 64));
  COFFRE_RETURN_IF_ERROR(number("worker_threads", c.worker_threads, 0, 256));
  COFFRE_RETURN_IF_ERROR(number("commit_threads", c.commit_threads, 1, 1024));
  COFFRE_RETURN_IF_ERROR(number("max_connections", c.max_connections, 1, 1000000));
  COFFRE_RETURN_IF_ERROR(number("max_bodies_per_tenant", c.max_bodies_per_tenant, 0, 1000000));
  COFFRE_RETURN_IF_ERROR(number("max_header_bytes", c.max_header_bytes, 1024, 1024 * 1024));
  COFFRE_RETURN_IF_ERROR(number("idle_timeout_seconds", c.idle_timeout_seconds, 1, 3600));
  COFFRE_RETURN_IF_ERROR(number("read_timeout_seconds", c.read_timeout_seconds, 1, 3600));
  COFFRE_RETURN_IF_ERROR(str("admin_listen", c.admin_listen));
  COFFRE_RETURN_IF_ERROR(number("min_free_megabytes", c.min_free_megabytes, 0, 1024 * 1024));
  COFFRE_RETURN_IF_ERROR(number("drain_timeout_seconds", c.drain_timeout_seconds, 1, 3600));
  COFFRE_RETURN_IF_ERROR(str("tls_cert_file", c.tls_cert_file));
  COFFRE_RETURN_IF_ERROR(str("tls_key_file", c.tls_key_file));
  COFFRE_RETURN_IF_ERROR(boolean("allow_plaintext", c.allow_plaintext));
  COFFRE_RETURN_IF_ERROR(boolean("access_log", c.access_log));
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return Status::InvalidArgument("config: 'tls_cert_file' and 'tls_key_file' go together: set both or neither");
  }
  COFFRE_RETURN_IF_ERROR(number("audit_checkpoint_records", c.audit_checkpoint_records, 1, 1000000));
  COFFRE_RETURN_IF_ERROR(number("audit_checkpoint_seconds", c.audit_checkpoint_seconds, 1, 86400));
  COFFRE_RETURN_IF_ERROR(number("rotate_after_days", c.rotate_after_days, 0, 3650));
  COFFRE_RETURN_IF_ERROR(boolean("dual_control", c.dual_control));
  COFFRE_RETURN_IF_ERROR(number("dual_control_approval_minutes", c.dual_control_approval_minutes, 1, 7 * 24 * 60));
  if (j.contains("scrub_interval_hours")) {
    constexpr double kMaxScrubIntervalHours = 24 * 366;
    const auto& v = j["scrub_interval_hours"];
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > kMaxScrubIntervalHours) {
      return Status::InvalidArgument("config: 'scrub_interval_hours' must be a number from 0 (off) to 8784");
    }
    c.scrub_interval_hours = v.get<double>();
  }
  if (j.contains("scrub_bytes_per_second")) {
    if (!j["scrub_bytes_per_second"].is_number_unsigned()) {
      return Status::InvalidArgument("config: 'scrub_bytes_per_second' must be an integer, 0 for unlimited");
    }
    c.scrub_bytes_per_second = j["scrub_bytes_per_second"].get<uint64_t>();
  }
  COFFRE_RETURN_IF_ERROR(number("lifecycle_interval_seconds", c.lifecycle_interval_seconds, 0, 7 * 24 * 3600));
  COFFRE_RETURN_IF_ERROR(number("lifecycle_actions_per_second", c.lifecycle_actions_per_second, 0, 1000000));
  COFFRE_RETURN_IF_ERROR(number("packed_blob_max_bytes", c.packed_blob_max_bytes, 0, 16 * 1024 * 1024));
  COFFRE_RETURN_IF_ERROR(str("root_key_source", c.root_key_source));
  COFFRE_RETURN_IF_ERROR(str("root_key_credential", c.root_key_credential));
  if (c.root_key_source != "file" && c.root_key_source != "credential" && c.root_key_source != "passphrase") {
    return Status::InvalidArgument("config: 'root_key_source' must be \"file\", \"credential\" or \"passphrase\"");
  }
  COFFRE_RETURN_IF_ERROR(str("log_format", c.log_format));
  if (c.log_format != "text" && c.log_format != "json") {
    return Status::InvalidArgument("config: 'log_format' must be \"text\" or \"json\"");
  }
  if (j.contains("rate_limits")) {
    COFFRE_ASSIGN_OR_RETURN(c.rate_limits, ParseRateLimits(j["rate_limits"]));
  }
  if (j.contains("storage")) {
    COFFRE_ASSIGN_OR_RETURN(c.storage, ParseStorage(j["storage"]));
  }
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error"};
  if (kLevels.count(c.log_level) == 0) {
    return Status::InvalidArgument("config: 'log_level' must be one of trace, debug, info, warn, error");
  }
  if (c.data_dir.empty()) return Status::InvalidArgument("config: 'data_dir' must not be empty");
  COFFRE_RETURN_IF_ERROR(CheckListenAddresses(c));
  return c;
}

upstream::S3ClientOptions UpstreamClientOptions(const StorageConfig& storage) {
  upstream::S3ClientOptions options;
  options.endpoint = storage.endpoint;
  options.region = storage.region;
  options.bucket = storage.bucket;
  options.addressing = storage.addressing_style == "virtual" ? upstream::AddressingStyle::kVirtualHosted
                                                             : upstream::AddressingStyle::kPath;
  options.access_key_id = storage.access_key_id;
  options.ca_file = storage.tls_ca_file;
  options.allow_plaintext = storage.allow_plaintext;
  options.request_timeout = std::chrono::seconds(storage.request_timeout_seconds);
  options.connect_timeout = std::chrono::seconds(storage.connect_timeout_seconds);
  // One operation with its retries may take a few silences before it gives up.
  options.retry.total_deadline =
      std::max<std::chrono::milliseconds>(options.retry.total_deadline, 2 * options.request_timeout);
  return options;
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
