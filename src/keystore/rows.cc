#include "keystore/rows.h"

#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"

namespace coffre::keystore {

namespace internal {
namespace {

using db::Connection;
using db::Statement;

Bytes Int64Field(int64_t v) {
  Bytes out(8);
  PutBigEndian64(out.data(), static_cast<uint64_t>(v));
  return out;
}

Bytes OptInt64Field(const std::optional<int64_t>& v) { return v ? Int64Field(*v) : Bytes(); }

std::optional<int64_t> OptInt64(const Statement& st, int col) {
  if (st.ColumnIsNull(col)) {
    return std::nullopt;
  }
  return st.ColumnInt64(col);
}

Status BindOptInt64(Statement& st, int index, const std::optional<int64_t>& v) {
  return v ? st.BindInt64(index, *v) : st.BindNull(index);
}

Status BindOptText(Statement& st, int index, const std::optional<std::string>& v) {
  return v ? st.BindText(index, *v) : st.BindNull(index);
}

Bytes Mac(const SecretBytes& key, std::initializer_list<ByteView> fields) {
  const Bytes input = LengthPrefixed(fields);
  const crypto::Sha256Digest mac = crypto::HmacSha256(key.Reveal(), input);
  return Bytes(mac.begin(), mac.end());
}

// The 1-bit flag fields carry a one-byte value, never an empty one: an empty field means NULL.
Bytes Flag(bool b) { return Bytes{static_cast<uint8_t>(b ? 1 : 0)}; }

}  // namespace

KeystoreKeys DeriveKeystoreKeys(const SecretBytes& root) {
  KeystoreKeys keys;
  keys.wrap = DeriveRootSubkey(root, RootKeyPurpose::kKeystoreWrap);
  keys.row_mac = DeriveRootSubkey(root, RootKeyPurpose::kKeystoreRowMac);
  return keys;
}

CheckFormat CheckValueFormat(ByteView sealed, const SecretBytes& root, const SecretBytes& wrap) {
  auto current = crypto::Open(wrap, sealed, AsBytes(kCheckAadV2));
  if (current.ok() && AsChars(*current) == kCheckPlaintext) {
    return CheckFormat::kCurrent;
  }
  auto legacy = crypto::Open(root, sealed, AsBytes(kCheckAad));
  if (legacy.ok() && AsChars(*legacy) == kCheckPlaintext) {
    return CheckFormat::kLegacy;
  }
  return CheckFormat::kNoMatch;
}

Result<Bytes> SealCheckValue(const SecretBytes& wrap) {
  return crypto::Seal(wrap, AsBytes(kCheckPlaintext), AsBytes(kCheckAadV2));
}

namespace {
Bytes AdminTokenKeyAad() { return LengthPrefixed({AsBytes("coffre/v2/admin-token-key")}); }
}  // namespace

Result<SecretBytes> LoadAdminTokenKey(Connection& conn, const SecretBytes& wrap, bool create) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM meta WHERE name = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(kAdminTokenKeyName));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      auto key = crypto::OpenSecret(wrap, st.ColumnBlobView(0), AdminTokenKeyAad());
      if (!key.ok() || key->size() != crypto::kKeySize) {
        return Status::Corruption("the keystore's admin token key does not open under the root key (altered)");
      }
      return std::move(key).value();
    }
  }
  if (!create) {
    return Status::Corruption("the keystore has no admin token key (removed?)");
  }
  SecretBytes key = SecretBytes::Random(crypto::kKeySize);
  COFFRE_RETURN_IF_ERROR(StoreAdminTokenKey(conn, wrap, key));
  return key;
}

Status StoreAdminTokenKey(Connection& conn, const SecretBytes& wrap, const SecretBytes& token_key) {
  COFFRE_ASSIGN_OR_RETURN(Bytes sealed, crypto::Seal(wrap, token_key.Reveal(), AdminTokenKeyAad()));
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?) "
                                                     "ON CONFLICT(name) DO UPDATE SET value = excluded.value"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(kAdminTokenKeyName, sealed));
  return st.Run();
}

Bytes AdminTokenMac(const SecretBytes& token_key, ByteView token_sha256) {
  return Mac(token_key, {AsBytes("coffre/v2/admin-token"), token_sha256});
}

// --- reading -------------------------------------------------------------------------------

TenantRow ReadTenantRow(const Statement& st) {
  TenantRow r;
  r.id = st.ColumnText(0);
  r.name = st.ColumnText(1);
  r.created = st.ColumnInt64(2);
  r.shredded = OptInt64(st, 3);
  r.gen = st.ColumnInt64(4);
  r.mac = st.ColumnBlob(5);
  return r;
}

