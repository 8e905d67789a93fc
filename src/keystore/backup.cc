// Keystore backup and restore (include/coffre/keystore/backup.h).
//
// The backup and the staged restore copy are handled through the raw SQLite API rather than
// db::Connection, which switches every database it opens to WAL: a backup must stay one
// self-contained file (journal_mode=DELETE), and checking a file must not rewrite it.

#include "coffre/keystore/backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "coffre/crypto/aead.h"
#include "coffre/db/sqlite.h"
#include "coffre/keystore/keystore.h"
#include "keystore/format.h"
#include "keystore/rows.h"

namespace coffre::keystore {
namespace {

constexpr std::string_view kSidecars[] = {"-wal", "-shm", "-journal"};
// How long the backup waits for a writer that holds the source locked (one step copies
// everything; a WAL reader is blocked only by a checkpoint in progress or a schema change).
constexpr auto kBusyDeadline = std::chrono::seconds(30);
constexpr std::string_view kBackupExists = " already exists; choose another file, or pass --force to replace it";

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    return ".";
  }
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status FsyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno(errno, "open " + path + " to fsync it");
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::FromErrno(err, "fsync " + path);
  }
  return Status::Ok();
}

// Creates `path` empty with mode 0600; never follows or reuses an existing file.
Status CreatePrivateFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return Status::FromErrno(errno, "create " + path);
  }
  ::close(fd);
  return Status::Ok();
}

void RemoveDatabaseFiles(const std::string& path) {
  ::unlink(path.c_str());
  for (std::string_view ext : kSidecars) {
    ::unlink((path + std::string(ext)).c_str());
  }
}

// rename(2) that never replaces an existing file.
Status RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return Status::Ok();
  }
  const int err = errno;
  if (err == EEXIST) {
    return Status::AlreadyExists(to + " already exists");
  }
  return Status::FromErrno(err, "rename " + from + " to " + to);
}

// One raw SQLite handle, closed on destruction.
class RawDb {
 public:
  static Result<RawDb> Open(const std::string& path, int flags) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    RawDb out(db);
    if (rc != SQLITE_OK) {
      return db::SqliteStatus(rc, db, "open " + path);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    return out;
  }
  RawDb(RawDb&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  RawDb& operator=(RawDb&&) = delete;
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  ~RawDb() { (void)Close(); }

  Status Close() {
    if (db_ == nullptr) {
      return Status::Ok();
    }
    const int rc = sqlite3_close(db_);
    if (rc != SQLITE_OK) {
      Status st = db::SqliteStatus(rc, db_, "close database");
      sqlite3_close_v2(db_);
      db_ = nullptr;
      return st;
    }
    db_ = nullptr;
    return Status::Ok();
  }

  sqlite3* get() const { return db_; }

  Status Exec(const std::string& sql) {
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status::Ok() : db::SqliteStatus(rc, db_, sql);
  }

  // Runs `sql` (one statement, `param` bound to ?1 when given) and calls `row` for each row.
  template <typename RowFn>
  Status Query(const std::string& sql, RowFn row, std::optional<std::string_view> param = std::nullopt) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt(raw, sqlite3_finalize);
    if (rc != SQLITE_OK) {
      return db::SqliteStatus(rc, db_, sql);
    }
    if (param) {
      rc = sqlite3_bind_text(raw, 1, param->data(), static_cast<int>(param->size()), SQLITE_TRANSIENT);
      if (rc != SQLITE_OK) {
        return db::SqliteStatus(rc, db_, sql);
      }
    }
    while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
      COFFRE_RETURN_IF_ERROR(row(raw));
    }
    return rc == SQLITE_DONE ? Status::Ok() : db::SqliteStatus(rc, db_, sql);
  }

  Result<std::string> QueryText(const std::string& sql) {
    std::string out;
    COFFRE_RETURN_IF_ERROR(Query(sql, [&](sqlite3_stmt* st) {
      const unsigned char* text = sqlite3_column_text(st, 0);
      out = text == nullptr ? "" : reinterpret_cast<const char*>(text);
      return Status::Ok();
    }));
    return out;
  }

  Result<int64_t> QueryInt(const std::string& sql) {
    int64_t out = 0;
    COFFRE_RETURN_IF_ERROR(Query(sql, [&](sqlite3_stmt* st) {
      out = sqlite3_column_int64(st, 0);
      return Status::Ok();
    }));
    return out;
  }

 private:
  explicit RawDb(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

ByteView ColumnBlob(sqlite3_stmt* st, int col) {
  const void* data = sqlite3_column_blob(st, col);
  const int size = sqlite3_column_bytes(st, col);
  return ByteView(static_cast<const uint8_t*>(data), data == nullptr ? 0 : static_cast<size_t>(size));
}

std::string ColumnText(sqlite3_stmt* st, int col) {
  const unsigned char* text = sqlite3_column_text(st, col);
  return text == nullptr
             ? std::string()
             : std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(sqlite3_column_bytes(st, col)));
}

