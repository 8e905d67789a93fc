#pragma once

// The catalog: buckets, objects, multipart uploads and their parts, in SQLite (WAL,
// synchronous=FULL). It knows nothing of S3 or keys beyond the opaque fields it stores.
//
// Thread safety: all methods may be called from any thread concurrently. Writes are serialized
// on one writer connection; reads use a small pool of reader connections, so a long write does
// not block reads (WAL). Every mutation is one transaction: it is durable when the method
// returns OK, and a crash leaves the catalog as before or as after, never in between.
//
// Bucket identity: a bucket id is never handed out twice, and every row of an object or upload
// carries the tenant that owns its bucket. A request resolves its bucket once, at its start, and
// may outlive it; so every write into a bucket checks, inside its transaction, that the bucket it
// names (id and tenant) still exists, and fails with Aborted when it does not: the bucket was
// deleted (or its tenant shredded) meanwhile.
//
// Versions: a key has at most one current object (its latest version, unless that is a delete
// marker) and any number of noncurrent versions and delete markers, newest first. An object's
// version id is its object id, except for the key's null version (S3's "null": written while the
// bucket's versioning was never enabled or is suspended), of which a key has at most one. A write
// replaces the current object when both are null versions; otherwise the current one becomes
// noncurrent, and a null version written replaces the key's noncurrent null version, if any.
// Without versioning every object is a null version, so a write replaces as it always did.
//
// Blob lifecycle: a mutation that makes blobs unreachable (overwrite, delete, abort, a part
// replaced or left out of a Complete, bucket delete) records their ids in a `garbage` table in the
// same transaction. The service deletes the files later and then calls ForgetGarbage(), so a crash
// between the two never leaks a file nor loses one that is still referenced.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"

namespace coffre::catalog {

// Opaque string attributes stored with an object or upload (content type, user metadata,
// checksums, ...). The catalog stores and returns them unchanged.
using Attributes = std::map<std::string, std::string>;

// An object's or a bucket's tag set (S3 object and bucket tagging): key -> value, keys unique. The
// s3 module checks S3's rules; the catalog stores and returns the set unchanged.
using Tags = std::map<std::string, std::string>;

// Changes to a bucket's settings: name -> the new value, or nullopt to remove the setting.
using SettingChanges = std::map<std::string, std::optional<std::string>>;

// The version id of every key's null version; other versions are named by their object ids, which
// are hex.
inline constexpr std::string_view kNullVersionId = "null";

struct Bucket {
  int64_t id = 0;
  std::string tenant_id;
  std::string name;
  UnixMillis created = 0;
  // Its settings as GetBucket read them (see GetBucketSettings); a request acts on the settings
  // its bucket had when it was resolved.
  Attributes settings;
};

// Object Lock (S3's write-once-read-many): a version's retention and legal hold. While either
// protects a version, the catalog refuses to remove it (PermissionDenied), whoever asks: a delete
// of that version, or a write that would replace it (a null version). Crypto-shredding, which
// checks first (ListProtectedVersions), is the only other way out.
inline constexpr std::string_view kGovernanceMode = "GOVERNANCE";
inline constexpr std::string_view kComplianceMode = "COMPLIANCE";
inline constexpr std::string_view kLegalHoldOn = "ON";
inline constexpr std::string_view kLegalHoldOff = "OFF";

struct ObjectLock {
  std::string mode;             // "" (no retention), kGovernanceMode or kComplianceMode
  UnixMillis retain_until = 0;  // with a mode: until when (exclusive) the retention holds
  std::string legal_hold;       // "" (never set), kLegalHoldOn or kLegalHoldOff

