// The keystore on SQLite.
//
// One connection behind a mutex serves every query: the hot paths (resolving an access key,
// wrapping and unwrapping data keys) are answered from the in-memory cache, so the database is
// touched on a cache miss, on administration, and when last_used times are flushed.
//
// Cached entries are reloaded after kCacheTtl, so a change made by another process (an access key
// disabled, a key version retired or destroyed) takes effect here within that time.
//
// Locking: db_mu_ guards the connection; cache_mu_ guards the caches and is a leaf lock, never
// held while taking db_mu_, doing I/O or running a cipher. Key material is shared out of the
// cache as shared_ptr<const SecretBytes>, so crypto runs without any lock held.

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"

namespace coffre::keystore {
namespace {

using db::Connection;
using db::Statement;
using db::Transaction;
using KeyPtr = std::shared_ptr<const SecretBytes>;

constexpr std::string_view kMigrations[] = {
    R"sql(
CREATE TABLE meta(
  name TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenants(
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenant_keys(
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  version INTEGER NOT NULL CHECK(version >= 1),
  wrapped_key BLOB NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('active', 'retired')),
  created INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys(tenant_id) WHERE state = 'active';

CREATE TABLE access_keys(
  access_key_id TEXT NOT NULL PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  secret BLOB NOT NULL,
  enabled INTEGER NOT NULL CHECK(enabled IN (0, 1)),
  created INTEGER NOT NULL,
  last_used INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_by_tenant ON access_keys(tenant_id, access_key_id);
)sql",
};

constexpr std::string_view kCheckName = "root-key-check";
constexpr UnixMillis kCacheTtl = 60'000;
constexpr UnixMillis kLastUsedFlushInterval = 60'000;

Tenant ReadTenant(const Statement& st) {
  Tenant t;
  t.id = st.ColumnText(0);
  t.name = st.ColumnText(1);
  t.created = st.ColumnInt64(2);
  return t;
}

class SqliteKeystore final : public Keystore {
 public:
  SqliteKeystore(std::unique_ptr<Connection> conn, SecretBytes root, const Clock& clock)
      : clock_(clock), root_(std::move(root)), conn_(std::move(conn)), last_flush_(Now()) {}

  ~SqliteKeystore() override {
    // Nothing can report an error from here; the times are advisory.
    (void)FlushLastUsed(/*force=*/true);
  }

  Result<Tenant> CreateTenant(const std::string& name) override;
  Result<std::vector<Tenant>> ListTenants() override;
  Result<Tenant> GetTenantByName(const std::string& name) override;
  Result<Tenant> GetTenant(const std::string& tenant_id) override;

  Result<NewAccessKey> CreateAccessKey(const std::string& tenant_id) override;
  Result<std::vector<AccessKey>> ListAccessKeys(const std::string& tenant_id) override;
  Result<ResolvedAccessKey> ResolveAccessKey(const std::string& access_key_id) override;

  Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) override;
  Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                    ByteView aad) override;

 private:
  struct CachedKey {
    KeyPtr key;
    UnixMillis loaded_at = 0;
  };
  struct CachedActive {
    uint32_t version = 0;
    UnixMillis loaded_at = 0;
  };
  struct CachedAccessKey {
    AccessKey key;
    KeyPtr secret;
    UnixMillis loaded_at = 0;
  };

  UnixMillis Now() const { return ToUnixMillis(clock_.Now()); }
  bool Fresh(UnixMillis loaded_at, UnixMillis now) const { return now - loaded_at < kCacheTtl && now >= loaded_at; }

  Result<Tenant> QueryTenant(std::string_view sql, const std::string& arg, const std::string& what);
  // The unwrapped tenant key of that version (NotFound if the version does not exist).
  Result<KeyPtr> TenantKey(const std::string& tenant_id, uint32_t version);
  // The tenant's active version (NotFound for an unknown tenant).
  Result<uint32_t> ActiveVersion(const std::string& tenant_id);
  Result<CachedAccessKey> LoadAccessKey(const std::string& access_key_id);
  // Writes the coalesced last_used times if the interval has passed (or `force`).
  Status FlushLastUsed(bool force);

  const Clock& clock_;
  const SecretBytes root_;

  std::mutex db_mu_;
  std::unique_ptr<Connection> conn_;  // guarded by db_mu_

  std::mutex cache_mu_;  // guards everything below
  std::map<std::pair<std::string, uint32_t>, CachedKey> tenant_keys_;
  std::map<std::string, CachedActive> active_versions_;
  std::map<std::string, CachedAccessKey> access_keys_;
  std::map<std::string, UnixMillis> pending_last_used_;
  UnixMillis last_flush_ = 0;
  bool flushing_ = false;
};

// --- tenants -----------------------------------------------------------------------------

Result<Tenant> SqliteKeystore::CreateTenant(const std::string& name) {
  if (!internal::IsValidTenantName(name)) {
    return Status::InvalidArgument("invalid tenant name '" + name + "': expected [a-z0-9][a-z0-9._-]{0,62}");
  }
  Tenant t;
  t.id = RandomId(crypto::kTenantKeyIdSize);
  t.name = name;
  t.created = Now();
  constexpr uint32_t kFirstVersion = 1;
  auto key = std::make_shared<const SecretBytes>(SecretBytes::Random(crypto::kKeySize));
  COFFRE_ASSIGN_OR_RETURN(Bytes wrapped,
                          crypto::Seal(root_, key->Reveal(), internal::TenantKeyAad(t.id, kFirstVersion)));
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("INSERT INTO tenants(id, name, created) VALUES(?, ?, ?)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(t.id, t.name, t.created));
      Status s = st.Run();
      if (s.code() == StatusCode::kAlreadyExists) {
        return Status::AlreadyExists("tenant " + name + " already exists");
      }
      COFFRE_RETURN_IF_ERROR(s);
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO tenant_keys(tenant_id, version, "
                                                                 "wrapped_key, state, created) VALUES(?, ?, ?, "
                                                                 "'active', ?)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(t.id, kFirstVersion, wrapped, t.created));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  const UnixMillis now = Now();
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{t.id, kFirstVersion}] = CachedKey{std::move(key), now};
  active_versions_[t.id] = CachedActive{kFirstVersion, now};
  return t;
}

Result<std::vector<Tenant>> SqliteKeystore::ListTenants() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT id, name, created FROM tenants ORDER BY name"));
  std::vector<Tenant> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(ReadTenant(st));
  }
  return out;
}

Result<Tenant> SqliteKeystore::QueryTenant(std::string_view sql, const std::string& arg, const std::string& what) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached(sql));
  COFFRE_RETURN_IF_ERROR(st.BindAll(arg));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no tenant " + what);
  }
  return ReadTenant(st);
}

