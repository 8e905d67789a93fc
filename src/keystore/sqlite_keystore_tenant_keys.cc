// TenantKeyStore on SQLite (sqlite_keystore.h): tenant key versions, their cache, the destroy
// fence, crypto-shredding, and the data keys wrapped under them.

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
#include "keystore/rows.h"
#include "keystore/sqlite_keystore.h"

namespace coffre::keystore::internal {

using db::Statement;

Result<std::optional<TenantKeyRow>> SqliteKeystore::LoadTenantKeyRow(const std::string& key_id, uint32_t version) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? AND version = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key_id, version));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<TenantKeyRow>();
  }
  TenantKeyRow r = ReadTenantKeyRow(st);
  if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
    const std::string what = "key version " + std::to_string(version) + " of key " + LoggableId(key_id);
    return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
  }
  return std::optional<TenantKeyRow>(std::move(r));
}

Result<std::optional<NamedKeyRow>> SqliteKeystore::LoadNamedKeyRow(const std::string& key_id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kNamedKeyColumns) +
                                                             " FROM named_keys WHERE key_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<NamedKeyRow>();
  }
  NamedKeyRow r = ReadNamedKeyRow(st);
  if (RowCheck c = Check(NamedKeyRowKey(r.key_id), r); c != RowCheck::kOk) {
    const std::string what = "named key " + LoggableId(key_id);
    return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
  }
  return std::optional<NamedKeyRow>(std::move(r));
}

Status SqliteKeystore::UnlessShredded(const std::string& tenant_id, Status otherwise) {
  auto shredded = TenantShredded(tenant_id);
  if (shredded.ok() && shredded->has_value()) {
    return Status::PermissionDenied("tenant " + tenant_id + std::string(kShreddedMessage));
  }
  return otherwise;
}

Status SqliteKeystore::CheckKeyOwner(const KeyRef& key, bool allow_destroyed) {
  if (!IsValidTenantId(key.tenant_id) || !IsValidTenantId(key.key_id)) {
    return Status::InvalidArgument("malformed tenant or key id");
  }
  if (!key.named()) {
    return Status::Ok();
  }
  COFFRE_ASSIGN_OR_RETURN(std::optional<NamedKeyRow> row, LoadNamedKeyRow(key.key_id));
  if (!row || row->tenant_id != key.tenant_id) {
    return Status::NotFound("tenant " + key.tenant_id + " has no key " + key.key_id);
  }
  if (row->destroyed && !allow_destroyed) {
    return Status::PermissionDenied("key " + row->name + std::string(kDestroyedKeyMessage));
  }
  return Status::Ok();
}

// --- data keys ---------------------------------------------------------------------------

Result<KeyPtr> SqliteKeystore::TenantKey(const KeyRef& key_ref, uint32_t version) {
  const UnixMillis now = Now();
  Revalidate(now);
  uint64_t epoch = 0;
  const std::string cache_key = KeyCacheKey(key_ref);
  {
    std::lock_guard lock(cache_mu_);
    auto it = tenant_keys_.find({cache_key, version});
    if (it != tenant_keys_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
      return it->second.key;
    }
    epoch = epoch_;
  }
  const std::string& tenant_id = key_ref.tenant_id;
  Bytes wrapped;
  {
    std::lock_guard lock(db_mu_);
    if (Status owned = CheckKeyOwner(key_ref); !owned.ok()) {
      return UnlessShredded(tenant_id, std::move(owned));
    }
    COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(key_ref.key_id, version));
    if (!row) {
      {
        std::lock_guard cache_lock(cache_mu_);
        tenant_keys_.erase({cache_key, version});  // destroyed elsewhere: forget it here too
      }
      return UnlessShredded(tenant_id,
                            Status::NotFound(KeyName(key_ref) + " has no key version " + std::to_string(version)));
    }
    wrapped = std::move(row->wrapped_key);
  }
  auto key = crypto::OpenSecret(keys_.wrap, wrapped, TenantKeyAad(key_ref.key_id, version));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return UnlessRootKeyRotated(Status::Corruption("version " + std::to_string(version) + " of " + KeyName(key_ref) +
                                                   " does not open under the root key"));
  }
  auto ptr = std::make_shared<const SecretBytes>(std::move(key).value());
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{cache_key, version}] = CachedKey{ptr, now, epoch};
  return ptr;
}

