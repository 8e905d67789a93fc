#include "coffre/service/catalog_rebuild.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "coffre/catalog/blob_description.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/db/sqlite.h"
#include "coffre/service/object_service.h"
#include "service/data_key_aad.h"
#include "service/key_audit.h"

namespace coffre::service {
namespace {

using catalog::BlobDescription;

// The audit records of a batch are written together (one commit for many), then its keys used.
constexpr size_t kBatch = 256;

// One readable version 2 blob: what it says of itself, and where its data key is.
struct Found {
  std::string blob_id;
  BlobDescription description;
  catalog::KeyInfo header_key;  // the header's copy, bound to the blob (BlobHeaderKeyAad)
};

// A blob whose header was parsed, before its key is used.
struct Headed {
  std::string blob_id;
  std::unique_ptr<storage::BlobReader> reader;
  Bytes header;
  crypto::BlobHeader parsed;
};

// How the scratch database stores a description's kind.
int KindCode(BlobDescription::Kind kind) {
  switch (kind) {
    case BlobDescription::Kind::kObject:
      return 0;
    case BlobDescription::Kind::kPart:
      return 1;
    case BlobDescription::Kind::kManifest:
      return 2;
    case BlobDescription::Kind::kKeyCopies:
      return 3;
    case BlobDescription::Kind::kObjectUpdate:
      return 4;
    case BlobDescription::Kind::kDeleteMarker:
      return 5;
  }
  return 0;
}

void RemoveScratch(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path + suffix, ec);
}

// What opening a blob's key is recorded under before its description says which bucket it is in:
// its tenant alone.
catalog::Bucket TenantOnly(const std::string& tenant) {
  catalog::Bucket b;
  b.tenant_id = tenant;
  return b;
}

class Rebuild {
 public:
  Rebuild(keystore::TenantKeyStore& keys, storage::BlobStore& blobs, catalog::Catalog& fresh, std::string scratch_path,
          audit::Recorder* audit, const audit::RequestInfo& request)
      : keys_(keys),
        blobs_(blobs),
        fresh_(fresh),
        audit_(audit),
        request_(request),
        scratch_path_(std::move(scratch_path)) {}

  Result<RebuildReport> Run() {
    COFFRE_RETURN_IF_ERROR(OpenScratch());
    COFFRE_ASSIGN_OR_RETURN(std::vector<storage::StoredFile> listed, blobs_.ListBlobs(&report_.strays));
    report_.blobs = listed.size();
    std::vector<std::string> ids;
    ids.reserve(listed.size());
    for (storage::StoredFile& file : listed) ids.push_back(std::move(file.name));
    listed = {};
    // A blob whose header's key version is gone waits for the key copies that a rewrap wrote,
    // which are blobs of the same listing.
    COFFRE_RETURN_IF_ERROR(OpenAll(ids, /*through_copies=*/false));
    ids = std::exchange(deferred_, {});
    COFFRE_RETURN_IF_ERROR(OpenAll(ids, /*through_copies=*/true));
    COFFRE_RETURN_IF_ERROR(ChooseAndWrite());
    COFFRE_RETURN_IF_ERROR(RestoreBucketSettings());
    COFFRE_RETURN_IF_ERROR(CountUnfinishedParts());
    COFFRE_RETURN_IF_ERROR(fresh_.AddKeyCopyBlobs(key_copy_blobs_));
    report_.superseded += updates_read_ - report_.object_updates;
    return std::move(report_);
  }

