#include "coffre/audit/bundle.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

using nlohmann::json;

constexpr UnixMillis kAllTime = INT64_MAX / 2;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    out.push_back(line);
  }
  return out;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += l + "\n";
  }
  return s;
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AuditLogOptions opts;
    opts.checkpoint_interval = std::chrono::hours(1);
    auto log = AuditLog::Open(dir_.str() + "/audit.db", SecretBytes::Random(32), opts);
    ASSERT_OK(log);
    log_ = std::move(log).value();
    // alice: 6 records with a checkpoint after the 3rd and the 6th; bob's records interleaved.
    for (int i = 1; i <= 6; ++i) {
      ASSERT_OK(log_->Record(Ev("alice", "a" + std::to_string(i))));
      ASSERT_OK(log_->Record(Ev("bob", "b" + std::to_string(i))));
      if (i == 3 || i == 6) {
        ASSERT_OK(log_->Checkpoint());
      }
    }
  }
  void TearDown() override { log_.reset(); }

  static Event Ev(const std::string& tenant, const std::string& request_id) {
    Event e;
    e.operation = Operation::kDataKeyWrap;
    e.tenant = tenant;
    e.key_id = tenant;
    e.key_version = 1;
    e.bucket = "dossiers";
    e.object_key = "2026/" + request_id + ".pdf";
    e.object_id = "oid-" + request_id;
    e.request.request_id = request_id;
    e.request.access_key_id = "AK";
    e.request.client_address = "127.0.0.1:1";
    e.request.action = "PutObject";
    return e;
  }

  std::string Export(const std::string& tenant, BundleFormat format = BundleFormat::kJsonl) {
    auto data = log_->ExportTenant(tenant, 0, kAllTime);
    EXPECT_OK(data);
    BundleInfo info;
    info.tenant = tenant;
    info.tenant_name = tenant;
    info.to_ms = kAllTime;
    return EncodeBundle(*data, info, format);
  }

  VerifyReport Verify(const std::string& text) {
    auto parsed = ParseBundle(text);
    EXPECT_OK(parsed);
    if (!parsed.ok()) {
      return VerifyReport{Breakage::kAltered};
    }
    auto rep = VerifyBundle(*parsed, log_->public_key());
    EXPECT_OK(rep);
    return rep.ok() ? *rep : VerifyReport{Breakage::kAltered};
  }

  // Index (in Lines()) of the JSONL line of alice's record `seq`.
  static size_t LineOfSeq(const std::vector<std::string>& lines, uint64_t seq) {
    for (size_t i = 0; i < lines.size(); ++i) {
      json j = json::parse(lines[i]);
      if (j["type"] == "record" && j["seq"] == seq) {
        return i;
      }
    }
    ADD_FAILURE() << "no record " << seq;
    return 0;
  }

  test_support::TempDir dir_{"bundle"};
  std::unique_ptr<AuditLog> log_;
};

TEST_F(BundleTest, IntactJsonlBundleVerifies) {
  const std::string text = Export("alice");
  VerifyReport rep = Verify(text);
  EXPECT_OK(rep);
  EXPECT_EQ(rep.records, 6u);
  EXPECT_GT(rep.first_ms, 0);
  EXPECT_GE(rep.last_ms, rep.first_ms);
}

TEST_F(BundleTest, IntactCsvBundleVerifies) {
  const std::string text = Export("alice", BundleFormat::kCsv);
  EXPECT_EQ(text.rfind("type,seq,time,", 0), 0u);
  VerifyReport rep = Verify(text);
  EXPECT_OK(rep);
  EXPECT_EQ(rep.records, 6u);
}

TEST_F(BundleTest, ExportHoldsNoOtherTenantsData) {
  const std::string text = Export("alice");
  EXPECT_EQ(text.find("bob"), std::string::npos);
  for (int i = 1; i <= 6; ++i) {
    EXPECT_EQ(text.find("\"b" + std::to_string(i) + "\""), std::string::npos);
  }
}

TEST_F(BundleTest, AlteredFieldIsDetectedAndNamed) {
  auto lines = Lines(Export("alice"));
  const size_t i = LineOfSeq(lines, 2);
  json j = json::parse(lines[i]);
  j["object_key"] = "2026/other.pdf";
  lines[i] = j.dump();
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kAltered) << rep.message;
  EXPECT_EQ(rep.failed_seq, 2u);
  EXPECT_EQ(rep.failed_line, i + 1);
}

