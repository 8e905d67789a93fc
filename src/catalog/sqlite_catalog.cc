// The catalog on SQLite: one writer connection behind a mutex, a small pool of reader
// connections (WAL lets them read a committed snapshot while a write is in progress).
//
// Object writes (PUT, DELETE, parts, Complete, Abort) share transactions (group commit): each
// commit costs an fsync of the WAL, and one writer doing one fsync per object caps the whole
// gateway near the disk's fsync rate. Writers that arrive while a transaction is being made
// durable queue up; the next of them commits the whole queue in one transaction, each write in a
// savepoint of its own so that one write's failure (a condition, a missing upload) undoes only
// that write. No caller returns before the transaction holding its write is durable.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "catalog/attributes.h"
#include "catalog/listing.h"
#include "coffre/catalog/catalog.h"
#include "coffre/db/sqlite.h"

namespace coffre::catalog {
namespace {

using db::Connection;
using db::Statement;
using db::Transaction;

// Schema migrations; index i takes user_version i to i + 1. Never edit a released step: add one.
//
// Keys are TEXT under the BINARY collation and always bound as text with an explicit length, so
// any bytes round-trip and order is bytewise (S3's UTF-8 binary order). objects and
// object_parts are WITHOUT ROWID tables clustered on (bucket_id, key): a listing is a range scan
// of the primary key, reading rows in the order it returns them.
//
// object_parts rows belong to the object row with the same (bucket_id, key): replacing or
// deleting an object removes its parts in the same transaction (explicitly, and by the cascade
// as a safety net), after their blob ids were sent to garbage.
constexpr std::string_view kMigrations[] = {
    R"sql(
CREATE TABLE buckets(
  id INTEGER PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  name TEXT NOT NULL UNIQUE,
  created INTEGER NOT NULL
);
CREATE INDEX buckets_by_tenant ON buckets(tenant_id, name);

CREATE TABLE objects(
  bucket_id INTEGER NOT NULL REFERENCES buckets(id),
  key TEXT NOT NULL COLLATE BINARY,
  object_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  attributes TEXT NOT NULL,
  tenant_key_id BLOB NOT NULL,
  key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL,
  PRIMARY KEY(bucket_id, key)
) WITHOUT ROWID;

CREATE TABLE object_parts(
  bucket_id INTEGER NOT NULL,
  key TEXT NOT NULL COLLATE BINARY,
  part_number INTEGER NOT NULL CHECK(part_number BETWEEN 0 AND 10000),
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  attributes TEXT NOT NULL,
  PRIMARY KEY(bucket_id, key, part_number),
  FOREIGN KEY(bucket_id, key) REFERENCES objects(bucket_id, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX object_parts_by_blob ON object_parts(blob_id);

CREATE TABLE uploads(
  upload_id TEXT NOT NULL PRIMARY KEY,
  bucket_id INTEGER NOT NULL REFERENCES buckets(id),
  key TEXT NOT NULL COLLATE BINARY,
  initiated INTEGER NOT NULL,
  attributes TEXT NOT NULL,
  tenant_key_id BLOB NOT NULL,
  key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_by_key ON uploads(bucket_id, key, initiated, upload_id);

CREATE TABLE upload_parts(
  upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
  part_number INTEGER NOT NULL CHECK(part_number BETWEEN 1 AND 10000),
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  attributes TEXT NOT NULL,
  PRIMARY KEY(upload_id, part_number)
) WITHOUT ROWID;
CREATE INDEX upload_parts_by_blob ON upload_parts(blob_id);

CREATE TABLE garbage(
  blob_id TEXT NOT NULL PRIMARY KEY,
  since INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX garbage_by_since ON garbage(since, blob_id);
)sql",
    // Key lifecycle: rewrap walks one key version's rows in order; key lists count them.
    R"sql(
CREATE INDEX objects_by_key_version ON objects(tenant_key_id, key_version, bucket_id, key);
CREATE INDEX uploads_by_key_version ON uploads(tenant_key_id, key_version, upload_id);
)sql",
    // Bucket identity. A request resolves its bucket once and may outlive it, so an id must never
    // name a second bucket: ids come from bucket_ids.last, which only grows (a rowid alias hands
    // out max(id) + 1, the id of the bucket deleted last). Object and upload rows carry their
    // tenant, so each write checks the bucket's owner as well as its id.
    R"sql(
CREATE TABLE bucket_ids(last INTEGER NOT NULL);
INSERT INTO bucket_ids(last) SELECT COALESCE(MAX(id), 0) FROM buckets;
ALTER TABLE objects ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';
UPDATE objects SET tenant_id = (SELECT tenant_id FROM buckets WHERE buckets.id = objects.bucket_id)
  WHERE EXISTS(SELECT 1 FROM buckets WHERE buckets.id = objects.bucket_id);
ALTER TABLE uploads ADD COLUMN tenant_id TEXT NOT NULL DEFAULT '';
UPDATE uploads SET tenant_id = (SELECT tenant_id FROM buckets WHERE buckets.id = uploads.bucket_id)
  WHERE EXISTS(SELECT 1 FROM buckets WHERE buckets.id = uploads.bucket_id);
)sql",
    // A completed multipart upload's manifest: the blob that describes the object and names its
    // parts, so that the store alone can tell which parts make which object (docs/FORMAT.md).
    R"sql(
ALTER TABLE objects ADD COLUMN manifest_blob_id TEXT NOT NULL DEFAULT '';
CREATE INDEX objects_by_manifest ON objects(manifest_blob_id) WHERE manifest_blob_id != '';
)sql",
    // Key-copies blobs: the data keys of the blobs a rewrap moved, under the new version, so that
    // a rebuild opens those blobs once their own header's version is destroyed. Kept while that
    // version exists.
    R"sql(
CREATE TABLE key_copy_blobs(
  blob_id TEXT NOT NULL PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  key_version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX key_copy_blobs_by_version ON key_copy_blobs(tenant_id, key_version);
)sql",
    // Tags. An object's tags are given at write time (sealed in its own description) or changed
    // later, each change sealed in an attributes-update blob the row names, so that a rebuild
    // finds the newest set; '' is the empty set. A multipart upload keeps its tags until Complete.
    // A bucket's tags live here alone.
    R"sql(
ALTER TABLE objects ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE objects ADD COLUMN update_blob_id TEXT NOT NULL DEFAULT '';
CREATE INDEX objects_by_update ON objects(update_blob_id) WHERE update_blob_id != '';
ALTER TABLE uploads ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE buckets ADD COLUMN tags TEXT NOT NULL DEFAULT '';
)sql",
    // A bucket's settings (its S3 configurations: default encryption, ...), name -> value in the
    // attributes' text form; '' when it has none. They live here alone, as its tags do.
    R"sql(
ALTER TABLE buckets ADD COLUMN settings TEXT NOT NULL DEFAULT '';
)sql",
    // Versions. `objects` keeps each key's current object, so that reads and listings of current
    // objects are what they were; noncurrent versions and delete markers live in object_versions
    // (with their parts in version_parts), ordered per key by version_order, larger = newer. Rows
    // written before versioning are null versions.
    R"sql(
ALTER TABLE objects ADD COLUMN null_version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE object_versions(
  bucket_id INTEGER NOT NULL REFERENCES buckets(id),
  key TEXT NOT NULL COLLATE BINARY,
  version_order INTEGER NOT NULL,
  object_id TEXT NOT NULL,
  null_version INTEGER NOT NULL,
  delete_marker INTEGER NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  attributes TEXT NOT NULL,
  tenant_key_id BLOB NOT NULL,
  key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL,
  tenant_id TEXT NOT NULL,
  manifest_blob_id TEXT NOT NULL,
  tags TEXT NOT NULL,
  update_blob_id TEXT NOT NULL,
  PRIMARY KEY(bucket_id, key, version_order DESC)
) WITHOUT ROWID;
CREATE INDEX object_versions_by_id ON object_versions(bucket_id, key, object_id);
CREATE INDEX object_versions_by_key_version
  ON object_versions(tenant_key_id, key_version, bucket_id, key, version_order);
CREATE INDEX object_versions_by_manifest ON object_versions(manifest_blob_id) WHERE manifest_blob_id != '';
CREATE INDEX object_versions_by_update ON object_versions(update_blob_id) WHERE update_blob_id != '';

CREATE TABLE version_parts(
  bucket_id INTEGER NOT NULL,
  key TEXT NOT NULL COLLATE BINARY,
  version_order INTEGER NOT NULL,
  part_number INTEGER NOT NULL CHECK(part_number BETWEEN 0 AND 10000),
  blob_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  etag TEXT NOT NULL,
  attributes TEXT NOT NULL,
  PRIMARY KEY(bucket_id, key, version_order, part_number),
  FOREIGN KEY(bucket_id, key, version_order) REFERENCES object_versions(bucket_id, key, version_order)
    ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX version_parts_by_blob ON version_parts(blob_id);
)sql",
    // Object Lock: a version's retention and legal hold (and an upload's, for the object it
    // completes), name -> value in the attributes' text form; '' when it has none. Only the
    // versions that have one are indexed, for the check before a tenant is shredded.
    R"sql(
ALTER TABLE objects ADD COLUMN object_lock TEXT NOT NULL DEFAULT '';
ALTER TABLE object_versions ADD COLUMN object_lock TEXT NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN object_lock TEXT NOT NULL DEFAULT '';
CREATE INDEX objects_locked ON objects(tenant_id) WHERE object_lock != '';
CREATE INDEX object_versions_locked ON object_versions(tenant_id) WHERE object_lock != '';
)sql",
};

constexpr size_t kMaxReaders = 4;
constexpr uint32_t kMaxPartNumber = 10000;

constexpr std::string_view kObjectColumns =
    "key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version, wrapped_key, tenant_id, "
    "manifest_blob_id, tags, update_blob_id, null_version, object_lock";
// object_versions rows: kObjectColumns, then these.
constexpr std::string_view kVersionColumns =
    "key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version, wrapped_key, tenant_id, "
    "manifest_blob_id, tags, update_blob_id, null_version, object_lock, delete_marker, version_order";
constexpr std::string_view kUploadColumns =
    "key, upload_id, bucket_id, initiated, attributes, tenant_key_id, key_version, wrapped_key, tenant_id, tags, "
    "object_lock";

// Listing scans: one for an exclusive bound, one for an inclusive one. No LIMIT: rows are
// produced lazily along the index, and a scan is abandoned as soon as the page is full.
constexpr std::string_view kScanObjectsAfter =
    "SELECT key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version, wrapped_key, "
    "tenant_id FROM objects WHERE bucket_id = ?1 AND key > ?2 ORDER BY key";
constexpr std::string_view kScanObjectsFrom =
    "SELECT key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version, wrapped_key, "
    "tenant_id FROM objects WHERE bucket_id = ?1 AND key >= ?2 ORDER BY key";
constexpr std::string_view kScanUploadsAfter =
    "SELECT key, upload_id, bucket_id, initiated, attributes, tenant_key_id, key_version, wrapped_key, "
    "tenant_id FROM uploads WHERE bucket_id = ?1 AND key > ?2 ORDER BY key, initiated, upload_id";
constexpr std::string_view kScanUploadsFrom =
    "SELECT key, upload_id, bucket_id, initiated, attributes, tenant_key_id, key_version, wrapped_key, "
    "tenant_id FROM uploads WHERE bucket_id = ?1 AND key >= ?2 ORDER BY key, initiated, upload_id";

UnixMillis NowMillis(const Clock& clock) { return ToUnixMillis(clock.Now()); }

// A tag set in its column: '' for the empty set (every row written before tags existed), else the
// attributes' text form.
std::string EncodeTags(const Tags& tags) { return tags.empty() ? std::string() : EncodeAttributes(tags); }
Result<Tags> DecodeTags(std::string_view text) {
  if (text.empty()) return Tags{};
  return DecodeAttributes(text);
}

// Steps a bound statement to its end, appending its first column (text) of each row to `out`.
Status AppendFirstColumn(Statement& st, std::vector<std::string>& out) {
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Ok();
    out.push_back(st.ColumnText(0));
  }
}