// PRAGMA integrity_check: Corruption with SQLite's first findings unless it answers "ok".
Status IntegrityCheck(RawDb& db) {
  std::vector<std::string> findings;
  COFFRE_RETURN_IF_ERROR(db.Query("PRAGMA integrity_check(5)", [&](sqlite3_stmt* st) {
    findings.push_back(ColumnText(st, 0));
    return Status::Ok();
  }));
  if (findings.size() == 1 && findings[0] == "ok") {
    return Status::Ok();
  }
  std::string msg = "integrity_check failed:";
  for (const auto& f : findings) {
    msg += " " + f + ";";
  }
  return Status::Corruption(msg);
}

// The keystore's own tables and its root-key check value are there: a file that is an SQLite
// database but not a keystore (or one that was never opened with a root key) is refused.
Status CheckIsKeystore(RawDb& db) {
  COFFRE_ASSIGN_OR_RETURN(int64_t version, db.QueryInt("PRAGMA user_version"));
  if (version < 1) {
    return Status::InvalidArgument("it is not a coffre keystore (no keystore schema)");
  }
  COFFRE_ASSIGN_OR_RETURN(int64_t tables,
                          db.QueryInt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                                      "('meta', 'tenants', 'tenant_keys', 'access_keys')"));
  if (tables != 4) {
    return Status::InvalidArgument("it is not a coffre keystore (keystore tables missing)");
  }
  bool has_check = false;
  COFFRE_RETURN_IF_ERROR(db.Query(
      "SELECT 1 FROM meta WHERE name = ?1",
      [&](sqlite3_stmt*) {
        has_check = true;
        return Status::Ok();
      },
      internal::kRootKeyCheckName));
  if (!has_check) {
    return Status::InvalidArgument("it is not a usable coffre keystore (no root-key check value)");
  }
  return Status::Ok();
}

// Which format the root-key check value has under `root` (the check Keystore::Open makes):
// kNoMatch when it does not open.
Result<internal::CheckFormat> CheckValueFormat(RawDb& db, const SecretBytes& root) {
  const SecretBytes wrap = DeriveRootSubkey(root, RootKeyPurpose::kKeystoreWrap);
  internal::CheckFormat format = internal::CheckFormat::kNoMatch;
  COFFRE_RETURN_IF_ERROR(db.Query(
      "SELECT value FROM meta WHERE name = ?1",
      [&](sqlite3_stmt* st) {
        format = internal::CheckValueFormat(ColumnBlob(st, 0), root, wrap);
        return Status::Ok();
      },
      internal::kRootKeyCheckName));
  return format;
}

Result<bool> CheckValueOpens(RawDb& db, const SecretBytes& root) {
  COFFRE_ASSIGN_OR_RETURN(internal::CheckFormat format, CheckValueFormat(db, root));
  return format != internal::CheckFormat::kNoMatch;
}

