#include "coffre/audit/archive.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "coffre/audit/audit_log.h"
#include "coffre/audit/bundle.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::StatusIs;

using nlohmann::json;

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuditLogOptions opts;
    opts.checkpoint_interval = std::chrono::hours(1);
    auto log = AuditLog::Open(dir_.str() + "/audit.db", SecretBytes::Random(32), opts);
    ASSERT_OK(log);
    log_ = std::move(log).value();
  }
  void TearDown() override { log_.reset(); }

  void Add(const std::string& tenant, int n) {
    for (int i = 0; i < n; ++i) {
      Event e;
      e.tenant = tenant;
      e.key_id = tenant;
      e.object_key = tenant + std::to_string(i);
      ASSERT_OK(log_->Record(e));
    }
  }

  static UnixMillis Now() { return ToUnixMillis(Clock::System().Now()); }

  VerifyReport Verify(const std::string& text) {
    auto parsed = ParseArchive(text);
    EXPECT_OK(parsed);
    if (!parsed.ok()) {
      return VerifyReport{Breakage::kAltered};
    }
    auto rep = VerifyArchive(*parsed, log_->public_key());
    EXPECT_OK(rep);
    return rep.ok() ? *rep : VerifyReport{Breakage::kAltered};
  }

  test_support::TempDir dir_{"archive"};
  std::unique_ptr<AuditLog> log_;
};

TEST_F(ArchiveTest, ArchiveVerifiesPruneKeepsTheLogVerifiable) {
  Add("alice", 3);
  Add("bob", 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const UnixMillis cut = Now();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto first = log_->PrepareArchive(cut);
  ASSERT_OK(first);
  ASSERT_EQ(first->records.size(), 5u);
  EXPECT_EQ(first->end_gseq, 5u);
  const std::string text = EncodeArchive(*first);
  EXPECT_TRUE(LooksLikeArchive(text));
  VerifyReport rep = Verify(text);
  EXPECT_OK(rep);
  EXPECT_EQ(rep.records, 5u);
  ASSERT_OK(log_->Prune(*first));
  // The live log still verifies, from the boundary on, and its chains continue.
  Add("alice", 2);
  auto n = log_->VerifyStored();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);
  auto exp = log_->ExportTenant("alice", 0, INT64_MAX / 2);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 2u);
  EXPECT_EQ(exp->records[0].seq, 4u);
  {
    // The checkpoint of alice's archived head stays in the live log: it anchors her export.
    ASSERT_OK(log_->Checkpoint());
    auto signed_exp = log_->ExportTenant("alice", 0, INT64_MAX / 2);
    ASSERT_OK(signed_exp);
    ASSERT_FALSE(signed_exp->checkpoints.empty());
    EXPECT_EQ(signed_exp->checkpoints.front().seq, 3u);
    BundleInfo info;
    info.tenant = "alice";
    auto parsed = ParseBundle(EncodeBundle(*signed_exp, info, BundleFormat::kJsonl));
    ASSERT_OK(parsed);
    auto bundle_rep = VerifyBundle(*parsed, log_->public_key());
    ASSERT_OK(bundle_rep);
    EXPECT_TRUE(bundle_rep->ok()) << bundle_rep->message;
  }
  // A second archive continues from the first one's end.
  auto second = log_->PrepareArchive(Now() + 1000);
  ASSERT_OK(second);
  EXPECT_EQ(second->start_global.seq, 5u);
  EXPECT_EQ(second->start_global.hash, first->records.back().global_hash);
  EXPECT_EQ(second->start_tenants.at("alice").seq, 3u);
  EXPECT_OK(Verify(EncodeArchive(*second)));
  ASSERT_OK(log_->Prune(*second));
  EXPECT_OK(log_->VerifyStored());
  // Pruning the same archive twice is refused: the boundary moved.
  EXPECT_THAT(log_->Prune(*first), StatusIs(StatusCode::kAborted));
}

TEST_F(ArchiveTest, NothingOlderThanTheCutMeansAnEmptyArchive) {
  const UnixMillis cut = Now() - 60000;
  Add("alice", 2);
  auto a = log_->PrepareArchive(cut);
  ASSERT_OK(a);
  EXPECT_TRUE(a->records.empty());
  EXPECT_OK(log_->Prune(*a));
  auto n = log_->VerifyStored();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2u);
}

TEST_F(ArchiveTest, TamperedArchiveIsDetected) {
  Add("alice", 3);
  Add("bob", 3);
  auto a = log_->PrepareArchive(Now() + 1000);
  ASSERT_OK(a);
  std::vector<std::string> lines;
  {
    std::istringstream in(EncodeArchive(*a));
    std::string line;
    while (std::getline(in, line)) {
      lines.push_back(line);
    }
  }
  auto join = [](const std::vector<std::string>& ls) {
    std::string s;
    for (const auto& l : ls) {
      s += l + "\n";
    }
    return s;
  };
  {
    auto t = lines;
    json j = json::parse(t[2]);
    j["bucket"] = "x";
    t[2] = j.dump();
    VerifyReport rep = Verify(join(t));
    EXPECT_EQ(rep.breakage, Breakage::kAltered) << rep.message;
    EXPECT_EQ(rep.failed_line, 3u);
  }
  {
    auto t = lines;
    t.erase(t.begin() + 3);
    EXPECT_EQ(Verify(join(t)).breakage, Breakage::kMissing);
  }
  {
    auto t = lines;
    std::swap(t[1], t[2]);
    EXPECT_EQ(Verify(join(t)).breakage, Breakage::kReordered);
  }
  {
    auto t = lines;
    t.erase(t.begin() + 6);  // the last record: the signed end is gone
    EXPECT_EQ(Verify(join(t)).breakage, Breakage::kMissing);
  }
  {
    auto t = lines;
    json h = json::parse(t[0]);
    h["end_gseq"] = 5;
    t[0] = h.dump();
    t.erase(t.begin() + 6);
    // Claiming an earlier end leaves the last record unsigned by a global checkpoint.
    EXPECT_EQ(Verify(join(t)).breakage, Breakage::kUnsignedTail);
  }
}

}  // namespace
}  // namespace coffre::audit