TEST_F(BundleTest, AlteredLastRecordIsCaughtByTheCheckpoint) {
  auto lines = Lines(Export("alice"));
  const size_t i = LineOfSeq(lines, 6);
  json j = json::parse(lines[i]);
  j["outcome"] = "failure";
  lines[i] = j.dump();
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kAltered) << rep.message;
  EXPECT_EQ(rep.failed_seq, 6u);
}

TEST_F(BundleTest, DeletedRecordIsDetectedAsMissing) {
  auto lines = Lines(Export("alice"));
  lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(LineOfSeq(lines, 4)));
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kMissing) << rep.message;
  EXPECT_EQ(rep.failed_seq, 5u);
  EXPECT_NE(rep.message.find("4"), std::string::npos);
}

TEST_F(BundleTest, SwappedRecordsAreDetectedAsReordered) {
  auto lines = Lines(Export("alice"));
  const size_t second = LineOfSeq(lines, 2);
  std::swap(lines[second], lines[LineOfSeq(lines, 4)]);
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kReordered) << rep.message;
  EXPECT_EQ(rep.failed_seq, 4u);  // found where seq 2 belongs
  EXPECT_EQ(rep.failed_line, second + 1);
}

TEST_F(BundleTest, SwappedRecordsWithRenumberedSeqAreDetectedAsAltered) {
  auto lines = Lines(Export("alice"));
  const size_t a = LineOfSeq(lines, 4);
  const size_t b = LineOfSeq(lines, 5);
  json ja = json::parse(lines[a]);
  json jb = json::parse(lines[b]);
  std::swap(ja["seq"], jb["seq"]);
  lines[a] = jb.dump();
  lines[b] = ja.dump();
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kAltered) << rep.message;
}

TEST_F(BundleTest, TruncatedEndIsDetectedAsMissing) {
  // Cutting the last two records but keeping the checkpoint that signs seq 6.
  auto lines = Lines(Export("alice"));
  lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(LineOfSeq(lines, 6)));
  lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(LineOfSeq(lines, 5)));
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kMissing) << rep.message;
  EXPECT_EQ(rep.failed_seq, 5u);
}

TEST_F(BundleTest, TruncatedTailWithItsCheckpointIsAnUnsignedTail) {
  // Dropping the final checkpoint: records 4..6 are no longer covered by any signature.
  auto lines = Lines(Export("alice"));
  ASSERT_EQ(json::parse(lines.back())["type"], "checkpoint");
  lines.pop_back();
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kUnsignedTail) << rep.message;
  EXPECT_EQ(rep.failed_seq, 4u);
  EXPECT_EQ(rep.records, 3u);
}

TEST_F(BundleTest, ForgedCheckpointIsDetected) {
  auto lines = Lines(Export("alice"));
  json j = json::parse(lines.back());
  ASSERT_EQ(j["type"], "checkpoint");
  j["seq"] = 7;
  lines.back() = j.dump();
  VerifyReport rep = Verify(Join(lines));
  EXPECT_EQ(rep.breakage, Breakage::kBadSignature) << rep.message;
}

TEST_F(BundleTest, RecordOfAnotherTenantIsForeign) {
  auto alice = Lines(Export("alice"));
  auto bob = Lines(Export("bob"));
  alice[LineOfSeq(alice, 3)] = bob[LineOfSeq(bob, 3)];
  VerifyReport rep = Verify(Join(alice));
  EXPECT_EQ(rep.breakage, Breakage::kForeign) << rep.message;
  EXPECT_EQ(rep.failed_seq, 3u);
}

TEST_F(BundleTest, RelabelledTenantIsDetected) {
  // An insider relabels bob's whole export as alice's: the checkpoints name bob's chain.
  auto bob = Lines(Export("bob"));
  json h = json::parse(bob[0]);
  h["tenant"] = "alice";
  bob[0] = h.dump();
  for (size_t i = 1; i < bob.size(); ++i) {
    json j = json::parse(bob[i]);
    j["tenant"] = "alice";
    bob[i] = j.dump();
  }
  VerifyReport rep = Verify(Join(bob));
  EXPECT_THAT(rep, Not(IsOk()));
}

TEST_F(BundleTest, AlteredCsvFieldIsDetected) {
  std::string text = Export("alice", BundleFormat::kCsv);
  const size_t pos = text.find("2026/a3.pdf");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 11, "2026/a9.pdf");
  VerifyReport rep = Verify(text);
  EXPECT_EQ(rep.breakage, Breakage::kAltered) << rep.message;
  EXPECT_EQ(rep.failed_seq, 3u);
}

