#include "coffre/db/sqlite.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::db {
namespace {

using test_support::IsOk;
using test_support::StatusIs;
using ::testing::Not;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.str() + "/test.db"; }

  std::unique_ptr<Connection> OpenOrDie(OpenMode mode = OpenMode::kReadWriteCreate, int busy_ms = 5000) {
    auto conn = Connection::Open(path_, mode, busy_ms);
    EXPECT_OK(conn);
    return conn.ok() ? std::move(conn).value() : nullptr;
  }

  test_support::TempDir dir_{"db"};
  std::string path_;
};

int64_t QueryInt(Connection& conn, std::string_view sql) {
  auto st = conn.Prepare(sql);
  EXPECT_OK(st);
  auto row = st->Step();
  EXPECT_TRUE(row.ok() && *row);
  return st->ColumnInt64(0);
}

TEST_F(SqliteTest, OpenAppliesDurabilitySettings) {
  auto conn = OpenOrDie();
  ASSERT_NE(conn, nullptr);
  auto st = conn->Prepare("PRAGMA journal_mode");
  ASSERT_OK(st);
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->ColumnText(0), "wal");
  EXPECT_EQ(QueryInt(*conn, "PRAGMA synchronous"), 2);  // FULL
  EXPECT_EQ(QueryInt(*conn, "PRAGMA foreign_keys"), 1);
  EXPECT_EQ(QueryInt(*conn, "PRAGMA busy_timeout"), 5000);
}

