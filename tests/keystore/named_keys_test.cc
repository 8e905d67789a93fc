// Named keys in the keystore: a tenant's keys besides its default one. Each is versioned like the
// default key; data keys under it are bound to the tenant, the key and the version; it belongs to
// one tenant, which every use checks; destroying it makes exactly the data keys under it
// unreadable; its row is authenticated like every row that decides who may do what.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::StatusIs;
using ::testing::HasSubstr;

class NamedKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/keystore.db";
    root_ = SecretBytes::Random(32);
    ks_ = Open();
    auto acme = ks_->CreateTenant("acme");
    auto other = ks_->CreateTenant("other");
    ASSERT_OK(acme);
    ASSERT_OK(other);
    acme_ = acme->id;
    other_ = other->id;
  }

  std::unique_ptr<Keystore> Open() {
    auto ks = Keystore::Open(path_, root_, clock_);
    EXPECT_OK(ks);
    return ks.ok() ? std::move(ks).value() : nullptr;
  }

  NamedKey Create(const std::string& tenant, const std::string& name) {
    auto key = ks_->CreateNamedKey(tenant, name);
    EXPECT_OK(key);
    return key.ok() ? *key : NamedKey{};
  }

  // Runs one statement on the keystore file, as someone who can write it but holds no key.
  void Tamper(const std::string& sql) {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec(sql));
  }

  FixedClock clock_{std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"namedkeys"};
  std::string path_;
  SecretBytes root_;
  std::unique_ptr<Keystore> ks_;
  std::string acme_;
  std::string other_;
};

TEST_F(NamedKeysTest, CreatedWithAnActiveFirstVersionAndFoundByNameOrId) {
  const NamedKey key = Create(acme_, "customer-42");
  EXPECT_EQ(key.tenant_id, acme_);
  EXPECT_EQ(key.name, "customer-42");
  EXPECT_EQ(key.key_id.size(), 32u);
  EXPECT_NE(key.key_id, acme_);
  EXPECT_FALSE(key.destroyed);
  auto versions = ks_->ListKeyVersions(key.ref());
  ASSERT_OK(versions);
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_TRUE(versions->front().active);
  EXPECT_EQ(versions->front().version, 1u);

  for (const std::string& as : {key.name, key.key_id, KeyIdAsUuid(key.key_id)}) {
    auto found = ks_->FindNamedKey(acme_, as);
    ASSERT_OK(found);
    EXPECT_EQ(found->key_id, key.key_id) << as;
  }
  auto listed = ks_->ListNamedKeys(acme_);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().key_id, key.key_id);
  // The tenant's default key is untouched and the event is kept for auditors.
  auto events = ks_->ListKeyEvents(acme_);
  ASSERT_OK(events);
  EXPECT_EQ(events->back().event, "named-key-created");
}

TEST_F(NamedKeysTest, NamesAreCheckedAndNeverReused) {
  for (const std::string& bad :
       {std::string(), std::string("aws/s3"), std::string("alias/x"), std::string("a b"), std::string(201, 'a'),
        std::string(32, 'a'), std::string("169f295f-281b-fc00-0156-b7472454556e")}) {
    EXPECT_THAT(ks_->CreateNamedKey(acme_, bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
  const NamedKey key = Create(acme_, "dossiers/2026_Q1.v2");
  EXPECT_THAT(ks_->CreateNamedKey(acme_, key.name), StatusIs(StatusCode::kAlreadyExists));
  ASSERT_OK(ks_->DestroyNamedKey(key.ref()));
  EXPECT_THAT(ks_->CreateNamedKey(acme_, key.name), StatusIs(StatusCode::kAlreadyExists));
  // Another tenant may use the same name: names are per tenant.
  const NamedKey theirs = Create(other_, key.name);
  EXPECT_NE(theirs.key_id, key.key_id);
}

TEST_F(NamedKeysTest, DataKeysAreBoundToTenantKeyAndVersion) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("object"));
  ASSERT_OK(dk);
  EXPECT_EQ(HexEncode(dk->tenant_key_id), key.key_id);
  EXPECT_EQ(dk->tenant_key_version, 1u);
  auto opened = ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("object"));
  ASSERT_OK(opened);
  EXPECT_TRUE(ConstantTimeEquals(opened->Reveal(), dk->key.Reveal()));
  // Another binding, the default key, or the same key named for another tenant: nothing opens.
  EXPECT_THAT(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("other")), StatusIs(StatusCode::kCorruption));
  EXPECT_FALSE(ks_->UnwrapDataKey(KeyRef(acme_), 1, dk->wrapped, AsBytes("object")).ok());
  EXPECT_THAT(ks_->UnwrapDataKey(KeyRef(other_, key.key_id), 1, dk->wrapped, AsBytes("object")),
              StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->NewDataKey(KeyRef(other_, key.key_id), AsBytes("x")), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->FindNamedKey(other_, key.key_id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->FindNamedKey(other_, key.name), StatusIs(StatusCode::kNotFound));
  // An unknown key id is no key at all.
  EXPECT_THAT(ks_->NewDataKey(KeyRef(acme_, std::string(32, 'b')), AsBytes("x")), StatusIs(StatusCode::kNotFound));
}