Result<Tenant> SqliteKeystore::GetTenantByName(const std::string& name) {
  return QueryTenant("SELECT id, name, created FROM tenants WHERE name = ?", name, "named " + name);
}

Result<Tenant> SqliteKeystore::GetTenant(const std::string& tenant_id) {
  return QueryTenant("SELECT id, name, created FROM tenants WHERE id = ?", tenant_id, "with id " + tenant_id);
}

// --- access keys -------------------------------------------------------------------------

Result<NewAccessKey> SqliteKeystore::CreateAccessKey(const std::string& tenant_id) {
  NewAccessKey out;
  out.key.tenant_id = tenant_id;
  out.key.enabled = true;
  out.key.created = Now();
  auto secret = std::make_shared<SecretBytes>(internal::kSecretLength);
  internal::RandomChars(internal::kSecretAlphabet, secret->RevealMutable());

  std::lock_guard lock(db_mu_);
  // An id collision (36^18 ids) is all but impossible; retrying costs nothing.
  for (int attempt = 0;; ++attempt) {
    std::string id(internal::kAccessKeyIdLength, 'C');
    id[1] = 'O';
    internal::RandomChars(internal::kAccessKeyIdAlphabet,
                          std::span(reinterpret_cast<uint8_t*>(id.data()) + 2, internal::kAccessKeyIdLength - 2));
    COFFRE_ASSIGN_OR_RETURN(Bytes sealed,
                            crypto::Seal(root_, secret->Reveal(), internal::AccessKeySecretAad(id, tenant_id)));
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT 1 FROM tenants WHERE id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("no tenant with id " + tenant_id);
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO access_keys(access_key_id, tenant_id, "
                                                               "secret, enabled, created) VALUES(?, ?, ?, 1, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(id, tenant_id, sealed, out.key.created));
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists && attempt < 3) {
      continue;
    }
    COFFRE_RETURN_IF_ERROR(s);
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    out.key.access_key_id = std::move(id);
    break;
  }
  out.secret_access_key.assign(reinterpret_cast<const char*>(secret->Reveal().data()), secret->size());
  {
    std::lock_guard cache_lock(cache_mu_);
    access_keys_[out.key.access_key_id] = CachedAccessKey{out.key, std::move(secret), out.key.created};
  }
  return out;
}

