#pragma once

// The daemon's configuration: one JSON file, every setting with a safe default, validated at
// start with messages that name the bad field.

#include <cstdint>
#include <string>

#include "coffre/common/status.h"
#include "coffre/ops/rate_limiter.h"
#include "coffre/upstream/options.h"

namespace coffre::server {

// Where encrypted blobs rest ("storage"; docs/OPERATIONS.md). "local": files and pack files under
// data_dir. "s3": objects in an upstream S3 bucket, which sees only ciphertext under opaque names.
struct StorageConfig {
  std::string backend = "local";
  // backend "s3" only:
  std::string endpoint;  // "https://HOST[:PORT]" (or "http://" on loopback or with allow_plaintext)
  std::string region;
  std::string bucket;
  std::string prefix;                     // prepended to every blob name; "" or ending in "/"
  std::string addressing_style = "path";  // "path" (HOST/BUCKET/NAME) or "virtual" (BUCKET.HOST/NAME)
  std::string access_key_id;
  // The secret access key is read from this file (mode 0600 or 0400, like the root key), never
  // from the config itself.
  std::string secret_access_key_file;
  std::string tls_ca_file;  // PEM bundle to verify the upstream's certificate; "" = the system's
  bool allow_plaintext = false;
  // The longest the upstream may stay silent during a request (a slow or stalled transfer fails
  // after this, then is retried when it may be), and the longest a connection may take to open.
  int request_timeout_seconds = 30;
  int connect_timeout_seconds = 5;
};

struct Config {
  std::string listen = "127.0.0.1:9000";  // host:port; port 0 picks a free port
  std::string data_dir = "/var/lib/coffre";
  // Default: <data_dir>/root.key, which only a development config accepts (CheckRootKeyPlacement).
  std::string root_key_file;
  // Where the root key comes from (docs/KEYS.md): "file" (root_key_file, mode 0600/0400, owned
  // by the service user), "credential" (the systemd credential root_key_credential in
  // $CREDENTIALS_DIRECTORY), or "passphrase" (Argon2id; read from --passphrase-fd, or asked on
  // the terminal).
  std::string root_key_source = "file";
  std::string root_key_credential = "coffre-root-key";
  int passphrase_fd = -1;  // command line only (--passphrase-fd), never in the file
  // Development setup (the embedded config of `make run`): the root key file may live inside
  // data_dir. Anywhere else that is refused, since every copy of the data directory would then
  // carry the key that decrypts it.
  bool development = false;
  // Development convenience: create the root key file when it is missing. Never in production,
  // where the key comes from a credential and a missing key must stop the daemon.
  bool create_root_key = false;
  // Development convenience: create tenant "dev" at first start and save its credentials in
  // <data_dir>/dev-credentials.json (mode 0600).
  bool create_dev_tenant = false;
  std::string base_domain = "localhost";
  std::string region = "us-east-1";
  // AWS Signature Version 2 (header and presigned URLs) accepted from clients, as S3 does in its
  // older regions; false refuses it as S3's newer regions do (400 InvalidRequest).
  bool sigv2 = true;
  std::string log_level = "info";  // trace, debug, info, warn, error
  // "text": spdlog's line, as journald shows it; "json": one JSON object per line (time, level,
  // message, request_id for lines about a request). Reloaded on SIGHUP.
  std::string log_format = "text";
  uint32_t io_threads = 2;
  // 0: WorkerThreads() picks twice the CPU cores, at least 4.
  uint32_t worker_threads = 0;
  // Threads that make writes durable (PUT and part commits, Complete, DELETE): they mostly wait
  // for flushes, and the catalog's and the audit log's are shared, so the more commits wait at
  // once the more share one. Kept apart from the workers so that waiting commits never hold up
  // reads and encryption.
  uint32_t commit_threads = 32;
  uint32_t max_connections = 1024;
  // Request bodies one tenant may have in flight at once (each holds read buffers, and a small
  // object until it is committed); beyond it SlowDown (503) before the body is read. 0: no limit.
  // Reloaded on SIGHUP.
  uint32_t max_bodies_per_tenant = 64;
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t idle_timeout_seconds = 60;
  uint32_t read_timeout_seconds = 30;
  // Admin API (health, metrics): its own listener, loopback by default. "" disables it.
  std::string admin_listen = "127.0.0.1:9001";
  // /health/ready fails below this much free space in data_dir.
  uint32_t min_free_megabytes = 1024;
  // SIGTERM/SIGINT: in-flight requests get this long to finish before the process exits.
  uint32_t drain_timeout_seconds = 30;
  // TLS on both listeners (PEM certificate chain and private key; both or neither). Reloaded on
  // SIGHUP. Without TLS, a listener on a non-loopback address needs allow_plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool allow_plaintext = false;
  // One info line per S3 request (method, operation, bucket, key, status, bytes, duration,
  // tenant, request id); never headers, signatures or credentials.
  bool access_log = false;
  // Key-usage audit log (docs/AUDIT.md): a signed checkpoint every N records or T seconds.
  uint32_t audit_checkpoint_records = 1000;
  uint32_t audit_checkpoint_seconds = 60;
  // Key rotation policy (docs/KEYS.md): a tenant whose active key version is older than this many
  // days gets a new version (checked at start and every hour). 0: rotate only by hand.
  uint32_t rotate_after_days = 0;
  // Dual control (docs/KEYS.md): destroying a key version, shredding a tenant and rotating the
  // root key need an approval requested by one admin credential and granted by another, valid
  // for this many minutes after the request. Off by default (one operator suffices).
  bool dual_control = false;
  uint32_t dual_control_approval_minutes = 60;
  // Background scrub (docs/OPERATIONS.md): every this many hours (fractions allowed), the daemon
  // reads every object and checks every segment tag and blob length, as `coffre scrub` does,
  // one object at a time at low CPU and I/O priority. 0: off (the default: a pass reads the whole
  // store and writes one audit record per object, so operators choose when to pay for it).
  double scrub_interval_hours = 0;
  // The scrub's read rate limit in bytes per second (0: unlimited), so that it stays out of the
  // way of client traffic: 16 MiB/s checks 1 TiB in about 18 hours.
  uint64_t scrub_bytes_per_second = 16 * 1024 * 1024;
  // Bucket lifecycle (docs/OPERATIONS.md, "Lifecycle"): every this many seconds the daemon applies
  // the buckets' lifecycle rules; 0: never (the rules are still stored and answered).
  uint32_t lifecycle_interval_seconds = 3600;
  // At most this many lifecycle deletions and aborts a second (0: unlimited), so that a rule that
  // expires millions of objects at once does not crowd out client traffic.
  uint32_t lifecycle_actions_per_second = 100;
  // Blobs of objects (or parts) declared at most this many bytes go to records of shared pack
  // files, whose flushes many PUTs share; larger ones get a file each (docs/OPERATIONS.md,
  // "What a data directory holds"). 0: every blob gets a file. Such a blob is held in memory
  // until it is committed, so this also bounds that memory per PUT in flight.
  uint32_t packed_blob_max_bytes = 256 * 1024;
  // Per-tenant request rate limits ("rate_limits"; docs/OPERATIONS.md): a token bucket per
  // tenant, SlowDown (503) beyond it. Unlimited unless set. Reloaded on SIGHUP.
  ops::RateLimits rate_limits;
  StorageConfig storage;

