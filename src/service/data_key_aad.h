#pragma once

// Private to the service module: what binds a wrapped data key to the object or upload it
// encrypts. The object service wraps and unwraps with it, and rewrap (key_lifecycle.cc) re-wraps
// under the same binding; it is a storage format (docs/KEYS.md): never change an encoding.

#include <string>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"
#include "coffre/service/object_service.h"

namespace coffre::service::internal {

// A multipart object keeps its upload id as object id, so one rule serves both.
inline Bytes DataKeyAad(const std::string& object_id) {
  std::string s = "coffre/v1/object/" + object_id;
  return Bytes(s.begin(), s.end());
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