Result<std::vector<AccessKey>> SqliteKeystore::ListAccessKeys(const std::string& tenant_id) {
  std::vector<AccessKey> out;
  {
    std::lock_guard lock(db_mu_);
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT 1 FROM tenants WHERE id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("no tenant with id " + tenant_id);
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("SELECT access_key_id, enabled, created, last_used FROM access_keys "
                                                 "WHERE tenant_id = ? ORDER BY access_key_id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      AccessKey k;
      k.access_key_id = st.ColumnText(0);
      k.tenant_id = tenant_id;
      k.enabled = st.ColumnInt64(1) != 0;
      k.created = st.ColumnInt64(2);
      if (!st.ColumnIsNull(3)) {
        k.last_used = st.ColumnInt64(3);
      }
      out.push_back(std::move(k));
    }
  }
  // Uses not yet flushed are newer than what the database holds.
  std::lock_guard lock(cache_mu_);
  for (auto& k : out) {
    auto it = pending_last_used_.find(k.access_key_id);
    if (it != pending_last_used_.end() && (!k.last_used || *k.last_used < it->second)) {
      k.last_used = it->second;
    }
  }
  return out;
}

Result<SqliteKeystore::CachedAccessKey> SqliteKeystore::LoadAccessKey(const std::string& access_key_id) {
  CachedAccessKey entry;
  Bytes sealed;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(
        Statement st, conn_->PrepareCached("SELECT tenant_id, secret, enabled, created, last_used FROM access_keys "
                                           "WHERE access_key_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::NotFound("unknown access key " + access_key_id);
    }
    entry.key.access_key_id = access_key_id;
    entry.key.tenant_id = st.ColumnText(0);
    sealed = st.ColumnBlob(1);
    entry.key.enabled = st.ColumnInt64(2) != 0;
    entry.key.created = st.ColumnInt64(3);
    if (!st.ColumnIsNull(4)) {
      entry.key.last_used = st.ColumnInt64(4);
    }
  }
  // The aad names the key id and tenant: a secret copied onto another row, or a row moved to
  // another tenant, does not open.
  auto secret = crypto::OpenSecret(root_, sealed, internal::AccessKeySecretAad(access_key_id, entry.key.tenant_id));
  if (!secret.ok()) {
    return Status::Corruption("the stored secret of access key " + access_key_id + " does not open under the root key");
  }
  entry.secret = std::make_shared<const SecretBytes>(std::move(secret).value());
  entry.loaded_at = Now();
  return entry;
}

Result<ResolvedAccessKey> SqliteKeystore::ResolveAccessKey(const std::string& access_key_id) {
  // Malformed ids (most of what an attacker would try) never reach the database.
  if (!internal::IsValidAccessKeyId(access_key_id)) {
    return Status::NotFound("unknown access key");
  }
  const UnixMillis now = Now();
  std::optional<CachedAccessKey> entry;
  {
    std::lock_guard lock(cache_mu_);
    auto it = access_keys_.find(access_key_id);
    if (it != access_keys_.end() && Fresh(it->second.loaded_at, now)) {
      entry = it->second;
    }
  }
  if (!entry) {
    COFFRE_ASSIGN_OR_RETURN(entry, LoadAccessKey(access_key_id));
    std::lock_guard lock(cache_mu_);
    access_keys_[access_key_id] = *entry;
  }
  if (!entry->key.enabled) {
    return Status::PermissionDenied("access key " + access_key_id + " is disabled");
  }
  bool flush_due = false;
  {
    std::lock_guard lock(cache_mu_);
    pending_last_used_[access_key_id] = now;
    flush_due = !flushing_ && now - last_flush_ >= kLastUsedFlushInterval;
  }
  if (flush_due) {
    // A failed flush keeps the times pending for the next attempt; the request goes on.
    (void)FlushLastUsed(/*force=*/false);
  }
  ResolvedAccessKey out;
  out.key = std::move(entry->key);
  out.key.last_used = now;
  out.secret = *entry->secret;
  return out;
}