// Checks the root key, then opens every sealed value under it (each plaintext is wiped at once),
// checks every authenticated row's MAC, and counts what the keystore holds. A keystore written
// before rows were authenticated has its values sealed under the raw root key and no MACs yet.
Result<KeystoreContents> ReadContents(RawDb& db, const SecretBytes& root) {
  COFFRE_ASSIGN_OR_RETURN(internal::CheckFormat format, CheckValueFormat(db, root));
  if (format == internal::CheckFormat::kNoMatch) {
    return Status::PermissionDenied("root key does not match this keystore");
  }
  const bool legacy = format == internal::CheckFormat::kLegacy;
  const SecretBytes wrap = legacy ? root : DeriveRootSubkey(root, RootKeyPurpose::kKeystoreWrap);
  KeystoreContents out;
  COFFRE_ASSIGN_OR_RETURN(out.schema_version, db.QueryInt("PRAGMA user_version"));
  COFFRE_RETURN_IF_ERROR(
      db.Query("SELECT tenant_id, version, wrapped_key FROM tenant_keys", [&](sqlite3_stmt* st) -> Status {
        const std::string tenant = ColumnText(st, 0);
        const auto version = static_cast<uint32_t>(sqlite3_column_int64(st, 1));
        if (!crypto::OpenSecret(wrap, ColumnBlob(st, 2), internal::TenantKeyAad(tenant, version)).ok()) {
          return Status::Corruption("key version " + std::to_string(version) + " of tenant " + tenant +
                                    " does not open under the root key (altered row)");
        }
        ++out.key_versions;
        return Status::Ok();
      }));
  COFFRE_RETURN_IF_ERROR(
      db.Query("SELECT access_key_id, tenant_id, secret FROM access_keys", [&](sqlite3_stmt* st) -> Status {
        const std::string id = ColumnText(st, 0);
        if (!crypto::OpenSecret(wrap, ColumnBlob(st, 2), internal::AccessKeySecretAad(id, ColumnText(st, 1))).ok()) {
          return Status::Corruption("the secret of access key " + id +
                                    " does not open under the root key (altered row)");
        }
        ++out.access_keys;
        return Status::Ok();
      }));
  COFFRE_ASSIGN_OR_RETURN(int64_t tenants, db.QueryInt("SELECT count(*) FROM tenants"));
  out.tenants = static_cast<size_t>(tenants);
  if (out.schema_version >= 2) {  // shredding and key events came with schema version 2
    COFFRE_ASSIGN_OR_RETURN(int64_t shredded, db.QueryInt("SELECT count(*) FROM tenants WHERE shredded IS NOT NULL"));
    out.shredded_tenants = static_cast<size_t>(shredded);
    COFFRE_ASSIGN_OR_RETURN(out.newest_event, db.QueryInt("SELECT coalesce(max(at), 0) FROM key_events"));
  }
  return out;
}

// Every authenticated row of the keystore file at `path` verifies under `root` (nothing to check
// in a keystore written before rows were authenticated). Through db::Connection, which turns the
// file to WAL mode: call it before the file is made self-contained.
Status CheckRowMacs(const std::string& path, const SecretBytes& root) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn, db::Connection::Open(path, db::OpenMode::kReadWrite));
  internal::KeystoreKeys keys = internal::DeriveKeystoreKeys(root);
  Bytes check;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT value FROM meta WHERE name = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kRootKeyCheckName));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::InvalidArgument("it is not a usable coffre keystore (no root-key check value)");
    }
    check = st.ColumnBlob(0);
  }
  switch (internal::CheckValueFormat(check, root, keys.wrap)) {
    case internal::CheckFormat::kNoMatch:
      return Status::PermissionDenied("root key does not match this keystore");
    case internal::CheckFormat::kLegacy:
      return Status::Ok();
    case internal::CheckFormat::kCurrent:
      break;
  }
  COFFRE_ASSIGN_OR_RETURN(keys.admin_token, internal::LoadAdminTokenKey(*conn, keys.wrap, false));
  COFFRE_ASSIGN_OR_RETURN(internal::RowScan scan, internal::ScanRows(*conn, keys));
  if (scan.failed != 0) {
    return Status::Corruption(std::to_string(scan.failed) + " row(s) fail their integrity check (first: " +
                              scan.first_failure + "): altered or written without the root key");
  }
  return Status::Ok();
}

