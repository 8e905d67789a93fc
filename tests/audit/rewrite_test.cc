// Replays of history rewrites by someone who can write audit.db but cannot sign: delete a signed
// record, renumber and relink the later ones (SHA-256 is unkeyed), drop the checkpoints that no
// longer match, reset the heads. The log must refuse to extend or sign such a history, and
// `VerifyStored` (coffre audit check) must report it.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "coffre/audit/archive.h"
#include "coffre/audit/audit_log.h"
#include "coffre/audit/bundle.h"
#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

constexpr UnixMillis kAllTime = INT64_MAX / 2;

struct Row {
  uint64_t gseq = 0;
  Record record;
};

Hash BlobHash(ByteView b) {
  Hash h{};
  if (b.size() == h.size()) std::copy(b.begin(), b.end(), h.begin());
  return h;
}

// What the attacker does, with nothing but write access to the database file.
class Attacker {
 public:
  explicit Attacker(const std::string& path) {
    auto conn = db::Connection::Open(path, db::OpenMode::kReadWrite);
    EXPECT_OK(conn);
    conn_ = std::move(conn).value();
  }

  std::vector<Row> Rows() {
    std::vector<Row> rows;
    auto st = conn_->Prepare(
        "SELECT gseq, seq, time_ms, tenant, key_id, key_version, operation, action, bucket, object_key, object_id, "
        "request_id, access_key_id, client_address, outcome, prev FROM records ORDER BY gseq");
    EXPECT_OK(st);
    while (*st->Step()) {
      Row r;
      r.gseq = static_cast<uint64_t>(st->ColumnInt64(0));
      r.record.seq = static_cast<uint64_t>(st->ColumnInt64(1));
      r.record.time_ms = st->ColumnInt64(2);
      r.record.tenant = st->ColumnText(3);
      r.record.key_id = st->ColumnText(4);
      r.record.key_version = static_cast<uint32_t>(st->ColumnInt64(5));
      r.record.operation = st->ColumnText(6);
      r.record.action = st->ColumnText(7);
      r.record.bucket = st->ColumnText(8);
      r.record.object_key = st->ColumnText(9);
      r.record.object_id = st->ColumnText(10);
      r.record.request_id = st->ColumnText(11);
      r.record.access_key_id = st->ColumnText(12);
      r.record.client_address = st->ColumnText(13);
      r.record.outcome = st->ColumnText(14);
      r.record.prev = BlobHash(st->ColumnBlobView(15));
      rows.push_back(std::move(r));
    }
    return rows;
  }

