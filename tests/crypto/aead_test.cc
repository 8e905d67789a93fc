#include "coffre/crypto/aead.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "support/status_matchers.h"

namespace coffre::crypto {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

SecretBytes KeyOf(uint8_t fill) { return SecretBytes(Bytes(kKeySize, fill)); }

TEST(Aead, RoundTrip) {
  const SecretBytes key = SecretBytes::Random(kKeySize);
  const Bytes plaintext = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  auto sealed = Seal(key, plaintext, AsBytes("tenant-a/v1"));
  ASSERT_OK(sealed);
  EXPECT_EQ(sealed->size(), plaintext.size() + kSealOverhead);
  auto opened = Open(key, *sealed, AsBytes("tenant-a/v1"));
  ASSERT_OK(opened);
  EXPECT_EQ(*opened, plaintext);
}

TEST(Aead, EmptyPlaintextAndAad) {
  const SecretBytes key = KeyOf(7);
  auto sealed = Seal(key, {}, {});
  ASSERT_OK(sealed);
  EXPECT_EQ(sealed->size(), kSealOverhead);
  auto opened = Open(key, *sealed, {});
  ASSERT_OK(opened);
  EXPECT_TRUE(opened->empty());
}

TEST(Aead, WrappedKeySize) {
  // blob_format.h's kWrappedDataKeySize assumes Seal() of a 32-byte key.
  const SecretBytes root = KeyOf(1);
  const SecretBytes data_key = KeyOf(2);
  auto sealed = Seal(root, data_key.Reveal(), AsBytes("aad"));
  ASSERT_OK(sealed);
  EXPECT_EQ(sealed->size(), 60u);
  auto opened = OpenSecret(root, *sealed, AsBytes("aad"));
  ASSERT_OK(opened);
  EXPECT_EQ(Bytes(opened->Reveal().begin(), opened->Reveal().end()),
            Bytes(data_key.Reveal().begin(), data_key.Reveal().end()));
}

TEST(Aead, NoncesAreFresh) {
  const SecretBytes key = KeyOf(3);
  auto a = Seal(key, AsBytes("same"), {});
  auto b = Seal(key, AsBytes("same"), {});
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE(*a, *b);
}

TEST(Aead, WrongKeyRejected) {
  auto sealed = Seal(KeyOf(1), AsBytes("secret"), AsBytes("aad"));
  ASSERT_OK(sealed);
  auto opened = Open(KeyOf(2), *sealed, AsBytes("aad"));
  ASSERT_THAT(opened, StatusIs(StatusCode::kCorruption));
  EXPECT_THAT(OpenSecret(KeyOf(2), *sealed, AsBytes("aad")), Not(IsOk()));
}

TEST(Aead, WrongAadRejected) {
  const SecretBytes key = KeyOf(1);
  auto sealed = Seal(key, AsBytes("secret"), AsBytes("tenant-a"));
  ASSERT_OK(sealed);
  auto opened = Open(key, *sealed, AsBytes("tenant-b"));
  ASSERT_THAT(opened, StatusIs(StatusCode::kCorruption));
}

TEST(Aead, TamperedByteRejected) {
  const SecretBytes key = KeyOf(1);
  auto sealed = Seal(key, AsBytes("secret value"), AsBytes("aad"));
  ASSERT_OK(sealed);
  for (size_t i = 0; i < sealed->size(); ++i) {  // nonce, ciphertext and tag alike
    Bytes tampered = *sealed;
    tampered[i] ^= 0x01;
    auto opened = Open(key, tampered, AsBytes("aad"));
    ASSERT_THAT(opened, StatusIs(StatusCode::kCorruption)) << "byte " << i;
  }
}

TEST(Aead, TruncatedRejected) {
  const SecretBytes key = KeyOf(1);
  auto sealed = Seal(key, AsBytes("secret value"), {});
  ASSERT_OK(sealed);
  for (size_t n = 0; n < sealed->size(); ++n) {
    auto opened = Open(key, ByteView(*sealed).first(n), {});
    ASSERT_THAT(opened, StatusIs(StatusCode::kCorruption)) << n;
  }
}

TEST(Aead, BadKeySizeIsInvalidArgument) {
  const SecretBytes short_key(Bytes(16, 1));
  auto sealed = Seal(short_key, AsBytes("x"), {});
  ASSERT_THAT(sealed, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(Open(short_key, Bytes(40, 0), {}), StatusIs(StatusCode::kInvalidArgument));
}

// RFC 5869, appendix A.1 (test case 1).
TEST(Hkdf, Rfc5869Case1) {
  const SecretBytes ikm(Bytes(22, 0x0b));
  const Bytes salt = HexDecode("000102030405060708090a0b0c").value();
  const Bytes info = HexDecode("f0f1f2f3f4f5f6f7f8f9").value();
  const SecretBytes okm = HkdfSha256(ikm, salt, info, 42);
  EXPECT_EQ(HexEncode(okm.Reveal()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

// The same case in its two steps; the RFC gives the intermediate key too.
TEST(Hkdf, Rfc5869Case1InTwoSteps) {
  const SecretBytes prk =
      HkdfSha256Extract(SecretBytes(Bytes(22, 0x0b)), HexDecode("000102030405060708090a0b0c").value());
  EXPECT_EQ(HexEncode(prk.Reveal()), "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
  const SecretBytes okm = HkdfSha256Expand(prk, HexDecode("f0f1f2f3f4f5f6f7f8f9").value(), 42);
  EXPECT_EQ(HexEncode(okm.Reveal()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
}

// RFC 5869, appendix A.2 (test case 2): long inputs, an output of three blocks.
TEST(Hkdf, Rfc5869Case2LongInputs) {
  Bytes ikm(80), salt(80), info(80);
  for (int i = 0; i < 80; ++i) {
    ikm[i] = static_cast<uint8_t>(i);
    salt[i] = static_cast<uint8_t>(0x60 + i);
    info[i] = static_cast<uint8_t>(0xb0 + i);
  }
  const SecretBytes okm = HkdfSha256(SecretBytes(ikm), salt, info, 82);
  EXPECT_EQ(HexEncode(okm.Reveal()),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
            "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
}

// Against OpenSSL's own HKDF, at each block boundary and at the longest output RFC 5869 allows.
TEST(Hkdf, AgreesWithOpenSslAtEveryLength) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  ASSERT_NE(kdf, nullptr);
  const SecretBytes ikm(Bytes(32, 0x42));
  const Bytes salt(16, 0x17);
  const Bytes info(11, 0x69);
  for (size_t length : {1, 31, 32, 33, 64, 65, 255 * 32}) {
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    ASSERT_NE(ctx, nullptr);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.Reveal().data()), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size()),
        OSSL_PARAM_construct_end(),
    };
    Bytes reference(length);
    ASSERT_EQ(EVP_KDF_derive(ctx, reference.data(), length, params), 1);
    EVP_KDF_CTX_free(ctx);
    EXPECT_EQ(HexEncode(HkdfSha256(ikm, salt, info, length).Reveal()), HexEncode(reference)) << length;
  }
  EVP_KDF_free(kdf);
}

// RFC 5869, appendix A.3 (test case 3): empty salt and info.
TEST(Hkdf, Rfc5869Case3EmptySaltAndInfo) {
  const SecretBytes ikm(Bytes(22, 0x0b));
  const SecretBytes okm = HkdfSha256(ikm, {}, {}, 42);
  EXPECT_EQ(HexEncode(okm.Reveal()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

// RFC 5869 allows an empty input key; the result must still be the real HKDF output.
TEST(Hkdf, EmptyIkm) {
  const SecretBytes okm = HkdfSha256(SecretBytes(), AsBytes("salt"), AsBytes("info"), 32);
  EXPECT_EQ(HexEncode(okm.Reveal()), "7aac7b8120501c2c8e1ee50e6cde135361e99ceb9d8d406ac528b9e9175614c0");
}

TEST(Hkdf, ZeroLengthIsEmpty) { EXPECT_TRUE(HkdfSha256(SecretBytes(Bytes(32, 1)), {}, {}, 0).empty()); }

}  // namespace
}  // namespace coffre::crypto