Status ValidateKey(std::string_view key) {
  if (key.empty()) {
    return Status::InvalidArgument("catalog: empty object key");
  }
  if (key.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument("catalog: object key contains a NUL byte");
  }
  return Status::Ok();
}

Result<Bucket> ReadBucket(const Statement& st) {
  Bucket b;
  b.id = st.ColumnInt64(0);
  b.tenant_id = st.ColumnText(1);
  b.name = st.ColumnText(2);
  b.created = st.ColumnInt64(3);
  COFFRE_ASSIGN_OR_RETURN(b.settings, DecodeTags(st.ColumnTextView(4)));  // the same text form, '' for none
  return b;
}

// Reads the tenant key id, its version and the wrapped data key, which objects and uploads store
// as three consecutive columns starting at `first`.
KeyInfo ReadKeyInfo(const Statement& st, int first) {
  KeyInfo info;
  info.tenant_key_id = st.ColumnBlob(first);
  info.tenant_key_version = static_cast<uint32_t>(st.ColumnInt64(first + 1));
  info.wrapped_data_key = st.ColumnBlob(first + 2);
  return info;
}

// Reads a row selected with kObjectColumns (without parts).
Result<ObjectRecord> ReadObject(const Statement& st, int64_t bucket_id) {
  ObjectRecord rec;
  rec.bucket_id = bucket_id;
  rec.key = st.ColumnText(0);
  rec.object_id = st.ColumnText(1);
  rec.size = static_cast<uint64_t>(st.ColumnInt64(2));
  rec.etag = st.ColumnText(3);
  rec.last_modified = st.ColumnInt64(4);
  COFFRE_ASSIGN_OR_RETURN(rec.attributes, DecodeAttributes(st.ColumnTextView(5)));
  rec.key_info = ReadKeyInfo(st, 6);
  rec.tenant_id = st.ColumnText(9);
  rec.manifest_blob_id = st.ColumnText(10);
  // Listings select none of the columns from here: they read as empty.
  COFFRE_ASSIGN_OR_RETURN(rec.tags, DecodeTags(st.ColumnTextView(11)));
  rec.update_blob_id = st.ColumnText(12);
  rec.null_version = st.ColumnCount() <= 13 || st.ColumnInt64(13) != 0;
  if (st.ColumnCount() > 14) {
    COFFRE_ASSIGN_OR_RETURN(rec.lock, DecodeObjectLock(st.ColumnTextView(14)));
  }
  return rec;
}

// Reads a row selected with kVersionColumns (without parts); its version_order into *order.
Result<ObjectRecord> ReadVersion(const Statement& st, int64_t bucket_id, int64_t* order) {
  COFFRE_ASSIGN_OR_RETURN(ObjectRecord rec, ReadObject(st, bucket_id));
  rec.delete_marker = st.ColumnInt64(15) != 0;
  if (order != nullptr) *order = st.ColumnInt64(16);
  return rec;
}

// Reads a row selected with kUploadColumns.
Result<UploadRecord> ReadUpload(const Statement& st) {
  UploadRecord rec;
  rec.key = st.ColumnText(0);
  rec.upload_id = st.ColumnText(1);
  rec.bucket_id = st.ColumnInt64(2);
  rec.initiated = st.ColumnInt64(3);
  COFFRE_ASSIGN_OR_RETURN(rec.attributes, DecodeAttributes(st.ColumnTextView(4)));
  rec.key_info = ReadKeyInfo(st, 5);
  rec.tenant_id = st.ColumnText(8);
  COFFRE_ASSIGN_OR_RETURN(rec.tags, DecodeTags(st.ColumnTextView(9)));
  if (st.ColumnCount() > 10) {
    COFFRE_ASSIGN_OR_RETURN(rec.lock, DecodeObjectLock(st.ColumnTextView(10)));
  }
  return rec;
}

Result<PartRecord> ReadPart(const Statement& st) {
  PartRecord p;
  p.part_number = static_cast<uint32_t>(st.ColumnInt64(0));
  p.blob_id = st.ColumnText(1);
  p.size = static_cast<uint64_t>(st.ColumnInt64(2));
  p.etag = st.ColumnText(3);
  p.last_modified = st.ColumnInt64(4);
  COFFRE_ASSIGN_OR_RETURN(p.attributes, DecodeAttributes(st.ColumnTextView(5)));
  return p;
}

// Steps a bound statement that selects part_number, blob_id, size, etag, attributes to its end,
// appending each row to `parts`.
Status AppendObjectParts(Statement& st, std::vector<ObjectPart>& parts) {
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Ok();
    ObjectPart p;
    p.part_number = static_cast<uint32_t>(st.ColumnInt64(0));
    p.blob_id = st.ColumnText(1);
    p.size = static_cast<uint64_t>(st.ColumnInt64(2));
    p.etag = st.ColumnText(3);
    COFFRE_ASSIGN_OR_RETURN(p.attributes, DecodeAttributes(st.ColumnTextView(4)));
    parts.push_back(std::move(p));
  }
}

// One version of a key as FindVersion found it (without its parts): the current object, or the
// noncurrent version `order`.
struct FoundVersion {
  ObjectRecord rec;
  bool noncurrent = false;
  int64_t order = 0;
};

// Looks up one version of the key on `conn` by version id (kNullVersionId for the null version,
// "" for the latest): the current object first, which is the latest when there is one, then the
// noncurrent versions. nullopt when the key has no such version.
Result<std::optional<FoundVersion>> FindVersion(Connection& conn, int64_t bucket_id, const std::string& key,
                                                const std::string& version_id) {
  const bool latest = version_id.empty();
  const bool null_id = version_id == kNullVersionId;
  const char* which = latest ? "" : null_id ? " AND null_version = 1" : " AND null_version = 0 AND object_id = ?3";
  for (const bool noncurrent : {false, true}) {
    std::string sql = std::string("SELECT ")
                          .append(noncurrent ? kVersionColumns : kObjectColumns)
                          .append(noncurrent ? " FROM object_versions" : " FROM objects")
                          .append(" WHERE bucket_id = ?1 AND key = ?2")
                          .append(which);
    if (noncurrent && latest) sql.append(" ORDER BY version_order DESC LIMIT 1");
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(latest || null_id ? st.BindAll(bucket_id, key) : st.BindAll(bucket_id, key, version_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) continue;
    FoundVersion found;
    found.noncurrent = noncurrent;
    if (noncurrent) {
      COFFRE_ASSIGN_OR_RETURN(found.rec, ReadVersion(st, bucket_id, &found.order));
    } else {
      COFFRE_ASSIGN_OR_RETURN(found.rec, ReadObject(st, bucket_id));
    }
    return std::optional<FoundVersion>(std::move(found));
  }
  return std::optional<FoundVersion>();
}

// Walks one bucket's keys in order from `start`, rolling keys up into common prefixes, and
// calls on_row(statement) for each key returned as itself and on_prefix(prefix) for each common
// prefix, at most `budget` entries in all. Returns true when an entry beyond the budget exists
// (the page is truncated).
template <typename OnRow, typename OnPrefix>
Result<bool> WalkGrouped(Connection& conn, std::string_view scan_after, std::string_view scan_from, int64_t bucket_id,
                         std::string_view prefix, std::string_view delimiter, std::optional<SeekBound> bound,
                         uint32_t budget, OnRow&& on_row, OnPrefix&& on_prefix) {
  uint32_t emitted = 0;
  while (bound) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn.PrepareCached(bound->inclusive ? scan_from : scan_after));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, bound->key));
    bound.reset();
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return false;
      }
      const std::string_view key = st.ColumnTextView(0);
      if (!key.starts_with(prefix)) {
        return false;  // past the prefix's range: nothing further can match
      }
      if (emitted == budget) {
        return true;
      }
      ++emitted;
      if (auto len = CommonPrefixLength(key, prefix, delimiter)) {
        std::string common(key.substr(0, *len));
        // Jump past every key under this common prefix in one seek.
        auto next = PrefixSuccessor(common);
        COFFRE_RETURN_IF_ERROR(on_prefix(std::move(common)));
        if (!next) {
          return false;
        }
        bound = SeekBound{std::move(*next), /*inclusive=*/true};
        break;
      }
      COFFRE_RETURN_IF_ERROR(on_row(st));
    }
  }
  return false;
}

// A pool of reader connections, opened on demand up to a maximum; callers beyond it wait.
class ReaderPool {
 public:
  ReaderPool(std::string path, size_t max) : path_(std::move(path)), max_(max) {}

  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (conn_ != nullptr) {
        pool_->Return(std::move(conn_));
      }
    }
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  Result<Lease> Acquire() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
      if (!idle_.empty()) {
        std::unique_ptr<Connection> conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
      ++open_;  // reserve the slot; open the file without holding the lock
    }
    auto conn = Connection::Open(path_, db::OpenMode::kQueryOnly);
    if (!conn.ok()) {
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_one();
      return conn.status();
    }
    return Lease(this, std::move(conn).value());
  }

 private:
  void Return(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(conn));
    cv_.notify_one();
  }

  const std::string path_;
  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  size_t open_ = 0;
};

// Bucket rows by name. Every request looks its bucket up, and a bucket row rarely changes: it is
// created, deleted, and its settings are changed. This process's deletions and changes drop the
// cache when they end; another process's (`coffre tenant shred` beside the daemon) are seen once
// an entry is BucketCache::kTtl old, the window in which the daemon also sees the CLI's keystore
// changes (docs/KEYS.md). Lookups that find no bucket are not cached, so a new bucket is seen at
// once.
class BucketCache {
 public:
  static constexpr std::chrono::seconds kTtl{1};

  // Whether `name` was cached less than kTtl before `now`; if so, its row in *out.
  bool Find(const std::string& name, std::chrono::system_clock::time_point now, Bucket* out) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      return false;
    }
    // A clock set back counts as expired too.
    if (now < it->second.loaded || now - it->second.loaded >= kTtl) {
      entries_.erase(it);
      return false;
    }
    *out = it->second.bucket;
    return true;
  }

  // Read before a lookup in the database and handed to Insert with its result: a deletion that
  // ended meanwhile keeps that result, which may be the deleted row, out of the cache.
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }

  // `loaded`: the time read before the lookup, so that the entry expires no later than kTtl
  // after the database said so.
  void Insert(const Bucket& bucket, uint64_t generation, std::chrono::system_clock::time_point loaded) {
    std::lock_guard lock(mu_);
    if (generation == generation_) {
      entries_.insert_or_assign(bucket.name, Entry{bucket, loaded});
    }
  }

  void Invalidate() {
    std::lock_guard lock(mu_);
    ++generation_;
    entries_.clear();
  }

 private:
  struct Entry {
    Bucket bucket;
    std::chrono::system_clock::time_point loaded;
  };
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mu_
  uint64_t generation_ = 0;                         // guarded by mu_
};

// Drops the bucket cache when a write that may delete or change buckets ends, committed or not.
// Declared before the write's transaction, so that it runs after the commit.
class InvalidateOnExit {
 public:
  explicit InvalidateOnExit(BucketCache& cache) : cache_(cache) {}
  InvalidateOnExit(const InvalidateOnExit&) = delete;
  InvalidateOnExit& operator=(const InvalidateOnExit&) = delete;
  ~InvalidateOnExit() { cache_.Invalidate(); }

 private:
  BucketCache& cache_;
};

class SqliteCatalog final : public Catalog {
 public:
  SqliteCatalog(std::unique_ptr<Connection> writer, const std::string& path, const Clock& clock)
      : clock_(clock), writer_(std::move(writer)), readers_(path, kMaxReaders) {}

  Result<Bucket> CreateBucket(const std::string& tenant_id, const std::string& name,
                              const Attributes& settings) override;
  Result<Bucket> GetBucket(const std::string& name) override;
  Result<std::vector<Bucket>> ListBuckets(const std::string& tenant_id) override;
  Result<std::vector<Bucket>> ListEveryBucket() override;
  Status DeleteBucket(const Bucket& bucket) override;
  Result<Tags> GetBucketTags(const Bucket& bucket) override;
  Status SetBucketTags(const Bucket& bucket, const Tags& tags) override;
  Result<Attributes> GetBucketSettings(const Bucket& bucket) override;
  Status UpdateBucketSettings(const Bucket& bucket, const SettingChanges& changes) override;

