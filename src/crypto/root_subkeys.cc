#include "coffre/crypto/root_subkeys.h"

#include <string_view>

#include "coffre/crypto/aead.h"

namespace coffre::crypto {

namespace {

constexpr std::string_view kHkdfSalt = "coffre/v2/root-key-subkeys";

std::string_view PurposeLabel(RootKeyPurpose purpose) {
  switch (purpose) {
    case RootKeyPurpose::kKeystoreWrap:
      return "coffre/v2/keystore-wrap";
    case RootKeyPurpose::kKeystoreRowMac:
      return "coffre/v2/keystore-row-mac";
    case RootKeyPurpose::kAuditSigningKeySeal:
      return "coffre/v2/audit-signing-key-seal";
    case RootKeyPurpose::kAuditRootKeyFingerprint:
      return "coffre/v2/audit-root-key-fingerprint";
  }
  return "coffre/v2/unknown";
}

}  // namespace

SecretBytes DeriveRootSubkey(const SecretBytes& root_key, RootKeyPurpose purpose) {
  return HkdfSha256(root_key, AsBytes(kHkdfSalt), AsBytes(PurposeLabel(purpose)), kKeySize);
}

}  // namespace coffre::crypto