TEST_F(NamedKeysTest, RotatedRewrappedAndDestroyedVersionByVersion) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("o"));
  ASSERT_OK(dk);
  auto v2 = ks_->RotateTenantKey(key.ref());
  ASSERT_OK(v2);
  EXPECT_EQ(*v2, 2u);
  EXPECT_EQ(ks_->ActiveKeyVersion(key.ref()).value(), 2u);
  EXPECT_EQ(ks_->ActiveKeyVersion(KeyRef(acme_)).value(), 1u);  // the default key did not move
  auto rewrapped = ks_->RewrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("o"));
  ASSERT_OK(rewrapped);
  EXPECT_EQ(rewrapped->tenant_key_version, 2u);
  ASSERT_OK(ks_->DestroyKeyVersion(key.ref(), 1));
  EXPECT_THAT(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("o")), StatusIs(StatusCode::kNotFound));
  auto opened = ks_->UnwrapDataKey(key.ref(), 2, rewrapped->wrapped, AsBytes("o"));
  ASSERT_OK(opened);
  EXPECT_TRUE(ConstantTimeEquals(opened->Reveal(), dk->key.Reveal()));
  EXPECT_THAT(ks_->DestroyKeyVersion(key.ref(), 2), StatusIs(StatusCode::kFailedPrecondition));
  // The rotation policy covers named keys too.
  clock_.Set(clock_.Now() + std::chrono::hours(24 * 10));
  auto rotated = ks_->RotateKeysOlderThan(7LL * 24 * 3600 * 1000);
  ASSERT_OK(rotated);
  EXPECT_EQ(rotated->size(), 3u);  // acme's and other's default keys, and k
  EXPECT_NE(std::find(rotated->begin(), rotated->end(), key.ref()), rotated->end());
}

TEST_F(NamedKeysTest, DestroyingOneKeyShredsExactlyTheDataKeysUnderIt) {
  const NamedKey doomed = Create(acme_, "customer-1");
  const NamedKey kept = Create(acme_, "customer-2");
  auto under_doomed = ks_->NewDataKey(doomed.ref(), AsBytes("a"));
  auto under_kept = ks_->NewDataKey(kept.ref(), AsBytes("b"));
  auto under_default = ks_->NewDataKey(KeyRef(acme_), AsBytes("c"));
  ASSERT_OK(under_doomed);
  ASSERT_OK(under_kept);
  ASSERT_OK(under_default);

  ASSERT_OK(ks_->DestroyNamedKey(doomed.ref()));
  EXPECT_THAT(ks_->UnwrapDataKey(doomed.ref(), 1, under_doomed->wrapped, AsBytes("a")),
              StatusIs(StatusCode::kPermissionDenied, HasSubstr("destroyed")));
  EXPECT_THAT(ks_->NewDataKey(doomed.ref(), AsBytes("x")), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(ks_->RotateTenantKey(doomed.ref()), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->DestroyNamedKey(doomed.ref()), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_OK(ks_->UnwrapDataKey(kept.ref(), 1, under_kept->wrapped, AsBytes("b")));
  EXPECT_OK(ks_->UnwrapDataKey(KeyRef(acme_), 1, under_default->wrapped, AsBytes("c")));

  auto found = ks_->FindNamedKey(acme_, doomed.name);
  ASSERT_OK(found);
  EXPECT_TRUE(found->destroyed);
  auto versions = ks_->ListKeyVersions(doomed.ref());
  ASSERT_OK(versions);
  EXPECT_TRUE(versions->empty());
  // Another process (the daemon) that had the key cached stops using it as soon as it looks again.
  EXPECT_THAT(ks_->DestroyNamedKey(KeyRef(acme_)), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(NamedKeysTest, ADaemonThatCachedTheKeySeesItsDestructionByAnotherProcess) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("a"));
  ASSERT_OK(dk);
  ASSERT_OK(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("a")));  // cached now
  {
    auto admin = Open();
    ASSERT_NE(admin, nullptr);
    ASSERT_OK(admin->DestroyNamedKey(key.ref()));
  }
  clock_.Set(clock_.Now() + std::chrono::milliseconds(Keystore::kRevalidateIntervalMs + 1));
  EXPECT_THAT(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("a")), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(NamedKeysTest, ShreddingTheTenantDestroysItsNamedKeys) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("a"));
  ASSERT_OK(dk);
  ASSERT_OK(ks_->ShredTenant(acme_));
  EXPECT_THAT(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("a")), StatusIs(StatusCode::kPermissionDenied));
  auto listed = ks_->ListNamedKeys(acme_);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(listed->front().destroyed);
  EXPECT_THAT(ks_->CreateNamedKey(acme_, "later"), StatusIs(StatusCode::kFailedPrecondition));
  // Every row is still authentic after the shred.
  EXPECT_OK(ks_->CheckIntegrity());
}