// Copies the source database into `dest` with the online backup API, in one step: the copy is one
// read transaction of the source, so it is a consistent snapshot whatever the daemon writes.
Status OnlineCopy(RawDb& source, RawDb& dest) {
  const auto deadline = std::chrono::steady_clock::now() + kBusyDeadline;
  while (true) {
    sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", source.get(), "main");
    if (backup == nullptr) {
      return db::SqliteStatus(sqlite3_errcode(dest.get()), dest.get(), "start the keystore backup");
    }
    const int rc = sqlite3_backup_step(backup, -1);
    const int finished = sqlite3_backup_finish(backup);
    if (rc == SQLITE_DONE && finished == SQLITE_OK) {
      return Status::Ok();
    }
    const int code = rc == SQLITE_DONE ? finished : rc;
    const int primary = code & 0xff;
    if ((primary == SQLITE_BUSY || primary == SQLITE_LOCKED) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    return db::SqliteStatus(code, dest.get(), "copy the keystore");
  }
}

// Makes the database at `path` one self-contained file: rollback journal mode (its WAL, if any,
// is checkpointed into the file and removed) and fsync'd.
Status MakeSelfContained(const std::string& path) {
  {
    COFFRE_ASSIGN_OR_RETURN(RawDb db, RawDb::Open(path, SQLITE_OPEN_READWRITE));
    COFFRE_ASSIGN_OR_RETURN(std::string mode, db.QueryText("PRAGMA journal_mode=DELETE"));
    if (mode != "delete") {
      return Status::IOError("cannot switch " + path + " to journal_mode=DELETE (still " + mode + ")");
    }
    COFFRE_RETURN_IF_ERROR(db.Close());
  }
  for (std::string_view ext : kSidecars) {
    if (Exists(path + std::string(ext))) {
      return Status::Internal(path + std::string(ext) + " still exists after switching to journal_mode=DELETE");
    }
  }
  return FsyncPath(path, /*directory=*/false);
}

// The file (read from the start) copied whole into `dest_fd`, then fsync'd.
Status CopyFileContents(const std::string& from, int dest_fd, const std::string& dest) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    return Status::FromErrno(errno, "read " + from);
  }
  std::vector<char> buf(1 << 16);
  Status st;
  while (st.ok()) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      st = Status::FromErrno(errno, "read " + from);
      break;
    }
    if (n == 0) {
      break;
    }
    size_t off = 0;
    while (off < static_cast<size_t>(n)) {
      const ssize_t w = ::write(dest_fd, buf.data() + off, static_cast<size_t>(n) - off);
      if (w < 0) {
        if (errno == EINTR) {
          continue;
        }
        st = Status::FromErrno(errno, "write " + dest);
        break;
      }
      off += static_cast<size_t>(w);
    }
  }
  ::close(in);
  if (st.ok() && ::fsync(dest_fd) != 0) {
    st = Status::FromErrno(errno, "fsync " + dest);
  }
  return st;
}

std::string CompactUtc(UnixMillis now) {
  const std::time_t secs = static_cast<std::time_t>(now / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

Result<KeystoreContents> BackupKeystore(const std::string& keystore_path, const std::string& backup_path,
                                        const SecretBytes& root_key, const BackupOptions& options) {
  struct stat source {};
  if (::stat(keystore_path.c_str(), &source) != 0) {
    return Status::NotFound("no keystore at " + keystore_path);
  }
  struct stat existing {};
  if (::stat(backup_path.c_str(), &existing) == 0) {
    if (existing.st_dev == source.st_dev && existing.st_ino == source.st_ino) {
      return Status::InvalidArgument(backup_path + " is the keystore itself; write the backup elsewhere");
    }
    if (!options.overwrite) {
      return Status::AlreadyExists(backup_path + std::string(kBackupExists));
    }
    if (!S_ISREG(existing.st_mode)) {
      return Status::InvalidArgument(backup_path + " exists and is not a regular file; choose another file");
    }
  }
  const std::string dir = DirectoryOf(backup_path);
  const std::string tmp = dir + "/." + BaseName(backup_path) + ".tmp-" + RandomId(6);
  COFFRE_RETURN_IF_ERROR(CreatePrivateFile(tmp));
  // From here on, any failure leaves no temporary file behind.
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      if (!path.empty()) {
        RemoveDatabaseFiles(path);
      }
    }
  } cleanup{tmp};

  {
    // Read-write (no create) with query_only: a read-only handle cannot always join a WAL
    // database whose -shm the daemon owns, and this one must never write the keystore.
    COFFRE_ASSIGN_OR_RETURN(RawDb src, RawDb::Open(keystore_path, SQLITE_OPEN_READWRITE));
    COFFRE_RETURN_IF_ERROR(src.Exec("PRAGMA query_only = ON"));
    COFFRE_ASSIGN_OR_RETURN(RawDb dst, RawDb::Open(tmp, SQLITE_OPEN_READWRITE));
    COFFRE_RETURN_IF_ERROR(OnlineCopy(src, dst));
    COFFRE_RETURN_IF_ERROR(dst.Close());
    COFFRE_RETURN_IF_ERROR(src.Close());
  }
  if (Status macs = CheckRowMacs(tmp, root_key); !macs.ok()) {
    if (macs.code() == StatusCode::kCorruption) {
      return Status::Corruption("the copy of " + keystore_path + " failed its check (" + macs.message() +
                                "); no backup was written");
    }
    return macs;
  }
  COFFRE_RETURN_IF_ERROR(MakeSelfContained(tmp));
  if (options.before_verify) {
    COFFRE_RETURN_IF_ERROR(options.before_verify(tmp));
  }
  KeystoreContents contents;
  {
    // Read-only: checking the copy must not change it (a rollback-journal database needs no
    // other file to be read).
    COFFRE_ASSIGN_OR_RETURN(RawDb copy, RawDb::Open(tmp, SQLITE_OPEN_READONLY));
    Status integrity = IntegrityCheck(copy);
    if (!integrity.ok()) {
      return Status::Corruption("the copy of " + keystore_path + " failed its check (" + integrity.message() +
                                "); no backup was written");
    }
    COFFRE_RETURN_IF_ERROR(CheckIsKeystore(copy));
    COFFRE_ASSIGN_OR_RETURN(contents, ReadContents(copy, root_key));
    COFFRE_RETURN_IF_ERROR(copy.Close());
  }
  if (Exists(tmp + "-journal")) {
    return Status::Internal("the backup copy left a rollback journal behind; no backup was written");
  }
  if (options.overwrite) {
    if (::rename(tmp.c_str(), backup_path.c_str()) != 0) {
      return Status::FromErrno(errno, "rename the backup into " + backup_path);
    }
  } else {
    // Refused, rather than replaced, if the file appeared meanwhile.
    Status renamed = RenameNoReplace(tmp, backup_path);
    if (renamed.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists(backup_path + std::string(kBackupExists));
    }
    COFFRE_RETURN_IF_ERROR(renamed);
  }
  cleanup.path.clear();
  COFFRE_RETURN_IF_ERROR(FsyncPath(dir, /*directory=*/true));
  return contents;
}

