// The keystore on SQLite.
//
// One connection behind a mutex serves every query: the hot paths (resolving an access key,
// wrapping and unwrapping data keys) are answered from the in-memory cache, so the database is
// touched on a cache miss, on administration, and when last_used times are flushed.
//
// A change made by another process (an access key disabled, a key rotated or destroyed, a tenant
// shredded) takes effect here within Keystore::kRevalidateIntervalMs: lookups poll SQLite's
// PRAGMA data_version at most that often and start a new cache epoch when another connection
// committed. Changes made through this object invalidate the cache at once. Entries are reloaded
// after kCacheTtl in any case.
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
#include "coffre/crypto/hash.h"
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
    // Key lifecycle: shredded tenants, and the key events kept for auditors.
    R"sql(
ALTER TABLE tenants ADD COLUMN shredded INTEGER;

CREATE TABLE key_events(
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  event TEXT NOT NULL,
  version INTEGER NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX key_events_by_tenant ON key_events(tenant_id, id);
)sql",
    // Admin API credentials: only the SHA-256 of each bearer token is kept.
    R"sql(
CREATE TABLE admin_credentials(
  name TEXT NOT NULL PRIMARY KEY,
  role TEXT NOT NULL CHECK(role IN ('admin', 'auditor')),
  token_sha256 BLOB NOT NULL UNIQUE CHECK(length(token_sha256) = 32),
  created INTEGER NOT NULL,
  disabled INTEGER
) WITHOUT ROWID;
)sql",
    // Dual control: approvals of the guarded operations (keystore.h, GuardedOperation).
    R"sql(
CREATE TABLE approvals(
  id TEXT NOT NULL PRIMARY KEY,
  operation TEXT NOT NULL CHECK(operation IN ('tenant_key.destroy', 'tenant.shred', 'root_key.rotate')),
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  requested INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  approved_by TEXT,
  approved INTEGER,
  used INTEGER,
  CHECK(approved_by IS NULL OR approved_by <> requested_by)
) WITHOUT ROWID;
CREATE INDEX approvals_by_time ON approvals(requested, id);
)sql",
    // The destroy fence (keystore.h, SetKeyVersionDestroying): when a version's destruction began.
    R"sql(
ALTER TABLE tenant_keys ADD COLUMN destroying INTEGER;
)sql",
};

constexpr std::string_view kCheckName = internal::kRootKeyCheckName;
constexpr UnixMillis kCacheTtl = 60'000;
constexpr UnixMillis kLastUsedFlushInterval = 60'000;

constexpr std::string_view kShreddedMessage = " was crypto-shredded: its keys are destroyed and its objects can no longer be decrypted";

Tenant ReadTenant(const Statement& st) {
  Tenant t;
  t.id = st.ColumnText(0);
  t.name = st.ColumnText(1);
  t.created = st.ColumnInt64(2);
  if (!st.ColumnIsNull(3)) {
    t.shredded = st.ColumnInt64(3);
  }
  return t;
}

// Appends a key event inside the caller's transaction.
Status RecordEvent(Connection& conn, UnixMillis at, std::string_view tenant_id, std::string_view event,
                   uint32_t version, std::string_view detail) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("INSERT INTO key_events(at, tenant_id, event, version, "
                                                           "detail) VALUES(?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(at, tenant_id, event, version, detail));
  return st.Run();
}

// The tenant's shredded time inside the caller's transaction: NotFound if unknown.
Result<std::optional<UnixMillis>> TenantShredded(Connection& conn, std::string_view tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("SELECT shredded FROM tenants WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no tenant with id " + std::string(tenant_id));
  }
  if (st.ColumnIsNull(0)) {
    return std::optional<UnixMillis>();
  }
  return std::optional<UnixMillis>(st.ColumnInt64(0));
}

