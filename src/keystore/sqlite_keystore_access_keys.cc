// AccessKeyStore on SQLite (sqlite_keystore.h): access keys, their cached secrets and their
// coalesced last_used times.

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"
#include "keystore/sqlite_keystore.h"

namespace coffre::keystore::internal {

using db::Statement;
using db::Transaction;

namespace {

AccessKey ToAccessKey(const AccessKeyRow& r) {
  AccessKey k;
  k.access_key_id = r.access_key_id;
  k.tenant_id = r.tenant_id;
  k.enabled = r.enabled;
  k.created = r.created;
  k.last_used = r.last_used;
  return k;
}

}  // namespace

// --- access keys -------------------------------------------------------------------------

Result<NewAccessKey> SqliteKeystore::CreateAccessKey(const std::string& tenant_id) {
  NewAccessKey out;
  out.key.tenant_id = tenant_id;
  out.key.enabled = true;
  out.key.created = Now();
  auto secret = std::make_shared<SecretBytes>(kSecretLength);
  RandomChars(kSecretAlphabet, secret->RevealMutable());

  std::lock_guard lock(db_mu_);
  // An id collision (36^18 ids) is all but impossible; retrying costs nothing.
  for (int attempt = 0;; ++attempt) {
    std::string id(kAccessKeyIdLength, 'C');
    id[1] = 'O';
    RandomChars(kAccessKeyIdAlphabet, std::span(reinterpret_cast<uint8_t*>(id.data()) + 2, kAccessKeyIdLength - 2));
    COFFRE_ASSIGN_OR_RETURN(Bytes sealed,
                            crypto::Seal(keys_.wrap, secret->Reveal(), AccessKeySecretAad(id, tenant_id)));
    pending_seen_.clear();
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    COFFRE_ASSIGN_OR_RETURN(std::optional<UnixMillis> shredded, TenantShredded(tenant_id));
    if (shredded) {
      return Status::FailedPrecondition("tenant " + tenant_id + std::string(kShreddedMessage));
    }
    AccessKeyRow row{id, tenant_id, sealed, true, out.key.created, std::nullopt, 1, {}};
    Status s = InsertRow(*conn_, keys_.row_mac, row);
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
                            conn_->PrepareCached("SELECT " + std::string(kAccessKeyColumns) +
                                                 " FROM access_keys WHERE tenant_id = ? ORDER BY access_key_id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      AccessKeyRow r = ReadAccessKeyRow(st);
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
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAccessKeyColumns) +
                                                                 " FROM access_keys WHERE access_key_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("unknown access key " + access_key_id);
      }
      r = ReadAccessKeyRow(st);
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
  auto secret = crypto::OpenSecret(keys_.wrap, sealed, AccessKeySecretAad(access_key_id, entry.key.tenant_id));
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
  if (!IsValidAccessKeyId(access_key_id)) {
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
                              conn_->PrepareCached("SELECT " + std::string(kAccessKeyColumns) +
                                                   " FROM access_keys WHERE access_key_id = ? AND tenant_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(access_key_id, tenant_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("the tenant has no access key " + access_key_id);
      }
      r = ReadAccessKeyRow(st);
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
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, r));
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

}  // namespace coffre::keystore::internal
