#include "coffre/audit/audit_log.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <utility>

#include "coffre/crypto/aead.h"
#include "coffre/crypto/hash.h"
#include "coffre/crypto/root_subkeys.h"
#include "coffre/db/sqlite.h"
#include "fields.h"

namespace coffre::audit {
namespace {

constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE signing_keys (
  key_id        TEXT PRIMARY KEY,
  public_key    BLOB NOT NULL,
  sealed_secret BLOB NOT NULL,   -- AES-256-GCM under the root key, AAD "coffre/v1/audit-signing-key/<key_id>"
  created       INTEGER NOT NULL,
  active        INTEGER NOT NULL
);
CREATE TABLE records (
  gseq           INTEGER PRIMARY KEY,  -- global chain position, from 1
  tenant         TEXT NOT NULL,
  seq            INTEGER NOT NULL,     -- tenant chain position, from 1
  time_ms        INTEGER NOT NULL,
  key_id         TEXT NOT NULL,
  key_version    INTEGER NOT NULL,
  operation      TEXT NOT NULL,
  action         TEXT NOT NULL,
  bucket         TEXT NOT NULL,
  object_key     TEXT NOT NULL,
  object_id      TEXT NOT NULL,
  request_id     TEXT NOT NULL,
  access_key_id  TEXT NOT NULL,
  client_address TEXT NOT NULL,
  outcome        TEXT NOT NULL,
  prev           BLOB NOT NULL,
  hash           BLOB NOT NULL,
  global_hash    BLOB NOT NULL,
  UNIQUE (tenant, seq)
);
CREATE INDEX records_by_tenant_time ON records (tenant, time_ms);
CREATE TABLE heads (
  chain            TEXT PRIMARY KEY,   -- 't:' || tenant, or 'g' for the global chain
  seq              INTEGER NOT NULL,
  hash             BLOB NOT NULL,
  checkpointed_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE checkpoints (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  scope     TEXT NOT NULL,
  tenant    TEXT NOT NULL,
  seq       INTEGER NOT NULL,
  head      BLOB NOT NULL,
  time_ms   INTEGER NOT NULL,
  signer    TEXT NOT NULL,
  signature BLOB NOT NULL
);
CREATE INDEX checkpoints_by_chain ON checkpoints (scope, tenant, seq);
CREATE TABLE probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
)sql";

// Retention: where the live log starts once older records were archived and pruned.
constexpr std::string_view kSchemaV2 = R"sql(
CREATE TABLE archive_boundary (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  gseq INTEGER NOT NULL,   -- last archived (pruned) global position
  hash BLOB NOT NULL       -- G(gseq)
);
CREATE TABLE archive_heads (
  tenant TEXT PRIMARY KEY, -- each tenant's last archived record
  seq    INTEGER NOT NULL,
  hash   BLOB NOT NULL
);
)sql";

// Root key rotation: copies of a signing key's private half sealed under other root keys, found
// by a fingerprint of the root key that opens them. signing_keys.sealed_secret stays the copy
// under the root key the log was created with, emptied once a rotation has dropped that key.
constexpr std::string_view kSchemaV3 = R"sql(
CREATE TABLE signing_key_seals (
  key_id           TEXT NOT NULL,
  root_fingerprint BLOB NOT NULL,   -- RootKeyFingerprint(root key)
  sealed_secret    BLOB NOT NULL,   -- as signing_keys.sealed_secret, under that root key
  created          INTEGER NOT NULL,
  PRIMARY KEY (key_id, root_fingerprint)
);
)sql";

// The last state this log signed (docs/AUDIT.md, "What the log checks at open"): where the live
// log starts (the archive boundary, with each tenant's archived head) and every chain head,
// under one signature over a statement of its own. It is overwritten at every checkpoint, so an
// attacker who deletes the later checkpoints cannot fall back on it. audit_upgrade marks a log
// that predates it: the first open verifies that log whole before signing its state.
constexpr std::string_view kSchemaV4 = R"sql(
CREATE TABLE signed_state (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  boundary_gseq INTEGER NOT NULL,
  boundary_hash BLOB NOT NULL,
  gseq          INTEGER NOT NULL,  -- global head signed
  global_head   BLOB NOT NULL,     -- G(gseq)
  time_ms       INTEGER NOT NULL,
  signer        TEXT NOT NULL,
  signature     BLOB NOT NULL      -- Ed25519 over StateStatement()
);
CREATE TABLE signed_heads (
  tenant TEXT PRIMARY KEY,         -- each tenant's head at signed_state.gseq
  seq    INTEGER NOT NULL,
  hash   BLOB NOT NULL
);
CREATE TABLE audit_upgrade (id INTEGER PRIMARY KEY CHECK (id = 1));
INSERT INTO audit_upgrade (id) VALUES (1);
)sql";

constexpr std::string_view kRecordColumns =
    "seq, time_ms, tenant, key_id, key_version, operation, action, bucket, object_key, object_id, request_id, "
    "access_key_id, client_address, outcome, prev";

constexpr std::string_view kMigrations[] = {kSchemaV1, kSchemaV2, kSchemaV3, kSchemaV4};

constexpr std::chrono::seconds kUnhealthyRetryInterval{1};

Bytes SigningKeyAad(const std::string& key_id) {
  std::string s = "coffre/v1/audit-signing-key/" + key_id;
  return Bytes(s.begin(), s.end());
}

// How a root key reaches the signing key's private half: the subkey that seals it (AES-256-GCM,
// AAD SigningKeyAad) and the fingerprint that names that root key's copy in signing_key_seals.
// Both are derived (crypto/root_subkeys.h) so that the root key itself is never a cipher or MAC key.
struct SealKeys {
  SecretBytes seal;
  Bytes fingerprint;
};

// The first 16 bytes of HMAC-SHA256(key, label): names a key without revealing it.
Bytes FingerprintOf(const SecretBytes& key, std::string_view label) {
  const crypto::Sha256Digest mac = crypto::HmacSha256(key.Reveal(), AsBytes(label));
  return Bytes(mac.begin(), mac.begin() + 16);
}

SealKeys DeriveSealKeys(const SecretBytes& root_key) {
  SealKeys keys;
  keys.seal = crypto::DeriveRootSubkey(root_key, crypto::RootKeyPurpose::kAuditSigningKeySeal);
  const SecretBytes fingerprint_key =
      crypto::DeriveRootSubkey(root_key, crypto::RootKeyPurpose::kAuditRootKeyFingerprint);
  keys.fingerprint = FingerprintOf(fingerprint_key, "coffre/v2/audit-root-key-fingerprint");
  return keys;
}

// Earlier versions sealed under the root key itself and fingerprinted it with an HMAC keyed by it.
// Only read, to open and re-seal the copies such a version wrote (MigrateLegacySeals).
Bytes LegacyRootKeyFingerprint(const SecretBytes& root_key) {
  return FingerprintOf(root_key, "coffre/v1/audit-root-key-fingerprint");
}

enum class SealFormat { kDerived, kLegacy };

// The private half of a signing key and which stored copy opened it.
struct Unsealed {
  SecretBytes secret;
  SealFormat format = SealFormat::kDerived;
  bool in_seals_table = false;  // signing_key_seals, else signing_keys.sealed_secret
};

Result<std::optional<Bytes>> SealedCopy(db::Connection& conn, const std::string& key_id, const Bytes& fingerprint) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT sealed_secret FROM signing_key_seals "
                                                         "WHERE key_id = ? AND root_fingerprint = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key_id, fingerprint));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<Bytes>();
  }
  return std::optional<Bytes>(st.ColumnBlob(0));
}

// The private half of signing key `key_id` opened under `root_key`: the copy sealed for that root
// key (signing_key_seals), else the original copy (`original`, empty once dropped); a copy under
// the derived seal key first, then one an earlier version sealed under the root key itself.
Result<Unsealed> UnsealSigningSecret(db::Connection& conn, const std::string& key_id, ByteView original,
                                     const SecretBytes& root_key) {
  const Bytes aad = SigningKeyAad(key_id);
  const SealKeys keys = DeriveSealKeys(root_key);
  COFFRE_ASSIGN_OR_RETURN(std::optional<Bytes> copy, SealedCopy(conn, key_id, keys.fingerprint));
  if (copy) {
    if (auto s = crypto::OpenSecret(keys.seal, *copy, aad); s.ok()) {
      return Unsealed{std::move(s).value(), SealFormat::kDerived, true};
    }
  }
  if (!original.empty()) {
    if (auto s = crypto::OpenSecret(keys.seal, original, aad); s.ok()) {
      return Unsealed{std::move(s).value(), SealFormat::kDerived, false};
    }
  }
  COFFRE_ASSIGN_OR_RETURN(std::optional<Bytes> legacy, SealedCopy(conn, key_id, LegacyRootKeyFingerprint(root_key)));
  if (legacy) {
    if (auto s = crypto::OpenSecret(root_key, *legacy, aad); s.ok()) {
      return Unsealed{std::move(s).value(), SealFormat::kLegacy, true};
    }
  }
  if (!original.empty()) {
    if (auto s = crypto::OpenSecret(root_key, original, aad); s.ok()) {
      return Unsealed{std::move(s).value(), SealFormat::kLegacy, false};
    }
  }
  return Status::PermissionDenied("the root key does not open the audit log's signing key");
}

