#include "coffre/service/catalog_rebuild.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "coffre/catalog/blob_description.h"
#include "coffre/crypto/blob_format.h"
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

std::string TenantOf(const crypto::BlobHeader& h) { return HexEncode(h.key.tenant_key_id); }

// What opening a blob's key is recorded under before its description says which bucket it is in:
// its tenant alone.
catalog::Bucket TenantOnly(const std::string& tenant) {
  catalog::Bucket b;
  b.tenant_id = tenant;
  return b;
}

class Rebuild {
 public:
  Rebuild(keystore::TenantKeyStore& keys, storage::BlobStore& blobs, catalog::Catalog& fresh, audit::Recorder* audit,
          const audit::RequestInfo& request)
      : keys_(keys), blobs_(blobs), fresh_(fresh), audit_(audit), request_(request) {}

  Result<RebuildReport> Run() {
    COFFRE_ASSIGN_OR_RETURN(std::vector<storage::StoredFile> listed, blobs_.ListBlobs(&report_.strays));
    report_.blobs = listed.size();
    std::vector<std::string> ids;
    ids.reserve(listed.size());
    for (const storage::StoredFile& file : listed) ids.push_back(file.name);
    // A blob whose header's key version is gone waits for the key copies that a rewrap wrote,
    // which are blobs of the same listing.
    COFFRE_RETURN_IF_ERROR(OpenAll(ids, /*through_copies=*/false));
    COFFRE_RETURN_IF_ERROR(OpenAll(std::exchange(deferred_, {}), /*through_copies=*/true));
    COFFRE_RETURN_IF_ERROR(Choose());
    COFFRE_RETURN_IF_ERROR(Write());
    COFFRE_RETURN_IF_ERROR(fresh_.AddKeyCopyBlobs(key_copy_blobs_));
    return std::move(report_);
  }

 private:
  void Unreadable(const std::string& blob_id, const std::string& why) {
    report_.unreadable.push_back(blob_id + ": " + why);
  }