 private:
  // What the blobs say, kept on disk rather than in memory: a store holds millions of blobs.
  // `found` has one row per readable object, part or manifest blob (its description as read);
  // `key_copies` the newest copy of each blob's data key; `updates` each object's newest
  // attributes update.
  Status OpenScratch() {
    COFFRE_ASSIGN_OR_RETURN(scratch_, db::Connection::Open(scratch_path_));
    // Nothing here needs to survive a crash: a rebuild cut short starts again from the store.
    COFFRE_RETURN_IF_ERROR(scratch_->Exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"));
    return scratch_->Exec(R"sql(
CREATE TABLE found(
  blob_id TEXT NOT NULL PRIMARY KEY,
  kind INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  bucket_name TEXT NOT NULL,
  bucket_id INTEGER NOT NULL,
  key TEXT NOT NULL COLLATE BINARY,
  object_id TEXT NOT NULL,
  upload_id TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  sequence INTEGER NOT NULL,
  tenant_key_id BLOB NOT NULL,
  key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL,
  description BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX found_by_key ON found(tenant_id, bucket_name, bucket_id, key, last_modified DESC, sequence DESC,
  object_id DESC) WHERE kind != 1;
CREATE INDEX found_by_upload ON found(upload_id, kind);
CREATE TABLE key_copies(
  blob_id TEXT NOT NULL PRIMARY KEY,
  key_version INTEGER NOT NULL,
  wrapped_key BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE updates(
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  blob_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  description BLOB NOT NULL,
  PRIMARY KEY(tenant_id, object_id)
) WITHOUT ROWID;
)sql");
  }

  void Unreadable(const std::string& blob_id, const std::string& why) {
    report_.unreadable.push_back(blob_id + ": " + why);
  }

  Status OpenAll(const std::vector<std::string>& ids, bool through_copies) {
    std::vector<Headed> batch;
    for (const std::string& id : ids) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<Headed> headed, ReadHeader(id));
      if (!headed) continue;
      if (through_copies) {
        COFFRE_ASSIGN_OR_RETURN(bool copied, UseKeyCopy(*headed));
        if (!copied) continue;
      } else {
        // Deferred before any record: a version that is gone opens nothing, so nothing is used.
        COFFRE_ASSIGN_OR_RETURN(bool exists,
                                VersionExists(KeyOf(headed->parsed), headed->parsed.key.tenant_key_version));
        if (!exists) {
          deferred_.push_back(id);
          continue;
        }
      }
      batch.push_back(std::move(*headed));
      if (batch.size() == kBatch) COFFRE_RETURN_IF_ERROR(OpenBatch(batch));
    }
    return OpenBatch(batch);
  }

  // The key a blob header names, with its tenant: a header carries the key's id alone, which is
  // its tenant's id for a default key, or a named key's, whose tenant the keystore knows.
  keystore::KeyRef KeyOf(const crypto::BlobHeader& h) {
    const std::string key_id = HexEncode(h.key.tenant_key_id);
    auto it = owners_.find(key_id);
    if (it == owners_.end()) {
      auto named = keys_.NamedKeyById(key_id);
      it = owners_.emplace(key_id, named.ok() ? named->tenant_id : key_id).first;
    }
    return keystore::KeyRef(it->second, key_id);
  }

  // Whether the key still has that version: not once destroyed, nor for a shredded or unknown
  // tenant, nor a destroyed named key.
  Result<bool> VersionExists(const keystore::KeyRef& key, uint32_t version) {
    auto it = versions_.find(key.key_id);
    if (it == versions_.end()) {
      std::set<uint32_t> versions;
      auto listed = keys_.ListKeyVersions(key);
      if (listed.ok()) {
        for (const keystore::KeyVersion& v : *listed) versions.insert(v.version);
      } else if (listed.status().code() != StatusCode::kNotFound) {
        return listed.status();
      }
      it = versions_.emplace(key.key_id, std::move(versions)).first;
    }
    return it->second.count(version) > 0;
  }

  // Puts in place of the header's copy of the data key the newest key copy of the blob; false
  // (reported) when there is none.
  Result<bool> UseKeyCopy(Headed& h) {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st, scratch_->PrepareCached("SELECT key_version, wrapped_key FROM key_copies WHERE blob_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(h.blob_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) {
      report_.without_key.push_back(h.blob_id);
      return false;
    }
    h.parsed.key.tenant_key_version = static_cast<uint32_t>(st.ColumnInt64(0));
    h.parsed.key.wrapped_data_key = st.ColumnBlob(1);
    ++report_.opened_by_key_copy;
    return true;
  }

  // The blob's header, parsed but not yet authenticated; nothing (reported) when the blob cannot
  // be rebuilt from; an error when the store fails.
  Result<std::optional<Headed>> ReadHeader(const std::string& blob_id) {
    auto reader = blobs_.Open(blob_id);
    if (!reader.ok()) {
      if (reader.status().code() == StatusCode::kNotFound || reader.status().code() == StatusCode::kCorruption) {
        Unreadable(blob_id, reader.status().message());
        return std::optional<Headed>();
      }
      return reader.status();
    }
    Headed h{blob_id, std::move(reader).value(), Bytes(crypto::kHeaderSize), {}};
    if (h.reader->size() < crypto::kHeaderSize) {
      Unreadable(blob_id, "shorter than a blob header");
      return std::optional<Headed>();
    }
    if (Status st = h.reader->ReadAt(0, h.header); !st.ok()) {
      if (st.code() != StatusCode::kCorruption) return st;
      Unreadable(blob_id, st.message());
      return std::optional<Headed>();
    }
    auto parsed = crypto::ParseBlobHeaderUnauthenticated(h.header);
    if (!parsed.ok()) {
      Unreadable(blob_id, "not a blob: " + parsed.status().message());
      return std::optional<Headed>();
    }
    if (parsed->version == crypto::kBlobFormatVersion1) {
      Unreadable(blob_id, "format version 1, which carries no description (written before descriptions existed)");
      return std::optional<Headed>();
    }
    h.parsed = std::move(parsed).value();
    return std::optional<Headed>(std::move(h));
  }

  // Records the unwrap of every blob's header key copy, then opens each blob's description.
  Status OpenBatch(std::vector<Headed>& batch) {
    std::vector<audit::Event> events;
    events.reserve(batch.size());
    for (const Headed& h : batch) {
      events.push_back(internal::KeyEvent(audit::Operation::kDataKeyUnwrap, TenantOnly(KeyOf(h.parsed).tenant_id), "",
                                          h.blob_id, h.parsed.key.tenant_key_id, h.parsed.key.tenant_key_version,
                                          &request_));
    }
    COFFRE_RETURN_IF_ERROR(RecordAll(events));
    COFFRE_ASSIGN_OR_RETURN(db::Transaction tx, db::Transaction::Begin(*scratch_));
    for (Headed& h : batch) COFFRE_RETURN_IF_ERROR(OpenDescription(h));
    batch.clear();
    return tx.Commit();
  }

  // Makes every record of a batch durable, in a few commits, before any of its keys is used.
  Status RecordAll(const std::vector<audit::Event>& events) {
    for (const Status& st : internal::RecordEach(audit_, events)) {
      if (!st.ok()) return Status(st.code(), "audit log: " + st.message() + " (no key was used unrecorded)");
    }
    return Status::Ok();
  }

  Status OpenDescription(Headed& h) {
    const keystore::KeyRef key_ref = KeyOf(h.parsed);
    const std::string& tenant = key_ref.tenant_id;
    auto data_key = keys_.UnwrapDataKey(key_ref, h.parsed.key.tenant_key_version, h.parsed.key.wrapped_data_key,
                                        internal::BlobHeaderKeyAad(h.blob_id));
    if (!data_key.ok()) {
      const StatusCode code = data_key.status().code();
      if (code == StatusCode::kNotFound || code == StatusCode::kPermissionDenied || code == StatusCode::kCorruption ||
          code == StatusCode::kInvalidArgument) {
        Unreadable(h.blob_id, "its key does not open: " + data_key.status().message());
        return Status::Ok();
      }
      return data_key.status();
    }
    auto decryptor = crypto::BlobDecryptor::Create(*data_key, {tenant, h.blob_id}, h.header);
    if (!decryptor.ok()) {
      Unreadable(h.blob_id, decryptor.status().message());
      return Status::Ok();
    }
    if (Status st = crypto::CheckBlobFileLength(decryptor->header(), h.reader->size()); !st.ok()) {
      Unreadable(h.blob_id, st.message());
      return Status::Ok();
    }
    const uint64_t at = crypto::DescriptionOffset(decryptor->header());
    Bytes sealed(static_cast<size_t>(h.reader->size() - at));
    if (Status st = h.reader->ReadAt(at, sealed); !st.ok()) {
      if (st.code() != StatusCode::kCorruption) return st;
      Unreadable(h.blob_id, st.message());
      return Status::Ok();
    }
    auto opened = decryptor->OpenDescription(sealed);
    auto description = opened.ok() ? catalog::DecodeBlobDescription(*opened) : Result<BlobDescription>(opened.status());
    if (!description.ok()) {
      Unreadable(h.blob_id, "description: " + description.status().message());
      return Status::Ok();
    }
    if (description->tenant_id != tenant) {
      Unreadable(h.blob_id, "its description names another tenant than its key");
      return Status::Ok();
    }
    h.reader.reset();
    const catalog::KeyInfo key{h.parsed.key.tenant_key_id, h.parsed.key.tenant_key_version,
                               h.parsed.key.wrapped_data_key};
    if (description->kind == BlobDescription::Kind::kKeyCopies) return KeepKeyCopies(h.blob_id, *description, key);
    if (description->kind == BlobDescription::Kind::kObjectUpdate) return KeepUpdate(h.blob_id, *description, *opened);
    return Keep(h.blob_id, *description, *opened, key);
  }

  Status Keep(const std::string& blob_id, const BlobDescription& d, ByteView description, const catalog::KeyInfo& key) {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        scratch_->PrepareCached(
            "INSERT INTO found(blob_id, kind, tenant_id, bucket_name, bucket_id, key, object_id, "
            "upload_id, last_modified, sequence, tenant_key_id, key_version, wrapped_key, description) "
            "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(blob_id, KindCode(d.kind), d.tenant_id, d.bucket_name, d.bucket_id, d.key,
                                      d.object_id, d.upload_id, d.last_modified, static_cast<int64_t>(d.sequence),
                                      key.tenant_key_id, key.tenant_key_version, key.wrapped_data_key, description));
    return st.Run();
  }

