// Dual-control approvals in the keystore (keystore.h, "dual control approvals"): who may request
// and grant, the states an approval goes through, that it approves one operation on one target
// once, expiry, and that the checks hold across two connections (the daemon and the CLI).

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "coffre/keystore/keystore.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::keystore {
namespace {

using test_support::StatusIs;

using std::chrono::milliseconds;
using std::chrono::minutes;

constexpr int64_t kHourMs = 60 * 60 * 1000;

class ApprovalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = SecretBytes::Random(32);
    auto ks = Keystore::Open(dir_.str() + "/keystore.db", root_, clock_);
    ASSERT_OK(ks);
    ks_ = std::move(ks).value();
    auto other = Keystore::Open(dir_.str() + "/keystore.db", root_, clock_);
    ASSERT_OK(other);
    other_ = std::move(other).value();
    for (const char* name : {"alice", "bob", "carol"}) {
      ASSERT_OK(ks_->CreateAdminCredential(name, AdminRole::kAdmin));
    }
    ASSERT_OK(ks_->CreateAdminCredential("audrey", AdminRole::kAuditor));
    auto t = ks_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    ASSERT_OK(ks_->RotateTenantKey(tenant_));  // version 1 retired, 2 active
  }
  void TearDown() override {
    ks_.reset();
    other_.reset();
  }

  Approval RequestDestroy(const std::string& by = "alice") {
    auto a = ks_->RequestApproval(NewApprovalId(), GuardedOperation::kDestroyKeyVersion, tenant_, 1, by, kHourMs);
    EXPECT_OK(a);
    return a.ok() ? *a : Approval{};
  }

  void Advance(milliseconds d) { clock_.Set(clock_.Now() + d); }
  UnixMillis Now() const { return ToUnixMillis(clock_.Now()); }

  std::vector<std::string> Events() {
    std::vector<std::string> out;
    auto events = ks_->ListKeyEvents(tenant_);
    EXPECT_OK(events);
    for (const auto& e : *events) {
      if (e.event.rfind("approval-", 0) == 0) {
        out.push_back(e.event);
      }
    }
    return out;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"approvals"};
  SecretBytes root_;
  std::string tenant_;
  std::unique_ptr<Keystore> ks_;
  std::unique_ptr<Keystore> other_;  // a second process: the CLI beside the daemon
};

TEST_F(ApprovalsTest, RequestGrantUseOnce) {
  const Approval a = RequestDestroy();
  EXPECT_EQ(a.id.rfind("apr-", 0), 0u);
  EXPECT_EQ(a.id.size(), 4u + 16u);
  EXPECT_EQ(a.StateAt(Now()), ApprovalState::kPending);
  EXPECT_EQ(a.expires, a.requested + kHourMs);

  auto granted = other_->GrantApproval(a.id, "bob");
  ASSERT_OK(granted);
  EXPECT_EQ(granted->StateAt(Now()), ApprovalState::kApproved);
  EXPECT_EQ(granted->approved_by, "bob");

  auto used = ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1);
  ASSERT_OK(used);
  EXPECT_EQ(used->StateAt(Now()), ApprovalState::kUsed);
  // Used up: neither connection can use it again.
  EXPECT_THAT(other_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1).status(),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(ks_->GrantApproval(a.id, "carol"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(Events(), (std::vector<std::string>{"approval-requested", "approval-granted", "approval-used"}));

  auto listed = other_->ListApprovals(10);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, a.id);
  EXPECT_EQ((*listed)[0].used, used->used);
}

TEST_F(ApprovalsTest, TheRequesterCannotGrantTheirOwnRequest) {
  const Approval a = RequestDestroy("alice");
  auto self = ks_->GrantApproval(a.id, "alice");
  EXPECT_THAT(self, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_NE(self.status().message().find("different admin"), std::string::npos);
  EXPECT_THAT(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1).status(),
              StatusIs(StatusCode::kFailedPrecondition))
      << "a pending approval must not be usable";
}

TEST_F(ApprovalsTest, OnlyEnabledAdminCredentialsTakePart) {
  for (const char* who : {"audrey", "nobody"}) {
    EXPECT_THAT(
        ks_->RequestApproval(NewApprovalId(), GuardedOperation::kShredTenant, tenant_, 0, who, kHourMs).status(),
        StatusIs(StatusCode::kPermissionDenied))
        << who;
  }
  const Approval a = RequestDestroy();
  EXPECT_THAT(ks_->GrantApproval(a.id, "audrey"), StatusIs(StatusCode::kPermissionDenied));
  ASSERT_OK(ks_->DisableAdminCredential("carol"));
  EXPECT_THAT(ks_->GrantApproval(a.id, "carol"), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_EQ(ks_->GetApproval(a.id)->StateAt(Now()), ApprovalState::kPending);
}

TEST_F(ApprovalsTest, AGrantNoLongerCountsOnceEitherPersonIsDisabled) {
  const Approval a = RequestDestroy("alice");
  ASSERT_OK(ks_->GrantApproval(a.id, "bob"));
  ASSERT_OK(ks_->DisableAdminCredential("bob"));
  auto used = ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1);
  EXPECT_THAT(used, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_NE(used.status().message().find("bob"), std::string::npos) << used.status().message();
}

// One person holding one admin credential must not be able to make a second one and grant their
// own request with it: a credential created after the request cannot grant it.
TEST_F(ApprovalsTest, ACredentialCreatedAfterTheRequestCannotGrantIt) {
  const Approval a = RequestDestroy("alice");
  Advance(milliseconds(5));
  ASSERT_OK(ks_->CreateAdminCredential("dave", AdminRole::kAdmin));
  auto granted = other_->GrantApproval(a.id, "dave");
  EXPECT_THAT(granted, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_NE(granted.status().message().find("created after"), std::string::npos) << granted.status().message();
  EXPECT_EQ(ks_->GetApproval(a.id)->StateAt(Now()), ApprovalState::kPending);
  // A credential that existed when it was requested still can.
  EXPECT_OK(ks_->GrantApproval(a.id, "bob"));
}

TEST_F(ApprovalsTest, AnApprovalApprovesOneOperationOnOneTarget) {
  const Approval a = RequestDestroy();
  ASSERT_OK(ks_->GrantApproval(a.id, "bob"));
  auto other_tenant = ks_->CreateTenant("globex");
  ASSERT_OK(other_tenant);
  EXPECT_THAT(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 2).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, other_tenant->id, 1).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ks_->UseApproval(a.id, GuardedOperation::kShredTenant, tenant_, 0).status(),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ks_->UseApproval(a.id, GuardedOperation::kRotateRootKey, "", 0).status(),
              StatusIs(StatusCode::kInvalidArgument));
  // None of those used it up.
  EXPECT_OK(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1));
}

