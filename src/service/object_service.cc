#include "coffre/service/object_service.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "coffre/catalog/blob_description.h"
#include "coffre/common/ascii.h"
#include "coffre/common/clock.h"
#include "coffre/crypto/blob_format.h"
#include "coffre/crypto/checksum.h"
#include "coffre/crypto/hash.h"
#include "key_audit.h"
#include "service/data_key_aad.h"
#include "service/hash_lane.h"

namespace coffre::service {
namespace {

void NoteKeyOperation(const ServiceObserver& observer, KeyOperation operation, bool ok) {
  if (observer.key_operation) {
    observer.key_operation(operation, ok);
  }
}

using catalog::Attributes;
using catalog::Bucket;

Error Err(Errc code, std::string message) { return Error{code, std::move(message), {}}; }

// The bucket's versioning setting (kVersioningEnabled or kVersioningSuspended), or "" when
// versioning was never enabled on it.
std::string_view VersioningOf(const Bucket& bucket) { return BucketSetting(bucket, kVersioningSetting); }

// The id S3 reports for `rec`'s version: none in a bucket that never had versioning, unless the
// request named a version.
std::string ReportedVersionId(const Bucket& bucket, const catalog::ObjectRecord& rec, bool named) {
  return VersioningOf(bucket).empty() && !named ? std::string() : rec.version_id();
}

// The checksums among a part's attributes.
Attributes ChecksumAttributes(const Attributes& attributes) {
  Attributes checksums;
  for (const auto& [name, value] : attributes) {
    if (name.starts_with("x-amz-checksum-")) checksums.emplace(name, value);
  }
  return checksums;
}

// A multipart object's checksums, made from its parts' (see ObjectService::CompleteUpload).
struct MultipartChecksums {
  std::map<crypto::ChecksumAlgorithm, Bytes> values;
  std::string type;  // kFullObjectChecksum or kCompositeChecksum; "" when there is none
};

SResult<MultipartChecksums> ChecksumsOfParts(const catalog::UploadRecord& upload,
                                             const std::vector<const catalog::PartRecord*>& parts,
                                             const std::vector<UploadPartRef>& refs,
                                             const CompleteExpectations& expected) {
  MultipartChecksums out;
  std::set<crypto::ChecksumAlgorithm> algorithms;
  std::optional<crypto::ChecksumAlgorithm> created_with;
  if (const auto it = upload.attributes.find(std::string(kChecksumAlgorithmAttribute)); it != upload.attributes.end()) {
    created_with = crypto::ParseChecksumAlgorithm(it->second);
  }
  if (created_with) {
    const auto type = upload.attributes.find(std::string(kChecksumTypeAttribute));
    // An upload created before types were kept has S3's default for its algorithm.
    out.type = type != upload.attributes.end()               ? type->second
               : crypto::HasCompositeChecksum(*created_with) ? std::string(kCompositeChecksum)
                                                             : std::string(kFullObjectChecksum);
    if (!expected.checksum_type.empty() && expected.checksum_type != out.type) {
      return Err(Errc::kInvalidRequest, "The upload was created using the " + out.type +
                                            " checksum mode. The complete request must use the same checksum mode.");
    }
    algorithms.insert(*created_with);
  } else {
    if (!expected.checksum_type.empty()) {
      return Err(Errc::kInvalidRequest,
                 "The upload was created without a checksum algorithm, so it has no checksum type to complete with.");
    }
    // Without one, the composite checksums of the algorithms every part has.
    out.type = kCompositeChecksum;
    for (const crypto::ChecksumAlgorithm alg : crypto::kAllChecksumAlgorithms) {
      const std::string name(crypto::ChecksumHeaderName(alg));
      if (crypto::HasCompositeChecksum(alg) &&
          std::ranges::all_of(parts, [&](const catalog::PartRecord* p) { return p->attributes.contains(name); })) {
        algorithms.insert(alg);
      }
    }
  }
  const bool full_object = out.type == kFullObjectChecksum;
  for (const crypto::ChecksumAlgorithm alg : algorithms) {
    const std::string name(crypto::ChecksumHeaderName(alg));
    Bytes combined = crypto::ComputeChecksum(alg, {});
    Bytes concatenated;
    bool every_part = true;
    for (size_t i = 0; i < parts.size() && every_part; ++i) {
      if (created_with && !full_object && !refs[i].checksums.contains(alg)) {
        return Err(Errc::kInvalidRequest, "The upload was created using a " +
                                              ToLower(crypto::ChecksumAlgorithmName(alg)) +
                                              " checksum. The complete request must include the checksum for each "
                                              "part. It was missing for part " +
                                              std::to_string(refs[i].part_number) + " in the request.");
      }
      const auto stored = parts[i]->attributes.find(name);
      const std::optional<Bytes> value =
          stored != parts[i]->attributes.end() ? Base64Decode(stored->second) : std::nullopt;
      // Parts stored before every part of such an upload got its checksum may lack it: then the
      // object has none.
      if (!value) {
        every_part = false;
      } else if (full_object) {
        auto next = crypto::CombineCrc(alg, combined, *value, parts[i]->size);
        if (!next.ok())
          return Err(Errc::kInternal, "part " + std::to_string(parts[i]->part_number) + ": " + next.status().message());
        combined = std::move(next).value();
      } else {
        concatenated.insert(concatenated.end(), value->begin(), value->end());
      }
    }
    if (every_part) out.values[alg] = full_object ? std::move(combined) : crypto::ComputeChecksum(alg, concatenated);
  }
  for (const auto& [alg, value] : expected.checksums) {
    const auto computed = out.values.find(alg);
    if (computed == out.values.end() || computed->second != value) {
      return Err(Errc::kBadDigest, "The " + std::string(crypto::ChecksumAlgorithmName(alg)) +
                                       " you specified did not match the calculated checksum.");
    }
  }
  if (out.values.empty()) out.type.clear();
  return out;
}

// The associated data that binds a wrapped data key to the object (or upload) it encrypts.
using internal::DataKeyAad;
using internal::FromKeyStatus;

catalog::KeyInfo ToKeyInfo(const keystore::DataKey& dk) {
  return catalog::KeyInfo{dk.tenant_key_id, dk.tenant_key_version, dk.wrapped};
}

crypto::KeyReference ToKeyReference(const catalog::KeyInfo& k) {
  return crypto::KeyReference{k.tenant_key_id, k.tenant_key_version, k.wrapped_data_key};
}

// The key reference a version 2 blob's header carries: the row's key and version, with a
// copy of the data key bound to the blob itself (internal::BlobHeaderKeyAad).
Result<crypto::KeyReference> BlobHeaderKeyReference(keystore::TenantKeyStore& keys, const std::string& tenant_id,
                                                    const catalog::KeyInfo& k, const SecretBytes& data_key,
                                                    const std::string& blob_id) {
  COFFRE_ASSIGN_OR_RETURN(Bytes copy, keys.WrapDataKey(internal::RowKey(tenant_id, k), k.tenant_key_version, data_key,
                                                       internal::BlobHeaderKeyAad(blob_id)));
  return crypto::KeyReference{k.tenant_key_id, k.tenant_key_version, std::move(copy)};
}

// How an object with these attributes, key and tenant is encrypted (ObjectService's
// kEncryptionAttribute and kBucketKeyAttribute).
EncryptionReport ReportOf(const Attributes& attributes, const catalog::KeyInfo& key_info,
                          const std::string& tenant_id) {
  auto attribute = [&](std::string_view name) {
    const auto it = attributes.find(std::string(name));
    return it == attributes.end() ? std::string_view() : std::string_view(it->second);
  };
  EncryptionReport report;
  report.key_id = HexEncode(key_info.tenant_key_id);
  report.kms = attribute(kEncryptionAttribute) == "aws:kms" || report.key_id != tenant_id;
  report.bucket_key = attribute(kBucketKeyAttribute) == "true";
  return report;
}

// The key new data keys of `bucket` are wrapped under: the named key chosen, else the tenant's.
keystore::KeyRef KeyFor(const Bucket& bucket, const std::string& named_key_id) {
  return named_key_id.empty() ? keystore::KeyRef(bucket.tenant_id) : keystore::KeyRef(bucket.tenant_id, named_key_id);
}

// A catalog write into a bucket deleted (or whose tenant was shredded) after the request
// resolved it: to the client, the bucket does not exist.
bool BucketGone(const Status& st) { return st.code() == StatusCode::kAborted; }

// How many times a part or a completion is stored again after a rewrap moved its upload's data
// key meanwhile; each needs a rotation and a rewrap between two tries, so a few suffice.
constexpr int kCoverAttempts = 4;

}  // namespace

Error FromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNoSpace:
      return Err(Errc::kNoSpace, status.message());
    case StatusCode::kUnavailable:
      return Err(Errc::kUnavailable, status.message());
    case StatusCode::kCorruption:
      return Err(Errc::kCorruption, status.message());
    case StatusCode::kInvalidArgument:
      return Err(Errc::kInvalidArgument, status.message());
    default:
      return Err(Errc::kInternal, status.ToString());
  }
}

SResult<std::string> ObjectService::ResolveEncryptionKey(const Bucket& bucket, const std::string& name_or_id) {
  if (name_or_id == "aws/s3" || keystore::ParseKeyId(name_or_id) == bucket.tenant_id) return std::string();
  auto found = keys_.FindNamedKey(bucket.tenant_id, name_or_id);
  if (!found.ok()) {
    if (found.status().code() == StatusCode::kNotFound) {
      return Err(Errc::kNoSuchEncryptionKey, "Invalid keyId " + name_or_id);
    }
    return FromStatus(found.status());
  }
  if (found->destroyed) {
    return Err(Errc::kEncryptionKeyDestroyed, "key " + found->name + " was destroyed and encrypts nothing any more");
  }
  return found->key_id;
}

