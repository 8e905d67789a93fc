#pragma once

// Small RAII wrappers over SQLite, shared by the catalog and the keystore.
//
// Every connection is configured the same way (journal_mode=WAL, synchronous=FULL,
// foreign_keys=ON, a busy timeout, defensive mode), so a module cannot forget the settings that
// make an acknowledged write durable. SQLite result codes become coffre::Status values here and
// nowhere else.
//
// Thread safety: a Connection and its Statements must be used by one thread at a time (the
// callers own the locking: one writer behind a mutex, readers from a pool). Statements must not
// outlive the Connection that prepared them.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "coffre/common/bytes.h"
#include "coffre/common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace coffre::db {

// Turns an SQLite result code into a Status; `context` says what was being done. The message
// carries SQLite's error text, which names tables and constraints but never bound values.
//   SQLITE_FULL (or an I/O error caused by ENOSPC)   -> NoSpace
//   SQLITE_BUSY / SQLITE_LOCKED                      -> Unavailable (retry later)
//   UNIQUE / PRIMARY KEY constraint                  -> AlreadyExists
//   FOREIGN KEY constraint                           -> FailedPrecondition
//   other constraints (CHECK, NOT NULL)              -> InvalidArgument
//   SQLITE_CORRUPT / SQLITE_NOTADB                   -> Corruption
//   I/O, open, read-only and permission errors       -> IOError
//   anything else (misuse, SQL errors)               -> Internal
Status SqliteStatus(int rc, sqlite3* db, std::string_view context);

enum class OpenMode {
  kReadWriteCreate,  // creates the file if missing
  kReadWrite,        // the file must exist
  kQueryOnly,        // read-write handle with PRAGMA query_only: a WAL reader that cannot write
};

class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Text is bound with its explicit length, so any bytes
  // (including invalid UTF-8) round-trip and compare bytewise under the BINARY collation.
  Status BindInt64(int index, int64_t value);
  Status BindText(int index, std::string_view value);
  Status BindBlob(int index, ByteView value);
  Status BindNull(int index);

  // Binds the arguments to parameters 1..N in order: integers (and bool) as INTEGER,
  // std::string / std::string_view / const char* as TEXT, ByteView / Bytes as BLOB.
  template <typename... Args>
  Status BindAll(const Args&... args) {
    int index = 0;
    Status st;
    // The && fold stops at the first failure.
    (void)(((st = BindOne(++index, args)), st.ok()) && ...);
    return st;
  }

  // Runs the statement one step: true when a row is available, false when done.
  Result<bool> Step();
  // Steps a statement that returns no rows (INSERT, UPDATE, DELETE, DDL) to completion.
  Status Run();

  // Column getters for the current row (0-based). Text and blobs are copied.
  int64_t ColumnInt64(int col) const;
  std::string ColumnText(int col) const;
  // Valid until the next Step/Reset or the statement's destruction.
  std::string_view ColumnTextView(int col) const;
  Bytes ColumnBlob(int col) const;
  ByteView ColumnBlobView(int col) const;
  bool ColumnIsNull(int col) const;
  // Columns in the statement's result rows.
  int ColumnCount() const;

  // Rewinds the statement and clears its bindings, so it can be bound and run again.
  void Reset();

  bool valid() const { return stmt_ != nullptr; }

 private:
  friend class Connection;
  Statement(sqlite3_stmt* stmt, bool* cache_in_use);

  template <typename T>
  Status BindOne(int index, const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
      return BindInt64(index, v ? 1 : 0);
    } else if constexpr (std::is_integral_v<T>) {
      return BindInt64(index, static_cast<int64_t>(v));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
      return BindText(index, std::string_view(v));
    } else {
      return BindBlob(index, ByteView(v));
    }
  }

  void Release();

  sqlite3_stmt* stmt_ = nullptr;
  // Non-null for a statement borrowed from a Connection's cache: it is reset (not finalized)
  // on destruction and the flag is cleared so the cache can hand it out again.
  bool* cache_in_use_ = nullptr;
};

class Connection {
 public:
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens the database and applies the standard settings. busy_timeout_ms bounds how long a
  // statement waits for another connection's lock before failing with Unavailable.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, OpenMode mode = OpenMode::kReadWriteCreate,
                                                  int busy_timeout_ms = 5000);

  // Runs one or more SQL statements that take no parameters.
  Status Exec(std::string_view sql);
  // A one-off statement, finalized when the Statement is destroyed.
  Result<Statement> Prepare(std::string_view sql);
  // A statement kept prepared for the connection's lifetime (SQLITE_PREPARE_PERSISTENT): for the
  // queries a module runs again and again. If the cached statement is already in use (a nested
  // use of the same SQL), a one-off statement is returned instead.
  Result<Statement> PrepareCached(std::string_view sql);

  int64_t LastInsertRowId() const;
  int64_t Changes() const;  // rows changed by the last INSERT/UPDATE/DELETE
  bool InTransaction() const;
  const std::string& path() const { return path_; }

 private:
  struct CachedStatement;
  Connection(sqlite3* db, std::string path);
  Result<sqlite3_stmt*> PrepareRaw(std::string_view sql, bool persistent);

  // Looked up by string_view, so a cache hit builds no std::string.
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view sql) const { return std::hash<std::string_view>{}(sql); }
  };

  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<std::string, std::unique_ptr<CachedStatement>, SqlHash, std::equal_to<>> cache_;
};

// A transaction guard: rolled back on destruction unless Commit() succeeded.
class Transaction {
 public:
  enum class Kind {
    kImmediate,  // takes the write lock at BEGIN: for every read-modify-write
    kDeferred,   // a read snapshot: consistent reads across several statements
  };

  static Result<Transaction> Begin(Connection& conn, Kind kind = Kind::kImmediate);
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // Durable when OK (synchronous=FULL). On failure the transaction is rolled back.
  Status Commit();
  void Rollback();

 private:
  explicit Transaction(Connection* conn) : conn_(conn) {}
  Connection* conn_ = nullptr;  // null once finished
};

// Brings the schema to the latest version. migrations[i] is the SQL script that takes the
// database from user_version i to i + 1; each runs in its own immediate transaction together
// with the user_version update, so a crash leaves a whole step applied or none. A database newer
// than the code (user_version > migrations.size()) is refused with FailedPrecondition.
Status Migrate(Connection& conn, std::span<const std::string_view> migrations);

// Reads PRAGMA user_version.
Result<int64_t> SchemaVersion(Connection& conn);

}  // namespace coffre::db