class SqliteKeystore final : public Keystore {
 public:
  SqliteKeystore(std::unique_ptr<Connection> conn, SecretBytes root, const Clock& clock, int64_t data_version)
      : clock_(clock),
        root_(std::move(root)),
        conn_(std::move(conn)),
        data_version_(data_version),
        last_flush_(Now()),
        last_revalidate_(Now()) {}

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
  Status SetAccessKeyEnabled(const std::string& tenant_id, const std::string& access_key_id, bool enabled) override;
  Status DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id) override;

  Result<uint32_t> RotateTenantKey(const std::string& tenant_id) override;
  Result<std::vector<std::string>> RotateKeysOlderThan(int64_t max_age_ms) override;
  Result<std::vector<KeyVersion>> ListKeyVersions(const std::string& tenant_id) override;
  Status DestroyKeyVersion(const std::string& tenant_id, uint32_t version) override;
  Status SetKeyVersionDestroying(const std::string& tenant_id, uint32_t version, bool destroying) override;
  Result<bool> IsKeyVersionDestroying(const std::string& tenant_id, uint32_t version) override;
  Result<RewrappedKey> RewrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                     ByteView aad) override;
  Status ShredTenant(const std::string& tenant_id) override;
  Result<std::vector<KeyEvent>> ListKeyEvents(const std::string& tenant_id) override;

  Result<NewAdminCredential> CreateAdminCredential(const std::string& name, AdminRole role) override;
  Result<std::vector<AdminCredential>> ListAdminCredentials() override;
  Status DisableAdminCredential(const std::string& name) override;
  Result<AdminCredential> AuthenticateAdminToken(std::string_view token) override;

  Result<Approval> RequestApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                                   uint32_t version, const std::string& requested_by, int64_t ttl_ms) override;
  Result<Approval> GetApproval(const std::string& id) override;
  Result<std::vector<Approval>> ListApprovals(size_t limit) override;
  Result<Approval> GrantApproval(const std::string& id, const std::string& approved_by) override;
  Result<Approval> UseApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                               uint32_t version) override;
  Status ReleaseApproval(const std::string& id) override;

  Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) override;
  Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                    ByteView aad) override;

 private:
  // Every entry records the cache epoch it was loaded in; Revalidate() moves to a new epoch when
  // another process changed the database, which makes every older entry stale at once (also one
  // whose load was under way while the change was detected).
  struct CachedKey {
    KeyPtr key;
    UnixMillis loaded_at = 0;
    uint64_t epoch = 0;
  };
  struct CachedActive {
    uint32_t version = 0;
    UnixMillis loaded_at = 0;
    uint64_t epoch = 0;
  };
  struct CachedAccessKey {
    AccessKey key;
    KeyPtr secret;
    UnixMillis loaded_at = 0;
    uint64_t epoch = 0;
  };

  UnixMillis Now() const { return ToUnixMillis(clock_.Now()); }
  // cache_mu_ held.
  bool Fresh(UnixMillis loaded_at, uint64_t epoch, UnixMillis now) const {
    return epoch == epoch_ && now - loaded_at < kCacheTtl && now >= loaded_at;
  }
  uint64_t CurrentEpoch() {
    std::lock_guard lock(cache_mu_);
    return epoch_;
  }
  // At most every kRevalidateIntervalMs: if another connection committed since the last look
  // (PRAGMA data_version changed), starts a new cache epoch.
  void Revalidate(UnixMillis now);
  // Drops every cached entry (cache_mu_ held); used after this process changed keys.
  void InvalidateLocked() {
    ++epoch_;
    tenant_keys_.clear();
    active_versions_.clear();
    access_keys_.clear();
  }
  // Runs `fn` inside one write transaction and invalidates the caches after it committed.
  template <typename Fn>
  Status WriteAndInvalidate(Fn&& fn);

  Result<Tenant> QueryTenant(std::string_view sql, const std::string& arg, const std::string& what);
  // The unwrapped tenant key of that version (NotFound if the version does not exist).
  Result<KeyPtr> TenantKey(const std::string& tenant_id, uint32_t version);
  // The tenant's active version (NotFound for an unknown tenant).
  Result<uint32_t> ActiveVersion(const std::string& tenant_id);
  Result<CachedAccessKey> LoadAccessKey(const std::string& access_key_id);
  // Writes the coalesced last_used times if the interval has passed (or `force`).
  Status FlushLastUsed(bool force);
  // `failed` (a stored value did not open), or a clearer error when the reason is that the
  // keystore's root key was rotated (coffre keystore rotate-root) after this process opened it.
  Status UnlessRootKeyRotated(Status failed);

  const Clock& clock_;
  const SecretBytes root_;

  std::mutex db_mu_;
  std::unique_ptr<Connection> conn_;  // guarded by db_mu_
  int64_t data_version_ = 0;          // guarded by db_mu_

  std::mutex cache_mu_;  // guards everything below
  std::map<std::pair<std::string, uint32_t>, CachedKey> tenant_keys_;
  std::map<std::string, CachedActive> active_versions_;
  std::map<std::string, CachedAccessKey> access_keys_;
  std::map<std::string, UnixMillis> pending_last_used_;
  UnixMillis last_flush_ = 0;
  bool flushing_ = false;
  uint64_t epoch_ = 0;
  UnixMillis last_revalidate_ = 0;
};

Result<int64_t> DataVersion(Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("PRAGMA data_version"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::Internal("PRAGMA data_version returned no row");
  }
  return st.ColumnInt64(0);
}

void SqliteKeystore::Revalidate(UnixMillis now) {
  {
    std::lock_guard lock(cache_mu_);
    if (now - last_revalidate_ < kRevalidateIntervalMs && now >= last_revalidate_) {
      return;
    }
    last_revalidate_ = now;
  }
  bool changed = false;
  {
    std::lock_guard lock(db_mu_);
    auto v = DataVersion(*conn_);
    // If the question cannot be asked, assume the worst: reload.
    changed = !v.ok() || *v != data_version_;
    if (v.ok()) {
      data_version_ = *v;
    }
  }
  if (changed) {
    std::lock_guard lock(cache_mu_);
    InvalidateLocked();
  }
}