// ---------------------------------------------------------------------------------------------
// Writer: plaintext in, one encrypted blob out.

class BlobObjectWriter final : public ObjectWriter {
 public:
  enum class Kind { kObject, kPart };

  BlobObjectWriter(ObjectService& service, catalog::Catalog& catalog, keystore::TenantKeyStore& keys,
                   storage::BlobStore& blobs, Kind kind)
      : service_(service), catalog_(catalog), keys_(keys), blobs_(blobs), kind_(kind) {}

  ~BlobObjectWriter() override {
    // First stop the hashing lane: it may still be reading spare_ and updating the hashers.
    lane_.reset();
    // An uncommitted writer's temporary file is removed by its BlobWriter.
    blob_.reset();
  }

  // The data key's record, started by BeginPut: the body is sealed while it becomes durable,
  // and the object is published only once it is.
  void PublishAfter(std::unique_ptr<audit::PendingRecord> key_use, audit::Event event) {
    key_use_ = std::move(key_use);
    key_use_event_ = std::move(event);
  }

  SResult<Done> Init(const Bucket& bucket, const std::string& key, Attributes attributes,
                     std::set<crypto::ChecksumAlgorithm> checksums, const SecretBytes& data_key,
                     catalog::KeyInfo key_info, std::string object_id, std::string upload_id, uint32_t part_number,
                     std::optional<uint64_t> size, catalog::Tags tags = {}, catalog::ObjectLock lock = {}) {
    bucket_ = bucket;
    key_ = key;
    attributes_ = std::move(attributes);
    tags_ = std::move(tags);
    lock_ = std::move(lock);
    key_info_ = std::move(key_info);
    object_id_ = std::move(object_id);
    upload_id_ = std::move(upload_id);
    part_number_ = part_number;
    segment_size_ = service_.options().segment_size;
    declared_size_ = size;
    for (auto alg : checksums) checksummers_.emplace(alg, crypto::Checksummer::Create(alg));
    // A body whose length is known is written front to back (version 2): header first, its
    // description last, padded to the room reserved for it here, so the blob's exact size is
    // known before its first byte (an upstream store streams it as one object).
    std::optional<uint64_t> blob_size;
    uint8_t version = crypto::kBlobFormatVersion1;
    if (size) {
      version = crypto::kBlobFormatVersion2;
      description_room_ = catalog::EncodeBlobDescription(LongestDescription()).size();
      blob_size = crypto::CiphertextLength(*size, segment_size_) + description_room_ + crypto::kSegmentTagSize;
    }
    auto w = blobs_.CreateBlob(blob_size);
    if (!w.ok()) return FromStatus(w.status());
    blob_ = std::move(w).value();
    blob_id_ = blob_->id();
    auto key_reference = size ? BlobHeaderKeyReference(keys_, bucket.tenant_id, key_info_, data_key, blob_id_)
                              : Result<crypto::KeyReference>(ToKeyReference(key_info_));
    if (!key_reference.ok()) return internal::FromKeyStatus(key_reference.status());
    auto enc = crypto::BlobEncryptor::Create(data_key, std::move(key_reference).value(),
                                             crypto::BlobIdentity{bucket.tenant_id, blob_id_}, segment_size_, version);
    if (!enc.ok()) return FromStatus(enc.status());
    encryptor_.emplace(std::move(enc).value());
    // Version 1's header is written last, once the length is known; its place is reserved.
    const Bytes header = size ? encryptor_->EncodeHeader(*size) : Bytes(crypto::kHeaderSize, 0);
    if (Status st = blob_->Append(header); !st.ok()) return FromStatus(st);
    batch_size_ = BatchSizeFor(kMaxBatchBytes);
    return Done{};
  }

  SResult<Done> Write(ByteView data) override {
    if (failed_) return Err(Errc::kInternal, "writer already failed");
    pending_.reserve(batch_size_);  // once: a writer that is never written to allocates nothing
    if (total_ + data.size() > service_.options().max_object_size) {
      failed_ = true;
      return Err(Errc::kEntityTooLarge, "object exceeds the maximum size");
    }
    if (declared_size_ && total_ + data.size() > *declared_size_) {
      failed_ = true;
      return Err(Errc::kInvalidArgument, "the body is longer than its declared length");
    }
    failed_ = true;  // until this write is done: an exception leaves the writer failed, too
    total_ += data.size();
    while (!data.empty()) {
      // A full batch is sealed only when more data follows: the last segment carries the last flag.
      if (pending_.size() == batch_size_) {
        if (auto r = SealFullBatch(); !r.ok()) return r;
      }
      size_t take = std::min<size_t>(batch_size_ - pending_.size(), data.size());
      pending_.insert(pending_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
      data = data.subspan(take);
    }
    failed_ = false;
    return Done{};
  }

  // Write() seals and appends only once a whole batch is pending and more data follows.
  bool WriteStaysInMemory(size_t n) const override { return pending_.size() + n <= batch_size_; }

  void SetWriteSize(size_t n) override {
    if (total_ == 0) batch_size_ = BatchSizeFor(n);
  }

  uint64_t bytes_written() const override { return total_; }

  SResult<PutResult> Commit(const CommitOptions& options) override {
    if (failed_ || committed_) return Err(Errc::kInternal, "writer cannot commit");
    failed_ = true;  // until proven otherwise
    PutResult result;
    // Every full batch was hashed on the lane, in order; the rest (the last segments, possibly
    // partial or empty) is hashed here, after them.
    if (lane_) lane_->Wait();
    Hash(pending_);
    crypto::Md5Digest md5 = md5_.Final();
    result.etag = HexEncode(md5);
    if (options.content_md5 && !ConstantTimeEquals(*options.content_md5, md5)) {
      return Err(Errc::kBadDigest, "Content-MD5 does not match the body");
    }
    for (auto& [alg, c] : checksummers_) result.checksums[alg] = c->Final();
    for (const auto& [alg, expected] : options.expected_checksums) {
      auto it = result.checksums.find(alg);
      if (it == result.checksums.end() || it->second != expected) {
        return Err(Errc::kBadDigest, std::string("the ") + std::string(crypto::ChecksumAlgorithmName(alg)) +
                                         " checksum does not match the body");
      }
    }
    if (declared_size_ && total_ != *declared_size_) {
      return Err(Errc::kInvalidArgument, "the body is shorter than its declared length");
    }
    Attributes attrs = attributes_;
    for (const auto& [alg, value] : result.checksums) {
      attrs[std::string(crypto::ChecksumHeaderName(alg))] = Base64Encode(value);
    }
    result.last_modified = service_.NowMillis();
    if (auto r = Seal(pending_, true); !r.ok()) return r.error();
    if (declared_size_) {
      catalog::BlobDescription description = Describe(result.etag, result.last_modified, attrs);
      if (kind_ == Kind::kObject) description.sequence = service_.NextWriteSequence();
      if (auto r = AppendDescription(description); !r.ok()) return r.error();
    } else {
      Bytes header = encryptor_->EncodeHeader(total_);
      if (Status st = blob_->WriteAt(0, header); !st.ok()) return FromStatus(st);
    }
    if (Status st = blob_->Commit(); !st.ok()) return FromStatus(st);
    if (auto e = internal::AwaitKeyUse(key_use_.get(), key_use_event_)) {
      (void)blobs_.Remove(blob_id_);  // sealed under a key use nobody recorded: never published
      return *e;
    }

    Status st;
    if (kind_ == Kind::kObject) {
      if (auto fenced = service_.KeepClearOfDestruction(bucket_, key_, object_id_, key_info_, {blob_id_},
                                                        &key_use_event_.request);
          !fenced.ok()) {
        (void)blobs_.Remove(blob_id_);  // never published
        return fenced.error();
      }
      catalog::ObjectRecord rec;
      rec.bucket_id = bucket_.id;
      rec.tenant_id = bucket_.tenant_id;
      rec.key = key_;
      rec.object_id = object_id_;
      rec.size = total_;
      rec.etag = result.etag;
      rec.last_modified = result.last_modified;
      rec.attributes = std::move(attrs);
      rec.key_info = key_info_;
      rec.tags = tags_;
      rec.lock = lock_;
      rec.null_version = VersioningOf(bucket_) != kVersioningEnabled;
      rec.parts.push_back(catalog::ObjectPart{0, blob_id_, total_, result.etag, {}});
      result.version_id = ReportedVersionId(bucket_, rec, false);
      result.encryption = ReportOf(rec.attributes, rec.key_info, rec.tenant_id);
      st = catalog_.PutObject(rec, options.condition);
    } else {
      catalog::PartRecord part;
      part.part_number = part_number_;
      part.blob_id = blob_id_;
      part.size = total_;
      part.etag = result.etag;
      part.last_modified = result.last_modified;
      part.attributes = std::move(attrs);
      if (auto stored = PutPartCovered(part); !stored.ok()) {
        (void)blobs_.Remove(blob_id_);  // never published: nothing references it
        return stored.error();
      }
      result.encryption = ReportOf({}, key_info_, bucket_.tenant_id);
    }
    if (!st.ok()) {
      (void)blobs_.Remove(blob_id_);  // never published: nothing references it
      return Refused(st);
    }
    committed_ = true;
    failed_ = false;
    return result;
  }

 private:
  // Most plaintext gathered before it is hashed and sealed: 4 segments of the default size.
  // Larger batches mean fewer hand-offs to the hashing lane and fewer, larger appends.
  static constexpr size_t kMaxBatchBytes = 256 * 1024;

  // Smaller batches are hashed on the caller's thread, with no second buffer: handing one to the
  // lane and back costs two thread wake-ups, a large share of hashing it. They come from bodies
  // received in small steps, which the gateway uses when many are in flight, the cores busy anyway.
  static constexpr size_t kMinLaneBatchBytes = 128 * 1024;

  // A batch: whole segments, enough for `write_size` bytes and at most kMaxBatchBytes.
  size_t BatchSizeFor(size_t write_size) const {
    const size_t most = std::max<size_t>(1, kMaxBatchBytes / segment_size_);
    return segment_size_ * std::clamp<size_t>((write_size + segment_size_ - 1) / segment_size_, 1, most);
  }

  // MD5 (the ETag) and the requested checksums of the next plaintext bytes, in order. Runs on the
  // hashing lane for full batches of kMinLaneBatchBytes or more, on the caller's thread for
  // smaller ones and for the rest at Commit.
  void Hash(ByteView plaintext) {
    md5_.Update(plaintext);
    for (auto& [alg, c] : checksummers_) c->Update(plaintext);
  }

  // Seals a full batch that more data follows, while the lane hashes the same, read-only buffer
  // on another core (MD5 costs ~6x AES-GCM); then fills the other buffer, so the lane can go on
  // hashing this one while the next bytes arrive. Objects of one batch never get here and never
  // make a lane; neither do small batches, hashed first and then sealed here.
  SResult<Done> SealFullBatch() {
    if (batch_size_ < kMinLaneBatchBytes) {
      Hash(pending_);
      auto r = Seal(pending_, false);
      pending_.clear();
      return r;
    }
    if (!lane_) {
      lane_ = std::make_unique<internal::HashLane>([this](ByteView plaintext) { Hash(plaintext); });
      spare_.reserve(batch_size_);
    }
    // The previous batch's hash is done: spare_ is free again, and batches are hashed in order.
    lane_->Wait();
    lane_->Submit(pending_);
    auto r = Seal(pending_, false);
    // pending_ stays untouched until the next Wait(): it becomes spare_ (vector::swap moves no
    // bytes, so the lane's view stays valid), and the previous spare_ is filled next.
    std::swap(pending_, spare_);
    pending_.clear();
    return r;
  }

  // Stores the part row while its blob's key opens under the upload's current version. The blob's
  // header copy is under the version the upload had when the part began; a rewrap that moved the
  // upload since did not list this part, so the part gets a key copy under the new version first
  // (else destroying the old version would leave a rebuild unable to open it).
  SResult<Done> PutPartCovered(const catalog::PartRecord& part) {
    uint32_t covered = key_info_.tenant_key_version;
    for (int attempt = 0; attempt < kCoverAttempts; ++attempt) {
      uint32_t found = covered;
      Status st = catalog_.PutPart(upload_id_, part, &found);
      if (st.ok()) return Done{};
      if (st.code() != StatusCode::kAborted || found == covered) return Refused(st);
      if (attempt + 1 == kCoverAttempts) break;  // a copy no retry would use
      auto moved = service_.CoverUploadBlobs(bucket_, key_, upload_id_, {blob_id_}, &key_use_event_.request);
      if (!moved.ok()) return moved.error();
      covered = moved->tenant_key_version;
    }
    return Err(Errc::kUnavailable, "the upload's data key kept moving to newer key versions; retry the part");
  }

  // The error of a refused catalog write.
  Error Refused(const Status& st) const {
    if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, st.message());
    if (BucketGone(st)) return Err(Errc::kNoSuchBucket, st.message());
    if (st.code() == StatusCode::kNotFound) {
      return kind_ == Kind::kObject ? Err(Errc::kNoSuchKey, st.message()) : Err(Errc::kNoSuchUpload, st.message());
    }
    // The null version it would replace is under Object Lock.
    if (st.code() == StatusCode::kPermissionDenied) return Err(Errc::kAccessDenied, st.message());
    return FromStatus(st);
  }