  bool empty() const { return mode.empty() && legal_hold.empty(); }
  bool legal_hold_on() const { return legal_hold == kLegalHoldOn; }
  // A retention that still holds at `now`.
  bool RetainedAt(UnixMillis now) const { return !mode.empty() && retain_until > now; }
  // Whether the version may not be removed at `now`: a legal hold, or a retention that holds
  // (a GOVERNANCE one not when `bypass_governance`).
  bool Protects(UnixMillis now, bool bypass_governance) const {
    return legal_hold_on() || (RetainedAt(now) && !(bypass_governance && mode == kGovernanceMode));
  }
  bool operator==(const ObjectLock&) const = default;
};

// How the object's data key is wrapped (see crypto/blob_format.h KeyReference).
struct KeyInfo {
  Bytes tenant_key_id;
  uint32_t tenant_key_version = 0;
  Bytes wrapped_data_key;
};

// One stored blob of an object: a single PUT has one part (number 0); a multipart object has
// one per completed part, in part-number order.
struct ObjectPart {
  uint32_t part_number = 0;
  std::string blob_id;
  uint64_t size = 0;      // plaintext bytes
  std::string etag;       // hex MD5 of the part's plaintext (unquoted)
  Attributes attributes;  // e.g. the part's checksums
};

struct ObjectRecord {
  int64_t bucket_id = 0;
  std::string tenant_id;  // the bucket's owner: a write into a bucket of another tenant is refused
  std::string key;
  std::string object_id;  // random id of this object version (audit, blob AAD of single PUTs)
  uint64_t size = 0;
  std::string etag;  // unquoted: hex MD5, or hex-N for multipart
  UnixMillis last_modified = 0;
  Attributes attributes;
  KeyInfo key_info;
  std::vector<ObjectPart> parts;
  // A completed multipart upload's manifest blob (docs/FORMAT.md), removed with the object; ""
  // for a single-PUT object and for uploads completed before manifests were written. A delete
  // marker's: the blob that describes it.
  std::string manifest_blob_id;
  Tags tags;  // loaded by GetObject, not by listings
  // The object's newest attributes-update blob (docs/FORMAT.md, "object_update"): what a rebuild
  // reads for the tags set after the object was written. "" when they were never changed. A new
  // object has none; SetObjectTags names one, and a rebuild puts back the one it read.
  std::string update_blob_id;
  // The key's null version (see "Versions" above), whose version id is kNullVersionId.
  bool null_version = true;
  // Its retention and legal hold (loaded by GetObject and GetObjectVersion, not by listings).
  ObjectLock lock;
  // A delete marker: a version that says the key was deleted. It has an object id (its version id)
  // and a last_modified, and no data; the data key of the blob that describes it (in
  // manifest_blob_id) when it has one.
  bool delete_marker = false;

