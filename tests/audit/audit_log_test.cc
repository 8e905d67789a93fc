#include "coffre/audit/audit_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "coffre/db/sqlite.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::audit {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.str() + "/audit.db";
    root_ = SecretBytes::Random(32);
  }

  std::unique_ptr<AuditLog> OpenLog(AuditLogOptions options = {}) {
    auto log = AuditLog::Open(path_, root_, options);
    EXPECT_OK(log);
    return log.ok() ? std::move(log).value() : nullptr;
  }

  static Event Ev(const std::string& tenant, const std::string& request_id) {
    Event e;
    e.operation = Operation::kDataKeyUnwrap;
    e.tenant = tenant;
    e.key_id = tenant;
    e.key_version = 1;
    e.bucket = "b";
    e.object_key = "k";
    e.object_id = "oid";
    e.request.request_id = request_id;
    e.request.access_key_id = "AK";
    e.request.client_address = "127.0.0.1:1";
    e.request.action = "GetObject";
    return e;
  }

  test_support::TempDir dir_{"audit"};
  std::string path_;
  SecretBytes root_;
};

constexpr UnixMillis kAllTime = INT64_MAX / 2;

TEST_F(AuditLogTest, RecordsFormOneChainPerTenant) {
  auto log = OpenLog();
  ASSERT_OK(log->Record(Ev("alice", "r1")));
  ASSERT_OK(log->Record(Ev("bob", "r2")));
  ASSERT_OK(log->Record(Ev("alice", "r3")));
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 2u);
  EXPECT_EQ(exp->records[0].seq, 1u);
  EXPECT_EQ(exp->records[0].request_id, "r1");
  EXPECT_EQ(exp->records[0].prev, Hash{});
  EXPECT_EQ(exp->records[1].seq, 2u);
  EXPECT_EQ(exp->records[1].request_id, "r3");
  EXPECT_EQ(exp->records[1].prev, RecordHash(exp->records[0]));
  EXPECT_EQ(exp->records[0].operation, "data_key.unwrap");
  EXPECT_EQ(exp->records[0].outcome, "success");
  // bob's record is not in alice's export
  for (const auto& r : exp->records) {
    EXPECT_EQ(r.tenant, "alice");
  }
  auto checked = log->VerifyStored();
  ASSERT_OK(checked);
  EXPECT_EQ(*checked, 3u);
}

TEST_F(AuditLogTest, ConcurrentWritersAreAllDurableAndChained) {
  auto log = OpenLog();
  constexpr int kThreads = 8;
  constexpr int kEach = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!log->Record(Ev(t % 2 == 0 ? "even" : "odd", std::to_string(t) + "-" + std::to_string(i))).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(log->records_written(), static_cast<uint64_t>(kThreads * kEach));
  auto checked = log->VerifyStored();
  ASSERT_OK(checked);
  EXPECT_EQ(*checked, static_cast<uint64_t>(kThreads * kEach));
  auto exp = log->ExportTenant("even", 0, kAllTime);
  ASSERT_OK(exp);
  EXPECT_EQ(exp->records.size(), static_cast<size_t>(kThreads / 2 * kEach));
}

TEST_F(AuditLogTest, RecordsSurviveReopenAndTheChainContinues) {
  {
    auto log = OpenLog();
    ASSERT_OK(log->Record(Ev("alice", "r1")));
  }
  auto log = OpenLog();
  ASSERT_OK(log->Record(Ev("alice", "r2")));
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 2u);
  EXPECT_EQ(exp->records[1].seq, 2u);
  EXPECT_EQ(exp->records[1].prev, RecordHash(exp->records[0]));
  EXPECT_OK(log->VerifyStored());
}

TEST_F(AuditLogTest, CloseSignsTheTail) {
  {
    auto log = OpenLog();
    ASSERT_OK(log->Record(Ev("alice", "r1")));
  }
  auto log = OpenLog();
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->checkpoints.size(), 1u);
  EXPECT_EQ(exp->checkpoints[0].seq, 1u);
  EXPECT_EQ(exp->checkpoints[0].head, RecordHash(exp->records[0]));
  EXPECT_TRUE(VerifyCheckpoint(log->public_key(), exp->checkpoints[0]));
}