  // Rewrites the live records as `rows` (renumbered from the archive boundary, relinked, hashes
  // recomputed), drops every checkpoint that no longer matches, and resets the heads.
  void Rewrite(std::vector<Row> rows) {
    uint64_t gseq = 0;
    Hash ghash{};
    std::map<std::string, std::pair<uint64_t, Hash>> tenants;
    {
      auto st = conn_->Prepare("SELECT gseq, hash FROM archive_boundary");
      if (st.ok() && *st->Step()) {
        gseq = static_cast<uint64_t>(st->ColumnInt64(0));
        ghash = BlobHash(st->ColumnBlobView(1));
      }
      auto heads = conn_->Prepare("SELECT tenant, seq, hash FROM archive_heads");
      while (heads.ok() && *heads->Step()) {
        tenants[heads->ColumnText(0)] = {static_cast<uint64_t>(heads->ColumnInt64(1)),
                                         BlobHash(heads->ColumnBlobView(2))};
      }
    }
    ASSERT_OK(conn_->Exec("BEGIN IMMEDIATE"));
    ASSERT_OK(conn_->Exec("DELETE FROM records"));
    std::map<std::pair<std::string, uint64_t>, Hash> tenant_at;
    std::map<uint64_t, Hash> global_at;
    for (Row& r : rows) {
      auto& t = tenants[r.record.tenant];
      r.record.seq = t.first + 1;
      r.record.prev = t.second;
      const Hash h = RecordHash(r.record);
      r.gseq = ++gseq;
      ghash = GlobalLink(ghash, r.gseq, h);
      t = {r.record.seq, h};
      tenant_at[{r.record.tenant, r.record.seq}] = h;
      global_at[r.gseq] = ghash;
      auto ins = conn_->Prepare(
          "INSERT INTO records (gseq, seq, time_ms, tenant, key_id, key_version, operation, action, bucket, "
          "object_key, object_id, request_id, access_key_id, client_address, outcome, prev, hash, global_hash) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      ASSERT_OK(ins);
      const Record& x = r.record;
      ASSERT_OK(ins->BindAll(r.gseq, x.seq, x.time_ms, x.tenant, x.key_id, x.key_version, x.operation, x.action,
                             x.bucket, x.object_key, x.object_id, x.request_id, x.access_key_id, x.client_address,
                             x.outcome, ByteView(x.prev), ByteView(h), ByteView(ghash)));
      ASSERT_OK(ins->Run());
    }
    // Drop the checkpoints the rewritten chain no longer matches (the later ones).
    std::vector<int64_t> drop;
    {
      auto st = conn_->Prepare("SELECT id, scope, tenant, seq, head FROM checkpoints");
      ASSERT_OK(st);
      while (*st->Step()) {
        const std::string scope = st->ColumnText(1);
        const uint64_t seq = static_cast<uint64_t>(st->ColumnInt64(3));
        const Hash head = BlobHash(st->ColumnBlobView(4));
        bool ok = false;
        if (scope == "global") {
          auto it = global_at.find(seq);
          ok = it != global_at.end() && it->second == head;
        } else {
          auto it = tenant_at.find({st->ColumnText(2), seq});
          ok = it != tenant_at.end() && it->second == head;
        }
        if (!ok) drop.push_back(st->ColumnInt64(0));
      }
    }
    for (int64_t id : drop) {
      ASSERT_OK(conn_->Exec("DELETE FROM checkpoints WHERE id = " + std::to_string(id)));
    }
    // Reset the heads to the rewritten chain, none of them signed, so that the log signs them all.
    ASSERT_OK(conn_->Exec("DELETE FROM heads"));
    auto put_head = [&](const std::string& chain, uint64_t seq, const Hash& h) {
      auto st = conn_->Prepare("INSERT INTO heads (chain, seq, hash, checkpointed_seq) VALUES (?, ?, ?, ?)");
      ASSERT_OK(st);
      ASSERT_OK(st->BindAll(chain, seq, ByteView(h), 0));
      ASSERT_OK(st->Run());
    };
    put_head("g", gseq, ghash);
    for (const auto& [tenant, pos] : tenants) put_head("t:" + tenant, pos.first, pos.second);
    ASSERT_OK(conn_->Exec("COMMIT"));
  }

  int64_t Count(const std::string& sql) {
    auto st = conn_->Prepare(sql);
    EXPECT_OK(st);
    EXPECT_TRUE(*st->Step());
    return st->ColumnInt64(0);
  }

  bool Exec(const std::string& sql) { return conn_->Exec(sql).ok(); }

 private:
  std::unique_ptr<db::Connection> conn_;
};

class RewriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/audit.db";
    root_ = SecretBytes::Random(32);
    opts_.checkpoint_interval = std::chrono::hours(1);
  }

  std::unique_ptr<AuditLog> OpenLog() {
    auto log = AuditLog::Open(path_, root_, opts_);
    EXPECT_OK(log);
    return log.ok() ? std::move(log).value() : nullptr;
  }

  static Event Ev(const std::string& tenant, const std::string& id, Operation op = Operation::kDataKeyUnwrap) {
    Event e;
    e.operation = op;
    e.tenant = tenant;
    e.key_id = tenant;
    e.key_version = 1;
    e.object_key = id;
    e.request.request_id = id;
    return e;
  }

  // alice and bob interleaved, alice's key rotated in the middle, a checkpoint every 4 records
  // of each, and the final checkpoint at close.
  void WriteHistory() {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    for (int i = 1; i <= 12; ++i) {
      ASSERT_OK(log->Record(
          Ev("alice", "a" + std::to_string(i), i == 6 ? Operation::kTenantKeyRotate : Operation::kDataKeyUnwrap)));
      ASSERT_OK(log->Record(Ev("bob", "b" + std::to_string(i))));
      if (i % 4 == 0) {
        ASSERT_OK(log->Checkpoint());
      }
    }
    public_key_ = log->public_key();
  }

  // After a rewrite: the log must refuse to record (a key use would get 503) and sign nothing,
  // and the stored-log check must report it.
  void ExpectRefused(const std::string& what) {
    Attacker a(path_);
    const int64_t checkpoints = a.Count("SELECT count(*) FROM checkpoints");
    {
      auto opened = AuditLog::Open(path_, root_, opts_);
      if (opened.ok()) {
        auto& log = *opened;
        EXPECT_FALSE(log->healthy()) << what;
        Status st = log->Record(Ev("alice", "after-rewrite"));
        EXPECT_THAT(st, Not(IsOk())) << what << ": a record was appended to the rewritten history";
        EXPECT_THAT(log->Checkpoint(), Not(IsOk())) << what << ": a checkpoint was signed over the rewritten history";
        auto n = log->VerifyStored();
        EXPECT_THAT(n, StatusIs(StatusCode::kCorruption)) << what << ": audit check says OK";
      }
    }
    EXPECT_EQ(a.Count("SELECT count(*) FROM checkpoints"), checkpoints) << what << ": re-signed";
    EXPECT_EQ(a.Count("SELECT count(*) FROM records WHERE request_id = 'after-rewrite'"), 0) << what;
  }

  test_support::TempDir dir_{"rewrite"};
  std::string path_;
  SecretBytes root_;
  AuditLogOptions opts_;
  Bytes public_key_;
};