  // What this blob says of itself: the catalog row (or part row) Commit is about to write.
  catalog::BlobDescription Describe(std::string etag, UnixMillis last_modified, Attributes attributes) const {
    catalog::BlobDescription d;
    d.kind = kind_ == Kind::kObject ? catalog::BlobDescription::Kind::kObject : catalog::BlobDescription::Kind::kPart;
    d.tenant_id = bucket_.tenant_id;
    d.bucket_id = bucket_.id;
    d.bucket_name = bucket_.name;
    d.key = key_;
    if (kind_ == Kind::kObject) {
      d.object_id = object_id_;
      d.tags = tags_;
      d.lock = lock_;
      d.null_version = VersioningOf(bucket_) != kVersioningEnabled;
    } else {
      d.upload_id = upload_id_;
      d.part_number = part_number_;
    }
    d.size = declared_size_.value_or(total_);
    d.etag = std::move(etag);
    d.last_modified = last_modified;
    d.attributes = std::move(attributes);
    return d;
  }

  // The description with every value that is learnt only at Commit at its longest encoding: the
  // ETag and checksums have fixed lengths, the time is bounded by the largest one.
  catalog::BlobDescription LongestDescription() const {
    Attributes attributes = attributes_;
    for (const auto& [alg, checksummer] : checksummers_) {
      attributes[std::string(crypto::ChecksumHeaderName(alg))] =
          Base64Encode(crypto::Checksummer::Create(alg)->Final());
    }
    catalog::BlobDescription d = Describe(std::string(2 * std::tuple_size_v<crypto::Md5Digest>, '0'),
                                          std::numeric_limits<UnixMillis>::max(), std::move(attributes));
    d.sequence = std::numeric_limits<uint64_t>::max();
    return d;
  }

  // Seals the description, padded with JSON whitespace to the room Init reserved, and appends it.
  SResult<Done> AppendDescription(const catalog::BlobDescription& description) {
    Bytes encoded = catalog::EncodeBlobDescription(description);
    if (encoded.size() > description_room_) {
      return Err(Errc::kInternal, "the blob description outgrew the room reserved for it");
    }
    encoded.resize(description_room_, ' ');
    auto sealed = encryptor_->SealDescription(total_, encoded);
    if (!sealed.ok()) return FromStatus(sealed.status());
    if (Status st = blob_->Append(*sealed); !st.ok()) return FromStatus(st);
    return Done{};
  }

  // Seals `plaintext` as consecutive segments into sealed_ and appends them in one write. With
  // `last`, its final segment carries the last flag (empty plaintext: one empty last segment).
  SResult<Done> Seal(ByteView plaintext, bool last) {
    const size_t segments = std::max<size_t>(1, (plaintext.size() + segment_size_ - 1) / segment_size_);
    const size_t sealed_size = plaintext.size() + segments * crypto::kSegmentTagSize;
    if (sealed_.size() < sealed_size) sealed_.resize(sealed_size);  // grows once, then reused
    size_t in = 0, out = 0;
    for (size_t i = 0; i < segments; ++i) {
      const size_t n = std::min<size_t>(segment_size_, plaintext.size() - in);
      std::span<uint8_t> sealed(sealed_.data() + out, n + crypto::kSegmentTagSize);
      if (Status st =
              encryptor_->SealSegment(segment_index_ + i, last && i + 1 == segments, plaintext.subspan(in, n), sealed);
          !st.ok()) {
        failed_ = true;
        return FromStatus(st);
      }
      in += n;
      out += sealed.size();
    }
    if (Status st = blob_->Append(ByteView(sealed_.data(), out)); !st.ok()) {
      failed_ = true;
      return FromStatus(st);
    }
    segment_index_ += segments;
    if (service_.observer().encrypted) {
      service_.observer().encrypted(plaintext.size());
    }
    return Done{};
  }

  ObjectService& service_;
  catalog::Catalog& catalog_;
  keystore::TenantKeyStore& keys_;
  storage::BlobStore& blobs_;
  Kind kind_;
  Bucket bucket_;
  std::string key_;
  Attributes attributes_;
  catalog::Tags tags_;        // objects only
  catalog::ObjectLock lock_;  // objects only
  catalog::KeyInfo key_info_;
  std::string object_id_;
  std::string upload_id_;
  uint32_t part_number_ = 0;
  std::string blob_id_;
  uint32_t segment_size_ = crypto::kDefaultSegmentSize;
  std::optional<uint64_t> declared_size_;  // the body's length, known up front: a version 2 blob
  size_t description_room_ = 0;            // version 2: the encoded description's padded size
  size_t batch_size_ = crypto::kDefaultSegmentSize;
  std::optional<crypto::BlobEncryptor> encryptor_;
  std::unique_ptr<storage::BlobWriter> blob_;
  crypto::Md5 md5_;
  std::map<crypto::ChecksumAlgorithm, std::unique_ptr<crypto::Checksummer>> checksummers_;
  Bytes pending_;  // the batch being filled
  Bytes spare_;    // the previous full batch, which the lane may still be hashing
  Bytes sealed_;   // ciphertext of one batch, reused
  uint64_t segment_index_ = 0;
  uint64_t total_ = 0;
  bool failed_ = false;
  bool committed_ = false;
  std::unique_ptr<audit::PendingRecord> key_use_;
  audit::Event key_use_event_;
  // Runs Hash() beside the sealing; created by the first SealFullBatch(). Declared after
  // everything it touches, and reset first by the destructor.
  std::unique_ptr<internal::HashLane> lane_;
};