  Status PutObject(const ObjectRecord& rec, const WriteCondition& cond) override;
  Result<ObjectRecord> GetObject(int64_t bucket_id, const std::string& key) override;
  Result<ObjectRecord> GetObjectVersion(int64_t bucket_id, const std::string& key,
                                        const std::string& version_id) override;
  Status DeleteObject(const Bucket& bucket, const std::string& key) override;
  Status PutDeleteMarker(const ObjectRecord& marker) override;
  Result<ObjectRecord> DeleteObjectVersion(const Bucket& bucket, const std::string& key, const std::string& version_id,
                                           bool bypass_governance) override;
  Result<VersionListPage> ListObjectVersions(int64_t bucket_id, const VersionListQuery& query) override;
  Status UpdateObject(const Bucket& bucket, const std::string& key, const std::string& object_id, uint32_t key_version,
                      const std::string& replaced_update_blob_id, const ObjectUpdate& update,
                      const std::string& update_blob_id) override;
  Result<ListPage> ListObjects(int64_t bucket_id, const ListQuery& query) override;
  Result<uint64_t> CountObjects(int64_t bucket_id) override;

  Status CreateUpload(const UploadRecord& upload) override;
  Result<UploadRecord> GetUpload(const std::string& upload_id) override;
  Status PutPart(const std::string& upload_id, const PartRecord& part, uint32_t* key_version) override;
  Result<std::vector<PartRecord>> ListParts(const std::string& upload_id, uint32_t part_number_marker,
                                            uint32_t max_parts) override;
  Result<UploadListPage> ListUploads(int64_t bucket_id, const UploadListQuery& query) override;
  Status CompleteUpload(const std::string& upload_id, const ObjectRecord& object, const WriteCondition& cond,
                        uint32_t* key_version) override;
  Status AbortUpload(const std::string& upload_id) override;

  Result<std::vector<GarbageBlob>> ListGarbage(uint32_t limit) override;
  Status ForgetGarbage(const std::vector<std::string>& blob_ids) override;
  Result<bool> IsBlobReferenced(const std::string& blob_id) override;
  Result<std::vector<std::string>> ListBlobIds(BlobRefSource source, const std::string& after, uint32_t limit) override;

  Result<std::map<uint32_t, uint64_t>> CountKeyVersions(ByteView tenant_key_id) override;
  Result<std::vector<WrappedKeyRow>> ListWrappedKeys(ByteView tenant_key_id, uint32_t version, WrappedKeyCursor* cursor,
                                                     uint32_t limit) override;
  Result<uint64_t> RewrapKeys(const std::vector<KeyRewrap>& rewraps,
                              const std::vector<KeyCopyBlob>& key_copies) override;
  Status AddKeyCopyBlobs(const std::vector<KeyCopyBlob>& key_copies) override;
  Result<uint64_t> DropKeyCopyBlobs(const std::string& key_id, std::optional<uint32_t> key_version) override;
  Result<uint64_t> DeleteTenantData(const std::string& tenant_id, uint32_t max_rows) override;
  Result<std::vector<ProtectedVersion>> ListProtectedVersions(const std::string& tenant_id, UnixMillis now,
                                                              bool bypass_governance, uint32_t limit, uint64_t* total,
                                                              ByteView key_id) override;

 private:
  // PermissionDenied when Object Lock protects a version with `lock` now, by the catalog's clock.
  Status CheckRemovable(const ObjectLock& lock, bool bypass_governance) const;
  // Helpers named *Locked run on the writer inside its transaction (write_mu_ held).
  // Ok if bucket `bucket_id` exists and belongs to `tenant_id`; else `missing` as a Status.
  Status CheckBucketLocked(int64_t bucket_id, std::string_view tenant_id, StatusCode missing);
  // Applies `cond` to the current object, then makes `rec` (an object, or a delete marker) the
  // key's latest version, the others kept or replaced as catalog.h's "Versions" says; the
  // replaced versions' blob ids are appended to `unlinked`.
  Status ReplaceObjectLocked(const ObjectRecord& rec, const WriteCondition& cond, std::vector<std::string>* unlinked);
  // Removes the current object and its part rows; appends its blob ids to `unlinked`. NotFound if
  // absent.
  Status RemoveObjectLocked(int64_t bucket_id, std::string_view key, std::vector<std::string>* unlinked);
  // Removes the noncurrent version `order` of the key and its part rows; appends its blob ids to
  // `unlinked`.
  Status RemoveVersionLocked(int64_t bucket_id, std::string_view key, int64_t order,
                             std::vector<std::string>* unlinked);
  // The version_order a version made noncurrent now gets: larger than any of the key's.
  Result<int64_t> NextVersionOrderLocked(int64_t bucket_id, std::string_view key);
  // Moves the current object, with its parts, among the noncurrent versions, as the newest.
  Status MakeNoncurrentLocked(int64_t bucket_id, std::string_view key);
  // When the key has no current object and its newest version is not a delete marker, moves that
  // version back as the current object.
  Status PromoteNewestLocked(int64_t bucket_id, std::string_view key);
  // Removes the upload and its part rows; appends the parts' blob ids to `unlinked`.
  Status RemoveUploadLocked(std::string_view upload_id, std::vector<std::string>* unlinked);
  // Records as garbage those of `unlinked` that nothing references any more (a blob may be
  // carried over to the new version of an object, e.g. a completed upload's parts).
  Status RecordGarbageLocked(const std::vector<std::string>& unlinked);
  Result<bool> IsReferenced(Connection& conn, std::string_view blob_id);
  Status AddKeyCopyBlobsLocked(const std::vector<KeyCopyBlob>& key_copies);
  Result<uint64_t> DropKeyCopyBlobsLocked(const std::string& tenant_id, std::optional<uint32_t> key_version);

  // Runs `work` (which uses the *Locked helpers, never its own transaction) in a transaction
  // shared with the writes queued meanwhile, and returns once that transaction is durable: work's
  // own error, or the commit's error if the transaction failed as a whole.
  Status WriteGrouped(const std::function<Status()>& work);
  // Shared with the leader that commits it, which wakes it after letting go of group_mu_: the
  // writer may have returned by then, and its condition variable must still be there.
  struct GroupedWrite {
    const std::function<Status()>* work;
    Status result;
    bool done = false;             // guarded by group_mu_
    std::condition_variable wake;  // when done, or when it is to lead the next group
  };
  using Group = std::vector<std::shared_ptr<GroupedWrite>>;
  void CommitGroup(const Group& group);

  const Clock& clock_;
  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  ReaderPool readers_;
  BucketCache bucket_cache_;

  std::mutex group_mu_;
  Group group_queue_;          // guarded by group_mu_
  bool group_leader_ = false;  // a thread is committing a group; guarded by group_mu_
};

Status SqliteCatalog::WriteGrouped(const std::function<Status()>& work) {
  auto me = std::make_shared<GroupedWrite>();
  me->work = &work;
  std::unique_lock lock(group_mu_);
  group_queue_.push_back(me);
  // Each writer is woken once: when its group is committed, or to lead the next one. One
  // condition variable for all would wake every queued writer at each commit, only for most of
  // them to sleep again (and to contend for group_mu_ on the way).
  while (group_leader_ && !me->done) {
    me->wake.wait(lock);
  }
  if (me->done) {
    return me->result;
  }
  // No group in flight: this thread commits everything queued so far, itself included.
  group_leader_ = true;
  Group group;
  group.swap(group_queue_);
  lock.unlock();
  CommitGroup(group);
  lock.lock();
  for (const auto& w : group) {
    w->done = true;
  }
  group_leader_ = false;
  // Writes queued meanwhile: the first of them leads the next group (unless a newcomer does first).
  std::shared_ptr<GroupedWrite> next = group_queue_.empty() ? nullptr : group_queue_.front();
  lock.unlock();
  for (const auto& w : group) {
    if (w != me) {
      w->wake.notify_one();
    }
  }
  if (next) {
    next->wake.notify_one();
  }
  return me->result;
}

void SqliteCatalog::CommitGroup(const Group& group) {
  std::lock_guard lock(write_mu_);
  auto tx = Transaction::Begin(*writer_);
  if (!tx.ok()) {
    for (const auto& w : group) {
      w->result = tx.status();
    }
    return;
  }
  // Some errors (SQLITE_FULL, I/O errors) make SQLite roll the whole transaction back: then the
  // writes already applied in it are gone too, and none may report success.
  Status aborted = Status::Ok();
  for (const auto& w : group) {
    if (!aborted.ok()) {
      w->result = aborted;
      continue;
    }
    if (Status st = writer_->Exec("SAVEPOINT grouped_write"); !st.ok()) {
      w->result = st;
      if (!writer_->InTransaction()) {
        aborted = st;
      }
      continue;
    }
    w->result = (*w->work)();
    if (!writer_->InTransaction()) {
      aborted = w->result.ok() ? Status::IOError("catalog: the write transaction was rolled back") : w->result;
      continue;
    }
    if (!w->result.ok()) {
      if (Status st = writer_->Exec("ROLLBACK TO grouped_write"); !st.ok()) {
        aborted = st;
        continue;
      }
    }
    if (Status st = writer_->Exec("RELEASE grouped_write"); !st.ok()) {
      aborted = st;
    }
  }
  Status committed = aborted.ok() ? tx->Commit() : aborted;
  if (!committed.ok()) {
    for (const auto& w : group) {
      if (w->result.ok()) {
        w->result = committed;
      }
    }
  }
}

// --- buckets -----------------------------------------------------------------------------

Result<Bucket> SqliteCatalog::CreateBucket(const std::string& tenant_id, const std::string& name,
                                           const Attributes& settings) {
  if (name.empty()) {
    return Status::InvalidArgument("catalog: empty bucket name");
  }
  Bucket b;
  b.tenant_id = tenant_id;
  b.name = name;
  b.created = NowMillis(clock_);
  b.settings = settings;
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("UPDATE bucket_ids SET last = last + 1 RETURNING last"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::Corruption("catalog: the bucket id counter is missing");
    }
    b.id = st.ColumnInt64(0);
  }
  {
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        writer_->PrepareCached("INSERT INTO buckets(id, tenant_id, name, created, settings) VALUES(?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(b.id, tenant_id, name, b.created, EncodeTags(settings)));
    Status s = st.Run();
    if (s.code() == StatusCode::kAlreadyExists) {
      return Status::AlreadyExists("catalog: bucket " + name + " already exists");
    }
    COFFRE_RETURN_IF_ERROR(s);
  }
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  // The name now names this row, even where the cache still holds one another process deleted.
  // This process's deletions hold write_mu_ too, so none comes between the insert and this.
  bucket_cache_.Insert(b, bucket_cache_.generation(), clock_.Now());
  return b;
}

