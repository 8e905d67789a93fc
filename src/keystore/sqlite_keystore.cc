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

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
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
#include "keystore/rows.h"

namespace coffre::keystore {
namespace {

using db::Connection;
using db::Statement;
using db::Transaction;
using KeyPtr = std::shared_ptr<const SecretBytes>;
using internal::AccessKeyRow;
using internal::AdminCredentialRow;
using internal::ApprovalRow;
using internal::LoggableId;
using internal::TenantKeyRow;
using internal::TenantRow;

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
    // Authenticated rows (rows.h): a generation and a MAC under a key derived from the root key.
    // The MACs and the token MACs are written by Keystore::Open, which holds the root key.
    R"sql(
ALTER TABLE tenants ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN mac BLOB;
ALTER TABLE tenant_keys ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenant_keys ADD COLUMN mac BLOB;
ALTER TABLE access_keys ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN mac BLOB;
ALTER TABLE admin_credentials RENAME COLUMN token_sha256 TO token_mac;
ALTER TABLE admin_credentials ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE admin_credentials ADD COLUMN mac BLOB;
ALTER TABLE approvals ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN mac BLOB;
)sql",
    // Dual control guards admin credential creation too. SQLite cannot alter a CHECK constraint,
    // so the table is copied; rows keep their gen and MAC (the MAC does not cover the table).
    R"sql(
CREATE TABLE approvals_new(
  id TEXT NOT NULL PRIMARY KEY,
  operation TEXT NOT NULL CHECK(operation IN ('tenant_key.destroy', 'tenant.shred', 'root_key.rotate',
                                              'admin_credential.create')),
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  requested INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  approved_by TEXT,
  approved INTEGER,
  used INTEGER,
  gen INTEGER NOT NULL DEFAULT 0,
  mac BLOB,
  CHECK(approved_by IS NULL OR approved_by <> requested_by)
) WITHOUT ROWID;
INSERT INTO approvals_new(id, operation, tenant_id, version, requested_by, requested, expires, approved_by,
                          approved, used, gen, mac)
  SELECT id, operation, tenant_id, version, requested_by, requested, expires, approved_by, approved, used, gen, mac
  FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_by_time ON approvals(requested, id);
)sql",
};

constexpr std::string_view kCheckName = internal::kRootKeyCheckName;
constexpr UnixMillis kCacheTtl = 60'000;
constexpr UnixMillis kLastUsedFlushInterval = 60'000;

constexpr std::string_view kShreddedMessage =
    " was crypto-shredded: its keys are destroyed and its objects can no longer be decrypted";

Tenant ToTenant(const TenantRow& r) {
  Tenant t;
  t.id = r.id;
  t.name = r.name;
  t.created = r.created;
  t.shredded = r.shredded;
  return t;
}

AccessKey ToAccessKey(const AccessKeyRow& r) {
  AccessKey k;
  k.access_key_id = r.access_key_id;
  k.tenant_id = r.tenant_id;
  k.enabled = r.enabled;
  k.created = r.created;
  k.last_used = r.last_used;
  return k;
}

Result<AdminCredential> ToAdminCredential(const AdminCredentialRow& r) {
  AdminCredential c;
  c.name = r.name;
  auto role = ParseAdminRole(r.role);
  if (!role) {
    return Status::Corruption("admin credential " + LoggableId(r.name) + " has an unknown role");
  }
  c.role = *role;
  c.created = r.created;
  c.disabled = r.disabled;
  return c;
}

Result<Approval> ToApproval(const ApprovalRow& r) {
  Approval a;
  a.id = r.id;
  auto op = ParseGuardedOperation(r.operation);
  if (!op) {
    return Status::Corruption("approval " + LoggableId(r.id) + " names an unknown operation");
  }
  a.operation = *op;
  a.tenant_id = r.tenant_id;
  a.version = r.version;
  a.requested_by = r.requested_by;
  a.requested = r.requested;
  a.expires = r.expires;
  a.approved_by = r.approved_by;
  a.approved = r.approved;
  a.used = r.used;
  return a;
}

// The keys under which this process remembers the generations it saw (SqliteKeystore::Check).
std::string TenantRowKey(std::string_view id) { return "t:" + std::string(id); }
std::string TenantKeyRowKey(std::string_view id, uint32_t v) {
  return "k:" + std::string(id) + "/" + std::to_string(v);
}
std::string AccessKeyRowKey(std::string_view id) { return "a:" + std::string(id); }
std::string AdminRowKey(std::string_view name) { return "c:" + std::string(name); }
std::string ApprovalRowKey(std::string_view id) { return "p:" + std::string(id); }

// Appends a key event inside the caller's transaction.
Status RecordEvent(Connection& conn, UnixMillis at, std::string_view tenant_id, std::string_view event,
                   uint32_t version, std::string_view detail) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached("INSERT INTO key_events(at, tenant_id, event, version, "
                                                           "detail) VALUES(?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(at, tenant_id, event, version, detail));
  return st.Run();
}

constexpr std::string_view kRotatedMessage =
    "the keystore's root key was rotated (coffre keystore rotate-root) after this process started; restart it with "
    "the new root key";
constexpr std::string_view kIntegrityMessage =
    " fails its integrity check: it was altered or written without the root key, and is refused";