struct StoredSigningKey {
  std::string key_id;
  Bytes original;  // signing_keys.sealed_secret
};

Result<std::vector<StoredSigningKey>> ListSigningKeys(db::Connection& conn) {
  std::vector<StoredSigningKey> out;
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT key_id, sealed_secret FROM signing_keys"));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back({st.ColumnText(0), st.ColumnBlob(1)});
  }
  return out;
}

// Stores `secret` sealed under `root_key`'s derived seal key, as the copy for that root key.
Status PutSealedCopy(db::Connection& conn, const std::string& key_id, const SecretBytes& secret, const SealKeys& keys) {
  COFFRE_ASSIGN_OR_RETURN(Bytes sealed, crypto::Seal(keys.seal, secret.Reveal(), SigningKeyAad(key_id)));
  COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                          conn.Prepare("INSERT INTO signing_key_seals (key_id, root_fingerprint, sealed_secret, "
                                       "created) VALUES (?, ?, ?, ?) ON CONFLICT (key_id, root_fingerprint) "
                                       "DO UPDATE SET sealed_secret = excluded.sealed_secret"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(key_id, keys.fingerprint, sealed, ToUnixMillis(Clock::System().Now())));
  return st.Run();
}

// Re-seals, in the caller's transaction, every copy of a signing key that an earlier version
// sealed under `root_key` itself: each is replaced where it stands by a copy under the derived seal
// key (the original stays the original; a signing_key_seals copy moves to the derived fingerprint),
// and the raw-key copy is removed. The private halves, hence the public keys, do not change, so
// everything signed before still verifies. Returns how many copies were re-sealed.
Result<size_t> MigrateLegacySeals(db::Connection& conn, const SecretBytes& root_key) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<StoredSigningKey> stored, ListSigningKeys(conn));
  const SealKeys keys = DeriveSealKeys(root_key);
  size_t migrated = 0;
  for (const auto& k : stored) {
    // Copies for another root key (a rotation between its steps) wait for an open with that key.
    auto unsealed = UnsealSigningSecret(conn, k.key_id, k.original, root_key);
    if (!unsealed.ok() || unsealed->format != SealFormat::kLegacy) {
      continue;
    }
    if (unsealed->in_seals_table) {
      COFFRE_RETURN_IF_ERROR(PutSealedCopy(conn, k.key_id, unsealed->secret, keys));
      COFFRE_ASSIGN_OR_RETURN(db::Statement del, conn.Prepare("DELETE FROM signing_key_seals "
                                                              "WHERE key_id = ? AND root_fingerprint = ?"));
      COFFRE_RETURN_IF_ERROR(del.BindAll(k.key_id, LegacyRootKeyFingerprint(root_key)));
      COFFRE_RETURN_IF_ERROR(del.Run());
    } else {
      COFFRE_ASSIGN_OR_RETURN(Bytes sealed,
                              crypto::Seal(keys.seal, unsealed->secret.Reveal(), SigningKeyAad(k.key_id)));
      COFFRE_ASSIGN_OR_RETURN(db::Statement up,
                              conn.Prepare("UPDATE signing_keys SET sealed_secret = ? WHERE key_id = ?"));
      COFFRE_RETURN_IF_ERROR(up.BindAll(sealed, k.key_id));
      COFFRE_RETURN_IF_ERROR(up.Run());
    }
    ++migrated;
  }
  return migrated;
}

Hash HashFromBlob(ByteView b) {
  Hash h{};
  if (b.size() == h.size()) {
    std::copy(b.begin(), b.end(), h.begin());
  }
  return h;
}

// Reads a record from a statement selecting kRecordColumns first.
Record ReadRecord(const db::Statement& st) {
  Record r;
  r.seq = static_cast<uint64_t>(st.ColumnInt64(0));
  r.time_ms = st.ColumnInt64(1);
  r.tenant = st.ColumnText(2);
  r.key_id = st.ColumnText(3);
  r.key_version = static_cast<uint32_t>(st.ColumnInt64(4));
  r.operation = st.ColumnText(5);
  r.action = st.ColumnText(6);
  r.bucket = st.ColumnText(7);
  r.object_key = st.ColumnText(8);
  r.object_id = st.ColumnText(9);
  r.request_id = st.ColumnText(10);
  r.access_key_id = st.ColumnText(11);
  r.client_address = st.ColumnText(12);
  r.outcome = st.ColumnText(13);
  r.prev = HashFromBlob(st.ColumnBlobView(14));
  return r;
}

Checkpoint ReadCheckpoint(const db::Statement& st) {
  Checkpoint c;
  c.scope = st.ColumnText(0);
  c.tenant = st.ColumnText(1);
  c.seq = static_cast<uint64_t>(st.ColumnInt64(2));
  c.head = HashFromBlob(st.ColumnBlobView(3));
  c.time_ms = st.ColumnInt64(4);
  c.signer = st.ColumnText(5);
  c.signature = st.ColumnBlob(6);
  return c;
}

// A log an earlier version wrote (schema before the signed state) is upgraded only if its last
// record is signed by a global checkpoint (see UpgradeLocked). Checked before the schema step, so
// that a log this version refuses for that reason is left as the earlier version can still open
// it (and sign its tail by stopping cleanly).
Status CheckEarlierVersionTailSigned(db::Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(int64_t version, db::SchemaVersion(conn));
  if (version < 1 || version >= static_cast<int64_t>(std::size(kMigrations))) {
    return Status::Ok();
  }
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT max(gseq) FROM records"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row || st.ColumnIsNull(0)) {
    return Status::Ok();
  }
  const int64_t last = st.ColumnInt64(0);
  COFFRE_ASSIGN_OR_RETURN(db::Statement cp,
                          conn.Prepare("SELECT 1 FROM checkpoints WHERE scope = 'global' AND seq = ?"));
  COFFRE_RETURN_IF_ERROR(cp.BindAll(last));
  COFFRE_ASSIGN_OR_RETURN(bool signed_end, cp.Step());
  if (!signed_end) {
    return Status::FailedPrecondition(
        "audit.db was written by an earlier version and its last records (up to global seq " + std::to_string(last) +
        ") are covered by no signed checkpoint (the earlier version did not stop cleanly), so this version cannot "
        "tell them from a rewrite: start the earlier version once and stop it cleanly (it signs them), then start "
        "this one; nothing was changed");
  }
  return Status::Ok();
}

Result<bool> Exists(db::Connection& conn, const std::string& sql) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare(sql));
  return st.Step();
}

Result<SigningKey> LoadOrCreateSigningKey(db::Connection& conn, const SecretBytes& root_key, const Clock& clock) {
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  std::optional<std::string> key_id;
  SigningKey key;
  Bytes original;
  {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st, conn.Prepare("SELECT key_id, public_key, sealed_secret FROM signing_keys WHERE active = 1"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      key_id = st.ColumnText(0);
      key.public_key = st.ColumnBlob(1);
      original = st.ColumnBlob(2);
    }
  }
  if (key_id) {
    COFFRE_ASSIGN_OR_RETURN(Unsealed unsealed, UnsealSigningSecret(conn, *key_id, original, root_key));
    key.secret_key = std::move(unsealed.secret);
    if (KeyId(key.public_key) != *key_id) {
      return Status::Corruption("audit signing key id does not match its public key");
    }
    // A log an earlier version sealed under the root key itself is re-sealed under the derived key
    // here, in the same transaction as the read: either every such copy is re-sealed or none is.
    COFFRE_ASSIGN_OR_RETURN(size_t migrated, MigrateLegacySeals(conn, root_key));
    if (migrated > 0) {
      COFFRE_RETURN_IF_ERROR(tx.Commit());
      spdlog::info("audit log: re-sealed {} signing key cop{} under the key derived from the root key", migrated,
                   migrated == 1 ? "y" : "ies");
    }
    return key;
  }
  // A new key pair is made only for a log that has nothing signed yet: with records (or a signed
  // state, or an archive) a missing key means the table was emptied, and a new key would re-sign
  // whatever the database now says.
  for (const char* table : {"records", "checkpoints", "archive_boundary", "signed_state"}) {
    COFFRE_ASSIGN_OR_RETURN(bool used, Exists(conn, std::string("SELECT 1 FROM ") + table + " LIMIT 1"));
    if (used) {
      return Status::Corruption(
          "the audit log holds records but its signing key is missing (signing_keys was emptied); refusing to "
          "create a new signing key: restore audit.db from a backup");
    }
  }
  key = GenerateSigningKey();
  const std::string new_key_id = KeyId(key.public_key);
  COFFRE_ASSIGN_OR_RETURN(
      Bytes sealed, crypto::Seal(DeriveSealKeys(root_key).seal, key.secret_key.Reveal(), SigningKeyAad(new_key_id)));
  COFFRE_ASSIGN_OR_RETURN(db::Statement ins,
                          conn.Prepare("INSERT INTO signing_keys (key_id, public_key, sealed_secret, created, active) "
                                       "VALUES (?, ?, ?, ?, 1)"));
  COFFRE_RETURN_IF_ERROR(ins.BindAll(new_key_id, key.public_key, sealed, ToUnixMillis(clock.Now())));
  COFFRE_RETURN_IF_ERROR(ins.Run());
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return key;
}