std::vector<Row> WithoutRotation(std::vector<Row> rows) {
  std::erase_if(rows, [](const Row& r) { return r.record.operation == "tenant_key.rotate"; });
  return rows;
}

TEST_F(RewriteTest, DeletedRenumberedRelinkedHistoryIsRefused) {
  WriteHistory();
  {
    Attacker a(path_);
    a.Rewrite(WithoutRotation(a.Rows()));
  }
  ExpectRefused("delete, renumber, relink, drop later checkpoints, reset heads");
}

TEST_F(RewriteTest, RewriteThatAlsoDropsTheSignedStateIsRefused) {
  WriteHistory();
  {
    Attacker a(path_);
    a.Rewrite(WithoutRotation(a.Rows()));
    // Whatever else records the signed head goes too (ignored where there is no such table).
    a.Exec("DELETE FROM signed_state");
    a.Exec("DELETE FROM signed_heads");
  }
  ExpectRefused("rewrite and delete the signed state");
}

TEST_F(RewriteTest, TailTruncationBelowTheSignedHeadIsRefused) {
  WriteHistory();
  {
    Attacker a(path_);
    auto rows = a.Rows();
    rows.resize(rows.size() - 3);  // the last records, and with them the last checkpoints
    a.Rewrite(rows);
  }
  ExpectRefused("cut the end with its checkpoints");
}

TEST_F(RewriteTest, ChainsAreCheckedAtOpenNotOnlyByAuditCheck) {
  WriteHistory();
  {
    Attacker a(path_);
    // The attacker edits a record and its hash columns only, leaving every link after it as is.
    ASSERT_TRUE(a.Exec("UPDATE records SET object_key = 'x' WHERE gseq = (SELECT max(gseq) FROM records)"));
  }
  ExpectRefused("alter the last signed record");
}

TEST_F(RewriteTest, MissingSigningKeyIsNotReplacedWhileRecordsExist) {
  WriteHistory();
  {
    Attacker a(path_);
    ASSERT_TRUE(a.Exec("DELETE FROM signing_key_seals"));
    ASSERT_TRUE(a.Exec("DELETE FROM signing_keys"));
    ASSERT_TRUE(a.Exec("DELETE FROM checkpoints"));  // so that nothing is signed by the old key
  }
  auto opened = AuditLog::Open(path_, root_, opts_);
  if (opened.ok()) {
    EXPECT_EQ((*opened)->public_key(), public_key_) << "a new signing key was created while records exist";
    EXPECT_THAT((*opened)->Record(Ev("alice", "after")), Not(IsOk()));
  }
  Attacker a(path_);
  EXPECT_EQ(a.Count("SELECT count(*) FROM signing_keys"), 0) << "a new signing key was stored";
}

