#pragma once

// What the keystore binds its sealed values to, and the shape of its identifiers. The associated
// data is a storage format: changing an encoding makes every existing key unreadable, so a new
// encoding needs a new label (coffre/v2/...) and a migration.
//
// Every associated data is a length-prefixed list of fields (a 4-byte big-endian length, then
// the bytes), so no two different lists encode alike:
//   tenant key   : "coffre/v1/tenant-key", tenant id (hex text), version (4 bytes BE)
//   data key     : "coffre/v1/data-key", tenant id (hex text), version (4 bytes BE), caller's aad
//   data key under a named key: "coffre/v3/named-key-data-key", tenant id, key id (hex text),
//                  version (4 bytes BE), caller's aad
// (a named key's versions are sealed as tenant keys are, with the key id in place of the tenant id)
//   access secret: "coffre/v1/access-key-secret", access key id, tenant id (hex text)
// The keys: tenant keys and access-key secrets are sealed under the root key's wrapping subkey
// (rows.h, KeystoreKeys); keystores written before rows were authenticated sealed them under the
// raw root key, with the same associated data. The root-key check value seals "coffre keystore
// check" under the wrapping subkey with aad "coffre/v2/keystore-check" (formerly: under the raw
// root key, with "coffre/v1/keystore-check").

#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"
#include "coffre/keystore/tenant_key_store.h"

namespace coffre::db {
class Connection;
}  // namespace coffre::db

namespace coffre::keystore::internal {

// Creates or migrates the keystore's tables (sqlite_keystore_schema.cc).
Status MigrateKeystoreSchema(db::Connection& conn);
// The schema version from which a keystore has named keys (the named_keys table).
inline constexpr int64_t kNamedKeysSchemaVersion = 8;
// Only the first `version` migrations: for tests that build a keystore as an older release wrote it.
Status MigrateKeystoreSchemaTo(db::Connection& conn, size_t version);

inline constexpr std::string_view kCheckPlaintext = "coffre keystore check";
inline constexpr std::string_view kCheckAad = "coffre/v1/keystore-check";
// Names of the meta rows: the check value sealed under the root key, and the Argon2id salt and
// parameters of a keystore whose root key comes from a passphrase.
inline constexpr std::string_view kRootKeyCheckName = "root-key-check";
inline constexpr std::string_view kPassphraseKdfName = "passphrase-kdf";

Bytes LengthPrefixed(std::initializer_list<ByteView> fields);
Bytes TenantKeyAad(std::string_view tenant_id, uint32_t version);
Bytes DataKeyAad(const KeyRef& key, uint32_t version, ByteView caller_aad);
Bytes AccessKeySecretAad(std::string_view access_key_id, std::string_view tenant_id);

// [a-z0-9][a-z0-9._-]{0,62}
bool IsValidTenantName(std::string_view name);
// 32 lower-case hex characters.
bool IsValidTenantId(std::string_view id);
// "CO" followed by 18 of [A-Z0-9].
bool IsValidAccessKeyId(std::string_view id);

inline constexpr size_t kAccessKeyIdLength = 20;
inline constexpr size_t kSecretLength = 40;
inline constexpr std::string_view kAccessKeyIdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
inline constexpr std::string_view kSecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Fills `out` with characters drawn uniformly from `alphabet` (at most 256 characters) using the
// CSPRNG. Random bytes at or above the largest multiple of the alphabet's size are redrawn, so
// no character is more likely than another (no modulo bias).
void RandomChars(std::string_view alphabet, std::span<uint8_t> out);

}  // namespace coffre::keystore::internal