  std::string version_id() const { return null_version ? std::string(kNullVersionId) : object_id; }
};

// Conditions checked inside the write transaction (conditional writes).
struct WriteCondition {
  bool if_none_match_any = false;            // fail with AlreadyExists... see PutObject
  std::optional<std::string> if_match_etag;  // unquoted etag, or "*" for any existing object
};

struct ListQuery {
  std::string prefix;
  std::string delimiter;     // empty: no grouping
  std::string start_after;   // exclusive; keys (and common prefixes) <= this are skipped
  uint32_t max_keys = 1000;  // objects + common prefixes returned, at most
};

struct ListEntry {
  // Exactly one of these is set: an object, or a common prefix ending with the delimiter.
  std::optional<ObjectRecord> object;  // parts are not loaded by listings (parts empty)
  std::string common_prefix;
};

struct ListPage {
  std::vector<ListEntry> entries;  // in UTF-8 byte order of key / prefix
  bool is_truncated = false;
  std::string next_marker;  // the last key or common prefix returned (when truncated)
};

struct VersionListQuery {
  std::string prefix;
  std::string delimiter;
  std::string key_marker;         // exclusive: versions of keys <= this are skipped...
  std::string version_id_marker;  // ...unless this names a version of key_marker: then those after it
  uint32_t max_keys = 1000;       // versions, delete markers and common prefixes, at most
};

struct VersionEntry {
  // Exactly one of these is set: a version (an object, or a delete marker), or a common prefix.
  std::optional<ObjectRecord> version;  // parts not loaded
  bool is_latest = false;
  std::string common_prefix;
};

struct VersionListPage {
  std::vector<VersionEntry> entries;  // keys in UTF-8 byte order, each key's versions newest first
  bool is_truncated = false;
  // When truncated: the last entry's key (or common prefix) and version id ("" after a prefix).
  std::string next_key_marker;
  std::string next_version_id_marker;
};

struct UploadRecord {
  std::string upload_id;
  int64_t bucket_id = 0;
  std::string tenant_id;  // the bucket's owner, as in ObjectRecord
  std::string key;
  UnixMillis initiated = 0;
  Attributes attributes;
  KeyInfo key_info;
  Tags tags;  // x-amz-tagging of CreateMultipartUpload: the completed object's tags
  // The x-amz-object-lock-* headers of CreateMultipartUpload, for the completed object.
  ObjectLock lock;
};

// What may change on a version after it was written, without rewriting its data: its tags and
// its Object Lock state, always replaced together (see UpdateObject).
struct ObjectUpdate {
  Tags tags;
  ObjectLock lock;
};

// A version that Object Lock protects (ListProtectedVersions).
struct ProtectedVersion {
  std::string bucket;  // its name
  std::string key;
  std::string version_id;
  ObjectLock lock;
};

struct PartRecord {
  uint32_t part_number = 0;  // 1..10000
  std::string blob_id;
  uint64_t size = 0;
  std::string etag;  // unquoted hex MD5
  UnixMillis last_modified = 0;
  Attributes attributes;
};

struct UploadListQuery {
  std::string prefix;
  std::string delimiter;
  std::string key_marker;
  std::string upload_id_marker;
  uint32_t max_uploads = 1000;
};

struct UploadListPage {
  std::vector<UploadRecord> uploads;
  std::vector<std::string> common_prefixes;
  bool is_truncated = false;
  std::string next_key_marker;
  std::string next_upload_id_marker;
};

// A data key as an object or upload row stores it: what rewrap reads and compare-and-swaps.
struct WrappedKeyRow {
  bool is_upload = false;
  bool noncurrent = false;  // a noncurrent version of an object, which version_order names
  int64_t version_order = 0;
  int64_t bucket_id = 0;
  std::string key;        // the object's (or upload's) key
  std::string upload_id;  // uploads only
  std::string object_id;  // objects: the object id; uploads: the upload id (the data key's aad)
  KeyInfo key_info;
  // Every blob the row names (an object's parts, its manifest, then its attributes-update blob;
  // an upload's parts so far), whose header copies of the data key a rewrap copies under the new
  // version.
  std::vector<std::string> blob_ids;
  // Objects: the attributes-update blob as read. A rewrap updates the row only if it still names
  // this one, so that an update blob written meanwhile is never left without its key copy.
  std::string update_blob_id;
};

// Where a walk over one key version's rows resumes: after (bucket_id, key) for current objects,
// then after (bucket_id, key, version_order) for noncurrent versions, then after upload_id for
// uploads.
struct WrappedKeyCursor {
  bool in_noncurrent = false;
  bool in_uploads = false;
  int64_t bucket_id = 0;
  std::string key;
  int64_t version_order = 0;
  std::string upload_id;
};

struct KeyRewrap {
  WrappedKeyRow old_row;  // as read: the row is updated only if it still holds this
  uint32_t new_version = 0;
  Bytes new_wrapped_data_key;
};

// A key-copies blob (catalog/blob_description.h): copies of data keys under one version of a
// tenant's key (its default key or a named key). It is kept while that version exists and goes
// to garbage when it is destroyed, or its key or tenant is.
struct KeyCopyBlob {
  std::string blob_id;
  std::string key_id;  // hex: the tenant id for a tenant's default key
  uint32_t key_version = 0;
};

struct GarbageBlob {
  std::string blob_id;
  UnixMillis since = 0;  // when it became unreachable
};

// Which catalog rows name a blob (ListBlobIds). The objects' sources cover every version of them.
enum class BlobRefSource { kObjectParts, kUploadParts, kManifests, kKeyCopies, kObjectUpdates, kGarbage };

class Catalog {
 public:
  virtual ~Catalog() = default;

  // Opens (creating and migrating as needed) the catalog database at `path`.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path, const Clock& clock = Clock::System());