std::string ChainOf(const std::string& tenant) { return "t:" + tenant; }

Result<ChainPosition> ReadBoundary(db::Connection& conn) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT gseq, hash FROM archive_boundary WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return ChainPosition{};
  }
  return ChainPosition{static_cast<uint64_t>(st.ColumnInt64(0)), HashFromBlob(st.ColumnBlobView(1))};
}

// The per-tenant chain positions stored in `table` (signed_heads or archive_heads).
Result<std::map<std::string, ChainPosition>> ReadTenantHeads(db::Connection& conn, std::string_view table) {
  std::map<std::string, ChainPosition> out;
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT tenant, seq, hash FROM " + std::string(table)));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out[st.ColumnText(0)] = ChainPosition{static_cast<uint64_t>(st.ColumnInt64(1)), HashFromBlob(st.ColumnBlobView(2))};
  }
  return out;
}

using internal::AppendField;

// SHA-256 (hex) over every tenant's position, in tenant order.
std::string HeadsDigest(const std::map<std::string, ChainPosition>& heads) {
  std::string text;
  for (const auto& [tenant, pos] : heads) {
    AppendField(text, "tenant", tenant);
    AppendField(text, "seq", std::to_string(pos.seq));
    AppendField(text, "hash", HashHex(pos.hash));
  }
  return HexEncode(crypto::Sha256::Digest(AsBytes(text)));
}

}  // namespace

// The state a signature vouches for. Its statement starts with its own tag, so that it can never
// be taken for a checkpoint's (or the other way round).
struct AuditLog::SignedState {
  ChainPosition boundary;
  std::map<std::string, ChainPosition> archive_heads;
  ChainPosition global;
  std::map<std::string, ChainPosition> tenants;
  UnixMillis time_ms = 0;
  std::string signer;
  Bytes signature;

  std::string Statement() const {
    std::string out = "coffre-audit-state\n";
    AppendField(out, "v", "1");
    AppendField(out, "boundary_gseq", std::to_string(boundary.seq));
    AppendField(out, "boundary_hash", HashHex(boundary.hash));
    AppendField(out, "archive_heads", HeadsDigest(archive_heads));
    AppendField(out, "gseq", std::to_string(global.seq));
    AppendField(out, "global_head", HashHex(global.hash));
    AppendField(out, "tenant_heads", HeadsDigest(tenants));
    AppendField(out, "time_ms", std::to_string(time_ms));
    AppendField(out, "signer", signer);
    return out;
  }
};

namespace {

Status SignState(const SigningKey& key, AuditLog::SignedState& state) {
  if (key.secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return Status::InvalidArgument("audit signing key has the wrong size");
  }
  state.signer = KeyId(key.public_key);
  const std::string statement = state.Statement();
  state.signature.resize(crypto_sign_BYTES);
  if (crypto_sign_detached(state.signature.data(), nullptr, reinterpret_cast<const uint8_t*>(statement.data()),
                           statement.size(), key.secret_key.Reveal().data()) != 0) {
    return Status::Internal("signing the audit log state failed");
  }
  return Status::Ok();
}

bool VerifyState(ByteView public_key, const AuditLog::SignedState& state) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || state.signature.size() != crypto_sign_BYTES ||
      state.signer != KeyId(public_key)) {
    return false;
  }
  const std::string statement = state.Statement();
  return crypto_sign_verify_detached(state.signature.data(), reinterpret_cast<const uint8_t*>(statement.data()),
                                     statement.size(), public_key.data()) == 0;
}

// The stored signed state, checked against its signature and against the archive tables it
// covers. Corruption when anything of it was edited; nullopt when there is none.
Result<std::optional<AuditLog::SignedState>> ReadSignedState(db::Connection& conn, ByteView public_key) {
  AuditLog::SignedState s;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT boundary_gseq, boundary_hash, gseq, global_head, time_ms, signer, "
                                         "signature FROM signed_state WHERE id = 1"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return std::optional<AuditLog::SignedState>();
    }
    s.boundary = ChainPosition{static_cast<uint64_t>(st.ColumnInt64(0)), HashFromBlob(st.ColumnBlobView(1))};
    s.global = ChainPosition{static_cast<uint64_t>(st.ColumnInt64(2)), HashFromBlob(st.ColumnBlobView(3))};
    s.time_ms = st.ColumnInt64(4);
    s.signer = st.ColumnText(5);
    s.signature = st.ColumnBlob(6);
  }
  COFFRE_ASSIGN_OR_RETURN(s.tenants, ReadTenantHeads(conn, "signed_heads"));
  COFFRE_ASSIGN_OR_RETURN(s.archive_heads, ReadTenantHeads(conn, "archive_heads"));
  if (!VerifyState(public_key, s)) {
    return Status::Corruption(
        "the audit log's signed state does not verify: signed_state, signed_heads or archive_heads was edited");
  }
  COFFRE_ASSIGN_OR_RETURN(ChainPosition boundary, ReadBoundary(conn));
  if (boundary.seq != s.boundary.seq || boundary.hash != s.boundary.hash) {
    return Status::Corruption("the archive boundary (global seq " + std::to_string(boundary.seq) +
                              ") is not the signed one (global seq " + std::to_string(s.boundary.seq) +
                              "): archive_boundary was edited");
  }
  return std::optional<AuditLog::SignedState>(std::move(s));
}

Status WriteSignedState(db::Connection& conn, const AuditLog::SignedState& s) {
  COFFRE_ASSIGN_OR_RETURN(
      db::Statement st,
      conn.PrepareCached("INSERT INTO signed_state (id, boundary_gseq, boundary_hash, gseq, global_head, time_ms, "
                         "signer, signature) VALUES (1, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                         "boundary_gseq = excluded.boundary_gseq, boundary_hash = excluded.boundary_hash, "
                         "gseq = excluded.gseq, global_head = excluded.global_head, time_ms = excluded.time_ms, "
                         "signer = excluded.signer, signature = excluded.signature"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(s.boundary.seq, ByteView(s.boundary.hash), s.global.seq, ByteView(s.global.hash),
                                    s.time_ms, s.signer, ByteView(s.signature)));
  COFFRE_RETURN_IF_ERROR(st.Run());
  COFFRE_RETURN_IF_ERROR(conn.Exec("DELETE FROM signed_heads"));
  for (const auto& [tenant, pos] : s.tenants) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement ins,
                            conn.PrepareCached("INSERT INTO signed_heads (tenant, seq, hash) VALUES (?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(ins.BindAll(tenant, pos.seq, ByteView(pos.hash)));
    COFFRE_RETURN_IF_ERROR(ins.Run());
  }
  return Status::Ok();
}

// Checks the records with gseq > chain.global.seq in order, each against the chain positions
// before it (gap-free global and tenant sequences, links, stored hashes), and advances `chain`.
// `visit` sees each record once checked. Corruption names the first record that breaks.
Status WalkChain(db::Connection& conn, AuditLog::ChainState& chain,
                 const std::function<void(const Record&, uint64_t gseq, const Hash& hash, const Hash& global)>& visit) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.PrepareCached("SELECT " + std::string(kRecordColumns) +
                                                               ", gseq, hash, global_hash FROM records WHERE gseq > ? "
                                                               "ORDER BY gseq"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(chain.global.seq));
  for (;;) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    audit::Record r = ReadRecord(st);
    const uint64_t gseq = static_cast<uint64_t>(st.ColumnInt64(15));
    const std::string where =
        "record " + std::to_string(gseq) + " (tenant '" + r.tenant + "' seq " + std::to_string(r.seq) + ")";
    if (gseq != chain.global.seq + 1) {
      return Status::Corruption(where + ": global sequence has a gap before it (records missing)");
    }
    ChainPosition& t = chain.tenants[r.tenant];
    if (r.seq != t.seq + 1) {
      return Status::Corruption(where + ": tenant sequence has a gap or is out of order");
    }
    if (r.prev != t.hash) {
      return Status::Corruption(where + ": does not link to the tenant's previous record (altered or removed)");
    }
    const Hash h = RecordHash(r);
    if (HashFromBlob(st.ColumnBlobView(16)) != h) {
      return Status::Corruption(where + ": content does not match its stored hash (altered)");
    }
    const Hash gh = GlobalLink(chain.global.hash, gseq, h);
    if (HashFromBlob(st.ColumnBlobView(17)) != gh) {
      return Status::Corruption(where + ": global chain link does not match (altered or reordered)");
    }
    t = ChainPosition{r.seq, h};
    chain.global = ChainPosition{gseq, gh};
    if (visit) {
      visit(r, gseq, h, gh);
    }
  }
  return Status::Ok();
}

