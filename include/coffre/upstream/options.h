#pragma once

// How an S3Client reaches its upstream bucket, and how hard it retries.

#include <chrono>
#include <cstdint>
#include <string>

#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::upstream {

enum class AddressingStyle {
  kPath,           // https://host/bucket/key (Ceph RGW, Coffre, most self-hosted servers)
  kVirtualHosted,  // https://bucket.host/key (AWS and most providers)
};

// Exponential backoff with full jitter: before retry n (1, 2, ...) the client sleeps a uniformly
// random time in [0, min(max_delay, base_delay * 2^(n-1))], so many workers that failed together
// do not come back together.
struct RetryPolicy {
  int max_attempts = 4;  // the first try included; 1 means never retry
  std::chrono::milliseconds base_delay{50};
  std::chrono::milliseconds max_delay{2000};
  // Bounds one operation with all its attempts and sleeps; each attempt's I/O is cut short by it.
  std::chrono::milliseconds total_deadline{30'000};
};

struct S3ClientOptions {
  // "https://s3.example.net", "http://127.0.0.1:9000": scheme, host and optional port; no path.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  AddressingStyle addressing = AddressingStyle::kPath;
  std::string access_key_id;
  SecretBytes secret_access_key;  // the secret's characters; never logged nor put in a Status
  // PEM bundle the upstream's certificate must chain to; empty: the system's trust store.
  std::string ca_file;
  // Plain http sends the data and the signed requests readable on the wire; it is refused unless
  // the host is a loopback address or this is set.
  bool allow_plaintext = false;
  std::chrono::milliseconds connect_timeout{5'000};  // TCP connect and TLS handshake
  // The longest the upstream may stay silent: every write or read of a request (header, each body
  // piece) must complete within it, so a large transfer is bounded by progress, not by size.
  std::chrono::milliseconds request_timeout{30'000};
  // A pooled connection unused this long is closed rather than reused: servers drop idle
  // keep-alive connections, and a request sent on a dropped one fails.
  std::chrono::milliseconds pool_idle_timeout{15'000};
  size_t max_idle_connections = 16;
  RetryPolicy retry;
};

// The endpoint taken apart, with what follows from the addressing style.
struct Endpoint {
  bool tls = true;
  bool loopback = false;  // the host is localhost or a loopback address
  // The host is a loopback address itself (127.0.0.0/8, ::1), not a name that resolves to one.
  bool loopback_address = false;
  std::string host;          // as written (an IPv6 address without brackets)
  uint16_t port = 443;       // the scheme's default when the URL names none
  std::string connect_host;  // the name connected to and verified: host, or bucket.host
  std::string host_header;   // connect_host, plus ":port" when not the scheme's default
  std::string path_prefix;   // "/bucket" (path style) or "" (virtual-hosted)
};

// Parses and checks the options' endpoint: InvalidArgument for a malformed URL, a bucket name that
// cannot be a DNS label under virtual-hosted addressing, or plain http to a host that is not a
// loopback address without allow_plaintext.
Result<Endpoint> ResolveEndpoint(const S3ClientOptions& options);

// The request-target for an object key (empty: the bucket itself) and an encoded query (may be
// empty): the key's bytes URI-encoded with '/' kept, as S3 signs them.
std::string RequestTarget(const Endpoint& endpoint, std::string_view key, std::string_view canonical_query);

}  // namespace coffre::upstream