  // --- buckets ---------------------------------------------------------------------------
  // AlreadyExists if a bucket of that name exists (whoever owns it; the caller tells apart).
  // `settings` are its first settings (see GetBucketSettings), stored in the same transaction.
  virtual Result<Bucket> CreateBucket(const std::string& tenant_id, const std::string& name,
                                      const Attributes& settings = {}) = 0;
  // NotFound. A bucket another process deleted (`coffre tenant shred` beside the daemon), or
  // whose settings it changed, may still be returned as it was for up to a second.
  virtual Result<Bucket> GetBucket(const std::string& name) = 0;
  virtual Result<std::vector<Bucket>> ListBuckets(const std::string& tenant_id) = 0;  // by name
  // Every tenant's buckets, by id (background work that visits them all).
  virtual Result<std::vector<Bucket>> ListEveryBucket() = 0;
  // FailedPrecondition if it still holds objects, noncurrent versions or delete markers; in-progress uploads are
  // aborted with it (their parts go to garbage). NotFound if no bucket has bucket.id and bucket.tenant_id.
  virtual Status DeleteBucket(const Bucket& bucket) = 0;
  // The bucket's tag set; empty when it has none. NotFound if no bucket has bucket.id and
  // bucket.tenant_id.
  virtual Result<Tags> GetBucketTags(const Bucket& bucket) = 0;
  // Replaces the bucket's tag set (empty: removes it). NotFound as GetBucketTags.
  virtual Status SetBucketTags(const Bucket& bucket, const Tags& tags) = 0;
  // The bucket's settings: name -> value, opaque to the catalog (the s3 module's bucket
  // configurations); empty when it has none. NotFound as GetBucketTags.
  virtual Result<Attributes> GetBucketSettings(const Bucket& bucket) = 0;
  // In one transaction, applies `changes` to the bucket's settings; the others stay as they are,
  // so that two changes of different settings never undo each other. NotFound as GetBucketTags.
  virtual Status UpdateBucketSettings(const Bucket& bucket, const SettingChanges& changes) = 0;

