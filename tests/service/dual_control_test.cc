// service::DualControl (dual_control.h): requests and grants are recorded in the audit log before
// they are stored (and not stored when they cannot be recorded), the policy decides whether an
// operation may run without an approval, and an Authorization gives its approval back when the
// operation fails.

#include "coffre/service/dual_control.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "support/fake_recorder.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::service {
namespace {

using test_support::StatusIs;

namespace fs = std::filesystem;
using audit::Operation;
using keystore::ApprovalState;
using keystore::GuardedOperation;
using test_support::FakeRecorder;

class DualControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto keys = keystore::Keystore::Open(dir_.str() + "/keystore.db", SecretBytes::Random(32), clock_);
    ASSERT_OK(keys);
    keys_ = std::move(keys).value();
    ASSERT_OK(keys_->CreateAdminCredential("alice", keystore::AdminRole::kAdmin));
    ASSERT_OK(keys_->CreateAdminCredential("bob", keystore::AdminRole::kAdmin));
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    policy_.required = true;
    policy_.approval_ttl_ms = 10 * 60 * 1000;
  }
  void TearDown() override { keys_.reset(); }

  DualControl Make() { return DualControl(*keys_, &recorder_, policy_, clock_); }
  UnixMillis Now() const { return ToUnixMillis(clock_.Now()); }

  audit::RequestInfo Request(const std::string& action) {
    audit::RequestInfo r;
    r.action = action;
    r.request_id = "REQ";
    return r;
  }

  FixedClock clock_{std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'000))};
  test_support::TempDir dir_{"dual-control"};
  std::unique_ptr<keystore::Keystore> keys_;
  FakeRecorder recorder_;
  DualControlPolicy policy_;
  std::string tenant_;
};

TEST_F(DualControlTest, RequestAndGrantAreRecordedWithBothPeople) {
  DualControl dual = Make();
  auto a = dual.Request(GuardedOperation::kShredTenant, tenant_, 0, "alice", Request("cli:approval request"));
  ASSERT_OK(a);
  EXPECT_EQ(a->expires - a->requested, policy_.approval_ttl_ms);
  auto g = dual.Grant(a->id, "bob", Request("cli:approval approve"));
  ASSERT_OK(g);

  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].operation, Operation::kApprovalRequest);
  EXPECT_EQ(events[0].tenant, tenant_);
  EXPECT_EQ(events[0].request.access_key_id, "alice");
  EXPECT_EQ(events[0].request.action, "cli:approval request " + a->id + " tenant.shred");
  EXPECT_EQ(events[1].operation, Operation::kApprovalGrant);
  EXPECT_EQ(events[1].request.access_key_id, "bob");
  EXPECT_EQ(events[1].request.action, "cli:approval approve " + a->id + " tenant.shred requested by alice");
  for (const auto& e : events) {
    EXPECT_EQ(e.outcome, audit::Outcome::kSuccess);
  }
}

TEST_F(DualControlTest, NothingIsStoredWhenTheLogCannotRecordIt) {
  DualControl dual = Make();
  recorder_.set_failing(true);
  auto refused = dual.Request(GuardedOperation::kRotateRootKey, "", 0, "alice", Request("x"));
  EXPECT_THAT(refused, StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(keys_->ListApprovals(10)->empty());

  recorder_.set_failing(false);
  auto a = dual.Request(GuardedOperation::kRotateRootKey, "", 0, "alice", Request("x"));
  ASSERT_OK(a);
  recorder_.set_failing(true);
  EXPECT_THAT(dual.Grant(a->id, "bob", Request("y")), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kPending);
}

TEST_F(DualControlTest, AGrantThatCannotSucceedLeavesNoGrantRecord) {
  DualControl dual = Make();
  auto a = dual.Request(GuardedOperation::kShredTenant, tenant_, 0, "alice", Request("x"));
  ASSERT_OK(a);
  recorder_.clear();
  EXPECT_THAT(dual.Grant(a->id, "alice", Request("y")), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(dual.Grant("apr-0000000000000000", "bob", Request("y")), StatusIs(StatusCode::kNotFound));
  clock_.Set(clock_.Now() + std::chrono::milliseconds(policy_.approval_ttl_ms));
  EXPECT_THAT(dual.Grant(a->id, "bob", Request("y")), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_TRUE(recorder_.events().empty());
}

TEST_F(DualControlTest, TheStoredCheckDecidesWhenTheRecordWasMadeButTheGrantFails) {
  DualControl dual = Make();
  auto a = dual.Request(GuardedOperation::kShredTenant, tenant_, 0, "alice", Request("x"));
  ASSERT_OK(a);
  ASSERT_OK(keys_->CreateAdminCredential("audrey", keystore::AdminRole::kAuditor));
  recorder_.clear();
  // An auditor passes the pre-checks (pending, not the requester) but not the keystore's.
  EXPECT_THAT(dual.Grant(a->id, "audrey", Request("y")), StatusIs(StatusCode::kPermissionDenied));
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].outcome, audit::Outcome::kSuccess);
  EXPECT_EQ(events[1].outcome, audit::Outcome::kFailure);
  EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kPending);
}

