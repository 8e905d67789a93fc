// AdminCredentialStore on SQLite (sqlite_keystore.h): admin API credentials and their tokens.

#include <sodium.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coffre/crypto/hash.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"
#include "keystore/sqlite_keystore.h"

namespace coffre::keystore::internal {

using db::Statement;

namespace {

Result<AdminCredential> ToAdminCredential(const AdminCredentialRow& r) {
  AdminCredential c;
  c.name = r.name;
  auto role = ParseAdminRole(r.role);
  if (!role) {
    return Status::Corruption("admin credential " + LoggableId(r.name) + " has an unknown role");
  }
  c.role = *role;
  c.created = r.created;
  c.disabled = r.disabled;
  return c;
}

constexpr size_t kAdminTokenRandomBytes = 32;

// What is stored for a token: a MAC of its SHA-256 under the keystore's admin token key. A row
// written by someone without that key matches no token.
Bytes StoredTokenMac(const SecretBytes& token_key, std::string_view token) {
  crypto::Sha256Digest digest = crypto::Sha256::Digest(AsBytes(token));
  Bytes mac = AdminTokenMac(token_key, digest);
  sodium_memzero(digest.data(), digest.size());
  return mac;
}

// Unpadded base64url, so a token needs no quoting in a header, a shell or a URL.
std::string Base64Url(ByteView data) {
  std::string s = Base64Encode(data);
  while (!s.empty() && s.back() == '=') {
    s.pop_back();
  }
  for (char& c : s) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    }
  }
  return s;
}

}  // namespace

Result<NewAdminCredential> SqliteKeystore::CreateAdminCredential(const std::string& name, AdminRole role) {
  if (!IsValidTenantName(name)) {
    return Status::InvalidArgument("invalid credential name '" + name + "': expected [a-z0-9][a-z0-9._-]{0,62}");
  }
  NewAdminCredential out;
  out.credential.name = name;
  out.credential.role = role;
  out.credential.created = Now();
  {
    SecretBytes random = SecretBytes::Random(kAdminTokenRandomBytes);
    std::string encoded = Base64Url(random.Reveal());
    out.token.reserve(kAdminTokenPrefix.size() + encoded.size());
    out.token.append(kAdminTokenPrefix);
    out.token.append(encoded);
    WipeString(encoded);
  }
  AdminCredentialRow row{name,
                         std::string(AdminRoleName(role)),
                         StoredTokenMac(keys_.admin_token, out.token),
                         out.credential.created,
                         std::nullopt,
                         1,
                         {}};
  Status written = WriteAndInvalidate([&]() -> Status {
    Status inserted = InsertRow(*conn_, keys_.row_mac, row);
    if (inserted.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("admin credential " + name + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(inserted);
    Saw(AdminRowKey(name), row.gen);
    return RecordEvent(*conn_, out.credential.created, "", "admin-credential-created", 0,
                       name + " (" + std::string(AdminRoleName(role)) + ")");
  });
  if (!written.ok()) {
    return written;
  }
  return out;
}

Result<std::vector<AdminCredential>> SqliteKeystore::ListAdminCredentials() {
  std::lock_guard lock(db_mu_);
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAdminCredentialColumns) +
                                                             " FROM admin_credentials ORDER BY name"));
  std::vector<AdminCredential> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    AdminCredentialRow r = ReadAdminCredentialRow(st);
    COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ToAdminCredential(r));
    if (RowCheck check = Check(AdminRowKey(r.name), r); check != RowCheck::kOk) {
      // Listed (so that it can be disabled), as what it is treated as: disabled.
      (void)Refuse("admin credential " + LoggableId(r.name), check, Status::Ok());
      c.disabled = c.disabled.value_or(0);
    }
    out.push_back(std::move(c));
  }
  return out;
}

Status SqliteKeystore::DisableAdminCredential(const std::string& name) {
  const UnixMillis now = Now();
  return WriteAndInvalidate([&]() -> Status {
    AdminCredentialRow r;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAdminCredentialColumns) +
                                                                 " FROM admin_credentials WHERE name = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(name));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("no admin credential named " + name);
      }
      r = ReadAdminCredentialRow(st);
    }
    const std::string row_key = AdminRowKey(name);
    const RowCheck check = Check(row_key, r);
    if (check != RowCheck::kOk) {
      // Disabling a failing row makes it harmless and valid again: the way to clear a forgery.
      (void)Refuse("admin credential " + LoggableId(name), check, Status::Ok());
    } else if (r.disabled) {
      return Status::FailedPrecondition("admin credential " + name + " is already disabled");
    }
    r.disabled = now;
    r.gen = NextGen(row_key, r.gen);
    COFFRE_RETURN_IF_ERROR(UpdateRow(*conn_, keys_.row_mac, r));
    Saw(row_key, r.gen);
    return RecordEvent(*conn_, now, "", "admin-credential-disabled", 0, name);
  });
}

Result<AdminCredential> SqliteKeystore::AuthenticateAdminToken(std::string_view token) {
  const Bytes token_mac = StoredTokenMac(keys_.admin_token, token);
  std::optional<AdminCredentialRow> match;
  {
    std::lock_guard lock(db_mu_);
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn_->PrepareCached("SELECT " + std::string(kAdminCredentialColumns) +
                                                               " FROM admin_credentials"));
    // Every row is compared, whatever matched before: the time taken does not depend on which
    // stored MAC (if any) the token's MAC equals.
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      AdminCredentialRow r = ReadAdminCredentialRow(st);
      if (ConstantTimeEquals(token_mac, r.token_mac)) {
        match = std::move(r);
      }
    }
    if (!match) {
      return Status::NotFound("unknown admin token");
    }
    if (RowCheck check = Check(AdminRowKey(match->name), *match); check != RowCheck::kOk) {
      return Refuse("admin credential " + LoggableId(match->name), check, Status::NotFound("unknown admin token"));
    }
  }
  COFFRE_ASSIGN_OR_RETURN(AdminCredential c, ToAdminCredential(*match));
  if (c.disabled) {
    return Status::PermissionDenied("admin credential " + c.name + " is disabled");
  }
  return c;
}

}  // namespace coffre::keystore::internal
