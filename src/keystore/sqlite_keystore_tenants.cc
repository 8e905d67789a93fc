// TenantStore on SQLite (sqlite_keystore.h), and the tenant row the other parts check first.

#include <memory>
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
using db::Transaction;

namespace {

Tenant ToTenant(const TenantRow& r) {
  Tenant t;
  t.id = r.id;
  t.name = r.name;
  t.created = r.created;
  t.shredded = r.shredded;
  return t;
}

}  // namespace

Result<TenantRow> SqliteKeystore::LoadTenantRow(const std::string& tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn_->PrepareCached("SELECT " + std::string(kTenantColumns) + " FROM tenants WHERE id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("no tenant with id " + tenant_id);
  }
  TenantRow r = ReadTenantRow(st);
  if (RowCheck c = Check(TenantRowKey(r.id), r); c != RowCheck::kOk) {
    return Refuse("tenant " + LoggableId(r.id), c, Status::NotFound("no tenant with id " + tenant_id));
  }
  return r;
}

Result<std::optional<UnixMillis>> SqliteKeystore::TenantShredded(const std::string& tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(TenantRow r, LoadTenantRow(tenant_id));
  return std::optional<UnixMillis>(r.shredded);
}

// --- tenants -----------------------------------------------------------------------------

Result<Tenant> SqliteKeystore::CreateTenant(const std::string& name) {
  if (!IsValidTenantName(name)) {
    return Status::InvalidArgument("invalid tenant name '" + name + "': expected [a-z0-9][a-z0-9._-]{0,62}");
  }
  Tenant t;
  t.id = RandomId(crypto::kTenantKeyIdSize);
  t.name = name;
  t.created = Now();
  constexpr uint32_t kFirstVersion = 1;
  auto key = std::make_shared<const SecretBytes>(SecretBytes::Random(crypto::kKeySize));
  COFFRE_ASSIGN_OR_RETURN(Bytes wrapped, crypto::Seal(keys_.wrap, key->Reveal(), TenantKeyAad(t.id, kFirstVersion)));
  {
    std::lock_guard lock(db_mu_);
    pending_seen_.clear();
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_));
    {
      TenantRow row{t.id, t.name, t.created, std::nullopt, 1, {}};
      Status s = InsertRow(*conn_, keys_.row_mac, row);
      if (s.code() == StatusCode::kAlreadyExists) {
        return Status::AlreadyExists("tenant " + name + " already exists");
      }
      COFFRE_RETURN_IF_ERROR(s);
      Saw(TenantRowKey(t.id), row.gen);
    }
    {
      TenantKeyRow row{t.id, kFirstVersion, wrapped, "active", t.created, std::nullopt, 1, {}};
      COFFRE_RETURN_IF_ERROR(InsertRow(*conn_, keys_.row_mac, row));
      Saw(TenantKeyRowKey(t.id, kFirstVersion), row.gen);
    }
    COFFRE_RETURN_IF_ERROR(RecordEvent(*conn_, t.created, t.id, "tenant-created", kFirstVersion, t.name));
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    PublishSeen();
  }
  const UnixMillis now = Now();
  std::lock_guard lock(cache_mu_);
  tenant_keys_[{KeyCacheKey(KeyRef(t.id)), kFirstVersion}] = CachedKey{std::move(key), now, epoch_};
  active_versions_[KeyCacheKey(KeyRef(t.id))] = CachedActive{kFirstVersion, now, epoch_};
  return t;
}

Result<std::vector<Tenant>> SqliteKeystore::ListTenants() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(
      Statement st, conn_->PrepareCached("SELECT " + std::string(kTenantColumns) + " FROM tenants ORDER BY name"));
  std::vector<Tenant> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    TenantRow r = ReadTenantRow(st);
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
  TenantRow r = ReadTenantRow(st);
  if (RowCheck c = Check(TenantRowKey(r.id), r); c != RowCheck::kOk) {
    return Refuse("tenant " + LoggableId(r.id), c, Status::NotFound("no tenant " + what));
  }
  return ToTenant(r);
}

Result<Tenant> SqliteKeystore::GetTenantByName(const std::string& name) {
  return QueryTenant("SELECT " + std::string(kTenantColumns) + " FROM tenants WHERE name = ?", name, "named " + name);
}

Result<Tenant> SqliteKeystore::GetTenant(const std::string& tenant_id) {
  return QueryTenant("SELECT " + std::string(kTenantColumns) + " FROM tenants WHERE id = ?", tenant_id,
                     "with id " + tenant_id);
}

}  // namespace coffre::keystore::internal