Result<std::vector<KeyDestruction>> ListKeyDestructions(const std::string& keystore_path) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn,
                          db::Connection::Open(keystore_path, db::OpenMode::kQueryOnly));
  COFFRE_ASSIGN_OR_RETURN(int64_t version, db::SchemaVersion(*conn));
  std::vector<KeyDestruction> out;
  if (version < 2) {  // no shredding nor key events before schema version 2
    return out;
  }
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT id FROM tenants WHERE shredded IS NOT NULL"));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.push_back({st.ColumnText(0), 0});
    }
  }
  {
    // A named key's version destroyed says which key in its detail ("key <id>").
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT tenant_id, version, detail FROM key_events "
                                                            "WHERE event = 'key-destroyed'"));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      const std::string detail = st.ColumnText(2);
      out.push_back({st.ColumnText(0), static_cast<uint32_t>(st.ColumnInt64(1)),
                     detail.starts_with("key ") ? detail.substr(4) : std::string()});
    }
  }
  if (version >= internal::kNamedKeysSchemaVersion) {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                            conn->Prepare("SELECT tenant_id, key_id FROM named_keys WHERE destroyed IS NOT NULL"));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out.push_back({st.ColumnText(0), 0, st.ColumnText(1)});
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<Bytes> ReadPassphraseKdf(const std::string& keystore_path) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn,
                          db::Connection::Open(keystore_path, db::OpenMode::kQueryOnly));
  COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT value FROM meta WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(internal::kPassphraseKdfName));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnBlob(0) : Bytes();
}

StagedRestore::StagedRestore(std::string data_dir, std::string staged) noexcept
    : data_dir_(std::move(data_dir)), staged_(std::move(staged)), keystore_(data_dir_ + "/keystore.db") {}

StagedRestore::StagedRestore(StagedRestore&& other) noexcept
    : data_dir_(std::move(other.data_dir_)),
      staged_(std::exchange(other.staged_, std::string())),
      keystore_(std::move(other.keystore_)),
      newest_event_(other.newest_event_) {}

StagedRestore::~StagedRestore() {
  if (!staged_.empty()) {
    RemoveDatabaseFiles(staged_);
  }
}