// The record stored at global position `gseq`, and its hashes recomputed from its content and
// from the stored global hash before it (the boundary's for the first live record).
struct StoredAt {
  Record record;
  Hash hash{};
  Hash global{};
};
Result<std::optional<StoredAt>> ReadStoredAt(db::Connection& conn, uint64_t gseq, const ChainPosition& boundary) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                          conn.PrepareCached("SELECT " + std::string(kRecordColumns) + " FROM records WHERE gseq = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(gseq));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return std::optional<StoredAt>();
  }
  StoredAt at;
  at.record = ReadRecord(st);
  at.hash = RecordHash(at.record);
  Hash prev_global = boundary.hash;
  if (gseq - 1 > boundary.seq) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement p, conn.PrepareCached("SELECT global_hash FROM records WHERE gseq = ?"));
    COFFRE_RETURN_IF_ERROR(p.BindAll(gseq - 1));
    COFFRE_ASSIGN_OR_RETURN(bool prow, p.Step());
    prev_global = prow ? HashFromBlob(p.ColumnBlobView(0)) : Hash{};
  }
  at.global = GlobalLink(prev_global, gseq, at.hash);
  return std::optional<StoredAt>(std::move(at));
}

std::string Describe(uint64_t gseq, const Record& r) {
  return "record " + std::to_string(gseq) + " (tenant '" + r.tenant + "' seq " + std::to_string(r.seq) + ")";
}

// Proves that the stored records still hold the signed heads: the record at the signed global
// position recomputes to the signed global head, and each tenant's signed head record to its
// signed hash. A history rewritten below them cannot do that without forging a signature.
Status CheckSignedHeads(db::Connection& conn, const AuditLog::SignedState& s) {
  COFFRE_ASSIGN_OR_RETURN(db::Statement first, conn.Prepare("SELECT min(gseq), max(gseq) FROM records"));
  COFFRE_ASSIGN_OR_RETURN(bool row, first.Step());
  const bool any = row && !first.ColumnIsNull(0);
  const uint64_t min_gseq = any ? static_cast<uint64_t>(first.ColumnInt64(0)) : 0;
  const uint64_t max_gseq = any ? static_cast<uint64_t>(first.ColumnInt64(1)) : s.boundary.seq;
  if (any && min_gseq != s.boundary.seq + 1) {
    return Status::Corruption("the live log starts at record " + std::to_string(min_gseq) +
                              " but the signed archive boundary is global seq " + std::to_string(s.boundary.seq) +
                              ": records " + std::to_string(s.boundary.seq + 1) + ".." + std::to_string(min_gseq - 1) +
                              " were removed");
  }
  if (s.global.seq > s.boundary.seq) {
    if (max_gseq < s.global.seq) {
      return Status::Corruption("the log ends at global seq " + std::to_string(max_gseq) +
                                " but its last signed head is global seq " + std::to_string(s.global.seq) +
                                ": signed records were removed or the log was rewritten and renumbered");
    }
    COFFRE_ASSIGN_OR_RETURN(std::optional<StoredAt> at, ReadStoredAt(conn, s.global.seq, s.boundary));
    if (!at) {
      return Status::Corruption("record " + std::to_string(s.global.seq) +
                                ", the last signed global head, is missing: signed records were removed");
    }
    if (at->global != s.global.hash) {
      return Status::Corruption(Describe(s.global.seq, at->record) +
                                " does not match the last signed global head: the log was rewritten at or before it");
    }
  }
  for (const auto& [tenant, pos] : s.tenants) {
    auto archived = s.archive_heads.find(tenant);
    if (archived != s.archive_heads.end() && pos.seq <= archived->second.seq) {
      continue;  // every signed record of this tenant is archived
    }
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                                           ", gseq FROM records WHERE tenant = ? AND seq = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, pos.seq));
    COFFRE_ASSIGN_OR_RETURN(bool found, st.Step());
    if (!found) {
      return Status::Corruption("tenant '" + tenant + "' seq " + std::to_string(pos.seq) +
                                ", its last signed head, is missing: signed records were removed or renumbered");
    }
    const Record r = ReadRecord(st);
    if (RecordHash(r) != pos.hash) {
      return Status::Corruption(Describe(static_cast<uint64_t>(st.ColumnInt64(15)), r) +
                                " does not match the tenant's last signed head: its chain was rewritten at or "
                                "before it");
    }
  }
  return Status::Ok();
}

}  // namespace

struct AuditLog::Pending {
  const Event* event = nullptr;
  Status status;
  bool done = false;
  std::function<void()> on_done;  // PendingRecord::OnDone, called by the writer with `done`
};

// Owns the event and its queue entry until the writer is done with them: the destructor waits,
// so a caller that gives up (a failed request) never leaves the writer a dangling pointer.
class AuditLog::PendingHandle final : public PendingRecord {
 public:
  PendingHandle(AuditLog& log, const Event& event) : log_(log), event_(event) { pending_.event = &event_; }
  ~PendingHandle() override { (void)Wait(); }
  PendingHandle(const PendingHandle&) = delete;
  PendingHandle& operator=(const PendingHandle&) = delete;

  Status Wait() override {
    std::unique_lock lock(log_.mu_);
    log_.done_cv_.wait(lock, [&] { return pending_.done; });
    return pending_.status;
  }

  void OnDone(std::function<void()> done) override {
    std::unique_lock lock(log_.mu_);
    if (!pending_.done) {
      pending_.on_done = std::move(done);
      return;
    }
    lock.unlock();
    done();
  }

  Pending& pending() { return pending_; }

 private:
  AuditLog& log_;
  Event event_;
  Pending pending_;
};

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path, const SecretBytes& root_key,
                                                 AuditLogOptions options) {
  if (root_key.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: the root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn,
                          db::Connection::Open(path, db::OpenMode::kReadWriteCreate, options.busy_timeout_ms));
  COFFRE_RETURN_IF_ERROR(CheckEarlierVersionTailSigned(*conn));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*conn, kMigrations));
  COFFRE_ASSIGN_OR_RETURN(SigningKey key, LoadOrCreateSigningKey(*conn, root_key, *options.clock));
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(conn), std::move(key), options));
  Status loaded;
  {
    std::lock_guard db_lock(log->db_mu_);
    loaded = log->Load();
  }
  if (loaded.code() == StatusCode::kCorruption) {
    log->Refuse(loaded.message());
  } else if (!loaded.ok()) {
    return loaded;
  }
  log->StartWriter();
  return log;
}

// Before this log extends or signs anything, it proves that the stored chain extends the last
// state it signed: the signed heads are still there and unchanged, and what follows them links
// to them. A log from before the signed state is verified whole, once, then its state is signed.
Status AuditLog::Load() {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_ASSIGN_OR_RETURN(std::optional<SignedState> stored, ReadSignedState(conn, signing_key_.public_key));
  if (!stored) {
    COFFRE_ASSIGN_OR_RETURN(bool upgrading, Exists(conn, "SELECT 1 FROM audit_upgrade"));
    if (!upgrading) {
      return Status::Corruption(
          "the audit log's signed state is missing although the log was written by this version (signed_state "
          "was emptied): refusing to sign whatever the database now holds");
    }
    COFFRE_ASSIGN_OR_RETURN(SignedState upgraded, UpgradeLocked());
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    signed_ = std::make_unique<SignedState>(upgraded);
    known_.global = upgraded.global;
    known_.tenants = upgraded.tenants;
    return Status::Ok();
  }
  signed_ = std::make_unique<SignedState>(*stored);
  known_.global = stored->global;
  known_.tenants = stored->tenants;
  COFFRE_RETURN_IF_ERROR(CheckSignedHeads(conn, *stored));
  // Records after the signed heads (a crash before the next checkpoint) must link to them.
  uint64_t tail = 0;
  COFFRE_RETURN_IF_ERROR(
      WalkChain(conn, known_, [&](const audit::Record&, uint64_t, const Hash&, const Hash&) { ++tail; }));
  std::lock_guard lock(mu_);
  uncovered_ = tail;
  return Status::Ok();
}