// Whoever can write keystore.db but holds no root key cannot give a tenant's key to another one:
// the named key's row is authenticated, identity included.
TEST_F(NamedKeysTest, AKeyMovedToAnotherTenantInTheDatabaseIsRefused) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("a"));
  ASSERT_OK(dk);
  ks_.reset();
  Tamper("UPDATE named_keys SET tenant_id = '" + other_ + "' WHERE key_id = '" + key.key_id + "'");
  ks_ = Open();
  ASSERT_NE(ks_, nullptr);
  EXPECT_FALSE(ks_->UnwrapDataKey(KeyRef(other_, key.key_id), 1, dk->wrapped, AsBytes("a")).ok());
  EXPECT_FALSE(ks_->FindNamedKey(other_, key.name).ok());
  EXPECT_FALSE(ks_->CheckIntegrity().ok());
  EXPECT_GT(ks_->IntegrityFailures(), 0u);
}

// A destroyed key's row written back as live brings no key back: its versions are deleted, and
// the row's MAC covers the destroyed mark.
TEST_F(NamedKeysTest, ADestroyedKeyMarkedLiveAgainOpensNothing) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("a"));
  ASSERT_OK(dk);
  ASSERT_OK(ks_->DestroyNamedKey(key.ref()));
  ks_.reset();
  Tamper("UPDATE named_keys SET destroyed = NULL WHERE key_id = '" + key.key_id + "'");
  ks_ = Open();
  ASSERT_NE(ks_, nullptr);
  EXPECT_FALSE(ks_->UnwrapDataKey(key.ref(), 1, dk->wrapped, AsBytes("a")).ok());
  EXPECT_FALSE(ks_->NewDataKey(key.ref(), AsBytes("b")).ok());
}

TEST_F(NamedKeysTest, RootKeyRotationCarriesNamedKeysOver) {
  const NamedKey key = Create(acme_, "k");
  auto dk = ks_->NewDataKey(key.ref(), AsBytes("a"));
  ASSERT_OK(dk);
  ks_.reset();
  const SecretBytes new_root = SecretBytes::Random(32);
  ASSERT_OK(RotateRootKey(path_, root_, new_root));
  root_ = new_root;
  ks_ = Open();
  ASSERT_NE(ks_, nullptr);
  EXPECT_OK(ks_->CheckIntegrity());
  auto found = ks_->FindNamedKey(acme_, "k");
  ASSERT_OK(found);
  auto opened = ks_->UnwrapDataKey(found->ref(), 1, dk->wrapped, AsBytes("a"));
  ASSERT_OK(opened);
  EXPECT_TRUE(ConstantTimeEquals(opened->Reveal(), dk->key.Reveal()));
}

TEST(KeyIds, ReadAsHexOrUuid) {
  EXPECT_EQ(ParseKeyId("169F295F281BFC000156B7472454556E"), "169f295f281bfc000156b7472454556e");
  EXPECT_EQ(ParseKeyId("169f295f-281b-fc00-0156-b7472454556e"), "169f295f281bfc000156b7472454556e");
  EXPECT_EQ(KeyIdAsUuid("169f295f281bfc000156b7472454556e"), "169f295f-281b-fc00-0156-b7472454556e");
  EXPECT_FALSE(ParseKeyId("169f295f-281bfc00-0156-b7472454556e0"));
  EXPECT_FALSE(ParseKeyId("g69f295f281bfc000156b7472454556e"));
  EXPECT_FALSE(ParseKeyId("customer-42"));
}

}  // namespace
}  // namespace coffre::keystore