  // --- objects ---------------------------------------------------------------------------
  // Makes `rec` the current object of (rec.bucket_id, rec.key), atomically, keeping or replacing
  // the key's other versions as "Versions" above says. Aborted if the bucket
  // (rec.bucket_id, rec.tenant_id) no longer exists. Conditions apply to the current object:
  // if_none_match_any and the key has one -> FailedPrecondition; if_match_etag set and it has
  // none -> NotFound; has one with another etag -> FailedPrecondition.
  // The replaced versions' blobs go to garbage. PermissionDenied, and nothing changed, when the
  // version it would replace (a null version) is protected by Object Lock.
  virtual Status PutObject(const ObjectRecord& rec, const WriteCondition& cond = {}) = 0;
  // The current object, with parts. NotFound when the key has none (its latest version may be a
  // delete marker).
  virtual Result<ObjectRecord> GetObject(int64_t bucket_id, const std::string& key) = 0;
  // One version of the key (an object with parts, or a delete marker) by version id, or its
  // latest version when `version_id` is "". NotFound if there is none.
  virtual Result<ObjectRecord> GetObjectVersion(int64_t bucket_id, const std::string& key,
                                                const std::string& version_id) = 0;
  // Removes the key's null version, which must be its current object (a bucket whose versioning
  // was never enabled). NotFound if absent; Aborted if the bucket (bucket.id, bucket.tenant_id) no
  // longer exists; PermissionDenied if Object Lock protects it. The object's blobs go to garbage.
  virtual Status DeleteObject(const Bucket& bucket, const std::string& key) = 0;
  // Adds `marker` (a delete marker: bucket, tenant, key, object id, last_modified, null_version,
  // and the key and id of the blob that describes it, if any) as the key's latest version, which the current object, if
  // any, leaves as PutObject describes. Aborted as PutObject; PermissionDenied as PutObject.
  virtual Status PutDeleteMarker(const ObjectRecord& marker) = 0;
  // Removes one version of the key for good and returns it (without parts). When it was the
  // latest, the newest remaining version becomes the latest, and the current object if it is not
  // a delete marker. NotFound if the key has no such version; Aborted as DeleteObject;
  // PermissionDenied if Object Lock protects it (ObjectLock::Protects, by the catalog's clock).
  virtual Result<ObjectRecord> DeleteObjectVersion(const Bucket& bucket, const std::string& key,
                                                   const std::string& version_id, bool bypass_governance = false) = 0;
  // Every version and delete marker of the bucket, by key and then newest first.
  virtual Result<VersionListPage> ListObjectVersions(int64_t bucket_id, const VersionListQuery& query) = 0;
  // Replaces the tags and the Object Lock state of the version `object_id` of the key (its
  // current object or a noncurrent version) if that version's data key is still under `key_version` and it still names
  // `replaced_update_blob_id` ("" for none) as its
  // attributes-update blob, and names `update_blob_id` (which holds the new state, sealed under the
  // object's data key) instead; the one it replaces goes to garbage. Requiring the update the
  // caller read keeps the named updates' sequence numbers increasing, which is the order a rebuild
  // applies them in: of two racing changes, the one that read the older state is refused.
  // NotFound if the key has no such version and no current object; FailedPrecondition if it has
  // no such version but another current object, a rewrap moved its key or another change replaced
  // the update meanwhile (the caller writes a new update
  // blob and tries again); Aborted if the bucket no longer exists. The caller removes
  // update_blob_id on any error.
  // The caller decides whether the change of lock is allowed, on the state it read: requiring
  // that state's update makes the decision hold.
  virtual Status UpdateObject(const Bucket& bucket, const std::string& key, const std::string& object_id,
                              uint32_t key_version, const std::string& replaced_update_blob_id,
                              const ObjectUpdate& update, const std::string& update_blob_id) = 0;
  virtual Result<ListPage> ListObjects(int64_t bucket_id, const ListQuery& query) = 0;
  // Number of objects in the bucket (for tests/metrics; may be slow on huge buckets).
  virtual Result<uint64_t> CountObjects(int64_t bucket_id) = 0;

  // --- multipart uploads ----------------------------------------------------------------
  // Aborted if the bucket (upload.bucket_id, upload.tenant_id) no longer exists.
  virtual Status CreateUpload(const UploadRecord& upload) = 0;
  virtual Result<UploadRecord> GetUpload(const std::string& upload_id) = 0;  // NotFound
  // Inserts or replaces part `part.part_number`; a replaced part's blob goes to garbage.
  // NotFound if the upload no longer exists (then the caller must discard part.blob_id itself).
  // With `key_version`: the version under which the part's blob holds a copy of the upload's
  // data key (its header's, or a key-copies blob's). The part is stored only while the upload's
  // data key is wrapped under that version; if a rewrap moved it, nothing is stored,
  // *key_version becomes the upload's version and the call returns Aborted, so that a rebuild
  // never meets a part whose key only a destroyed version opens.
  virtual Status PutPart(const std::string& upload_id, const PartRecord& part, uint32_t* key_version = nullptr) = 0;
  // Parts with part_number > marker, ascending, at most max_parts.
  virtual Result<std::vector<PartRecord>> ListParts(const std::string& upload_id, uint32_t part_number_marker,
                                                    uint32_t max_parts) = 0;
  virtual Result<UploadListPage> ListUploads(int64_t bucket_id, const UploadListQuery& query) = 0;
  // In one transaction: verifies the upload exists (NotFound) in object's bucket, key and tenant,
  // and the bucket too (Aborted), applies `cond` as PutObject does,
  // writes `object` (whose parts must be a subset of the upload's parts, same blob ids), deletes
  // the upload and its part rows; parts not used by the object and any replaced object go to garbage.
  // object.key_info is the upload's wrapping as the caller read it, the one its manifest's header
  // copy is under: if a rewrap moved the upload's data key to another version since, nothing is
  // stored, *key_version (when given) becomes that version and the call returns Aborted.
  virtual Status CompleteUpload(const std::string& upload_id, const ObjectRecord& object,
                                const WriteCondition& cond = {}, uint32_t* key_version = nullptr) = 0;
  // NotFound if absent; all its parts go to garbage.
  virtual Status AbortUpload(const std::string& upload_id) = 0;