// A log written before the signed state existed: verified whole (every link, every checkpoint),
// and accepted only if its end is signed by a global checkpoint, so that nothing it holds is
// vouched for that an earlier version did not sign. Tenants whose archived head lost its
// checkpoint to an earlier prune get one now (what bundles anchor on).
Result<AuditLog::SignedState> AuditLog::UpgradeLocked() {
  db::Connection& conn = *conn_;
  SignedState s;
  COFFRE_ASSIGN_OR_RETURN(s.boundary, ReadBoundary(conn));
  COFFRE_ASSIGN_OR_RETURN(s.archive_heads, ReadTenantHeads(conn, "archive_heads"));
  ChainState chain;
  chain.global = s.boundary;
  chain.tenants = s.archive_heads;
  COFFRE_ASSIGN_OR_RETURN(const uint64_t verified, VerifyAllLocked(chain, nullptr));
  if (chain.global.seq > s.boundary.seq) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT head FROM checkpoints WHERE scope = 'global' "
                                                           "AND seq = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(chain.global.seq));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || HashFromBlob(st.ColumnBlobView(0)) != chain.global.hash) {
      return Status::Corruption(
          "audit.db was written by an earlier version and its last records (up to global seq " +
          std::to_string(chain.global.seq) +
          ") are covered by no signed checkpoint that matches them, so this version cannot tell them from a "
          "rewrite: restore audit.db from a good copy");
    }
  }
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (const auto& [tenant, pos] : s.archive_heads) {
    COFFRE_RETURN_IF_ERROR(EnsureTenantCheckpoint(tenant, pos, now));
  }
  s.global = chain.global;
  s.tenants = chain.tenants;
  s.time_ms = now;
  COFFRE_RETURN_IF_ERROR(SignState(signing_key_, s));
  COFFRE_RETURN_IF_ERROR(WriteSignedState(conn, s));
  COFFRE_RETURN_IF_ERROR(conn.Exec("DELETE FROM audit_upgrade"));
  if (verified > 0) {
    spdlog::info("audit log: verified {} record(s) written by an earlier version and signed its state", verified);
  }
  return s;
}

// Signs a checkpoint of `tenant` at `pos` unless one exists (a bundle's anchor).
Status AuditLog::EnsureTenantCheckpoint(const std::string& tenant, const ChainPosition& pos, UnixMillis now) {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT 1 FROM checkpoints WHERE scope = 'tenant' AND "
                                                         "tenant = ? AND seq = ? AND head = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, pos.seq, ByteView(pos.hash)));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (row || pos.seq == 0) {
    return Status::Ok();
  }
  audit::Checkpoint c;
  c.scope = std::string(kScopeTenant);
  c.tenant = tenant;
  c.seq = pos.seq;
  c.head = pos.hash;
  c.time_ms = now;
  return InsertCheckpoint(c);
}

Status AuditLog::InsertCheckpoint(audit::Checkpoint& c) {
  COFFRE_RETURN_IF_ERROR(SignCheckpoint(signing_key_, c));
  COFFRE_ASSIGN_OR_RETURN(db::Statement ins,
                          conn_->PrepareCached("INSERT INTO checkpoints (scope, tenant, seq, head, time_ms, signer, "
                                               "signature) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(
      ins.BindAll(c.scope, c.tenant, c.seq, ByteView(c.head), c.time_ms, c.signer, ByteView(c.signature)));
  return ins.Run();
}

void AuditLog::Refuse(const std::string& why) {
  std::lock_guard lock(mu_);
  if (refused_.empty()) {
    refused_ = why;
    spdlog::critical(
        "audit log failed its integrity check and refuses every record and signature (every key use "
        "is refused) until it is restored: {}",
        why);
  }
}

std::string AuditLog::integrity_error() const {
  std::lock_guard lock(mu_);
  return refused_;
}

Status AuditLog::RefusedStatus(StatusCode code) const {
  std::string why = integrity_error();
  if (why.empty()) {
    return Status::Ok();
  }
  return Status(code, "the audit log failed its integrity check: " + why);
}

// Inside a write transaction: brings known_ up to what is stored now, checking that it still
// extends what this process knew (another process may have appended, signed or archived
// meanwhile; nobody may have removed or rewritten anything).
Status AuditLog::SyncLocked() {
  db::Connection& conn = *conn_;
  // The signature alone tells whether another process signed since (the common case: nobody did).
  COFFRE_ASSIGN_OR_RETURN(db::Statement sig, conn.PrepareCached("SELECT signature FROM signed_state WHERE id = 1"));
  COFFRE_ASSIGN_OR_RETURN(bool have_state, sig.Step());
  if (!have_state) {
    return Status::Corruption("the audit log's signed state was removed while the log was open");
  }
  if (sig.ColumnBlob(0) != signed_->signature) {
    COFFRE_ASSIGN_OR_RETURN(std::optional<SignedState> stored, ReadSignedState(conn, signing_key_.public_key));
    if (!stored) {
      return Status::Corruption("the audit log's signed state was removed while the log was open");
    }
    // Another process signed: its state must not go back.
    if (stored->global.seq < signed_->global.seq || stored->boundary.seq < signed_->boundary.seq) {
      return Status::Corruption("the audit log's signed state went back from global seq " +
                                std::to_string(signed_->global.seq) + " to " + std::to_string(stored->global.seq) +
                                ": an older copy was put back");
    }
    *signed_ = *stored;
  }
  const ChainPosition boundary = signed_->boundary;
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.PrepareCached("SELECT max(gseq) FROM records"));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  const uint64_t max_gseq = row && !st.ColumnIsNull(0) ? static_cast<uint64_t>(st.ColumnInt64(0)) : boundary.seq;
  if (max_gseq < known_.global.seq) {
    return Status::Corruption("the log ends at global seq " + std::to_string(max_gseq) + " but held " +
                              std::to_string(known_.global.seq) + " record(s): records were removed");
  }
  if (known_.global.seq > boundary.seq) {
    COFFRE_ASSIGN_OR_RETURN(std::optional<StoredAt> at, ReadStoredAt(conn, known_.global.seq, boundary));
    if (!at || at->global != known_.global.hash) {
      return Status::Corruption("record " + std::to_string(known_.global.seq) +
                                ", the head this log wrote last, was removed or rewritten");
    }
  } else if (known_.global.seq < boundary.seq) {
    // Another process appended, signed and archived past this process's head: the records in
    // between are gone, and the genuinely signed state (checked above) is what vouches for them.
    known_.global = signed_->global;
    known_.tenants = signed_->tenants;
    COFFRE_RETURN_IF_ERROR(CheckSignedHeads(conn, *signed_));
  }
  return WalkChain(conn, known_, nullptr);
}

namespace {

Result<std::unique_ptr<db::Connection>> OpenExisting(const std::string& path) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, db::Connection::Open(path, db::OpenMode::kReadWrite));
  COFFRE_RETURN_IF_ERROR(CheckEarlierVersionTailSigned(*conn));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*conn, kMigrations));
  // Dropped sealed copies are overwritten with zeros, not left in free pages.
  COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA secure_delete = ON"));
  return conn;
}

}  // namespace

Status AuditLog::AddRootKeySeal(const std::string& path, const SecretBytes& current_root, const SecretBytes& new_root) {
  if (current_root.size() != crypto::kKeySize || new_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: root keys must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, OpenExisting(path));
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
  COFFRE_ASSIGN_OR_RETURN(std::vector<StoredSigningKey> keys, ListSigningKeys(*conn));
  const SealKeys new_keys = DeriveSealKeys(new_root);
  for (const auto& k : keys) {
    COFFRE_ASSIGN_OR_RETURN(Unsealed unsealed, UnsealSigningSecret(*conn, k.key_id, k.original, current_root));
    COFFRE_RETURN_IF_ERROR(PutSealedCopy(*conn, k.key_id, unsealed.secret, new_keys));
  }
  return tx.Commit();
}

