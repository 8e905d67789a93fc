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

Result<std::optional<TenantKeyRow>> SqliteKeystore::LoadTenantKeyRow(const std::string& tenant_id, uint32_t version) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? AND version = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, version));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<TenantKeyRow>();
  }
  TenantKeyRow r = ReadTenantKeyRow(st);
  if (RowCheck c = Check(TenantKeyRowKey(r.tenant_id, r.version), r); c != RowCheck::kOk) {
    const std::string what = "key version " + std::to_string(version) + " of tenant " + LoggableId(tenant_id);
    return Refuse(what, c, Status::Corruption(what + std::string(kIntegrityMessage)));
  }
  return std::optional<TenantKeyRow>(std::move(r));
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
  auto key = crypto::OpenSecret(keys_.wrap, wrapped, TenantKeyAad(tenant_id, version));
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
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
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
    TenantKeyRow r = ReadTenantKeyRow(st);
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
  if (!IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  COFFRE_ASSIGN_OR_RETURN(uint32_t version, ActiveVersion(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, version));
  DataKey dk;
  dk.key = SecretBytes::Random(crypto::kKeySize);
  dk.tenant_key_id = *HexDecode(tenant_id);
  dk.tenant_key_version = version;
  COFFRE_ASSIGN_OR_RETURN(dk.wrapped, crypto::Seal(*tenant_key, dk.key.Reveal(), DataKeyAad(tenant_id, version, aad)));
  return dk;
}

Result<Bytes> SqliteKeystore::WrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                          const SecretBytes& data_key, ByteView aad) {
  if (!IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  if (data_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("a data key is " + std::to_string(crypto::kKeySize) + " bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, tenant_key_version));
  return crypto::Seal(*tenant_key, data_key.Reveal(), DataKeyAad(tenant_id, tenant_key_version, aad));
}

Result<uint32_t> SqliteKeystore::ActiveKeyVersion(const std::string& tenant_id) {
  if (!IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  return ActiveVersion(tenant_id);
}

Result<SecretBytes> SqliteKeystore::UnwrapDataKey(const std::string& tenant_id, uint32_t tenant_key_version,
                                                  ByteView wrapped, ByteView aad) {
  if (!IsValidTenantId(tenant_id)) {
    return Status::InvalidArgument("malformed tenant id");
  }
  COFFRE_ASSIGN_OR_RETURN(KeyPtr tenant_key, TenantKey(tenant_id, tenant_key_version));
  auto key = crypto::OpenSecret(*tenant_key, wrapped, DataKeyAad(tenant_id, tenant_key_version, aad));
  if (!key.ok() || key->size() != crypto::kKeySize) {
    return Status::Corruption("wrapped data key does not open: altered, or bound to another tenant or object");
  }
  return std::move(key).value();
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
    COFFRE_ASSIGN_OR_RETURN(Bytes wrapped, crypto::Seal(keys_.wrap, key.Reveal(), TenantKeyAad(tenant_id, version)));
    std::optional<TenantKeyRow> active;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                   " FROM tenant_keys WHERE tenant_id = ? AND state = 'active'"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        active = ReadTenantKeyRow(st);
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
      COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, *active));
      Saw(row_key, active->gen);
    }
    {
      TenantKeyRow row{tenant_id, version, wrapped, "active", now, std::nullopt, 1, {}};
      COFFRE_RETURN_IF_ERROR(InsertRow(*conn_, keys_.row_mac, row));
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
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantKeyColumns) +
                                                             " FROM tenant_keys WHERE tenant_id = ? ORDER BY version"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<KeyVersion> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    TenantKeyRow r = ReadTenantKeyRow(st);
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
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, *row));
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
                          crypto::Seal(*tenant_key, data_key.Reveal(), DataKeyAad(tenant_id, version, aad)));
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
