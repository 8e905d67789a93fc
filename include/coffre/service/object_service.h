#pragma once

// The object service: the only module that joins catalog, keystore, crypto and storage
// (docs/ARCHITECTURE.md). It speaks in buckets, keys and byte streams; the s3 module turns its
// errors into S3 errors.
//
// Threading: every method blocks (disk, SQLite) and is safe to call concurrently; the caller
// runs it off the network threads. Readers and writers are used by one thread at a time.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/catalog/blob_description.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"
#include "coffre/common/clock.h"
#include "coffre/common/status.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/crypto/checksum.h"
#include "coffre/keystore/keystore.h"
#include "coffre/storage/blob_store.h"

namespace coffre::service {

enum class Errc {
  kNoSuchBucket,
  kNoSuchKey,
  kNoSuchUpload,
  kNoSuchVersion,
  kMethodNotAllowed,     // a version that is a delete marker, asked for its data
  kAccessDenied,         // the bucket belongs to another tenant, or Object Lock forbids the change
  kBucketAlreadyExists,  // ... owned by another tenant
  kBucketAlreadyOwnedByYou,
  kBucketNotEmpty,
  kInvalidBucketState,      // a bucket configuration its other settings forbid (versioning and Object Lock)
  kNoSuchEncryptionKey,     // a named key the tenant does not have
  kEncryptionKeyDestroyed,  // a named key destroyed: nothing can be encrypted under it any more
  kPreconditionFailed,
  kInvalidPart,
  kInvalidPartOrder,
  kEntityTooSmall,
  kEntityTooLarge,
  kBadDigest,  // Content-MD5 or a checksum did not match the data
  kInvalidArgument,
  kInvalidRequest,  // a request that contradicts what it refers to (e.g. an upload's checksum type)
  kInvalidRange,
  kNoSpace,      // storage full
  kUnavailable,  // transient (database busy, ...)
  kCorruption,   // stored data failed its integrity check
  kInternal,
};

// A delete marker, as S3 names it in the answer of a read it refused.
struct DeleteMarkerRef {
  std::string version_id;
  UnixMillis last_modified = 0;
};

struct Error {
  Errc code = Errc::kInternal;
  std::string message;
  // kNoSuchKey when the key's latest version is a delete marker, kMethodNotAllowed: that marker.
  std::optional<DeleteMarkerRef> delete_marker;
};

struct Done {};

template <typename T>
using SResult = Expected<T, Error>;

// How an object (or a part) is encrypted, as S3 reports it: the hex id of the key its data key is
// under (the tenant id for its default key), whether it reports aws:kms (asked for as aws:kms, or
// under a named key) rather than AES256, and whether its writer enabled S3 Bucket Keys.
struct EncryptionReport {
  std::string key_id;
  bool kms = false;
  bool bucket_key = false;
};

// Metadata of an object as the protocol layer needs it.
struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  std::string etag;  // unquoted
  UnixMillis last_modified = 0;
  catalog::Attributes attributes;
  std::vector<uint64_t> part_sizes;  // multipart objects: plaintext size of each part, in order
  // Multipart objects: each part's checksums (x-amz-checksum-* attributes), in the same order.
  std::vector<catalog::Attributes> part_checksums;
  bool multipart = false;
  catalog::Tags tags;
  // The version's id when the bucket has versioning (enabled or suspended) or the caller named a
  // version; "" otherwise (S3 reports none).
  std::string version_id;
  catalog::ObjectLock lock;  // its retention and legal hold
  EncryptionReport encryption;
};

// The bucket's setting `name` as its settings were read (catalog::Bucket::settings); "" if unset.
inline std::string_view BucketSetting(const catalog::Bucket& bucket, std::string_view name) {
  const auto it = bucket.settings.find(std::string(name));
  return it == bucket.settings.end() ? std::string_view() : std::string_view(it->second);
}

// A bucket's versioning, kept in its settings (catalog::Bucket::settings) under kVersioningSetting:
// absent until versioning is first enabled, then kVersioningEnabled or kVersioningSuspended.
inline constexpr std::string_view kVersioningSetting = "versioning";
inline constexpr std::string_view kVersioningEnabled = "Enabled";
inline constexpr std::string_view kVersioningSuspended = "Suspended";