TenantKeyRow ReadTenantKeyRow(const Statement& st) {
  TenantKeyRow r;
  r.tenant_id = st.ColumnText(0);
  r.version = static_cast<uint32_t>(st.ColumnInt64(1));
  r.wrapped_key = st.ColumnBlob(2);
  r.state = st.ColumnText(3);
  r.created = st.ColumnInt64(4);
  r.destroying = OptInt64(st, 5);
  r.gen = st.ColumnInt64(6);
  r.mac = st.ColumnBlob(7);
  return r;
}

AccessKeyRow ReadAccessKeyRow(const Statement& st) {
  AccessKeyRow r;
  r.access_key_id = st.ColumnText(0);
  r.tenant_id = st.ColumnText(1);
  r.secret = st.ColumnBlob(2);
  r.enabled = st.ColumnInt64(3) != 0;
  r.created = st.ColumnInt64(4);
  r.last_used = OptInt64(st, 5);
  r.gen = st.ColumnInt64(6);
  r.mac = st.ColumnBlob(7);
  return r;
}

AdminCredentialRow ReadAdminCredentialRow(const Statement& st) {
  AdminCredentialRow r;
  r.name = st.ColumnText(0);
  r.role = st.ColumnText(1);
  r.token_mac = st.ColumnBlob(2);
  r.created = st.ColumnInt64(3);
  r.disabled = OptInt64(st, 4);
  r.gen = st.ColumnInt64(5);
  r.mac = st.ColumnBlob(6);
  return r;
}

ApprovalRow ReadApprovalRow(const Statement& st) {
  ApprovalRow r;
  r.id = st.ColumnText(0);
  r.operation = st.ColumnText(1);
  r.tenant_id = st.ColumnText(2);
  r.version = static_cast<uint32_t>(st.ColumnInt64(3));
  r.requested_by = st.ColumnText(4);
  r.requested = st.ColumnInt64(5);
  r.expires = st.ColumnInt64(6);
  if (!st.ColumnIsNull(7)) {
    r.approved_by = st.ColumnText(7);
  }
  r.approved = OptInt64(st, 8);
  r.used = OptInt64(st, 9);
  r.gen = st.ColumnInt64(10);
  r.mac = st.ColumnBlob(11);
  return r;
}

NamedKeyRow ReadNamedKeyRow(const Statement& st) {
  NamedKeyRow r;
  r.key_id = st.ColumnText(0);
  r.tenant_id = st.ColumnText(1);
  r.name = st.ColumnText(2);
  r.created = st.ColumnInt64(3);
  r.destroyed = OptInt64(st, 4);
  r.gen = st.ColumnInt64(5);
  r.mac = st.ColumnBlob(6);
  return r;
}

// --- MACs ----------------------------------------------------------------------------------

Bytes RowMac(const SecretBytes& key, const TenantRow& r) {
  return Mac(key, {AsBytes("coffre/v2/row/tenant"), AsBytes(r.id), AsBytes(r.name), Int64Field(r.created),
                   OptInt64Field(r.shredded), Int64Field(r.gen)});
}

Bytes RowMac(const SecretBytes& key, const TenantKeyRow& r) {
  return Mac(key, {AsBytes("coffre/v2/row/tenant-key"), AsBytes(r.tenant_id), Int64Field(r.version), r.wrapped_key,
                   AsBytes(r.state), Int64Field(r.created), OptInt64Field(r.destroying), Int64Field(r.gen)});
}

Bytes RowMac(const SecretBytes& key, const AccessKeyRow& r) {
  return Mac(key, {AsBytes("coffre/v2/row/access-key"), AsBytes(r.access_key_id), AsBytes(r.tenant_id), r.secret,
                   Flag(r.enabled), Int64Field(r.created), Int64Field(r.gen)});
}

Bytes RowMac(const SecretBytes& key, const AdminCredentialRow& r) {
  return Mac(key, {AsBytes("coffre/v2/row/admin-credential"), AsBytes(r.name), AsBytes(r.role), r.token_mac,
                   Int64Field(r.created), OptInt64Field(r.disabled), Int64Field(r.gen)});
}

