#include "coffre/db/sqlite.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

namespace coffre::db {
namespace {

std::string Describe(std::string_view context, int rc, sqlite3* db) {
  std::string msg(context);
  msg += ": ";
  // sqlite3_errmsg describes the most recent failure on this handle, which is the one being
  // reported: every call that fails goes through here before the handle is used again.
  if (db != nullptr && sqlite3_extended_errcode(db) == rc) {
    msg += sqlite3_errmsg(db);
  } else {
    msg += sqlite3_errstr(rc);
  }
  return msg;
}

}  // namespace

Status SqliteStatus(int rc, sqlite3* db, std::string_view context) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) {
    return Status::Ok();
  }
  std::string msg = Describe(context, rc, db);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Status::NoSpace(std::move(msg));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(std::move(msg));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(std::move(msg));
      }
      if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return Status::FailedPrecondition(std::move(msg));
      }
      return Status::InvalidArgument(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(msg));
    case SQLITE_IOERR:
      // A full disk can surface as a write error rather than SQLITE_FULL.
      if (db != nullptr && sqlite3_system_errno(db) == ENOSPC) {
        return Status::NoSpace(std::move(msg));
      }
      return Status::IOError(std::move(msg));
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_PROTOCOL:
      return Status::IOError(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

// --- Statement ---------------------------------------------------------------------------

Statement::Statement(sqlite3_stmt* stmt, bool* cache_in_use) : stmt_(stmt), cache_in_use_(cache_in_use) {}

Statement::~Statement() { Release(); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)), cache_in_use_(std::exchange(other.cache_in_use_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    stmt_ = std::exchange(other.stmt_, nullptr);
    cache_in_use_ = std::exchange(other.cache_in_use_, nullptr);
  }
  return *this;
}

void Statement::Release() {
  if (stmt_ == nullptr) {
    return;
  }
  if (cache_in_use_ != nullptr) {
    // Resetting also ends any read the statement holds open, which would otherwise pin the
    // WAL snapshot and keep checkpoints from completing.
    Reset();
    *cache_in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
  cache_in_use_ = nullptr;
}

Status Statement::BindInt64(int index, int64_t value) {
  return SqliteStatus(sqlite3_bind_int64(stmt_, index, value), sqlite3_db_handle(stmt_), "bind");
}

Status Statement::BindText(int index, std::string_view value) {
  // A null data pointer would bind NULL, not an empty string.
  static constexpr char kEmpty[] = "";
  const char* data = value.data() != nullptr ? value.data() : kEmpty;
  return SqliteStatus(sqlite3_bind_text64(stmt_, index, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
                      sqlite3_db_handle(stmt_), "bind");
}

Status Statement::BindBlob(int index, ByteView value) {
  // sqlite3_bind_blob64 with a null pointer binds NULL; an empty blob must stay a blob.
  if (value.empty()) {
    return SqliteStatus(sqlite3_bind_zeroblob(stmt_, index, 0), sqlite3_db_handle(stmt_), "bind");
  }
  return SqliteStatus(sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT),
                      sqlite3_db_handle(stmt_), "bind");
}

Status Statement::BindNull(int index) {
  return SqliteStatus(sqlite3_bind_null(stmt_, index), sqlite3_db_handle(stmt_), "bind");
}

Result<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return SqliteStatus(rc, sqlite3_db_handle(stmt_), "step");
}

Status Statement::Run() {
  Result<bool> r = Step();
  if (!r.ok()) {
    return r.status();
  }
  if (*r) {
    // Finish the statement so it releases its read lock; rows are not expected here.
    while (true) {
      Result<bool> more = Step();
      if (!more.ok()) {
        return more.status();
      }
      if (!*more) {
        break;
      }
    }
  }
  return Status::Ok();
}

int64_t Statement::ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }

int Statement::ColumnCount() const { return sqlite3_column_count(stmt_); }

std::string Statement::ColumnText(int col) const { return std::string(ColumnTextView(col)); }

std::string_view Statement::ColumnTextView(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr) {
    return {};
  }
  return {p, static_cast<size_t>(n)};
}

Bytes Statement::ColumnBlob(int col) const {
  ByteView v = ColumnBlobView(col);
  return Bytes(v.begin(), v.end());
}

ByteView Statement::ColumnBlobView(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  const int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr) {
    return {};
  }
  return {p, static_cast<size_t>(n)};
}

bool Statement::ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

// --- Connection --------------------------------------------------------------------------

struct Connection::CachedStatement {
  sqlite3_stmt* stmt = nullptr;
  bool in_use = false;
};

Connection::Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