TEST_F(ApprovalsTest, ExpiresUngrantedOrUnused) {
  const Approval pending = RequestDestroy();
  const Approval granted = RequestDestroy();
  ASSERT_OK(ks_->GrantApproval(granted.id, "bob"));
  Advance(milliseconds(kHourMs));
  EXPECT_THAT(ks_->GrantApproval(pending.id, "bob"), StatusIs(StatusCode::kFailedPrecondition));
  auto used = ks_->UseApproval(granted.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1);
  EXPECT_THAT(used, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_NE(used.status().message().find("expired"), std::string::npos) << used.status().message();
}

TEST_F(ApprovalsTest, ReleaseMakesAFailedOperationsApprovalUsableAgain) {
  const Approval a = RequestDestroy();
  ASSERT_OK(ks_->GrantApproval(a.id, "bob"));
  ASSERT_OK(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1));
  ASSERT_OK(ks_->ReleaseApproval(a.id));
  EXPECT_EQ(ks_->GetApproval(a.id)->StateAt(Now()), ApprovalState::kApproved);
  EXPECT_THAT(ks_->ReleaseApproval(a.id), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_OK(ks_->UseApproval(a.id, GuardedOperation::kDestroyKeyVersion, tenant_, 1));
}

TEST_F(ApprovalsTest, RequestsAreValidated) {
  auto request = [&](GuardedOperation op, const std::string& tenant, uint32_t version, int64_t ttl = kHourMs) {
    auto r = ks_->RequestApproval(NewApprovalId(), op, tenant, version, "alice", ttl);
    return r.ok() ? StatusCode::kOk : r.status().code();
  };
  EXPECT_EQ(request(GuardedOperation::kDestroyKeyVersion, tenant_, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(request(GuardedOperation::kDestroyKeyVersion, "", 1), StatusCode::kInvalidArgument);
  EXPECT_EQ(request(GuardedOperation::kShredTenant, tenant_, 3), StatusCode::kInvalidArgument);
  EXPECT_EQ(request(GuardedOperation::kRotateRootKey, tenant_, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(request(GuardedOperation::kShredTenant, "00000000000000000000000000000000", 0), StatusCode::kNotFound);
  EXPECT_EQ(request(GuardedOperation::kRotateRootKey, "", 0, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(request(GuardedOperation::kRotateRootKey, "", 0), StatusCode::kOk);
  ASSERT_OK(ks_->ShredTenant(tenant_));
  EXPECT_EQ(request(GuardedOperation::kShredTenant, tenant_, 0), StatusCode::kFailedPrecondition);
  const std::string id = NewApprovalId();
  ASSERT_OK(ks_->RequestApproval(id, GuardedOperation::kRotateRootKey, "", 0, "alice", kHourMs));
  EXPECT_THAT(ks_->RequestApproval(id, GuardedOperation::kRotateRootKey, "", 0, "bob", kHourMs).status(),
              StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(ks_->GetApproval("apr-0000000000000000"), StatusIs(StatusCode::kNotFound));
}

TEST(GuardedOperationNamesTest, RoundTripAndMatchTheAuditNames) {
  EXPECT_EQ(GuardedOperationName(GuardedOperation::kDestroyKeyVersion), "tenant_key.destroy");
  EXPECT_EQ(GuardedOperationName(GuardedOperation::kShredTenant), "tenant.shred");
  EXPECT_EQ(GuardedOperationName(GuardedOperation::kRotateRootKey), "root_key.rotate");
  for (GuardedOperation op :
       {GuardedOperation::kDestroyKeyVersion, GuardedOperation::kShredTenant, GuardedOperation::kRotateRootKey}) {
    EXPECT_EQ(ParseGuardedOperation(GuardedOperationName(op)), op);
  }
  EXPECT_FALSE(ParseGuardedOperation("tenant_key.rotate"));
  EXPECT_NE(NewApprovalId(), NewApprovalId());
}

}  // namespace
}  // namespace coffre::keystore