Result<StagedRestore> StagedRestore::Stage(const std::string& backup_path, const std::string& data_dir) {
  const auto unusable = [&](const std::string& why) {
    return Status::InvalidArgument(backup_path + " is not a usable keystore backup: " + why +
                                   "; nothing was changed (use another backup, written by coffre keystore backup)");
  };
  struct stat st {};
  if (::stat(backup_path.c_str(), &st) != 0) {
    return Status::InvalidArgument(Status::FromErrno(errno, "cannot read the backup " + backup_path).message() +
                                   "; nothing was changed");
  }
  if (!S_ISREG(st.st_mode)) {
    return unusable("not a regular file");
  }
  struct stat wal {};
  if (::stat((backup_path + "-wal").c_str(), &wal) == 0 && wal.st_size > 0) {
    return Status::InvalidArgument(backup_path +
                                   "-wal exists beside the backup: the file alone may miss committed "
                                   "changes; nothing was changed (take the backup with coffre keystore backup, "
                                   "which writes one self-contained file)");
  }
  struct stat dir {};
  if (::stat(data_dir.c_str(), &dir) != 0 || !S_ISDIR(dir.st_mode)) {
    return Status::NotFound("no data directory " + data_dir + " (check --config and --data-dir)");
  }
  StagedRestore staged(data_dir, data_dir + "/keystore.db.restore-" + RandomId(6));
  {
    const int fd = ::open(staged.staged_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      const int err = errno;
      staged.staged_.clear();  // not ours
      return Status::FromErrno(err, "create a file in " + data_dir);
    }
    // Run as root on a data directory the service user owns, the keystore must still be the
    // service's, or the daemon could not open it.
    if (::geteuid() == 0 && ::fchown(fd, dir.st_uid, dir.st_gid) != 0) {
      const int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "give " + staged.staged_ + " the data directory's owner");
    }
    Status copied = CopyFileContents(backup_path, fd, staged.staged_);
    ::close(fd);
    COFFRE_RETURN_IF_ERROR(copied);
  }
  {
    auto db = RawDb::Open(staged.staged_, SQLITE_OPEN_READWRITE);
    if (!db.ok()) {
      return unusable(db.status().message());
    }
    if (Status integrity = IntegrityCheck(*db); !integrity.ok()) {
      return unusable(integrity.message());
    }
    if (Status keystore = CheckIsKeystore(*db); !keystore.ok()) {
      return unusable(keystore.message());
    }
    COFFRE_RETURN_IF_ERROR(db->Close());
  }
  {
    // An older schema is brought up to date here, as the daemon would at its next start; a newer
    // one is refused.
    COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn,
                            db::Connection::Open(staged.staged_, db::OpenMode::kReadWrite));
    if (Status migrated = internal::MigrateKeystoreSchema(*conn); !migrated.ok()) {
      return unusable(migrated.message());
    }
    COFFRE_ASSIGN_OR_RETURN(db::Statement newest, conn->Prepare("SELECT coalesce(max(at), 0) FROM key_events"));
    COFFRE_ASSIGN_OR_RETURN(bool row, newest.Step());
    staged.newest_event_ = row ? newest.ColumnInt64(0) : 0;
  }
  return staged;
}

Result<bool> StagedRestore::AdoptRootKey(const SecretBytes& root_key, const std::optional<SecretBytes>& backup_root_key,
                                         ByteView passphrase_kdf) {
  bool current_opens = false;
  bool backup_opens = false;
  {
    COFFRE_ASSIGN_OR_RETURN(RawDb db, RawDb::Open(staged_, SQLITE_OPEN_READWRITE));
    COFFRE_ASSIGN_OR_RETURN(current_opens, CheckValueOpens(db, root_key));
    if (!current_opens && backup_root_key) {
      COFFRE_ASSIGN_OR_RETURN(backup_opens, CheckValueOpens(db, *backup_root_key));
    }
    COFFRE_RETURN_IF_ERROR(db.Close());
  }
  if (current_opens) {
    return false;
  }
  if (!backup_opens) {
    return Status::PermissionDenied(backup_root_key ? "the backup opens neither with the current root key nor with "
                                                      "the backup's root key given"
                                                    : "the backup does not open with the current root key");
  }
  RootKeyRotationOptions options;
  options.passphrase_kdf = Bytes(passphrase_kdf.begin(), passphrase_kdf.end());
  COFFRE_ASSIGN_OR_RETURN(RootKeyRotationReport report, RotateRootKey(staged_, *backup_root_key, root_key, options));
  (void)report;
  return true;
}

