#include "coffre/audit/record.h"

#include <gtest/gtest.h>

#include <set>
#include <string_view>

#include "support/status_matchers.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using ::testing::Not;

Record Sample() {
  Record r;
  r.seq = 7;
  r.time_ms = 1764000000123;
  r.tenant = "0123456789abcdef0123456789abcdef";
  r.key_id = r.tenant;
  r.key_version = 2;
  r.operation = "data_key.unwrap";
  r.action = "GetObject";
  r.bucket = "dossiers";
  r.object_key = "2026/contrat.pdf";
  r.object_id = "aa";
  r.request_id = "0011223344556677";
  r.access_key_id = "COABCDEFGHIJKLMNOPQR";
  r.client_address = "127.0.0.1:5000";
  r.outcome = "success";
  return r;
}

TEST(CanonicalFormTest, IsSpecifiedBytes) {
  Record r = Sample();
  const std::string expected =
      "coffre-audit-record\n"
      "v=1:1\n"
      "seq=1:7\n"
      "time_ms=13:1764000000123\n"
      "tenant=32:0123456789abcdef0123456789abcdef\n"
      "key_id=32:0123456789abcdef0123456789abcdef\n"
      "key_version=1:2\n"
      "operation=15:data_key.unwrap\n"
      "action=9:GetObject\n"
      "bucket=8:dossiers\n"
      "object_key=16:2026/contrat.pdf\n"
      "object_id=2:aa\n"
      "request_id=16:0011223344556677\n"
      "access_key_id=20:COABCDEFGHIJKLMNOPQR\n"
      "client_address=14:127.0.0.1:5000\n"
      "outcome=7:success\n"
      "prev=64:0000000000000000000000000000000000000000000000000000000000000000\n";
  EXPECT_EQ(CanonicalForm(r), expected);
}

TEST(CanonicalFormTest, FieldBoundariesCannotBeImitated) {
  // Moving bytes from one field to the next changes the canonical form (length prefixes).
  Record a = Sample();
  Record b = Sample();
  a.bucket = "ab";
  a.object_key = "c";
  b.bucket = "a";
  b.object_key = "bc";
  EXPECT_NE(CanonicalForm(a), CanonicalForm(b));
  EXPECT_NE(RecordHash(a), RecordHash(b));
  // A value holding a newline and a field-like suffix cannot forge another field.
  Record c = Sample();
  c.object_key = "x\noutcome=7:success";
  EXPECT_NE(RecordHash(c), RecordHash(Sample()));
}

TEST(RecordHashTest, EveryFieldIsCovered) {
  const Hash base = RecordHash(Sample());
  auto changed = [&](auto mutate) {
    Record r = Sample();
    mutate(r);
    return RecordHash(r) != base;
  };
  EXPECT_TRUE(changed([](Record& r) { r.seq++; }));
  EXPECT_TRUE(changed([](Record& r) { r.time_ms++; }));
  EXPECT_TRUE(changed([](Record& r) { r.tenant[0] = 'f'; }));
  EXPECT_TRUE(changed([](Record& r) { r.key_id[0] = 'f'; }));
  EXPECT_TRUE(changed([](Record& r) { r.key_version++; }));
  EXPECT_TRUE(changed([](Record& r) { r.operation = "data_key.wrap"; }));
  EXPECT_TRUE(changed([](Record& r) { r.action = "PutObject"; }));
  EXPECT_TRUE(changed([](Record& r) { r.bucket = "other"; }));
  EXPECT_TRUE(changed([](Record& r) { r.object_key = "other"; }));
  EXPECT_TRUE(changed([](Record& r) { r.object_id = "bb"; }));
  EXPECT_TRUE(changed([](Record& r) { r.request_id = "X"; }));
  EXPECT_TRUE(changed([](Record& r) { r.access_key_id = "Y"; }));
  EXPECT_TRUE(changed([](Record& r) { r.client_address = "10.0.0.1:1"; }));
  EXPECT_TRUE(changed([](Record& r) { r.outcome = "failure"; }));
  EXPECT_TRUE(changed([](Record& r) { r.prev[31] = 1; }));
}

TEST(ChainTest, EachRecordLinksToItsPredecessor) {
  Event ev;
  ev.tenant = "t";
  Hash prev{};
  std::vector<Record> chain;
  for (uint64_t i = 1; i <= 3; ++i) {
    chain.push_back(RecordFromEvent(ev, i, 1000 + static_cast<int64_t>(i), prev));
    prev = RecordHash(chain.back());
  }
  EXPECT_EQ(chain[0].prev, Hash{});
  EXPECT_EQ(chain[1].prev, RecordHash(chain[0]));
  EXPECT_EQ(chain[2].prev, RecordHash(chain[1]));
}