class SqliteKeystore final : public Keystore {
 public:
  SqliteKeystore(std::unique_ptr<Connection> conn, internal::KeystoreKeys keys, const Clock& clock,
                 int64_t data_version)
      : clock_(clock),
        keys_(std::move(keys)),
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

  Status CheckIntegrity() override;
  uint64_t IntegrityFailures() const override { return integrity_failures_.load(); }

  Result<DataKey> NewDataKey(const std::string& tenant_id, ByteView aad) override;
  Result<SecretBytes> UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version, ByteView wrapped,
                                    ByteView aad) override;

 private:
  enum class RowCheck { kOk, kForged, kReplayed };
  // Whether `row` verifies under the row key and is no older than a generation of the same row
  // this process saw before (an older valid state written back); records its generation.
  template <typename Row>
  RowCheck Check(const std::string& row_key, const Row& row) {
    if (!internal::RowIntact(keys_.row_mac, row)) {
      return RowCheck::kForged;
    }
    std::lock_guard lock(cache_mu_);
    int64_t& seen = seen_gen_[row_key];
    if (row.gen < seen) {
      return RowCheck::kReplayed;
    }
    seen = row.gen;
    return RowCheck::kOk;
  }
  // Notes a generation this process is writing (db_mu_ held); it counts as seen once the
  // transaction committed (PublishSeen), so that a rolled-back write cannot make the row's real,
  // older state look replayed.
  void Saw(const std::string& row_key, int64_t gen) { pending_seen_.emplace_back(row_key, gen); }
  void PublishSeen() {
    std::lock_guard lock(cache_mu_);
    for (const auto& [key, gen] : pending_seen_) {
      int64_t& seen = seen_gen_[key];
      seen = std::max(seen, gen);
    }
    pending_seen_.clear();
  }
  // The generation a changed row gets: past both the stored one and any this process saw.
  int64_t NextGen(const std::string& row_key, int64_t stored) {
    std::lock_guard lock(cache_mu_);
    auto it = seen_gen_.find(row_key);
    return std::max(stored, it == seen_gen_.end() ? 0 : it->second) + 1;
  }
  // A refused row: counted for CheckIntegrity, logged by its identity (never its contents), and
  // answered with `as`.
  // db_mu_ held for both.
  Status Refuse(const std::string& what, RowCheck why, Status as);
  // Whether the check value no longer opens under this process's keys (another process rotated
  // the root key).
  bool RootKeyRotatedLocked();

  // Rows read inside the caller's transaction (db_mu_ held), checked: NotFound if absent; a row
  // that fails Check is refused as the comment of each says.
  Result<TenantRow> LoadTenantRow(const std::string& tenant_id);  // refused as NotFound
  // The tenant's shredded time: NotFound if unknown (or refused).
  Result<std::optional<UnixMillis>> TenantShredded(const std::string& tenant_id);
  // PermissionDenied unless `name` is an enabled, intact credential of the admin role.
  Status CheckEnabledAdmin(const std::string& name, UnixMillis* created = nullptr);
  Result<ApprovalRow> LoadApprovalRow(const std::string& id);  // refused as PermissionDenied
  // The version's row, or nullopt if absent; Corruption (refused) if it fails its check.
  Result<std::optional<TenantKeyRow>> LoadTenantKeyRow(const std::string& tenant_id, uint32_t version);

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
  // Derived from the root key, which this object does not keep.
  const internal::KeystoreKeys keys_;
  std::atomic<uint64_t> integrity_failures_{0};

  std::mutex db_mu_;
  std::unique_ptr<Connection> conn_;                           // guarded by db_mu_
  int64_t data_version_ = 0;                                   // guarded by db_mu_
  std::vector<std::pair<std::string, int64_t>> pending_seen_;  // guarded by db_mu_

  std::mutex cache_mu_;  // guards everything below
  std::map<std::pair<std::string, uint32_t>, CachedKey> tenant_keys_;
  std::map<std::string, CachedActive> active_versions_;
  std::map<std::string, CachedAccessKey> access_keys_;
  std::map<std::string, UnixMillis> pending_last_used_;
  UnixMillis last_flush_ = 0;
  bool flushing_ = false;
  uint64_t epoch_ = 0;
  UnixMillis last_revalidate_ = 0;
  // The highest generation seen of each authenticated row, by row key (TenantRowKey...).
  std::map<std::string, int64_t> seen_gen_;
};

bool SqliteKeystore::RootKeyRotatedLocked() {
  auto st = conn_->PrepareCached("SELECT value FROM meta WHERE name = ?");
  if (!st.ok() || !st->BindAll(kCheckName).ok()) {
    return false;
  }
  auto row = st->Step();
  if (!row.ok() || !*row) {
    return false;
  }
  auto opened = crypto::Open(keys_.wrap, st->ColumnBlobView(0), AsBytes(internal::kCheckAadV2));
  return !(opened.ok() && AsChars(*opened) == internal::kCheckPlaintext);
}