// A bucket's Object Lock configuration, kept in its settings: kObjectLockSetting is
// kObjectLockEnabled once Object Lock is enabled (for good: it cannot be disabled, and versioning
// can no longer be suspended); a default retention, when there is one, is its mode and a period
// of days or years.
inline constexpr std::string_view kObjectLockSetting = "object_lock";
inline constexpr std::string_view kObjectLockEnabled = "Enabled";
inline constexpr std::string_view kObjectLockModeSetting = "object_lock_mode";
inline constexpr std::string_view kObjectLockDaysSetting = "object_lock_days";
inline constexpr std::string_view kObjectLockYearsSetting = "object_lock_years";

struct ObjectLockConfiguration {
  bool enabled = false;
  std::string default_mode;    // "" (no default retention), catalog::kGovernanceMode or kComplianceMode
  uint32_t default_days = 0;   // with a mode: one of days and years is set
  uint32_t default_years = 0;  // a year is 365 days
};
ObjectLockConfiguration ObjectLockOf(const catalog::Bucket& bucket);

// Whether a version's retention may go from `current` to `mode` until `retain_until` (mode "":
// removed) at `now`: InvalidArgument when the new date is not in the future; AccessDenied when a
// retention that still holds would be shortened, removed or have its mode changed, except that a
// GOVERNANCE one may be with `bypass_governance`. A COMPLIANCE retention can only be extended.
std::optional<Error> CheckRetentionChange(const catalog::ObjectLock& current, std::string_view mode,
                                          UnixMillis retain_until, UnixMillis now, bool bypass_governance);

// Whether `id` can name a version: kNullVersionId, or the form of an object id.
bool IsVersionId(std::string_view id);

// What a delete did, as S3 reports it.
struct DeleteOutcome {
  // The version removed or the delete marker added: its id; "" when the bucket has no versioning
  // and no version was named.
  std::string version_id;
  bool delete_marker = false;  // a delete marker was added, or the version removed was one
};

struct PutResult {
  std::string etag;  // unquoted
  UnixMillis last_modified = 0;
  std::map<crypto::ChecksumAlgorithm, Bytes> checksums;  // computed over the plaintext
  // A multipart object's: kFullObjectChecksum or kCompositeChecksum; "" for a single PUT's (whose
  // checksums are of the whole object).
  std::string checksum_type;
  // The new version's id when the bucket has versioning (enabled or suspended); "" otherwise.
  std::string version_id;
  EncryptionReport encryption;  // a part's: by its upload's key alone
};

// How an object's encryption was asked for, kept among its attributes with the names of the
// S3 headers that report it: kEncryptionAttribute is "aws:kms" for an object written under a named
// key, or asked for as aws:kms (absent: AES256, what every other object reports), and
// kBucketKeyAttribute "true" when the request enabled S3 Bucket Keys.
inline constexpr std::string_view kEncryptionAttribute = "x-amz-server-side-encryption";
inline constexpr std::string_view kBucketKeyAttribute = "x-amz-server-side-encryption-bucket-key-enabled";

// How a multipart object's checksum is made from its parts' (crypto/checksum.h), as S3 names it:
// the attribute kChecksumTypeAttribute of an upload and of the object it completes holds it, and
// kChecksumAlgorithmAttribute the algorithm the upload was created with. A composite checksum is
// stored and reported with "-<part count>" after its base64.
inline constexpr std::string_view kFullObjectChecksum = "FULL_OBJECT";
inline constexpr std::string_view kCompositeChecksum = "COMPOSITE";
inline constexpr std::string_view kChecksumAlgorithmAttribute = "x-amz-checksum-algorithm";
inline constexpr std::string_view kChecksumTypeAttribute = "x-amz-checksum-type";

// What a writer must verify before it commits.
struct CommitOptions {
  std::optional<Bytes> content_md5;                               // raw 16 bytes
  std::map<crypto::ChecksumAlgorithm, Bytes> expected_checksums;  // raw values
  catalog::WriteCondition condition;                              // single PUT only
};

