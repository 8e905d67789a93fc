#pragma once

// Keys derived from the root key (docs/KEYS.md "Derived keys"). The root key is never used
// directly as a cipher or MAC key: each purpose gets its own subkey, HKDF-SHA256(root, salt
// "coffre/v2/root-key-subkeys", info naming the purpose), so that a key used for AES-GCM is never
// also an HMAC key and one purpose's outputs say nothing about another's. It lives here, below
// both the keystore and the audit log, because both derive from the same root key.

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"

namespace coffre::crypto {

// The info strings behind these are fixed forever: stored keystore rows and audit seals depend on them.
enum class RootKeyPurpose { kKeystoreWrap, kKeystoreRowMac, kAuditSigningKeySeal, kAuditRootKeyFingerprint };

SecretBytes DeriveRootSubkey(const SecretBytes& root_key, RootKeyPurpose purpose);

}  // namespace coffre::crypto
