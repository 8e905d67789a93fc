#include "keystore/format.h"

#include "coffre/common/secret.h"

namespace coffre::keystore::internal {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

Bytes Version(uint32_t version) {
  Bytes v(4);
  PutBigEndian32(v.data(), version);
  return v;
}

}  // namespace

Bytes LengthPrefixed(std::initializer_list<ByteView> fields) {
  Bytes out;
  for (ByteView f : fields) {
    const size_t at = out.size();
    out.resize(at + 4);
    PutBigEndian32(out.data() + at, static_cast<uint32_t>(f.size()));
    out.insert(out.end(), f.begin(), f.end());
  }
  return out;
}

Bytes TenantKeyAad(std::string_view tenant_id, uint32_t version) {
  return LengthPrefixed({AsBytes("coffre/v1/tenant-key"), AsBytes(tenant_id), Version(version)});
}

Bytes DataKeyAad(const KeyRef& key, uint32_t version, ByteView caller_aad) {
  if (key.named()) {
    return LengthPrefixed({AsBytes("coffre/v3/named-key-data-key"), AsBytes(key.tenant_id), AsBytes(key.key_id),
                           Version(version), caller_aad});
  }
  return LengthPrefixed({AsBytes("coffre/v1/data-key"), AsBytes(key.tenant_id), Version(version), caller_aad});
}

Bytes AccessKeySecretAad(std::string_view access_key_id, std::string_view tenant_id) {
  return LengthPrefixed({AsBytes("coffre/v1/access-key-secret"), AsBytes(access_key_id), AsBytes(tenant_id)});
}

bool IsValidTenantName(std::string_view name) {
  if (name.empty() || name.size() > 63 || !IsLowerAlnum(name[0])) {
    return false;
  }
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsValidTenantId(std::string_view id) {
  if (id.size() != 32) {
    return false;
  }
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool IsValidAccessKeyId(std::string_view id) {
  if (id.size() != kAccessKeyIdLength || !id.starts_with("CO")) {
    return false;
  }
  for (char c : id.substr(2)) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

void RandomChars(std::string_view alphabet, std::span<uint8_t> out) {
  const size_t n = alphabet.size();
  const size_t limit = 256 - 256 % n;  // bytes in [0, limit) map evenly onto the alphabet
  // The pool may become a secret's characters: keep it in wiping memory.
  SecretBytes pool(64);
  size_t used = pool.size();
  for (uint8_t& slot : out) {
    while (true) {
      if (used == pool.size()) {
        RandomFill(pool.RevealMutable());
        used = 0;
      }
      const uint8_t b = pool.Reveal()[used++];
      if (b < limit) {
        slot = static_cast<uint8_t>(alphabet[b % n]);
        break;
      }
    }
  }
}

}  // namespace coffre::keystore::internal

namespace coffre::keystore {

namespace {

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

std::optional<std::string> ParseKeyId(std::string_view text) {
  std::string hex;
  if (text.size() == 36) {
    for (size_t i = 0; i < text.size(); ++i) {
      const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash != (text[i] == '-')) {
        return std::nullopt;
      }
      if (!dash) {
        hex += text[i];
      }
    }
  } else if (text.size() == 32) {
    hex = std::string(text);
  } else {
    return std::nullopt;
  }
  for (char& c : hex) {
    if (!IsHex(c)) {
      return std::nullopt;
    }
    if (c >= 'A' && c <= 'F') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return hex;
}

std::string KeyIdAsUuid(std::string_view key_id) {
  std::string out;
  for (size_t i = 0; i < key_id.size(); ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      out += '-';
    }
    out += key_id[i];
  }
  return out;
}

bool IsValidNamedKeyName(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.starts_with("aws/") || name.starts_with("alias/") ||
      ParseKeyId(name).has_value()) {
    return false;
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

}  // namespace coffre::keystore
