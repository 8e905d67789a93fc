#pragma once

// Audit records, their canonical form and hash chains, and signed checkpoints (format v1,
// specified in docs/AUDIT.md). Pure functions: no I/O, usable by the offline verifier.

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "coffre/audit/event.h"
#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/secret.h"
#include "coffre/common/status.h"

namespace coffre::audit {

inline constexpr int kFormatVersion = 1;

using Hash = std::array<uint8_t, 32>;  // SHA-256

// One record of a tenant's chain, as stored and exported. operation and outcome are kept as
// their names so that a verifier can hash a record it does not understand.
struct Record {
  uint64_t seq = 0;  // position in the tenant's chain, from 1, no gaps
  UnixMillis time_ms = 0;
  std::string tenant;
  std::string key_id;
  uint32_t key_version = 0;
  std::string operation;
  std::string action;
  std::string bucket;
  std::string object_key;
  std::string object_id;
  std::string request_id;
  std::string access_key_id;
  std::string client_address;
  std::string outcome;
  Hash prev{};  // RecordHash of the tenant's previous record; zeros for seq 1
};

Record RecordFromEvent(const Event& event, uint64_t seq, UnixMillis time_ms, const Hash& prev);

// The exact bytes that are hashed (docs/AUDIT.md, "Canonical form").
std::string CanonicalForm(const Record& record);
Hash RecordHash(const Record& record);

// The global chain links every record of every tenant in commit order:
//   G(n) = SHA-256("coffre-audit-global/v1" || G(n-1) || be64(n) || RecordHash(record n))
Hash GlobalLink(const Hash& prev_global, uint64_t global_seq, const Hash& record_hash);

// A signed statement about a chain head: "the chain of `tenant` (scope tenant) or the global chain
// (scope global, tenant empty) had `seq` records, the last one hashing to `head`, at `time_ms`".
struct Checkpoint {
  std::string scope;  // "tenant" or "global"
  std::string tenant;
  uint64_t seq = 0;
  Hash head{};
  UnixMillis time_ms = 0;
  std::string signer;  // KeyId of the public key
  Bytes signature;     // Ed25519, 64 bytes, over CheckpointStatement()
};

inline constexpr std::string_view kScopeTenant = "tenant";
inline constexpr std::string_view kScopeGlobal = "global";

std::string CheckpointStatement(const Checkpoint& checkpoint);

// Ed25519 (libsodium crypto_sign). The secret key is libsodium's 64-byte form (seed || public).
struct SigningKey {
  Bytes public_key;  // 32 bytes
  SecretBytes secret_key;
};
SigningKey GenerateSigningKey();
// First 8 bytes of SHA-256(public key), hex: names the key in checkpoints.
std::string KeyId(ByteView public_key);
Status SignCheckpoint(const SigningKey& key, Checkpoint& checkpoint);
bool VerifyCheckpoint(ByteView public_key, const Checkpoint& checkpoint);

// Public keys are exchanged as "coffre-audit-ed25519:<64 hex>".
std::string EncodePublicKey(ByteView public_key);
Result<Bytes> DecodePublicKey(std::string_view text);

std::string HashHex(const Hash& h);
std::optional<Hash> ParseHashHex(std::string_view hex);

}  // namespace coffre::audit