Result<Bucket> SqliteCatalog::GetBucket(const std::string& name) {
  const auto now = clock_.Now();
  Bucket bucket;
  if (bucket_cache_.Find(name, now, &bucket)) {
    return bucket;
  }
  const uint64_t generation = bucket_cache_.generation();
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(
      Statement st, conn->PrepareCached("SELECT id, tenant_id, name, created, settings FROM buckets WHERE name = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(name));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("catalog: no bucket named " + name);
  }
  COFFRE_ASSIGN_OR_RETURN(bucket, ReadBucket(st));
  bucket_cache_.Insert(bucket, generation, now);
  return bucket;
}

Result<std::vector<Bucket>> SqliteCatalog::ListBuckets(const std::string& tenant_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(
      Statement st,
      conn->PrepareCached(
          "SELECT id, tenant_id, name, created, settings FROM buckets WHERE tenant_id = ? ORDER BY name"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
  std::vector<Bucket> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    COFFRE_ASSIGN_OR_RETURN(Bucket b, ReadBucket(st));
    out.push_back(std::move(b));
  }
  return out;
}

Result<std::vector<Bucket>> SqliteCatalog::ListEveryBucket() {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(
      Statement st, conn->PrepareCached("SELECT id, tenant_id, name, created, settings FROM buckets ORDER BY id"));
  std::vector<Bucket> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(Bucket b, ReadBucket(st));
    out.push_back(std::move(b));
  }
  return out;
}

Status SqliteCatalog::DeleteBucket(const Bucket& bucket) {
  const int64_t bucket_id = bucket.id;
  std::lock_guard lock(write_mu_);
  InvalidateOnExit invalidate(bucket_cache_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_RETURN_IF_ERROR(CheckBucketLocked(bucket_id, bucket.tenant_id, StatusCode::kNotFound));
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT EXISTS(SELECT 1 FROM objects WHERE bucket_id = ?1) OR "
                                                   "EXISTS(SELECT 1 FROM object_versions WHERE bucket_id = ?1)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row && st.ColumnInt64(0) != 0) {
      return Status::FailedPrecondition("catalog: bucket is not empty");
    }
  }
  std::vector<std::string> upload_ids;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT upload_id FROM uploads WHERE bucket_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, upload_ids));
  }
  std::vector<std::string> unlinked;
  for (const auto& id : upload_ids) {
    COFFRE_RETURN_IF_ERROR(RemoveUploadLocked(id, &unlinked));
  }
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM buckets WHERE id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_RETURN_IF_ERROR(RecordGarbageLocked(unlinked));
  return tx.Commit();
}

Result<Tags> SqliteCatalog::GetBucketTags(const Bucket& bucket) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached("SELECT tags FROM buckets WHERE id = ? AND tenant_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket.id, bucket.tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("catalog: no bucket with id " + std::to_string(bucket.id) + " of this tenant");
  return DecodeTags(st.ColumnTextView(0));
}

Result<Attributes> SqliteCatalog::GetBucketSettings(const Bucket& bucket) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn->PrepareCached("SELECT settings FROM buckets WHERE id = ? AND tenant_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket.id, bucket.tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Status::NotFound("catalog: no bucket with id " + std::to_string(bucket.id) + " of this tenant");
  return DecodeTags(st.ColumnTextView(0));  // the same text form, '' for none
}

Status SqliteCatalog::UpdateBucketSettings(const Bucket& bucket, const SettingChanges& changes) {
  std::lock_guard lock(write_mu_);
  InvalidateOnExit invalidate(bucket_cache_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  Attributes settings;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT settings FROM buckets WHERE id = ? AND tenant_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket.id, bucket.tenant_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::NotFound("catalog: no bucket with id " + std::to_string(bucket.id) + " of this tenant");
    COFFRE_ASSIGN_OR_RETURN(settings, DecodeTags(st.ColumnTextView(0)));
  }
  for (const auto& [name, value] : changes) {
    if (value) {
      settings[name] = *value;
    } else {
      settings.erase(name);
    }
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          writer_->PrepareCached("UPDATE buckets SET settings = ? WHERE id = ? AND tenant_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(EncodeTags(settings), bucket.id, bucket.tenant_id));
  COFFRE_RETURN_IF_ERROR(st.Run());
  return tx.Commit();
}

Status SqliteCatalog::SetBucketTags(const Bucket& bucket, const Tags& tags) {
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          writer_->PrepareCached("UPDATE buckets SET tags = ? WHERE id = ? AND tenant_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(EncodeTags(tags), bucket.id, bucket.tenant_id));
  COFFRE_RETURN_IF_ERROR(st.Run());
  if (writer_->Changes() == 0) {
    return Status::NotFound("catalog: no bucket with id " + std::to_string(bucket.id) + " of this tenant");
  }
  return tx.Commit();
}

// --- objects -----------------------------------------------------------------------------

Status SqliteCatalog::CheckBucketLocked(int64_t bucket_id, std::string_view tenant_id, StatusCode missing) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT 1 FROM buckets WHERE id = ? AND tenant_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, tenant_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status(missing, "catalog: no bucket with id " + std::to_string(bucket_id) + " of this tenant");
  }
  return Status::Ok();
}

Status SqliteCatalog::RemoveObjectLocked(int64_t bucket_id, std::string_view key, std::vector<std::string>* unlinked) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT manifest_blob_id, update_blob_id FROM objects "
                                                                 "WHERE bucket_id = ? AND key = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    for (int col = 0; row && col < 2; ++col) {
      if (std::string id = st.ColumnText(col); !id.empty()) unlinked->push_back(std::move(id));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT blob_id FROM object_parts WHERE bucket_id = ? AND key = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, *unlinked));
  }
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("DELETE FROM object_parts WHERE bucket_id = ? AND key = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM objects WHERE bucket_id = ? AND key = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
  COFFRE_RETURN_IF_ERROR(st.Run());
  if (writer_->Changes() == 0) {
    return Status::NotFound("catalog: no such object");
  }
  return Status::Ok();
}

Status SqliteCatalog::ReplaceObjectLocked(const ObjectRecord& rec, const WriteCondition& cond,
                                          std::vector<std::string>* unlinked) {
  COFFRE_RETURN_IF_ERROR(ValidateKey(rec.key));
  std::set<uint32_t> numbers;
  for (const auto& p : rec.parts) {
    if (p.part_number > kMaxPartNumber || !numbers.insert(p.part_number).second) {
      return Status::InvalidArgument("catalog: invalid or repeated part number " + std::to_string(p.part_number));
    }
  }
  if (rec.delete_marker && (!rec.parts.empty() || !rec.update_blob_id.empty())) {
    return Status::InvalidArgument("catalog: a delete marker has no data");
  }
  COFFRE_RETURN_IF_ERROR(CheckBucketLocked(rec.bucket_id, rec.tenant_id, StatusCode::kAborted));

  std::optional<std::string> current_etag;
  bool current_is_null = false;
  ObjectLock current_lock;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT etag, null_version, object_lock FROM objects "
                                                                 "WHERE bucket_id = ? AND key = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(rec.bucket_id, rec.key));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) {
      current_etag = st.ColumnText(0);
      current_is_null = st.ColumnInt64(1) != 0;
      COFFRE_ASSIGN_OR_RETURN(current_lock, DecodeObjectLock(st.ColumnTextView(2)));
    }
  }
  // Conditions are evaluated here, under the write lock, so no other write can slip between
  // the check and the replacement.
  if (cond.if_none_match_any && current_etag) {
    return Status::FailedPrecondition("catalog: object exists (If-None-Match: *)");
  }
  if (cond.if_match_etag) {
    if (!current_etag) {
      return Status::NotFound("catalog: no such object (If-Match)");
    }
    if (*cond.if_match_etag != "*" && *cond.if_match_etag != *current_etag) {
      return Status::FailedPrecondition("catalog: object etag does not match (If-Match)");
    }
  }
  if (current_etag && rec.null_version && current_is_null) {
    COFFRE_RETURN_IF_ERROR(CheckRemovable(current_lock, false));
    COFFRE_RETURN_IF_ERROR(RemoveObjectLocked(rec.bucket_id, rec.key, unlinked));
  } else {
    if (current_etag) {
      COFFRE_RETURN_IF_ERROR(MakeNoncurrentLocked(rec.bucket_id, rec.key));
    }
    if (rec.null_version) {
      // The key's null version, if any, is a noncurrent one: the new null version replaces it.
      std::optional<int64_t> order;
      {
        COFFRE_ASSIGN_OR_RETURN(Statement st,
                                writer_->PrepareCached("SELECT version_order, object_lock FROM object_versions WHERE "
                                                       "bucket_id = ? AND key = ? AND null_version = 1"));
        COFFRE_RETURN_IF_ERROR(st.BindAll(rec.bucket_id, rec.key));
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (row) {
          order = st.ColumnInt64(0);
          COFFRE_ASSIGN_OR_RETURN(ObjectLock lock, DecodeObjectLock(st.ColumnTextView(1)));
          COFFRE_RETURN_IF_ERROR(CheckRemovable(lock, false));
        }
      }
      if (order) COFFRE_RETURN_IF_ERROR(RemoveVersionLocked(rec.bucket_id, rec.key, *order, unlinked));
    }
  }
  if (rec.delete_marker) {
    COFFRE_ASSIGN_OR_RETURN(int64_t order, NextVersionOrderLocked(rec.bucket_id, rec.key));
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        writer_->PrepareCached("INSERT INTO object_versions(bucket_id, key, version_order, object_id, null_version, "
                               "delete_marker, size, etag, last_modified, attributes, tenant_key_id, key_version, "
                               "wrapped_key, tenant_id, manifest_blob_id, tags, update_blob_id) "
                               "VALUES(?, ?, ?, ?, ?, 1, 0, '', ?, '{}', ?, ?, ?, ?, ?, '', '')"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(rec.bucket_id, rec.key, order, rec.object_id, rec.null_version, rec.last_modified,
                                      rec.key_info.tenant_key_id, rec.key_info.tenant_key_version,
                                      rec.key_info.wrapped_data_key, rec.tenant_id, rec.manifest_blob_id));
    return st.Run();
  }
  {
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        writer_->PrepareCached("INSERT INTO objects(bucket_id, key, object_id, size, etag, last_modified, attributes, "
                               "tenant_key_id, key_version, wrapped_key, tenant_id, manifest_blob_id, tags, "
                               "update_blob_id, null_version, object_lock) "
                               "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(rec.bucket_id, rec.key, rec.object_id, static_cast<int64_t>(rec.size), rec.etag,
                                      rec.last_modified, EncodeAttributes(rec.attributes), rec.key_info.tenant_key_id,
                                      rec.key_info.tenant_key_version, rec.key_info.wrapped_data_key, rec.tenant_id,
                                      rec.manifest_blob_id, EncodeTags(rec.tags), rec.update_blob_id, rec.null_version,
                                      EncodeObjectLock(rec.lock)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  for (const auto& p : rec.parts) {
    COFFRE_ASSIGN_OR_RETURN(
        Statement st, writer_->PrepareCached("INSERT INTO object_parts(bucket_id, key, part_number, blob_id, size, "
                                             "etag, attributes) VALUES(?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(rec.bucket_id, rec.key, p.part_number, p.blob_id, static_cast<int64_t>(p.size),
                                      p.etag, EncodeAttributes(p.attributes)));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Result<int64_t> SqliteCatalog::NextVersionOrderLocked(int64_t bucket_id, std::string_view key) {
  COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT version_order FROM object_versions WHERE "
                                                               "bucket_id = ? AND key = ? ORDER BY version_order DESC "
                                                               "LIMIT 1"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnInt64(0) + 1 : int64_t{1};
}

Status SqliteCatalog::MakeNoncurrentLocked(int64_t bucket_id, std::string_view key) {
  COFFRE_ASSIGN_OR_RETURN(int64_t order, NextVersionOrderLocked(bucket_id, key));
  for (std::string_view sql : {
           "INSERT INTO object_versions(bucket_id, key, version_order, object_id, null_version, delete_marker, size, "
           "etag, last_modified, attributes, tenant_key_id, key_version, wrapped_key, tenant_id, manifest_blob_id, "
           "tags, update_blob_id, object_lock) SELECT bucket_id, key, ?3, object_id, null_version, 0, size, etag, "
           "last_modified, attributes, tenant_key_id, key_version, wrapped_key, tenant_id, manifest_blob_id, tags, "
           "update_blob_id, object_lock FROM objects WHERE bucket_id = ?1 AND key = ?2",
           "INSERT INTO version_parts(bucket_id, key, version_order, part_number, blob_id, size, etag, attributes) "
           "SELECT bucket_id, key, ?3, part_number, blob_id, size, etag, attributes FROM object_parts "
           "WHERE bucket_id = ?1 AND key = ?2",
       }) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key, order));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  for (std::string_view sql : {"DELETE FROM object_parts WHERE bucket_id = ? AND key = ?",
                               "DELETE FROM objects WHERE bucket_id = ? AND key = ?"}) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Status SqliteCatalog::PromoteNewestLocked(int64_t bucket_id, std::string_view key) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT 1 FROM objects WHERE bucket_id = ? AND key = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) return Status::Ok();
  }
  int64_t order = 0;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT version_order, delete_marker FROM object_versions WHERE "
                                                   "bucket_id = ? AND key = ? ORDER BY version_order DESC LIMIT 1"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row || st.ColumnInt64(1) != 0) return Status::Ok();
    order = st.ColumnInt64(0);
  }
  for (std::string_view sql : {
           "INSERT INTO objects(bucket_id, key, object_id, size, etag, last_modified, attributes, tenant_key_id, "
           "key_version, wrapped_key, tenant_id, manifest_blob_id, tags, update_blob_id, null_version, object_lock) "
           "SELECT bucket_id, key, object_id, size, etag, last_modified, attributes, tenant_key_id, key_version, "
           "wrapped_key, tenant_id, manifest_blob_id, tags, update_blob_id, null_version, object_lock "
           "FROM object_versions "
           "WHERE bucket_id = ?1 AND key = ?2 AND version_order = ?3",
           "INSERT INTO object_parts(bucket_id, key, part_number, blob_id, size, etag, attributes) "
           "SELECT bucket_id, key, part_number, blob_id, size, etag, attributes FROM version_parts "
           "WHERE bucket_id = ?1 AND key = ?2 AND version_order = ?3",
           "DELETE FROM version_parts WHERE bucket_id = ?1 AND key = ?2 AND version_order = ?3",
           "DELETE FROM object_versions WHERE bucket_id = ?1 AND key = ?2 AND version_order = ?3",
       }) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key, order));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Status SqliteCatalog::RemoveVersionLocked(int64_t bucket_id, std::string_view key, int64_t order,
                                          std::vector<std::string>* unlinked) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT manifest_blob_id, update_blob_id FROM object_versions "
                                                   "WHERE bucket_id = ? AND key = ? AND version_order = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key, order));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    for (int col = 0; row && col < 2; ++col) {
      if (std::string id = st.ColumnText(col); !id.empty()) unlinked->push_back(std::move(id));
    }
  }
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT blob_id FROM version_parts WHERE "
                                                                 "bucket_id = ? AND key = ? AND version_order = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key, order));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, *unlinked));
  }
  for (std::string_view sql : {"DELETE FROM version_parts WHERE bucket_id = ? AND key = ? AND version_order = ?",
                               "DELETE FROM object_versions WHERE bucket_id = ? AND key = ? AND version_order = ?"}) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key, order));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Status SqliteCatalog::PutObject(const ObjectRecord& rec, const WriteCondition& cond) {
  return WriteGrouped([&]() -> Status {
    std::vector<std::string> unlinked;
    COFFRE_RETURN_IF_ERROR(ReplaceObjectLocked(rec, cond, &unlinked));
    return RecordGarbageLocked(unlinked);
  });
}

