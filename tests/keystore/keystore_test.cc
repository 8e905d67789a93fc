#include "coffre/keystore/keystore.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "coffre/crypto/blob_format.h"
#include "coffre/db/sqlite.h"
#include "keystore/format.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::StatusIs;

using std::chrono::milliseconds;
using std::chrono::seconds;

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class KeystoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/keystore.db";
    root_ = SecretBytes::Random(32);
    Reopen();
  }
  void TearDown() override { ks_.reset(); }

  void Reopen() {
    ks_.reset();
    auto ks = Keystore::Open(path_, root_, clock_);
    ASSERT_OK(ks);
    ks_ = std::move(ks).value();
  }

  void WriteFile(const std::string& path, std::string_view content, mode_t mode) {
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << content;
    }
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
  }

  // Every byte the keystore has put on disk: the database, its WAL and shared memory.
  std::string DiskBytes() {
    std::string all;
    for (const auto& entry : std::filesystem::directory_iterator(dir_.str())) {
      all += ReadAll(entry.path().string());
    }
    return all;
  }

  Tenant MakeTenant(const std::string& name) {
    auto t = ks_->CreateTenant(name);
    EXPECT_OK(t);
    return t.ok() ? *t : Tenant{};
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"keystore"};
  std::string path_;
  SecretBytes root_;
  std::unique_ptr<Keystore> ks_;
};

// --- root key files ----------------------------------------------------------------------

