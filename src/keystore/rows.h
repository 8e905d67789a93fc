#pragma once

// Authenticated keystore rows (docs/KEYS.md "Authenticated rows").
//
// Every row whose columns decide who may do what (tenants, key versions, named keys, access keys,
// admin credentials, dual-control approvals) carries `mac`, an HMAC-SHA256 under a key derived from the
// root key over the row's identity and meaningful columns and its generation `gen`, which grows
// by one at every change of the row. Whoever can write keystore.db but lacks the root key cannot
// make a row that verifies, nor move a valid row to another identity; an older valid state of a
// row written back is caught by a process that already saw a newer generation (see KEYS.md for
// what remains).
//
// The MAC input is a length-prefixed list (format.h) starting with a per-table label; integers are
// 8 bytes big-endian and a NULL column is an empty field, so no two rows encode alike. Changing an
// encoding invalidates every stored MAC: it needs a new label and a migration.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "coffre/db/sqlite.h"

namespace coffre::keystore::internal {

// The keys the keystore works with. `wrap` seals tenant keys, access-key secrets, the check value
// and the admin token key; `row_mac` authenticates rows; both come from the root key by HKDF.
// `admin_token` (random, stored sealed under `wrap` in meta) MACs admin token digests: it is not
// derived, so that a root key rotation, which cannot recompute token MACs without the tokens,
// only re-seals it.
struct KeystoreKeys {
  SecretBytes wrap;
  SecretBytes row_mac;
  SecretBytes admin_token;  // empty until loaded (LoadOrCreateAdminTokenKey)
};
KeystoreKeys DeriveKeystoreKeys(const SecretBytes& root);

// The check value: format 2 seals kCheckPlaintext under the wrap key with kCheckAadV2; format 1
// (keystores written before rows were authenticated) sealed it under the raw root key.
inline constexpr std::string_view kCheckAadV2 = "coffre/v2/keystore-check";
inline constexpr std::string_view kAdminTokenKeyName = "admin-token-key";
enum class CheckFormat { kNoMatch, kLegacy, kCurrent };
CheckFormat CheckValueFormat(ByteView sealed, const SecretBytes& root, const SecretBytes& wrap);
Result<Bytes> SealCheckValue(const SecretBytes& wrap);

// The admin token key in meta, opened under `wrap` (Corruption if missing or altered); or, with
// `create`, a new random one stored when there is none (inside the caller's transaction).
Result<SecretBytes> LoadAdminTokenKey(db::Connection& conn, const SecretBytes& wrap, bool create);
Status StoreAdminTokenKey(db::Connection& conn, const SecretBytes& wrap, const SecretBytes& token_key);
// What admin_credentials.token_mac holds: HMAC(admin token key, SHA-256(token)). Legacy rows held
// SHA-256(token), which the migration MACs the same way.
Bytes AdminTokenMac(const SecretBytes& token_key, ByteView token_sha256);

struct TenantRow {
  std::string id;
  std::string name;
  int64_t created = 0;
  std::optional<int64_t> shredded;
  int64_t gen = 0;
  Bytes mac;
};
struct TenantKeyRow {
  std::string tenant_id;
  uint32_t version = 0;
  Bytes wrapped_key;
  std::string state;  // "active" or "retired"
  int64_t created = 0;
  std::optional<int64_t> destroying;
  int64_t gen = 0;
  Bytes mac;
};
struct AccessKeyRow {
  std::string access_key_id;
  std::string tenant_id;
  Bytes secret;  // sealed
  bool enabled = false;
  int64_t created = 0;
  std::optional<int64_t> last_used;  // advisory, written in batches: not authenticated
  int64_t gen = 0;
  Bytes mac;
};
struct AdminCredentialRow {
  std::string name;
  std::string role;
  Bytes token_mac;
  int64_t created = 0;
  std::optional<int64_t> disabled;
  int64_t gen = 0;
  Bytes mac;
};
struct NamedKeyRow {
  std::string key_id;
  std::string tenant_id;
  std::string name;
  int64_t created = 0;
  std::optional<int64_t> destroyed;
  int64_t gen = 0;
  Bytes mac;
};
struct ApprovalRow {
  std::string id;
  std::string operation;
  std::string tenant_id;
  uint32_t version = 0;
  std::string requested_by;
  int64_t requested = 0;
  int64_t expires = 0;
  std::optional<std::string> approved_by;
  std::optional<int64_t> approved;
  std::optional<int64_t> used;
  int64_t gen = 0;
  Bytes mac;
};

// Column lists in the order the Read* functions expect.
inline constexpr std::string_view kTenantColumns = "id, name, created, shredded, gen, mac";
inline constexpr std::string_view kTenantKeyColumns =
    "tenant_id, version, wrapped_key, state, created, destroying, gen, mac";
inline constexpr std::string_view kAccessKeyColumns =
    "access_key_id, tenant_id, secret, enabled, created, last_used, gen, mac";
inline constexpr std::string_view kAdminCredentialColumns = "name, role, token_mac, created, disabled, gen, mac";
inline constexpr std::string_view kNamedKeyColumns = "key_id, tenant_id, name, created, destroyed, gen, mac";
inline constexpr std::string_view kApprovalRowColumns =
    "id, operation, tenant_id, version, requested_by, requested, expires, approved_by, approved, used, gen, mac";

TenantRow ReadTenantRow(const db::Statement& st);
TenantKeyRow ReadTenantKeyRow(const db::Statement& st);
AccessKeyRow ReadAccessKeyRow(const db::Statement& st);
AdminCredentialRow ReadAdminCredentialRow(const db::Statement& st);
ApprovalRow ReadApprovalRow(const db::Statement& st);
NamedKeyRow ReadNamedKeyRow(const db::Statement& st);

Bytes RowMac(const SecretBytes& key, const TenantRow& row);
Bytes RowMac(const SecretBytes& key, const TenantKeyRow& row);
Bytes RowMac(const SecretBytes& key, const AccessKeyRow& row);
Bytes RowMac(const SecretBytes& key, const AdminCredentialRow& row);
Bytes RowMac(const SecretBytes& key, const ApprovalRow& row);
Bytes RowMac(const SecretBytes& key, const NamedKeyRow& row);

template <typename Row>
bool RowIntact(const SecretBytes& key, const Row& row) {
  return row.mac.size() == 32 && ConstantTimeEquals(row.mac, RowMac(key, row));
}

// Writes the row as it is, with a fresh MAC over it (the caller sets `gen`): an INSERT of a new
// row, or an UPDATE of every mutable column of the row with that identity (Changes() tells
// whether it existed).
Status InsertRow(db::Connection& conn, const SecretBytes& key, TenantRow& row);
Status InsertRow(db::Connection& conn, const SecretBytes& key, TenantKeyRow& row);
Status InsertRow(db::Connection& conn, const SecretBytes& key, AccessKeyRow& row);
Status InsertRow(db::Connection& conn, const SecretBytes& key, AdminCredentialRow& row);
Status InsertRow(db::Connection& conn, const SecretBytes& key, ApprovalRow& row);
Status InsertRow(db::Connection& conn, const SecretBytes& key, NamedKeyRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, TenantRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, TenantKeyRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, AccessKeyRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, AdminCredentialRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, ApprovalRow& row);
Status UpdateRow(db::Connection& conn, const SecretBytes& key, NamedKeyRow& row);

// Every authenticated row of the keystore checked under `row_mac` (and every sealed value opened
// under `wrap`): how many fail. Reads only; inside the caller's transaction if any.
struct RowScan {
  size_t rows = 0;
  size_t failed = 0;
  std::string first_failure;  // "access key CO...": names the row, never its contents
};
Result<RowScan> ScanRows(db::Connection& conn, const KeystoreKeys& keys);

// Moves every row of the keystore from `from` to `to`, inside the caller's write transaction:
// sealed values are opened under `from` and sealed again under `to`'s wrap key, rows are given a
// new MAC under `to`'s row key (generation + 1), the admin token key is re-sealed (or, from a
// legacy keystore, created and used to MAC the stored token digests), and the check value is
// replaced. `from` is a legacy keystore's raw root key when `from_legacy`; otherwise its derived
// keys, and then every row must verify first (Corruption otherwise, nothing changed): a rotation
// never turns a forged row into a valid one. `after_row` as RootKeyRotationOptions::after_row.
struct ResealReport {
  size_t tenant_keys = 0;
  size_t access_keys = 0;
  size_t rows = 0;
};
struct ResealSource {
  bool legacy = false;
  const SecretBytes* legacy_root = nullptr;  // when legacy
  const KeystoreKeys* keys = nullptr;        // when not legacy (admin_token loaded)
};
Result<ResealReport> ResealAll(db::Connection& conn, const ResealSource& from, const KeystoreKeys& to,
                               const std::function<Status(size_t)>& after_row);

// A row id that is safe to put in a log line (printable ASCII, bounded), whatever a forger wrote.
std::string LoggableId(std::string_view id);

}  // namespace coffre::keystore::internal
