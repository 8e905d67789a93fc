#include "coffre/audit/record.h"

#include <sodium.h>

#include "coffre/crypto/hash.h"
#include "fields.h"

namespace coffre::audit {
namespace {

struct OperationEntry {
  Operation op;
  std::string_view name;
};

constexpr OperationEntry kOperations[] = {
    {Operation::kDataKeyWrap, "data_key.wrap"},
    {Operation::kDataKeyUnwrap, "data_key.unwrap"},
    {Operation::kDataKeyRewrap, "data_key.rewrap"},
    {Operation::kDecrypt, "data.decrypt"},
    {Operation::kTenantKeyCreate, "tenant_key.create"},
    {Operation::kTenantKeyRotate, "tenant_key.rotate"},
    {Operation::kTenantKeyDestroy, "tenant_key.destroy"},
    {Operation::kTenantShred, "tenant.shred"},
    {Operation::kRootKeyRotate, "root_key.rotate"},
    {Operation::kAccessKeyCreate, "access_key.create"},
    {Operation::kAccessKeyDisable, "access_key.disable"},
    {Operation::kAccessKeyDelete, "access_key.delete"},
    {Operation::kApprovalRequest, "approval.request"},
    {Operation::kApprovalGrant, "approval.grant"},
    {Operation::kKeystoreRestore, "keystore.restore"},
    {Operation::kAccessKeyEnable, "access_key.enable"},
    {Operation::kAdminCredentialCreate, "admin_credential.create"},
    {Operation::kAdminCredentialDisable, "admin_credential.disable"},
    {Operation::kNamedKeyCreate, "named_key.create"},
    {Operation::kNamedKeyDestroy, "named_key.destroy"},
};

}  // namespace

namespace internal {

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.push_back('=');
  out.append(std::to_string(value.size()));
  out.push_back(':');
  out.append(value);
  out.push_back('\n');
}

}  // namespace internal

using internal::AppendField;

std::string_view OperationName(Operation op) {
  for (const auto& e : kOperations) {
    if (e.op == op) {
      return e.name;
    }
  }
  return "unknown";
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "success";
    case Outcome::kFailure:
      return "failure";
    case Outcome::kIntegrityFailure:
      return "integrity_failure";
  }
  return "unknown";
}

Record RecordFromEvent(const Event& event, uint64_t seq, UnixMillis time_ms, const Hash& prev) {
  Record r;
  r.seq = seq;
  r.time_ms = time_ms;
  r.tenant = event.tenant;
  r.key_id = event.key_id;
  r.key_version = event.key_version;
  r.operation = std::string(OperationName(event.operation));
  r.action = event.request.action;
  r.bucket = event.bucket;
  r.object_key = event.object_key;
  r.object_id = event.object_id;
  r.request_id = event.request.request_id;
  r.access_key_id = event.request.access_key_id;
  r.client_address = event.request.client_address;
  r.outcome = std::string(OutcomeName(event.outcome));
  r.prev = prev;
  return r;
}

std::string CanonicalForm(const Record& r) {
  std::string out = "coffre-audit-record\n";
  AppendField(out, "v", std::to_string(kFormatVersion));
  AppendField(out, "seq", std::to_string(r.seq));
  AppendField(out, "time_ms", std::to_string(r.time_ms));
  AppendField(out, "tenant", r.tenant);
  AppendField(out, "key_id", r.key_id);
  AppendField(out, "key_version", std::to_string(r.key_version));
  AppendField(out, "operation", r.operation);
  AppendField(out, "action", r.action);
  AppendField(out, "bucket", r.bucket);
  AppendField(out, "object_key", r.object_key);
  AppendField(out, "object_id", r.object_id);
  AppendField(out, "request_id", r.request_id);
  AppendField(out, "access_key_id", r.access_key_id);
  AppendField(out, "client_address", r.client_address);
  AppendField(out, "outcome", r.outcome);
  AppendField(out, "prev", HashHex(r.prev));
  return out;
}