Status AuditLog::DropRootKeySealsExcept(const std::string& path, const SecretBytes& keep_root) {
  if (keep_root.size() != crypto::kKeySize) {
    return Status::InvalidArgument("audit log: the root key must be 32 bytes");
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, OpenExisting(path));
  {
    COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
    COFFRE_ASSIGN_OR_RETURN(std::vector<StoredSigningKey> keys, ListSigningKeys(*conn));
    const SealKeys keep_keys = DeriveSealKeys(keep_root);
    const Bytes legacy_fingerprint = LegacyRootKeyFingerprint(keep_root);
    for (const auto& k : keys) {
      // Never leave a signing key that no root key opens: check before removing anything.
      if (!UnsealSigningSecret(*conn, k.key_id, k.original, keep_root).ok()) {
        return Status::FailedPrecondition("audit signing key " + k.key_id +
                                          " has no copy under the root key to keep; nothing removed");
      }
      // The original may be under keep_root's derived key or, not yet re-sealed, under keep_root itself.
      if (!k.original.empty() && !crypto::OpenSecret(keep_keys.seal, k.original, SigningKeyAad(k.key_id)).ok() &&
          !crypto::OpenSecret(keep_root, k.original, SigningKeyAad(k.key_id)).ok()) {
        COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                                conn->Prepare("UPDATE signing_keys SET sealed_secret = X'' WHERE key_id = ?"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(k.key_id));
        COFFRE_RETURN_IF_ERROR(st.Run());
      }
    }
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn->Prepare("DELETE FROM signing_key_seals WHERE root_fingerprint NOT IN (?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(keep_keys.fingerprint, legacy_fingerprint));
    COFFRE_RETURN_IF_ERROR(st.Run());
    COFFRE_RETURN_IF_ERROR(tx.Commit());
  }
  // Moves the zeroed pages out of the WAL (best effort, as the keystore does).
  (void)conn->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  return Status::Ok();
}

AuditLog::AuditLog(std::unique_ptr<db::Connection> conn, SigningKey key, AuditLogOptions options)
    : conn_(std::move(conn)),
      signing_key_(std::move(key)),
      options_(options),
      last_checkpoint_(std::chrono::steady_clock::now()) {}

void AuditLog::StartWriter() {
  writer_ = std::thread([this] { WriterLoop(); });
}

AuditLog::~AuditLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  writer_cv_.notify_all();
  if (!writer_.joinable()) {
    return;  // Open failed before the log was in use
  }
  writer_.join();
  if (!integrity_error().empty()) {
    return;  // a refused log signs nothing
  }
  // Sign what is not covered yet, so a clean stop leaves no unsigned tail.
  std::lock_guard db_lock(db_mu_);
  if (Status st = CheckpointLocked(); !st.ok()) {
    spdlog::error("audit log: final checkpoint failed: {}", st.ToString());
  }
}

Status AuditLog::Record(const Event& event) {
  Pending p;
  p.event = &event;
  std::unique_lock lock(mu_);
  if (stopping_) {
    return Status::Unavailable("audit log is shutting down");
  }
  queue_.push_back(&p);
  writer_cv_.notify_one();
  done_cv_.wait(lock, [&] { return p.done; });
  return p.status;
}

void AuditLog::WaitForQueued() {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

std::unique_ptr<PendingRecord> AuditLog::Start(const Event& event) {
  auto handle = std::make_unique<PendingHandle>(*this, event);
  std::lock_guard lock(mu_);
  if (stopping_) {
    handle->pending().status = Status::Unavailable("audit log is shutting down");
    handle->pending().done = true;
    return handle;
  }
  queue_.push_back(&handle->pending());
  writer_cv_.notify_one();
  return handle;
}

void AuditLog::WriterLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // An unhealthy log tries again every second rather than at the checkpoint interval, so that
    // readiness (and key use without a request to retry it) comes back soon after space does.
    const auto interval =
        healthy_ ? options_.checkpoint_interval
                 : std::min<std::chrono::steady_clock::duration>(options_.checkpoint_interval, kUnhealthyRetryInterval);
    const auto due = last_checkpoint_ + interval;
    writer_cv_.wait_until(lock, due, [&] { return stopping_ || !queue_.empty(); });
    if (!queue_.empty()) {
      std::vector<Pending*> batch;
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      writing_ = true;
      lock.unlock();
      Status st;
      {
        std::lock_guard db_lock(db_mu_);
        st = WriteBatch(batch);
      }
      NoteResult(st);
      lock.lock();
      for (Pending* p : batch) {
        p->status = st;
        p->done = true;
        // Under the lock, so that an OnDone() racing with this either sees `done` or is called here.
        if (p->on_done) {
          std::exchange(p->on_done, nullptr)();
        }
      }
      writing_ = false;
      if (st.ok()) {
        records_written_ += batch.size();
        ++commits_;
        uncovered_ += batch.size();
      } else {
        write_failures_ += batch.size();
      }
      done_cv_.notify_all();
    }
    if (stopping_ && queue_.empty()) {
      return;
    }
    const bool time_due = std::chrono::steady_clock::now() >= last_checkpoint_ + interval;
    const bool count_due = uncovered_ >= options_.checkpoint_every_records;
    if (count_due || (time_due && (uncovered_ > 0 || !healthy_))) {
      lock.unlock();
      Status st;
      {
        std::lock_guard db_lock(db_mu_);
        // An unhealthy log probes with a small write, so it turns healthy again by itself.
        st = CheckpointLocked();
        if (st.ok() && !healthy()) {
          st = Probe();
        }
      }
      if (!st.ok() && healthy()) {
        // Once: an unhealthy log retries every second, and NoteResult says when it recovers.
        spdlog::error("audit log: checkpoint failed: {}", st.ToString());
      }
      NoteResult(st);
      lock.lock();
      last_checkpoint_ = std::chrono::steady_clock::now();
      if (st.ok()) {
        uncovered_ = 0;
      }
    } else if (time_due) {
      last_checkpoint_ = std::chrono::steady_clock::now();
    }
  }
}

void AuditLog::NoteResult(const Status& st) {
  std::lock_guard lock(mu_);
  if (st.ok()) {
    if (!healthy_) {
      spdlog::info("audit log is writable again; key use resumes");
    }
    healthy_ = true;
    last_error_.clear();
    return;
  }
  if (healthy_) {
    spdlog::error("audit log cannot be written ({}); every key use is refused until it can", st.ToString());
  }
  healthy_ = false;
  last_error_ = st.ToString();
}

// A stored chain that no longer extends what this process knew makes the log refuse from then
// on; any other error (a lock, a full disk) fails only this attempt.
Status AuditLog::SyncOrRefuseLocked() {
  Status st = SyncLocked();
  if (st.code() == StatusCode::kCorruption) {
    Refuse(st.message());
    return RefusedStatus(StatusCode::kUnavailable);
  }
  return st;
}

Status AuditLog::WriteBatch(const std::vector<Pending*>& batch) {
  COFFRE_RETURN_IF_ERROR(RefusedStatus(StatusCode::kUnavailable));
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_RETURN_IF_ERROR(SyncOrRefuseLocked());
  // Each record links to the heads this process verified, never to a stored heads row as found.
  ChainState next = known_;
  std::map<std::string, bool> moved;
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (Pending* p : batch) {
    ChainPosition& head = next.tenants[p->event->tenant];
    audit::Record rec = RecordFromEvent(*p->event, head.seq + 1, now, head.hash);
    const Hash hash = RecordHash(rec);
    const uint64_t gseq = next.global.seq + 1;
    const Hash global_hash = GlobalLink(next.global.hash, gseq, hash);
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement ins,
        conn.PrepareCached("INSERT INTO records (gseq, seq, time_ms, tenant, key_id, key_version, operation, action, "
                           "bucket, object_key, object_id, request_id, access_key_id, client_address, outcome, prev, "
                           "hash, global_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(ins.BindAll(gseq, rec.seq, rec.time_ms, rec.tenant, rec.key_id, rec.key_version,
                                       rec.operation, rec.action, rec.bucket, rec.object_key, rec.object_id,
                                       rec.request_id, rec.access_key_id, rec.client_address, rec.outcome,
                                       ByteView(rec.prev), ByteView(hash), ByteView(global_hash)));
    COFFRE_RETURN_IF_ERROR(ins.Run());
    head = ChainPosition{rec.seq, hash};
    next.global = ChainPosition{gseq, global_hash};
    moved[ChainOf(p->event->tenant)] = true;
  }
  // The heads table is kept up to date for people reading the database; nothing trusts it.
  auto put_head = [&](const std::string& chain, const ChainPosition& pos) -> Status {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement up,
        conn.PrepareCached("INSERT INTO heads (chain, seq, hash) VALUES (?, ?, ?) "
                           "ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(up.BindAll(chain, pos.seq, ByteView(pos.hash)));
    return up.Run();
  };
  COFFRE_RETURN_IF_ERROR(put_head("g", next.global));
  for (const auto& [chain, unused] : moved) {
    COFFRE_RETURN_IF_ERROR(put_head(chain, next.tenants[chain.substr(2)]));
  }
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  known_ = std::move(next);
  return Status::Ok();
}

Status AuditLog::Checkpoint() {
  Status st;
  {
    std::lock_guard db_lock(db_mu_);
    st = CheckpointLocked();
  }
  NoteResult(st);
  if (st.ok()) {
    std::lock_guard lock(mu_);
    uncovered_ = 0;
    last_checkpoint_ = std::chrono::steady_clock::now();
  }
  return st;
}