Status SqliteKeystore::Refuse(const std::string& what, RowCheck why, Status as) {
  if (why == RowCheck::kForged && RootKeyRotatedLocked()) {
    // Every row fails under the old keys once the root key was rotated by another process: that
    // is not a forgery, and only a restart with the new key helps.
    return Status::FailedPrecondition(std::string(kRotatedMessage));
  }
  integrity_failures_.fetch_add(1);
  if (why == RowCheck::kReplayed) {
    spdlog::error("keystore: {} was written back in an older state than this process saw (replayed row); refused",
                  what);
  } else {
    spdlog::error("keystore: {}{}", what, kIntegrityMessage);
  }
  return as;
}

Result<TenantRow> SqliteKeystore::LoadTenantRow(const std::string& tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kTenantColumns) +
                                                             " FROM tenants WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no tenant with id " + tenant_id);
  }
  TenantRow r = internal::ReadTenantRow(st);
  if (RowCheck c = Check(TenantRowKey(r.id), r); c != RowCheck::kOk) {
    return Refuse("tenant " + LoggableId(r.id), c, Status::NotFound("no tenant with id " + tenant_id));
  }
  return r;
}

Result<std::optional<UnixMillis>> SqliteKeystore::TenantShredded(const std::string& tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(TenantRow r, LoadTenantRow(tenant_id));
  return std::optional<UnixMillis>(r.shredded);
}

Result<std::optional<TenantKeyRow>> SqliteKeystore::LoadTenantKeyRow(const std::string& tenant_id, uint32_t version) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? AND version = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<TenantKeyRow>();
  }
  TenantKeyRow r = internal::ReadTenantKeyRow(st);
  if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
    const std::string what = "key version " + std::to_string(version) + " of tenant " + LoggableId(tenant_id);
    return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
  }
  return std::optional<TenantKeyRow>(std::move(r));
}

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
    pending_seen_.clear();
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    COFFRE_RETURN_IF_ERROR(fn());
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    PublishSeen();
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
                          crypto::Seal(keys_.wrap, key->Reveal(), internal::TenantKeyAad(t.id, kFirstVersion)));
  {
    std::lock_guard lock(db_mu_);
    pending_seen_.clear();
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    {
      TenantRow row{t.id, t.name, t.created, std::nullopt, 1, {}};
      Status s = internal::InsertRow(*conn_, keys_.row_mac, row);
      if (s.code() == StatusCode::kAlreadyExists) {
        return Status::AlreadyExists("tenant " + name + " already exists");
      }
      COFFRE_RETURN_IF_ERROR(s);
      Saw(TenantRowKey(t.id), row.gen);
    }
    {
      TenantKeyRow row{t.id, kFirstVersion, wrapped, "active", t.created, std::nullopt, 1, {}};
      COFFRE_RETURN_IF_ERROR(internal::InsertRow(*conn_, keys_.row_mac, row));
      Saw(TenantKeyRowKey(t.id, kFirstVersion), row.gen);
    }
    COFFRE_RETURN_IF_ERROR(RecordEvent(*conn_, t.created, t.id, "tenant-created", kFirstVersion, t.name));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    PublishSeen();
  }
  const UnixMillis now = Now();
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{t.id, kFirstVersion}] = CachedKey{std::move(key), now, epoch_};
  active_versions_[t.id] = CachedActive{kFirstVersion, now, epoch_};
  return t;
}

Result<std::vector<Tenant>> SqliteKeystore::ListTenants() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kTenantColumns) +
                                                             " FROM tenants ORDER BY name"));
  std::vector<Tenant> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    TenantRow r = internal::ReadTenantRow(st);
    if (RowCheck c = Check(TenantRowKey(r.id), r); c != RowCheck::kOk) {
      (void)Refuse("tenant " + LoggableId(r.id), c, Status::Ok());  // left out of the list
      continue;
    }
    out.push_back(ToTenant(r));
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
  TenantRow r = internal::ReadTenantRow(st);
  if (RowCheck c = Check(TenantRowKey(r.id), r); c != RowCheck::kOk) {
    return Refuse("tenant " + LoggableId(r.id), c, Status::NotFound("no tenant " + what));
  }
  return ToTenant(r);
}

Result<Tenant> SqliteKeystore::GetTenantByName(const std::string& name) {
  return QueryTenant("SELECT " + std::string(internal::kTenantColumns) + " FROM tenants WHERE name = ?", name,
                     "named " + name);
}