// Streams plaintext into a new encrypted blob. Destroying an uncommitted writer discards it.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  virtual SResult<Done> Write(ByteView plaintext) = 0;
  // True when Write() of `n` more bytes would only copy them into memory: no I/O, no waiting, no
  // hashing or encryption. Lets the protocol layer store a small body without a trip to a worker.
  virtual bool WriteStaysInMemory(size_t n) const {
    (void)n;
    return false;
  }
  // The most bytes each Write() will pass, told before the first: the writer then gathers no
  // more than about that much before it hashes and seals (three such batches at most), so that a
  // caller reading in small steps keeps the whole upload small. Without it, 256 KiB.
  virtual void SetWriteSize(size_t n) { (void)n; }
  virtual uint64_t bytes_written() const = 0;
  // Seals the last segment, checks digests, makes the blob durable and publishes it in the
  // catalog. BadDigest leaves nothing behind and nothing changed.
  virtual SResult<PutResult> Commit(const CommitOptions& options) = 0;
};

// Reads a byte range of an object's plaintext, decrypting only the segments that cover it.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  virtual const ObjectInfo& info() const = 0;
  // Restricts reading to [first, last] (inclusive); by default the whole object.
  virtual SResult<Done> SetRange(uint64_t first, uint64_t last) = 0;
  // Fills `out` with up to out.size() bytes of the range; 0 at its end. Corruption if a
  // segment fails authentication: no byte of that segment is returned.
  virtual SResult<size_t> Read(std::span<uint8_t> out) = 0;
  virtual uint64_t remaining() const = 0;
  // Calls `ready` once the first Read() will not wait for the audit record of the key's use (at
  // once if there is none), possibly on the audit log's thread: `ready` must only schedule work
  // (post to an executor). Lets the protocol layer wait for that record without holding a thread,
  // so that many reads share one flush of the log. At most one call per reader.
  virtual void WhenReadable(std::function<void()> ready) { ready(); }
  // True when the next Read() only copies plaintext already decrypted in memory (a small object's
  // one segment, decrypted when it was opened): it does no I/O and cannot fail on the data, so it
  // may run on a network thread. It still returns nothing before the record of the key's use is
  // durable (WhenReadable).
  virtual bool NextReadInMemory() const { return false; }
};

struct ServiceOptions {
  uint32_t segment_size = crypto::kDefaultSegmentSize;
  uint64_t min_part_size = 5ull * 1024 * 1024;                  // S3's EntityTooSmall threshold
  uint64_t max_object_size = 5ull * 1024 * 1024 * 1024 * 1024;  // 5 TiB
  // How long a blob made unreachable stays on disk before removal, so that a reader that
  // looked the object up just before an overwrite can still open it.
  int64_t garbage_grace_ms = 30'000;
  // DestroyKeyVersion waits this long between marking the version and counting its references
  // again: longer than a writer takes from its check of the mark (KeepClearOfDestruction) to its
  // catalog commit, which is bounded by the catalog's lock wait (5 s) when it succeeds.
  int64_t destroy_fence_ms = 6'000;
  // What Last-Modified, upload initiation times and the garbage grace are measured with; tests
  // pass a FixedClock. Must outlive the service.
  const Clock* clock = &Clock::System();
};

// Who is calling, for the key-usage audit log (docs/AUDIT.md): the protocol layer passes it to every
// call that uses a key. Optional: without it the records name no request.
using RequestInfo = audit::RequestInfo;

// Data-key operations, for metrics. kRewrap happens in key maintenance (RewrapBatch), which the
// daemon does not run; the admin command that does reports no metrics.
enum class KeyOperation { kWrap, kUnwrap, kRewrap };

// What the service reports as it works, for metrics (the server wires it to the ops module, so the
// service depends on no metrics library). Each callback is optional, called on the calling
// (worker) thread, and must be cheap, thread-safe and must not throw. Nothing secret is passed.
struct ServiceObserver {
  std::function<void(uint64_t plaintext_bytes)> encrypted;  // sealed into a blob segment
  std::function<void(uint64_t plaintext_bytes)> decrypted;  // a segment opened and authenticated
  // A data key created and wrapped (kWrap) or unwrapped (kUnwrap); ok is false when the keystore
  // refused or failed (a wrong key, a shredded tenant, a database error).
  std::function<void(KeyOperation operation, bool ok)> key_operation;
};