Result<std::vector<StagedRestore::Applied>> StagedRestore::Reapply(const SecretBytes& root_key,
                                                                   const std::vector<KeyDestruction>& destructions) {
  std::set<KeyDestruction> todo(destructions.begin(), destructions.end());
  std::vector<Applied> applied;
  if (todo.empty()) {
    return applied;
  }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Keystore> keys, Keystore::Open(staged_, root_key));
  // Shreds first, then whole named keys: a version of a tenant or key destroyed anyway needs no
  // separate destruction.
  std::vector<KeyDestruction> ordered;
  for (const auto& d : todo) {
    if (d.version == 0 && d.key_id.empty()) {
      ordered.push_back(d);
    }
  }
  for (const auto& d : todo) {
    if (d.version == 0 && !d.key_id.empty()) {
      ordered.push_back(d);
    }
  }
  for (const auto& d : todo) {
    if (d.version != 0) {
      ordered.push_back(d);
    }
  }
  for (const auto& d : ordered) {
    auto tenant = keys->GetTenant(d.tenant_id);
    if (!tenant.ok()) {
      if (tenant.status().code() == StatusCode::kNotFound) {
        continue;  // created after the backup: the backup holds none of its keys
      }
      return tenant.status();
    }
    if (tenant->shredded) {
      continue;
    }
    if (d.version == 0 && d.key_id.empty()) {
      COFFRE_RETURN_IF_ERROR(keys->ShredTenant(d.tenant_id));
      applied.push_back({d, tenant->name});
      continue;
    }
    const KeyRef key = d.key_id.empty() ? KeyRef(d.tenant_id) : KeyRef(d.tenant_id, d.key_id);
    if (key.named()) {
      auto named = keys->NamedKeyById(d.key_id);
      if (!named.ok() && named.status().code() == StatusCode::kNotFound) {
        continue;  // created after the backup
      }
      COFFRE_RETURN_IF_ERROR(StatusOf(named));
      if (named->tenant_id != d.tenant_id) {
        return Status::Corruption("named key " + d.key_id + " belongs to another tenant in the backup");
      }
      if (named->destroyed) {
        continue;
      }
      if (d.version == 0) {
        COFFRE_RETURN_IF_ERROR(keys->DestroyNamedKey(key));
        applied.push_back({d, tenant->name});
        continue;
      }
    }
    COFFRE_ASSIGN_OR_RETURN(std::vector<KeyVersion> versions, keys->ListKeyVersions(key));
    const auto it =
        std::find_if(versions.begin(), versions.end(), [&](const KeyVersion& v) { return v.version == d.version; });
    if (it == versions.end()) {
      continue;
    }
    if (it->active) {
      return Status::FailedPrecondition(
          "key version " + std::to_string(d.version) + " of tenant " + tenant->name + " (" + d.tenant_id +
          ") was destroyed after this backup was taken, but the backup still has it as the active version: the "
          "backup predates that tenant's last key rotation and lacks the key version its objects now use");
    }
    COFFRE_RETURN_IF_ERROR(keys->DestroyKeyVersion(key, d.version));
    applied.push_back({d, tenant->name});
  }
  return applied;
}

Result<size_t> StagedRestore::VoidOpenApprovals(const SecretBytes& root_key, UnixMillis now) {
  // Opening it as a keystore converts a copy written before rows were authenticated, so that the
  // voided approvals below get valid MACs.
  { COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Keystore> keys, Keystore::Open(staged_, SecretBytes(root_key))); }
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<db::Connection> conn,
                          db::Connection::Open(staged_, db::OpenMode::kReadWrite));
  const internal::KeystoreKeys keys = internal::DeriveKeystoreKeys(root_key);
  COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*conn));
  std::vector<internal::ApprovalRow> open;
  {
    COFFRE_ASSIGN_OR_RETURN(db::Statement st, conn->Prepare("SELECT " + std::string(internal::kApprovalRowColumns) +
                                                            " FROM approvals WHERE used IS NULL AND expires > ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(now));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      open.push_back(internal::ReadApprovalRow(st));
    }
  }
  for (auto& r : open) {
    // A row that fails its check is voided too (and made valid as used: the harmless state).
    r.used = now;
    ++r.gen;
    COFFRE_RETURN_IF_ERROR(internal::UpdateRow(*conn, keys.row_mac, r));
  }
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return open.size();
}