  std::string ResolvedRootKeyFile() const { return root_key_file.empty() ? data_dir + "/root.key" : root_key_file; }
};

// The configuration `make run` uses: data under ./var, dev key and tenant created on demand,
// the key beside the data (development).
Config DevelopmentConfig();

// InvalidArgument, saying where to put the key instead, when the root key file (root_key_source
// "file") resolves inside data_dir, however spelled (symlinks, "..", a symlinked data_dir),
// unless `development`. Checked by `serve` before it opens or creates anything, `keystore init`
// and `config check`.
Status CheckRootKeyPlacement(const Config& config);

// The upstream client's options for a "s3" storage config: all but the secret, which whoever
// connects reads from secret_access_key_file.
upstream::S3ClientOptions UpstreamClientOptions(const StorageConfig& storage);

Result<Config> LoadConfigFile(const std::string& path);
Result<Config> ParseConfig(const std::string& json_text);

// The worker pool's size: `worker_threads`, or when 0 twice the CPU cores, at least 4 (at least
// kGatewayWorkerThreads with an upstream store, whose reads wait on the network). The workers do
// CPU work (authentication, encryption) and reads that may wait on the disk; writes wait for their
// flushes on the commit threads instead. More workers than that cost small requests time in
// wake-ups and switches (docs/performance-history.md, "Commit threads and fewer workers").
inline constexpr uint32_t kGatewayWorkerThreads = 32;
uint32_t WorkerThreads(const Config& config);
// "localhost", 127.0.0.0/8 or ::1: where plain HTTP is allowed without allow_plaintext.
bool IsLoopbackHost(const std::string& host);
// Splits "host:port" (IPv6 as "[::1]:9000").
Status ParseListen(const std::string& listen, std::string* host, uint16_t* port);

}  // namespace coffre::server
