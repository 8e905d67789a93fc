#pragma once

// The tenants the keystore knows (part of keystore.h's Keystore): who they are and whether they
// were crypto-shredded. Their keys are TenantKeyStore's, their access keys AccessKeyStore's.

#include <optional>
#include <string>
#include <vector>

#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::keystore {

struct Tenant {
  std::string id;    // 32 lower-case hex chars (16 random bytes): the tenant key id in blob headers
  std::string name;  // unique, [a-z0-9][a-z0-9._-]{0,62}
  UnixMillis created = 0;
  std::optional<UnixMillis> shredded;  // set once its keys were destroyed (ShredTenant)
};

class TenantStore {
 public:
  // Creates the tenant with key version 1. AlreadyExists if the name is taken; InvalidArgument
  // for a bad name.
  virtual Result<Tenant> CreateTenant(const std::string& name) = 0;
  virtual Result<std::vector<Tenant>> ListTenants() = 0;
  virtual Result<Tenant> GetTenantByName(const std::string& name) = 0;  // NotFound
  virtual Result<Tenant> GetTenant(const std::string& tenant_id) = 0;   // NotFound

 protected:
  // Owned through Keystore, never through this part of it.
  ~TenantStore() = default;
};

}  // namespace coffre::keystore