Result<Tenant> SqliteKeystore::GetTenant(const std::string& tenant_id) {
  return QueryTenant("SELECT " + std::string(internal::kTenantColumns) + " FROM tenants WHERE id = ?", tenant_id,
                     "with id " + tenant_id);
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
                            crypto::Seal(keys_.wrap, secret->Reveal(), internal::AccessKeySecretAad(id, tenant_id)));
    pending_seen_.clear();
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    AccessKeyRow row{id, tenant_id, sealed, true, out.key.created, std::nullopt, 1, {}};
    Status s = internal::InsertRow(*conn_, keys_.row_mac, row);
    if (s.code() == StatusCode::kAlreadyExists && attempt < 3) {
      continue;
    }
    COFFRE_RETURN_IF_ERROR(s);
    Saw(AccessKeyRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(RecordEvent(*conn_, out.key.created, tenant_id, "access-key-created", 0, id));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    PublishSeen();
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
                            conn_->PrepareCached("SELECT " + std::string(internal::kAccessKeyColumns) +
                                                 " FROM access_keys WHERE tenant_id = ? ORDER BY access_key_id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      AccessKeyRow r = internal::ReadAccessKeyRow(st);
      AccessKey k = ToAccessKey(r);
      if (RowCheck c = Check(AccessKeyRowKey(r.access_key_id), r); c != RowCheck::kOk) {
        // Listed (so that it can be deleted), but as what it is treated as: disabled.
        (void)Refuse("access key " + LoggableId(r.access_key_id), c, Status::Ok());
        k.enabled = false;
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
    // One snapshot for the key and its tenant.
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, Transaction::Kind::kDeferred));
    AccessKeyRow r;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kAccessKeyColumns) +
                                                                 " FROM access_keys WHERE access_key_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("unknown access key " + access_key_id);
      }
      r = internal::ReadAccessKeyRow(st);
    }
    if (RowCheck c = Check(AccessKeyRowKey(access_key_id), r); c != RowCheck::kOk) {
      return Refuse("access key " + LoggableId(access_key_id), c,
                    Status::PermissionDenied("access key " + access_key_id + std::string(kIntegrityMessage)));
    }
    // The tenant's own row must be intact and live too: an access-key row of a shredded tenant
    // written back from an older copy is still refused while the tenant's row says shredded.
    auto tenant = LoadTenantRow(r.tenant_id);
    if (!tenant.ok()) {
      return Status::PermissionDenied("access key " + access_key_id + " belongs to no valid tenant");
    }
    if (tenant->shredded) {
      return Status::PermissionDenied("access key " + access_key_id + " belongs to a crypto-shredded tenant");
    }
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    entry.key = ToAccessKey(r);
    sealed = std::move(r.secret);
  }
  // The aad names the key id and tenant: a secret copied onto another row, or a row moved to
  // another tenant, does not open.
  auto secret =
      crypto::OpenSecret(keys_.wrap, sealed, internal::AccessKeySecretAad(access_key_id, entry.key.tenant_id));
  if (!secret.ok()) {
    return UnlessRootKeyRotated(
        Status::Corruption("the stored secret of access key " + access_key_id + " does not open under the root key"));
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
  return RootKeyRotatedLocked() ? Status::FailedPrecondition(std::string(kRotatedMessage)) : failed;
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
    COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(tenant_id, version));
    if (!row) {
      {
        std::lock_guard cache_lock(cache_mu_);
        tenant_keys_.erase({tenant_id, version});  // destroyed elsewhere: forget it here too
      }
      auto shredded = TenantShredded(tenant_id);
      if (shredded.ok() && shredded->has_value()) {
        return Status::PermissionDenied("tenant " + tenant_id + std::string(kShreddedMessage));
      }
      return Status::NotFound("tenant " + tenant_id + " has no key version " + std::to_string(version));
    }
    wrapped = std::move(row->wrapped_key);
  }
  auto key = crypto::OpenSecret(keys_.wrap, wrapped, internal::TenantKeyAad(tenant_id, version));
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
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kTenantKeyColumns) +
                                                               " FROM tenant_keys WHERE tenant_id = ? AND state = "
                                                               "'active'"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      auto shredded = TenantShredded(tenant_id);
      if (shredded.ok() && shredded->has_value()) {
        return Status::PermissionDenied("tenant " + tenant_id + std::string(kShreddedMessage));
      }
      return Status::NotFound("tenant " + tenant_id + " has no active key");
    }
    TenantKeyRow r = internal::ReadTenantKeyRow(st);
    if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
      const std::string what = "key version " + std::to_string(r.version) + " of tenant " + LoggableId(tenant_id);
      return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
    }
    version = r.version;
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
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded && enabled) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage) +
                                        "; its access keys cannot be enabled");
    }
    AccessKeyRow r;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT " + std::string(internal::kAccessKeyColumns) +
                                                   " FROM access_keys WHERE access_key_id = ? AND tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id, tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("the tenant has no access key " + access_key_id);
      }
      r = internal::ReadAccessKeyRow(st);
    }
    if (RowCheck c = Check(AccessKeyRowKey(access_key_id), r); c != RowCheck::kOk) {
      // Disabling a failing row is allowed (it makes it harmless, and valid again); enabling it
      // would launder whatever was written into it.
      Status refused = Refuse("access key " + LoggableId(access_key_id), c,
                              Status::Corruption("access key " + access_key_id + std::string(kIntegrityMessage) +
                                                 "; disable or delete it"));
      if (enabled) {
        return refused;
      }
    }
    r.enabled = enabled;
    r.gen = NextGen(AccessKeyRowKey(access_key_id), r.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, r));
    Saw(AccessKeyRowKey(access_key_id), r.gen);
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
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage) +
                                        "; it cannot get a new key");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st, conn_->PrepareCached("SELECT coalesce(max(version), 0) FROM tenant_keys WHERE tenant_id = ?"));
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
    COFFRE_ASSIGN_OR_RETURN(Bytes wrapped,
                            crypto::Seal(keys_.wrap, key.Reveal(), internal::TenantKeyAad(tenant_id, version)));
    std::optional<TenantKeyRow> active;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT " + std::string(internal::kTenantKeyColumns) +
                                                   " FROM tenant_keys WHERE tenant_id = ? AND state = 'active'"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        active = internal::ReadTenantKeyRow(st);
      }
    }
    if (active) {
      const std::string row_key = TenantKeyRowKey(tenant_id, active->version);
      if (RowCheck c = Check(row_key, *active); c != RowCheck::kOk) {
        const std::string what =
            "key version " + std::to_string(active->version) + " of tenant " + LoggableId(tenant_id);
        return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
      }
      active->state = "retired";
      active->gen = NextGen(row_key, active->gen);
      COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, *active));
      Saw(row_key, active->gen);
    }
    {
      TenantKeyRow row{tenant_id, version, wrapped, "active", now, std::nullopt, 1, {}};
      COFFRE_RETURN_IF_ERROR(internal::InsertRow(*conn_, keys_.row_mac, row));
      Saw(TenantKeyRowKey(tenant_id, version), row.gen);
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
  COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
  (void)shredded;
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? ORDER BY version"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<KeyVersion> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    TenantKeyRow r = internal::ReadTenantKeyRow(st);
    if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
      (void)Refuse("key version " + std::to_string(r.version) + " of tenant " + LoggableId(tenant_id), c,
                   Status::Ok());  // left out of the list
      continue;
    }
    out.push_back(KeyVersion{r.version, r.state == "active", r.created, r.destroying.has_value()});
  }
  return out;
}