TEST_F(AuditLogTest, CheckpointEveryNRecords) {
  AuditLogOptions opts;
  opts.checkpoint_every_records = 3;
  opts.checkpoint_interval = std::chrono::hours(1);
  auto log = OpenLog(opts);
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log->Record(Ev("alice", std::to_string(i))));
  }
  // The writer signs right after the batch that reached the count.
  for (int i = 0; i < 200; ++i) {
    auto exp = log->ExportTenant("alice", 0, kAllTime);
    ASSERT_OK(exp);
    if (!exp->checkpoints.empty()) {
      EXPECT_EQ(exp->checkpoints.back().seq, 3u);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "no checkpoint after 3 records";
}

TEST_F(AuditLogTest, CheckpointAfterInterval) {
  AuditLogOptions opts;
  opts.checkpoint_every_records = 1000000;
  opts.checkpoint_interval = std::chrono::milliseconds(50);
  auto log = OpenLog(opts);
  ASSERT_OK(log->Record(Ev("alice", "r1")));
  for (int i = 0; i < 200; ++i) {
    auto exp = log->ExportTenant("alice", 0, kAllTime);
    ASSERT_OK(exp);
    if (!exp->checkpoints.empty()) {
      EXPECT_EQ(exp->checkpoints.back().seq, 1u);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL() << "no checkpoint after the interval";
}

TEST_F(AuditLogTest, ExportExtendsToTheCoveringCheckpoint) {
  AuditLogOptions opts;
  opts.checkpoint_interval = std::chrono::hours(1);
  auto log = OpenLog(opts);
  ASSERT_OK(log->Record(Ev("alice", "r1")));
  ASSERT_OK(log->Record(Ev("alice", "r2")));
  ASSERT_OK(log->Checkpoint());
  auto all = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(all);
  // A range holding only the first record still carries the second, up to the signed head.
  auto first_only = log->ExportTenant("alice", all->records[0].time_ms, all->records[0].time_ms);
  ASSERT_OK(first_only);
  ASSERT_FALSE(first_only->records.empty());
  EXPECT_EQ(first_only->records.back().seq, 2u);
  ASSERT_EQ(first_only->checkpoints.size(), 1u);
  EXPECT_THAT(log->ExportTenant("alice", 10, 5), Not(IsOk()));  // reversed range
  auto none = log->ExportTenant("nobody", 0, kAllTime);
  ASSERT_OK(none);
  EXPECT_TRUE(none->records.empty());
}

TEST_F(AuditLogTest, WrongRootKeyIsRefused) {
  { auto log = OpenLog(); }
  SecretBytes other = SecretBytes::Random(32);
  auto log = AuditLog::Open(path_, other);
  ASSERT_THAT(log, StatusIs(StatusCode::kPermissionDenied));
}

TEST_F(AuditLogTest, SigningKeyIsStoredSealed) {
  Bytes public_key;
  {
    auto log = OpenLog();
    public_key = log->public_key();
  }
  auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
  ASSERT_OK(conn);
  auto st = (*conn)->Prepare("SELECT public_key, sealed_secret FROM signing_keys");
  ASSERT_OK(st);
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->ColumnBlob(0), public_key);
  // libsodium's secret key ends with the public key; a sealed secret must not contain it.
  Bytes sealed = st->ColumnBlob(1);
  EXPECT_EQ(std::search(sealed.begin(), sealed.end(), public_key.begin(), public_key.end()), sealed.end());
  // Reopening with the same root key yields the same public key (it is unsealed, not re-made).
  auto log = OpenLog();
  EXPECT_EQ(log->public_key(), public_key);
}

// Fail-closed: while another process holds audit.db's write lock past the busy timeout, Record
// fails, the log reports unhealthy, and it recovers by itself once the lock is released.
TEST_F(AuditLogTest, LockedDatabaseFailsClosedAndRecovers) {
  AuditLogOptions opts;
  opts.busy_timeout_ms = 100;
  opts.checkpoint_interval = std::chrono::milliseconds(50);
  auto log = OpenLog(opts);
  ASSERT_OK(log->Record(Ev("alice", "before")));
  auto other = db::Connection::Open(path_, db::OpenMode::kReadWrite, 100);
  ASSERT_OK(other);
  ASSERT_OK((*other)->Exec("BEGIN IMMEDIATE"));
  Status st = log->Record(Ev("alice", "during"));
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable));
  EXPECT_FALSE(log->healthy());
  EXPECT_FALSE(log->last_error().empty());
  EXPECT_GE(log->write_failures(), 1u);
  ASSERT_OK((*other)->Exec("ROLLBACK"));
  // Without any new record, the writer's probe turns the log healthy again.
  for (int i = 0; i < 300 && !log->healthy(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(log->healthy());
  EXPECT_TRUE(log->last_error().empty());
  ASSERT_OK(log->Record(Ev("alice", "after")));
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 2u);  // the failed record left nothing behind
  EXPECT_EQ(exp->records[0].request_id, "before");
  EXPECT_EQ(exp->records[1].request_id, "after");
  EXPECT_EQ(exp->records[1].seq, 2u);
  EXPECT_OK(log->VerifyStored());
}

TEST_F(AuditLogTest, OnDoneIsCalledOnceTheRecordIsDurable) {
  auto log = OpenLog();
  std::promise<void> called;
  auto pending = log->Start(Ev("alice", "r1"));
  pending->OnDone([&called] { called.set_value(); });
  ASSERT_EQ(called.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_OK(pending->Wait());
  // Durable means visible to another connection, not only to this process.
  auto other = AuditLog::Open(path_, root_);
  ASSERT_OK(other);
  auto exp = (*other)->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 1u);
  EXPECT_EQ(exp->records[0].request_id, "r1");
}

TEST_F(AuditLogTest, OnDoneAfterTheRecordIsDoneRunsAtOnce) {
  auto log = OpenLog();
  auto pending = log->Start(Ev("alice", "r1"));
  ASSERT_OK(pending->Wait());
  bool called = false;
  pending->OnDone([&called] { called = true; });
  EXPECT_TRUE(called);
}

TEST_F(AuditLogTest, OnDoneIsCalledWhenTheRecordFailsAndWaitTellsWhy) {
  AuditLogOptions opts;
  opts.busy_timeout_ms = 100;
  auto log = OpenLog(opts);
  auto other = db::Connection::Open(path_, db::OpenMode::kReadWrite, 100);
  ASSERT_OK(other);
  ASSERT_OK((*other)->Exec("BEGIN IMMEDIATE"));
  std::promise<void> called;
  auto pending = log->Start(Ev("alice", "refused"));
  pending->OnDone([&called] { called.set_value(); });
  ASSERT_EQ(called.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_THAT(pending->Wait(), StatusIs(StatusCode::kUnavailable));
  ASSERT_OK((*other)->Exec("ROLLBACK"));
}

TEST_F(AuditLogTest, RecordsQueuedDuringACommitShareTheNextOneAndWaitForQueuedSeesThemAll) {
  AuditLogOptions opts;
  opts.busy_timeout_ms = 30'000;
  auto log = OpenLog(opts);
  // Another process holds the write lock: the writer's first batch waits for it.
  auto other = db::Connection::Open(path_, db::OpenMode::kReadWrite, 100);
  ASSERT_OK(other);
  ASSERT_OK((*other)->Exec("BEGIN IMMEDIATE"));
  std::atomic<int> called{0};
  std::vector<std::unique_ptr<PendingRecord>> pending;
  for (int i = 0; i < 200; ++i) {
    pending.push_back(log->Start(Ev(i % 2 == 0 ? "alice" : "bob", "r" + std::to_string(i))));
    pending.back()->OnDone([&called] { called.fetch_add(1); });
  }
  EXPECT_EQ(called.load(), 0);
  ASSERT_OK((*other)->Exec("ROLLBACK"));
  log->WaitForQueued();
  EXPECT_EQ(called.load(), 200);
  EXPECT_EQ(log->records_written(), 200u);
  // The batch that waited for the lock, then everything queued meanwhile in one commit.
  EXPECT_LE(log->commits(), 2u);
  for (auto& p : pending) EXPECT_OK(p->Wait());
  EXPECT_OK(log->VerifyStored());
}

TEST_F(AuditLogTest, VerifyStoredDetectsAlteredRow) {
  {
    auto log = OpenLog();
    ASSERT_OK(log->Record(Ev("alice", "r1")));
    ASSERT_OK(log->Record(Ev("alice", "r2")));
  }
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("UPDATE records SET bucket = 'other' WHERE seq = 1"));
  }
  auto log = OpenLog();
  auto r = log->VerifyStored();
  ASSERT_THAT(r, StatusIs(StatusCode::kCorruption));
}