  // --- garbage ---------------------------------------------------------------------------
  virtual Result<std::vector<GarbageBlob>> ListGarbage(uint32_t limit) = 0;
  virtual Status ForgetGarbage(const std::vector<std::string>& blob_ids) = 0;
  // True if any object, upload part or key-copies row references the blob (for fsck and for
  // start-up cleanup).
  virtual Result<bool> IsBlobReferenced(const std::string& blob_id) = 0;
  // The blob ids that `source`'s rows name, in id order, greater than `after` ("" from the
  // start), at most `limit` (fsck pages through with the last id returned). Not a snapshot across
  // pages: rows written meanwhile may or may not appear.
  virtual Result<std::vector<std::string>> ListBlobIds(BlobRefSource source, const std::string& after,
                                                       uint32_t limit) = 0;

  // --- key lifecycle (rewrap, key destruction, crypto-shredding) --------------------------
  // For one tenant key id: key version -> number of object versions (current and noncurrent) plus
  // in-progress uploads whose data key is wrapped under it.
  virtual Result<std::map<uint32_t, uint64_t>> CountKeyVersions(ByteView tenant_key_id) = 0;
  // Up to `limit` current object rows, then noncurrent version rows, then upload rows, of that tenant key id wrapped
  // under `version`, after `cursor`, which is advanced past the rows returned. Empty when the walk is done.
  virtual Result<std::vector<WrappedKeyRow>> ListWrappedKeys(ByteView tenant_key_id, uint32_t version,
                                                             WrappedKeyCursor* cursor, uint32_t limit) = 0;
  // In one transaction, updates each row's key version and wrapped data key if the row still
  // holds exactly old_row's object id, version and wrapped key, for an object the attributes-update
  // blob among old_row.blob_ids, and, for an upload, no part blob besides old_row.blob_ids
  // (compare-and-swap): a row that was overwritten, deleted, completed or re-tagged meanwhile, or
  // an upload that got a part, is left as it is; and records `key_copies`,
  // the blobs that hold the rows' blob-bound copies under the new version. Returns how many rows
  // were updated.
  virtual Result<uint64_t> RewrapKeys(const std::vector<KeyRewrap>& rewraps,
                                      const std::vector<KeyCopyBlob>& key_copies) = 0;
  // Records key-copies blobs (those a rebuild found; a writer's that met a destruction).
  virtual Status AddKeyCopyBlobs(const std::vector<KeyCopyBlob>& key_copies) = 0;
  // Once a key version is destroyed, the copies under it open nothing: its key-copies blobs go to
  // garbage (every version's when key_version is nullopt: a destroyed named key). Returns how many.
  virtual Result<uint64_t> DropKeyCopyBlobs(const std::string& key_id, std::optional<uint32_t> key_version) = 0;
  // Removes up to about `max_rows` objects (every version) and uploads of the tenant's buckets in one
  // transaction (their blobs go to garbage), and the tenant's buckets once empty, and then its
  // key-copies blobs (to garbage too). Returns how many rows it removed; 0 when the tenant has
  // nothing left.
  virtual Result<uint64_t> DeleteTenantData(const std::string& tenant_id, uint32_t max_rows) = 0;
  // Up to `limit` versions of the tenant (current and noncurrent) that Object Lock protects at
  // `now` (ObjectLock::Protects, with `bypass_governance`), by bucket and key; *total, when given,
  // is how many there are in all. With `key_id`, only the versions whose data key is under that
  // key (KeyInfo::tenant_key_id).
  virtual Result<std::vector<ProtectedVersion>> ListProtectedVersions(const std::string& tenant_id, UnixMillis now,
                                                                      bool bypass_governance, uint32_t limit,
                                                                      uint64_t* total = nullptr,
                                                                      ByteView key_id = {}) = 0;
};

}  // namespace coffre::catalog