struct UploadPartRef {
  uint32_t part_number = 0;
  std::string etag;  // unquoted
  // The part's checksums as the Complete names them (raw): each must be the one the part has.
  std::map<crypto::ChecksumAlgorithm, Bytes> checksums;
};

// What a Complete asserts about the whole object, checked before anything is stored.
struct CompleteExpectations {
  std::string checksum_type;  // "" when not asserted; else must be the upload's
  // The object's checksums (raw; a composite one without its "-<part count>"): each must be the
  // one computed from the parts, else BadDigest.
  std::map<crypto::ChecksumAlgorithm, Bytes> checksums;
};

class ObjectService {
 public:
  ObjectService(catalog::Catalog& catalog, keystore::TenantKeyStore& keys, storage::BlobStore& blobs,
                ServiceOptions options = {});
  ~ObjectService();

  // Makes the threads that hash large uploads beside their encryption now rather than at the
  // first large upload, so that a long-running process's thread count is what it is from the
  // start. The daemon calls it; a command-line process that never uploads makes none.
  static void StartHashingThreads();

  // Start-up recovery: removes temporary files and collects garbage past its grace period.
  SResult<Done> Recover();
  // Removes unreachable blobs older than the grace period; returns how many were removed.
  SResult<uint64_t> CollectGarbage();

  // --- buckets ---
  // With `object_lock`, the bucket has Object Lock enabled and versioning Enabled from the start.
  SResult<catalog::Bucket> CreateBucket(const std::string& tenant_id, const std::string& name,
                                        bool object_lock = false);
  // NoSuchBucket, or AccessDenied when it belongs to another tenant.
  SResult<catalog::Bucket> GetBucket(const std::string& tenant_id, const std::string& name);
  SResult<std::vector<catalog::Bucket>> ListBuckets(const std::string& tenant_id);
  SResult<Done> DeleteBucket(const std::string& tenant_id, const std::string& name);

  // --- objects ---
  SResult<catalog::ListPage> ListObjects(const catalog::Bucket& bucket, const catalog::ListQuery& query);
  // Checksums of the listed algorithms are computed while writing. `size`, the body's length when
  // it is known before the body, lets the blob store place a small object where its flushes are
  // shared with other writes; a body of another length is still stored. `lock` is the retention
  // and legal hold asked for (x-amz-object-lock-*), checked by LockForNewVersion. `named_key_id`
  // (ResolveEncryptionKey) is the named key the object's data key is wrapped under; empty: the
  // tenant's default key.
  SResult<std::unique_ptr<ObjectWriter>> BeginPut(const catalog::Bucket& bucket, const std::string& key,
                                                  catalog::Attributes attributes,
                                                  std::set<crypto::ChecksumAlgorithm> checksums,
                                                  const RequestInfo* request = nullptr,
                                                  std::optional<uint64_t> size = std::nullopt, catalog::Tags tags = {},
                                                  catalog::ObjectLock lock = {}, const std::string& named_key_id = {});
  // The key an encryption request names (docs/KEYS.md "Named keys"): a named key of the bucket's
  // tenant by name or id, or its default key by the tenant's id or "aws/s3" (the name S3 gives the
  // key it manages). The named key's id; "" for the default key. kNoSuchEncryptionKey for a key
  // the tenant does not have, kEncryptionKeyDestroyed for one destroyed.
  SResult<std::string> ResolveEncryptionKey(const catalog::Bucket& bucket, const std::string& name_or_id);
  // The key's current object, or with `version_id` that version of it ("null" for the null
  // version). NoSuchKey when the key has no current object (its latest version may be a delete
  // marker: Error::delete_marker_version_id); NoSuchVersion when it has no such version;
  // MethodNotAllowed when that version is a delete marker.
  SResult<ObjectInfo> HeadObject(const catalog::Bucket& bucket, const std::string& key,
                                 const std::string& version_id = "");
  // Errors as HeadObject's.
  SResult<std::unique_ptr<ObjectReader>> OpenObject(const catalog::Bucket& bucket, const std::string& key,
                                                    const RequestInfo* request = nullptr,
                                                    const std::string& version_id = "");
  // Without `version_id`: removes the key's object in a bucket without versioning (deleting a
  // missing key succeeds), and adds a delete marker otherwise (a null one when versioning is
  // suspended, which replaces the key's null version). With it: removes that version for good
  // (one that does not exist is already deleted: success), unless Object Lock protects it
  // (AccessDenied; a GOVERNANCE retention yields to `bypass_governance`).
  // A delete marker is described by a blob of its own under a data key of its own (recorded as a
  // wrap), so that a catalog rebuild finds it.
  SResult<DeleteOutcome> DeleteObject(const catalog::Bucket& bucket, const std::string& key,
                                      const std::string& version_id = "", const RequestInfo* request = nullptr,
                                      bool bypass_governance = false);
  // Versions and delete markers, by key and then newest first.
  SResult<catalog::VersionListPage> ListObjectVersions(const catalog::Bucket& bucket,
                                                       const catalog::VersionListQuery& query);
  // Replaces the object's tag set (empty: removes its tags). The new set is first sealed in an
  // attributes-update blob under the object's data key (its use recorded as an unwrap), which the
  // catalog then names, so that a catalog rebuild finds it (blob_description.h); nothing changes
  // on an error. With `version_id`, of that version (errors as HeadObject's); else of the current
  // object (NoSuchKey when the key has none). Returns the version's id as HeadObject reports it.
  SResult<std::string> SetObjectTags(const catalog::Bucket& bucket, const std::string& key, const catalog::Tags& tags,
                                     const RequestInfo* request = nullptr, const std::string& version_id = "");