TEST_F(KeystoreTest, RootKeyFileReadableByOthersIsRefused) {
  const std::string path = dir_.str() + "/root.key";
  WriteFile(path, std::string(64, 'a'), 0644);
  auto r = LoadRootKeyFile(path);
  ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_NE(r.status().message().find("0644"), std::string::npos);
  ASSERT_EQ(::chmod(path.c_str(), 0640), 0);
  EXPECT_THAT(LoadRootKeyFile(path), StatusIs(StatusCode::kPermissionDenied));
  ASSERT_EQ(::chmod(path.c_str(), 0602), 0);
  EXPECT_THAT(LoadRootKeyFile(path), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(KeystoreTest, RootKeyFileFormats) {
  const std::string path = dir_.str() + "/root.key";
  const std::string hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
  for (const std::string& content : {hex, hex + "\n", hex + "\r\n"}) {
    WriteFile(path, content, 0600);
    auto r = LoadRootKeyFile(path);
    ASSERT_OK(r);
    ASSERT_EQ(r->size(), 32u);
    EXPECT_EQ(r->Reveal()[0], 0x00);
    EXPECT_EQ(r->Reveal()[31], 0x1f);
  }
  WriteFile(path, "00010203040506070809 A0B0C0D0E0F101112131415161718191a1b1c1d1e1f", 0400);
  EXPECT_THAT(LoadRootKeyFile(path), StatusIs(StatusCode::kInvalidArgument));
  // 32 raw bytes.
  std::string raw(32, '\0');
  for (int i = 0; i < 32; ++i) {
    raw[i] = static_cast<char>(0xe0 + (i % 16));
  }
  WriteFile(path, raw, 0400);
  auto r = LoadRootKeyFile(path);
  ASSERT_OK(r);
  EXPECT_EQ(AsChars(r->Reveal()), raw);
}

TEST_F(KeystoreTest, RootKeyFileOfWrongLengthIsRefused) {
  const std::string path = dir_.str() + "/root.key";
  for (const std::string& content :
       {std::string(), std::string(31, 'x'), std::string(33, 'x'), std::string(63, 'a'), std::string(66, 'a'),
        std::string(1000, 'a'), std::string(32, 'a') /* a 128-bit key in hex */}) {
    WriteFile(path, content, 0600);
    auto r = LoadRootKeyFile(path);
    ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << content.size();
  }
}

TEST_F(KeystoreTest, RootKeyFileMustBeARegularFile) {
  EXPECT_THAT(LoadRootKeyFile(dir_.str()), StatusIs(StatusCode::kPermissionDenied));
  const std::string fifo = dir_.str() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(LoadRootKeyFile(fifo), StatusIs(StatusCode::kPermissionDenied));  // and does not hang
  EXPECT_THAT(LoadRootKeyFile(dir_.str() + "/missing"), StatusIs(StatusCode::kNotFound));
}

TEST_F(KeystoreTest, CreateRootKeyFile) {
  const std::string path = dir_.str() + "/new.key";
  ASSERT_OK(CreateRootKeyFile(path));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadAll(path).size(), 65u);
  auto key = LoadRootKeyFile(path);
  ASSERT_OK(key);
  EXPECT_EQ(key->size(), 32u);
  EXPECT_THAT(CreateRootKeyFile(path), StatusIs(StatusCode::kAlreadyExists));
  auto again = LoadRootKeyFile(path);
  ASSERT_OK(again);
  EXPECT_TRUE(ConstantTimeEquals(key->Reveal(), again->Reveal()));  // not overwritten
  const std::string other = dir_.str() + "/other.key";
  ASSERT_OK(CreateRootKeyFile(other));
  EXPECT_FALSE(ConstantTimeEquals(key->Reveal(), LoadRootKeyFile(other)->Reveal()));
}

// --- opening -----------------------------------------------------------------------------

TEST_F(KeystoreTest, WrongRootKeyIsDetectedAtOpen) {
  MakeTenant("bank");
  ks_.reset();
  auto bad = Keystore::Open(path_, SecretBytes::Random(32), clock_);
  ASSERT_THAT(bad, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_EQ(bad.status().message(), "root key does not match this keystore");
  EXPECT_THAT(Keystore::Open(path_, SecretBytes::Random(16), clock_), StatusIs(StatusCode::kInvalidArgument));
  Reopen();
  EXPECT_OK(ks_->GetTenantByName("bank"));
}

TEST_F(KeystoreTest, ReopenWithRightKeyServesEarlierKeys) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  auto dk = ks_->NewDataKey(t.id, AsBytes("object-1"));
  ASSERT_OK(dk);
  Reopen();
  auto unwrapped = ks_->UnwrapDataKey(t.id, dk->tenant_key_version, dk->wrapped, AsBytes("object-1"));
  ASSERT_OK(unwrapped);
  EXPECT_TRUE(ConstantTimeEquals(unwrapped->Reveal(), dk->key.Reveal()));
  auto resolved = ks_->ResolveAccessKey(ak->key.access_key_id);
  ASSERT_OK(resolved);
  EXPECT_EQ(AsChars(resolved->secret.Reveal()), ak->secret_access_key);
  EXPECT_EQ(resolved->key.tenant_id, t.id);
}

// --- tenants -----------------------------------------------------------------------------

TEST_F(KeystoreTest, TenantCreateListGet) {
  Tenant b = MakeTenant("bpi-loans");
  Tenant a = MakeTenant("archive.2024_x");
  EXPECT_TRUE(internal::IsValidTenantId(b.id));
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(b.created, 1'700'000'000'000);
  auto list = ks_->ListTenants();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "archive.2024_x");
  EXPECT_EQ((*list)[1].id, b.id);
  EXPECT_EQ(ks_->GetTenant(b.id)->name, "bpi-loans");
  EXPECT_EQ(ks_->GetTenantByName("archive.2024_x")->id, a.id);
  EXPECT_THAT(ks_->GetTenant(RandomId(16)), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->GetTenantByName("nobody"), StatusIs(StatusCode::kNotFound));
}