Result<ObjectRecord> SqliteCatalog::GetObject(int64_t bucket_id, const std::string& key) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  // One snapshot for the object row and its parts, so a concurrent replace cannot mix them.
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  ObjectRecord rec;
  {
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        conn->PrepareCached(
            std::string("SELECT ").append(kObjectColumns).append(" FROM objects WHERE bucket_id = ? AND key = ?")));
    COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::NotFound("catalog: no such object");
    }
    COFFRE_ASSIGN_OR_RETURN(rec, ReadObject(st, bucket_id));
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached("SELECT part_number, blob_id, size, etag, attributes "
                                                            "FROM object_parts WHERE bucket_id = ? AND key = ? "
                                                            "ORDER BY part_number"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, key));
  COFFRE_RETURN_IF_ERROR(AppendObjectParts(st, rec.parts));
  return rec;
}

Result<ObjectRecord> SqliteCatalog::GetObjectVersion(int64_t bucket_id, const std::string& key,
                                                     const std::string& version_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  // One snapshot for the row and its parts.
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  COFFRE_ASSIGN_OR_RETURN(std::optional<FoundVersion> found, FindVersion(*conn, bucket_id, key, version_id));
  if (!found) return Status::NotFound("catalog: no such version");
  COFFRE_ASSIGN_OR_RETURN(
      Statement parts,
      conn->PrepareCached(found->noncurrent ? "SELECT part_number, blob_id, size, etag, attributes FROM version_parts "
                                              "WHERE bucket_id = ?1 AND key = ?2 AND version_order = ?3 "
                                              "ORDER BY part_number"
                                            : "SELECT part_number, blob_id, size, etag, attributes FROM object_parts "
                                              "WHERE bucket_id = ?1 AND key = ?2 AND ?3 = ?3 ORDER BY part_number"));
  COFFRE_RETURN_IF_ERROR(parts.BindAll(bucket_id, key, found->order));
  COFFRE_RETURN_IF_ERROR(AppendObjectParts(parts, found->rec.parts));
  return std::move(found->rec);
}

Status SqliteCatalog::CheckRemovable(const ObjectLock& lock, bool bypass_governance) const {
  const UnixMillis now = NowMillis(clock_);
  if (!lock.Protects(now, bypass_governance)) return Status::Ok();
  if (lock.legal_hold_on()) return Status::PermissionDenied("catalog: the version is under a legal hold");
  return Status::PermissionDenied("catalog: the version is under " + lock.mode + " retention until " +
                                  FormatIso8601(FromUnixMillis(lock.retain_until)));
}

Status SqliteCatalog::DeleteObject(const Bucket& bucket, const std::string& key) {
  return WriteGrouped([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckBucketLocked(bucket.id, bucket.tenant_id, StatusCode::kAborted));
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT object_lock FROM objects "
                                                                   "WHERE bucket_id = ? AND key = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket.id, key));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        COFFRE_ASSIGN_OR_RETURN(ObjectLock lock, DecodeObjectLock(st.ColumnTextView(0)));
        COFFRE_RETURN_IF_ERROR(CheckRemovable(lock, false));
      }
    }
    std::vector<std::string> unlinked;
    COFFRE_RETURN_IF_ERROR(RemoveObjectLocked(bucket.id, key, &unlinked));
    return RecordGarbageLocked(unlinked);
  });
}

Status SqliteCatalog::PutDeleteMarker(const ObjectRecord& marker) {
  if (!marker.delete_marker) return Status::InvalidArgument("catalog: not a delete marker");
  return WriteGrouped([&]() -> Status {
    std::vector<std::string> unlinked;
    COFFRE_RETURN_IF_ERROR(ReplaceObjectLocked(marker, {}, &unlinked));
    return RecordGarbageLocked(unlinked);
  });
}

Result<ObjectRecord> SqliteCatalog::DeleteObjectVersion(const Bucket& bucket, const std::string& key,
                                                        const std::string& version_id, bool bypass_governance) {
  ObjectRecord removed;
  Status st = WriteGrouped([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckBucketLocked(bucket.id, bucket.tenant_id, StatusCode::kAborted));
    COFFRE_ASSIGN_OR_RETURN(std::optional<FoundVersion> found, FindVersion(*writer_, bucket.id, key, version_id));
    if (!found) return Status::NotFound("catalog: no such version");
    COFFRE_RETURN_IF_ERROR(CheckRemovable(found->rec.lock, bypass_governance));
    std::vector<std::string> unlinked;
    if (found->noncurrent) {
      COFFRE_RETURN_IF_ERROR(RemoveVersionLocked(bucket.id, key, found->order, &unlinked));
    } else {
      COFFRE_RETURN_IF_ERROR(RemoveObjectLocked(bucket.id, key, &unlinked));
    }
    removed = std::move(found->rec);
    COFFRE_RETURN_IF_ERROR(PromoteNewestLocked(bucket.id, key));
    return RecordGarbageLocked(unlinked);
  });
  if (!st.ok()) return st;
  return removed;
}

Result<VersionListPage> SqliteCatalog::ListObjectVersions(int64_t bucket_id, const VersionListQuery& query) {
  // The current objects and the noncurrent versions, merged in one order: by key, then newest
  // first (a current object sorts before every noncurrent version of its key).
  // `bound` is the comparison of the scan's start: ">" or ">=".
  auto merged = [](std::string_view bound) {
    const std::string key_from = std::string(" AND key ").append(bound).append(" ?2");
    return std::string("SELECT ")
        .append(kObjectColumns)
        .append(", 0 AS delete_marker, 9223372036854775807 AS version_order FROM objects WHERE bucket_id = ?1")
        .append(key_from)
        .append(" UNION ALL SELECT ")
        .append(kVersionColumns)
        .append(" FROM object_versions WHERE bucket_id = ?1")
        .append(key_from)
        .append(" ORDER BY key, version_order DESC");
  };
  static const std::string kMergedAfter = merged(">");
  static const std::string kMergedFrom = merged(">=");

  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  VersionListPage page;
  uint32_t budget = query.max_keys;
  std::string previous_key;  // the key of the entry before: only a key's first version is its latest
  auto add_version = [&](const Statement& st) -> Status {
    int64_t order = 0;
    COFFRE_ASSIGN_OR_RETURN(ObjectRecord rec, ReadVersion(st, bucket_id, &order));
    const bool latest = rec.key != previous_key;
    previous_key = rec.key;
    page.entries.push_back(VersionEntry{std::move(rec), latest, {}});
    return Status::Ok();
  };

  // With both markers, the marker key's versions older than the marker version come first. A
  // marker key outside the prefix, rolled up into a common prefix, or whose marker version is
  // gone, has none on the page.
  if (!query.key_marker.empty() && !query.version_id_marker.empty() && query.key_marker.starts_with(query.prefix) &&
      !CommonPrefixLength(query.key_marker, query.prefix, query.delimiter)) {
    COFFRE_ASSIGN_OR_RETURN(std::optional<FoundVersion> marker,
                            FindVersion(*conn, bucket_id, query.key_marker, query.version_id_marker));
    // The current object sorts before every noncurrent version of its key.
    std::optional<int64_t> marker_order;
    if (marker) marker_order = marker->noncurrent ? marker->order : std::numeric_limits<int64_t>::max();
    if (marker_order) {
      previous_key = query.key_marker;
      COFFRE_ASSIGN_OR_RETURN(
          Statement st,
          conn->PrepareCached(std::string("SELECT ")
                                  .append(kVersionColumns)
                                  .append(" FROM object_versions WHERE bucket_id = ? AND key = ? AND version_order < ? "
                                          "ORDER BY version_order DESC")));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, query.key_marker, *marker_order));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        if (budget == 0) {
          page.is_truncated = true;
          break;
        }
        --budget;
        COFFRE_RETURN_IF_ERROR(add_version(st));
      }
    }
  }
  if (!page.is_truncated) {
    auto on_prefix = [&](std::string common) -> Status {
      previous_key.clear();
      page.entries.push_back(VersionEntry{std::nullopt, false, std::move(common)});
      return Status::Ok();
    };
    COFFRE_ASSIGN_OR_RETURN(
        page.is_truncated,
        WalkGrouped(*conn, kMergedAfter, kMergedFrom, bucket_id, query.prefix, query.delimiter,
                    StartBound(query.prefix, query.delimiter, query.key_marker), budget, add_version, on_prefix));
  }
  if (page.is_truncated && !page.entries.empty()) {
    const VersionEntry& last = page.entries.back();
    if (last.version) {
      page.next_key_marker = last.version->key;
      page.next_version_id_marker = last.version->version_id();
    } else {
      page.next_key_marker = last.common_prefix;
    }
  }
  return page;
}

