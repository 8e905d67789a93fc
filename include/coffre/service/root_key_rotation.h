#pragma once

// Root key rotation of a data directory (docs/KEYS.md "Root key rotation"): the keystore and the
// audit log's signing key move to a new root key together, under dual control, and the rotation
// is recorded in the audit log. keystore::RotateRootKey re-seals the keystore; this adds the audit
// log, which lives in another database (audit.db) and seals its signing key under the root key too.
//
// Refusals and failures name the `coffre keystore` commands an operator runs next: this is the
// logic of `coffre keystore rotate-root`.

#include <cstddef>
#include <string>
#include <vector>

#include "coffre/audit/audit_log.h"
#include "coffre/audit/event.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"
#include "coffre/keystore/keystore.h"
#include "coffre/service/dual_control.h"

namespace coffre::service {

// The new root key: exactly one of a key (read from a key file) or a new passphrase.
struct NewRootKey {
  SecretBytes key;
  // Stretched with a fresh Argon2id salt only once the current key is known to be right, as that
  // is slow; the salt and parameters then go into the keystore with the new key.
  SecretBytes passphrase;
  keystore::PassphraseKdfParams passphrase_params;
};

struct RootKeyRotationRequest {
  std::string data_dir;  // holds keystore.db and, when there is one, audit.db
  NewRootKey new_root;
  std::string approval_id;  // dual control: the granted approval, or ""
  DualControlPolicy policy;
  // Who rotates, for the rotation's audit record; the approval used is appended to its action.
  audit::RequestInfo request;
  audit::AuditLogOptions audit_options;  // how audit.db is opened
};

struct RootKeyRotated {
  std::string keystore_path;
  size_t tenant_keys = 0;  // tenant key versions re-sealed
  size_t access_keys = 0;  // access-key secrets re-sealed
  // The keystore uses the new key, but a step after the switch failed: the audit log still holds
  // a copy of its signing key under the old key, or the rotation's own record is missing. Each
  // says what; the rotation itself is done.
  std::vector<std::string> warnings;
};

// Rotates the root key of the data directory whose keystore `keys` is, opened with `current_root`.
// The audit log has no transaction spanning both databases, so the order makes every crash point
// safe: (1) audit.db gains a copy of its signing key sealed under the new key (it then opens with
// either key), (2) the keystore switches to the new key in one transaction, (3) the copy under the
// old key is dropped. Whichever key the keystore accepts opens the audit log.
//
// Refused with nothing changed: InvalidArgument when the new key is the current one; the errors of
// DualControl::Authorize (PermissionDenied without a required approval) and of opening the audit
// log; a failure of (1) or (2), whose message says the keystore is unchanged. A used approval is
// released when the rotation fails.
Result<RootKeyRotated> RotateDataDirRootKey(keystore::Keystore& keys, const SecretBytes& current_root,
                                            const RootKeyRotationRequest& request);

}  // namespace coffre::service