Result<uint32_t> SqliteKeystore::ActiveVersion(const KeyRef& key) {
  const UnixMillis now = Now();
  Revalidate(now);
  uint64_t epoch = 0;
  const std::string cache_key = KeyCacheKey(key);
  const std::string& tenant_id = key.tenant_id;
  {
    std::lock_guard lock(cache_mu_);
    auto it = active_versions_.find(cache_key);
    if (it != active_versions_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
      return it->second.version;
    }
    epoch = epoch_;
  }
  uint32_t version = 0;
  {
    std::lock_guard lock(db_mu_);
    if (Status owned = CheckKeyOwner(key); !owned.ok()) {
      return UnlessShredded(tenant_id, std::move(owned));
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                               " FROM tenant_keys WHERE tenant_id = ? AND state = "
                                                               "'active'"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return UnlessShredded(tenant_id, Status::NotFound(KeyName(key) + " has no active version"));
    }
    TenantKeyRow r = ReadTenantKeyRow(st);
    if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
      const std::string what = "version " + std::to_string(r.version) + " of " + LoggableId(KeyName(key));
      return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
    }
    version = r.version;
  }
  std::lock_guard lock(cache_mu_);
  active_versions_[cache_key] = CachedActive{version, now, epoch};
  return version;
}

Result<DataKey> SqliteKeystore::NewDataKey(const KeyRef& key, ByteView aad) {
  if (!IsValidTenantId(key.tenant_id) || !IsValidTenantId(key.key_id)) {
    return Status::InvalidArgument("malformed tenant or key id");
  }
  COFFRE_ASSIGN_OR_RETURN(uint32_t version, ActiveVersion(key));
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(key, version));
  DataKey dk;
  dk.key = SecretBytes::Random(crypto::kKeySize);
  dk.tenant_key_id = *HexDecode(key.key_id);
  dk.tenant_key_version = version;
  COFFRE_ASSIGN_OR_RETURN(dk.wrapped, crypto::Seal(*tenant_key, dk.key.Reveal(), DataKeyAad(key, version, aad)));
  return dk;
}

Result<Bytes> SqliteKeystore::WrapDataKey(const KeyRef& key, uint32_t tenant_key_version, const SecretBytes& data_key,
                                          ByteView aad) {
  if (!IsValidTenantId(key.tenant_id) || !IsValidTenantId(key.key_id)) {
    return Status::InvalidArgument("malformed tenant or key id");
  }
  if (data_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("a data key is " + std::to_string(crypto::kKeySize) + " bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(key, tenant_key_version));
  return crypto::Seal(*tenant_key, data_key.Reveal(), DataKeyAad(key, tenant_key_version, aad));
}

Result<uint32_t> SqliteKeystore::ActiveKeyVersion(const KeyRef& key) {
  if (!IsValidTenantId(key.tenant_id) || !IsValidTenantId(key.key_id)) {
    return Status::InvalidArgument("malformed tenant or key id");
  }
  return ActiveVersion(key);
}

Result<SecretBytes> SqliteKeystore::UnwrapDataKey(const KeyRef& key_ref, uint32_t tenant_key_version, ByteView wrapped,
                                                  ByteView aad) {
  if (!IsValidTenantId(key_ref.tenant_id) || !IsValidTenantId(key_ref.key_id)) {
    return Status::InvalidArgument("malformed tenant or key id");
  }
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(key_ref, tenant_key_version));
  auto key = crypto::OpenSecret(*tenant_key, wrapped, DataKeyAad(key_ref, tenant_key_version, aad));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return Status::Corruption("wrapped data key does not open: altered, or bound to another tenant or object");
  }
  return std::move(key).value();
}

// --- key versions ------------------------------------------------------------------------