// Holds back a reader's first bytes until the record of its data key's use is durable (started
// by OpenObject), so that the record's fsync overlaps with opening and decrypting.
class RecordedBeforeRelease final : public ObjectReader {
 public:
  RecordedBeforeRelease(std::unique_ptr<ObjectReader> inner, std::unique_ptr<audit::PendingRecord> key_use,
                        audit::Event event)
      : inner_(std::move(inner)), key_use_(std::move(key_use)), event_(std::move(event)) {}

  const ObjectInfo& info() const override { return inner_->info(); }
  SResult<Done> SetRange(uint64_t first, uint64_t last) override { return inner_->SetRange(first, last); }
  uint64_t remaining() const override { return inner_->remaining(); }
  void WhenReadable(std::function<void()> ready) override {
    if (key_use_) {
      key_use_->OnDone(std::move(ready));
    } else {
      ready();
    }
  }

  bool NextReadInMemory() const override { return inner_->NextReadInMemory(); }

  SResult<size_t> Read(std::span<uint8_t> out) override {
    if (key_use_) {
      refused_ = internal::AwaitKeyUse(key_use_.get(), event_);
      key_use_.reset();
    }
    if (refused_) {
      return *refused_;
    }
    return inner_->Read(out);
  }

 private:
  std::unique_ptr<ObjectReader> inner_;
  std::unique_ptr<audit::PendingRecord> key_use_;
  audit::Event event_;
  std::optional<Error> refused_;
};

// ---------------------------------------------------------------------------------------------
// Reader: decrypts only the segments that cover the requested range.

// A description of kind `kind` naming the object version `rec` in `bucket`: the fields every blob
// that describes a version carries; the caller adds its own.
catalog::BlobDescription DescriptionOf(catalog::BlobDescription::Kind kind, const Bucket& bucket,
                                       const catalog::ObjectRecord& rec) {
  catalog::BlobDescription d;
  d.kind = kind;
  d.tenant_id = bucket.tenant_id;
  d.bucket_id = bucket.id;
  d.bucket_name = bucket.name;
  d.key = rec.key;
  d.object_id = rec.object_id;
  return d;
}

// What the protocol layer is told of the object `rec`, reported with `version_id`.
ObjectInfo InfoOf(const catalog::ObjectRecord& rec, std::string version_id) {
  ObjectInfo info;
  info.key = rec.key;
  info.size = rec.size;
  info.etag = rec.etag;
  info.last_modified = rec.last_modified;
  info.attributes = rec.attributes;
  info.multipart = !rec.parts.empty() && rec.parts.front().part_number != 0;
  info.tags = rec.tags;
  info.lock = rec.lock;
  info.encryption = ReportOf(rec.attributes, rec.key_info, rec.tenant_id);
  info.version_id = std::move(version_id);
  if (info.multipart) {
    for (const auto& p : rec.parts) {
      info.part_sizes.push_back(p.size);
      info.part_checksums.push_back(ChecksumAttributes(p.attributes));
    }
  }
  return info;
}

class BlobObjectReader final : public ObjectReader {
 public:
  BlobObjectReader(ObjectService& service, storage::BlobStore& blobs, catalog::ObjectRecord record,
                   SecretBytes data_key, std::string version_id)
      : service_(service),
        blobs_(blobs),
        record_(std::move(record)),
        data_key_(std::move(data_key)),
        info_(InfoOf(record_, std::move(version_id))) {
    uint64_t start = 0;
    for (const auto& p : record_.parts) {
      part_starts_.push_back(start);
      start += p.size;
      blob_ids_.push_back(p.blob_id);
    }
    service_.PinBlobs(blob_ids_);
    end_ = record_.size;
  }
  ~BlobObjectReader() override { service_.UnpinBlobs(blob_ids_); }

  const ObjectInfo& info() const override { return info_; }

  SResult<Done> SetRange(uint64_t first, uint64_t last) override {
    if (first > last || last >= record_.size) return Err(Errc::kInvalidRange, "range outside the object");
    pos_ = first;
    end_ = last + 1;
    return Done{};
  }

  uint64_t remaining() const override { return end_ - pos_; }

  // Opens the blob of an object that fits in one segment and decrypts that segment into plain_, on
  // the thread that opens the object: its first Read() then copies from memory (NextReadInMemory),
  // so a small GET needs no further trip to a worker. Nothing leaves the reader before Read(), which
  // RecordedBeforeRelease holds back until the key's use is recorded (the Recorder's rule for
  // Start(): compute at once, release nothing before the record is durable). A failure here is
  // not reported: Read() meets it again and reports it (audited as corruption, if it is).
  void DecryptSmallObject() {
    if (record_.parts.size() != 1 || !OpenPart(0).ok()) return;
    const uint32_t seg_size = decryptor_->header().segment_size;
    if (record_.parts[0].size > seg_size) return;
    plain_.resize(static_cast<size_t>(record_.parts[0].size));
    if (DecryptSegment(0, seg_size, plain_).ok()) cached_segment_ = 0;
  }

  bool NextReadInMemory() const override {
    if (pos_ >= end_) return true;
    if (record_.parts.size() != 1 || open_part_ != 0 || cached_segment_ == UINT64_MAX) return false;
    const uint64_t seg_size = decryptor_->header().segment_size;
    return pos_ / seg_size == cached_segment_ && (end_ - 1) / seg_size == cached_segment_;
  }

  SResult<size_t> Read(std::span<uint8_t> out) override {
    size_t produced = 0;
    while (produced < out.size() && pos_ < end_) {
      // The part holding pos_ (empty parts share their start with the next part, and
      // upper_bound skips past them).
      const size_t p = static_cast<size_t>(std::upper_bound(part_starts_.begin(), part_starts_.end(), pos_) -
                                           part_starts_.begin() - 1);
      if (auto r = OpenPart(p); !r.ok()) return r.error();
      const uint32_t seg_size = decryptor_->header().segment_size;  // the blob's own
      const uint64_t segment = (pos_ - part_starts_[p]) / seg_size;
      const uint64_t seg_start = part_starts_[p] + segment * seg_size;
      const auto plain_len =
          static_cast<size_t>(std::min<uint64_t>(seg_size, record_.parts[p].size - segment * seg_size));
      const std::span<uint8_t> rest = out.subspan(produced);
      size_t n = 0;
      if (pos_ == seg_start && cached_segment_ != segment && plain_len <= rest.size() && plain_len <= end_ - pos_) {
        // The whole segment is wanted and fits: decrypted straight into `out`, not through plain_
        // (one copy fewer per byte on large reads). On failure the bytes written are wiped: no
        // unauthenticated byte is left in `out`.
        const std::span<uint8_t> dst = rest.first(plain_len);
        if (Status st = DecryptSegment(segment, seg_size, dst); !st.ok()) {
          std::fill(dst.begin(), dst.end(), uint8_t{0});
          return FromStatus(st);
        }
        n = plain_len;
      } else {
        if (cached_segment_ != segment) {
          cached_segment_ = UINT64_MAX;
          plain_.resize(plain_len);
          if (Status st = DecryptSegment(segment, seg_size, plain_); !st.ok()) return FromStatus(st);
          cached_segment_ = segment;
        }
        const auto offset = static_cast<size_t>(pos_ - seg_start);
        n = std::min<size_t>({plain_len - offset, rest.size(), static_cast<size_t>(end_ - pos_)});
        std::copy_n(plain_.begin() + static_cast<std::ptrdiff_t>(offset), n, rest.begin());
      }
      produced += n;
      pos_ += n;
    }
    return produced;
  }