Status SqliteKeystore::SetKeyVersionDestroying(const std::string& tenant_id, uint32_t version, bool destroying) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(tenant_id, version));
    if (!row) {
      return Status::NotFound("the tenant has no key version " + std::to_string(version));
    }
    if (destroying && row->state == "active") {
      return Status::FailedPrecondition("key version " + std::to_string(version) + " is the active version");
    }
    row->destroying = destroying ? std::optional<int64_t>(now) : std::nullopt;
    const std::string row_key = TenantKeyRowKey(tenant_id, version);
    row->gen = NextGen(row_key, row->gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, *row));
    Saw(row_key, row->gen);
    return Status::Ok();
  });
}

Result<bool> SqliteKeystore::IsKeyVersionDestroying(const std::string& tenant_id, uint32_t version) {
  // Read from the database, never the cache: the fence works only if a writer that commits after
  // the mark sees it (ObjectService::KeepClearOfDestruction).
  std::lock_guard lock(db_mu_);
  auto row = LoadTenantKeyRow(tenant_id, version);
  if (!row.ok()) {
    // A row that fails its check is taken as marked: the writer re-wraps under the active
    // version rather than trusting a version whose destroy mark may have been cleared by hand.
    return row.status().code() == StatusCode::kCorruption ? Result<bool>(true) : Result<bool>(row.status());
  }
  return !row->has_value() || (*row)->destroying.has_value();
}

Status SqliteKeystore::DestroyKeyVersion(const std::string& tenant_id, uint32_t version) {
  const UnixMillis now = Now();
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    {
      // A row that fails its check is refused here: its state cannot be trusted to say it is not
      // the version the tenant's data is wrapped under.
      COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(tenant_id, version));
      if (!row) {
        return Status::NotFound("the tenant has no key version " + std::to_string(version));
      }
      if (row->state == "active") {
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
    COFFRE_ASSIGN_OR_RETURN(TenantRow tenant, LoadTenantRow(tenant_id));
    if (tenant.shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + " is already crypto-shredded");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      // Every access key of the tenant is disabled, and authenticated as such (even one whose
      // row failed its check: disabled is the harmless state).
      std::vector<AccessKeyRow> rows;
      {
        COFFRE_ASSIGN_OR_RETURN(Statement st,
                                conn_->PrepareCached("SELECT " + std::string(internal::kAccessKeyColumns) +
                                                     " FROM access_keys WHERE tenant_id = ?"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
        while (true) {
          COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
          if (!row) {
            break;
          }
          rows.push_back(internal::ReadAccessKeyRow(st));
        }
      }
      for (auto& r : rows) {
        const std::string row_key = AccessKeyRowKey(r.access_key_id);
        r.enabled = false;
        r.gen = NextGen(row_key, r.gen);
        COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, r));
        Saw(row_key, r.gen);
      }
    }
    tenant.shredded = now;
    tenant.gen = NextGen(TenantRowKey(tenant_id), tenant.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, tenant));
    Saw(TenantRowKey(tenant_id), tenant.gen);
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

// What is stored for a token: a MAC of its SHA-256 under the keystore's admin token key. A row
// written by someone without that key matches no token.
Bytes StoredTokenMac(const SecretBytes& token_key, std::string_view token) {
  crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
  Bytes mac = internal::AdminTokenMac(token_key, digest);
  sodium_memzero(digest.data(), digest.size());
  return mac;
}

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