Hash RecordHash(const Record& record) { return crypto::Sha256::Digest(AsBytes(CanonicalForm(record))); }

Hash GlobalLink(const Hash& prev_global, uint64_t global_seq, const Hash& record_hash) {
  crypto::Sha256 h;
  h.Update(AsBytes("coffre-audit-global/v1"));
  h.Update(prev_global);
  uint8_t seq[8];
  PutBigEndian64(seq, global_seq);
  h.Update(ByteView(seq, sizeof(seq)));
  h.Update(record_hash);
  return h.Final();
}

std::string CheckpointStatement(const Checkpoint& c) {
  std::string out = "coffre-audit-checkpoint\n";
  AppendField(out, "v", std::to_string(kFormatVersion));
  AppendField(out, "scope", c.scope);
  AppendField(out, "tenant", c.tenant);
  AppendField(out, "seq", std::to_string(c.seq));
  AppendField(out, "head", HashHex(c.head));
  AppendField(out, "time_ms", std::to_string(c.time_ms));
  AppendField(out, "signer", c.signer);
  return out;
}

SigningKey GenerateSigningKey() {
  SigningKey key;
  key.public_key.resize(crypto_sign_PUBLICKEYBYTES);
  key.secret_key = SecretBytes(crypto_sign_SECRETKEYBYTES);
  crypto_sign_keypair(key.public_key.data(), key.secret_key.RevealMutable().data());
  return key;
}

std::string KeyId(ByteView public_key) {
  auto digest = crypto::Sha256::Digest(public_key);
  return HexEncode(ByteView(digest.data(), 8));
}

Status SignCheckpoint(const SigningKey& key, Checkpoint& c) {
  if (key.secret_key.size() != crypto_sign_SECRETKEYBYTES || key.public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Status::InvalidArgument("audit signing key has the wrong size");
  }
  c.signer = KeyId(key.public_key);
  const std::string statement = CheckpointStatement(c);
  c.signature.resize(crypto_sign_BYTES);
  if (crypto_sign_detached(c.signature.data(), nullptr, reinterpret_cast<const uint8_t*>(statement.data()),
                           statement.size(), key.secret_key.Reveal().data()) != 0) {
    return Status::Internal("checkpoint signing failed");
  }
  return Status::Ok();
}

bool VerifyCheckpoint(ByteView public_key, const Checkpoint& c) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || c.signature.size() != crypto_sign_BYTES) {
    return false;
  }
  if (c.signer != KeyId(public_key)) {
    return false;
  }
  const std::string statement = CheckpointStatement(c);
  return crypto_sign_verify_detached(c.signature.data(), reinterpret_cast<const uint8_t*>(statement.data()),
                                     statement.size(), public_key.data()) == 0;
}

std::string EncodePublicKey(ByteView public_key) { return "coffre-audit-ed25519:" + HexEncode(public_key); }

Result<Bytes> DecodePublicKey(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  constexpr std::string_view kPrefix = "coffre-audit-ed25519:";
  if (!text.starts_with(kPrefix)) {
    return Status::InvalidArgument("not a Coffre audit public key (expected 'coffre-audit-ed25519:<hex>')");
  }
  auto raw = HexDecode(text.substr(kPrefix.size()));
  if (!raw || raw->size() != crypto_sign_PUBLICKEYBYTES) {
    return Status::InvalidArgument("malformed audit public key (expected 64 hex characters)");
  }
  return std::move(*raw);
}

std::string HashHex(const Hash& h) { return HexEncode(h); }

std::optional<Hash> ParseHashHex(std::string_view hex) {
  auto raw = HexDecode(hex);
  if (!raw || raw->size() != 32) {
    return std::nullopt;
  }
  Hash h;
  std::copy(raw->begin(), raw->end(), h.begin());
  return h;
}

}  // namespace coffre::audit