TEST_F(BundleTest, WrongPublicKeyIsRefused) {
  auto parsed = ParseBundle(Export("alice"));
  ASSERT_OK(parsed);
  SigningKey other = GenerateSigningKey();
  auto rep = VerifyBundle(*parsed, other.public_key);
  ASSERT_THAT(rep, StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(BundleTest, ForeignOrMalformedFilesAreRefused) {
  EXPECT_THAT(ParseBundle(""), Not(IsOk()));
  EXPECT_THAT(ParseBundle("hello\n"), Not(IsOk()));
  EXPECT_THAT(ParseBundle("{\"type\":\"record\"}\n"), Not(IsOk()));
  const std::string text = Export("alice");
  EXPECT_THAT(ParseBundle(text.substr(0, text.size() - 5)), Not(IsOk()));  // cut mid-line
  auto lines = Lines(text);
  lines[2] = "{not json";
  EXPECT_THAT(ParseBundle(Join(lines)), Not(IsOk()));
}

TEST_F(BundleTest, NonUtf8ObjectKeysRoundTrip) {
  Event e = Ev("carol", "c1");
  e.object_key = std::string("bad\xff\xfekey,\"q\"\n", 13);
  ASSERT_OK(log_->Record(e));
  ASSERT_OK(log_->Checkpoint());
  for (auto format : {BundleFormat::kJsonl, BundleFormat::kCsv}) {
    const std::string text = Export("carol", format);
    auto parsed = ParseBundle(text);
    ASSERT_OK(parsed);
    ASSERT_EQ(parsed->data.records.size(), 1u);
    EXPECT_EQ(parsed->data.records[0].object_key, e.object_key);
    VerifyReport rep = Verify(text);
    EXPECT_OK(rep);
  }
}

// A bundle without records proves nothing and looks like one whose records were all removed.
TEST_F(BundleTest, BundleWithoutRecordsDoesNotVerify) {
  auto data = log_->ExportTenant("nobody", 0, kAllTime);
  ASSERT_OK(data);
  EXPECT_TRUE(data->records.empty());
  BundleInfo info;
  info.tenant = "nobody";
  VerifyReport rep = Verify(EncodeBundle(*data, info, BundleFormat::kJsonl));
  EXPECT_THAT(rep, Not(IsOk()));
  EXPECT_EQ(rep.breakage, Breakage::kMissing);
}

// A range that starts after the chain's start is extended back to a checkpoint, which anchors it.
TEST_F(BundleTest, RangedExportStartsAtASignedAnchorAndVerifies) {
  auto all = log_->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(all);
  ASSERT_EQ(all->records.size(), 6u);
  const UnixMillis t5 = all->records[4].time_ms;
  auto data = log_->ExportTenant("alice", t5, kAllTime);
  ASSERT_OK(data);
  ASSERT_FALSE(data->records.empty());
  EXPECT_EQ(data->records.front().seq, 4u);  // just after the checkpoint at seq 3
  ASSERT_FALSE(data->checkpoints.empty());
  EXPECT_EQ(data->checkpoints.front().seq, 3u);
  BundleInfo info;
  info.tenant = "alice";
  info.from_ms = t5;
  info.to_ms = kAllTime;
  const std::string text = EncodeBundle(*data, info, BundleFormat::kJsonl);
  VerifyReport rep = Verify(text);
  EXPECT_OK(rep);
  EXPECT_EQ(rep.records, 3u);
  // Without its anchor, the same bundle does not verify.
  std::vector<std::string> lines = Lines(text);
  std::vector<std::string> cut;
  for (const auto& l : lines) {
    json j = json::parse(l);
    if (!(j["type"] == "checkpoint" && j["seq"] == 3)) {
      cut.push_back(l);
    }
  }
  rep = Verify(Join(cut));
  EXPECT_EQ(rep.breakage, Breakage::kMissing) << rep.message;
  EXPECT_EQ(rep.failed_seq, 4u);
}

// A range with no record of the tenant still yields a bundle that verifies: the record before it.
TEST_F(BundleTest, EmptyRangeCarriesTheRecordBeforeIt) {
  auto data = log_->ExportTenant("alice", kAllTime - 10, kAllTime);
  ASSERT_OK(data);
  ASSERT_FALSE(data->records.empty());
  EXPECT_EQ(data->records.back().seq, 6u);
  BundleInfo info;
  info.tenant = "alice";
  VerifyReport rep = Verify(EncodeBundle(*data, info, BundleFormat::kCsv));
  EXPECT_OK(rep);
}

}  // namespace
}  // namespace coffre::audit