Result<NewAdminCredential> SqliteKeystore::CreateAdminCredential(const std::string& name, AdminRole role) {
  if (!internal::IsValidTenantName(name)) {
    return Status::InvalidArgument("invalid credential name '" + name + "': expected [a-z0-9][a-z0-9._-]{0,62}");
  }
  NewAdminCredential out;
  out.credential.name = name;
  out.credential.role = role;
  out.credential.created = Now();
  {
    SecretBytes random = SecretBytes::Random(kAdminTokenRandomBytes);
    std::string encoded = Base64Url(random.Reveal());
    out.token.reserve(kAdminTokenPrefix.size() + encoded.size());
    out.token.append(kAdminTokenPrefix);
    out.token.append(encoded);
    WipeString(encoded);
  }
  AdminCredentialRow row{name,
                         std::string(AdminRoleName(role)),
                         StoredTokenMac(keys_.admin_token, out.token),
                         out.credential.created,
                         std::nullopt,
                         1,
                         {}};
  Status written = WriteAndInvalidate([&]() -> Status {
    Status inserted = internal::InsertRow(*conn_, keys_.row_mac, row);
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("admin credential " + name + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    Saw(AdminRowKey(name), row.gen);
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
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn_->PrepareCached("SELECT " + std::string(internal::kAdminCredentialColumns) +
                                               " FROM admin_credentials ORDER BY name"));
  std::vector<AdminCredential> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    AdminCredentialRow r = internal::ReadAdminCredentialRow(st);
    COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ToAdminCredential(r));
    if (RowCheck check = Check(AdminRowKey(r.name), r); check != RowCheck::kOk) {
      // Listed (so that it can be disabled), as what it is treated as: disabled.
      (void)Refuse("admin credential " + LoggableId(r.name), check, Status::Ok());
      c.disabled = c.disabled.value_or(0);
    }
    out.push_back(std::move(c));
  }
  return out;
}

Status SqliteKeystore::DisableAdminCredential(const std::string& name) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    AdminCredentialRow r;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT " + std::string(internal::kAdminCredentialColumns) +
                                                   " FROM admin_credentials WHERE name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(name));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("no admin credential named " + name);
      }
      r = internal::ReadAdminCredentialRow(st);
    }
    const std::string row_key = AdminRowKey(name);
    const RowCheck check = Check(row_key, r);
    if (check != RowCheck::kOk) {
      // Disabling a failing row makes it harmless and valid again: the way to clear a forgery.
      (void)Refuse("admin credential " + LoggableId(name), check, Status::Ok());
    } else if (r.disabled) {
      return Status::FailedPrecondition("admin credential " + name + " is already disabled");
    }
    r.disabled = now;
    r.gen = NextGen(row_key, r.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, r));
    Saw(row_key, r.gen);
    return RecordEvent(*conn_, now, "", "admin-credential-disabled", 0, name);
  });
}

Result<AdminCredential> SqliteKeystore::AuthenticateAdminToken(std::string_view token) {
  const Bytes token_mac = StoredTokenMac(keys_.admin_token, token);
  std::optional<AdminCredentialRow> match;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        conn_->PrepareCached("SELECT " + std::string(internal::kAdminCredentialColumns) + " FROM admin_credentials"));
    // Every row is compared, whatever matched before: the time taken does not depend on which
    // stored MAC (if any) the token's MAC equals.
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      AdminCredentialRow r = internal::ReadAdminCredentialRow(st);
      if (ConstantTimeEquals(token_mac, r.token_mac)) {
        match = std::move(r);
      }
    }
    if (!match) {
      return Status::NotFound("unknown admin token");
    }
    if (RowCheck check = Check(AdminRowKey(match->name), *match); check != RowCheck::kOk) {
      return Refuse("admin credential " + LoggableId(match->name), check, Status::NotFound("unknown admin token"));
    }
  }
  COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ToAdminCredential(*match));
  if (c.disabled) {
    return Status::PermissionDenied("admin credential " + c.name + " is disabled");
  }
  return c;
}

// --- dual control approvals ---------------------------------------------------------------

Result<ApprovalRow> SqliteKeystore::LoadApprovalRow(const std::string& id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kApprovalRowColumns) +
                                                             " FROM approvals WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no approval " + id);
  }
  ApprovalRow r = internal::ReadApprovalRow(st);
  if (RowCheck check = Check(ApprovalRowKey(id), r); check != RowCheck::kOk) {
    return Refuse("approval " + LoggableId(id), check,
                  Status::PermissionDenied("approval " + id + std::string(kIntegrityMessage) + "; request a new one"));
  }
  return r;
}

// PermissionDenied unless `name` is an enabled credential of the admin role (auditors approve
// nothing: separation of duties).
Status SqliteKeystore::CheckEnabledAdmin(const std::string& name, UnixMillis* created) {
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn_->PrepareCached("SELECT " + std::string(internal::kAdminCredentialColumns) +
                                               " FROM admin_credentials WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(name));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::PermissionDenied("no admin credential named " + name);
  }
  AdminCredentialRow r = internal::ReadAdminCredentialRow(st);
  if (RowCheck check = Check(AdminRowKey(name), r); check != RowCheck::kOk) {
    return Refuse("admin credential " + LoggableId(name), check,
                  Status::PermissionDenied("admin credential " + name + std::string(kIntegrityMessage)));
  }
  if (r.disabled) {
    return Status::PermissionDenied("admin credential " + name + " is disabled");
  }
  if (r.role != AdminRoleName(AdminRole::kAdmin)) {
    return Status::PermissionDenied("credential " + name +
                                    " is an auditor credential; only admin credentials take "
                                    "part in dual control");
  }
  if (created != nullptr) {
    *created = r.created;
  }
  return Status::Ok();
}