Result<KeystoreContents> StagedRestore::Verify(const SecretBytes& root_key) {
  COFFRE_RETURN_IF_ERROR(CheckRowMacs(staged_, root_key));
  COFFRE_ASSIGN_OR_RETURN(RawDb db, RawDb::Open(staged_, SQLITE_OPEN_READWRITE));
  COFFRE_ASSIGN_OR_RETURN(KeystoreContents contents, ReadContents(db, root_key));
  COFFRE_RETURN_IF_ERROR(db.Close());
  return contents;
}

Result<std::vector<std::string>> StagedRestore::LiveTenantIds() {
  COFFRE_ASSIGN_OR_RETURN(RawDb db, RawDb::Open(staged_, SQLITE_OPEN_READWRITE));
  std::vector<std::string> out;
  COFFRE_RETURN_IF_ERROR(db.Query("SELECT id FROM tenants WHERE shredded IS NULL ORDER BY id", [&](sqlite3_stmt* st) {
    out.push_back(ColumnText(st, 0));
    return Status::Ok();
  }));
  COFFRE_RETURN_IF_ERROR(db.Close());
  return out;
}

Result<StagedRestore::Installed> StagedRestore::Install(UnixMillis now) {
  if (staged_.empty()) {
    return Status::FailedPrecondition("nothing staged to install");
  }
  COFFRE_RETURN_IF_ERROR(MakeSelfContained(staged_));
  {
    COFFRE_ASSIGN_OR_RETURN(RawDb db, RawDb::Open(staged_, SQLITE_OPEN_READONLY));
    if (Status integrity = IntegrityCheck(db); !integrity.ok()) {
      return Status::Corruption("the restored copy failed its last check (" + integrity.message() +
                                "); nothing was installed");
    }
    COFFRE_RETURN_IF_ERROR(db.Close());
  }

  // The keystore being replaced: its last committed changes are moved into the main file first
  // (best effort: a damaged keystore may not open, and its files are kept as they are anyway).
  if (Exists(keystore_)) {
    auto current = RawDb::Open(keystore_, SQLITE_OPEN_READWRITE);
    if (current.ok()) {
      (void)current->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
      (void)current->Close();
    }
  }
  // keystore.db.replaced-<time>, and the same name with -wal, -shm, -journal: SQLite finds a
  // moved-aside database's WAL under its new name, so the set still opens as it was.
  std::string aside;
  for (int attempt = 0;; ++attempt) {
    aside = keystore_ + ".replaced-" + CompactUtc(now) + (attempt == 0 ? "" : "-" + std::to_string(attempt));
    bool taken = Exists(aside);
    for (std::string_view ext : kSidecars) {
      taken = taken || Exists(aside + std::string(ext));
    }
    if (!taken) {
      break;
    }
  }
  // The sidecars go first: a WAL or journal left beside keystore.db would be replayed into the
  // restored file, which it does not belong to.
  std::vector<std::pair<std::string, std::string>> moves;
  for (std::string_view ext :
       {std::string_view("-wal"), std::string_view("-journal"), std::string_view("-shm"), std::string_view("")}) {
    if (Exists(keystore_ + std::string(ext))) {
      moves.emplace_back(keystore_ + std::string(ext), aside + std::string(ext));
    }
  }
  Installed out;
  std::vector<std::pair<std::string, std::string>> done;
  const auto undo = [&] {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      (void)RenameNoReplace(it->second, it->first);
    }
    (void)FsyncPath(data_dir_, /*directory=*/true);
  };
  for (const auto& [from, to] : moves) {
    if (Status moved = RenameNoReplace(from, to); !moved.ok()) {
      undo();
      return Status(moved.code(),
                    "cannot move the current keystore aside: " + moved.message() + "; nothing was installed");
    }
    done.emplace_back(from, to);
    out.moved_aside.push_back(to);
  }
  if (Status renamed = RenameNoReplace(staged_, keystore_); !renamed.ok()) {
    undo();
    return Status(renamed.code(),
                  "cannot install the restored keystore: " + renamed.message() + "; the current keystore was put back");
  }
  staged_.clear();
  COFFRE_RETURN_IF_ERROR(FsyncPath(data_dir_, /*directory=*/true));
  return out;
}

}  // namespace coffre::keystore