  // --- Object Lock ---
  // The retention and legal hold a new version of `bucket` gets from those asked for: the
  // bucket's default retention when no mode is asked for. InvalidRequest when the bucket has no
  // Object Lock and one is asked for; InvalidArgument when the date asked for is not in the future
  // (unchecked without `check_date`).
  SResult<catalog::ObjectLock> LockForNewVersion(const catalog::Bucket& bucket, catalog::ObjectLock requested,
                                                 bool check_date = true) const;
  // Object Lock binds key destruction too (docs/KEYS.md "Object Lock and crypto-shredding"):
  // kPreconditionFailed while a version of the tenant (only those under the key `key_id`, when
  // given) is under a legal hold or an unexpired COMPLIANCE retention, whatever the caller, or,
  // unless `governance_yields` (a granted dual-control approval), under GOVERNANCE retention. The
  // message (lines for a terminal) says what `subject` has, names up to ten versions, and, for
  // GOVERNANCE, the approval `approval_operation` that opens it.
  SResult<Done> RefuseWhileProtected(const std::string& tenant_id, ByteView key_id, bool governance_yields,
                                     std::string_view subject, std::string_view approval_operation);
  // Enables Object Lock on the bucket (InvalidBucketState unless its versioning is Enabled) or,
  // when it is, replaces its default retention.
  SResult<Done> SetObjectLockConfiguration(const catalog::Bucket& bucket, const ObjectLockConfiguration& config);
  // Sets (mode "": removes) the retention of the version, as CheckRetentionChange allows, the way
  // SetObjectTags changes tags (an attributes-update blob first). InvalidRequest when the bucket
  // has no Object Lock; other errors as SetObjectTags'. Returns the version id as reported.
  SResult<std::string> SetObjectRetention(const catalog::Bucket& bucket, const std::string& key,
                                          const std::string& version_id, const std::string& mode,
                                          UnixMillis retain_until, bool bypass_governance,
                                          const RequestInfo* request = nullptr);
  // Places (on) or lifts the version's legal hold; errors and result as SetObjectRetention's.
  SResult<std::string> SetObjectLegalHold(const catalog::Bucket& bucket, const std::string& key,
                                          const std::string& version_id, bool on, const RequestInfo* request = nullptr);
  // A bucket's tag set, kept in the catalog alone (a rebuild does not bring it back); empty when
  // it has none.
  SResult<catalog::Tags> GetBucketTags(const catalog::Bucket& bucket);
  SResult<Done> SetBucketTags(const catalog::Bucket& bucket, const catalog::Tags& tags);
  // The bucket's settings (catalog::Catalog::GetBucketSettings); NoSuchBucket when it is gone.
  SResult<catalog::Attributes> GetBucketSettings(const catalog::Bucket& bucket);
  // The bucket with its settings read again now. A request acts on the settings its bucket had
  // when it was resolved; a change that depends on another setting (versioning and Object Lock)
  // checks them fresh.
  SResult<catalog::Bucket> RefreshBucket(const catalog::Bucket& bucket);
  SResult<Done> UpdateBucketSettings(const catalog::Bucket& bucket, const catalog::SettingChanges& changes);