TEST_F(KeystoreTest, TenantNamesAreUniqueAndValidated) {
  MakeTenant("bank");
  EXPECT_THAT(ks_->CreateTenant("bank"), StatusIs(StatusCode::kAlreadyExists));
  for (const std::string& bad :
       {std::string(), std::string("Bank"), std::string(".bank"), std::string("-bank"), std::string("ba nk"),
        std::string("ba/nk"), std::string(64, 'a'), std::string("caf\xc3\xa9")}) {
    EXPECT_THAT(ks_->CreateTenant(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_OK(ks_->CreateTenant(std::string(63, 'a')));
  EXPECT_OK(ks_->CreateTenant("0"));
  EXPECT_EQ(ks_->ListTenants()->size(), 3u);
}

// --- access keys -------------------------------------------------------------------------

TEST_F(KeystoreTest, AccessKeyCreateResolveList) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  EXPECT_TRUE(internal::IsValidAccessKeyId(ak->key.access_key_id)) << ak->key.access_key_id;
  EXPECT_EQ(ak->key.tenant_id, t.id);
  EXPECT_TRUE(ak->key.enabled);
  ASSERT_EQ(ak->secret_access_key.size(), 40u);
  for (char c : ak->secret_access_key) {
    EXPECT_NE(internal::kSecretAlphabet.find(c), std::string_view::npos);
  }
  auto resolved = ks_->ResolveAccessKey(ak->key.access_key_id);
  ASSERT_OK(resolved);
  EXPECT_EQ(AsChars(resolved->secret.Reveal()), ak->secret_access_key);
  EXPECT_EQ(resolved->key.tenant_id, t.id);

  auto second = ks_->CreateAccessKey(t.id);
  ASSERT_OK(second);
  EXPECT_NE(second->key.access_key_id, ak->key.access_key_id);
  EXPECT_NE(second->secret_access_key, ak->secret_access_key);
  auto list = ks_->ListAccessKeys(t.id);
  ASSERT_OK(list);
  EXPECT_EQ(list->size(), 2u);
  EXPECT_EQ(ks_->ListAccessKeys(MakeTenant("other").id)->size(), 0u);
  EXPECT_THAT(ks_->ListAccessKeys(RandomId(16)), StatusIs(StatusCode::kNotFound));
}

TEST_F(KeystoreTest, UnknownAccessKeys) {
  EXPECT_THAT(ks_->ResolveAccessKey("CO0000000000000000AB"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->ResolveAccessKey("AKIAIOSFODNN7EXAMPLE"), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->ResolveAccessKey(""), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->CreateAccessKey(RandomId(16)), StatusIs(StatusCode::kNotFound));
}

TEST_F(KeystoreTest, DisabledAccessKeyIsRefusedOnceTheCacheExpires) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  {
    // Another process (the admin CLI) disables the key.
    auto conn = db::Connection::Open(path_);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("UPDATE access_keys SET enabled = 0"));
  }
  clock_.Set(clock_.Now() + seconds(61));
  auto r = ks_->ResolveAccessKey(ak->key.access_key_id);
  ASSERT_THAT(r, StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(KeystoreTest, LastUsedIsCoalescedAndFlushed) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  const std::string id = ak->key.access_key_id;
  auto stored_last_used = [&]() -> std::optional<int64_t> {
    auto conn = db::Connection::Open(path_);
    auto st = (*conn)->Prepare("SELECT last_used FROM access_keys WHERE access_key_id = ?");
    EXPECT_OK(st->BindAll(id));
    EXPECT_TRUE(*st->Step());
    if (st->ColumnIsNull(0)) {
      return std::nullopt;
    }
    return st->ColumnInt64(0);
  };

  clock_.Set(clock_.Now() + seconds(1));
  const UnixMillis t1 = ToUnixMillis(clock_.Now());
  ASSERT_OK(ks_->ResolveAccessKey(id));
  EXPECT_EQ(stored_last_used(), std::nullopt);  // not a write per request
  auto listed = ks_->ListAccessKeys(t.id);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].last_used, t1);  // but visible at once

  clock_.Set(clock_.Now() + seconds(60));
  const UnixMillis t2 = ToUnixMillis(clock_.Now());
  auto r = ks_->ResolveAccessKey(id);
  ASSERT_OK(r);
  EXPECT_EQ(r->key.last_used, t2);
  EXPECT_EQ(stored_last_used(), t2);  // the interval passed: flushed

  clock_.Set(clock_.Now() + seconds(5));
  const UnixMillis t3 = ToUnixMillis(clock_.Now());
  ASSERT_OK(ks_->ResolveAccessKey(id));
  EXPECT_EQ(stored_last_used(), t2);
  ks_.reset();  // closing flushes
  EXPECT_EQ(stored_last_used(), t3);
  Reopen();
  EXPECT_EQ((*ks_->ListAccessKeys(t.id))[0].last_used, t3);
}

TEST_F(KeystoreTest, SecretsNeverReachTheDiskInClear) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  auto dk = ks_->NewDataKey(t.id, AsBytes("object"));
  ASSERT_OK(dk);
  ASSERT_OK(ks_->ResolveAccessKey(ak->key.access_key_id));
  const std::string raw_key(AsChars(dk->key.Reveal()));
  const std::string hex_key = HexEncode(dk->key.Reveal());
  const std::string hex_root = HexEncode(root_.Reveal());
  const std::string raw_root(AsChars(root_.Reveal()));

  auto check = [&](const std::string& disk) {
    ASSERT_FALSE(disk.empty());
    EXPECT_EQ(disk.find(ak->secret_access_key), std::string::npos);
    EXPECT_EQ(disk.find(raw_key), std::string::npos);
    EXPECT_EQ(disk.find(hex_key), std::string::npos);
    EXPECT_EQ(disk.find(raw_root), std::string::npos);
    EXPECT_EQ(disk.find(hex_root), std::string::npos);
    // Sanity: the scan does see what is stored (the access key id is public).
    EXPECT_NE(disk.find(ak->key.access_key_id), std::string::npos);
  };
  check(DiskBytes());  // while open: the WAL holds the recent writes
  ks_.reset();
  check(DiskBytes());
}