template <typename Fn>
Status SqliteKeystore::WriteAndInvalidate(Fn&& fn) {
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    COFFRE_RETURN_IF_ERROR(fn());
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  std::lock_guard lock(cache_mu_);
  InvalidateLocked();
  return Status::Ok();
}

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
    COFFRE_RETURN_IF_ERROR(RecordEvent(*conn_, t.created, t.id, "tenant-created", kFirstVersion, t.name));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  const UnixMillis now = Now();
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{t.id, kFirstVersion}] = CachedKey{std::move(key), now, epoch_};
  active_versions_[t.id] = CachedActive{kFirstVersion, now, epoch_};
  return t;
}

Result<std::vector<Tenant>> SqliteKeystore::ListTenants() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT id, name, created, shredded FROM tenants ORDER BY name"));
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
  return QueryTenant("SELECT id, name, created, shredded FROM tenants WHERE name = ?", name, "named " + name);
}

Result<Tenant> SqliteKeystore::GetTenant(const std::string& tenant_id) {
  return QueryTenant("SELECT id, name, created, shredded FROM tenants WHERE id = ?", tenant_id, "with id " + tenant_id);
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
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO access_keys(access_key_id, tenant_id, "
                                                               "secret, enabled, created) VALUES(?, ?, ?, 1, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(id, tenant_id, sealed, out.key.created));
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists && attempt < 3) {
      continue;
    }
    COFFRE_RETURN_IF_ERROR(s);
    COFFRE_RETURN_IF_ERROR(RecordEvent(*conn_, out.key.created, tenant_id, "access-key-created", 0, id));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    out.key.access_key_id = std::move(id);
    break;
  }
  out.secret_access_key.assign(reinterpret_cast<const char*>(secret->Reveal().data()), secret->size());
  {
    std::lock_guard cache_lock(cache_mu_);
    access_keys_[out.key.access_key_id] = CachedAccessKey{out.key, std::move(secret), out.key.created, epoch_};
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
  entry.epoch = CurrentEpoch();  // before reading: a change detected meanwhile makes it stale
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
    return UnlessRootKeyRotated(Status::Corruption("the stored secret of access key " + access_key_id +
                                                   " does not open under the root key"));
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
  Revalidate(now);
  std::optional<CachedAccessKey> entry;
  {
    std::lock_guard lock(cache_mu_);
    auto it = access_keys_.find(access_key_id);
    if (it != access_keys_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
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

Status SqliteKeystore::UnlessRootKeyRotated(Status failed) {
  std::lock_guard lock(db_mu_);
  auto st = conn_->PrepareCached("SELECT value FROM meta WHERE name = ?");
  if (!st.ok() || !st->BindAll(kCheckName).ok()) {
    return failed;
  }
  auto row = st->Step();
  if (!row.ok() || !*row) {
    return failed;
  }
  auto opened = crypto::Open(root_, st->ColumnBlobView(0), AsBytes(internal::kCheckAad));
  if (opened.ok() && AsChars(*opened) == internal::kCheckPlaintext) {
    return failed;
  }
  return Status::FailedPrecondition("the keystore's root key was rotated (coffre keystore rotate-root) after this "
                                    "process started; restart it with the new root key");
}

// --- data keys ---------------------------------------------------------------------------

Result<KeyPtr> SqliteKeystore::TenantKey(const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  Revalidate(now);
  uint64_t epoch = 0;
  {
    std::lock_guard lock(cache_mu_);
    auto it = tenant_keys_.find({tenant_id, version});
    if (it != tenant_keys_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
      return it->second.key;
    }
    epoch = epoch_;
  }
  Bytes wrapped;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT wrapped_key FROM tenant_keys "
                                                               "WHERE tenant_id = ? AND version = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      {
        std::lock_guard cache_lock(cache_mu_);
        tenant_keys_.erase({tenant_id, version});  // destroyed elsewhere: forget it here too
      }
      auto shredded = TenantShredded(*conn_, tenant_id);
      if (shredded.ok() && shredded->has_value()) {
        return Status::PermissionDenied("tenant " + tenant_id + std::string(kShreddedMessage));
      }
      return Status::NotFound("tenant " + tenant_id + " has no key version " + std::to_string(version));
    }
    wrapped = st.ColumnBlob(0);
  }
  auto key = crypto::OpenSecret(root_, wrapped, internal::TenantKeyAad(tenant_id, version));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return UnlessRootKeyRotated(Status::Corruption("key version " + std::to_string(version) + " of tenant " +
                                                   tenant_id + " does not open under the root key"));
  }
  auto ptr = std::make_shared<const SecretBytes>(std::move(key).value());
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{tenant_id, version}] = CachedKey{ptr, now, epoch};
  return ptr;
}