TEST(GlobalLinkTest, DependsOnEveryInput) {
  Hash a{};
  Hash b{};
  b[0] = 1;
  EXPECT_NE(GlobalLink(a, 1, a), GlobalLink(b, 1, a));
  EXPECT_NE(GlobalLink(a, 1, a), GlobalLink(a, 2, a));
  EXPECT_NE(GlobalLink(a, 1, a), GlobalLink(a, 1, b));
}

// Records and exports name operations by these strings, so no two operations may share one.
TEST(EventNamesTest, EveryOperationHasItsOwnName) {
  std::set<std::string_view> names;
  for (Operation op :
       {Operation::kDataKeyWrap, Operation::kDataKeyUnwrap, Operation::kDataKeyRewrap, Operation::kDecrypt,
        Operation::kTenantKeyCreate, Operation::kTenantKeyRotate, Operation::kTenantKeyDestroy, Operation::kTenantShred,
        Operation::kRootKeyRotate, Operation::kAccessKeyCreate, Operation::kAccessKeyDisable,
        Operation::kAccessKeyDelete, Operation::kApprovalRequest, Operation::kApprovalGrant,
        Operation::kKeystoreRestore, Operation::kAccessKeyEnable, Operation::kAdminCredentialCreate,
        Operation::kAdminCredentialDisable}) {
    EXPECT_NE(OperationName(op), "unknown");
    EXPECT_TRUE(names.insert(OperationName(op)).second) << OperationName(op);
  }
  EXPECT_EQ(OutcomeName(Outcome::kIntegrityFailure), "integrity_failure");
}

Checkpoint SampleCheckpoint() {
  Checkpoint c;
  c.scope = std::string(kScopeTenant);
  c.tenant = "t1";
  c.seq = 42;
  c.head[0] = 0xab;
  c.time_ms = 1764000000000;
  return c;
}

TEST(CheckpointTest, SignedCheckpointVerifies) {
  SigningKey key = GenerateSigningKey();
  Checkpoint c = SampleCheckpoint();
  ASSERT_OK(SignCheckpoint(key, c));
  EXPECT_EQ(c.signer, KeyId(key.public_key));
  EXPECT_EQ(c.signature.size(), 64u);
  EXPECT_TRUE(VerifyCheckpoint(key.public_key, c));
}

TEST(CheckpointTest, AlteredCheckpointFailsToVerify) {
  SigningKey key = GenerateSigningKey();
  Checkpoint signed_cp = SampleCheckpoint();
  ASSERT_OK(SignCheckpoint(key, signed_cp));
  auto fails = [&](auto mutate) {
    Checkpoint c = signed_cp;
    mutate(c);
    return !VerifyCheckpoint(key.public_key, c);
  };
  EXPECT_TRUE(fails([](Checkpoint& c) { c.seq++; }));
  EXPECT_TRUE(fails([](Checkpoint& c) { c.head[1] ^= 1; }));
  EXPECT_TRUE(fails([](Checkpoint& c) { c.tenant = "t2"; }));
  EXPECT_TRUE(fails([](Checkpoint& c) { c.scope = "global"; }));
  EXPECT_TRUE(fails([](Checkpoint& c) { c.time_ms++; }));
  EXPECT_TRUE(fails([](Checkpoint& c) { c.signature[0] ^= 1; }));
}

TEST(CheckpointTest, ForgedWithAnotherKeyFails) {
  SigningKey real = GenerateSigningKey();
  SigningKey forger = GenerateSigningKey();
  Checkpoint c = SampleCheckpoint();
  ASSERT_OK(SignCheckpoint(forger, c));
  EXPECT_FALSE(VerifyCheckpoint(real.public_key, c));
  c.signer = KeyId(real.public_key);  // claiming the real signer does not help
  EXPECT_FALSE(VerifyCheckpoint(real.public_key, c));
}

TEST(PublicKeyTest, EncodeDecode) {
  SigningKey key = GenerateSigningKey();
  auto decoded = DecodePublicKey(EncodePublicKey(key.public_key) + "\n");
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, key.public_key);
  EXPECT_THAT(DecodePublicKey("ssh-ed25519 AAAA"), Not(IsOk()));
  EXPECT_THAT(DecodePublicKey("coffre-audit-ed25519:abcd"), Not(IsOk()));
}

}  // namespace
}  // namespace coffre::audit
