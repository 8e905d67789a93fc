#include "coffre/crypto/root_subkeys.h"

#include <gtest/gtest.h>

#include <string>

namespace coffre::crypto {
namespace {

std::string Hex(const SecretBytes& k) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : k.Reveal()) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// Fixed vectors, taken from the derivation as the keystore shipped it: stored keystore rows and
// audit seals are under these keys, so a change here would leave them unopenable.
TEST(RootSubkeys, FixedVectorsNeverChange) {
  Bytes root(32);
  for (size_t i = 0; i < root.size(); ++i) {
    root[i] = static_cast<uint8_t>(i);
  }
  const SecretBytes root_key{root};
  EXPECT_EQ(Hex(DeriveRootSubkey(root_key, RootKeyPurpose::kKeystoreWrap)),
            "e960edaf382eb9ea3091c9d932606bfde8c4eb0ae15c93253ce74928f5dfb4dc");
  EXPECT_EQ(Hex(DeriveRootSubkey(root_key, RootKeyPurpose::kKeystoreRowMac)),
            "543d2c2e8a011216397eece73971de1381272c1d89e2a68c2bd6a966e72bb95b");
  EXPECT_EQ(Hex(DeriveRootSubkey(root_key, RootKeyPurpose::kAuditSigningKeySeal)),
            "de40f547ac8792bf9b48364181386777a6ee83a7abe63618884bde3119e218dc");
  EXPECT_EQ(Hex(DeriveRootSubkey(root_key, RootKeyPurpose::kAuditRootKeyFingerprint)),
            "f71b334f879e9cd5a76a29b3ab9c860c730c830979d3609bc41b33af7c350493");
}

}  // namespace
}  // namespace coffre::crypto
