#pragma once

// Private to the service module: what binds a wrapped data key to the object or upload it
// encrypts. The object service wraps and unwraps with it, and rewrap (key_lifecycle.cc) re-wraps
// under the same binding; it is a storage format (docs/KEYS.md): never change an encoding, add
// one.

#include <initializer_list>
#include <string>
#include <string_view>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/object_service.h"

namespace coffre::service::internal {

// Each field as a 4-byte big-endian length and its bytes, so that no two lists encode alike.
inline Bytes LengthPrefixed(std::initializer_list<std::string_view> fields) {
  Bytes out;
  for (std::string_view field : fields) {
    const auto n = static_cast<uint32_t>(field.size());
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(n >> shift));
    out.insert(out.end(), field.begin(), field.end());
  }
  return out;
}

// What a wrapped data key is bound to, besides its tenant and key version (the keystore adds
// those): the bucket name, the object key and the object id, each length-prefixed. A catalog
// writer who moves a row to another key or bucket of its tenant, or swaps two rows, leaves a data
// key that does not open. A multipart object keeps its upload id as object id, so one rule
// serves both.
inline Bytes DataKeyAad(std::string_view bucket, std::string_view key, std::string_view object_id) {
  return LengthPrefixed({"coffre/v2/object", bucket, key, object_id});
}

// What binds the second copy of a data key that a version 2 blob carries in its header: the blob's
// id (the keystore adds the tenant and version). The blob and the keystore then open it without
// the catalog row, whose bucket, key and object id are in the blob's sealed description, so a lost
// catalog can be rebuilt; the catalog's copy, bound to the row, is what reads use.
inline Bytes BlobHeaderKeyAad(std::string_view blob_id) { return LengthPrefixed({"coffre/v2/blob-header", blob_id}); }

// The binding of data keys wrapped before the one above existed: the object id alone. Opened,
// never written, so the objects and uploads an older release stored stay readable.
inline Bytes LegacyDataKeyAad(std::string_view object_id) {
  std::string s = "coffre/v1/object/" + std::string(object_id);
  return Bytes(s.begin(), s.end());
}

// The key a row's data key is wrapped under: the tenant's default key, or the named key whose id
// the row records.
inline keystore::KeyRef RowKey(const std::string& tenant_id, const catalog::KeyInfo& key_info) {
  return keystore::KeyRef(tenant_id, HexEncode(key_info.tenant_key_id));
}

// A catalog row's data key, opened, and the binding it opened under: wrapped again with that same
// binding (under another version), it stays the row's.
struct OpenedRowKey {
  SecretBytes key;
  Bytes aad;
};

// A catalog row's data key under the binding it was wrapped with: the current one, else the
// legacy one. A key that opens under neither reports the current binding's error.
inline Result<OpenedRowKey> OpenRowDataKey(keystore::TenantKeyStore& keys, const std::string& tenant_id,
                                           const catalog::KeyInfo& key_info, std::string_view bucket,
                                           std::string_view key, std::string_view object_id) {
  const keystore::KeyRef row_key = RowKey(tenant_id, key_info);
  Bytes aad = DataKeyAad(bucket, key, object_id);
  auto current = keys.UnwrapDataKey(row_key, key_info.tenant_key_version, key_info.wrapped_data_key, aad);
  if (current.ok()) return OpenedRowKey{std::move(current).value(), std::move(aad)};
  if (current.status().code() != StatusCode::kCorruption) return current.status();
  Bytes legacy_aad = LegacyDataKeyAad(object_id);
  auto legacy = keys.UnwrapDataKey(row_key, key_info.tenant_key_version, key_info.wrapped_data_key, legacy_aad);
  if (legacy.ok()) return OpenedRowKey{std::move(legacy).value(), std::move(legacy_aad)};
  return current.status();
}

inline Result<SecretBytes> UnwrapRowDataKey(keystore::TenantKeyStore& keys, const std::string& tenant_id,
                                            const catalog::KeyInfo& key_info, std::string_view bucket,
                                            std::string_view key, std::string_view object_id) {
  COFFRE_ASSIGN_OR_RETURN(OpenedRowKey opened, OpenRowDataKey(keys, tenant_id, key_info, bucket, key, object_id));
  return std::move(opened.key);
}

// A row's data key re-wrapped under the active version of the key it is under, and the data key
// itself, for the copies bound to the row's blobs: one unwrap serves both.
struct RewrappedRowKey : keystore::RewrappedKey {
  SecretBytes data_key;
};

// Re-wraps a row's data key under the active version of its key, keeping the binding it had.
inline Result<RewrappedRowKey> RewrapRowDataKey(keystore::TenantKeyStore& keys, const std::string& tenant_id,
                                                const catalog::KeyInfo& key_info, std::string_view bucket,
                                                std::string_view key, std::string_view object_id) {
  COFFRE_ASSIGN_OR_RETURN(OpenedRowKey opened, OpenRowDataKey(keys, tenant_id, key_info, bucket, key, object_id));
  const keystore::KeyRef row_key = RowKey(tenant_id, key_info);
  RewrappedRowKey out;
  COFFRE_ASSIGN_OR_RETURN(out.tenant_key_version, keys.ActiveKeyVersion(row_key));
  COFFRE_ASSIGN_OR_RETURN(out.wrapped, keys.WrapDataKey(row_key, out.tenant_key_version, opened.key, opened.aad));
  out.data_key = std::move(opened.key);
  return out;
}

// Maps a keystore error met while wrapping or unwrapping a data key. A crypto-shredded tenant
// (PermissionDenied from the keystore) is AccessDenied: the data is gone on purpose, for good,
// and a 403 is not retried by SDKs the way a 500 is. Everything else as FromStatus.
inline Error FromKeyStatus(const Status& status) {
  if (status.code() == StatusCode::kPermissionDenied) {
    return Error{Errc::kAccessDenied, status.message()};
  }
  return FromStatus(status);
}

}  // namespace coffre::service::internal
