#include "coffre/sigv4/sigv4.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "coffre/common/ascii.h"
#include "coffre/common/bytes.h"
#include "coffre/crypto/hash.h"

namespace coffre::sigv4 {
namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

// Overwrites a stack buffer that held key material; volatile so the stores are not elided.
void WipeStack(std::span<uint8_t> buf) {
  volatile uint8_t* p = buf.data();
  for (size_t i = 0; i < buf.size(); ++i) {
    p[i] = 0;
  }
}

SecretBytes HmacToSecret(ByteView key, std::string_view data) {
  crypto::Sha256Digest mac = crypto::HmacSha256(key, AsBytes(data));
  SecretBytes out{ByteView(mac)};
  WipeStack(mac);
  return out;
}

std::string Sha256Hex(std::string_view data) { return HexEncode(crypto::Sha256::Digest(AsBytes(data))); }

// "trimall": leading and trailing whitespace removed, inner runs of spaces and tabs collapsed to one space.
void AppendTrimAll(std::string_view value, std::string& out) {
  value = TrimWhitespace(value);
  bool in_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space) {
      out.push_back(' ');
      in_space = false;
    }
    out.push_back(c);
  }
}

// "name:value1,value2\n" for every field named `name`, in the order received.
void AppendCanonicalHeader(const HeaderFields& headers, const std::string& name, std::string& out) {
  out += ToLower(name);
  out.push_back(':');
  bool first = true;
  for (const auto& [field, value] : headers) {
    if (!EqualsIgnoreCase(field, name)) {
      continue;
    }
    if (!first) {
      out.push_back(',');
    }
    first = false;
    AppendTrimAll(value, out);
  }
  out.push_back('\n');
}

std::string SignedHeaderList(const std::vector<std::string>& signed_headers) {
  std::string out;
  for (size_t i = 0; i < signed_headers.size(); ++i) {
    if (i > 0) {
      out.push_back(';');
    }
    out += ToLower(signed_headers[i]);
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view in, bool encode_slash) {
  std::string out;
  out.reserve(in.size() * 3);
  for (char c : in) {
    if (IsUnreserved(c) || (c == '/' && !encode_slash)) {
      out.push_back(c);
      continue;
    }
    const auto byte = static_cast<unsigned char>(c);
    out.push_back('%');
    out.push_back(kUpperHex[byte >> 4]);
    out.push_back(kUpperHex[byte & 0x0f]);
  }
  return out;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const auto& [name, value] : params) {
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) {
      out.push_back('&');
    }
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string CanonicalRequest(const CanonicalRequestParts& parts) {
  std::string out;
  out.reserve(512);
  out += parts.method;
  out.push_back('\n');
  out += parts.canonical_uri;
  out.push_back('\n');
  out += parts.canonical_query;
  out.push_back('\n');
  for (const std::string& name : parts.signed_headers) {
    AppendCanonicalHeader(parts.headers, name, out);
  }
  out.push_back('\n');
  out += SignedHeaderList(parts.signed_headers);
  out.push_back('\n');
  out += parts.payload_hash;
  return out;
}

std::string Scope(std::string_view date, std::string_view region, std::string_view service) {
  return std::string(date) + "/" + std::string(region) + "/" + std::string(service) + "/" + std::string(kTerminal);
}

std::string StringToSign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request) {
  std::string out;
  out.reserve(kAlgorithm.size() + amz_date.size() + scope.size() + 64 + 3);
  out += kAlgorithm;
  out.push_back('\n');
  out += amz_date;
  out.push_back('\n');
  out += scope;
  out.push_back('\n');
  out += Sha256Hex(canonical_request);
  return out;
}

SecretBytes DeriveSigningKey(const SecretBytes& secret_access_key, std::string_view date, std::string_view region,
                             std::string_view service) {
  constexpr std::string_view kPrefix = "AWS4";
  SecretBytes k_secret(kPrefix.size() + secret_access_key.size());
  std::span<uint8_t> dst = k_secret.RevealMutable();
  std::copy(kPrefix.begin(), kPrefix.end(), dst.begin());
  const std::span<const uint8_t> secret = secret_access_key.Reveal();
  std::copy(secret.begin(), secret.end(), dst.begin() + static_cast<std::ptrdiff_t>(kPrefix.size()));
  const SecretBytes k_date = HmacToSecret(k_secret.Reveal(), date);
  const SecretBytes k_region = HmacToSecret(k_date.Reveal(), region);
  const SecretBytes k_service = HmacToSecret(k_region.Reveal(), service);
  return HmacToSecret(k_service.Reveal(), kTerminal);
}

std::string SignHex(const SecretBytes& signing_key, std::string_view string_to_sign) {
  return HexEncode(crypto::HmacSha256(signing_key.Reveal(), AsBytes(string_to_sign)));
}

std::string Authorization(const SigningCredentials& credentials, std::string_view amz_date,
                          const CanonicalRequestParts& parts) {
  const std::string_view date = amz_date.substr(0, 8);
  const std::string scope = Scope(date, credentials.region, credentials.service);
  // Deriving the key per request costs four HMACs (a few microseconds): negligible beside a
  // request, and it keeps no derived key alive between requests.
  const SecretBytes key =
      DeriveSigningKey(credentials.secret_access_key, date, credentials.region, credentials.service);
  const std::string signature = SignHex(key, StringToSign(amz_date, scope, CanonicalRequest(parts)));
  std::string out;
  out.reserve(256);
  out += kAlgorithm;
  out += " Credential=";
  out += credentials.access_key_id;
  out.push_back('/');
  out += scope;
  out += ", SignedHeaders=";
  out += SignedHeaderList(parts.signed_headers);
  out += ", Signature=";
  out += signature;
  return out;
}

}  // namespace coffre::sigv4