TEST_F(DualControlTest, ThePolicyDecidesWhetherAnApprovalIsNeeded) {
  auto none = Make().Authorize(GuardedOperation::kShredTenant, tenant_, 0, "");
  EXPECT_THAT(none, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_NE(none.status().message().find("coffre approval request"), std::string::npos);

  policy_.required = false;
  auto free = Make().Authorize(GuardedOperation::kShredTenant, tenant_, 0, "");
  ASSERT_OK(free);
  EXPECT_EQ(free->approval_id(), "");
  EXPECT_EQ(free->ActionSuffix(), "");
  // An approval that is given is checked and used even when the policy does not require one.
  EXPECT_THAT(Make().Authorize(GuardedOperation::kShredTenant, tenant_, 0, "apr-0000000000000000").status(),
              StatusIs(StatusCode::kNotFound));
}

TEST_F(DualControlTest, AFailedOperationGivesItsApprovalBack) {
  DualControl dual = Make();
  auto a = dual.Request(GuardedOperation::kShredTenant, tenant_, 0, "alice", Request("x"));
  ASSERT_OK(a);
  ASSERT_OK(dual.Grant(a->id, "bob", Request("y")));
  {
    auto authorization = dual.Authorize(GuardedOperation::kShredTenant, tenant_, 0, a->id);
    ASSERT_OK(authorization);
    EXPECT_EQ(authorization->ActionSuffix(), " with approval " + a->id);
    EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kUsed);
    // Goes out of scope without Done(): the operation failed.
  }
  EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kApproved);
  {
    auto authorization = dual.Authorize(GuardedOperation::kShredTenant, tenant_, 0, a->id);
    ASSERT_OK(authorization);
    authorization->Done();
  }
  EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kUsed);
  EXPECT_THAT(dual.Authorize(GuardedOperation::kShredTenant, tenant_, 0, a->id).status(),
              StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(DualControlTest, OneAdminCannotMakeASecondAdminAlone) {
  DualControl dual = Make();
  // alice and bob are the two bootstrap admins: a third needs an approval.
  auto refused =
      dual.CreateAdminCredential("mallory", keystore::AdminRole::kAdmin, "", Request("cli:admin-credential create"));
  EXPECT_THAT(refused, StatusIs(StatusCode::kPermissionDenied));
  EXPECT_NE(refused.status().message().find("dual control is on"), std::string::npos);
  EXPECT_TRUE(recorder_.events().empty()) << "a refused creation records nothing";
  // Disabling one does not bring back the bootstrap (disabled credentials count).
  ASSERT_OK(dual.DisableAdminCredential("bob", Request("cli:admin-credential disable")));
  EXPECT_THAT(dual.CreateAdminCredential("mallory", keystore::AdminRole::kAdmin, "", Request("x")).status(),
              StatusIs(StatusCode::kPermissionDenied));
  ASSERT_EQ(recorder_.events().size(), 1u);
  EXPECT_EQ(recorder_.events()[0].operation, Operation::kAdminCredentialDisable);
  EXPECT_EQ(recorder_.events()[0].request.access_key_id, "bob");
  EXPECT_EQ(recorder_.events()[0].request.action, "cli:admin-credential disable bob (admin)");
  EXPECT_TRUE(recorder_.events()[0].tenant.empty());
  // Auditors take no part: no approval needed, recorded all the same.
  ASSERT_OK(dual.CreateAdminCredential("audrey", keystore::AdminRole::kAuditor, "", Request("c")));
  EXPECT_EQ(recorder_.events().back().operation, Operation::kAdminCredentialCreate);
  EXPECT_EQ(recorder_.events().back().request.action, "c audrey (auditor)");
}

TEST_F(DualControlTest, AnApprovedCreationMakesThatCredentialOnly) {
  ASSERT_OK(keys_->CreateAdminCredential("carol", keystore::AdminRole::kAdmin));
  DualControl dual = Make();
  auto a = dual.Request(GuardedOperation::kCreateAdminCredential, "dave", 0, "alice", Request("r"));
  ASSERT_OK(a);
  EXPECT_TRUE(recorder_.events()[0].tenant.empty()) << "credential approvals are in the global chain";
  EXPECT_EQ(recorder_.events()[0].request.action, "r " + a->id + " admin_credential.create dave");
  ASSERT_OK(dual.Grant(a->id, "bob", Request("g")));
  EXPECT_THAT(dual.CreateAdminCredential("eve", keystore::AdminRole::kAdmin, a->id, Request("x")).status(),
              StatusIs(StatusCode::kInvalidArgument));
  auto made =
      dual.CreateAdminCredential("dave", keystore::AdminRole::kAdmin, a->id, Request("cli:admin-credential create"));
  ASSERT_OK(made);
  EXPECT_EQ(recorder_.events().back().operation, Operation::kAdminCredentialCreate);
  EXPECT_EQ(recorder_.events().back().request.action,
            "cli:admin-credential create dave (admin) with approval " + a->id);
  EXPECT_EQ(recorder_.events().back().request.action.find(made->token), std::string::npos);
  EXPECT_EQ(keys_->GetApproval(a->id)->StateAt(Now()), ApprovalState::kUsed);
}

TEST_F(DualControlTest, TheFirstTwoAdminsNeedNoApprovalAndCreationIsFailClosed) {
  keys_.reset();
  fs::remove_all(dir_.path());
  fs::create_directories(dir_.path());
  auto keys = keystore::Keystore::Open(dir_.str() + "/keystore.db", SecretBytes::Random(32), clock_);
  ASSERT_OK(keys);
  keys_ = std::move(keys).value();
  DualControl dual = Make();
  recorder_.set_failing(true);
  EXPECT_THAT(dual.CreateAdminCredential("alice", keystore::AdminRole::kAdmin, "", Request("x")).status(),
              StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(keys_->ListAdminCredentials()->empty());
  recorder_.set_failing(false);
  EXPECT_OK(dual.CreateAdminCredential("alice", keystore::AdminRole::kAdmin, "", Request("x")));
  EXPECT_OK(dual.CreateAdminCredential("bob", keystore::AdminRole::kAdmin, "", Request("x")));
  EXPECT_THAT(dual.CreateAdminCredential("carol", keystore::AdminRole::kAdmin, "", Request("x")).status(),
              StatusIs(StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace coffre::service