  // --- multipart ---
  // `tags` become the completed object's, and `lock` (checked as LockForNewVersion does, the
  // default retention applied at Complete) its retention and legal hold. With kChecksumAlgorithmAttribute among
  // `attributes`, kChecksumTypeAttribute says how the object's checksum of that algorithm is made (the caller has
  // checked that the algorithm has that type).
  SResult<std::string> CreateUpload(const catalog::Bucket& bucket, const std::string& key,
                                    catalog::Attributes attributes, const RequestInfo* request = nullptr,
                                    catalog::Tags tags = {}, catalog::ObjectLock lock = {},
                                    const std::string& named_key_id = {});
  SResult<catalog::UploadRecord> GetUpload(const catalog::Bucket& bucket, const std::string& key,
                                           const std::string& upload_id);
  // `size` as for BeginPut. A part of an upload created with a checksum algorithm gets that
  // checksum besides `checksums`, whether or not its client sent one.
  SResult<std::unique_ptr<ObjectWriter>> BeginPart(const catalog::Bucket& bucket, const std::string& key,
                                                   const std::string& upload_id, uint32_t part_number,
                                                   std::set<crypto::ChecksumAlgorithm> checksums,
                                                   const RequestInfo* request = nullptr,
                                                   std::optional<uint64_t> size = std::nullopt);
  // The object's checksums: for an upload created with a checksum algorithm, that algorithm's, of
  // the upload's type, from every part's (InvalidRequest when a composite upload's Complete does
  // not name a part's checksum, or asserts another type); without one, the composite checksums of
  // those algorithms every part has. A part checksum the Complete names that is not the part's
  // is InvalidPart; an object checksum it asserts that is not the one computed is BadDigest.
  SResult<PutResult> CompleteUpload(const catalog::Bucket& bucket, const std::string& key, const std::string& upload_id,
                                    const std::vector<UploadPartRef>& parts, const catalog::WriteCondition& condition,
                                    const RequestInfo* request = nullptr, const CompleteExpectations& expected = {});
  SResult<Done> AbortUpload(const catalog::Bucket& bucket, const std::string& key, const std::string& upload_id);
  SResult<std::vector<catalog::PartRecord>> ListParts(const catalog::Bucket& bucket, const std::string& key,
                                                      const std::string& upload_id, uint32_t marker,
                                                      uint32_t max_parts);
  SResult<catalog::UploadListPage> ListUploads(const catalog::Bucket& bucket, const catalog::UploadListQuery& q);

  const ServiceOptions& options() const { return options_; }
  // Now, by options().clock.
  UnixMillis NowMillis() const { return ToUnixMillis(options_.clock->Now()); }
  // Strictly increasing within the process and, as long as the clock does not go back, across
  // restarts: the clock in microseconds, or the last value plus one. Sealed in each object's
  // description so that a catalog rebuild orders two writes of a key made in the same
  // millisecond (their Last-Modified is equal).
  uint64_t NextWriteSequence();