Result<uint32_t> SqliteKeystore::RotateTenantKey(const KeyRef& key) {
  const UnixMillis now = Now();
  const std::string& tenant_id = key.tenant_id;
  uint32_t version = 0;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage) +
                                        "; it cannot get a new key");
    }
    if (Status owned = CheckKeyOwner(key); !owned.ok()) {
      return owned.code() == StatusCode::kPermissionDenied ? Status::FailedPrecondition(owned.message()) : owned;
    }
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st, conn_->PrepareCached("SELECT coalesce(max(version), 0) FROM tenant_keys WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::Internal("max(version) returned no row");
      }
      // Versions only grow, so a destroyed version number is never reused. (A destroyed
      // version is never the highest: the active one is, and it cannot be destroyed.)
      version = static_cast<uint32_t>(st.ColumnInt64(0)) + 1;
    }
    const SecretBytes fresh = SecretBytes::Random(crypto::kKeySize);
    COFFRE_ASSIGN_OR_RETURN(Bytes wrapped, crypto::Seal(keys_.wrap, fresh.Reveal(), TenantKeyAad(key.key_id, version)));
    std::optional<TenantKeyRow> active;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                   " FROM tenant_keys WHERE tenant_id = ? AND state = 'active'"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        active = ReadTenantKeyRow(st);
      }
    }
    if (active) {
      const std::string row_key = TenantKeyRowKey(key.key_id, active->version);
      if (RowCheck c = Check(row_key, *active); c != RowCheck::kOk) {
        const std::string what = "version " + std::to_string(active->version) + " of " + LoggableId(KeyName(key));
        return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
      }
      active->state = "retired";
      active->gen = NextGen(row_key, active->gen);
      COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, *active));
      Saw(row_key, active->gen);
    }
    {
      TenantKeyRow row{key.key_id, version, wrapped, "active", now, std::nullopt, 1, {}};
      COFFRE_RETURN_IF_ERROR(InsertRow(*conn_, keys_.row_mac, row));
      Saw(TenantKeyRowKey(key.key_id, version), row.gen);
    }
    return RecordEvent(*conn_, now, tenant_id, "key-rotated", version, EventDetail(key));
  });
  if (!written.ok()) {
    return written;
  }
  return version;
}

Result<std::vector<KeyRef>> SqliteKeystore::RotateKeysOlderThan(int64_t max_age_ms) {
  std::vector<KeyRef> due;
  {
    std::lock_guard lock(db_mu_);
    // Default keys (whose id is their tenant's), then named keys not destroyed, of live tenants.
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("SELECT t.id, k.tenant_id FROM tenant_keys k "
                                                 "JOIN tenants t ON t.id = k.tenant_id "
                                                 "WHERE k.state = 'active' AND t.shredded IS NULL AND k.created <= ?1 "
                                                 "UNION ALL "
                                                 "SELECT t.id, k.tenant_id FROM tenant_keys k "
                                                 "JOIN named_keys n ON n.key_id = k.tenant_id "
                                                 "JOIN tenants t ON t.id = n.tenant_id "
                                                 "WHERE k.state = 'active' AND t.shredded IS NULL AND "
                                                 "n.destroyed IS NULL AND k.created <= ?1 ORDER BY 1, 2"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(Now() - max_age_ms));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      due.emplace_back(st.ColumnText(0), st.ColumnText(1));
    }
  }
  std::vector<KeyRef> rotated;
  for (const auto& key : due) {
    // Another process may have rotated (or shredded) it meanwhile: check again before rotating.
    COFFRE_ASSIGN_OR_RETURN(std::vector<KeyVersion> versions, ListKeyVersions(key));
    bool still_due = false;
    for (const auto& v : versions) {
      if (v.active && v.created <= Now() - max_age_ms) {
        still_due = true;
      }
    }
    if (!still_due) {
      continue;
    }
    auto r = RotateTenantKey(key);
    if (!r.ok() && r.status().code() != StatusCode::kFailedPrecondition) {
      return r.status();
    }
    if (r.ok()) {
      rotated.push_back(key);
    }
  }
  return rotated;
}