Result<uint32_t> SqliteKeystore::ActiveVersion(const std::string& tenant_id) {
  const UnixMillis now = Now();
  Revalidate(now);
  uint64_t epoch = 0;
  {
    std::lock_guard lock(cache_mu_);
    auto it = active_versions_.find(tenant_id);
    if (it != active_versions_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
      return it->second.version;
    }
    epoch = epoch_;
  }
  uint32_t version = 0;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT version FROM tenant_keys "
                                                               "WHERE tenant_id = ? AND state = 'active'"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      auto shredded = TenantShredded(*conn_, tenant_id);
      if (shredded.ok() && shredded->has_value()) {
        return Status::PermissionDenied("tenant " + tenant_id + std::string(kShreddedMessage));
      }
      return Status::NotFound("tenant " + tenant_id + " has no active key");
    }
    version = static_cast<uint32_t>(st.ColumnInt64(0));
  }
  std::lock_guard lock(cache_mu_);
  active_versions_[tenant_id] = CachedActive{version, now, epoch};
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

// --- access key administration ----------------------------------------------------------

Status SqliteKeystore::SetAccessKeyEnabled(const std::string& tenant_id, const std::string& access_key_id,
                                           bool enabled) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
    if (shredded && enabled) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage) +
                                        "; its access keys cannot be enabled");
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE access_keys SET enabled = ? "
                                                               "WHERE access_key_id = ? AND tenant_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(enabled ? 1 : 0, access_key_id, tenant_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    if (conn_->Changes() == 0) {
      return Status::NotFound("the tenant has no access key " + access_key_id);
    }
    return RecordEvent(*conn_, now, tenant_id, enabled ? "access-key-enabled" : "access-key-disabled", 0,
                       access_key_id);
  });
}

Status SqliteKeystore::DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id) {
  const UnixMillis now = Now();
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("DELETE FROM access_keys WHERE access_key_id = ? AND tenant_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id, tenant_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    if (conn_->Changes() == 0) {
      return Status::NotFound("the tenant has no access key " + access_key_id);
    }
    return RecordEvent(*conn_, now, tenant_id, "access-key-deleted", 0, access_key_id);
  });
  if (!written.ok()) {
    return written;
  }
  std::lock_guard lock(cache_mu_);
  pending_last_used_.erase(access_key_id);
  return Status::Ok();
}

// --- tenant key versions -----------------------------------------------------------------

Result<uint32_t> SqliteKeystore::RotateTenantKey(const std::string& tenant_id) {
  const UnixMillis now = Now();
  uint32_t version = 0;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage) +
                                        "; it cannot get a new key");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT coalesce(max(version), 0) FROM tenant_keys WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::Internal("max(version) returned no row");
      }
      // Versions only grow, so a destroyed version number is never reused. (A destroyed
      // version is never the highest: the active one is, and it cannot be destroyed.)
      version = static_cast<uint32_t>(st.ColumnInt64(0)) + 1;
    }
    const SecretBytes key = SecretBytes::Random(crypto::kKeySize);
    COFFRE_ASSIGN_OR_RETURN(Bytes wrapped, crypto::Seal(root_, key.Reveal(), internal::TenantKeyAad(tenant_id, version)));
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE tenant_keys SET state = 'retired' "
                                                                 "WHERE tenant_id = ? AND state = 'active'"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO tenant_keys(tenant_id, version, "
                                                                 "wrapped_key, state, created) VALUES(?, ?, ?, "
                                                                 "'active', ?)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version, wrapped, now));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    return RecordEvent(*conn_, now, tenant_id, "key-rotated", version, "");
  });
  if (!written.ok()) {
    return written;
  }
  return version;
}

Result<std::vector<std::string>> SqliteKeystore::RotateKeysOlderThan(int64_t max_age_ms) {
  std::vector<std::string> due;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT k.tenant_id FROM tenant_keys k "
                                                               "JOIN tenants t ON t.id = k.tenant_id "
                                                               "WHERE k.state = 'active' AND t.shredded IS NULL "
                                                               "AND k.created <= ? ORDER BY k.tenant_id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(Now() - max_age_ms));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      due.push_back(st.ColumnText(0));
    }
  }
  std::vector<std::string> rotated;
  for (const auto& tenant_id : due) {
    // Another process may have rotated (or shredded) it meanwhile: check again before rotating.
    COFFRE_ASSIGN_OR_RETURN(std::vector<KeyVersion> versions, ListKeyVersions(tenant_id));
    bool still_due = false;
    for (const auto& v : versions) {
      if (v.active && v.created <= Now() - max_age_ms) {
        still_due = true;
      }
    }
    if (!still_due) {
      continue;
    }
    auto r = RotateTenantKey(tenant_id);
    if (!r.ok() && r.status().code() != StatusCode::kFailedPrecondition) {
      return r.status();
    }
    if (r.ok()) {
      rotated.push_back(tenant_id);
    }
  }
  return rotated;
}

