// What admin_credential_store.h declares beside the store: role names, and a new credential's
// token wiped with it.

#include "coffre/keystore/admin_credential_store.h"

#include <optional>
#include <string_view>

#include "coffre/common/secret.h"

namespace coffre::keystore {

std::string_view AdminRoleName(AdminRole role) { return role == AdminRole::kAuditor ? "auditor" : "admin"; }

std::optional<AdminRole> ParseAdminRole(std::string_view name) {
  if (name == "admin") {
    return AdminRole::kAdmin;
  }
  if (name == "auditor") {
    return AdminRole::kAuditor;
  }
  return std::nullopt;
}

NewAdminCredential::~NewAdminCredential() { WipeString(token); }

}  // namespace coffre::keystore