 private:
  SResult<Done> OpenPart(size_t p) {
    if (open_part_ == p && decryptor_) return Done{};
    decryptor_.reset();
    reader_.reset();
    open_part_ = SIZE_MAX;
    cached_segment_ = UINT64_MAX;
    const auto& part = record_.parts[p];
    auto r = blobs_.Open(part.blob_id);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) {
        return Err(Errc::kCorruption, "the data of this object is missing from storage");
      }
      return FromStatus(r.status());
    }
    reader_ = std::move(r).value();
    Bytes header(crypto::kHeaderSize);
    if (Status st = reader_->ReadAt(0, header); !st.ok()) return FromStatus(st);
    auto d = crypto::BlobDecryptor::Create(data_key_, crypto::BlobIdentity{record_.tenant_id, part.blob_id}, header);
    if (!d.ok()) return FromStatus(d.status());
    if (d->header().plaintext_length != part.size) {
      return Err(Errc::kCorruption, "stored blob length disagrees with the catalog");
    }
    // Bytes appended after the last segment are damage too, even though every segment still
    // authenticates: refused before anything is sent, as scrub reports them.
    if (Status st = crypto::CheckBlobFileLength(d->header(), reader_->size()); !st.ok()) return FromStatus(st);
    // Version 2 fixes no exact length: its sealed description's tag covers every byte after the
    // last segment, so it is opened (a few hundred bytes) to refuse bytes appended or altered there.
    if (d->header().version == crypto::kBlobFormatVersion2) {
      const uint64_t at = crypto::DescriptionOffset(d->header());
      Bytes sealed(static_cast<size_t>(reader_->size() - at));
      if (Status st = reader_->ReadAt(at, sealed); !st.ok()) return FromStatus(st);
      if (auto opened = d->OpenDescription(sealed); !opened.ok()) {
        return opened.status().code() == StatusCode::kCorruption
                   ? Err(Errc::kCorruption,
                         "bytes after the last segment were appended or altered (" + opened.status().message() + ")")
                   : FromStatus(opened.status());
      }
    }
    decryptor_.emplace(std::move(d).value());
    open_part_ = p;
    return Done{};
  }

  // Reads segment `index` of the open part and decrypts it into `out`, which has the segment's
  // plaintext length.
  Status DecryptSegment(uint64_t index, uint32_t seg_size, std::span<uint8_t> out) {
    cipher_.resize(out.size() + crypto::kSegmentTagSize);
    if (Status st = reader_->ReadAt(crypto::SegmentOffset(index, seg_size), cipher_); !st.ok()) return st;
    if (Status st = decryptor_->OpenSegment(index, cipher_, out); !st.ok()) return st;
    if (service_.observer().decrypted) {
      service_.observer().decrypted(out.size());
    }
    return Status::Ok();
  }

  ObjectService& service_;
  storage::BlobStore& blobs_;
  catalog::ObjectRecord record_;
  SecretBytes data_key_;
  ObjectInfo info_;
  std::vector<uint64_t> part_starts_;
  std::vector<std::string> blob_ids_;
  uint64_t pos_ = 0;
  uint64_t end_ = 0;
  size_t open_part_ = SIZE_MAX;
  std::unique_ptr<storage::BlobReader> reader_;
  std::optional<crypto::BlobDecryptor> decryptor_;
  uint64_t cached_segment_ = UINT64_MAX;
  Bytes cipher_;
  Bytes plain_;
};

// ---------------------------------------------------------------------------------------------

ObjectService::ObjectService(catalog::Catalog& catalog, keystore::TenantKeyStore& keys, storage::BlobStore& blobs,
                             ServiceOptions options)
    : catalog_(catalog), keys_(keys), blobs_(blobs), options_(options) {}

void ObjectService::StartHashingThreads() { (void)internal::SharedHashPool(); }

ObjectService::~ObjectService() = default;

SResult<Done> ObjectService::Recover() {
  auto removed = blobs_.RemoveTemporaries();
  if (!removed.ok()) return FromStatus(removed.status());
  auto collected = CollectGarbage();
  if (!collected.ok()) return collected.error();
  return Done{};
}

SResult<uint64_t> ObjectService::CollectGarbage() {
  const UnixMillis cutoff = NowMillis() - options_.garbage_grace_ms;
  uint64_t removed = 0;
  for (;;) {
    auto garbage = catalog_.ListGarbage(1000);
    if (!garbage.ok()) return FromStatus(garbage.status());
    std::vector<std::string> done;
    for (const auto& g : *garbage) {
      if (g.since > cutoff) continue;
      {
        std::lock_guard lock(pin_mu_);
        if (pinned_.count(g.blob_id) != 0) continue;
      }
      if (Status st = blobs_.Remove(g.blob_id); !st.ok()) return FromStatus(st);
      done.push_back(g.blob_id);
    }
    if (!done.empty()) {
      if (Status st = catalog_.ForgetGarbage(done); !st.ok()) return FromStatus(st);
      removed += done.size();
    }
    if (garbage->size() < 1000 || done.empty()) break;
  }
  return removed;
}

void ObjectService::PinBlobs(const std::vector<std::string>& ids) {
  std::lock_guard lock(pin_mu_);
  for (const auto& id : ids) ++pinned_[id];
}

void ObjectService::UnpinBlobs(const std::vector<std::string>& ids) {
  std::lock_guard lock(pin_mu_);
  for (const auto& id : ids) {
    auto it = pinned_.find(id);
    if (it != pinned_.end() && --it->second == 0) pinned_.erase(it);
  }
}

SResult<Bucket> ObjectService::CreateBucket(const std::string& tenant_id, const std::string& name, bool object_lock) {
  Attributes settings;
  if (object_lock) {
    settings.emplace(kVersioningSetting, kVersioningEnabled);
    settings.emplace(kObjectLockSetting, kObjectLockEnabled);
  }
  auto b = catalog_.CreateBucket(tenant_id, name, settings);
  if (b.ok()) return std::move(b).value();
  if (b.status().code() == StatusCode::kAlreadyExists) {
    auto existing = catalog_.GetBucket(name);
    if (existing.ok() && existing->tenant_id == tenant_id) {
      return Err(Errc::kBucketAlreadyOwnedByYou, "bucket already owned by you");
    }
    return Err(Errc::kBucketAlreadyExists, "bucket name is taken");
  }
  return FromStatus(b.status());
}

SResult<Bucket> ObjectService::GetBucket(const std::string& tenant_id, const std::string& name) {
  auto b = catalog_.GetBucket(name);
  if (!b.ok()) {
    if (b.status().code() == StatusCode::kNotFound) return Err(Errc::kNoSuchBucket, "no such bucket");
    return FromStatus(b.status());
  }
  if (b->tenant_id != tenant_id) return Err(Errc::kAccessDenied, "bucket belongs to another account");
  return std::move(b).value();
}

SResult<std::vector<Bucket>> ObjectService::ListBuckets(const std::string& tenant_id) {
  auto r = catalog_.ListBuckets(tenant_id);
  if (!r.ok()) return FromStatus(r.status());
  return std::move(r).value();
}

SResult<Done> ObjectService::DeleteBucket(const std::string& tenant_id, const std::string& name) {
  auto b = GetBucket(tenant_id, name);
  if (!b.ok()) return b.error();
  Status st = catalog_.DeleteBucket(*b);
  if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kBucketNotEmpty, st.message());
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kNoSuchBucket, st.message());
  if (!st.ok()) return FromStatus(st);
  return Done{};
}

SResult<catalog::ListPage> ObjectService::ListObjects(const Bucket& bucket, const catalog::ListQuery& query) {
  auto r = catalog_.ListObjects(bucket.id, query);
  if (!r.ok()) return FromStatus(r.status());
  return std::move(r).value();
}

SResult<std::unique_ptr<ObjectWriter>> ObjectService::BeginPut(const Bucket& bucket, const std::string& key,
                                                               Attributes attributes,
                                                               std::set<crypto::ChecksumAlgorithm> checksums,
                                                               const RequestInfo* request, std::optional<uint64_t> size,
                                                               catalog::Tags tags, catalog::ObjectLock lock,
                                                               const std::string& named_key_id) {
  auto version_lock = LockForNewVersion(bucket, std::move(lock));
  if (!version_lock.ok()) return version_lock.error();
  std::string object_id = RandomId(16);
  auto dk = keys_.NewDataKey(KeyFor(bucket, named_key_id), DataKeyAad(bucket.name, key, object_id));
  NoteKeyOperation(observer_, KeyOperation::kWrap, dk.ok());
  if (!dk.ok()) {
    internal::RecordKeyFailure(
        audit_, internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, key, object_id, {}, 0, request),
        dk.status());
    return FromKeyStatus(dk.status());
  }
  audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, key, object_id, dk->tenant_key_id,
                                          dk->tenant_key_version, request);
  auto key_use = internal::StartKeyUse(audit_, event);
  auto w = std::make_unique<BlobObjectWriter>(*this, catalog_, keys_, blobs_, BlobObjectWriter::Kind::kObject);
  auto r = w->Init(bucket, key, std::move(attributes), std::move(checksums), dk->key, ToKeyInfo(*dk),
                   std::move(object_id), {}, 0, size, std::move(tags), std::move(version_lock).value());
  if (!r.ok()) return r.error();
  w->PublishAfter(std::move(key_use), std::move(event));
  return std::unique_ptr<ObjectWriter>(std::move(w));
}

bool IsVersionId(std::string_view id) {
  // Object ids are random hex: 16 bytes for a single PUT's, 24 for a multipart upload's.
  return id == catalog::kNullVersionId || ((id.size() == 32 || id.size() == 48) && std::ranges::all_of(id, [](char c) {
                                             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                                           }));
}

SResult<catalog::ObjectRecord> ObjectService::FindObject(const Bucket& bucket, const std::string& key,
                                                         const std::string& version_id) {
  if (version_id.empty()) {
    auto rec = catalog_.GetObject(bucket.id, key);
    if (rec.ok() || rec.status().code() != StatusCode::kNotFound) {
      if (!rec.ok()) return FromStatus(rec.status());
      return std::move(rec).value();
    }
    Error missing = Err(Errc::kNoSuchKey, "no such key");
    // Only a bucket that has had versioning can hold delete markers.
    if (!VersioningOf(bucket).empty()) {
      if (auto latest = catalog_.GetObjectVersion(bucket.id, key, ""); latest.ok() && latest->delete_marker) {
        missing.delete_marker = DeleteMarkerRef{latest->version_id(), latest->last_modified};
      }
    }
    return missing;
  }
  auto rec = catalog_.GetObjectVersion(bucket.id, key, version_id);
  if (!rec.ok()) {
    if (rec.status().code() == StatusCode::kNotFound) return Err(Errc::kNoSuchVersion, "no such version");
    return FromStatus(rec.status());
  }
  if (rec->delete_marker) {
    Error marker = Err(Errc::kMethodNotAllowed, "the version is a delete marker");
    marker.delete_marker = DeleteMarkerRef{rec->version_id(), rec->last_modified};
    return marker;
  }
  return std::move(rec).value();
}

