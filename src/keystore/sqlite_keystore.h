#pragma once

// The keystore on SQLite (private to the keystore module). The class is implemented in several
// files, one per part of the Keystore interface, all sharing this one connection and its caches:
//   sqlite_keystore.cc              opening, row checks, cache revalidation, integrity, key events
//   sqlite_keystore_schema.cc       the tables and their migrations
//   sqlite_keystore_tenants.cc      TenantStore
//   sqlite_keystore_access_keys.cc  AccessKeyStore
//   sqlite_keystore_tenant_keys.cc  TenantKeyStore
//   sqlite_keystore_admin.cc        AdminCredentialStore
//   sqlite_keystore_approvals.cc    ApprovalStore
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
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"

namespace coffre::keystore::internal {

inline constexpr UnixMillis kCacheTtl = 60'000;
inline constexpr UnixMillis kLastUsedFlushInterval = 60'000;

inline constexpr std::string_view kShreddedMessage =
    " was crypto-shredded: its keys are destroyed and its objects can no longer be decrypted";
inline constexpr std::string_view kDestroyedKeyMessage =
    " was destroyed: its versions are gone and the objects under it can no longer be decrypted";
inline constexpr std::string_view kRotatedMessage =
    "the keystore's root key was rotated (coffre keystore rotate-root) after this process started; restart it with "
    "the new root key";
inline constexpr std::string_view kIntegrityMessage =
    " fails its integrity check: it was altered or written without the root key, and is refused";

using KeyPtr = std::shared_ptr<const SecretBytes>;

// The keys under which this process remembers the generations it saw (SqliteKeystore::Check).
inline std::string TenantRowKey(std::string_view id) { return "t:" + std::string(id); }
inline std::string TenantKeyRowKey(std::string_view id, uint32_t v) {
  return "k:" + std::string(id) + "/" + std::to_string(v);
}
inline std::string AccessKeyRowKey(std::string_view id) { return "a:" + std::string(id); }
inline std::string NamedKeyRowKey(std::string_view id) { return "n:" + std::string(id); }

// Where the caches keep a key's entries: the tenant with the key, so that an entry loaded for one
// tenant (whose ownership of the key was checked) never answers another.
inline std::string KeyCacheKey(const KeyRef& key) { return key.tenant_id + "/" + key.key_id; }
// How messages name a key.
inline std::string KeyName(const KeyRef& key) {
  return key.named() ? "key " + key.key_id + " of tenant " + key.tenant_id : "the key of tenant " + key.tenant_id;
}
// A key event's detail naming a named key ("" for a default key).
inline std::string EventDetail(const KeyRef& key) { return key.named() ? "key " + key.key_id : std::string(); }
inline std::string AdminRowKey(std::string_view name) { return "c:" + std::string(name); }
inline std::string ApprovalRowKey(std::string_view id) { return "p:" + std::string(id); }

// Appends a key event inside the caller's transaction.
Status RecordEvent(db::Connection& conn, UnixMillis at, std::string_view tenant_id, std::string_view event,
                   uint32_t version, std::string_view detail);

class SqliteKeystore final : public Keystore {
 public:
  SqliteKeystore(std::unique_ptr<db::Connection> conn, KeystoreKeys keys, const Clock& clock, int64_t data_version);
  ~SqliteKeystore() override;

  // sqlite_keystore_tenants.cc
  Result<Tenant> CreateTenant(const std::string& name) override;
  Result<std::vector<Tenant>> ListTenants() override;
  Result<Tenant> GetTenantByName(const std::string& name) override;
  Result<Tenant> GetTenant(const std::string& tenant_id) override;

  // sqlite_keystore_access_keys.cc
  Result<NewAccessKey> CreateAccessKey(const std::string& tenant_id) override;
  Result<std::vector<AccessKey>> ListAccessKeys(const std::string& tenant_id) override;
  Result<ResolvedAccessKey> ResolveAccessKey(const std::string& access_key_id) override;
  Status SetAccessKeyEnabled(const std::string& tenant_id, const std::string& access_key_id, bool enabled) override;
  Status DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id) override;

  // sqlite_keystore_tenant_keys.cc
  Result<uint32_t> RotateTenantKey(const KeyRef& key) override;
  Result<std::vector<KeyRef>> RotateKeysOlderThan(int64_t max_age_ms) override;
  Result<std::vector<KeyVersion>> ListKeyVersions(const KeyRef& key) override;
  Status DestroyKeyVersion(const KeyRef& key, uint32_t version) override;
  Status SetKeyVersionDestroying(const KeyRef& key, uint32_t version, bool destroying) override;
  Result<bool> IsKeyVersionDestroying(const KeyRef& key, uint32_t version) override;
  Result<RewrappedKey> RewrapDataKey(const KeyRef& key, uint32_t tenant_key_version, ByteView wrapped,
                                     ByteView aad) override;
  Status ShredTenant(const std::string& tenant_id) override;
  Result<NamedKey> CreateNamedKey(const std::string& tenant_id, const std::string& name) override;
  Result<std::vector<NamedKey>> ListNamedKeys(const std::string& tenant_id) override;
  Result<NamedKey> FindNamedKey(const std::string& tenant_id, const std::string& name_or_id) override;
  Result<NamedKey> NamedKeyById(const std::string& key_id) override;
  Status DestroyNamedKey(const KeyRef& key) override;
  Result<DataKey> NewDataKey(const KeyRef& key, ByteView aad) override;
  Result<Bytes> WrapDataKey(const KeyRef& key, uint32_t tenant_key_version, const SecretBytes& data_key,
                            ByteView aad) override;
  Result<uint32_t> ActiveKeyVersion(const KeyRef& key) override;
  Result<SecretBytes> UnwrapDataKey(const KeyRef& key, uint32_t tenant_key_version, ByteView wrapped,
                                    ByteView aad) override;