TEST_F(AuditLogTest, VerifyStoredDetectsDeletedRow) {
  {
    auto log = OpenLog();
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(log->Record(Ev("alice", std::to_string(i))));
    }
  }
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("DELETE FROM records WHERE seq = 3"));
  }
  auto log = OpenLog();
  auto r = log->VerifyStored();
  ASSERT_THAT(r, Not(IsOk()));  // the checkpoint written at close signs seq 3
  EXPECT_THAT(r, StatusIs(StatusCode::kCorruption));
}

// What a log written before the signed state looks like: schema version 3, no signed state.
void MakeLegacy(const std::string& path) {
  auto conn = db::Connection::Open(path, db::OpenMode::kReadWrite);
  ASSERT_OK(conn);
  ASSERT_OK(
      (*conn)->Exec("DROP TABLE signed_state; DROP TABLE signed_heads; DROP TABLE audit_upgrade; "
                    "PRAGMA user_version = 3"));
}

TEST_F(AuditLogTest, LegacyLogIsVerifiedThenUpgradedWithNothingLost) {
  {
    auto log = OpenLog();
    ASSERT_OK(log->Record(Ev("alice", "r1")));
    ASSERT_OK(log->Record(Ev("bob", "r2")));
  }  // the close signs the tail, as the earlier version's did
  MakeLegacy(path_);
  auto log = OpenLog();
  EXPECT_TRUE(log->integrity_error().empty()) << log->integrity_error();
  EXPECT_TRUE(log->healthy());
  ASSERT_OK(log->Record(Ev("alice", "r3")));
  auto n = log->VerifyStored();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 3u);
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  EXPECT_EQ(exp->records.size(), 2u);
}