std::string DescribeApproval(const Approval& a) {
  std::string out = std::string(GuardedOperationName(a.operation));
  if (a.operation == GuardedOperation::kDestroyKeyVersion) {
    out += " version " + std::to_string(a.version);
  }
  if (a.operation == GuardedOperation::kCreateAdminCredential) {
    out += " " + a.tenant_id;
  }
  return out;
}

// The tenant whose key_events an approval's events belong to ("" = keystore-wide).
std::string EventTenant(const Approval& a) { return TargetsTenant(a.operation) ? a.tenant_id : std::string(); }

Result<Approval> SqliteKeystore::RequestApproval(const std::string& id, GuardedOperation operation,
                                                 const std::string& tenant_id, uint32_t version,
                                                 const std::string& requested_by, int64_t ttl_ms) {
  COFFRE_RETURN_IF_ERROR(CheckApprovalTarget(operation, tenant_id, version));
  const bool for_tenant = TargetsTenant(operation);
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
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(requested_by));
    if (for_tenant) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
      if (shredded) {
        return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
      }
    }
    ApprovalRow row;
    row.id = a.id;
    row.operation = std::string(GuardedOperationName(operation));
    row.tenant_id = tenant_id;
    row.version = version;
    row.requested_by = requested_by;
    row.requested = a.requested;
    row.expires = a.expires;
    row.gen = 1;
    Status inserted = internal::InsertRow(*conn_, keys_.row_mac, row);
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("approval " + id + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    Saw(ApprovalRowKey(id), row.gen);
    return RecordEvent(*conn_, a.requested, EventTenant(a), "approval-requested", version,
                       a.id + " " + DescribeApproval(a) + " by " + requested_by);
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Result<Approval> SqliteKeystore::GetApproval(const std::string& id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(ApprovalRow r, LoadApprovalRow(id));
  return ToApproval(r);
}

Result<std::vector<Approval>> SqliteKeystore::ListApprovals(size_t limit) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(internal::kApprovalRowColumns) +
                                                             " FROM approvals ORDER BY requested DESC, id LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX))));
  std::vector<Approval> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    ApprovalRow r = internal::ReadApprovalRow(st);
    if (RowCheck check = Check(ApprovalRowKey(r.id), r); check != RowCheck::kOk) {
      (void)Refuse("approval " + LoggableId(r.id), check, Status::Ok());  // left out of the list
      continue;
    }
    COFFRE_ASSIGN_OR_RETURN(Approval a, ToApproval(r));
    out.push_back(std::move(a));
  }
  return out;
}

Result<Approval> SqliteKeystore::GrantApproval(const std::string& id, const std::string& approved_by) {
  const UnixMillis now = Now();
  Approval a;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(a, ToApproval(row));
    COFFRE_RETURN_IF_ERROR(CheckGrantable(a, approved_by, now));
    UnixMillis approver_created = 0;
    COFFRE_RETURN_IF_ERROR(CheckEnabledAdmin(approved_by, &approver_created));
    // Checked here, in the grant's transaction: a credential that did not exist when the request
    // was made may be the requester's own second name.
    if (approver_created > a.requested) {
      return Status::PermissionDenied("admin credential " + approved_by + " was created after approval " + id +
                                      " was requested; only a credential that existed then can grant it");
    }
    row.approved_by = approved_by;
    row.approved = now;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    a.approved_by = approved_by;
    a.approved = now;
    return RecordEvent(
        *conn_, now, EventTenant(a), "approval-granted", a.version,
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
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(a, ToApproval(row));
    if (a.operation != operation || a.tenant_id != tenant_id || a.version != version) {
      return Status::InvalidArgument("approval " + id + " approves " + DescribeApproval(a) +
                                     (!TargetsTenant(a.operation) ? std::string() : " of tenant " + a.tenant_id) +
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
      if (Status admin = CheckEnabledAdmin(who); !admin.ok()) {
        return Status::FailedPrecondition("approval " + id + " no longer counts: " + admin.message());
      }
    }
    row.used = now;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    a.used = now;
    return RecordEvent(*conn_, now, EventTenant(a), "approval-used", a.version, id + " " + DescribeApproval(a));
  });
  if (!written.ok()) {
    return written;
  }
  return a;
}

Status SqliteKeystore::ReleaseApproval(const std::string& id) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(ApprovalRow row, LoadApprovalRow(id));
    COFFRE_ASSIGN_OR_RETURN(Approval a, ToApproval(row));
    if (!a.used) {
      return Status::FailedPrecondition("approval " + id + " is not in use");
    }
    row.used = std::nullopt;
    row.gen = NextGen(ApprovalRowKey(id), row.gen);
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn_, keys_.row_mac, row));
    Saw(ApprovalRowKey(id), row.gen);
    return RecordEvent(*conn_, now, EventTenant(a), "approval-released", a.version, id + " " + DescribeApproval(a));
  });
}

// --- integrity ----------------------------------------------------------------------------