Result<std::vector<KeyVersion>> SqliteKeystore::ListKeyVersions(const std::string& tenant_id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
  (void)shredded;
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT version, state, created, destroying "
                                                             "FROM tenant_keys WHERE tenant_id = ? ORDER BY version"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<KeyVersion> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(KeyVersion{static_cast<uint32_t>(st.ColumnInt64(0)), st.ColumnTextView(1) == "active",
                             st.ColumnInt64(2), !st.ColumnIsNull(3)});
  }
  return out;
}

Status SqliteKeystore::SetKeyVersionDestroying(const std::string& tenant_id, uint32_t version, bool destroying) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT state FROM tenant_keys "
                                                                 "WHERE tenant_id = ? AND version = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("the tenant has no key version " + std::to_string(version));
      }
      if (destroying && st.ColumnTextView(0) == "active") {
        return Status::FailedPrecondition("key version " + std::to_string(version) + " is the active version");
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE tenant_keys SET destroying = ? "
                                                               "WHERE tenant_id = ? AND version = ?"));
    if (destroying) {
      COFFRE_RETURN_IF_ERROR(st.BindAll(now, tenant_id, version));
    } else {
      COFFRE_RETURN_IF_ERROR(st.BindNull(1));
      COFFRE_RETURN_IF_ERROR(st.BindText(2, tenant_id));
      COFFRE_RETURN_IF_ERROR(st.BindInt64(3, version));
    }
    return st.Run();
  });
}

Result<bool> SqliteKeystore::IsKeyVersionDestroying(const std::string& tenant_id, uint32_t version) {
  // Read from the database, never the cache: the fence works only if a writer that commits after
  // the mark sees it (ObjectService::KeepClearOfDestruction).
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT destroying FROM tenant_keys "
                                                             "WHERE tenant_id = ? AND version = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  return !row || !st.ColumnIsNull(0);
}

Status SqliteKeystore::DestroyKeyVersion(const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT state FROM tenant_keys "
                                                                 "WHERE tenant_id = ? AND version = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("the tenant has no key version " + std::to_string(version));
      }
      if (st.ColumnTextView(0) == "active") {
        return Status::FailedPrecondition("key version " + std::to_string(version) +
                                          " is the active version; rotate first (coffre key rotate), rewrap, "
                                          "then destroy the retired version");
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ? AND version = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
    COFFRE_RETURN_IF_ERROR(st.Run());
    return RecordEvent(*conn_, now, tenant_id, "key-destroyed", version, "");
  });
  if (!written.ok()) {
    return written;
  }
  std::lock_guard lock(db_mu_);
  // Moves the zeroed pages out of the WAL into the database file (best effort: a reader in
  // another process may hold the WAL; the next checkpoint does it).
  (void)conn_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return Status::Ok();
}

Result<RewrappedKey> SqliteKeystore::RewrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                                   ByteView wrapped, ByteView aad) {
  COFFRE_ASSIGN_OR_RETURN(SecretBytes data_key, UnwrapDataKey(tenant_id, tenant_key_version, wrapped, aad));
  COFFRE_ASSIGN_OR_RETURN(uint32_t version, ActiveVersion(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, version));
  RewrappedKey out;
  out.tenant_key_version = version;
  COFFRE_ASSIGN_OR_RETURN(out.wrapped,
                          crypto::Seal(*tenant_key, data_key.Reveal(), internal::DataKeyAad(tenant_id, version, aad)));
  return out;
}

Status SqliteKeystore::ShredTenant(const std::string& tenant_id) {
  const UnixMillis now = Now();
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + " is already crypto-shredded");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("UPDATE access_keys SET enabled = 0 WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE tenants SET shredded = ? WHERE id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(now, tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    return RecordEvent(*conn_, now, tenant_id, "tenant-shredded", 0, "");
  });
  if (!written.ok()) {
    return written;
  }
  std::lock_guard lock(db_mu_);
  (void)conn_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");  // as in DestroyKeyVersion
  return Status::Ok();
}

Result<std::vector<KeyEvent>> SqliteKeystore::ListKeyEvents(const std::string& tenant_id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT id, at, tenant_id, event, version, detail "
                                                             "FROM key_events WHERE tenant_id = ? ORDER BY id"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<KeyEvent> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(KeyEvent{st.ColumnInt64(0), st.ColumnInt64(1), st.ColumnText(2), st.ColumnText(3),
                           static_cast<uint32_t>(st.ColumnInt64(4)), st.ColumnText(5)});
  }
  return out;
}

// --- admin API credentials ---------------------------------------------------------------

constexpr size_t kAdminTokenRandomBytes = 32;