  // --- key lifecycle (src/service/key_lifecycle.cc; docs/KEYS.md) ---
  // Key version -> objects plus in-progress uploads whose data key it wraps, for one key of a
  // tenant (its default key when given a tenant id).
  SResult<std::map<uint32_t, uint64_t>> CountKeyReferences(const keystore::KeyRef& key);
  struct RewrapStats {
    uint64_t examined = 0;   // rows read; 0 when the walk of this version is done
    uint64_t rewrapped = 0;  // now under the active version
    uint64_t changed = 0;    // overwritten, deleted or completed meanwhile: left alone
    uint64_t failed = 0;     // did not unwrap (altered row): left alone, reported
  };
  // Re-wraps up to `limit` data keys still wrapped under `from_version` of `key` (after *cursor,
  // which it advances) under that key's active version, in one catalog transaction whose
  // updates are compare-and-swap on the old wrapped key. Object data is not touched.
  // With an audit log, each re-wrapped data key is recorded (data_key.rewrap) before its new
  // wrapping is stored; those whose record fails are left as they are and the call fails with
  // kUnavailable once the others are stored.
  SResult<RewrapStats> RewrapBatch(const keystore::KeyRef& key, uint32_t from_version,
                                   catalog::WrappedKeyCursor* cursor, uint32_t limit,
                                   const RequestInfo* request = nullptr);
  // Destroys a retired key version; kPreconditionFailed while any object or upload references
  // it, or for the active version. The version is marked `destroying` first and its references
  // counted again ServiceOptions::destroy_fence_ms after the mark (the destroy fence,
  // keystore.h): a PUT that began before the rotation either committed its row by then (and is
  // counted) or sees the mark before it commits and re-wraps its data key. With an audit log,
  // tenant_key.destroy is recorded before the destruction: kUnavailable, and nothing destroyed
  // (the mark is lifted), when it cannot be.
  SResult<Done> DestroyKeyVersion(const keystore::KeyRef& key, uint32_t version, const RequestInfo* request = nullptr);
  // Destroys a named key whole, crypto-shredding exactly the objects under it. Refused
  // (kPreconditionFailed, naming up to ten) while any version under it is protected by Object Lock
  // at the catalog's clock: a legal hold or COMPLIANCE retention always, GOVERNANCE retention unless
  // `bypass_governance` (dual control). The destruction is recorded (named_key.destroy) before it
  // happens: kUnavailable, and nothing destroyed, when it cannot be. The objects' rows stay: reads
  // answer that their key was destroyed, and deletes and lifecycle remove them as usual.
  SResult<Done> DestroyNamedKey(const keystore::KeyRef& key, bool bypass_governance,
                                const RequestInfo* request = nullptr);
  // After ShredTenant: removes up to max_rows objects/uploads/buckets of the tenant from the
  // catalog (their blobs go to garbage, removed by CollectGarbage). Returns how many; 0 = done.
  SResult<uint64_t> RemoveTenantData(const std::string& tenant_id, uint32_t max_rows);

  // The key-usage audit log (not owned; must outlive the service). When set, every key use is
  // recorded durably before the key is used, and a call whose record cannot be written fails with
  // kUnavailable without using the key (fail-closed). Set once, before serving.
  void set_audit(audit::Recorder* recorder) { audit_ = recorder; }
  // Metrics callbacks. Set once, before serving.
  void set_observer(ServiceObserver observer) { observer_ = std::move(observer); }
  const ServiceObserver& observer() const { return observer_; }

  // Internal, for the service's writers, just before they commit a catalog row whose data key
  // was wrapped under `key_info`'s version (at the start of the request, perhaps before a
  // rotation): if that version's destruction began (Keystore::SetKeyVersionDestroying), the data
  // key is re-wrapped under the active version first (recorded as data_key.rewrap) and
  // `key_info` updated, so the destruction cannot orphan the row; the header copies of the data
  // key in `blob_ids` are copied under the active version too (a key-copies blob), so that a
  // rebuild still opens them. An error fails the request before anything is published.
  SResult<Done> KeepClearOfDestruction(const catalog::Bucket& bucket, const std::string& key,
                                       const std::string& object_id, catalog::KeyInfo& key_info,
                                       const std::vector<std::string>& blob_ids, const RequestInfo* request);

  // Internal, for the service's writers of parts and completions, whose blobs were sealed under
  // the data key of upload `upload_id` with its header copy under the version the upload had
  // when they began: a rewrap may have moved the upload since, without listing these blobs. Gives
  // each of `blob_ids` a copy of the data key under the upload's current version (a key-copies
  // blob, recorded as data_key.rewrap) and returns the upload's current wrapping, under which
  // the caller stores its row again (Catalog::PutPart, Catalog::CompleteUpload).
  SResult<catalog::KeyInfo> CoverUploadBlobs(const catalog::Bucket& bucket, const std::string& key,
                                             const std::string& upload_id, const std::vector<std::string>& blob_ids,
                                             const RequestInfo* request);

  // Internal: blobs in use by open readers are never collected.
  void PinBlobs(const std::vector<std::string>& ids);
  void UnpinBlobs(const std::vector<std::string>& ids);