  // Remembers a key-copies blob (the new catalog lists it, so that fsck keeps it) and, for each
  // blob it names, the copy under the newest version.
  Status KeepKeyCopies(const std::string& blob_id, const BlobDescription& d, const catalog::KeyInfo& key) {
    ++report_.key_copy_blobs;
    key_copy_blobs_.push_back({blob_id, HexEncode(key.tenant_key_id), key.tenant_key_version});
    for (const catalog::KeyCopy& copy : d.key_copies) {
      COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                              scratch_->PrepareCached("INSERT INTO key_copies(blob_id, key_version, wrapped_key) "
                                                      "VALUES(?1, ?2, ?3) ON CONFLICT(blob_id) DO UPDATE SET "
                                                      "key_version = ?2, wrapped_key = ?3 WHERE key_version < ?2"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(copy.blob_id, copy.tenant_key_version, copy.wrapped_data_key));
      COFFRE_RETURN_IF_ERROR(st.Run());
    }
    return Status::Ok();
  }

  // Keeps, per object, the update with the highest sequence (the blob id breaks a tie, which one
  // gateway's sequence never makes): the newest carries the whole state, so older ones are dropped.
  Status KeepUpdate(const std::string& blob_id, const BlobDescription& d, ByteView description) {
    ++updates_read_;
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        scratch_->PrepareCached("INSERT INTO updates(tenant_id, object_id, blob_id, sequence, description) "
                                "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(tenant_id, object_id) DO UPDATE SET "
                                "blob_id = ?3, sequence = ?4, description = ?5 "
                                "WHERE ?4 > sequence OR (?4 = sequence AND ?3 > blob_id)"));
    COFFRE_RETURN_IF_ERROR(
        st.BindAll(d.tenant_id, d.object_id, blob_id, static_cast<int64_t>(d.sequence), description));
    return st.Run();
  }