// Signs every chain head that moved since the last signed state, and the new state, only once
// the stored chain is proven to extend that state (SyncLocked).
Status AuditLog::CheckpointLocked() {
  COFFRE_RETURN_IF_ERROR(RefusedStatus(StatusCode::kCorruption));
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_RETURN_IF_ERROR(SyncOrRefuseLocked());
  std::vector<audit::Checkpoint> moved;
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (const auto& [tenant, pos] : known_.tenants) {
    auto it = signed_->tenants.find(tenant);
    if (it == signed_->tenants.end() || it->second.seq != pos.seq) {
      audit::Checkpoint c;
      c.scope = std::string(kScopeTenant);
      c.tenant = tenant;
      c.seq = pos.seq;
      c.head = pos.hash;
      c.time_ms = now;
      moved.push_back(std::move(c));
    }
  }
  if (known_.global.seq != signed_->global.seq) {
    audit::Checkpoint c;
    c.scope = std::string(kScopeGlobal);
    c.seq = known_.global.seq;
    c.head = known_.global.hash;
    c.time_ms = now;
    moved.push_back(std::move(c));
  }
  if (moved.empty()) {
    return Status::Ok();
  }
  for (auto& c : moved) {
    COFFRE_RETURN_IF_ERROR(InsertCheckpoint(c));
    COFFRE_ASSIGN_OR_RETURN(db::Statement up,
                            conn.PrepareCached("UPDATE heads SET checkpointed_seq = ? WHERE chain = ?"));
    COFFRE_RETURN_IF_ERROR(up.BindAll(c.seq, c.scope == kScopeGlobal ? std::string("g") : ChainOf(c.tenant)));
    COFFRE_RETURN_IF_ERROR(up.Run());
  }
  SignedState next = *signed_;
  next.global = known_.global;
  next.tenants = known_.tenants;
  next.time_ms = now;
  COFFRE_RETURN_IF_ERROR(SignState(signing_key_, next));
  COFFRE_RETURN_IF_ERROR(WriteSignedState(conn, next));
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  *signed_ = std::move(next);
  return Status::Ok();
}

Status AuditLog::Probe() {
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_RETURN_IF_ERROR(conn.Exec("INSERT INTO probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1"));
  return tx.Commit();
}

bool AuditLog::healthy() const {
  std::lock_guard lock(mu_);
  return healthy_ && refused_.empty();
}

std::string AuditLog::last_error() const {
  std::lock_guard lock(mu_);
  return refused_.empty() ? last_error_ : "integrity check failed: " + refused_;
}

uint64_t AuditLog::records_written() const {
  std::lock_guard lock(mu_);
  return records_written_;
}

uint64_t AuditLog::write_failures() const {
  std::lock_guard lock(mu_);
  return write_failures_;
}

uint64_t AuditLog::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

Result<TenantExport> AuditLog::ExportTenant(const std::string& tenant, UnixMillis from_ms, UnixMillis to_ms) {
  if (from_ms > to_ms) {
    return Status::InvalidArgument("the time range is reversed (--from is after --to)");
  }
  COFFRE_RETURN_IF_ERROR(RefusedStatus(StatusCode::kFailedPrecondition));
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  TenantExport out;
  out.tenant = tenant;
  out.public_key = signing_key_.public_key;
  uint64_t first = 0;
  uint64_t last = 0;
  auto one_seq = [&](const std::string& sql, auto... args) -> Result<std::optional<uint64_t>> {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(args...));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnIsNull(0)) {
      return std::optional<uint64_t>();
    }
    return std::optional<uint64_t>(static_cast<uint64_t>(st.ColumnInt64(0)));
  };
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT min(seq), max(seq) FROM records WHERE tenant = ? "
                                                           "AND time_ms >= ? AND time_ms <= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, from_ms, to_ms));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && !st.ColumnIsNull(0)) {
      first = static_cast<uint64_t>(st.ColumnInt64(0));
      last = static_cast<uint64_t>(st.ColumnInt64(1));
    }
  }
  if (first == 0) {
    // No record in the range: the bundle holds the tenant's last record before it (else its first
    // after it), so that it is never empty: an empty bundle would prove nothing, and cannot be told
    // from one whose records were all removed.
    COFFRE_ASSIGN_OR_RETURN(std::optional<uint64_t> before,
                            one_seq("SELECT max(seq) FROM records WHERE tenant = ? AND time_ms < ?", tenant, from_ms));
    COFFRE_ASSIGN_OR_RETURN(std::optional<uint64_t> after,
                            one_seq("SELECT min(seq) FROM records WHERE tenant = ? AND time_ms > ?", tenant, to_ms));
    if (!before && !after) {
      return out;  // no live record of this tenant at all
    }
    first = last = before ? *before : *after;
  }
  {
    // Extended backward to just after a checkpoint (which is exported as the anchor: it signs the
    // first record's predecessor), or to the tenant's first live record when there is none.
    COFFRE_ASSIGN_OR_RETURN(std::optional<uint64_t> live_min,
                            one_seq("SELECT min(seq) FROM records WHERE tenant = ?", tenant));
    const uint64_t floor = live_min ? *live_min : first;
    if (first > 1) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<uint64_t> anchor,
                              one_seq("SELECT max(seq) FROM checkpoints WHERE scope = 'tenant' AND tenant = ? AND "
                                      "seq >= ? AND seq < ?",
                                      tenant, floor - 1, first));
      first = anchor ? *anchor + 1 : floor;
    }
  }
  {
    // The first checkpoint at or after the last record signs everything up to it.
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("SELECT min(seq) FROM checkpoints WHERE scope = 'tenant' "
                                                           "AND tenant = ? AND seq >= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, last));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && !st.ColumnIsNull(0)) {
      last = static_cast<uint64_t>(st.ColumnInt64(0));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                         " FROM records WHERE tenant = ? AND seq >= ? AND seq <= ? ORDER BY seq"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, first, last));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.records.push_back(ReadRecord(st));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature FROM checkpoints "
                     "WHERE scope = 'tenant' AND tenant = ? AND seq >= ? AND seq <= ? ORDER BY seq, id"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, first - 1, last));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.checkpoints.push_back(ReadCheckpoint(st));
    }
  }
  return out;
}

// Every checkpoint signature, every link from `chain` (the boundary) on, every checkpoint against
// the records it signs, and, given a signed state, that the chain reaches it and holds exactly its
// heads. Returns the number of records checked; Corruption names what breaks first.
Result<uint64_t> AuditLog::VerifyAllLocked(ChainState& chain, const SignedState* against) {
  db::Connection& conn = *conn_;
  const ChainState start = chain;
  std::map<std::pair<std::string, uint64_t>, Hash> tenant_hash_at;  // only where checkpoints point
  std::map<uint64_t, Hash> global_hash_at;
  std::map<std::pair<std::string, uint64_t>, bool> wanted;
  std::vector<audit::Checkpoint> checkpoints;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature "
                                         "FROM checkpoints ORDER BY id"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      checkpoints.push_back(ReadCheckpoint(st));
      const auto& c = checkpoints.back();
      if (!VerifyCheckpoint(signing_key_.public_key, c)) {
        return Status::Corruption("checkpoint of " + c.scope + " chain '" + c.tenant + "' at seq " +
                                  std::to_string(c.seq) + " has an invalid signature");
      }
      wanted[{c.scope == kScopeGlobal ? std::string("\x01global") : c.tenant, c.seq}] = true;
    }
  }
  // The tenant heads at the signed global position, to compare with the signed ones.
  std::optional<std::map<std::string, ChainPosition>> at_signed;
  if (against != nullptr && against->global.seq == start.global.seq) {
    at_signed = start.tenants;
  }
  uint64_t n = 0;
  COFFRE_RETURN_IF_ERROR(
      WalkChain(conn, chain, [&](const audit::Record& r, uint64_t gseq, const Hash& h, const Hash& gh) {
        if (wanted.count({r.tenant, r.seq}) != 0) {
          tenant_hash_at[{r.tenant, r.seq}] = h;
        }
        if (wanted.count({std::string("\x01global"), gseq}) != 0) {
          global_hash_at[gseq] = gh;
        }
        if (against != nullptr && gseq == against->global.seq) {
          if (gh != against->global.hash) {
            at_signed = std::map<std::string, ChainPosition>();  // marks the mismatch below
          } else {
            at_signed = chain.tenants;
          }
        }
        ++n;
      }));
  if (against != nullptr) {
    if (chain.global.seq < against->global.seq) {
      return Status::Corruption("the log ends at global seq " + std::to_string(chain.global.seq) +
                                " but its last signed head is global seq " + std::to_string(against->global.seq) +
                                ": signed records were removed, or the log was rewritten and renumbered");
    }
    if (!at_signed || (against->global.seq > start.global.seq && at_signed->empty())) {
      return Status::Corruption("record " + std::to_string(against->global.seq) +
                                " does not match the last signed global head: the log was rewritten at or before it");
    }
    for (const auto& [tenant, pos] : against->tenants) {
      auto it = at_signed->find(tenant);
      const ChainPosition have = it == at_signed->end() ? ChainPosition{} : it->second;
      if (have.seq != pos.seq || have.hash != pos.hash) {
        return Status::Corruption("tenant '" + tenant + "': at the last signed head (global seq " +
                                  std::to_string(against->global.seq) + ") the log holds seq " +
                                  std::to_string(have.seq) + " but seq " + std::to_string(pos.seq) +
                                  " was signed: its chain was rewritten (records removed, renumbered or altered)");
      }
    }
  }
  for (const auto& c : checkpoints) {
    const bool is_global = c.scope == kScopeGlobal;
    std::optional<Hash> at;
    if (is_global) {
      auto it = global_hash_at.find(c.seq);
      if (it != global_hash_at.end()) {
        at = it->second;
      } else if (c.seq == start.global.seq) {
        at = start.global.hash;  // the checkpoint that signs the archive boundary
      }
    } else {
      auto it = tenant_hash_at.find({c.tenant, c.seq});
      if (it != tenant_hash_at.end()) {
        at = it->second;
      } else if (auto a = start.tenants.find(c.tenant); a != start.tenants.end() && a->second.seq == c.seq) {
        at = a->second.hash;  // the checkpoint of the tenant's archived head
      }
    }
    if (!at) {
      return Status::Corruption("the " + c.scope + " checkpoint of '" + c.tenant + "' signs seq " +
                                std::to_string(c.seq) + ", which is missing from the log (records removed)");
    }
    if (*at != c.head) {
      return Status::Corruption("the " + c.scope + " checkpoint of '" + c.tenant + "' at seq " + std::to_string(c.seq) +
                                " does not match the records (altered)");
    }
  }
  return n;
}