Connection::~Connection() {
  for (auto& [sql, cached] : cache_) {
    sqlite3_finalize(cached->stmt);
  }
  cache_.clear();
  // sqlite3_close_v2 defers the close if a statement is still alive (a caller bug), rather than
  // leaking the handle or crashing.
  sqlite3_close_v2(db_);
}

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, OpenMode mode, int busy_timeout_ms) {
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (mode == OpenMode::kReadWriteCreate) {
    flags |= SQLITE_OPEN_CREATE;
    // SQLite would create the file 0644; the databases hold object names and wrapped keys, so
    // create it private (SQLite gives its -wal and -shm files the database file's mode). An
    // empty file is a valid empty database; an existing file is left as it is.
    if (!path.empty() && path != ":memory:" && !path.starts_with("file:")) {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      if (fd < 0) {
        return Status::FromErrno(errno, "create database " + path);
      }
      ::close(fd);
    }
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  // The Connection owns the handle from here on, even when opening failed.
  std::unique_ptr<Connection> conn(new Connection(raw, path));
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, raw, "open database " + path);
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // Defensive mode stops SQL from corrupting the file on purpose (writable_schema and the like).
  sqlite3_db_config(raw, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);

  // journal_mode is persistent in the file; asking for it on every open makes a database that
  // was created elsewhere switch to WAL too.
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn->Prepare("PRAGMA journal_mode=WAL"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnTextView(0) != "wal") {
      return Status::IOError("open database " + path + ": cannot enable WAL journal mode");
    }
  }
  COFFRE_RETURN_IF_ERROR(
      conn->Exec("PRAGMA synchronous=FULL;"
                 "PRAGMA foreign_keys=ON;"
                 "PRAGMA trusted_schema=OFF;"));
  if (mode == OpenMode::kQueryOnly) {
    COFFRE_RETURN_IF_ERROR(conn->Exec("PRAGMA query_only=ON"));
  }
  return conn;
}

Status Connection::Exec(std::string_view sql) {
  // sqlite3_exec needs a NUL-terminated string.
  const std::string text(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);  // the same text is available through sqlite3_errmsg
  return SqliteStatus(rc, db_, "exec");
}

Result<sqlite3_stmt*> Connection::PrepareRaw(std::string_view sql, bool persistent) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, &tail);
  if (rc != SQLITE_OK) {
    return SqliteStatus(rc, db_, "prepare");
  }
  if (stmt == nullptr) {
    return Status::Internal("prepare: empty SQL statement");
  }
  // Trailing statements would be silently ignored; only whitespace may follow.
  for (const char* p = tail; p < sql.data() + sql.size(); ++p) {
    if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r' && *p != ';') {
      sqlite3_finalize(stmt);
      return Status::Internal("prepare: more than one SQL statement");
    }
  }
  return stmt;
}

Result<Statement> Connection::Prepare(std::string_view sql) {
  COFFRE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, PrepareRaw(sql, /*persistent=*/false));
  return Statement(stmt, nullptr);
}

Result<Statement> Connection::PrepareCached(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    COFFRE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, PrepareRaw(sql, /*persistent=*/true));
    auto cached = std::make_unique<CachedStatement>();
    cached->stmt = stmt;
    it = cache_.emplace(std::string(sql), std::move(cached)).first;
  }
  CachedStatement& cached = *it->second;
  if (cached.in_use) {
    return Prepare(sql);
  }
  cached.in_use = true;
  return Statement(cached.stmt, &cached.in_use);
}

int64_t Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

bool Connection::InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }

// --- Transaction -------------------------------------------------------------------------

namespace {

// Transaction control runs on every request's reads and writes: prepared once per connection
// rather than parsed by sqlite3_exec each time.
Status RunCached(Connection& conn, std::string_view sql) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached(sql));
  return st.Run();
}

}  // namespace

Result<Transaction> Transaction::Begin(Connection& conn, Kind kind) {
  if (conn.InTransaction()) {
    return Status::Internal("begin: a transaction is already open on this connection");
  }
  COFFRE_RETURN_IF_ERROR(RunCached(conn, kind == Kind::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
  return Transaction(&conn);
}

Transaction::~Transaction() { Rollback(); }

Transaction::Transaction(Transaction&& other) noexcept : conn_(std::exchange(other.conn_, nullptr)) {}

Status Transaction::Commit() {
  if (conn_ == nullptr) {
    return Status::Internal("commit: transaction already finished");
  }
  Status st = RunCached(*conn_, "COMMIT");
  if (!st.ok()) {
    // COMMIT can fail and leave the transaction open (SQLITE_BUSY); never leave it dangling.
    Rollback();
    return st;
  }
  conn_ = nullptr;
  return Status::Ok();
}

void Transaction::Rollback() {
  if (conn_ == nullptr) {
    return;
  }
  // After some errors (e.g. SQLITE_FULL) SQLite has already rolled back on its own.
  if (conn_->InTransaction()) {
    (void)RunCached(*conn_, "ROLLBACK");
  }
  conn_ = nullptr;
}

}  // namespace coffre::db