 private:
  // The answer of a Complete that already succeeded (the upload is gone, the key's object is the
  // one it made from `parts`), or nothing.
  std::optional<PutResult> CompletedAlready(const catalog::Bucket& bucket, const std::string& key,
                                            const std::string& upload_id, const std::vector<UploadPartRef>& parts);
  // The object HeadObject and OpenObject describe, with their errors.
  SResult<catalog::ObjectRecord> FindObject(const catalog::Bucket& bucket, const std::string& key,
                                            const std::string& version_id);
  // Wraps a new data key for `marker` (into its key_info) and writes the blob that describes it
  // (an empty version 2 blob sealed under that key); returns the blob's id.
  SResult<std::string> WriteDeleteMarker(const catalog::Bucket& bucket, catalog::ObjectRecord& marker,
                                         const RequestInfo* request);
  // Writes the blob that describes a completed multipart object and names its parts (an empty
  // version 2 blob sealed under the object's data key) and returns its id.
  SResult<std::string> WriteManifest(const catalog::Bucket& bucket, const catalog::ObjectRecord& rec,
                                     const RequestInfo* request);
  // Writes the attributes-update blob that gives the object `rec` the tags and lock of `update`
  // (an empty version 2 blob sealed under the object's data key) and returns its id.
  SResult<std::string> WriteObjectUpdate(const catalog::Bucket& bucket, const catalog::ObjectRecord& rec,
                                         const catalog::ObjectUpdate& update, const RequestInfo* request);
  // What `change` makes of the version's tags and lock (nullopt: nothing to change; an error:
  // refused), written as an attributes update and published in the catalog; retried from a fresh
  // read when the version changed meanwhile. Returns the version id as HeadObject reports it.
  using UpdateFunction = std::function<SResult<std::optional<catalog::ObjectUpdate>>(const catalog::ObjectRecord&)>;
  SResult<std::string> UpdateObject(const catalog::Bucket& bucket, const std::string& key,
                                    const std::string& version_id, const RequestInfo* request,
                                    const UpdateFunction& change);
  // Writes a blob with no body and `description`, sealed under the data key of the object `rec`
  // (opened and recorded as an unwrap, as a read is), and returns its id.
  SResult<std::string> WriteUnderObjectKey(const catalog::Bucket& bucket, const catalog::ObjectRecord& rec,
                                           const Bytes& description, const RequestInfo* request);
  // The size of a blob with no body and a description of `description_size` bytes.
  uint64_t DescribedBlobSize(size_t description_size) const;
  // Writes such a blob into `blob` (created with DescribedBlobSize), sealed under `data_key`, its
  // header's copy of the key wrapped under key_info's version, and commits it; returns its id.
  SResult<std::string> SealDescribedBlob(storage::BlobWriter& blob, const std::string& tenant_id,
                                         const catalog::KeyInfo& key_info, const SecretBytes& data_key,
                                         const Bytes& description);
  // Writes key-copies blobs holding `copies` (versions of `key`, any: one set of blobs per
  // version) and returns them for the catalog. Each blob's own data key is recorded as a wrap
  // before it is used. On error, the blobs already written are removed.
  SResult<std::vector<catalog::KeyCopyBlob>> WriteKeyCopies(const keystore::KeyRef& key,
                                                            const std::vector<catalog::KeyCopy>& copies,
                                                            const RequestInfo* request);
  // `data_key` wrapped under `version` for each of `blob_ids` as its header copy would be, written
  // as key-copies blobs (WriteKeyCopies) and listed in the catalog.
  SResult<Done> AddKeyCopies(const keystore::KeyRef& key, const SecretBytes& data_key, uint32_t version,
                             const std::vector<std::string>& blob_ids, const RequestInfo* request);

  catalog::Catalog& catalog_;
  keystore::TenantKeyStore& keys_;
  storage::BlobStore& blobs_;
  ServiceOptions options_;
  audit::Recorder* audit_ = nullptr;
  ServiceObserver observer_;
  std::atomic<uint64_t> last_write_sequence_{0};
  std::mutex pin_mu_;
  std::map<std::string, int> pinned_;
};

// Maps a lower-level Status to a service error.
Error FromStatus(const Status& status);

}  // namespace coffre::service