SResult<ObjectInfo> ObjectService::HeadObject(const Bucket& bucket, const std::string& key,
                                              const std::string& version_id) {
  auto rec = FindObject(bucket, key, version_id);
  if (!rec.ok()) return rec.error();
  return InfoOf(*rec, ReportedVersionId(bucket, *rec, !version_id.empty()));
}

SResult<std::unique_ptr<ObjectReader>> ObjectService::OpenObject(const Bucket& bucket, const std::string& key,
                                                                 const RequestInfo* request,
                                                                 const std::string& version_id) {
  auto rec = FindObject(bucket, key, version_id);
  if (!rec.ok()) return rec.error();
  auto dk = internal::UnwrapRowDataKey(keys_, bucket.tenant_id, rec->key_info, bucket.name, key, rec->object_id);
  NoteKeyOperation(observer_, KeyOperation::kUnwrap, dk.ok());
  audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyUnwrap, bucket, key, rec->object_id,
                                          rec->key_info.tenant_key_id, rec->key_info.tenant_key_version, request);
  if (!dk.ok()) {
    internal::RecordKeyFailure(audit_, event, dk.status());
    return FromKeyStatus(dk.status());
  }
  auto key_use = internal::StartKeyUse(audit_, event);
  std::string reported = ReportedVersionId(bucket, *rec, !version_id.empty());
  auto blob_reader = std::make_unique<BlobObjectReader>(*this, blobs_, std::move(rec).value(), std::move(dk).value(),
                                                        std::move(reported));
  blob_reader->DecryptSmallObject();  // while the record is flushed
  auto reader = std::make_unique<RecordedBeforeRelease>(std::move(blob_reader), std::move(key_use), event);
  return internal::AuditReads(std::move(reader), audit_, std::move(event));
}

SResult<DeleteOutcome> ObjectService::DeleteObject(const Bucket& bucket, const std::string& key,
                                                   const std::string& version_id, const RequestInfo* request,
                                                   bool bypass_governance) {
  DeleteOutcome outcome;
  if (!version_id.empty()) {
    auto removed = catalog_.DeleteObjectVersion(bucket, key, version_id, bypass_governance);
    if (!removed.ok()) {
      if (BucketGone(removed.status())) return Err(Errc::kNoSuchBucket, removed.status().message());
      if (removed.status().code() == StatusCode::kPermissionDenied) {
        return Err(Errc::kAccessDenied, removed.status().message());
      }
      if (removed.status().code() != StatusCode::kNotFound) return FromStatus(removed.status());
    }
    outcome.version_id = version_id;
    outcome.delete_marker = removed.ok() && removed->delete_marker;
    return outcome;
  }
  const std::string_view versioning = VersioningOf(bucket);
  if (versioning.empty()) {
    Status st = catalog_.DeleteObject(bucket, key);
    if (BucketGone(st)) return Err(Errc::kNoSuchBucket, st.message());
    if (st.code() == StatusCode::kPermissionDenied) return Err(Errc::kAccessDenied, st.message());
    if (!st.ok() && st.code() != StatusCode::kNotFound) return FromStatus(st);
    return outcome;
  }
  catalog::ObjectRecord marker;
  marker.bucket_id = bucket.id;
  marker.tenant_id = bucket.tenant_id;
  marker.key = key;
  marker.object_id = RandomId(16);
  marker.last_modified = NowMillis();
  marker.null_version = versioning != kVersioningEnabled;
  marker.delete_marker = true;
  auto described = WriteDeleteMarker(bucket, marker, request);
  if (!described.ok()) return described.error();
  marker.manifest_blob_id = *described;
  if (auto fenced = KeepClearOfDestruction(bucket, key, marker.object_id, marker.key_info, {*described}, request);
      !fenced.ok()) {
    (void)blobs_.Remove(*described);  // never published
    return fenced.error();
  }
  Status st = catalog_.PutDeleteMarker(marker);
  if (!st.ok()) {
    (void)blobs_.Remove(*described);  // never published
    if (BucketGone(st)) return Err(Errc::kNoSuchBucket, st.message());
    if (st.code() == StatusCode::kPermissionDenied) return Err(Errc::kAccessDenied, st.message());
    return FromStatus(st);
  }
  outcome.version_id = marker.version_id();
  outcome.delete_marker = true;
  return outcome;
}

SResult<std::string> ObjectService::WriteDeleteMarker(const Bucket& bucket, catalog::ObjectRecord& marker,
                                                      const RequestInfo* request) {
  auto dk = keys_.NewDataKey(bucket.tenant_id, DataKeyAad(bucket.name, marker.key, marker.object_id));
  NoteKeyOperation(observer_, KeyOperation::kWrap, dk.ok());
  audit::Event event =
      internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, marker.key, marker.object_id,
                         dk.ok() ? dk->tenant_key_id : Bytes(), dk.ok() ? dk->tenant_key_version : 0, request);
  if (!dk.ok()) {
    internal::RecordKeyFailure(audit_, event, dk.status());
    return FromKeyStatus(dk.status());
  }
  if (auto e = internal::RecordKeyUse(audit_, event)) return *e;
  marker.key_info = ToKeyInfo(*dk);
  catalog::BlobDescription d = DescriptionOf(catalog::BlobDescription::Kind::kDeleteMarker, bucket, marker);
  d.last_modified = marker.last_modified;
  d.sequence = NextWriteSequence();
  d.null_version = marker.null_version;
  const Bytes description = catalog::EncodeBlobDescription(d);
  auto blob = blobs_.CreateBlob(DescribedBlobSize(description.size()));
  if (!blob.ok()) return FromStatus(blob.status());
  return SealDescribedBlob(**blob, bucket.tenant_id, marker.key_info, dk->key, description);
}

SResult<catalog::VersionListPage> ObjectService::ListObjectVersions(const Bucket& bucket,
                                                                    const catalog::VersionListQuery& query) {
  auto r = catalog_.ListObjectVersions(bucket.id, query);
  if (!r.ok()) return FromStatus(r.status());
  return std::move(r).value();
}

SResult<std::string> ObjectService::CreateUpload(const Bucket& bucket, const std::string& key, Attributes attributes,
                                                 const RequestInfo* request, catalog::Tags tags,
                                                 catalog::ObjectLock lock, const std::string& named_key_id) {
  if (!lock.empty()) {
    // Checked now, as S3 does; the default retention is the bucket's at Complete.
    auto checked = LockForNewVersion(bucket, lock);
    if (!checked.ok()) return checked.error();
  }
  catalog::UploadRecord up;
  up.upload_id = RandomId(24);
  auto dk = keys_.NewDataKey(KeyFor(bucket, named_key_id), DataKeyAad(bucket.name, key, up.upload_id));
  NoteKeyOperation(observer_, KeyOperation::kWrap, dk.ok());
  if (!dk.ok()) {
    internal::RecordKeyFailure(
        audit_, internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, key, up.upload_id, {}, 0, request),
        dk.status());
    return FromKeyStatus(dk.status());
  }
  if (auto e =
          internal::RecordKeyUse(audit_, internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, key, up.upload_id,
                                                            dk->tenant_key_id, dk->tenant_key_version, request))) {
    return *e;
  }
  up.bucket_id = bucket.id;
  up.tenant_id = bucket.tenant_id;
  up.key = key;
  up.initiated = NowMillis();
  up.attributes = std::move(attributes);
  up.tags = std::move(tags);
  up.lock = std::move(lock);
  up.key_info = ToKeyInfo(*dk);
  if (auto fenced = KeepClearOfDestruction(bucket, key, up.upload_id, up.key_info, {}, request); !fenced.ok()) {
    return fenced.error();
  }
  if (Status st = catalog_.CreateUpload(up); !st.ok()) {
    return BucketGone(st) ? Err(Errc::kNoSuchBucket, st.message()) : FromStatus(st);
  }
  return up.upload_id;
}

SResult<catalog::UploadRecord> ObjectService::GetUpload(const Bucket& bucket, const std::string& key,
                                                        const std::string& upload_id) {
  auto up = catalog_.GetUpload(upload_id);
  if (!up.ok()) {
    if (up.status().code() == StatusCode::kNotFound) return Err(Errc::kNoSuchUpload, "no such upload");
    return FromStatus(up.status());
  }
  if (up->bucket_id != bucket.id || up->key != key) return Err(Errc::kNoSuchUpload, "no such upload");
  return std::move(up).value();
}

SResult<std::unique_ptr<ObjectWriter>> ObjectService::BeginPart(const Bucket& bucket, const std::string& key,
                                                                const std::string& upload_id, uint32_t part_number,
                                                                std::set<crypto::ChecksumAlgorithm> checksums,
                                                                const RequestInfo* request,
                                                                std::optional<uint64_t> size) {
  auto up = GetUpload(bucket, key, upload_id);
  if (!up.ok()) return up.error();
  auto dk = internal::UnwrapRowDataKey(keys_, bucket.tenant_id, up->key_info, bucket.name, key, upload_id);
  NoteKeyOperation(observer_, KeyOperation::kUnwrap, dk.ok());
  const audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyUnwrap, bucket, key, upload_id,
                                                up->key_info.tenant_key_id, up->key_info.tenant_key_version, request);
  if (!dk.ok()) {
    internal::RecordKeyFailure(audit_, event, dk.status());
    return FromKeyStatus(dk.status());
  }
  if (auto e = internal::RecordKeyUse(audit_, event)) return *e;
  if (const auto it = up->attributes.find(std::string(kChecksumAlgorithmAttribute)); it != up->attributes.end()) {
    if (const auto alg = crypto::ParseChecksumAlgorithm(it->second)) checksums.insert(*alg);
  }
  auto w = std::make_unique<BlobObjectWriter>(*this, catalog_, keys_, blobs_, BlobObjectWriter::Kind::kPart);
  auto r = w->Init(bucket, key, {}, std::move(checksums), *dk, up->key_info, upload_id, upload_id, part_number, size);
  if (!r.ok()) return r.error();
  w->PublishAfter(nullptr, event);  // recorded already; the event names the request
  return std::unique_ptr<ObjectWriter>(std::move(w));
}