Status SqliteKeystore::FlushLastUsed(bool force) {
  const UnixMillis now = Now();
  std::map<std::string, UnixMillis> batch;
  {
    std::lock_guard lock(cache_mu_);
    if (flushing_ || pending_last_used_.empty() || (!force && now - last_flush_ < kLastUsedFlushInterval)) {
      return Status::Ok();
    }
    flushing_ = true;
    last_flush_ = now;
    batch.swap(pending_last_used_);
  }
  Status result = [&]() -> Status {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    for (const auto& [id, used] : batch) {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE access_keys SET last_used = "
                                                                 "max(coalesce(last_used, 0), ?) "
                                                                 "WHERE access_key_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(used, id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    return tx.Commit();
  }();
  std::lock_guard lock(cache_mu_);
  flushing_ = false;
  if (!result.ok()) {
    for (const auto& [id, used] : batch) {
      UnixMillis& slot = pending_last_used_[id];
      slot = std::max(slot, used);
    }
  }
  return result;
}

// --- data keys ---------------------------------------------------------------------------

Result<KeyPtr> SqliteKeystore::TenantKey(const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = tenant_keys_.find({tenant_id, version});
    if (it != tenant_keys_.end() && Fresh(it->second.loaded_at, now)) {
      return it->second.key;
    }
  }
  Bytes wrapped;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT wrapped_key FROM tenant_keys "
                                                               "WHERE tenant_id = ? AND version = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      std::lock_guard cache_lock(cache_mu_);
      tenant_keys_.erase({tenant_id, version});  // destroyed elsewhere: forget it here too
      return Status::NotFound("tenant " + tenant_id + " has no key version " + std::to_string(version));
    }
    wrapped = st.ColumnBlob(0);
  }
  auto key = crypto::OpenSecret(root_, wrapped, internal::TenantKeyAad(tenant_id, version));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return Status::Corruption("key version " + std::to_string(version) + " of tenant " + tenant_id +
                              " does not open under the root key");
  }
  auto ptr = std::make_shared<const SecretBytes>(std::move(key).value());
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{tenant_id, version}] = CachedKey{ptr, now};
  return ptr;
}

Result<uint32_t> SqliteKeystore::ActiveVersion(const std::string& tenant_id) {
  const UnixMillis now = Now();
  {
    std::lock_guard lock(cache_mu_);
    auto it = active_versions_.find(tenant_id);
    if (it != active_versions_.end() && Fresh(it->second.loaded_at, now)) {
      return it->second.version;
    }
  }
  uint32_t version = 0;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT version FROM tenant_keys "
                                                               "WHERE tenant_id = ? AND state = 'active'"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::NotFound("tenant " + tenant_id + " has no active key");
    }
    version = static_cast<uint32_t>(st.ColumnInt64(0));
  }
  std::lock_guard lock(cache_mu_);
  active_versions_[tenant_id] = CachedActive{version, now};
  return version;
}

Result<DataKey> SqliteKeystore::NewDataKey(const std::string& tenant_id, ByteView aad) {
  if (!internal::IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  COFFRE_ASSIGN_OR_RETURN(uint32_t version, ActiveVersion(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, version));
  DataKey dk;
  dk.key = SecretBytes::Random(crypto::kKeySize);
  dk.tenant_key_id = *HexDecode(tenant_id);
  dk.tenant_key_version = version;
  COFFRE_ASSIGN_OR_RETURN(dk.wrapped,
                          crypto::Seal(*tenant_key, dk.key.Reveal(), internal::DataKeyAad(tenant_id, version, aad)));
  return dk;
}

Result<SecretBytes> SqliteKeystore::UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                                  ByteView wrapped, ByteView aad) {
  if (!internal::IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, tenant_key_version));
  auto key = crypto::OpenSecret(*tenant_key, wrapped, internal::DataKeyAad(tenant_id, tenant_key_version, aad));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return Status::Corruption("wrapped data key does not open: altered, or bound to another tenant or object");
  }
  return std::move(key).value();
}

// Verifies the root key against the keystore's check value, or records one in a new keystore.
Status CheckRootKey(Connection& conn, const SecretBytes& root) {
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn));
  Bytes sealed;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("SELECT value FROM meta WHERE name = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(kCheckName));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      sealed = st.ColumnBlob(0);
    }
  }
  if (!sealed.empty()) {
    auto opened = crypto::Open(root, sealed, AsBytes(internal::kCheckAad));
    if (!opened.ok() || AsChars(*opened) != internal::kCheckPlaintext) {
      return Status::PermissionDenied("root key does not match this keystore");
    }
    return tx.Commit();
  }
  COFFRE_ASSIGN_OR_RETURN(Bytes check,
                          crypto::Seal(root, AsBytes(internal::kCheckPlaintext), AsBytes(internal::kCheckAad)));
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(kCheckName, check));
  COFFRE_RETURN_IF_ERROR(st.Run());
  return tx.Commit();
}

}  // namespace

Result<std::unique_ptr<Keystore>> Keystore::Open(const std::string& path, SecretBytes root_key, const Clock& clock) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(path, db::OpenMode::kReadWriteCreate));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*conn, kMigrations));
  COFFRE_RETURN_IF_ERROR(CheckRootKey(*conn, root_key));
  return std::unique_ptr<Keystore>(new SqliteKeystore(std::move(conn), std::move(root_key), clock));
}

}  // namespace coffre::keystore