Bytes RowMac(const SecretBytes& key, const ApprovalRow& r) {
  const Bytes approved_by =
      r.approved_by ? Bytes(AsBytes(*r.approved_by).begin(), AsBytes(*r.approved_by).end()) : Bytes();
  // approved_by is a name (never empty when set), so an empty field is unambiguous as NULL.
  return Mac(key, {AsBytes("coffre/v2/row/approval"), AsBytes(r.id), AsBytes(r.operation), AsBytes(r.tenant_id),
                   Int64Field(r.version), AsBytes(r.requested_by), Int64Field(r.requested), Int64Field(r.expires),
                   approved_by, OptInt64Field(r.approved), OptInt64Field(r.used), Int64Field(r.gen)});
}

Bytes RowMac(const SecretBytes& key, const NamedKeyRow& r) {
  return Mac(key, {AsBytes("coffre/v2/row/named-key"), AsBytes(r.key_id), AsBytes(r.tenant_id), AsBytes(r.name),
                   Int64Field(r.created), OptInt64Field(r.destroyed), Int64Field(r.gen)});
}

// --- writing -------------------------------------------------------------------------------

Status InsertRow(Connection& conn, const SecretBytes& key, TenantRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("INSERT INTO tenants(id, name, created, shredded, gen, "
                                                           "mac) VALUES(?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.id, r.name, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 4, r.shredded));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(5, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(6, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, TenantRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("UPDATE tenants SET name = ?, created = ?, shredded = ?, "
                                                           "gen = ?, mac = ? WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.name, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 3, r.shredded));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(4, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(5, r.mac));
  COFFRE_RETURN_IF_ERROR(st.BindText(6, r.id));
  return st.Run();
}

Status InsertRow(Connection& conn, const SecretBytes& key, TenantKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("INSERT INTO tenant_keys(tenant_id, version, wrapped_key, state, created, "
                                             "destroying, gen, mac) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.tenant_id, r.version, r.wrapped_key, r.state, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 6, r.destroying));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(7, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(8, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, TenantKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("UPDATE tenant_keys SET wrapped_key = ?, state = ?, created = ?, "
                                             "destroying = ?, gen = ?, mac = ? WHERE tenant_id = ? AND version = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.wrapped_key, r.state, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 4, r.destroying));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(5, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(6, r.mac));
  COFFRE_RETURN_IF_ERROR(st.BindText(7, r.tenant_id));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(8, r.version));
  return st.Run();
}

Status InsertRow(Connection& conn, const SecretBytes& key, AccessKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("INSERT INTO access_keys(access_key_id, tenant_id, secret, enabled, "
                                             "created, gen, mac) VALUES(?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.access_key_id, r.tenant_id, r.secret, r.enabled, r.created, r.gen, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, AccessKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("UPDATE access_keys SET tenant_id = ?, secret = ?, enabled = ?, "
                                             "created = ?, gen = ?, mac = ? WHERE access_key_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.tenant_id, r.secret, r.enabled, r.created, r.gen, r.mac, r.access_key_id));
  return st.Run();
}

Status InsertRow(Connection& conn, const SecretBytes& key, AdminCredentialRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("INSERT INTO admin_credentials(name, role, token_mac, created, disabled, "
                                             "gen, mac) VALUES(?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.name, r.role, r.token_mac, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 5, r.disabled));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(6, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(7, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, AdminCredentialRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("UPDATE admin_credentials SET role = ?, token_mac = ?, created = ?, "
                                             "disabled = ?, gen = ?, mac = ? WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.role, r.token_mac, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 4, r.disabled));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(5, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(6, r.mac));
  COFFRE_RETURN_IF_ERROR(st.BindText(7, r.name));
  return st.Run();
}

Status InsertRow(Connection& conn, const SecretBytes& key, ApprovalRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("INSERT INTO approvals(id, operation, tenant_id, version, "
                                             "requested_by, requested, expires, approved_by, approved, "
                                             "used, gen, mac) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.id, r.operation, r.tenant_id, r.version, r.requested_by, r.requested, r.expires));
  COFFRE_RETURN_IF_ERROR(BindOptText(st, 8, r.approved_by));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 9, r.approved));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 10, r.used));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(11, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(12, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, ApprovalRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("UPDATE approvals SET operation = ?, tenant_id = ?, version = ?, "
                                             "requested_by = ?, requested = ?, expires = ?, approved_by = ?, "
                                             "approved = ?, used = ?, gen = ?, mac = ? WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.operation, r.tenant_id, r.version, r.requested_by, r.requested, r.expires));
  COFFRE_RETURN_IF_ERROR(BindOptText(st, 7, r.approved_by));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 8, r.approved));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 9, r.used));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(10, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(11, r.mac));
  COFFRE_RETURN_IF_ERROR(st.BindText(12, r.id));
  return st.Run();
}

