#include "coffre/common/secret.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace coffre {
namespace {

// madvise(MADV_DONTDUMP) acts on whole pages: a larger secret must start a page of its own.
TEST(SecretBytesTest, LargerSecretsArePageAligned) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (size_t size : {65u, 100u, 4096u, 5000u}) {
    SecretBytes s(size);
    ASSERT_EQ(s.size(), size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.Reveal().data()) % page, 0u) << size;
    for (uint8_t b : s.Reveal()) {
      ASSERT_EQ(b, 0);
    }
    SecretBytes copy(s);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(copy.Reveal().data()) % page, 0u) << size;
  }
  const SecretBytes random = SecretBytes::Random(200);
  const SecretBytes same(random.Reveal());
  EXPECT_TRUE(std::equal(random.Reveal().begin(), random.Reveal().end(), same.Reveal().begin()));
}

TEST(SecretBytesTest, SmallSecretsStillWork) {
  SecretBytes s = SecretBytes::Random(32);
  SecretBytes moved(std::move(s));
  EXPECT_EQ(moved.size(), 32u);
  EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
}

TEST(WipeStringTest, ZeroesAndEmpties) {
  std::string secret(40, 'x');
  char* data = secret.data();
  WipeString(secret);
  EXPECT_TRUE(secret.empty());
  // The heap buffer is still owned by the string (capacity kept): its bytes are zero.
  for (size_t i = 0; i < 40; ++i) {
    EXPECT_EQ(data[i], '\0');
  }
}

}  // namespace
}  // namespace coffre