// --- data keys ---------------------------------------------------------------------------

TEST_F(KeystoreTest, DataKeyWrapUnwrapRoundTrip) {
  Tenant t = MakeTenant("bank");
  const Bytes aad = {1, 2, 3};
  auto dk = ks_->NewDataKey(t.id, aad);
  ASSERT_OK(dk);
  EXPECT_EQ(dk->key.size(), 32u);
  EXPECT_EQ(dk->wrapped.size(), crypto::kWrappedDataKeySize);
  EXPECT_EQ(dk->tenant_key_id, *HexDecode(t.id));
  EXPECT_EQ(dk->tenant_key_version, 1u);
  auto key = ks_->UnwrapDataKey(t.id, 1, dk->wrapped, aad);
  ASSERT_OK(key);
  EXPECT_TRUE(ConstantTimeEquals(key->Reveal(), dk->key.Reveal()));
  auto other = ks_->NewDataKey(t.id, aad);
  EXPECT_FALSE(ConstantTimeEquals(other->key.Reveal(), dk->key.Reveal()));
  EXPECT_NE(other->wrapped, dk->wrapped);
}

TEST_F(KeystoreTest, UnwrapUnderAnotherTenantIsCorruption) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto dk = ks_->NewDataKey(a.id, AsBytes("obj"));
  ASSERT_OK(dk);
  EXPECT_THAT(ks_->UnwrapDataKey(b.id, 1, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeystoreTest, UnwrapWithAnotherAadIsCorruption) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("object-1"));
  ASSERT_OK(dk);
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, AsBytes("object-2")).status(),
              StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, dk->wrapped, {}), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeystoreTest, AlteredWrappedKeyIsCorruption) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(dk);
  for (size_t i = 0; i < dk->wrapped.size(); ++i) {
    Bytes altered = dk->wrapped;
    altered[i] ^= 0x01;
    EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, altered, AsBytes("obj")), StatusIs(StatusCode::kCorruption)) << i;
  }
  Bytes truncated(dk->wrapped.begin(), dk->wrapped.end() - 1);
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, truncated, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 1, {}, AsBytes("obj")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeystoreTest, MissingKeyVersionOrTenantIsNotFound) {
  Tenant t = MakeTenant("bank");
  auto dk = ks_->NewDataKey(t.id, AsBytes("obj"));
  ASSERT_OK(dk);
  EXPECT_THAT(ks_->UnwrapDataKey(t.id, 2, dk->wrapped, AsBytes("obj")), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->UnwrapDataKey(RandomId(16), 1, dk->wrapped, AsBytes("obj")).status(),
              StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->NewDataKey(RandomId(16), AsBytes("obj")), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ks_->NewDataKey("not-a-tenant-id", AsBytes("obj")), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(KeystoreTest, TenantKeySwappedBetweenTenantsInTheDatabaseDoesNotOpen) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  ks_.reset();
  {
    // An insider with write access copies tenant a's wrapped key onto tenant b.
    auto conn = db::Connection::Open(path_);
    ASSERT_OK(conn);
    ASSERT_OK(
        (*conn)->Exec("UPDATE tenant_keys SET wrapped_key = (SELECT wrapped_key FROM tenant_keys WHERE "
                      "tenant_id = '" +
                      a.id + "') WHERE tenant_id = '" + b.id + "'"));
  }
  Reopen();
  EXPECT_OK(ks_->NewDataKey(a.id, AsBytes("x")));
  EXPECT_THAT(ks_->NewDataKey(b.id, AsBytes("x")), StatusIs(StatusCode::kCorruption));
}

TEST_F(KeystoreTest, AccessKeyMovedToAnotherTenantDoesNotOpen) {
  Tenant a = MakeTenant("a");
  Tenant b = MakeTenant("b");
  auto ak = ks_->CreateAccessKey(a.id);
  ASSERT_OK(ak);
  ks_.reset();
  {
    auto conn = db::Connection::Open(path_);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("UPDATE access_keys SET tenant_id = '" + b.id + "'"));
  }
  Reopen();
  // Refused by the row's MAC, which binds the tenant id, before its secret is even opened.
  EXPECT_THAT(ks_->ResolveAccessKey(ak->key.access_key_id), StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(KeystoreTest, ConcurrentUse) {
  Tenant t = MakeTenant("bank");
  auto ak = ks_->CreateAccessKey(t.id);
  ASSERT_OK(ak);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      for (int j = 0; j < 50; ++j) {
        if (i % 3 == 0) {
          auto r = ks_->ResolveAccessKey(ak->key.access_key_id);
          if (!r.ok() || AsChars(r->secret.Reveal()) != ak->secret_access_key) {
            ++failures;
          }
        } else if (i % 3 == 1) {
          const std::string aad = "obj" + std::to_string(j);
          auto dk = ks_->NewDataKey(t.id, AsBytes(aad));
          if (!dk.ok()) {
            ++failures;
            continue;
          }
          auto k = ks_->UnwrapDataKey(t.id, dk->tenant_key_version, dk->wrapped, AsBytes(aad));
          if (!k.ok() || !ConstantTimeEquals(k->Reveal(), dk->key.Reveal())) {
            ++failures;
          }
        } else if (j % 10 == 0) {
          if (!ks_->CreateAccessKey(t.id).ok() || !ks_->ListAccessKeys(t.id).ok()) {
            ++failures;
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(ks_->ListAccessKeys(t.id)->size(), 1u + 2 * 5);
}

// --- internal formats --------------------------------------------------------------------

TEST(KeystoreFormat, LengthPrefixingSeparatesFields) {
  EXPECT_NE(internal::LengthPrefixed({AsBytes("ab"), AsBytes("c")}),
            internal::LengthPrefixed({AsBytes("a"), AsBytes("bc")}));
  EXPECT_EQ(internal::LengthPrefixed({AsBytes("ab")}), (Bytes{0, 0, 0, 2, 'a', 'b'}));
  EXPECT_NE(internal::DataKeyAad("t", 1, AsBytes("x")), internal::DataKeyAad("t", 2, AsBytes("x")));
  EXPECT_NE(internal::TenantKeyAad("t", 1), internal::DataKeyAad("t", 1, {}));
}

TEST(KeystoreFormat, RandomCharsIsUniformOverTheAlphabet) {
  // 36 characters: a plain `byte % 36` would favour the first 4 (256 = 7 * 36 + 4).
  std::vector<int> counts(256, 0);
  std::vector<uint8_t> buf(36 * 20000);
  internal::RandomChars(internal::kAccessKeyIdAlphabet, buf);
  for (uint8_t c : buf) {
    ++counts[c];
  }
  for (char c : internal::kAccessKeyIdAlphabet) {
    // Expected 20000 each (sigma ~140); modulo reduction would give the first four 22500.
    EXPECT_NEAR(counts[static_cast<uint8_t>(c)], 20000, 850) << c;
  }
  int outside = 0;
  for (int b = 0; b < 256; ++b) {
    if (internal::kAccessKeyIdAlphabet.find(static_cast<char>(b)) == std::string_view::npos) {
      outside += counts[b];
    }
  }
  EXPECT_EQ(outside, 0);
}

TEST(KeystoreFormat, Validators) {
  EXPECT_TRUE(internal::IsValidAccessKeyId("CO0123456789ABCDEFGH"));
  EXPECT_FALSE(internal::IsValidAccessKeyId("CO0123456789ABCDEFGh"));
  EXPECT_FALSE(internal::IsValidAccessKeyId("XO0123456789ABCDEFGH"));
  EXPECT_FALSE(internal::IsValidAccessKeyId("CO0123456789ABCDEFG"));
  EXPECT_TRUE(internal::IsValidTenantId("0123456789abcdef0123456789abcdef"));
  EXPECT_FALSE(internal::IsValidTenantId("0123456789ABCDEF0123456789abcdef"));
  EXPECT_TRUE(internal::IsValidTenantName("a"));
  EXPECT_FALSE(internal::IsValidTenantName("_a"));
}

}  // namespace
}  // namespace coffre::keystore