crypto::Sha256Digest AdminTokenHash(std::string_view token) { return crypto::Sha256::Digest(AsBytes(token)); }

// Unpadded base64url, so a token needs no quoting in a header, a shell or a URL.
std::string Base64Url(ByteView data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') {
    s.pop_back();
  }
  for (char& c : s) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return s;
}

Result<AdminCredential> ReadAdminCredential(const Statement& st) {
  AdminCredential c;
  c.name = st.ColumnText(0);
  auto role = ParseAdminRole(st.ColumnTextView(1));
  if (!role) {
    return Status::Corruption("admin credential " + c.name + " has an unknown role");
  }
  c.role = *role;
  c.created = st.ColumnInt64(2);
  if (!st.ColumnIsNull(3)) {
    c.disabled = st.ColumnInt64(3);
  }
  return c;
}

Result<NewAdminCredential> SqliteKeystore::CreateAdminCredential(const std::string& name, AdminRole role) {
  if (!internal::IsValidTenantName(name)) {
    return Status::InvalidArgument("invalid credential name '" + name + "': expected [a-z0-9][a-z0-9._-]{0,62}");
  }
  NewAdminCredential out;
  out.credential.name = name;
  out.credential.role = role;
  out.credential.created = Now();
  SecretBytes random = SecretBytes::Random(kAdminTokenRandomBytes);
  out.token = std::string(kAdminTokenPrefix) + Base64Url(random.Reveal());
  const crypto::Sha256Digest hash = AdminTokenHash(out.token);
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO admin_credentials(name, role, "
                                                               "token_sha256, created) VALUES(?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(name, AdminRoleName(role), ByteView(hash), out.credential.created));
    Status inserted = st.Run();
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("admin credential " + name + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    return RecordEvent(*conn_, out.credential.created, "", "admin-credential-created", 0,
                       name + " (" + std::string(AdminRoleName(role)) + ")");
  });
  if (!written.ok()) {
    return written;
  }
  return out;
}

Result<std::vector<AdminCredential>> SqliteKeystore::ListAdminCredentials() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT name, role, created, disabled "
                                                             "FROM admin_credentials ORDER BY name"));
  std::vector<AdminCredential> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ReadAdminCredential(st));
    out.push_back(std::move(c));
  }
  return out;
}

Status SqliteKeystore::DisableAdminCredential(const std::string& name) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT disabled FROM admin_credentials "
                                                                 "WHERE name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(name));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("no admin credential named " + name);
      }
      if (!st.ColumnIsNull(0)) {
        return Status::FailedPrecondition("admin credential " + name + " is already disabled");
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE admin_credentials SET disabled = ? "
                                                               "WHERE name = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(now, name));
    COFFRE_RETURN_IF_ERROR(st.Run());
    return RecordEvent(*conn_, now, "", "admin-credential-disabled", 0, name);
  });
}

Result<AdminCredential> SqliteKeystore::AuthenticateAdminToken(std::string_view token) {
  const crypto::Sha256Digest hash = AdminTokenHash(token);
  std::optional<AdminCredential> match;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT name, role, created, disabled, token_sha256 "
                                                               "FROM admin_credentials"));
    // Every row is compared, whatever matched before: the time taken does not depend on which
    // stored hash (if any) the token's hash equals.
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      const bool equal = ConstantTimeEquals(hash, st.ColumnBlobView(4));
      COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ReadAdminCredential(st));
      if (equal) {
        match = std::move(c);
      }
    }
  }
  if (!match) {
    return Status::NotFound("unknown admin token");
  }
  if (match->disabled) {
    return Status::PermissionDenied("admin credential " + match->name + " is disabled");
  }
  return *std::move(match);
}

// --- dual control approvals ---------------------------------------------------------------

constexpr std::string_view kApprovalColumns =
    "id, operation, tenant_id, version, requested_by, requested, expires, approved_by, approved, used";

Result<Approval> ReadApproval(const Statement& st) {
  Approval a;
  a.id = st.ColumnText(0);
  auto op = ParseGuardedOperation(st.ColumnTextView(1));
  if (!op) {
    return Status::Corruption("approval " + a.id + " names an unknown operation");
  }
  a.operation = *op;
  a.tenant_id = st.ColumnText(2);
  a.version = static_cast<uint32_t>(st.ColumnInt64(3));
  a.requested_by = st.ColumnText(4);
  a.requested = st.ColumnInt64(5);
  a.expires = st.ColumnInt64(6);
  if (!st.ColumnIsNull(7)) {
    a.approved_by = st.ColumnText(7);
  }
  if (!st.ColumnIsNull(8)) {
    a.approved = st.ColumnInt64(8);
  }
  if (!st.ColumnIsNull(9)) {
    a.used = st.ColumnInt64(9);
  }
  return a;
}