Result<std::vector<KeyVersion>> SqliteKeystore::ListKeyVersions(const KeyRef& key) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(key.tenant_id));
  (void)shredded;
  COFFRE_RETURN_IF_ERROR(CheckKeyOwner(key, /*allow_destroyed=*/true));
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? ORDER BY version"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id));
  std::vector<KeyVersion> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    TenantKeyRow r = ReadTenantKeyRow(st);
    if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
      (void)Refuse("version " + std::to_string(r.version) + " of " + LoggableId(KeyName(key)), c,
                   Status::Ok());  // left out of the list
      continue;
    }
    out.push_back(KeyVersion{r.version, r.state == "active", r.created, r.destroying.has_value()});
  }
  return out;
}

Status SqliteKeystore::SetKeyVersionDestroying(const KeyRef& key, uint32_t version, bool destroying) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckKeyOwner(key, /*allow_destroyed=*/!destroying));
    COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(key.key_id, version));
    if (!row) {
      return Status::NotFound(KeyName(key) + " has no key version " + std::to_string(version));
    }
    if (destroying && row->state == "active") {
      return Status::FailedPrecondition("key version " + std::to_string(version) + " is the active version");
    }
    row->destroying = destroying ? std::optional<int64_t>(now) : std::nullopt;
    const std::string row_key = TenantKeyRowKey(key.key_id, version);
    row->gen = NextGen(row_key, row->gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, *row));
    Saw(row_key, row->gen);
    return Status::Ok();
  });
}

Result<bool> SqliteKeystore::IsKeyVersionDestroying(const KeyRef& key, uint32_t version) {
  // Read from the database, never the cache: the fence works only if a writer that commits after
  // the mark sees it (ObjectService::KeepClearOfDestruction).
  std::lock_guard lock(db_mu_);
  if (Status owned = CheckKeyOwner(key, /*allow_destroyed=*/true); !owned.ok()) {
    return owned.code() == StatusCode::kCorruption ? Result<bool>(true) : Result<bool>(owned);
  }
  auto row = LoadTenantKeyRow(key.key_id, version);
  if (!row.ok()) {
    // A row that fails its check is taken as marked: the writer re-wraps under the active
    // version rather than trusting a version whose destroy mark may have been cleared by hand.
    return row.status().code() == StatusCode::kCorruption ? Result<bool>(true) : Result<bool>(row.status());
  }
  return !row->has_value() || (*row)->destroying.has_value();
}

Status SqliteKeystore::DestroyKeyVersion(const KeyRef& key, uint32_t version) {
  const UnixMillis now = Now();
  const std::string& tenant_id = key.tenant_id;
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    if (Status owned = CheckKeyOwner(key); !owned.ok()) {
      return owned.code() == StatusCode::kPermissionDenied ? Status::FailedPrecondition(owned.message()) : owned;
    }
    {
      // A row that fails its check is refused here: its state cannot be trusted to say it is not
      // the version the tenant's data is wrapped under.
      COFFRE_ASSIGN_OR_RETURN(std::optional<TenantKeyRow> row, LoadTenantKeyRow(key.key_id, version));
      if (!row) {
        return Status::NotFound(KeyName(key) + " has no key version " + std::to_string(version));
      }
      if (row->state == "active") {
        return Status::FailedPrecondition("key version " + std::to_string(version) +
                                          " is the active version; rotate first (coffre key rotate), rewrap, "
                                          "then destroy the retired version");
      }
    }
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ? AND version = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id, version));
    COFFRE_RETURN_IF_ERROR(st.Run());
    return RecordEvent(*conn_, now, tenant_id, "key-destroyed", version, EventDetail(key));
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

Result<RewrappedKey> SqliteKeystore::RewrapDataKey(const KeyRef& key, uint32_t tenant_key_version, ByteView wrapped,
                                                   ByteView aad) {
  COFFRE_ASSIGN_OR_RETURN(SecretBytes data_key, UnwrapDataKey(key, tenant_key_version, wrapped, aad));
  COFFRE_ASSIGN_OR_RETURN(uint32_t version, ActiveVersion(key));
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(key, version));
  RewrappedKey out;
  out.tenant_key_version = version;
  COFFRE_ASSIGN_OR_RETURN(out.wrapped, crypto::Seal(*tenant_key, data_key.Reveal(), DataKeyAad(key, version, aad)));
  return out;
}