TEST_F(RewriteTest, MovedArchiveBoundaryIsDetected) {
  WriteHistory();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    auto log = OpenLog();
    auto archive = log->PrepareArchive(ToUnixMillis(Clock::System().Now()));
    ASSERT_OK(archive);
    ASSERT_FALSE(archive->records.empty());
    ASSERT_OK(log->Prune(*archive));
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK(log->Record(Ev("alice", "late" + std::to_string(i))));
      ASSERT_OK(log->Record(Ev("bob", "lateb" + std::to_string(i))));
    }
    ASSERT_OK(log->Checkpoint());
    ASSERT_OK(log->VerifyStored());
  }
  {
    // Make the first live record look archived: delete it and move the boundary (and its
    // tenant's archived head) onto it, exactly as Prune would have.
    Attacker a(path_);
    auto rows = a.Rows();
    ASSERT_FALSE(rows.empty());
    const Row& first = rows.front();
    const std::string g = std::to_string(first.gseq);
    ASSERT_TRUE(a.Exec("BEGIN IMMEDIATE"));
    ASSERT_TRUE(a.Exec("UPDATE archive_boundary SET gseq = " + g +
                       ", hash = (SELECT global_hash FROM records WHERE gseq = " + g + ")"));
    ASSERT_TRUE(
        a.Exec("INSERT OR REPLACE INTO archive_heads (tenant, seq, hash) SELECT tenant, seq, hash "
               "FROM records WHERE gseq = " +
               g));
    ASSERT_TRUE(a.Exec("DELETE FROM records WHERE gseq = " + g));
    ASSERT_TRUE(a.Exec("DELETE FROM checkpoints WHERE scope = 'global' AND seq <= " + g));
    ASSERT_TRUE(a.Exec("COMMIT"));
  }
  ExpectRefused("archive boundary moved");
}

// --- export bundles: where a bundle starts ---------------------------------------------------

class BundleAnchorTest : public RewriteTest {
 protected:
  std::string Bundle() {
    auto log = OpenLog();
    auto data = log->ExportTenant("alice", 0, kAllTime);
    EXPECT_OK(data);
    BundleInfo info;
    info.tenant = "alice";
    info.tenant_name = "alice";
    info.to_ms = kAllTime;
    return EncodeBundle(*data, info, BundleFormat::kJsonl);
  }

  VerifyReport Verify(const std::string& text) {
    auto parsed = ParseBundle(text);
    EXPECT_OK(parsed);
    if (!parsed.ok()) {
      return VerifyReport{Breakage::kAltered};
    }
    auto rep = VerifyBundle(*parsed, public_key_);
    EXPECT_OK(rep);
    return rep.ok() ? *rep : VerifyReport{Breakage::kAltered};
  }

  static std::vector<std::string> Lines(const std::string& text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      out.push_back(text.substr(pos, nl - pos));
      pos = nl + 1;
    }
    return out;
  }
  static std::string Join(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) s += l + "\n";
    return s;
  }
};

TEST_F(BundleAnchorTest, BundleWhoseFirstRecordsAndCheckpointsWereCutFails) {
  WriteHistory();
  const std::string text = Bundle();
  ASSERT_OK(Verify(text));
  auto lines = Lines(text);
  // Cut everything up to and including alice's 6th record (the rotation) and the checkpoint at 4.
  std::vector<std::string> cut = {lines[0]};
  int records = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const bool is_record = lines[i].find("\"type\":\"record\"") != std::string::npos;
    if (is_record) ++records;
    if (records > 6 || (!is_record && records >= 6 && lines[i].find("\"seq\":4,") == std::string::npos)) {
      cut.push_back(lines[i]);
    }
  }
  VerifyReport rep = Verify(Join(cut));
  EXPECT_THAT(rep, Not(IsOk())) << "a bundle cut at the start verifies: " << rep.records << " record(s)";
  EXPECT_EQ(rep.breakage, Breakage::kMissing) << rep.message;
}

TEST_F(BundleAnchorTest, BundleWithEveryRecordRemovedFails) {
  WriteHistory();
  auto lines = Lines(Bundle());
  std::vector<std::string> checkpoints_only = {lines[0]};
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].find("\"type\":\"checkpoint\"") != std::string::npos) checkpoints_only.push_back(lines[i]);
  }
  VerifyReport rep = Verify(Join(checkpoints_only));
  EXPECT_THAT(rep, Not(IsOk())) << "checkpoints without records verify";
  // And with the checkpoints removed too: only the header is left.
  rep = Verify(Join({lines[0]}));
  EXPECT_THAT(rep, Not(IsOk())) << "a header alone verifies as OK: 0 record(s)";
}

}  // namespace
}  // namespace coffre::audit