Result<uint64_t> AuditLog::VerifyStored() {
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  COFFRE_ASSIGN_OR_RETURN(std::optional<SignedState> stored, ReadSignedState(conn, signing_key_.public_key));
  if (!stored) {
    COFFRE_ASSIGN_OR_RETURN(bool upgrading, Exists(conn, "SELECT 1 FROM audit_upgrade"));
    if (!upgrading) {
      return Status::Corruption("the audit log's signed state is missing (signed_state was emptied)");
    }
  }
  ChainState chain;
  COFFRE_ASSIGN_OR_RETURN(chain.global, ReadBoundary(conn));
  COFFRE_ASSIGN_OR_RETURN(chain.tenants, ReadTenantHeads(conn, "archive_heads"));
  COFFRE_ASSIGN_OR_RETURN(uint64_t n, VerifyAllLocked(chain, stored ? &*stored : nullptr));
  // What this process found at open (or since) and the whole-log check above did not.
  COFFRE_RETURN_IF_ERROR(RefusedStatus(StatusCode::kCorruption));
  return n;
}

Result<Archive> AuditLog::PrepareArchive(UnixMillis before_ms) {
  COFFRE_RETURN_IF_ERROR(Checkpoint());
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn, db::Transaction::Kind::kDeferred));
  Archive a;
  a.before_ms = before_ms;
  a.public_key = signing_key_.public_key;
  COFFRE_ASSIGN_OR_RETURN(a.start_global, ReadBoundary(conn));
  a.end_gseq = a.start_global.seq;
  {
    // The last signed global position whose record is older than before_ms.
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT max(c.seq) FROM checkpoints c JOIN records r ON r.gseq = c.seq "
                                         "WHERE c.scope = 'global' AND r.time_ms < ? AND c.seq > ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(before_ms, a.start_global.seq));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnIsNull(0)) {
      return a;  // nothing to archive
    }
    a.end_gseq = static_cast<uint64_t>(st.ColumnInt64(0));
  }
  COFFRE_ASSIGN_OR_RETURN(a.start_tenants, ReadTenantHeads(conn, "archive_heads"));
  std::map<std::string, uint64_t> last_seq;
  {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st, conn.Prepare("SELECT " + std::string(kRecordColumns) +
                                       ", gseq, global_hash FROM records WHERE gseq > ? AND gseq <= ? ORDER BY gseq"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(a.start_global.seq, a.end_gseq));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      ArchivedRecord r;
      r.record = ReadRecord(st);
      r.gseq = static_cast<uint64_t>(st.ColumnInt64(15));
      r.global_hash = HashFromBlob(st.ColumnBlobView(16));
      last_seq[r.record.tenant] = r.record.seq;
      a.records.push_back(std::move(r));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("SELECT scope, tenant, seq, head, time_ms, signer, signature FROM checkpoints "
                                         "ORDER BY id"));
    for (;;) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      audit::Checkpoint c = ReadCheckpoint(st);
      // The global checkpoint at the start (kept by the previous prune) signs where the archive begins.
      const bool global_in = c.scope == kScopeGlobal && c.seq <= a.end_gseq &&
                             (c.seq > a.start_global.seq || (c.seq == a.start_global.seq && c.seq > 0));
      const auto it = last_seq.find(c.tenant);
      const uint64_t first = a.start_tenants.count(c.tenant) != 0 ? a.start_tenants[c.tenant].seq : 0;
      const bool tenant_in = c.scope == kScopeTenant && it != last_seq.end() && c.seq > first && c.seq <= it->second;
      if (global_in || tenant_in) {
        a.checkpoints.push_back(std::move(c));
      }
    }
  }
  return a;
}

Status AuditLog::Prune(const Archive& archive) {
  if (archive.end_gseq <= archive.start_global.seq || archive.records.empty()) {
    return Status::Ok();
  }
  COFFRE_RETURN_IF_ERROR(RefusedStatus(StatusCode::kFailedPrecondition));
  std::lock_guard db_lock(db_mu_);
  db::Connection& conn = *conn_;
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(conn));
  COFFRE_RETURN_IF_ERROR(SyncOrRefuseLocked());
  const ChainPosition boundary = signed_->boundary;
  if (archive.end_gseq > signed_->global.seq) {
    return Status::FailedPrecondition("the archive ends after the last signed state; nothing pruned");
  }
  if (boundary.seq != archive.start_global.seq || boundary.hash != archive.start_global.hash) {
    return Status::Aborted("the audit log's archive boundary moved meanwhile (another archive?); nothing pruned");
  }
  const ArchivedRecord& last = archive.records.back();
  if (last.gseq != archive.end_gseq) {
    return Status::InvalidArgument("archive does not end at its end_gseq; nothing pruned");
  }
  // The new boundary is signed below: it must be the stored chain's own position.
  COFFRE_ASSIGN_OR_RETURN(std::optional<StoredAt> end, ReadStoredAt(conn, last.gseq, boundary));
  if (!end || end->global != last.global_hash) {
    return Status::InvalidArgument("the archive's last record is not the log's record " + std::to_string(last.gseq) +
                                   "; nothing pruned");
  }
  std::map<std::string, ChainPosition> heads;
  for (const auto& r : archive.records) {
    heads[r.record.tenant] = ChainPosition{r.record.seq, RecordHash(r.record)};
  }
  for (const auto& [tenant, pos] : heads) {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st, conn.Prepare("INSERT INTO archive_heads (tenant, seq, hash) VALUES (?, ?, ?) "
                                       "ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant, pos.seq, ByteView(pos.hash)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("INSERT INTO archive_boundary (id, gseq, hash) VALUES (1, ?, ?) "
                                         "ON CONFLICT (id) DO UPDATE SET gseq = excluded.gseq, hash = excluded.hash"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq, ByteView(last.global_hash)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn.Prepare("DELETE FROM records WHERE gseq <= ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  // The checkpoints at the new boundary and at each tenant's archived head stay: they sign where
  // the live log (and an export of it) starts.
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn.Prepare("DELETE FROM checkpoints WHERE scope = 'global' AND seq < ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(last.gseq));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_RETURN_IF_ERROR(
      conn.Exec("DELETE FROM checkpoints WHERE scope = 'tenant' AND seq < "
                "(SELECT h.seq FROM archive_heads h WHERE h.tenant = checkpoints.tenant)"));
  const UnixMillis now = ToUnixMillis(options_.clock->Now());
  for (const auto& [tenant, pos] : heads) {
    COFFRE_RETURN_IF_ERROR(EnsureTenantCheckpoint(tenant, pos, now));
  }
  SignedState next = *signed_;
  next.boundary = ChainPosition{last.gseq, last.global_hash};
  COFFRE_ASSIGN_OR_RETURN(next.archive_heads, ReadTenantHeads(conn, "archive_heads"));
  next.time_ms = now;
  COFFRE_RETURN_IF_ERROR(SignState(signing_key_, next));
  COFFRE_RETURN_IF_ERROR(WriteSignedState(conn, next));
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  *signed_ = std::move(next);
  return Status::Ok();
}

}  // namespace coffre::audit