TEST_F(AuditLogTest, LegacyLogWithAnUnsignedTailIsRefused) {
  {
    auto log = OpenLog();
    ASSERT_OK(log->Record(Ev("alice", "r1")));
  }
  MakeLegacy(path_);
  {
    // A record the earlier version wrote but never signed (it crashed).
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("DELETE FROM checkpoints"));
  }
  // Refused before the schema step, so that the earlier version can still open it and sign it.
  auto log = AuditLog::Open(path_, root_);
  ASSERT_THAT(log, StatusIs(StatusCode::kFailedPrecondition, HasSubstr("earlier version")));
  auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
  ASSERT_OK(conn);
  EXPECT_EQ(*db::SchemaVersion(**conn), 3);
}

// Another process (an admin command) appends and signs while this log is open: this log checks
// those records link to its heads, adopts them, and its chain goes on from there.
TEST_F(AuditLogTest, RecordsAndCheckpointsOfAnotherProcessAreAdopted) {
  auto log = OpenLog();
  ASSERT_OK(log->Record(Ev("alice", "mine-1")));
  {
    auto other = OpenLog();
    ASSERT_OK(other->Record(Ev("alice", "theirs")));
    ASSERT_OK(other->Record(Ev("bob", "theirs-bob")));
  }  // signs at close
  ASSERT_OK(log->Record(Ev("alice", "mine-2")));
  ASSERT_OK(log->Checkpoint());
  EXPECT_TRUE(log->integrity_error().empty()) << log->integrity_error();
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 3u);
  EXPECT_EQ(exp->records[2].request_id, "mine-2");
  EXPECT_EQ(exp->records[2].prev, RecordHash(exp->records[1]));
  auto n = log->VerifyStored();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 4u);
}

// Another process appends, signs and archives past this log's head while it is idle: the pruned
// records are vouched for by the signed state, and this log goes on from there.
TEST_F(AuditLogTest, AnArchiveByAnotherProcessPastThisHeadIsAdopted) {
  auto log = OpenLog();
  ASSERT_OK(log->Record(Ev("alice", "mine-1")));
  {
    auto other = OpenLog();
    ASSERT_OK(other->Record(Ev("alice", "theirs")));
    ASSERT_OK(other->Record(Ev("bob", "theirs-bob")));
    auto archive = other->PrepareArchive(kAllTime);
    ASSERT_OK(archive);
    ASSERT_EQ(archive->records.size(), 3u);
    ASSERT_OK(other->Prune(*archive));
  }
  ASSERT_OK(log->Record(Ev("alice", "mine-2")));
  ASSERT_OK(log->Checkpoint());
  EXPECT_TRUE(log->integrity_error().empty()) << log->integrity_error();
  auto exp = log->ExportTenant("alice", 0, kAllTime);
  ASSERT_OK(exp);
  ASSERT_EQ(exp->records.size(), 1u);
  EXPECT_EQ(exp->records[0].seq, 3u);
  auto n = log->VerifyStored();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 1u);
}

// Records removed while the log is open are noticed at the next write: it refuses from then on.
TEST_F(AuditLogTest, RecordsRemovedWhileOpenMakeTheLogRefuse) {
  auto log = OpenLog();
  ASSERT_OK(log->Record(Ev("alice", "r1")));
  ASSERT_OK(log->Record(Ev("alice", "r2")));
  {
    auto conn = db::Connection::Open(path_, db::OpenMode::kReadWrite);
    ASSERT_OK(conn);
    ASSERT_OK((*conn)->Exec("DELETE FROM records WHERE seq = 2"));
  }
  EXPECT_THAT(log->Record(Ev("alice", "r3")), StatusIs(StatusCode::kUnavailable));
  EXPECT_FALSE(log->healthy());
  EXPECT_THAT(log->Checkpoint(), Not(IsOk()));
  EXPECT_FALSE(log->integrity_error().empty());
}

}  // namespace
}  // namespace coffre::audit