Status SqliteCatalog::UpdateObject(const Bucket& bucket, const std::string& key, const std::string& object_id,
                                   uint32_t key_version, const std::string& replaced_update_blob_id,
                                   const ObjectUpdate& update, const std::string& update_blob_id) {
  return WriteGrouped([&]() -> Status {
    COFFRE_RETURN_IF_ERROR(CheckBucketLocked(bucket.id, bucket.tenant_id, StatusCode::kAborted));
    std::vector<std::string> unlinked;
    // The version is the current object or a noncurrent one; its object id names it either way.
    bool noncurrent = false;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement current,
                              writer_->PrepareCached("SELECT key_version, update_blob_id FROM objects "
                                                     "WHERE bucket_id = ? AND key = ? AND object_id = ?"));
      COFFRE_RETURN_IF_ERROR(current.BindAll(bucket.id, key, object_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, current.Step());
      Statement other;
      if (!row) {
        COFFRE_ASSIGN_OR_RETURN(other, writer_->PrepareCached("SELECT key_version, update_blob_id FROM object_versions "
                                                              "WHERE bucket_id = ? AND key = ? AND object_id = ? "
                                                              "AND delete_marker = 0"));
        COFFRE_RETURN_IF_ERROR(other.BindAll(bucket.id, key, object_id));
        COFFRE_ASSIGN_OR_RETURN(noncurrent, other.Step());
        if (!noncurrent) {
          COFFRE_ASSIGN_OR_RETURN(Statement any,
                                  writer_->PrepareCached("SELECT 1 FROM objects WHERE bucket_id = ? AND key = ?"));
          COFFRE_RETURN_IF_ERROR(any.BindAll(bucket.id, key));
          COFFRE_ASSIGN_OR_RETURN(bool has_object, any.Step());
          if (!has_object) return Status::NotFound("catalog: no such object");
          return Status::FailedPrecondition("catalog: the object was replaced meanwhile");
        }
      }
      const Statement& st = noncurrent ? other : current;
      if (st.ColumnInt64(0) != int64_t{key_version}) {
        return Status::FailedPrecondition("catalog: the object's key moved meanwhile");
      }
      if (st.ColumnTextView(1) != replaced_update_blob_id) {
        return Status::FailedPrecondition("catalog: the object's tags or lock were changed meanwhile");
      }
      if (!replaced_update_blob_id.empty() && replaced_update_blob_id != update_blob_id) {
        unlinked.push_back(replaced_update_blob_id);
      }
    }
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        writer_->PrepareCached(noncurrent ? "UPDATE object_versions SET tags = ?, object_lock = ?, update_blob_id = ? "
                                            "WHERE bucket_id = ? AND key = ? AND object_id = ?"
                                          : "UPDATE objects SET tags = ?, object_lock = ?, update_blob_id = ? "
                                            "WHERE bucket_id = ? AND key = ? AND object_id = ?"));
    COFFRE_RETURN_IF_ERROR(
        st.BindAll(EncodeTags(update.tags), EncodeObjectLock(update.lock), update_blob_id, bucket.id, key, object_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
    return RecordGarbageLocked(unlinked);
  });
}

Result<ListPage> SqliteCatalog::ListObjects(int64_t bucket_id, const ListQuery& query) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  // The seeks of one page read one snapshot.
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  ListPage page;
  auto on_row = [&](const Statement& st) -> Status {
    COFFRE_ASSIGN_OR_RETURN(ObjectRecord rec, ReadObject(st, bucket_id));
    page.entries.push_back(ListEntry{std::move(rec), {}});
    return Status::Ok();
  };
  auto on_prefix = [&](std::string common) -> Status {
    page.entries.push_back(ListEntry{std::nullopt, std::move(common)});
    return Status::Ok();
  };
  COFFRE_ASSIGN_OR_RETURN(
      page.is_truncated,
      WalkGrouped(*conn, kScanObjectsAfter, kScanObjectsFrom, bucket_id, query.prefix, query.delimiter,
                  StartBound(query.prefix, query.delimiter, query.start_after), query.max_keys, on_row, on_prefix));
  if (page.is_truncated && !page.entries.empty()) {
    const ListEntry& last = page.entries.back();
    page.next_marker = last.object ? last.object->key : last.common_prefix;
  }
  return page;
}

Result<uint64_t> SqliteCatalog::CountObjects(int64_t bucket_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached("SELECT count(*) FROM objects WHERE bucket_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::Internal("catalog: count returned no row");
  }
  return static_cast<uint64_t>(st.ColumnInt64(0));
}

// --- multipart uploads -------------------------------------------------------------------

Status SqliteCatalog::CreateUpload(const UploadRecord& upload) {
  COFFRE_RETURN_IF_ERROR(ValidateKey(upload.key));
  if (upload.upload_id.empty()) {
    return Status::InvalidArgument("catalog: empty upload id");
  }
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_RETURN_IF_ERROR(CheckBucketLocked(upload.bucket_id, upload.tenant_id, StatusCode::kAborted));
  COFFRE_ASSIGN_OR_RETURN(
      Statement st,
      writer_->PrepareCached("INSERT INTO uploads(upload_id, bucket_id, key, initiated, attributes, tenant_key_id, "
                             "key_version, wrapped_key, tenant_id, tags, object_lock) "
                             "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(upload.upload_id, upload.bucket_id, upload.key, upload.initiated,
                                    EncodeAttributes(upload.attributes), upload.key_info.tenant_key_id,
                                    upload.key_info.tenant_key_version, upload.key_info.wrapped_data_key,
                                    upload.tenant_id, EncodeTags(upload.tags), EncodeObjectLock(upload.lock)));
  COFFRE_RETURN_IF_ERROR(st.Run());
  return tx.Commit();
}

Result<UploadRecord> SqliteCatalog::GetUpload(const std::string& upload_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(
      Statement st,
      conn->PrepareCached(std::string("SELECT ").append(kUploadColumns).append(" FROM uploads WHERE upload_id = ?")));
  COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) {
    return Status::NotFound("catalog: no such upload");
  }
  return ReadUpload(st);
}

Status SqliteCatalog::PutPart(const std::string& upload_id, const PartRecord& part, uint32_t* key_version) {
  if (part.part_number < 1 || part.part_number > kMaxPartNumber) {
    return Status::InvalidArgument("catalog: part number out of range: " + std::to_string(part.part_number));
  }
  return WriteGrouped([&]() -> Status {
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("SELECT key_version FROM uploads WHERE upload_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("catalog: no such upload");
      }
      if (const auto version = static_cast<uint32_t>(st.ColumnInt64(0));
          key_version != nullptr && version != *key_version) {
        *key_version = version;
        return Status::Aborted("catalog: the upload's data key moved to key version " + std::to_string(version));
      }
    }
    std::vector<std::string> unlinked;
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st,
          writer_->PrepareCached("SELECT blob_id FROM upload_parts WHERE upload_id = ? AND part_number = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id, part.part_number));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        unlinked.push_back(st.ColumnText(0));
      }
    }
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st,
          writer_->PrepareCached("INSERT INTO upload_parts(upload_id, part_number, blob_id, size, etag, last_modified, "
                                 "attributes) VALUES(?, ?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT(upload_id, part_number) DO UPDATE SET blob_id = excluded.blob_id, "
                                 "size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified, "
                                 "attributes = excluded.attributes"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id, part.part_number, part.blob_id, static_cast<int64_t>(part.size),
                                        part.etag, part.last_modified, EncodeAttributes(part.attributes)));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    return RecordGarbageLocked(unlinked);
  });
}

Result<std::vector<PartRecord>> SqliteCatalog::ListParts(const std::string& upload_id, uint32_t part_number_marker,
                                                         uint32_t max_parts) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached("SELECT 1 FROM uploads WHERE upload_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      return Status::NotFound("catalog: no such upload");
    }
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached("SELECT part_number, blob_id, size, etag, last_modified, "
                                                            "attributes FROM upload_parts WHERE upload_id = ? AND "
                                                            "part_number > ? ORDER BY part_number LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id, part_number_marker, max_parts));
  std::vector<PartRecord> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    COFFRE_ASSIGN_OR_RETURN(PartRecord p, ReadPart(st));
    out.push_back(std::move(p));
  }
  return out;
}

Result<UploadListPage> SqliteCatalog::ListUploads(int64_t bucket_id, const UploadListQuery& query) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  UploadListPage page;
  uint32_t budget = query.max_uploads;
  // Which of the two vectors received the last entry, for the next markers.
  bool last_is_prefix = false;

  // S3: with both markers, the page starts with the marker key's own uploads that sort after
  // the marker upload, then continues with the keys after the marker key. An upload-id marker
  // without a key marker is ignored. A marker key outside the prefix, or rolled up into a
  // common prefix, has no uploads of its own on the page.
  const bool resume_within_key = !query.key_marker.empty() && !query.upload_id_marker.empty() &&
                                 query.key_marker.starts_with(query.prefix) &&
                                 !CommonPrefixLength(query.key_marker, query.prefix, query.delimiter);
  if (resume_within_key) {
    std::optional<int64_t> marker_initiated;
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st,
          conn->PrepareCached("SELECT initiated FROM uploads WHERE upload_id = ? AND bucket_id = ? AND key = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(query.upload_id_marker, bucket_id, query.key_marker));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (row) {
        marker_initiated = st.ColumnInt64(0);
      }
    }
    // The marker upload is normally still there and gives the position in (initiated,
    // upload_id) order. If it was completed or aborted meanwhile, fall back to S3's documented
    // rule: the key's uploads whose ids sort after the marker.
    const std::string select = std::string("SELECT ").append(kUploadColumns);
    Statement st;
    if (marker_initiated) {
      COFFRE_ASSIGN_OR_RETURN(st, conn->PrepareCached(select + " FROM uploads WHERE bucket_id = ? AND key = ? AND "
                                                               "(initiated, upload_id) > (?, ?) "
                                                               "ORDER BY initiated, upload_id"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, query.key_marker, *marker_initiated, query.upload_id_marker));
    } else {
      COFFRE_ASSIGN_OR_RETURN(st, conn->PrepareCached(select + " FROM uploads WHERE bucket_id = ? AND key = ? AND "
                                                               "upload_id > ? ORDER BY initiated, upload_id"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, query.key_marker, query.upload_id_marker));
    }
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      if (budget == 0) {
        page.is_truncated = true;
        break;
      }
      --budget;
      COFFRE_ASSIGN_OR_RETURN(UploadRecord rec, ReadUpload(st));
      page.uploads.push_back(std::move(rec));
    }
  }

  if (!page.is_truncated) {
    // Every upload of the marker key itself is behind us now: resume strictly after that key.
    auto on_row = [&](const Statement& st) -> Status {
      COFFRE_ASSIGN_OR_RETURN(UploadRecord rec, ReadUpload(st));
      page.uploads.push_back(std::move(rec));
      last_is_prefix = false;
      return Status::Ok();
    };
    auto on_prefix = [&](std::string common) -> Status {
      page.common_prefixes.push_back(std::move(common));
      last_is_prefix = true;
      return Status::Ok();
    };
    COFFRE_ASSIGN_OR_RETURN(
        page.is_truncated,
        WalkGrouped(*conn, kScanUploadsAfter, kScanUploadsFrom, bucket_id, query.prefix, query.delimiter,
                    StartBound(query.prefix, query.delimiter, query.key_marker), budget, on_row, on_prefix));
  }
  if (page.is_truncated) {
    if (last_is_prefix) {
      page.next_key_marker = page.common_prefixes.back();
    } else if (!page.uploads.empty()) {
      page.next_key_marker = page.uploads.back().key;
      page.next_upload_id_marker = page.uploads.back().upload_id;
    }
  }
  return page;
}

Status SqliteCatalog::RemoveUploadLocked(std::string_view upload_id, std::vector<std::string>* unlinked) {
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT blob_id FROM upload_parts WHERE upload_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, *unlinked));
  }
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM upload_parts WHERE upload_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM uploads WHERE upload_id = ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
  COFFRE_RETURN_IF_ERROR(st.Run());
  if (writer_->Changes() == 0) {
    return Status::NotFound("catalog: no such upload");
  }
  return Status::Ok();
}