Status SqliteKeystore::CheckIntegrity() {
  internal::RowScan scan;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, Transaction::Kind::kDeferred));
    if (RootKeyRotatedLocked()) {
      return Status::FailedPrecondition(std::string(kRotatedMessage));
    }
    COFFRE_ASSIGN_OR_RETURN(scan, internal::ScanRows(*conn_, keys_));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  const uint64_t refused = integrity_failures_.load();
  if (scan.failed == 0 && refused == 0) {
    return Status::Ok();
  }
  std::string msg =
      std::to_string(scan.failed) + " of " + std::to_string(scan.rows) + " keystore row(s) fail their integrity check";
  if (scan.failed != 0) {
    msg += " (first: " + scan.first_failure + ")";
  }
  msg += "; " + std::to_string(refused) +
         " read(s) refused a forged or replayed row since start (see the log; docs/KEYS.md \"Authenticated rows\")";
  return Status::Corruption(msg);
}

// Verifies the root key against the keystore's check value and loads the keys derived from it;
// records a check value in a new keystore; converts a keystore written before rows were
// authenticated (its check value opens under the raw root key), in one transaction.
Result<internal::KeystoreKeys> OpenKeys(Connection& conn, const SecretBytes& root) {
  internal::KeystoreKeys keys = internal::DeriveKeystoreKeys(root);
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
  if (sealed.empty()) {
    COFFRE_ASSIGN_OR_RETURN(Bytes check, internal::SealCheckValue(keys.wrap));
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.Prepare("INSERT INTO meta(name, value) VALUES(?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(kCheckName, check));
    COFFRE_RETURN_IF_ERROR(st.Run());
    COFFRE_ASSIGN_OR_RETURN(keys.admin_token, internal::LoadAdminTokenKey(conn, keys.wrap, /*create=*/true));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    return keys;
  }
  switch (internal::CheckValueFormat(sealed, root, keys.wrap)) {
    case internal::CheckFormat::kNoMatch:
      return Status::PermissionDenied("root key does not match this keystore");
    case internal::CheckFormat::kCurrent:
      break;
    case internal::CheckFormat::kLegacy: {
      internal::ResealSource from;
      from.legacy = true;
      from.legacy_root = &root;
      COFFRE_ASSIGN_OR_RETURN(internal::ResealReport report, internal::ResealAll(conn, from, keys, nullptr));
      const std::string detail = std::to_string(report.rows) + " row(s) authenticated, " +
                                 std::to_string(report.tenant_keys + report.access_keys) +
                                 " sealed value(s) moved to the derived wrapping key";
      COFFRE_RETURN_IF_ERROR(
          RecordEvent(conn, ToUnixMillis(Clock::System().Now()), "", "keystore-rows-authenticated", 0, detail));
      spdlog::warn("keystore: converted to authenticated rows under the root key: {}", detail);
      break;
    }
  }
  COFFRE_ASSIGN_OR_RETURN(keys.admin_token, internal::LoadAdminTokenKey(conn, keys.wrap, /*create=*/false));
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return keys;
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
    case GuardedOperation::kCreateAdminCredential:
      return "admin_credential.create";
  }
  return "unknown";
}

bool TargetsTenant(GuardedOperation op) {
  return op == GuardedOperation::kDestroyKeyVersion || op == GuardedOperation::kShredTenant;
}

std::optional<GuardedOperation> ParseGuardedOperation(std::string_view name) {
  for (GuardedOperation op : {GuardedOperation::kDestroyKeyVersion, GuardedOperation::kShredTenant,
                              GuardedOperation::kRotateRootKey, GuardedOperation::kCreateAdminCredential}) {
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
  if (operation == GuardedOperation::kCreateAdminCredential) {
    if (!internal::IsValidTenantName(tenant_id)) {
      return Status::InvalidArgument(
          "admin_credential.create needs the new credential's name ([a-z0-9][a-z0-9._-]{0,62})");
    }
  } else if (const bool for_tenant = TargetsTenant(operation); for_tenant == tenant_id.empty()) {
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

NewAccessKey::~NewAccessKey() { WipeString(secret_access_key); }
NewAdminCredential::~NewAdminCredential() { WipeString(token); }

namespace internal {
Status MigrateKeystoreSchema(Connection& conn) { return db::Migrate(conn, kMigrations); }
Status MigrateKeystoreSchemaTo(Connection& conn, size_t version) {
  return db::Migrate(conn,
                     std::span<const std::string_view>(kMigrations).first(std::min(version, std::size(kMigrations))));
}
}  // namespace internal

Result<std::unique_ptr<Keystore>> Keystore::Open(const std::string& path, SecretBytes root_key, const Clock& clock) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(path, db::OpenMode::kReadWriteCreate));
  COFFRE_RETURN_IF_ERROR(internal::MigrateKeystoreSchema(*conn));
  COFFRE_ASSIGN_OR_RETURN(internal::KeystoreKeys keys, OpenKeys(*conn, root_key));
  root_key = SecretBytes();  // only the derived keys are kept
  // Deleted rows (destroyed key versions, shredded tenants, deleted access keys) are overwritten
  // with zeros rather than left in free pages.
  COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete = ON"));
  COFFRE_ASSIGN_OR_RETURN(int64_t data_version, DataVersion(*conn));
  return std::unique_ptr<Keystore>(new SqliteKeystore(std::move(conn), std::move(keys), clock, data_version));
}

}  // namespace coffre::keystore