  Status OpenAll(const std::vector<std::string>& ids, bool through_copies) {
    std::vector<Headed> batch;
    for (const std::string& id : ids) {
      COFFRE_ASSIGN_OR_RETURN(std::optional<Headed> headed, ReadHeader(id));
      if (!headed) continue;
      if (through_copies) {
        if (!UseKeyCopy(*headed)) continue;
      } else {
        // Deferred before any record: a version that is gone opens nothing, so nothing is used.
        COFFRE_ASSIGN_OR_RETURN(bool exists,
                                VersionExists(TenantOf(headed->parsed), headed->parsed.key.tenant_key_version));
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

  // Whether the tenant's key still has that version: not once destroyed, nor for a shredded or
  // unknown tenant.
  Result<bool> VersionExists(const std::string& tenant, uint32_t version) {
    auto it = versions_.find(tenant);
    if (it == versions_.end()) {
      std::set<uint32_t> versions;
      auto listed = keys_.ListKeyVersions(tenant);
      if (listed.ok()) {
        for (const keystore::KeyVersion& v : *listed) versions.insert(v.version);
      } else if (listed.status().code() != StatusCode::kNotFound) {
        return listed.status();
      }
      it = versions_.emplace(tenant, std::move(versions)).first;
    }
    return it->second.count(version) > 0;
  }

  // Puts in place of the header's copy of the data key the newest key copy of the blob; false
  // (reported) when there is none.
  bool UseKeyCopy(Headed& h) {
    auto it = copies_.find(h.blob_id);
    if (it == copies_.end()) {
      report_.without_key.push_back(h.blob_id);
      return false;
    }
    h.parsed.key.tenant_key_version = it->second.tenant_key_version;
    h.parsed.key.wrapped_data_key = it->second.wrapped_data_key;
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
      events.push_back(internal::KeyEvent(audit::Operation::kDataKeyUnwrap, TenantOnly(TenantOf(h.parsed)), "",
                                          h.blob_id, h.parsed.key.tenant_key_id, h.parsed.key.tenant_key_version,
                                          &request_));
    }
    COFFRE_RETURN_IF_ERROR(RecordAll(events));
    for (Headed& h : batch) COFFRE_RETURN_IF_ERROR(OpenDescription(h));
    batch.clear();
    return Status::Ok();
  }

  // Makes every record of a batch durable, in a few commits, before any of its keys is used.
  Status RecordAll(const std::vector<audit::Event>& events) {
    for (const Status& st : internal::RecordEach(audit_, events)) {
      if (!st.ok()) return Status(st.code(), "audit log: " + st.message() + " (no key was used unrecorded)");
    }
    return Status::Ok();
  }

  Status OpenDescription(Headed& h) {
    const std::string tenant = TenantOf(h.parsed);
    auto data_key = keys_.UnwrapDataKey(tenant, h.parsed.key.tenant_key_version, h.parsed.key.wrapped_data_key,
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
    Found found{
        h.blob_id, std::move(description).value(),
        catalog::KeyInfo{h.parsed.key.tenant_key_id, h.parsed.key.tenant_key_version, h.parsed.key.wrapped_data_key}};
    if (found.description.kind == BlobDescription::Kind::kKeyCopies) {
      KeepKeyCopies(found);
    } else if (found.description.kind == BlobDescription::Kind::kPart) {
      parts_[found.blob_id] = std::move(found);
    } else {
      const BlobDescription& d = found.description;
      candidates_[{d.tenant_id, d.bucket_name, d.bucket_id, d.key}].push_back(std::move(found));
    }
    return Status::Ok();
  }

  // Remembers a key-copies blob (the new catalog lists it, so that fsck keeps it) and, for each
  // blob it names, the copy under the newest version.
  void KeepKeyCopies(const Found& found) {
    ++report_.key_copy_blobs;
    key_copy_blobs_.push_back({found.blob_id, found.description.tenant_id, found.header_key.tenant_key_version});
    for (const catalog::KeyCopy& copy : found.description.key_copies) {
      auto [it, inserted] = copies_.try_emplace(copy.blob_id, copy);
      if (!inserted && copy.tenant_key_version > it->second.tenant_key_version) it->second = copy;
    }
  }

  // Why a manifest cannot make its object ("" when it can): each part it names must be a
  // readable part blob of the same upload and number.
  std::string MissingPart(const BlobDescription& manifest) const {
    for (const catalog::ObjectPart& p : manifest.parts) {
      auto it = parts_.find(p.blob_id);
      if (it == parts_.end()) return "part " + std::to_string(p.part_number) + " (blob " + p.blob_id + ") is missing";
      const BlobDescription& part = it->second.description;
      if (part.upload_id != manifest.upload_id || part.part_number != p.part_number || part.size != p.size) {
        return "part " + std::to_string(p.part_number) + " (blob " + p.blob_id + ") belongs to another upload";
      }
    }
    return "";
  }

  // For each bucket name, the bucket (of all ids a tenant gave that name) whose newest object is
  // newest; for each of its keys, the newest object that can be rebuilt.
  Status Choose() {
    std::map<std::pair<std::string, std::string>, std::pair<UnixMillis, int64_t>> newest_bucket;
    for (const auto& [where, found] : candidates_) {
      const auto& [tenant, name, bucket_id, key] = where;
      for (const Found& f : found) {
        auto& best = newest_bucket[{tenant, name}];
        if (f.description.last_modified >= best.first) best = {f.description.last_modified, bucket_id};
      }
    }
    std::set<std::string> used_uploads;
    for (auto& [where, found] : candidates_) {
      const auto& [tenant, name, bucket_id, key] = where;
      if (newest_bucket[{tenant, name}].second != bucket_id) {
        report_.superseded += found.size();  // a deleted bucket's leftovers
        continue;
      }
      std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
        return std::tie(a.description.last_modified, a.description.object_id) >
               std::tie(b.description.last_modified, b.description.object_id);
      });
      for (Found& f : found) {
        if (f.description.kind == BlobDescription::Kind::kManifest) {
          used_uploads.insert(f.description.upload_id);
          if (std::string missing = MissingPart(f.description); !missing.empty()) {
            report_.incomplete.push_back(name + "/" + key + ": " + missing);
            continue;
          }
        }
        if (chosen_.count(where) == 0) {
          chosen_.emplace(where, std::move(f));
        } else {
          ++report_.superseded;
        }
      }
    }
    for (const auto& [id, part] : parts_) {
      if (used_uploads.count(part.description.upload_id) == 0) ++report_.unfinished_parts;
    }
    return Status::Ok();
  }

  // Creates each bucket, then writes its objects, each data key wrapped under its row's binding
  // once the rewrap is recorded.
  Status Write() {
    std::map<std::pair<std::string, std::string>, catalog::Bucket> buckets;
    std::vector<std::pair<catalog::Bucket, const Found*>> batch;
    for (const auto& [where, f] : chosen_) {
      const auto& [tenant, name, bucket_id, key] = where;
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
      batch.emplace_back(it->second, &f);
      if (batch.size() == kBatch) COFFRE_RETURN_IF_ERROR(WriteBatch(batch));
    }
    return WriteBatch(batch);
  }

  Status WriteBatch(std::vector<std::pair<catalog::Bucket, const Found*>>& batch) {
    std::vector<audit::Event> events;
    events.reserve(batch.size());
    for (const auto& [bucket, f] : batch) {
      events.push_back(internal::KeyEvent(audit::Operation::kDataKeyRewrap, bucket, f->description.key,
                                          f->description.object_id, f->header_key.tenant_key_id,
                                          f->header_key.tenant_key_version, &request_));
    }
    COFFRE_RETURN_IF_ERROR(RecordAll(events));
    for (const auto& [bucket, f] : batch) COFFRE_RETURN_IF_ERROR(WriteObject(bucket, *f));
    batch.clear();
    return Status::Ok();
  }

  Status WriteObject(const catalog::Bucket& bucket, const Found& f) {
    const BlobDescription& d = f.description;
    COFFRE_ASSIGN_OR_RETURN(SecretBytes data_key,
                            keys_.UnwrapDataKey(d.tenant_id, f.header_key.tenant_key_version,
                                                f.header_key.wrapped_data_key, internal::BlobHeaderKeyAad(f.blob_id)));
    catalog::ObjectRecord rec;
    rec.bucket_id = bucket.id;
    rec.tenant_id = d.tenant_id;
    rec.key = d.key;
    rec.object_id = d.object_id;
    rec.size = d.size;
    rec.etag = d.etag;
    rec.last_modified = d.last_modified;
    rec.attributes = d.attributes;
    rec.key_info.tenant_key_id = f.header_key.tenant_key_id;
    rec.key_info.tenant_key_version = f.header_key.tenant_key_version;
    COFFRE_ASSIGN_OR_RETURN(rec.key_info.wrapped_data_key,
                            keys_.WrapDataKey(d.tenant_id, f.header_key.tenant_key_version, data_key,
                                              internal::DataKeyAad(bucket.name, d.key, d.object_id)));
    if (d.kind == BlobDescription::Kind::kManifest) {
      rec.parts = d.parts;
      rec.manifest_blob_id = f.blob_id;
      ++report_.multipart_objects;
    } else {
      rec.parts.push_back(catalog::ObjectPart{0, f.blob_id, d.size, d.etag, {}});
    }
    COFFRE_RETURN_IF_ERROR(fresh_.PutObject(rec));
    ++report_.objects;
    return Status::Ok();
  }

  keystore::TenantKeyStore& keys_;
  storage::BlobStore& blobs_;
  catalog::Catalog& fresh_;
  audit::Recorder* audit_;
  const audit::RequestInfo& request_;
  RebuildReport report_;
  using Where = std::tuple<std::string, std::string, int64_t, std::string>;  // tenant, bucket, bucket id, key
  std::map<Where, std::vector<Found>> candidates_;                           // objects and manifests
  std::map<std::string, Found> parts_;                                       // by blob id
  std::map<Where, Found> chosen_;
  std::vector<std::string> deferred_;                   // blobs whose header's key version is gone
  std::map<std::string, catalog::KeyCopy> copies_;      // blob id -> its newest key copy
  std::vector<catalog::KeyCopyBlob> key_copy_blobs_;    // those read, for the new catalog
  std::map<std::string, std::set<uint32_t>> versions_;  // tenant -> its key versions that exist
};

}  // namespace

Result<RebuildReport> RebuildCatalog(keystore::TenantKeyStore& keys, storage::BlobStore& blobs, catalog::Catalog& fresh,
                                     audit::Recorder* audit, const audit::RequestInfo& request) {
  return Rebuild(keys, blobs, fresh, audit, request).Run();
}

}  // namespace coffre::service