// --- scans and re-sealing ------------------------------------------------------------------

Status InsertRow(Connection& conn, const SecretBytes& key, NamedKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("INSERT INTO named_keys(key_id, tenant_id, name, created, "
                                                           "destroyed, gen, mac) VALUES(?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.key_id, r.tenant_id, r.name, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 5, r.destroyed));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(6, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(7, r.mac));
  return st.Run();
}

Status UpdateRow(Connection& conn, const SecretBytes& key, NamedKeyRow& r) {
  r.mac = RowMac(key, r);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("UPDATE named_keys SET tenant_id = ?, name = ?, created = "
                                                           "?, destroyed = ?, gen = ?, mac = ? WHERE key_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(r.tenant_id, r.name, r.created));
  COFFRE_RETURN_IF_ERROR(BindOptInt64(st, 4, r.destroyed));
  COFFRE_RETURN_IF_ERROR(st.BindInt64(5, r.gen));
  COFFRE_RETURN_IF_ERROR(st.BindBlob(6, r.mac));
  COFFRE_RETURN_IF_ERROR(st.BindText(7, r.key_id));
  return st.Run();
}

namespace {

template <typename Row>
Result<std::vector<Row>> ReadAll(Connection& conn, std::string_view table, std::string_view columns,
                                 Row (*read)(const Statement&)) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT " + std::string(columns) + " FROM " + std::string(table)));
  std::vector<Row> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(read(st));
  }
  return out;
}

struct AllRows {
  std::vector<TenantRow> tenants;
  std::vector<TenantKeyRow> tenant_keys;
  std::vector<AccessKeyRow> access_keys;
  std::vector<AdminCredentialRow> admins;
  std::vector<ApprovalRow> approvals;
  std::vector<NamedKeyRow> named_keys;
};

Result<AllRows> ReadAllRows(Connection& conn) {
  AllRows all;
  COFFRE_ASSIGN_OR_RETURN(all.tenants, ReadAll(conn, "tenants", kTenantColumns, &ReadTenantRow));
  COFFRE_ASSIGN_OR_RETURN(all.tenant_keys, ReadAll(conn, "tenant_keys", kTenantKeyColumns, &ReadTenantKeyRow));
  COFFRE_ASSIGN_OR_RETURN(all.access_keys, ReadAll(conn, "access_keys", kAccessKeyColumns, &ReadAccessKeyRow));
  COFFRE_ASSIGN_OR_RETURN(all.admins,
                          ReadAll(conn, "admin_credentials", kAdminCredentialColumns, &ReadAdminCredentialRow));
  COFFRE_ASSIGN_OR_RETURN(all.approvals, ReadAll(conn, "approvals", kApprovalRowColumns, &ReadApprovalRow));
  // A keystore older than named keys (converted by a rotation or a restore) has no such table.
  COFFRE_ASSIGN_OR_RETURN(Statement exists,
                          conn.Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'named_keys'"));
  COFFRE_ASSIGN_OR_RETURN(bool named, exists.Step());
  if (named) {
    COFFRE_ASSIGN_OR_RETURN(all.named_keys, ReadAll(conn, "named_keys", kNamedKeyColumns, &ReadNamedKeyRow));
  }
  return all;
}

}  // namespace

Result<RowScan> ScanRows(Connection& conn, const KeystoreKeys& keys) {
  COFFRE_ASSIGN_OR_RETURN(AllRows all, ReadAllRows(conn));
  RowScan scan;
  auto count = [&](bool ok, std::string what) {
    ++scan.rows;
    if (!ok) {
      if (scan.failed++ == 0) {
        scan.first_failure = std::move(what);
      }
    }
  };
  for (const auto& r : all.tenants) {
    count(RowIntact(keys.row_mac, r), "tenant " + LoggableId(r.id));
  }
  for (const auto& r : all.tenant_keys) {
    const bool opens = crypto::OpenSecret(keys.wrap, r.wrapped_key, TenantKeyAad(r.tenant_id, r.version)).ok();
    count(opens && RowIntact(keys.row_mac, r),
          "key version " + std::to_string(r.version) + " of tenant " + LoggableId(r.tenant_id));
  }
  for (const auto& r : all.access_keys) {
    const bool opens = crypto::OpenSecret(keys.wrap, r.secret, AccessKeySecretAad(r.access_key_id, r.tenant_id)).ok();
    count(opens && RowIntact(keys.row_mac, r), "access key " + LoggableId(r.access_key_id));
  }
  for (const auto& r : all.admins) {
    count(RowIntact(keys.row_mac, r), "admin credential " + LoggableId(r.name));
  }
  for (const auto& r : all.approvals) {
    count(RowIntact(keys.row_mac, r), "approval " + LoggableId(r.id));
  }
  for (const auto& r : all.named_keys) {
    count(RowIntact(keys.row_mac, r), "named key " + LoggableId(r.key_id));
  }
  return scan;
}

Result<ResealReport> ResealAll(Connection& conn, const ResealSource& from, const KeystoreKeys& to,
                               const std::function<Status(size_t)>& after_row) {
  COFFRE_ASSIGN_OR_RETURN(AllRows all, ReadAllRows(conn));
  const SecretBytes& from_wrap = from.legacy ? *from.legacy_root : from.keys->wrap;
  if (!from.legacy) {
    COFFRE_ASSIGN_OR_RETURN(RowScan scan, ScanRows(conn, *from.keys));
    if (scan.failed != 0) {
      return Status::Corruption(std::to_string(scan.failed) + " keystore row(s) fail their integrity check (first: " +
                                scan.first_failure + "); nothing was changed");
    }
  }
  ResealReport report;
  size_t done = 0;
  auto step = [&]() -> Status {
    ++report.rows;
    return after_row ? after_row(++done) : Status::Ok();
  };
  auto reseal = [&](const Bytes& sealed, const Bytes& aad, const std::string& what) -> Result<Bytes> {
    auto plain = crypto::OpenSecret(from_wrap, sealed, aad);
    if (!plain.ok()) {
      return Status::Corruption(what +
                                " does not open under the current root key (altered row?); nothing was "
                                "changed");
    }
    return crypto::Seal(to.wrap, plain->Reveal(), aad);
  };

  for (auto& r : all.tenants) {
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    COFFRE_RETURN_IF_ERROR(step());
  }
  for (auto& r : all.tenant_keys) {
    COFFRE_ASSIGN_OR_RETURN(
        r.wrapped_key, reseal(r.wrapped_key, TenantKeyAad(r.tenant_id, r.version),
                              "key version " + std::to_string(r.version) + " of tenant " + LoggableId(r.tenant_id)));
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    ++report.tenant_keys;
    COFFRE_RETURN_IF_ERROR(step());
  }
  for (auto& r : all.access_keys) {
    COFFRE_ASSIGN_OR_RETURN(r.secret, reseal(r.secret, AccessKeySecretAad(r.access_key_id, r.tenant_id),
                                             "the secret of access key " + LoggableId(r.access_key_id)));
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    ++report.access_keys;
    COFFRE_RETURN_IF_ERROR(step());
  }
  // The admin token key: a legacy keystore gets its first one, and its stored token digests
  // (plain SHA-256) become MACs under it; otherwise the same key is sealed under the new root.
  SecretBytes token_key;
  if (from.legacy) {
    token_key = SecretBytes::Random(crypto::kKeySize);
  } else {
    token_key = from.keys->admin_token;
  }
  COFFRE_RETURN_IF_ERROR(StoreAdminTokenKey(conn, to.wrap, token_key));
  for (auto& r : all.admins) {
    if (from.legacy) {
      if (r.token_mac.size() != 32) {
        return Status::Corruption("admin credential " + LoggableId(r.name) + " has no valid token digest");
      }
      r.token_mac = AdminTokenMac(token_key, r.token_mac);
    }
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    COFFRE_RETURN_IF_ERROR(step());
  }
  for (auto& r : all.approvals) {
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    COFFRE_RETURN_IF_ERROR(step());
  }
  for (auto& r : all.named_keys) {
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(UpdateRow(conn, to.row_mac, r));
    COFFRE_RETURN_IF_ERROR(step());
  }
  COFFRE_ASSIGN_OR_RETURN(Bytes check, SealCheckValue(to.wrap));
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?) "
                                                     "ON CONFLICT(name) DO UPDATE SET value = excluded.value"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(kRootKeyCheckName, check));
  COFFRE_RETURN_IF_ERROR(st.Run());
  return report;
}

std::string LoggableId(std::string_view id) {
  std::string out;
  for (char c : id.substr(0, 64)) {
    out += (c >= 0x21 && c <= 0x7e) ? c : '?';
  }
  if (id.size() > 64) {
    out += "...";
  }
  return out.empty() ? "(empty)" : out;
}

}  // namespace internal
}  // namespace coffre::keystore