  // The newest update of the object, applied to its row: its tags and lock, and the row names it (so that
  // fsck keeps it and the next update makes it garbage). An update that names the object's id
  // under another bucket or key is not the object's and is ignored.
  Status ApplyUpdate(const catalog::Bucket& bucket, catalog::ObjectRecord& rec) {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        scratch_->PrepareCached("SELECT blob_id, description FROM updates WHERE tenant_id = ? AND object_id = ?"));
    COFFRE_RETURN_IF_ERROR(st.BindAll(rec.tenant_id, rec.object_id));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Status::Ok();
    COFFRE_ASSIGN_OR_RETURN(BlobDescription update, catalog::DecodeBlobDescription(st.ColumnBlobView(1)));
    if (update.bucket_name != bucket.name || update.key != rec.key) return Status::Ok();
    rec.tags = std::move(update.tags);
    rec.lock = std::move(update.lock);
    rec.update_blob_id = st.ColumnText(0);
    ++report_.object_updates;
    return Status::Ok();
  }

  // Why a manifest cannot make its object ("" when it can): each part it names must be a
  // readable part blob of the same upload and number.
  Result<std::string> MissingPart(const BlobDescription& manifest) {
    for (const catalog::ObjectPart& p : manifest.parts) {
      COFFRE_ASSIGN_OR_RETURN(db::Statement st,
                              scratch_->PrepareCached("SELECT description FROM found WHERE blob_id = ? AND kind = ?"));
      COFFRE_RETURN_IF_ERROR(st.BindAll(p.blob_id, KindCode(BlobDescription::Kind::kPart)));
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) return "part " + std::to_string(p.part_number) + " (blob " + p.blob_id + ") is missing";
      COFFRE_ASSIGN_OR_RETURN(BlobDescription part, catalog::DecodeBlobDescription(st.ColumnBlobView(0)));
      if (part.upload_id != manifest.upload_id || part.part_number != p.part_number || part.size != p.size) {
        return "part " + std::to_string(p.part_number) + " (blob " + p.blob_id + ") belongs to another upload";
      }
    }
    return std::string();
  }

  // For each bucket name, the bucket (of all ids a tenant gave that name) whose newest object is
  // newest; for each of its keys, the versions that can be rebuilt: every version of its own and
  // the newest null version (catalog.h, "Versions"), written oldest first so that each write
  // leaves the one before it as S3 would have.
  Status ChooseAndWrite() {
    std::map<std::pair<std::string, std::string>, std::pair<UnixMillis, int64_t>> newest_bucket;
    {
      COFFRE_ASSIGN_OR_RETURN(
          db::Statement st, scratch_->Prepare("SELECT tenant_id, bucket_name, bucket_id, MAX(last_modified) FROM found "
                                              "WHERE kind != 1 GROUP BY tenant_id, bucket_name, bucket_id "
                                              "ORDER BY tenant_id, bucket_name, bucket_id"));
      while (true) {
        COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
        if (!row) break;
        auto& best = newest_bucket[{st.ColumnText(0), st.ColumnText(1)}];
        if (st.ColumnInt64(3) >= best.first) best = {st.ColumnInt64(3), st.ColumnInt64(2)};
      }
    }
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        scratch_->Prepare(
            "SELECT blob_id, tenant_id, bucket_name, bucket_id, key, tenant_key_id, key_version, "
            "wrapped_key, description FROM found WHERE kind != 1 "
            "ORDER BY tenant_id, bucket_name, bucket_id, key, last_modified DESC, sequence DESC, object_id DESC"));
    std::map<std::pair<std::string, std::string>, catalog::Bucket> buckets;
    std::vector<std::pair<catalog::Bucket, Found>> batch;
    std::vector<std::pair<catalog::Bucket, Found>> key_versions;  // the current key's, newest first
    auto end_key = [&]() -> Status {
      for (auto it = key_versions.rbegin(); it != key_versions.rend(); ++it) batch.push_back(std::move(*it));
      key_versions.clear();
      return batch.size() >= kBatch ? WriteBatch(batch) : Status::Ok();
    };
    Where current;
    bool null_kept = false;  // the current key has its null version
    while (true) {
      COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      Where where{st.ColumnText(1), st.ColumnText(2), st.ColumnInt64(3), st.ColumnText(4)};
      if (where != current) {
        COFFRE_RETURN_IF_ERROR(end_key());
        current = where;
        null_kept = false;
      }
      const auto& [tenant, name, bucket_id, key] = where;
      if (newest_bucket[{tenant, name}].second != bucket_id) {
        ++report_.superseded;  // a deleted bucket's leftovers
        continue;
      }
      COFFRE_ASSIGN_OR_RETURN(BlobDescription description, catalog::DecodeBlobDescription(st.ColumnBlobView(8)));
      if (description.null_version && null_kept) {
        ++report_.superseded;  // a null version overwritten by a newer one
        continue;
      }
      if (description.kind == BlobDescription::Kind::kManifest) {
        COFFRE_ASSIGN_OR_RETURN(std::string missing, MissingPart(description));
        if (!missing.empty()) {
          report_.incomplete.push_back(name + "/" + key + ": " + missing);
          continue;
        }
      }
      null_kept = null_kept || description.null_version;
      auto it = buckets.find({tenant, name});
      if (it == buckets.end()) {
        auto created = fresh_.CreateBucket(tenant, name);
        if (!created.ok()) {
          if (created.status().code() != StatusCode::kAlreadyExists) return created.status();
          report_.incomplete.push_back(name + "/" + key + ": another tenant's bucket has that name");
          continue;
        }
        ++report_.buckets;
        it = buckets.emplace(std::make_pair(tenant, name), *created).first;
      }
      key_versions.emplace_back(
          it->second,
          Found{st.ColumnText(0), std::move(description),
                catalog::KeyInfo{st.ColumnBlob(5), static_cast<uint32_t>(st.ColumnInt64(6)), st.ColumnBlob(7)}});
    }
    COFFRE_RETURN_IF_ERROR(end_key());
    return WriteBatch(batch);
  }

  // Parts of uploads that no manifest names: uploads never completed (or whose manifest is lost).
  Status CountUnfinishedParts() {
    COFFRE_ASSIGN_OR_RETURN(
        db::Statement st,
        scratch_->Prepare("SELECT count(*) FROM found AS p WHERE p.kind = 1 AND NOT EXISTS("
                          "SELECT 1 FROM found AS m WHERE m.upload_id = p.upload_id AND m.kind = 2)"));
    COFFRE_ASSIGN_OR_RETURN(bool row, st.Step());
    if (row) report_.unfinished_parts = static_cast<uint64_t>(st.ColumnInt64(0));
    return Status::Ok();
  }

  Status WriteBatch(std::vector<std::pair<catalog::Bucket, Found>>& batch) {
    std::vector<audit::Event> events;
    events.reserve(batch.size());
    for (const auto& [bucket, f] : batch) {
      events.push_back(internal::KeyEvent(audit::Operation::kDataKeyRewrap, bucket, f.description.key,
                                          f.description.object_id, f.header_key.tenant_key_id,
                                          f.header_key.tenant_key_version, &request_));
    }
    COFFRE_RETURN_IF_ERROR(RecordAll(events));
    for (const auto& [bucket, f] : batch) COFFRE_RETURN_IF_ERROR(WriteObject(bucket, f));
    batch.clear();
    return Status::Ok();
  }

  Status WriteObject(const catalog::Bucket& bucket, const Found& f) {
    const BlobDescription& d = f.description;
    const keystore::KeyRef key_ref(d.tenant_id, HexEncode(f.header_key.tenant_key_id));
    COFFRE_ASSIGN_OR_RETURN(SecretBytes data_key,
                            keys_.UnwrapDataKey(key_ref, f.header_key.tenant_key_version, f.header_key.wrapped_data_key,
                                                internal::BlobHeaderKeyAad(f.blob_id)));
    catalog::ObjectRecord rec;
    rec.bucket_id = bucket.id;
    rec.tenant_id = d.tenant_id;
    rec.key = d.key;
    rec.object_id = d.object_id;
    rec.size = d.size;
    rec.etag = d.etag;
    rec.last_modified = d.last_modified;
    rec.attributes = d.attributes;
    rec.tags = d.tags;
    rec.lock = d.lock;
    rec.null_version = d.null_version;
    rec.key_info.tenant_key_id = f.header_key.tenant_key_id;
    rec.key_info.tenant_key_version = f.header_key.tenant_key_version;
    COFFRE_ASSIGN_OR_RETURN(rec.key_info.wrapped_data_key,
                            keys_.WrapDataKey(key_ref, f.header_key.tenant_key_version, data_key,
                                              internal::DataKeyAad(bucket.name, d.key, d.object_id)));
    if (d.kind == BlobDescription::Kind::kDeleteMarker) {
      rec.delete_marker = true;
      rec.manifest_blob_id = f.blob_id;
      NoteBucketState(bucket, rec);
      COFFRE_RETURN_IF_ERROR(fresh_.PutDeleteMarker(rec));
      ++report_.delete_markers;
      return Status::Ok();
    }
    if (d.kind == BlobDescription::Kind::kManifest) {
      rec.parts = d.parts;
      rec.manifest_blob_id = f.blob_id;
      ++report_.multipart_objects;
    } else {
      rec.parts.push_back(catalog::ObjectPart{0, f.blob_id, d.size, d.etag, {}});
    }
    COFFRE_RETURN_IF_ERROR(ApplyUpdate(bucket, rec));
    NoteBucketState(bucket, rec);
    COFFRE_RETURN_IF_ERROR(fresh_.PutObject(rec));
    ++report_.objects;
    return Status::Ok();
  }

  // A bucket's settings live in its catalog row alone, but its versions tell two of them: one
  // with versions of its own (not null) had versioning, and one with a retention or a legal hold
  // had Object Lock. Both come back (versioning as Enabled: it may have been Suspended, and
  // keeping every version is the safe side), so that Object Lock keeps its guarantees; a default
  // retention does not.
  void NoteBucketState(const catalog::Bucket& bucket, const catalog::ObjectRecord& rec) {
    BucketState& state = bucket_states_.try_emplace(bucket.id, BucketState{bucket}).first->second;
    state.versioned = state.versioned || !rec.null_version;
    state.locked = state.locked || !rec.lock.empty();
  }

  Status RestoreBucketSettings() {
    for (const auto& [id, state] : bucket_states_) {
      catalog::SettingChanges changes;
      if (state.versioned || state.locked) {
        changes[std::string(kVersioningSetting)] = std::string(kVersioningEnabled);
        ++report_.versioned_buckets;
      }
      if (state.locked) {
        changes[std::string(kObjectLockSetting)] = std::string(kObjectLockEnabled);
        ++report_.locked_buckets;
      }
      if (!changes.empty()) COFFRE_RETURN_IF_ERROR(fresh_.UpdateBucketSettings(state.bucket, changes));
    }
    return Status::Ok();
  }

  keystore::TenantKeyStore& keys_;
  storage::BlobStore& blobs_;
  catalog::Catalog& fresh_;
  audit::Recorder* audit_;
  const audit::RequestInfo& request_;
  const std::string scratch_path_;
  std::unique_ptr<db::Connection> scratch_;
  RebuildReport report_;
  using Where = std::tuple<std::string, std::string, int64_t, std::string>;  // tenant, bucket, bucket id, key
  std::vector<std::string> deferred_;                                        // blobs whose header's key version is gone
  std::vector<catalog::KeyCopyBlob> key_copy_blobs_;                         // those read, for the new catalog
  std::map<std::string, std::set<uint32_t>> versions_;                       // key id -> its versions that exist
  std::map<std::string, std::string> owners_;                                // key id -> its tenant id
  uint64_t updates_read_ = 0;                                                // attributes-update blobs read
  struct BucketState {
    catalog::Bucket bucket;
    bool versioned = false;
    bool locked = false;
  };
  std::map<int64_t, BucketState> bucket_states_;  // by id, the buckets written to
};

}  // namespace

Result<RebuildReport> RebuildCatalog(keystore::TenantKeyStore& keys, storage::BlobStore& blobs, catalog::Catalog& fresh,
                                     const std::string& scratch_path, audit::Recorder* audit,
                                     const audit::RequestInfo& request) {
  RemoveScratch(scratch_path);  // a rebuild cut short left it
  Result<RebuildReport> report = Rebuild(keys, blobs, fresh, scratch_path, audit, request).Run();
  RemoveScratch(scratch_path);
  return report;
}

}  // namespace coffre::service