// Inside the caller's transaction.
Result<Approval> LoadApproval(Connection& conn, const std::string& id) {
  COFFRE_ASSIGN_OR_RETURN(
      Statement st, conn.PrepareCached("SELECT " + std::string(kApprovalColumns) + " FROM approvals WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no approval " + id);
  }
  return ReadApproval(st);
}

// PermissionDenied unless `name` is an enabled credential of the admin role (auditors approve
// nothing: separation of duties).
Status CheckEnabledAdmin(Connection& conn, const std::string& name) {
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("SELECT role, disabled FROM admin_credentials WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(name));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::PermissionDenied("no admin credential named " + name);
  }
  if (!st.ColumnIsNull(1)) {
    return Status::PermissionDenied("admin credential " + name + " is disabled");
  }
  if (st.ColumnTextView(0) != AdminRoleName(AdminRole::kAdmin)) {
    return Status::PermissionDenied("credential " + name +
                                    " is an auditor credential; only admin credentials take "
                                    "part in dual control");
  }
  return Status::Ok();
}

std::string DescribeApproval(const Approval& a) {
  std::string out = std::string(GuardedOperationName(a.operation));
  if (a.operation == GuardedOperation::kDestroyKeyVersion) {
    out += " version " + std::to_string(a.version);
  }
  return out;
}

Result<Approval> SqliteKeystore::RequestApproval(const std::string& id, GuardedOperation operation,
                                                 const std::string& tenant_id, uint32_t version,
                                                 const std::string& requested_by, int64_t ttl_ms) {
  COFFRE_RETURN_IF_ERROR(CheckApprovalTarget(operation, tenant_id, version));
  const bool for_tenant = operation != GuardedOperation::kRotateRootKey;
  if (ttl_ms <= 0) {
    return Status::InvalidArgument("an approval's lifetime must be positive");
  }
  Approval a;
  a.id = id;
  a.operation = operation;
  a.tenant_id = tenant_id;
  a.version = version;
  a.requested_by = requested_by;
  a.requested = Now();
  a.expires = a.requested + ttl_ms;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(*conn_, requested_by));
    if (for_tenant) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(*conn_, tenant_id));
      if (shredded) {
        return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("INSERT INTO approvals(id, operation, tenant_id, "
                                                               "version, requested_by, requested, expires) "
                                                               "VALUES(?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(
        st.BindAll(a.id, GuardedOperationName(operation), tenant_id, version, requested_by, a.requested, a.expires));
    Status inserted = st.Run();
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("approval " + id + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    return RecordEvent(*conn_, a.requested, tenant_id, "approval-requested", version,
                       a.id + " " + DescribeApproval(a) + " by " + requested_by);
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Result<Approval> SqliteKeystore::GetApproval(const std::string& id) {
  std::lock_guard lock(db_mu_);
  return LoadApproval(*conn_, id);
}

Result<std::vector<Approval>> SqliteKeystore::ListApprovals(size_t limit) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kApprovalColumns) +
                                                             " FROM approvals ORDER BY requested DESC, id LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX))));
  std::vector<Approval> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    COFFRE_ASSIGN_OR_RETURN(Approval a, ReadApproval(st));
    out.push_back(std::move(a));
  }
  return out;
}