SResult<PutResult> ObjectService::CompleteUpload(const Bucket& bucket, const std::string& key,
                                                 const std::string& upload_id, const std::vector<UploadPartRef>& parts,
                                                 const catalog::WriteCondition& condition, const RequestInfo* request,
                                                 const CompleteExpectations& expected) {
  auto up = GetUpload(bucket, key, upload_id);
  if (!up.ok()) {
    if (up.error().code == Errc::kNoSuchUpload) {
      if (auto again = CompletedAlready(bucket, key, upload_id, parts)) return std::move(*again);
    }
    return up.error();
  }
  if (parts.empty()) return Err(Errc::kInvalidPart, "no parts given");
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].part_number <= parts[i - 1].part_number) {
      return Err(Errc::kInvalidPartOrder, "parts must be in ascending order");
    }
  }
  auto stored = catalog_.ListParts(upload_id, 0, 10001);
  if (!stored.ok()) return FromStatus(stored.status());
  std::map<uint32_t, const catalog::PartRecord*> by_number;
  for (const auto& p : *stored) by_number[p.part_number] = &p;

  catalog::ObjectRecord rec;
  rec.bucket_id = bucket.id;
  rec.tenant_id = bucket.tenant_id;
  rec.key = key;
  rec.object_id = upload_id;
  rec.attributes = up->attributes;
  rec.key_info = up->key_info;
  rec.tags = up->tags;
  auto lock = LockForNewVersion(bucket, up->lock, /*check_date=*/false);
  if (!lock.ok()) return lock.error();
  rec.lock = std::move(lock).value();
  rec.null_version = VersioningOf(bucket) != kVersioningEnabled;
  crypto::Md5 md5_of_md5s;
  std::vector<const catalog::PartRecord*> named;
  // Every named part must exist before sizes are judged (InvalidPart wins over EntityTooSmall).
  for (const auto& ref : parts) {
    auto it = by_number.find(ref.part_number);
    if (it == by_number.end() || it->second->etag != ref.etag) {
      return Err(Errc::kInvalidPart, "part " + std::to_string(ref.part_number) + " not found or ETag differs");
    }
    for (const auto& [alg, value] : ref.checksums) {
      const auto uploaded = it->second->attributes.find(std::string(crypto::ChecksumHeaderName(alg)));
      if (uploaded == it->second->attributes.end() || Base64Decode(uploaded->second) != value) {
        return Err(Errc::kInvalidPart, "part " + std::to_string(ref.part_number) + ": its " +
                                           std::string(crypto::ChecksumAlgorithmName(alg)) +
                                           " is not the one it was uploaded with");
      }
    }
    named.push_back(it->second);
  }
  for (size_t i = 0; i < named.size(); ++i) {
    const catalog::PartRecord& p = *named[i];
    if (i + 1 < named.size() && p.size < options_.min_part_size) {
      return Err(Errc::kEntityTooSmall, "part " + std::to_string(p.part_number) + " is smaller than the minimum");
    }
    auto raw = HexDecode(p.etag);
    if (!raw) return Err(Errc::kInternal, "stored part ETag is not hex");
    md5_of_md5s.Update(*raw);
    rec.parts.push_back(catalog::ObjectPart{p.part_number, p.blob_id, p.size, p.etag, p.attributes});
    rec.size += p.size;
  }
  auto checksums = ChecksumsOfParts(*up, named, parts, expected);
  if (!checksums.ok()) return checksums.error();
  const std::string suffix = "-" + std::to_string(parts.size());
  rec.etag = HexEncode(md5_of_md5s.Final()) + suffix;
  rec.last_modified = NowMillis();
  rec.attributes.erase(std::string(kChecksumTypeAttribute));
  PutResult result;
  for (const auto& [alg, value] : checksums->values) {
    rec.attributes[std::string(crypto::ChecksumHeaderName(alg))] =
        Base64Encode(value) + (checksums->type == kCompositeChecksum ? suffix : "");
    rec.attributes[std::string(kChecksumTypeAttribute)] = checksums->type;
  }
  result.checksums = std::move(checksums->values);
  result.checksum_type = std::move(checksums->type);
  auto manifest = WriteManifest(bucket, rec, request);
  if (!manifest.ok()) return manifest.error();
  rec.manifest_blob_id = *manifest;
  // Unless the catalog row names it, the manifest describes an object that does not exist.
  struct RemoveUnlessKept {
    storage::BlobStore& blobs;
    const std::string& id;
    bool kept = false;
    ~RemoveUnlessKept() {
      if (!kept) (void)blobs.Remove(id);
    }
  } manifest_guard{blobs_, rec.manifest_blob_id};
  Status st;
  for (int attempt = 0;; ++attempt) {
    // The upload's wrapped data key becomes the object's: recorded before the catalog change.
    if (auto e = internal::RecordKeyUse(
            audit_, internal::KeyEvent(audit::Operation::kDataKeyWrap, bucket, key, upload_id,
                                       rec.key_info.tenant_key_id, rec.key_info.tenant_key_version, request))) {
      return *e;
    }
    uint32_t moved_to = rec.key_info.tenant_key_version;
    st = catalog_.CompleteUpload(upload_id, rec, condition, &moved_to);
    if (st.ok() || moved_to == rec.key_info.tenant_key_version) break;
    // A rewrap moved the upload to another version after it was read here: the manifest's header
    // copy is under the old one, which may be destroyed next. It gets a copy under the new one.
    if (attempt + 1 == kCoverAttempts) {
      return Err(Errc::kUnavailable, "the upload's data key kept moving to newer key versions; retry");
    }
    auto moved = CoverUploadBlobs(bucket, key, upload_id, {rec.manifest_blob_id}, request);
    if (!moved.ok()) return moved.error();
    rec.key_info = std::move(moved).value();
  }
  manifest_guard.kept = st.ok();
  if (st.code() == StatusCode::kNotFound) {
    return condition.if_match_etag ? Err(Errc::kNoSuchKey, st.message()) : Err(Errc::kNoSuchUpload, st.message());
  }
  if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, st.message());
  if (BucketGone(st)) return Err(Errc::kNoSuchBucket, st.message());
  if (st.code() == StatusCode::kPermissionDenied) return Err(Errc::kAccessDenied, st.message());
  if (!st.ok()) return FromStatus(st);
  result.etag = rec.etag;
  result.last_modified = rec.last_modified;
  result.version_id = ReportedVersionId(bucket, rec, false);
  result.encryption = ReportOf(rec.attributes, rec.key_info, rec.tenant_id);
  return result;
}

// A client whose answer to a Complete was lost sends it again, and the upload is gone by then. As
// S3 does, the retry gets the answer of the Complete that succeeded, for as long as the object it
// made is still the key's and the same parts are named; nothing is written, no key is used.
std::optional<PutResult> ObjectService::CompletedAlready(const Bucket& bucket, const std::string& key,
                                                         const std::string& upload_id,
                                                         const std::vector<UploadPartRef>& parts) {
  auto rec = catalog_.GetObject(bucket.id, key);
  if (!rec.ok() || rec->object_id != upload_id || rec->parts.size() != parts.size()) return std::nullopt;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (rec->parts[i].part_number != parts[i].part_number || rec->parts[i].etag != parts[i].etag) {
      return std::nullopt;
    }
  }
  PutResult result;
  result.etag = rec->etag;
  result.last_modified = rec->last_modified;
  result.version_id = ReportedVersionId(bucket, *rec, false);
  result.encryption = ReportOf(rec->attributes, rec->key_info, rec->tenant_id);
  // The object's checksums, a composite one stored with its "-<parts>" suffix.
  const auto type = rec->attributes.find(std::string(kChecksumTypeAttribute));
  result.checksum_type = type != rec->attributes.end() ? type->second : std::string(kCompositeChecksum);
  const std::string suffix = result.checksum_type == kCompositeChecksum ? "-" + std::to_string(parts.size()) : "";
  for (const auto& [name, value] : rec->attributes) {
    auto alg = crypto::ParseChecksumAlgorithm(name);
    if (!alg || !value.ends_with(suffix)) continue;
    if (auto raw = Base64Decode(std::string_view(value).substr(0, value.size() - suffix.size()))) {
      result.checksums[*alg] = std::move(*raw);
    }
  }
  if (result.checksums.empty()) result.checksum_type.clear();
  return result;
}

