// The keystore's tables (sqlite_keystore.h): the migrations that create and update them, applied in
// order by db::Migrate.

#include <algorithm>
#include <iterator>
#include <span>
#include <string_view>

#include "coffre/db/sqlite.h"
#include "keystore/format.h"

namespace coffre::keystore::internal {
namespace {

constexpr std::string_view kMigrations[] = {
    R"sql(
CREATE TABLE meta(
  name TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenants(
  id TEXT NOT NULL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tenant_keys(
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  version INTEGER NOT NULL CHECK(version >= 1),
  wrapped_key BLOB NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('active', 'retired')),
  created INTEGER NOT NULL,
  PRIMARY KEY(tenant_id, version)
) WITHOUT ROWID;
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys(tenant_id) WHERE state = 'active';

CREATE TABLE access_keys(
  access_key_id TEXT NOT NULL PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  secret BLOB NOT NULL,
  enabled INTEGER NOT NULL CHECK(enabled IN (0, 1)),
  created INTEGER NOT NULL,
  last_used INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_by_tenant ON access_keys(tenant_id, access_key_id);
)sql",
    // Key lifecycle: shredded tenants, and the key events kept for auditors.
    R"sql(
ALTER TABLE tenants ADD COLUMN shredded INTEGER;

CREATE TABLE key_events(
  id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  event TEXT NOT NULL,
  version INTEGER NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX key_events_by_tenant ON key_events(tenant_id, id);
)sql",
    // Admin API credentials: only the SHA-256 of each bearer token is kept.
    R"sql(
CREATE TABLE admin_credentials(
  name TEXT NOT NULL PRIMARY KEY,
  role TEXT NOT NULL CHECK(role IN ('admin', 'auditor')),
  token_sha256 BLOB NOT NULL UNIQUE CHECK(length(token_sha256) = 32),
  created INTEGER NOT NULL,
  disabled INTEGER
) WITHOUT ROWID;
)sql",
    // Dual control: approvals of the guarded operations (keystore.h, GuardedOperation).
    R"sql(
CREATE TABLE approvals(
  id TEXT NOT NULL PRIMARY KEY,
  operation TEXT NOT NULL CHECK(operation IN ('tenant_key.destroy', 'tenant.shred', 'root_key.rotate')),
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  requested INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  approved_by TEXT,
  approved INTEGER,
  used INTEGER,
  CHECK(approved_by IS NULL OR approved_by <> requested_by)
) WITHOUT ROWID;
CREATE INDEX approvals_by_time ON approvals(requested, id);
)sql",
    // The destroy fence (keystore.h, SetKeyVersionDestroying): when a version's destruction began.
    R"sql(
ALTER TABLE tenant_keys ADD COLUMN destroying INTEGER;
)sql",
    // Authenticated rows (rows.h): a generation and a MAC under a key derived from the root key.
    // The MACs and the token MACs are written by Keystore::Open, which holds the root key.
    R"sql(
ALTER TABLE tenants ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN mac BLOB;
ALTER TABLE tenant_keys ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenant_keys ADD COLUMN mac BLOB;
ALTER TABLE access_keys ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access_keys ADD COLUMN mac BLOB;
ALTER TABLE admin_credentials RENAME COLUMN token_sha256 TO token_mac;
ALTER TABLE admin_credentials ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE admin_credentials ADD COLUMN mac BLOB;
ALTER TABLE approvals ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE approvals ADD COLUMN mac BLOB;
)sql",
    // Dual control guards admin credential creation too. SQLite cannot alter a CHECK constraint,
    // so the table is copied; rows keep their gen and MAC (the MAC does not cover the table).
    R"sql(
CREATE TABLE approvals_new(
  id TEXT NOT NULL PRIMARY KEY,
  operation TEXT NOT NULL CHECK(operation IN ('tenant_key.destroy', 'tenant.shred', 'root_key.rotate',
                                              'admin_credential.create')),
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  requested INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  approved_by TEXT,
  approved INTEGER,
  used INTEGER,
  gen INTEGER NOT NULL DEFAULT 0,
  mac BLOB,
  CHECK(approved_by IS NULL OR approved_by <> requested_by)
) WITHOUT ROWID;
INSERT INTO approvals_new(id, operation, tenant_id, version, requested_by, requested, expires, approved_by,
                          approved, used, gen, mac)
  SELECT id, operation, tenant_id, version, requested_by, requested, expires, approved_by, approved, used, gen, mac
  FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_by_time ON approvals(requested, id);
)sql",
    // Named keys. Their versions live in tenant_keys beside the default keys', under the named
    // key's id in place of the tenant id (a default key's id is its tenant's id), so tenant_keys
    // loses its reference to tenants; and destroying a named key becomes a guarded operation.
    R"sql(
CREATE TABLE named_keys(
  key_id TEXT NOT NULL PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  name TEXT NOT NULL,
  created INTEGER NOT NULL,
  destroyed INTEGER,
  gen INTEGER NOT NULL DEFAULT 0,
  mac BLOB,
  UNIQUE(tenant_id, name)
) WITHOUT ROWID;

CREATE TABLE tenant_keys_new(
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL CHECK(version >= 1),
  wrapped_key BLOB NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('active', 'retired')),
  created INTEGER NOT NULL,
  destroying INTEGER,
  gen INTEGER NOT NULL DEFAULT 0,
  mac BLOB,
  PRIMARY KEY(tenant_id, version)
) WITHOUT ROWID;
INSERT INTO tenant_keys_new(tenant_id, version, wrapped_key, state, created, destroying, gen, mac)
  SELECT tenant_id, version, wrapped_key, state, created, destroying, gen, mac FROM tenant_keys;
DROP TABLE tenant_keys;
ALTER TABLE tenant_keys_new RENAME TO tenant_keys;
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys(tenant_id) WHERE state = 'active';

CREATE TABLE approvals_new(
  id TEXT NOT NULL PRIMARY KEY,
  operation TEXT NOT NULL CHECK(operation IN ('tenant_key.destroy', 'tenant.shred', 'root_key.rotate',
                                              'admin_credential.create', 'named_key.destroy')),
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  requested_by TEXT NOT NULL,
  requested INTEGER NOT NULL,
  expires INTEGER NOT NULL,
  approved_by TEXT,
  approved INTEGER,
  used INTEGER,
  gen INTEGER NOT NULL DEFAULT 0,
  mac BLOB,
  CHECK(approved_by IS NULL OR approved_by <> requested_by)
) WITHOUT ROWID;
INSERT INTO approvals_new(id, operation, tenant_id, version, requested_by, requested, expires, approved_by,
                          approved, used, gen, mac)
  SELECT id, operation, tenant_id, version, requested_by, requested, expires, approved_by, approved, used, gen, mac
  FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_by_time ON approvals(requested, id);
)sql",
};

}  // namespace

Status MigrateKeystoreSchema(db::Connection& conn) { return db::Migrate(conn, kMigrations); }
Status MigrateKeystoreSchemaTo(db::Connection& conn, size_t version) {
  return db::Migrate(conn,
                     std::span<const std::string_view>(kMigrations).first(std::min(version, std::size(kMigrations))));
}

}  // namespace coffre::keystore::internal
