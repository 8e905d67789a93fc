// ReadDestructions: the successful tenant.shred and tenant_key.destroy records a keystore restore
// re-applies, and nothing else.

#include "coffre/audit/destructions.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "coffre/audit/audit_log.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

class DestructionsTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.str() + "/audit.db"; }

  static Event Lifecycle(Operation op, const std::string& tenant, uint32_t version, Outcome outcome) {
    Event e;
    e.operation = op;
    e.outcome = outcome;
    e.tenant = tenant;
    e.key_id = tenant;
    e.key_version = version;
    e.request.action = "cli:test";
    return e;
  }

  test_support::TempDir dir_{"destructions"};
  std::string path_;
};

TEST_F(DestructionsTest, OnlySuccessfulDestructionsOfTheTenantsAsked) {
  const std::string a(32, 'a'), b(32, 'b'), c(32, 'c');
  {
    auto log = AuditLog::Open(path_, SecretBytes::Random(32));
    ASSERT_OK(log);
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kDataKeyUnwrap, a, 1, Outcome::kSuccess)));
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kTenantKeyDestroy, a, 1, Outcome::kSuccess)));
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kTenantKeyDestroy, a, 2, Outcome::kFailure)));
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kTenantKeyRotate, a, 3, Outcome::kSuccess)));
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kTenantShred, b, 4, Outcome::kSuccess)));
    ASSERT_OK((*log)->Record(Lifecycle(Operation::kTenantShred, c, 1, Outcome::kSuccess)));
  }
  auto found = ReadDestructions(path_, {a, b}, 0);
  ASSERT_OK(found);
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ(found->at(0).tenant, a);
  EXPECT_EQ(found->at(0).operation, Operation::kTenantKeyDestroy);
  EXPECT_EQ(found->at(0).key_version, 1u);
  EXPECT_EQ(found->at(1).tenant, b);
  EXPECT_EQ(found->at(1).operation, Operation::kTenantShred);
  EXPECT_GT(found->at(1).time_ms, 0);

  // Records older than `since` are left out.
  auto later = ReadDestructions(path_, {a, b}, found->at(1).time_ms + 60'000);
  ASSERT_OK(later);
  EXPECT_TRUE(later->empty());
}

TEST_F(DestructionsTest, MissingAndUnreadableLogs) {
  EXPECT_THAT(ReadDestructions(path_, {}, 0), StatusIs(StatusCode::kNotFound));
  std::ofstream(path_) << std::string(8192, 'x');
  auto bad = ReadDestructions(path_, {std::string(32, 'a')}, 0);
  ASSERT_THAT(bad, Not(IsOk()));
  EXPECT_NE(bad.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace coffre::audit
