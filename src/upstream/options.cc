#include "coffre/upstream/options.h"

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/ascii.h"
#include "coffre/common/bytes.h"
#include "coffre/sigv4/sigv4.h"

namespace coffre::upstream {
namespace {

bool IsLoopbackAddress(const std::string& host) {
  boost::system::error_code ec;
  const boost::asio::ip::address address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

bool IsLoopback(const std::string& host) {
  if (EqualsIgnoreCase(host, "localhost")) {
    return true;
  }
  return IsLoopbackAddress(host);
}

// A bucket name usable as a DNS label under virtual-hosted addressing: lower-case letters,
// digits and '-' (dots would break the certificate's wildcard match).
bool IsDnsLabel(std::string_view name) {
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') {
    return false;
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

Status ParseAuthority(std::string_view authority, Endpoint& out) {
  std::string_view port_text;
  bool has_port = false;             // a ':' after the host, which must then be followed by a port
  if (authority.starts_with('[')) {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("upstream endpoint: unterminated IPv6 address");
    }
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) {
      return Status::InvalidArgument("upstream endpoint: unexpected text after the IPv6 address");
    }
    has_port = !rest.empty();
    port_text = rest.empty() ? rest : rest.substr(1);
  } else {
    const size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    has_port = colon != std::string_view::npos;
    port_text = has_port ? authority.substr(colon + 1) : std::string_view();
  }
  if (out.host.empty()) {
    return Status::InvalidArgument("upstream endpoint: no host");
  }
  if (has_port) {
    const std::optional<uint64_t> port = ParseDecimal(port_text);
    if (!port || *port == 0 || *port > 65535) {
      return Status::InvalidArgument("upstream endpoint: invalid port \"" + std::string(port_text) + "\"");
    }
    out.port = static_cast<uint16_t>(*port);
  }
  return Status::Ok();
}

Status ParseUrl(std::string_view url, Endpoint& out) {
  if (url.starts_with("https://")) {
    out.tls = true;
    out.port = 443;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    out.tls = false;
    out.port = 80;
    url.remove_prefix(7);
  } else {
    return Status::InvalidArgument("upstream endpoint must start with https:// or http://");
  }
  if (url.ends_with('/')) {
    url.remove_suffix(1);
  }
  if (url.find_first_of("/?#@") != std::string_view::npos) {
    return Status::InvalidArgument("upstream endpoint: give only scheme, host and port (no path, query or user)");
  }
  return ParseAuthority(url, out);
}

std::string HostHeader(const Endpoint& endpoint) {
  const bool ipv6 = endpoint.connect_host.find(':') != std::string::npos;
  std::string out = ipv6 ? "[" + endpoint.connect_host + "]" : endpoint.connect_host;
  if (endpoint.port != (endpoint.tls ? 443 : 80)) {
    out += ":" + std::to_string(endpoint.port);
  }
  return out;
}

}  // namespace

Result<Endpoint> ResolveEndpoint(const S3ClientOptions& options) {
  Endpoint endpoint;
  COFFRE_RETURN_IF_ERROR(ParseUrl(options.endpoint, endpoint));
  endpoint.loopback = IsLoopback(endpoint.host);
  endpoint.loopback_address = IsLoopbackAddress(endpoint.host);
  if (!endpoint.tls && !endpoint.loopback && !options.allow_plaintext) {
    return Status::InvalidArgument("upstream endpoint " + options.endpoint +
                                   " is plain http to a host that is not a loopback address: object data and "
                                   "signed requests would cross the network readable; use https, or set "
                                   "allow_plaintext if the network is trusted");
  }
  if (options.bucket.empty()) {
    return Status::InvalidArgument("upstream bucket: empty");
  }
  if (options.addressing == AddressingStyle::kVirtualHosted) {
    if (!IsDnsLabel(options.bucket)) {
      return Status::InvalidArgument("upstream bucket \"" + options.bucket +
                                     "\" cannot be a host name label; use path-style addressing");
    }
    endpoint.connect_host = options.bucket + "." + endpoint.host;
  } else {
    endpoint.connect_host = endpoint.host;
    endpoint.path_prefix = "/" + sigv4::UriEncode(options.bucket, true);
  }
  endpoint.host_header = HostHeader(endpoint);
  return endpoint;
}

std::string RequestTarget(const Endpoint& endpoint, std::string_view key, std::string_view canonical_query) {
  std::string target = endpoint.path_prefix;
  if (!key.empty() || target.empty()) {
    target += "/" + sigv4::UriEncode(key, false);
  }
  if (!canonical_query.empty()) {
    target += "?" + std::string(canonical_query);
  }
  return target;
}

}  // namespace coffre::upstream