// --- named keys ----------------------------------------------------------------------------

namespace {

NamedKey ToNamedKey(const NamedKeyRow& r) { return NamedKey{r.key_id, r.tenant_id, r.name, r.created, r.destroyed}; }

}  // namespace

Result<NamedKey> SqliteKeystore::CreateNamedKey(const std::string& tenant_id, const std::string& name) {
  if (!IsValidNamedKeyName(name)) {
    return Status::InvalidArgument("invalid key name '" + name +
                                   "': expected 1 to 200 of [A-Za-z0-9/_.-], not starting with aws/ or alias/, "
                                   "and not shaped like a key id");
  }
  if (!IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  const UnixMillis now = Now();
  NamedKeyRow row{RandomId(crypto::kTenantKeyIdSize), tenant_id, name, now, std::nullopt, 1, {}};
  constexpr uint32_t kFirstVersion = 1;
  const SecretBytes key = SecretBytes::Random(crypto::kKeySize);
  COFFRE_ASSIGN_OR_RETURN(Bytes wrapped,
                          crypto::Seal(keys_.wrap, key.Reveal(), TenantKeyAad(row.key_id, kFirstVersion)));
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT 1 FROM named_keys WHERE tenant_id = ? AND name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, name));
      COFFRE_ASSIGN_OR_RETURN(bool exists, st.Step());
      if (exists) {
        return Status::AlreadyExists("the tenant has (or had) a key named " + name + "; names are never reused");
      }
    }
    COFFRE_RETURN_IF_ERROR(InsertRow(*conn_, keys_.row_mac, row));
    Saw(NamedKeyRowKey(row.key_id), row.gen);
    TenantKeyRow version{row.key_id, kFirstVersion, wrapped, "active", now, std::nullopt, 1, {}};
    COFFRE_RETURN_IF_ERROR(InsertRow(*conn_, keys_.row_mac, version));
    Saw(TenantKeyRowKey(row.key_id, kFirstVersion), version.gen);
    return RecordEvent(*conn_, now, tenant_id, "named-key-created", kFirstVersion, "key " + row.key_id + " " + name);
  });
  if (!written.ok()) {
    return written;
  }
  return ToNamedKey(row);
}

Result<std::vector<NamedKey>> SqliteKeystore::ListNamedKeys(const std::string& tenant_id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kNamedKeyColumns) +
                                                             " FROM named_keys WHERE tenant_id = ? ORDER BY name"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<NamedKey> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    NamedKeyRow r = ReadNamedKeyRow(st);
    if (RowCheck c = Check(NamedKeyRowKey(r.key_id), r); c != RowCheck::kOk) {
      (void)Refuse("named key " + LoggableId(r.key_id), c, Status::Ok());  // left out of the list
      continue;
    }
    out.push_back(ToNamedKey(r));
  }
  return out;
}

Result<NamedKey> SqliteKeystore::FindNamedKey(const std::string& tenant_id, const std::string& name_or_id) {
  const UnixMillis now = Now();
  Revalidate(now);
  const std::string cache_key = tenant_id + "/" + name_or_id;
  {
    std::lock_guard lock(cache_mu_);
    auto it = named_keys_.find(cache_key);
    if (it != named_keys_.end() && Fresh(it->second.loaded_at, it->second.epoch, now)) {
      return it->second.key;
    }
  }
  const uint64_t epoch = CurrentEpoch();
  std::optional<NamedKeyRow> found;
  {
    std::lock_guard lock(db_mu_);
    if (std::optional<std::string> id = ParseKeyId(name_or_id)) {
      COFFRE_ASSIGN_OR_RETURN(found, LoadNamedKeyRow(*id));
    } else {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kNamedKeyColumns) +
                                                                 " FROM named_keys WHERE tenant_id = ? AND name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, name_or_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        NamedKeyRow r = ReadNamedKeyRow(st);
        if (RowCheck c = Check(NamedKeyRowKey(r.key_id), r); c != RowCheck::kOk) {
          const std::string what = "named key " + LoggableId(r.key_id);
          return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
        }
        found = std::move(r);
      }
    }
  }
  if (!found || found->tenant_id != tenant_id) {
    return Status::NotFound("the tenant has no key " + name_or_id);
  }
  NamedKey key = ToNamedKey(*found);
  std::lock_guard lock(cache_mu_);
  named_keys_[cache_key] = CachedNamedKey{key, now, epoch};
  return key;
}