TEST_F(SqliteTest, NewDatabaseFilesArePrivate) {
  auto conn = OpenOrDie();
  ASSERT_OK(conn->Exec("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(1);"));
  for (const std::string& p : {path_, path_ + "-wal", path_ + "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
}

TEST_F(SqliteTest, OpenWithoutCreateFailsOnMissingFile) {
  auto conn = Connection::Open(path_, OpenMode::kReadWrite);
  ASSERT_THAT(conn, StatusIs(StatusCode::kIOError));
}

TEST_F(SqliteTest, NotADatabaseIsCorruption) {
  {
    std::ofstream f(path_, std::ios::binary);
    f << std::string(4096, 'x');
  }
  auto conn = Connection::Open(path_);
  ASSERT_THAT(conn, StatusIs(StatusCode::kCorruption));
}

TEST_F(SqliteTest, TextRoundTripsAnyBytesAndComparesBytewise) {
  auto conn = OpenOrDie();
  ASSERT_OK(conn->Exec("CREATE TABLE t(k TEXT PRIMARY KEY, b BLOB) WITHOUT ROWID"));
  const std::vector<std::string> keys = {
      std::string("\xff\xfe", 2), std::string("a\0b", 3), "", "\xc3\xa9", "\x7f", "a", "a/b", "a b", "\x01",
      std::string("\xc3", 1)};
  for (const auto& k : keys) {
    auto st = conn->PrepareCached("INSERT INTO t(k, b) VALUES(?, ?)");
    ASSERT_OK(st);
    ASSERT_OK(st->BindAll(k, AsBytes(k)));
    ASSERT_OK(st->Run());
  }
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());  // std::string compares as unsigned bytes
  auto st = conn->Prepare("SELECT k, b, typeof(k) FROM t ORDER BY k");
  ASSERT_OK(st);
  std::vector<std::string> got;
  while (*st->Step()) {
    EXPECT_EQ(st->ColumnTextView(2), "text");
    EXPECT_EQ(AsChars(st->ColumnBlobView(1)), st->ColumnText(0));
    got.push_back(st->ColumnText(0));
  }
  EXPECT_EQ(got, sorted);
}

TEST_F(SqliteTest, EmptyValuesAreNotNull) {
  auto conn = OpenOrDie();
  ASSERT_OK(conn->Exec("CREATE TABLE t(a TEXT NOT NULL, b BLOB NOT NULL, c)"));
  auto ins = conn->Prepare("INSERT INTO t VALUES(?, ?, ?)");
  ASSERT_OK(ins);
  ASSERT_OK(ins->BindText(1, std::string_view()));
  ASSERT_OK(ins->BindBlob(2, ByteView()));
  ASSERT_OK(ins->BindNull(3));
  ASSERT_OK(ins->Run());
  auto sel = conn->Prepare("SELECT a, b, c, typeof(b) FROM t");
  ASSERT_OK(sel);
  ASSERT_TRUE(*sel->Step());
  EXPECT_FALSE(sel->ColumnIsNull(0));
  EXPECT_EQ(sel->ColumnText(0), "");
  EXPECT_TRUE(sel->ColumnBlob(1).empty());
  EXPECT_EQ(sel->ColumnText(3), "blob");
  EXPECT_TRUE(sel->ColumnIsNull(2));
}

TEST_F(SqliteTest, ConstraintViolationsMapToStatusCodes) {
  auto conn = OpenOrDie();
  ASSERT_OK(
      conn->Exec("CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"
                 "CREATE TABLE c(pid INTEGER NOT NULL REFERENCES p(id));"));
  ASSERT_OK(conn->Exec("INSERT INTO p VALUES(1, 'x')"));
  EXPECT_THAT(conn->Exec("INSERT INTO p VALUES(2, 'x')"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(conn->Exec("INSERT INTO p VALUES(1, 'y')"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(conn->Exec("INSERT INTO p VALUES(3, NULL)"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(conn->Exec("INSERT INTO c VALUES(42)"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(conn->Exec("SELECT * FROM nosuchtable"), StatusIs(StatusCode::kInternal));
}

TEST_F(SqliteTest, TransactionRollsBackUnlessCommitted) {
  auto conn = OpenOrDie();
  ASSERT_OK(conn->Exec("CREATE TABLE t(v INTEGER)"));
  {
    auto tx = Transaction::Begin(*conn);
    ASSERT_OK(tx);
    ASSERT_OK(conn->Exec("INSERT INTO t VALUES(1)"));
    EXPECT_TRUE(conn->InTransaction());
  }
  EXPECT_FALSE(conn->InTransaction());
  EXPECT_EQ(QueryInt(*conn, "SELECT count(*) FROM t"), 0);
  {
    auto tx = Transaction::Begin(*conn);
    ASSERT_OK(tx);
    ASSERT_OK(conn->Exec("INSERT INTO t VALUES(2)"));
    ASSERT_OK(tx->Commit());
    EXPECT_THAT(tx->Commit(), Not(IsOk()));  // finished
  }
  EXPECT_EQ(QueryInt(*conn, "SELECT count(*) FROM t"), 1);
  // Nested transactions are a programming error, not silently merged.
  auto outer = Transaction::Begin(*conn);
  ASSERT_OK(outer);
  auto inner = Transaction::Begin(*conn);
  EXPECT_THAT(inner, Not(IsOk()));
}

TEST_F(SqliteTest, SecondWriterGetsUnavailable) {
  auto a = OpenOrDie();
  auto b = OpenOrDie(OpenMode::kReadWrite, /*busy_ms=*/50);
  ASSERT_OK(a->Exec("CREATE TABLE t(v INTEGER)"));
  auto tx = Transaction::Begin(*a);
  ASSERT_OK(tx);
  auto tx2 = Transaction::Begin(*b);
  ASSERT_THAT(tx2, StatusIs(StatusCode::kUnavailable));
}

TEST_F(SqliteTest, ReaderSeesCommittedSnapshotDuringWrite) {
  auto writer = OpenOrDie();
  ASSERT_OK(writer->Exec("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(1);"));
  auto reader = OpenOrDie(OpenMode::kQueryOnly);
  auto tx = Transaction::Begin(*writer);
  ASSERT_OK(tx);
  ASSERT_OK(writer->Exec("INSERT INTO t VALUES(2)"));
  EXPECT_EQ(QueryInt(*reader, "SELECT count(*) FROM t"), 1);  // WAL: no waiting for the writer
  ASSERT_OK(tx->Commit());
  EXPECT_EQ(QueryInt(*reader, "SELECT count(*) FROM t"), 2);
  EXPECT_THAT(reader->Exec("INSERT INTO t VALUES(3)"), Not(IsOk()));  // query_only
}

TEST_F(SqliteTest, CachedStatementIsReusedAndNestedUseGetsItsOwn) {
  auto conn = OpenOrDie();
  ASSERT_OK(conn->Exec("CREATE TABLE t(v INTEGER); INSERT INTO t VALUES(1),(2),(3);"));
  constexpr std::string_view kSql = "SELECT v FROM t WHERE v >= ? ORDER BY v";
  auto outer = conn->PrepareCached(kSql);
  ASSERT_OK(outer);
  ASSERT_OK(outer->BindAll(2));
  ASSERT_TRUE(*outer->Step());
  EXPECT_EQ(outer->ColumnInt64(0), 2);
  {
    auto inner = conn->PrepareCached(kSql);
    ASSERT_OK(inner);
    ASSERT_OK(inner->BindAll(1));
    ASSERT_TRUE(*inner->Step());
    EXPECT_EQ(inner->ColumnInt64(0), 1);
  }
  ASSERT_TRUE(*outer->Step());  // the outer cursor was not disturbed
  EXPECT_EQ(outer->ColumnInt64(0), 3);
  outer->Reset();
  ASSERT_OK(outer->BindAll(3));
  ASSERT_TRUE(*outer->Step());
  EXPECT_EQ(outer->ColumnInt64(0), 3);
  outer = Result<Statement>(Statement());
  // Released back to the cache: a new borrower starts from a clean, unbound statement.
  auto again = conn->PrepareCached(kSql);
  ASSERT_OK(again);
  ASSERT_OK(again->BindAll(3));
  ASSERT_TRUE(*again->Step());
}

TEST_F(SqliteTest, PrepareRejectsTrailingStatements) {
  auto conn = OpenOrDie();
  auto st = conn->Prepare("SELECT 1; SELECT 2");
  EXPECT_THAT(st, Not(IsOk()));
  EXPECT_OK(conn->Prepare("SELECT 1;  \n"));
}

TEST_F(SqliteTest, MigrateAppliesEachStepOnce) {
  constexpr std::string_view kSteps[] = {
      "CREATE TABLE a(x INTEGER);",
      "CREATE TABLE b(y INTEGER); INSERT INTO a VALUES(1);",
  };
  {
    auto conn = OpenOrDie();
    ASSERT_OK(Migrate(*conn, std::span(kSteps, 1)));
    EXPECT_EQ(*SchemaVersion(*conn), 1);
    ASSERT_OK(Migrate(*conn, kSteps));
    EXPECT_EQ(*SchemaVersion(*conn), 2);
    ASSERT_OK(Migrate(*conn, kSteps));
    EXPECT_EQ(QueryInt(*conn, "SELECT count(*) FROM a"), 1);
  }
  auto conn = OpenOrDie();
  EXPECT_EQ(*SchemaVersion(*conn), 2);
  // Older code must not touch a newer schema.
  Status st = Migrate(*conn, std::span(kSteps, 1));
  EXPECT_THAT(st, StatusIs(StatusCode::kFailedPrecondition));
}

TEST_F(SqliteTest, FailedMigrationStepLeavesNoTrace) {
  constexpr std::string_view kSteps[] = {
      "CREATE TABLE a(x INTEGER);",
      "CREATE TABLE b(y INTEGER); THIS IS NOT SQL;",
  };
  auto conn = OpenOrDie();
  EXPECT_THAT(Migrate(*conn, kSteps), Not(IsOk()));
  EXPECT_EQ(*SchemaVersion(*conn), 1);
  EXPECT_EQ(QueryInt(*conn, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'"), 0);
}

}  // namespace
}  // namespace coffre::db