Result<Approval> SqliteKeystore::GrantApproval(const std::string& id, const std::string& approved_by) {
  const UnixMillis now = Now();
  Approval a;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(a, LoadApproval(*conn_, id));
    COFFRE_RETURN_IF_ERROR(CheckGrantable(a, approved_by, now));
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(*conn_, approved_by));
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE approvals SET approved_by = ?, approved = ? "
                                                               "WHERE id = ? AND approved_by IS NULL"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(approved_by, now, id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    a.approved_by = approved_by;
    a.approved = now;
    return RecordEvent(
        *conn_, now, a.tenant_id, "approval-granted", a.version,
        id + " " + DescribeApproval(a) + " by " + approved_by + " (requested by " + a.requested_by + ")");
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Result<Approval> SqliteKeystore::UseApproval(const std::string& id, GuardedOperation operation,
                                             const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  Approval a;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(a, LoadApproval(*conn_, id));
    if (a.operation != operation || a.tenant_id != tenant_id || a.version != version) {
      return Status::InvalidArgument("approval " + id + " approves " + DescribeApproval(a) +
                                     (a.tenant_id.empty() ? std::string() : " of tenant " + a.tenant_id) +
                                     ", not this operation");
    }
    const ApprovalState state = a.StateAt(now);
    if (state != ApprovalState::kApproved) {
      return Status::FailedPrecondition(
          "approval " + id + " is " + std::string(ApprovalStateName(state)) +
          (state == ApprovalState::kPending ? ": a second admin must grant it first" : ": request a new one"));
    }
    // Both people must still be trusted when the operation runs.
    for (const std::string& who : {a.requested_by, *a.approved_by}) {
      if (Status admin = CheckEnabledAdmin(*conn_, who); !admin.ok()) {
        return Status::FailedPrecondition("approval " + id + " no longer counts: " + admin.message());
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("UPDATE approvals SET used = ? WHERE id = ? AND used IS NULL"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(now, id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    a.used = now;
    return RecordEvent(*conn_, now, a.tenant_id, "approval-used", a.version, id + " " + DescribeApproval(a));
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Status SqliteKeystore::ReleaseApproval(const std::string& id) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(Approval a, LoadApproval(*conn_, id));
    if (!a.used) {
      return Status::FailedPrecondition("approval " + id + " is not in use");
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("UPDATE approvals SET used = NULL WHERE id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    return RecordEvent(*conn_, now, a.tenant_id, "approval-released", a.version, id + " " + DescribeApproval(a));
  });
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

std::string_view AdminRoleName(AdminRole role) { return role == AdminRole::kAuditor ? "auditor" : "admin"; }

std::optional<AdminRole> ParseAdminRole(std::string_view name) {
  if (name == "admin") {
    return AdminRole::kAdmin;
  }
  if (name == "auditor") {
    return AdminRole::kAuditor;
  }
  return std::nullopt;
}

std::string_view GuardedOperationName(GuardedOperation op) {
  switch (op) {
    case GuardedOperation::kDestroyKeyVersion:
      return "tenant_key.destroy";
    case GuardedOperation::kShredTenant:
      return "tenant.shred";
    case GuardedOperation::kRotateRootKey:
      return "root_key.rotate";
  }
  return "unknown";
}

std::optional<GuardedOperation> ParseGuardedOperation(std::string_view name) {
  for (GuardedOperation op :
       {GuardedOperation::kDestroyKeyVersion, GuardedOperation::kShredTenant, GuardedOperation::kRotateRootKey}) {
    if (GuardedOperationName(op) == name) {
      return op;
    }
  }
  return std::nullopt;
}

std::string_view ApprovalStateName(ApprovalState state) {
  switch (state) {
    case ApprovalState::kPending:
      return "pending";
    case ApprovalState::kApproved:
      return "approved";
    case ApprovalState::kUsed:
      return "used";
    case ApprovalState::kExpired:
      return "expired";
  }
  return "unknown";
}

ApprovalState Approval::StateAt(UnixMillis now) const {
  if (used) {
    return ApprovalState::kUsed;
  }
  if (now >= expires) {
    return ApprovalState::kExpired;
  }
  return approved ? ApprovalState::kApproved : ApprovalState::kPending;
}

Status CheckApprovalTarget(GuardedOperation operation, const std::string& tenant_id, uint32_t version) {
  const bool for_tenant = operation != GuardedOperation::kRotateRootKey;
  if (for_tenant == tenant_id.empty()) {
    return Status::InvalidArgument(std::string(GuardedOperationName(operation)) +
                                   (for_tenant ? " needs a tenant" : " takes no tenant"));
  }
  if ((operation == GuardedOperation::kDestroyKeyVersion) != (version >= 1)) {
    return Status::InvalidArgument(operation == GuardedOperation::kDestroyKeyVersion
                                       ? "tenant_key.destroy needs the key version (1 or more)"
                                       : std::string(GuardedOperationName(operation)) + " takes no key version");
  }
  return Status::Ok();
}

Status CheckGrantable(const Approval& approval, const std::string& approver, UnixMillis now) {
  const ApprovalState state = approval.StateAt(now);
  if (state != ApprovalState::kPending) {
    return Status::FailedPrecondition("approval " + approval.id + " is " + std::string(ApprovalStateName(state)) +
                                      ", not pending");
  }
  if (approver == approval.requested_by) {
    return Status::PermissionDenied("approval " + approval.id + " was requested by " + approver +
                                    "; a second, different admin credential must grant it");
  }
  return Status::Ok();
}

std::string NewApprovalId() {
  SecretBytes random = SecretBytes::Random(8);
  return "apr-" + HexEncode(random.Reveal());
}

namespace internal {
Status MigrateKeystoreSchema(Connection& conn) { return db::Migrate(conn, kMigrations); }
}  // namespace internal

Result<std::unique_ptr<Keystore>> Keystore::Open(const std::string& path, SecretBytes root_key, const Clock& clock) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(path, db::OpenMode::kReadWriteCreate));
  COFFRE_RETURN_IF_ERROR(internal::MigrateKeystoreSchema(*conn));
  COFFRE_RETURN_IF_ERROR(CheckRootKey(*conn, root_key));
  // Deleted rows (destroyed key versions, shredded tenants, deleted access keys) are overwritten
  // with zeros rather than left in free pages.
  COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete = ON"));
  COFFRE_ASSIGN_OR_RETURN(int64_t data_version, DataVersion(*conn));
  return std::unique_ptr<Keystore>(new SqliteKeystore(std::move(conn), std::move(root_key), clock, data_version));
}

}  // namespace coffre::keystore