Status SqliteCatalog::CompleteUpload(const std::string& upload_id, const ObjectRecord& object,
                                     const WriteCondition& cond, uint32_t* key_version) {
  return WriteGrouped([&]() -> Status {
    ObjectRecord completed = object;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("SELECT bucket_id, key, tenant_key_id, key_version, wrapped_key, "
                                                     "tenant_id FROM uploads WHERE upload_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        return Status::NotFound("catalog: no such upload");
      }
      if (st.ColumnInt64(0) != object.bucket_id || st.ColumnTextView(1) != object.key ||
          st.ColumnTextView(5) != object.tenant_id) {
        return Status::InvalidArgument("catalog: completed object does not match the upload's bucket and key");
      }
      // The object's data key is the upload's. If a rewrap re-wrapped the upload after the caller
      // read it, the object must not land on a key version that rewrap already emptied (and that
      // may be destroyed next), and its manifest, sealed meanwhile, has its key's header copy
      // under the old version only: the caller covers it under the new one and tries again.
      if (const auto version = static_cast<uint32_t>(st.ColumnInt64(3));
          version != object.key_info.tenant_key_version) {
        if (key_version != nullptr) *key_version = version;
        return Status::Aborted("catalog: the upload's data key moved to key version " + std::to_string(version));
      }
      completed.key_info.wrapped_data_key = st.ColumnBlob(4);
    }
    std::set<std::string> upload_blobs;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("SELECT blob_id FROM upload_parts WHERE upload_id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(upload_id));
      std::vector<std::string> ids;
      COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, ids));
      upload_blobs.insert(ids.begin(), ids.end());
    }
    for (const auto& p : object.parts) {
      if (!upload_blobs.contains(p.blob_id)) {
        return Status::InvalidArgument("catalog: part " + std::to_string(p.part_number) +
                                       " is not a stored part of the upload");
      }
    }
    std::vector<std::string> unlinked;
    COFFRE_RETURN_IF_ERROR(ReplaceObjectLocked(completed, cond, &unlinked));
    // The parts the object uses are referenced again by now; RecordGarbageLocked keeps them.
    COFFRE_RETURN_IF_ERROR(RemoveUploadLocked(upload_id, &unlinked));
    return RecordGarbageLocked(unlinked);
  });
}

Status SqliteCatalog::AbortUpload(const std::string& upload_id) {
  return WriteGrouped([&]() -> Status {
    std::vector<std::string> unlinked;
    COFFRE_RETURN_IF_ERROR(RemoveUploadLocked(upload_id, &unlinked));
    return RecordGarbageLocked(unlinked);
  });
}

// --- garbage -----------------------------------------------------------------------------

Result<bool> SqliteCatalog::IsReferenced(Connection& conn, std::string_view blob_id) {
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn.PrepareCached("SELECT EXISTS(SELECT 1 FROM object_parts WHERE blob_id = ?1) OR "
                                             "EXISTS(SELECT 1 FROM version_parts WHERE blob_id = ?1) OR "
                                             "EXISTS(SELECT 1 FROM upload_parts WHERE blob_id = ?1) OR "
                                             "EXISTS(SELECT 1 FROM objects WHERE manifest_blob_id = ?1 "
                                             "AND manifest_blob_id != '') OR "
                                             "EXISTS(SELECT 1 FROM object_versions WHERE manifest_blob_id = ?1 "
                                             "AND manifest_blob_id != '') OR "
                                             "EXISTS(SELECT 1 FROM objects WHERE update_blob_id = ?1 "
                                             "AND update_blob_id != '') OR "
                                             "EXISTS(SELECT 1 FROM object_versions WHERE update_blob_id = ?1 "
                                             "AND update_blob_id != '') OR "
                                             "EXISTS(SELECT 1 FROM key_copy_blobs WHERE blob_id = ?1)"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(blob_id));
  COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
  return row && st.ColumnInt64(0) != 0;
}

Status SqliteCatalog::RecordGarbageLocked(const std::vector<std::string>& unlinked) {
  const UnixMillis now = NowMillis(clock_);
  for (const auto& blob_id : unlinked) {
    COFFRE_ASSIGN_OR_RETURN(bool referenced, IsReferenced(*writer_, blob_id));
    if (referenced) {
      continue;
    }
    // A blob already in garbage keeps its original time.
    COFFRE_ASSIGN_OR_RETURN(
        Statement st,
        writer_->PrepareCached("INSERT INTO garbage(blob_id, since) VALUES(?, ?) ON CONFLICT(blob_id) DO NOTHING"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(blob_id, now));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Result<std::vector<GarbageBlob>> SqliteCatalog::ListGarbage(uint32_t limit) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn->PrepareCached("SELECT blob_id, since FROM garbage ORDER BY since, blob_id LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(limit));
  std::vector<GarbageBlob> out;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    out.push_back(GarbageBlob{st.ColumnText(0), st.ColumnInt64(1)});
  }
  return out;
}

Status SqliteCatalog::ForgetGarbage(const std::vector<std::string>& blob_ids) {
  if (blob_ids.empty()) {
    return Status::Ok();
  }
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  for (const auto& blob_id : blob_ids) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM garbage WHERE blob_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(blob_id));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return tx.Commit();
}

Result<bool> SqliteCatalog::IsBlobReferenced(const std::string& blob_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  return IsReferenced(*conn, blob_id);
}

Result<std::vector<std::string>> SqliteCatalog::ListBlobIds(BlobRefSource source, const std::string& after,
                                                            uint32_t limit) {
  // Each walk follows an index on blob_id (object_parts_by_blob, upload_parts_by_blob,
  // objects_by_manifest, objects_by_update, the keys of key_copy_blobs and garbage), the objects'
  // merged with their noncurrent versions' (version_parts_by_blob, ...).
  const char* sql = nullptr;
  switch (source) {
    case BlobRefSource::kObjectParts:
      sql =
          "SELECT blob_id FROM object_parts WHERE blob_id > ?1 UNION ALL "
          "SELECT blob_id FROM version_parts WHERE blob_id > ?1 ORDER BY 1 LIMIT ?2";
      break;
    case BlobRefSource::kUploadParts:
      sql = "SELECT blob_id FROM upload_parts WHERE blob_id > ? ORDER BY blob_id LIMIT ?";
      break;
    case BlobRefSource::kManifests:
      sql =
          "SELECT manifest_blob_id FROM objects WHERE manifest_blob_id != '' AND manifest_blob_id > ?1 UNION ALL "
          "SELECT manifest_blob_id FROM object_versions WHERE manifest_blob_id != '' AND manifest_blob_id > ?1 "
          "ORDER BY 1 LIMIT ?2";
      break;
    case BlobRefSource::kKeyCopies:
      sql = "SELECT blob_id FROM key_copy_blobs WHERE blob_id > ? ORDER BY blob_id LIMIT ?";
      break;
    case BlobRefSource::kObjectUpdates:
      sql =
          "SELECT update_blob_id FROM objects WHERE update_blob_id != '' AND update_blob_id > ?1 UNION ALL "
          "SELECT update_blob_id FROM object_versions WHERE update_blob_id != '' AND update_blob_id > ?1 "
          "ORDER BY 1 LIMIT ?2";
      break;
    case BlobRefSource::kGarbage:
      sql = "SELECT blob_id FROM garbage WHERE blob_id > ? ORDER BY blob_id LIMIT ?";
      break;
  }
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached(sql));
  COFFRE_RETURN_IF_ERROR(st.BindAll(after, limit));
  std::vector<std::string> out;
  COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, out));
  return out;
}

// --- key lifecycle -----------------------------------------------------------------------

Result<std::map<uint32_t, uint64_t>> SqliteCatalog::CountKeyVersions(ByteView tenant_key_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  // One snapshot for both tables.
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  std::map<uint32_t, uint64_t> out;
  for (std::string_view sql :
       {"SELECT key_version, count(*) FROM objects WHERE tenant_key_id = ? GROUP BY key_version",
        "SELECT key_version, count(*) FROM object_versions WHERE tenant_key_id = ? GROUP BY key_version",
        "SELECT key_version, count(*) FROM uploads WHERE tenant_key_id = ? GROUP BY key_version"}) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, conn->PrepareCached(sql));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_key_id));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      out[static_cast<uint32_t>(st.ColumnInt64(0))] += static_cast<uint64_t>(st.ColumnInt64(1));
    }
  }
  return out;
}

Result<std::vector<WrappedKeyRow>> SqliteCatalog::ListWrappedKeys(ByteView tenant_key_id, uint32_t version,
                                                                  WrappedKeyCursor* cursor, uint32_t limit) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  std::vector<WrappedKeyRow> out;
  // Current objects, then noncurrent versions: the same walk over two tables. The statements of
  // both take the same parameters, bound once; a current object's has no version_order to
  // compare, hence its `?5 = ?5` (and `?3 = ?3` for its parts).
  for (const bool noncurrent : {false, true}) {
    if (cursor->in_uploads || (cursor->in_noncurrent && !noncurrent)) continue;
    // One snapshot for the rows and the blob ids they name.
    COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
    COFFRE_ASSIGN_OR_RETURN(
        Statement st, conn->PrepareCached(
                          noncurrent ? "SELECT bucket_id, key, object_id, key_version, wrapped_key, manifest_blob_id, "
                                       "update_blob_id, version_order FROM object_versions "
                                       "WHERE tenant_key_id = ?1 AND key_version = ?2 AND "
                                       "(bucket_id, key, version_order) > (?3, ?4, ?5) "
                                       "ORDER BY bucket_id, key, version_order LIMIT ?6"
                                     : "SELECT bucket_id, key, object_id, key_version, wrapped_key, manifest_blob_id, "
                                       "update_blob_id, 0 FROM objects "
                                       "WHERE tenant_key_id = ?1 AND key_version = ?2 AND (bucket_id, key) > (?3, ?4) "
                                       "AND ?5 = ?5 ORDER BY bucket_id, key LIMIT ?6"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_key_id, version, cursor->bucket_id, cursor->key, cursor->version_order,
                                      static_cast<uint32_t>(limit - out.size())));
    const size_t first = out.size();
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      WrappedKeyRow r;
      r.noncurrent = noncurrent;
      r.bucket_id = st.ColumnInt64(0);
      r.key = st.ColumnText(1);
      r.object_id = st.ColumnText(2);
      r.key_info = KeyInfo{Bytes(tenant_key_id.begin(), tenant_key_id.end()), static_cast<uint32_t>(st.ColumnInt64(3)),
                           st.ColumnBlob(4)};
      if (std::string manifest = st.ColumnText(5); !manifest.empty()) r.blob_ids.push_back(std::move(manifest));
      r.update_blob_id = st.ColumnText(6);
      if (!r.update_blob_id.empty()) r.blob_ids.push_back(r.update_blob_id);
      r.version_order = st.ColumnInt64(7);
      out.push_back(std::move(r));
    }
    for (size_t i = first; i < out.size(); ++i) {
      WrappedKeyRow& r = out[i];
      COFFRE_ASSIGN_OR_RETURN(
          Statement parts,
          conn->PrepareCached(noncurrent ? "SELECT blob_id FROM version_parts WHERE bucket_id = ?1 AND key = ?2 AND "
                                           "version_order = ?3 ORDER BY part_number"
                                         : "SELECT blob_id FROM object_parts WHERE bucket_id = ?1 AND key = ?2 AND "
                                           "?3 = ?3 ORDER BY part_number"));
      COFFRE_RETURN_IF_ERROR(parts.BindAll(r.bucket_id, r.key, r.version_order));
      std::vector<std::string> ids;
      COFFRE_RETURN_IF_ERROR(AppendFirstColumn(parts, ids));
      ids.insert(ids.end(), r.blob_ids.begin(), r.blob_ids.end());  // the manifest and update blob last
      r.blob_ids = std::move(ids);
    }
    COFFRE_RETURN_IF_ERROR(tx.Commit());
    if (out.size() > first) {
      cursor->bucket_id = out.back().bucket_id;
      cursor->key = out.back().key;
      cursor->version_order = out.back().version_order;
    }
    if (out.size() == limit) {
      return out;
    }
    // This table is done: the next one is walked from its start.
    cursor->bucket_id = 0;
    cursor->key.clear();
    cursor->version_order = 0;
    if (noncurrent) {
      cursor->in_uploads = true;
    } else {
      cursor->in_noncurrent = true;
    }
  }
  COFFRE_ASSIGN_OR_RETURN(Statement st,
                          conn->PrepareCached("SELECT upload_id, bucket_id, key, key_version, wrapped_key FROM uploads "
                                              "WHERE tenant_key_id = ? AND key_version = ? AND upload_id > ? "
                                              "ORDER BY upload_id LIMIT ?"));
  COFFRE_RETURN_IF_ERROR(
      st.BindAll(tenant_key_id, version, cursor->upload_id, static_cast<uint32_t>(limit - out.size())));
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      break;
    }
    WrappedKeyRow r;
    r.is_upload = true;
    r.upload_id = st.ColumnText(0);
    r.object_id = r.upload_id;
    r.bucket_id = st.ColumnInt64(1);
    r.key = st.ColumnText(2);
    r.key_info = KeyInfo{Bytes(tenant_key_id.begin(), tenant_key_id.end()), static_cast<uint32_t>(st.ColumnInt64(3)),
                         st.ColumnBlob(4)};
    cursor->upload_id = r.upload_id;
    out.push_back(std::move(r));
  }
  for (WrappedKeyRow& r : out) {
    if (!r.is_upload) continue;
    COFFRE_ASSIGN_OR_RETURN(Statement parts, conn->PrepareCached("SELECT blob_id FROM upload_parts WHERE upload_id = ? "
                                                                 "ORDER BY part_number"));
    COFFRE_RETURN_IF_ERROR(parts.BindAll(r.upload_id));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(parts, r.blob_ids));
  }
  return out;
}