  // sqlite_keystore_admin.cc
  Result<NewAdminCredential> CreateAdminCredential(const std::string& name, AdminRole role) override;
  Result<std::vector<AdminCredential>> ListAdminCredentials() override;
  Status DisableAdminCredential(const std::string& name) override;
  Result<AdminCredential> AuthenticateAdminToken(std::string_view token) override;

  // sqlite_keystore_approvals.cc
  Result<Approval> RequestApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                                   uint32_t version, const std::string& requested_by, int64_t ttl_ms) override;
  Result<Approval> GetApproval(const std::string& id) override;
  Result<std::vector<Approval>> ListApprovals(size_t limit) override;
  Result<Approval> GrantApproval(const std::string& id, const std::string& approved_by) override;
  Result<Approval> UseApproval(const std::string& id, GuardedOperation operation, const std::string& tenant_id,
                               uint32_t version) override;
  Status ReleaseApproval(const std::string& id) override;

  // sqlite_keystore.cc
  Result<std::vector<KeyEvent>> ListKeyEvents(const std::string& tenant_id) override;
  Status CheckIntegrity() override;
  uint64_t IntegrityFailures() const override { return integrity_failures_.load(); }

 private:
  enum class RowCheck { kOk, kForged, kReplayed };
  // Whether `row` verifies under the row key and is no older than a generation of the same row
  // this process saw before (an older valid state written back); records its generation.
  template <typename Row>
  RowCheck Check(const std::string& row_key, const Row& row) {
    if (!RowIntact(keys_.row_mac, row)) {
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
  // The version's row (`key_id`: a tenant id for a default key, a named key's id otherwise), or
  // nullopt if absent; Corruption (refused) if it fails its check.
  Result<std::optional<TenantKeyRow>> LoadTenantKeyRow(const std::string& key_id, uint32_t version);
  // The named key's row, or nullopt if absent; Corruption (refused) if it fails its check.
  Result<std::optional<NamedKeyRow>> LoadNamedKeyRow(const std::string& key_id);
  // PermissionDenied ("crypto-shredded") for a shredded tenant, whatever else went wrong (a key
  // missing because the tenant was shredded); else `otherwise`.
  Status UnlessShredded(const std::string& tenant_id, Status otherwise);
  // InvalidArgument for malformed ids; for a named key, NotFound unless it is the tenant's, and
  // PermissionDenied once destroyed (unless `allow_destroyed`). A default key passes.
  Status CheckKeyOwner(const KeyRef& key, bool allow_destroyed = false);

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
  struct CachedNamedKey {
    NamedKey key;
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
    named_keys_.clear();
  }
  // Runs `fn` inside one write transaction and invalidates the caches after it committed.
  template <typename Fn>
  Status WriteAndInvalidate(Fn&& fn) {
    {
      std::lock_guard lock(db_mu_);
      pending_seen_.clear();
      COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn_));
      COFFRE_RETURN_IF_ERROR(fn());
      COFFRE_RETURN_IF_ERROR(tx.Commit());
      PublishSeen();
    }
    std::lock_guard lock(cache_mu_);
    InvalidateLocked();
    return Status::Ok();
  }

  Result<Tenant> QueryTenant(std::string_view sql, const std::string& arg, const std::string& what);
  // The unwrapped key of that version (NotFound if the version does not exist), once the key
  // was checked to be the tenant's (CheckKeyOwner).
  Result<KeyPtr> TenantKey(const KeyRef& key, uint32_t version);
  // The key's active version (NotFound for an unknown tenant or key).
  Result<uint32_t> ActiveVersion(const KeyRef& key);
  Result<CachedAccessKey> LoadAccessKey(const std::string& access_key_id);
  // Writes the coalesced last_used times if the interval has passed (or `force`).
  Status FlushLastUsed(bool force);
  // `failed` (a stored value did not open), or a clearer error when the reason is that the
  // keystore's root key was rotated (coffre keystore rotate-root) after this process opened it.
  Status UnlessRootKeyRotated(Status failed);

  const Clock& clock_;
  // Derived from the root key, which this object does not keep.
  const KeystoreKeys keys_;
  std::atomic<uint64_t> integrity_failures_{0};

  std::mutex db_mu_;
  std::unique_ptr<db::Connection> conn_;                       // guarded by db_mu_
  int64_t data_version_ = 0;                                   // guarded by db_mu_
  std::vector<std::pair<std::string, int64_t>> pending_seen_;  // guarded by db_mu_

  std::mutex cache_mu_;  // guards everything below
  std::map<std::pair<std::string, uint32_t>, CachedKey> tenant_keys_;
  std::map<std::string, CachedActive> active_versions_;
  std::map<std::string, CachedAccessKey> access_keys_;
  std::map<std::string, CachedNamedKey> named_keys_;  // by tenant id + "/" + name or id as asked
  std::map<std::string, UnixMillis> pending_last_used_;
  UnixMillis last_flush_ = 0;
  bool flushing_ = false;
  uint64_t epoch_ = 0;
  UnixMillis last_revalidate_ = 0;
  // The highest generation seen of each authenticated row, by row key (TenantRowKey...).
  std::map<std::string, int64_t> seen_gen_;
};

}  // namespace coffre::keystore::internal
