// Key lifecycle operations of the object service: reference counts, rewrap, key destruction and
// the catalog side of crypto-shredding (docs/KEYS.md). Run by the admin CLI while the daemon
// serves: every catalog write here is a short transaction, and rewrap only ever swaps a row's
// wrapped key if the row is unchanged since it was read.

#include <utility>

#include "coffre/service/object_service.h"
#include "service/data_key_aad.h"

namespace coffre::service {
namespace {

Error Err(Errc code, std::string message) { return Error{code, std::move(message)}; }

SResult<Bytes> TenantKeyId(const std::string& tenant_id) {
  auto id = HexDecode(tenant_id);
  if (!id || id->size() != crypto::kTenantKeyIdSize) {
    return Err(Errc::kInvalidArgument, "malformed tenant id");
  }
  return std::move(*id);
}

}  // namespace

SResult<std::map<uint32_t, uint64_t>> ObjectService::CountKeyReferences(const std::string& tenant_id) {
  auto id = TenantKeyId(tenant_id);
  if (!id.ok()) return id.error();
  auto counts = catalog_.CountKeyVersions(*id);
  if (!counts.ok()) return FromStatus(counts.status());
  return std::move(counts).value();
}

SResult<ObjectService::RewrapStats> ObjectService::RewrapBatch(const std::string& tenant_id, uint32_t from_version,
                                                                catalog::WrappedKeyCursor* cursor, uint32_t limit) {
  auto id = TenantKeyId(tenant_id);
  if (!id.ok()) return id.error();
  auto rows = catalog_.ListWrappedKeys(*id, from_version, cursor, limit);
  if (!rows.ok()) return FromStatus(rows.status());
  RewrapStats stats;
  stats.examined = rows->size();
  std::vector<catalog::KeyRewrap> rewraps;
  rewraps.reserve(rows->size());
  for (auto& row : *rows) {
    auto r = keys_.RewrapDataKey(tenant_id, row.key_info.tenant_key_version, row.key_info.wrapped_data_key,
                                 internal::DataKeyAad(row.object_id));
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kCorruption) {
        ++stats.failed;  // an altered row stays as it is; fsck and the operator see it
        continue;
      }
      return internal::FromKeyStatus(r.status());
    }
    if (r->tenant_key_version == from_version) {
      return Err(Errc::kInvalidArgument, "key version " + std::to_string(from_version) +
                                             " is the active version: nothing to rewrap from it");
    }
    rewraps.push_back(catalog::KeyRewrap{std::move(row), r->tenant_key_version, std::move(r->wrapped)});
  }
  auto updated = catalog_.RewrapKeys(rewraps);
  if (!updated.ok()) return FromStatus(updated.status());
  stats.rewrapped = *updated;
  stats.changed = rewraps.size() - *updated;
  return stats;
}

SResult<Done> ObjectService::DestroyKeyVersion(const std::string& tenant_id, uint32_t version) {
  auto versions = keys_.ListKeyVersions(tenant_id);
  if (!versions.ok()) return internal::FromKeyStatus(versions.status());
  for (const auto& v : *versions) {
    if (v.version == version && v.active) {
      return Err(Errc::kPreconditionFailed, "key version " + std::to_string(version) +
                                                " is the active version; rotate first (coffre key rotate), rewrap, "
                                                "then destroy the retired version");
    }
  }
  auto counts = CountKeyReferences(tenant_id);
  if (!counts.ok()) return counts.error();
  if (auto it = counts->find(version); it != counts->end() && it->second > 0) {
    return Err(Errc::kPreconditionFailed, "key version " + std::to_string(version) + " still wraps the data keys of " +
                                              std::to_string(it->second) +
                                              " objects or uploads; run coffre key rewrap first");
  }
  Status st = keys_.DestroyKeyVersion(tenant_id, version);
  if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, st.message());
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kInvalidArgument, st.message());
  if (!st.ok()) return FromStatus(st);
  return Done{};
}

SResult<uint64_t> ObjectService::RemoveTenantData(const std::string& tenant_id, uint32_t max_rows) {
  auto removed = catalog_.DeleteTenantData(tenant_id, max_rows);
  if (!removed.ok()) return FromStatus(removed.status());
  return *removed;
}

}  // namespace coffre::service