SResult<std::string> ObjectService::WriteUnderObjectKey(const Bucket& bucket, const catalog::ObjectRecord& rec,
                                                        const Bytes& description, const RequestInfo* request) {
  auto dk = internal::UnwrapRowDataKey(keys_, bucket.tenant_id, rec.key_info, bucket.name, rec.key, rec.object_id);
  NoteKeyOperation(observer_, KeyOperation::kUnwrap, dk.ok());
  const audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyUnwrap, bucket, rec.key, rec.object_id,
                                                rec.key_info.tenant_key_id, rec.key_info.tenant_key_version, request);
  if (!dk.ok()) {
    internal::RecordKeyFailure(audit_, event, dk.status());
    return FromKeyStatus(dk.status());
  }
  if (auto e = internal::RecordKeyUse(audit_, event)) return *e;

  auto blob = blobs_.CreateBlob(DescribedBlobSize(description.size()));
  if (!blob.ok()) return FromStatus(blob.status());
  return SealDescribedBlob(**blob, bucket.tenant_id, rec.key_info, *dk, description);
}

SResult<std::string> ObjectService::WriteManifest(const Bucket& bucket, const catalog::ObjectRecord& rec,
                                                  const RequestInfo* request) {
  catalog::BlobDescription d = DescriptionOf(catalog::BlobDescription::Kind::kManifest, bucket, rec);
  d.upload_id = rec.object_id;  // a completed upload's object keeps the upload's id
  d.size = rec.size;
  d.etag = rec.etag;
  d.last_modified = rec.last_modified;
  d.sequence = NextWriteSequence();
  d.attributes = rec.attributes;
  d.parts = rec.parts;
  d.tags = rec.tags;
  d.lock = rec.lock;
  d.null_version = rec.null_version;
  return WriteUnderObjectKey(bucket, rec, catalog::EncodeBlobDescription(d), request);
}

SResult<std::string> ObjectService::WriteObjectUpdate(const Bucket& bucket, const catalog::ObjectRecord& rec,
                                                      const catalog::ObjectUpdate& update, const RequestInfo* request) {
  catalog::BlobDescription d = DescriptionOf(catalog::BlobDescription::Kind::kObjectUpdate, bucket, rec);
  d.sequence = NextWriteSequence();
  d.last_modified = NowMillis();
  d.tags = update.tags;
  d.lock = update.lock;
  return WriteUnderObjectKey(bucket, rec, catalog::EncodeBlobDescription(d), request);
}

SResult<std::string> ObjectService::SetObjectTags(const Bucket& bucket, const std::string& key,
                                                  const catalog::Tags& tags, const RequestInfo* request,
                                                  const std::string& version_id) {
  return UpdateObject(bucket, key, version_id, request,
                      [&](const catalog::ObjectRecord& rec) -> SResult<std::optional<catalog::ObjectUpdate>> {
                        // No tags, and none to have: a rebuild finds none either way.
                        if (rec.tags.empty() && tags.empty()) return std::optional<catalog::ObjectUpdate>();
                        return std::optional<catalog::ObjectUpdate>(catalog::ObjectUpdate{tags, rec.lock});
                      });
}

SResult<std::string> ObjectService::UpdateObject(const Bucket& bucket, const std::string& key,
                                                 const std::string& version_id, const RequestInfo* request,
                                                 const UpdateFunction& change) {
  // A write of the key, a rewrap of its data key or another change between the read and the
  // catalog update makes the update blob name the wrong object or key version, or come after a
  // newer one: it is removed, and the change decided again on a fresh read.
  constexpr int kAttempts = 4;
  for (int attempt = 1;; ++attempt) {
    auto rec = FindObject(bucket, key, version_id);
    if (!rec.ok()) return rec.error();
    auto changed = change(*rec);
    if (!changed.ok()) return changed.error();
    if (!changed->has_value()) return ReportedVersionId(bucket, *rec, !version_id.empty());
    const catalog::ObjectUpdate& update = **changed;
    auto blob = WriteObjectUpdate(bucket, *rec, update, request);
    if (!blob.ok()) {
      // A rewrap and the destruction of the key version the row was read under make the unwrap
      // fail: the row, read again, is under the new version.
      auto again = FindObject(bucket, key, version_id);
      if (attempt < kAttempts && again.ok() && again->key_info.tenant_key_version != rec->key_info.tenant_key_version) {
        continue;
      }
      return blob.error();
    }
    Status st = catalog_.UpdateObject(bucket, key, rec->object_id, rec->key_info.tenant_key_version,
                                      rec->update_blob_id, update, *blob);
    if (st.ok()) return ReportedVersionId(bucket, *rec, !version_id.empty());
    (void)blobs_.Remove(*blob);  // never named by the catalog
    if (st.code() == StatusCode::kFailedPrecondition && attempt < kAttempts) continue;
    if (st.code() == StatusCode::kNotFound) return Err(Errc::kNoSuchKey, st.message());
    if (BucketGone(st)) return Err(Errc::kNoSuchBucket, st.message());
    if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kUnavailable, st.message());
    return FromStatus(st);
  }
}

SResult<catalog::Tags> ObjectService::GetBucketTags(const Bucket& bucket) {
  auto tags = catalog_.GetBucketTags(bucket);
  if (!tags.ok()) {
    if (tags.status().code() == StatusCode::kNotFound) return Err(Errc::kNoSuchBucket, tags.status().message());
    return FromStatus(tags.status());
  }
  return std::move(tags).value();
}

SResult<Done> ObjectService::SetBucketTags(const Bucket& bucket, const catalog::Tags& tags) {
  Status st = catalog_.SetBucketTags(bucket, tags);
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kNoSuchBucket, st.message());
  if (!st.ok()) return FromStatus(st);
  return Done{};
}

SResult<Bucket> ObjectService::RefreshBucket(const Bucket& bucket) {
  auto settings = GetBucketSettings(bucket);
  if (!settings.ok()) return settings.error();
  Bucket current = bucket;
  current.settings = std::move(settings).value();
  return current;
}

SResult<catalog::Attributes> ObjectService::GetBucketSettings(const Bucket& bucket) {
  auto settings = catalog_.GetBucketSettings(bucket);
  if (!settings.ok()) {
    if (settings.status().code() == StatusCode::kNotFound) {
      return Err(Errc::kNoSuchBucket, settings.status().message());
    }
    return FromStatus(settings.status());
  }
  return std::move(settings).value();
}

SResult<Done> ObjectService::UpdateBucketSettings(const Bucket& bucket, const catalog::SettingChanges& changes) {
  Status st = catalog_.UpdateBucketSettings(bucket, changes);
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kNoSuchBucket, st.message());
  if (!st.ok()) return FromStatus(st);
  return Done{};
}

uint64_t ObjectService::NextWriteSequence() {
  const auto now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  uint64_t last = last_write_sequence_.load();
  uint64_t next = 0;
  do {
    next = std::max(now, last + 1);
  } while (!last_write_sequence_.compare_exchange_weak(last, next));
  return next;
}

uint64_t ObjectService::DescribedBlobSize(size_t description_size) const {
  // No body: a header, the one empty last segment, then the description.
  return crypto::CiphertextLength(0, options_.segment_size) + description_size + crypto::kSegmentTagSize;
}

SResult<std::string> ObjectService::SealDescribedBlob(storage::BlobWriter& blob, const std::string& tenant_id,
                                                      const catalog::KeyInfo& key_info, const SecretBytes& data_key,
                                                      const Bytes& description) {
  const uint32_t segment_size = options_.segment_size;
  auto key_reference = BlobHeaderKeyReference(keys_, tenant_id, key_info, data_key, blob.id());
  if (!key_reference.ok()) return FromKeyStatus(key_reference.status());
  auto enc = crypto::BlobEncryptor::Create(data_key, std::move(key_reference).value(),
                                           crypto::BlobIdentity{tenant_id, blob.id()}, segment_size,
                                           crypto::kBlobFormatVersion2);
  if (!enc.ok()) return FromStatus(enc.status());
  Bytes bytes = enc->EncodeHeader(0);
  const size_t segment_at = bytes.size();
  bytes.resize(segment_at + crypto::kSegmentTagSize);
  if (Status st = enc->SealSegment(0, true, {}, std::span<uint8_t>(bytes).subspan(segment_at)); !st.ok()) {
    return FromStatus(st);
  }
  auto sealed = enc->SealDescription(0, description);
  if (!sealed.ok()) return FromStatus(sealed.status());
  bytes.insert(bytes.end(), sealed->begin(), sealed->end());
  if (Status st = blob.Append(bytes); !st.ok()) return FromStatus(st);
  if (Status st = blob.Commit(); !st.ok()) return FromStatus(st);
  return blob.id();
}

SResult<Done> ObjectService::AbortUpload(const Bucket& bucket, const std::string& key, const std::string& upload_id) {
  auto up = GetUpload(bucket, key, upload_id);
  if (!up.ok()) return up.error();
  Status st = catalog_.AbortUpload(upload_id);
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kNoSuchUpload, st.message());
  if (!st.ok()) return FromStatus(st);
  return Done{};
}

SResult<std::vector<catalog::PartRecord>> ObjectService::ListParts(const Bucket& bucket, const std::string& key,
                                                                   const std::string& upload_id, uint32_t marker,
                                                                   uint32_t max_parts) {
  auto up = GetUpload(bucket, key, upload_id);
  if (!up.ok()) return up.error();
  auto r = catalog_.ListParts(upload_id, marker, max_parts);
  if (!r.ok()) return FromStatus(r.status());
  return std::move(r).value();
}

SResult<catalog::UploadListPage> ObjectService::ListUploads(const Bucket& bucket, const catalog::UploadListQuery& q) {
  auto r = catalog_.ListUploads(bucket.id, q);
  if (!r.ok()) return FromStatus(r.status());
  return std::move(r).value();
}

}  // namespace coffre::service
