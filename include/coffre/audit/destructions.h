#pragma once

// The key destructions the audit log records (tenant.shred, tenant_key.destroy, named_key.destroy), read straight
// from audit.db for `coffre keystore restore`, which must re-apply them to an older keystore
// backup so that a restore never brings a destroyed key back (docs/KEYS.md "Backup and restore").

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::audit {

struct DestructionRecord {
  std::string tenant;        // tenant id
  std::string key_id;        // the key's id: the tenant's for its default key, or a named key's
  uint32_t key_version = 0;  // the version destroyed (tenant_key.destroy); for tenant.shred, the
                             // active version at the time (every version was destroyed); 0 for
                             // named_key.destroy (every version of that key)
  Operation operation = Operation::kTenantShred;
  UnixMillis time_ms = 0;
};

// The successful tenant.shred, tenant_key.destroy and named_key.destroy records of each of `tenants` with time_ms >=
// since_ms, in log order. Both are written before the change they describe (docs/AUDIT.md 1.1),
// so a record may also stand for a destruction that then failed: re-applying it errs on the side
// of destruction. Reads only (no signing key needed, nothing written); NotFound if there is no log
// at `path`, an error if it cannot be read.
Result<std::vector<DestructionRecord>> ReadDestructions(const std::string& path,
                                                        const std::vector<std::string>& tenants, UnixMillis since_ms);

}  // namespace coffre::audit