Result<uint64_t> SqliteCatalog::RewrapKeys(const std::vector<KeyRewrap>& rewraps,
                                           const std::vector<KeyCopyBlob>& key_copies) {
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_RETURN_IF_ERROR(AddKeyCopyBlobsLocked(key_copies));
  uint64_t updated = 0;
  for (const KeyRewrap& k : rewraps) {
    const WrappedKeyRow& old = k.old_row;
    if (old.is_upload) {
      // A part committed since the row was read has no copy of its key under the new version
      // (none was written for it): the upload stays as it is, for the next pass.
      COFFRE_ASSIGN_OR_RETURN(Statement parts,
                              writer_->PrepareCached("SELECT blob_id FROM upload_parts WHERE upload_id = ?"));
      COFFRE_RETURN_IF_ERROR(parts.BindAll(old.upload_id));
      std::vector<std::string> blob_ids;
      COFFRE_RETURN_IF_ERROR(AppendFirstColumn(parts, blob_ids));
      if (std::any_of(blob_ids.begin(), blob_ids.end(), [&](const std::string& id) {
            return std::find(old.blob_ids.begin(), old.blob_ids.end(), id) == old.blob_ids.end();
          })) {
        continue;
      }
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("UPDATE uploads SET key_version = ?, wrapped_key = ? "
                                                     "WHERE upload_id = ? AND tenant_key_id = ? AND "
                                                     "key_version = ? AND wrapped_key = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(k.new_version, k.new_wrapped_data_key, old.upload_id,
                                        old.key_info.tenant_key_id, old.key_info.tenant_key_version,
                                        old.key_info.wrapped_data_key));
      COFFRE_RETURN_IF_ERROR(st.Run());
    } else {
      // A version is found where the walk read it, and only there: one made noncurrent meanwhile is
      // left for the next pass, which finds it among the noncurrent ones. Both statements take the
      // same parameters (`?10 = ?10`: a current object has no version_order to compare).
      COFFRE_ASSIGN_OR_RETURN(
          Statement st,
          writer_->PrepareCached(old.noncurrent ? "UPDATE object_versions SET key_version = ?1, wrapped_key = ?2 "
                                                  "WHERE bucket_id = ?3 AND key = ?4 AND version_order = ?10 AND "
                                                  "object_id = ?5 AND tenant_key_id = ?6 AND key_version = ?7 AND "
                                                  "wrapped_key = ?8 AND update_blob_id = ?9"
                                                : "UPDATE objects SET key_version = ?1, wrapped_key = ?2 "
                                                  "WHERE bucket_id = ?3 AND key = ?4 AND object_id = ?5 AND "
                                                  "tenant_key_id = ?6 AND key_version = ?7 AND wrapped_key = ?8 AND "
                                                  "update_blob_id = ?9 AND ?10 = ?10"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(k.new_version, k.new_wrapped_data_key, old.bucket_id, old.key, old.object_id,
                                        old.key_info.tenant_key_id, old.key_info.tenant_key_version,
                                        old.key_info.wrapped_data_key, old.update_blob_id, old.version_order));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    updated += static_cast<uint64_t>(writer_->Changes());
  }
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return updated;
}

Status SqliteCatalog::AddKeyCopyBlobsLocked(const std::vector<KeyCopyBlob>& key_copies) {
  for (const KeyCopyBlob& k : key_copies) {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("INSERT INTO key_copy_blobs(blob_id, tenant_id, key_version) "
                                                   "VALUES(?, ?, ?) ON CONFLICT(blob_id) DO NOTHING"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(k.blob_id, k.key_id, k.key_version));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  return Status::Ok();
}

Status SqliteCatalog::AddKeyCopyBlobs(const std::vector<KeyCopyBlob>& key_copies) {
  if (key_copies.empty()) return Status::Ok();
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_RETURN_IF_ERROR(AddKeyCopyBlobsLocked(key_copies));
  return tx.Commit();
}

Result<uint64_t> SqliteCatalog::DropKeyCopyBlobs(const std::string& key_id, std::optional<uint32_t> key_version) {
  std::lock_guard lock(write_mu_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  COFFRE_ASSIGN_OR_RETURN(uint64_t dropped, DropKeyCopyBlobsLocked(key_id, key_version));
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return dropped;
}

// Every version when key_version is nullopt (a shredded tenant, a destroyed named key). The
// table's tenant_id column holds the key's id (a tenant's own for its default key).
Result<uint64_t> SqliteCatalog::DropKeyCopyBlobsLocked(const std::string& tenant_id,
                                                       std::optional<uint32_t> key_version) {
  std::vector<std::string> ids;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st,
                            writer_->PrepareCached("SELECT blob_id FROM key_copy_blobs WHERE tenant_id = ?1 AND "
                                                   "(?2 < 0 OR key_version = ?2)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, key_version ? int64_t{*key_version} : int64_t{-1}));
    COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, ids));
  }
  for (const std::string& id : ids) {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM key_copy_blobs WHERE blob_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(id));
    COFFRE_RETURN_IF_ERROR(st.Run());
  }
  COFFRE_RETURN_IF_ERROR(RecordGarbageLocked(ids));
  return ids.size();
}

Result<uint64_t> SqliteCatalog::DeleteTenantData(const std::string& tenant_id, uint32_t max_rows) {
  std::lock_guard lock(write_mu_);
  InvalidateOnExit invalidate(bucket_cache_);
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*writer_));
  std::vector<int64_t> buckets;
  {
    COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT id FROM buckets WHERE tenant_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id));
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) {
        break;
      }
      buckets.push_back(st.ColumnInt64(0));
    }
  }
  uint64_t removed = 0;
  std::vector<std::string> unlinked;
  for (int64_t bucket_id : buckets) {
    if (removed >= max_rows) {
      break;
    }
    std::vector<std::string> upload_ids;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("SELECT upload_id FROM uploads WHERE bucket_id = ? LIMIT ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id, static_cast<int64_t>(max_rows - removed)));
      COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, upload_ids));
    }
    for (const auto& id : upload_ids) {
      COFFRE_RETURN_IF_ERROR(RemoveUploadLocked(id, &unlinked));
      ++removed;
    }
    std::vector<std::pair<std::string, int64_t>> versions;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("SELECT key, version_order FROM object_versions "
                                                                   "WHERE bucket_id = ? LIMIT ?"));
      COFFRE_RETURN_IF_ERROR(
          st.BindAll(bucket_id, static_cast<int64_t>(max_rows - std::min<uint64_t>(removed, max_rows))));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        versions.emplace_back(st.ColumnText(0), st.ColumnInt64(1));
      }
    }
    for (const auto& [key, order] : versions) {
      COFFRE_RETURN_IF_ERROR(RemoveVersionLocked(bucket_id, key, order, &unlinked));
      ++removed;
    }
    std::vector<std::string> keys;
    {
      COFFRE_ASSIGN_OR_RETURN(
          Statement st, writer_->PrepareCached("SELECT key FROM objects WHERE bucket_id = ? ORDER BY key LIMIT ?"));
      COFFRE_RETURN_IF_ERROR(
          st.BindAll(bucket_id, static_cast<int64_t>(max_rows - std::min<uint64_t>(removed, max_rows))));
      COFFRE_RETURN_IF_ERROR(AppendFirstColumn(st, keys));
    }
    for (const auto& key : keys) {
      COFFRE_RETURN_IF_ERROR(RemoveObjectLocked(bucket_id, key, &unlinked));
      ++removed;
    }
    bool empty = false;
    {
      COFFRE_ASSIGN_OR_RETURN(Statement st,
                              writer_->PrepareCached("SELECT NOT EXISTS(SELECT 1 FROM objects WHERE "
                                                     "bucket_id = ?1) AND NOT EXISTS(SELECT 1 FROM "
                                                     "object_versions WHERE bucket_id = ?1) AND NOT "
                                                     "EXISTS(SELECT 1 FROM uploads WHERE bucket_id = ?1)"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      empty = row && st.ColumnInt64(0) != 0;
    }
    if (empty) {
      COFFRE_ASSIGN_OR_RETURN(Statement st, writer_->PrepareCached("DELETE FROM buckets WHERE id = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(bucket_id));
      COFFRE_RETURN_IF_ERROR(st.Run());
      ++removed;
    }
  }
  COFFRE_RETURN_IF_ERROR(RecordGarbageLocked(unlinked));
  if (removed == 0) {
    // Its data is gone: the copies of its data keys go too.
    COFFRE_ASSIGN_OR_RETURN(removed, DropKeyCopyBlobsLocked(tenant_id, std::nullopt));
  }
  COFFRE_RETURN_IF_ERROR(tx.Commit());
  return removed;
}

Result<std::vector<ProtectedVersion>> SqliteCatalog::ListProtectedVersions(const std::string& tenant_id, UnixMillis now,
                                                                           bool bypass_governance, uint32_t limit,
                                                                           uint64_t* total, ByteView key_id) {
  COFFRE_ASSIGN_OR_RETURN(auto conn, readers_.Acquire());
  COFFRE_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn, Transaction::Kind::kDeferred));
  // Only rows with a lock are read (the partial indexes); whether it still protects is decided here.
  COFFRE_ASSIGN_OR_RETURN(
      Statement st,
      conn->PrepareCached(
          "SELECT b.name, v.key, v.object_id, v.null_version, v.object_lock FROM ("
          "SELECT bucket_id, key, object_id, null_version, object_lock FROM objects "
          "WHERE tenant_id = ?1 AND object_lock != '' AND (coalesce(length(?2), 0) = 0 OR tenant_key_id = ?2) "
          "UNION ALL "
          "SELECT bucket_id, key, object_id, null_version, object_lock FROM object_versions "
          "WHERE tenant_id = ?1 AND object_lock != '' AND (coalesce(length(?2), 0) = 0 OR tenant_key_id = ?2)) "
          "AS v JOIN buckets AS b ON b.id = v.bucket_id ORDER BY b.name, v.key"));
  COFFRE_RETURN_IF_ERROR(st.BindAll(tenant_id, key_id));
  std::vector<ProtectedVersion> out;
  uint64_t count = 0;
  while (true) {
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    COFFRE_ASSIGN_OR_RETURN(ObjectLock lock, DecodeObjectLock(st.ColumnTextView(4)));
    if (!lock.Protects(now, bypass_governance)) continue;
    ++count;
    if (out.size() < limit) {
      const bool null_version = st.ColumnInt64(3) != 0;
      out.push_back(ProtectedVersion{st.ColumnText(0), st.ColumnText(1),
                                     null_version ? std::string(kNullVersionId) : st.ColumnText(2), std::move(lock)});
    }
  }
  if (total != nullptr) *total = count;
  return out;
}

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, const Clock& clock) {
  COFFRE_ASSIGN_OR_RETURN(std::unique_ptr<Connection> writer, Connection::Open(path, db::OpenMode::kReadWriteCreate));
  COFFRE_RETURN_IF_ERROR(db::Migrate(*writer, kMigrations));
  return std::unique_ptr<Catalog>(new SqliteCatalog(std::move(writer), path, clock));
}

}  // namespace coffre::catalog