Result<NamedKey> SqliteKeystore::NamedKeyById(const std::string& key_id) {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(std::optional<NamedKeyRow> row, LoadNamedKeyRow(key_id));
  if (!row) {
    return Status::NotFound("no named key " + key_id);
  }
  return ToNamedKey(*row);
}

Status SqliteKeystore::DestroyNamedKey(const KeyRef& key) {
  const UnixMillis now = Now();
  if (!key.named()) {
    return Status::InvalidArgument("a tenant's default key is destroyed by shredding the tenant");
  }
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckKeyOwner(key, /*allow_destroyed=*/true));
    COFFRE_ASSIGN_OR_RETURN(std::optional<NamedKeyRow> row, LoadNamedKeyRow(key.key_id));
    if (row->destroyed) {
      return Status::FailedPrecondition("key " + row->name + " was already destroyed");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(key.key_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    row->destroyed = now;
    const std::string row_key = NamedKeyRowKey(key.key_id);
    row->gen = NextGen(row_key, row->gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, *row));
    Saw(row_key, row->gen);
    return RecordEvent(*conn_, now, key.tenant_id, "named-key-destroyed", 0, "key " + key.key_id + " " + row->name);
  });
  if (!written.ok()) {
    return written;
  }
  std::lock_guard lock(db_mu_);
  (void)conn_->Exec("PRAGMA wal_checkpoint(TRUNCATE)");  // as in DestroyKeyVersion
  return Status::Ok();
}

Status SqliteKeystore::ShredTenant(const std::string& tenant_id) {
  const UnixMillis now = Now();
  Status written = WriteAndInvalidate([&]() -> Status {
    COFFRE_ASSIGN_OR_RETURN(TenantRow tenant, LoadTenantRow(tenant_id));
    if (tenant.shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + " is already crypto-shredded");
    }
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("DELETE FROM tenant_keys WHERE tenant_id = ?1 OR "
                                                                 "tenant_id IN (SELECT key_id FROM named_keys "
                                                                 "WHERE tenant_id = ?1)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    {
      // Its named keys are destroyed with it (authenticated as such, even one whose row failed
      // its check: destroyed is the harmless state).
      std::vector<NamedKeyRow> rows;
      {
        COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kNamedKeyColumns) +
                                                                   " FROM named_keys WHERE tenant_id = ? AND "
                                                                   "destroyed IS NULL"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
        while (true) {
          COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
          if (!row) {
            break;
          }
          rows.push_back(ReadNamedKeyRow(st));
        }
      }
      for (auto& r : rows) {
        const std::string row_key = NamedKeyRowKey(r.key_id);
        r.destroyed = now;
        r.gen = NextGen(row_key, r.gen);
        COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, r));
        Saw(row_key, r.gen);
      }
    }
    {
      // Every access key of the tenant is disabled, and authenticated as such (even one whose
      // row failed its check: disabled is the harmless state).
      std::vector<AccessKeyRow> rows;
      {
        COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAccessKeyColumns) +
                                                                   " FROM access_keys WHERE tenant_id = ?"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
        while (true) {
          COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
          if (!row) {
            break;
          }
          rows.push_back(ReadAccessKeyRow(st));
        }
      }
      for (auto& r : rows) {
        const std::string row_key = AccessKeyRowKey(r.access_key_id);
        r.enabled = false;
        r.gen = NextGen(row_key, r.gen);
        COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, r));
        Saw(row_key, r.gen);
      }
    }
    tenant.shredded = now;
    tenant.gen = NextGen(TenantRowKey(tenant_id), tenant.gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, tenant));
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

}  // namespace coffre::keystore::internal
