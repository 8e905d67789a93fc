// Key lifecycle operations of the object service: reference counts, rewrap, key destruction and
// the catalog side of crypto-shredding (docs/KEYS.md). Run by the admin CLI while the daemon
// serves: every catalog write here is a short transaction, and rewrap only ever swaps a row's
// wrapped key if the row is unchanged since it was read.
//
// Also KeyLifecycle: the keystore-only lifecycle changes, each recorded in the audit log
// (docs/AUDIT.md, "Key-lifecycle events").

#include "coffre/service/key_lifecycle.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <thread>
#include <utility>

#include "coffre/service/object_service.h"
#include "service/data_key_aad.h"
#include "service/key_audit.h"

namespace coffre::service {
namespace {

Error Err(Errc code, std::string message) { return Error{code, std::move(message)}; }

// The key's id as the catalog records it.
SResult<Bytes> KeyIdBytes(const keystore::KeyRef& key) {
  auto id = HexDecode(key.key_id);
  if (!id || id->size() != crypto::kTenantKeyIdSize) {
    return Err(Errc::kInvalidArgument, "malformed key id");
  }
  return std::move(*id);
}

}  // namespace

SResult<std::map<uint32_t, uint64_t>> ObjectService::CountKeyReferences(const keystore::KeyRef& key) {
  auto id = KeyIdBytes(key);
  if (!id.ok()) return id.error();
  auto counts = catalog_.CountKeyVersions(*id);
  if (!counts.ok()) return FromStatus(counts.status());
  return std::move(counts).value();
}

SResult<ObjectService::RewrapStats> ObjectService::RewrapBatch(const keystore::KeyRef& key, uint32_t from_version,
                                                               catalog::WrappedKeyCursor* cursor, uint32_t limit,
                                                               const RequestInfo* request) {
  const std::string& tenant_id = key.tenant_id;
  auto id = KeyIdBytes(key);
  if (!id.ok()) return id.error();
  auto rows = catalog_.ListWrappedKeys(*id, from_version, cursor, limit);
  if (!rows.ok()) return FromStatus(rows.status());
  RewrapStats stats;
  stats.examined = rows->size();
  if (rows->empty()) {
    return stats;
  }
  // The data keys' binding and the audit records name the bucket; rows carry only its id.
  std::map<int64_t, catalog::Bucket> buckets;
  {
    auto listed = catalog_.ListBuckets(tenant_id);
    if (!listed.ok()) {
      return FromStatus(listed.status());
    }
    for (auto& b : *listed) {
      const int64_t bucket_id = b.id;
      buckets.emplace(bucket_id, std::move(b));
    }
  }
  auto bucket_name_of = [&](int64_t bucket_id) -> std::string {
    auto it = buckets.find(bucket_id);
    return it == buckets.end() ? std::string() : it->second.name;
  };
  auto event_of = [&](const catalog::WrappedKeyRow& row, uint32_t version) {
    catalog::Bucket bucket;
    if (auto it = buckets.find(row.bucket_id); it != buckets.end()) {
      bucket = it->second;
    }
    bucket.tenant_id = tenant_id;
    return internal::KeyEvent(audit::Operation::kDataKeyRewrap, bucket, row.key, row.object_id, *id, version, request);
  };
  std::vector<catalog::KeyRewrap> rewraps;
  std::vector<audit::Event> events;
  std::vector<std::vector<catalog::KeyCopy>> copies;  // per rewrap: its blobs' copies under the new version
  rewraps.reserve(rows->size());
  events.reserve(rows->size());
  copies.reserve(rows->size());
  for (auto& row : *rows) {
    const std::string bucket_name = bucket_name_of(row.bucket_id);
    auto r = internal::RewrapRowDataKey(keys_, tenant_id, row.key_info, bucket_name, row.key, row.object_id);
    std::vector<catalog::KeyCopy> row_copies;
    Status copied = StatusOf(r);
    if (copied.ok()) {
      // The blobs' header copies stay under the old version; copies under the new one keep them
      // open to a rebuild once the old version is destroyed.
      for (size_t i = 0; copied.ok() && i < row.blob_ids.size(); ++i) {
        auto wrapped =
            keys_.WrapDataKey(key, r->tenant_key_version, r->data_key, internal::BlobHeaderKeyAad(row.blob_ids[i]));
        copied = StatusOf(wrapped);
        if (wrapped.ok()) row_copies.push_back({row.blob_ids[i], r->tenant_key_version, std::move(wrapped).value()});
      }
    }
    if (!copied.ok()) {
      internal::RecordKeyFailure(audit_, event_of(row, row.key_info.tenant_key_version), copied);
      if (copied.code() == StatusCode::kCorruption) {
        ++stats.failed;  // an altered row stays as it is; fsck and the operator see it
        continue;
      }
      return internal::FromKeyStatus(copied);
    }
    if (r->tenant_key_version == from_version) {
      return Err(Errc::kInvalidArgument,
                 "key version " + std::to_string(from_version) + " is the active version: nothing to rewrap from it");
    }
    events.push_back(event_of(row, r->tenant_key_version));
    copies.push_back(std::move(row_copies));
    rewraps.push_back(catalog::KeyRewrap{std::move(row), r->tenant_key_version, std::move(r->wrapped)});
  }
  // Fail-closed: a new wrapping is stored only once its record is durable. The records of one
  // batch are made together (a few commits, not one fsync per data key).
  const std::vector<Status> recorded = internal::RecordEach(audit_, events);
  std::vector<catalog::KeyRewrap> allowed;
  std::vector<catalog::KeyCopy> allowed_copies;
  allowed.reserve(rewraps.size());
  uint64_t refused = 0;
  Status first_refusal;
  for (size_t i = 0; i < rewraps.size(); ++i) {
    if (recorded[i].ok()) {
      allowed.push_back(std::move(rewraps[i]));
      std::move(copies[i].begin(), copies[i].end(), std::back_inserter(allowed_copies));
    } else {
      if (refused++ == 0) {
        first_refusal = recorded[i];
      }
    }
  }
  if (!allowed.empty()) {
    // The copies are stored before the rows name the new version, and recorded with them.
    auto key_copies = WriteKeyCopies(key, allowed_copies, request);
    if (!key_copies.ok()) return key_copies.error();
    auto updated = catalog_.RewrapKeys(allowed, *key_copies);
    if (!updated.ok()) {
      for (const catalog::KeyCopyBlob& k : *key_copies) (void)blobs_.Remove(k.blob_id);
      return FromStatus(updated.status());
    }
    stats.rewrapped = *updated;
    stats.changed = allowed.size() - *updated;
  }
  if (refused > 0) {
    spdlog::error("rewrap refused for {} data keys: the audit log cannot record them ({})", refused,
                  first_refusal.ToString());
    return Err(Errc::kUnavailable, "the audit log is not writable: " + std::to_string(refused) +
                                       " data keys were left under version " + std::to_string(from_version) + " (" +
                                       first_refusal.message() + "); run the command again once it is");
  }
  return stats;
}

SResult<Done> ObjectService::DestroyKeyVersion(const keystore::KeyRef& key, uint32_t version,
                                               const RequestInfo* request) {
  const std::string& tenant_id = key.tenant_id;
  auto versions = keys_.ListKeyVersions(key);
  if (!versions.ok()) return internal::FromKeyStatus(versions.status());
  for (const auto& v : *versions) {
    if (v.version == version && v.active) {
      return Err(Errc::kPreconditionFailed, "key version " + std::to_string(version) +
                                                " is the active version; rotate first (coffre key rotate), rewrap, "
                                                "then destroy the retired version");
    }
  }
  auto references = [&]() -> SResult<uint64_t> {
    auto counts = CountKeyReferences(key);
    if (!counts.ok()) return counts.error();
    auto it = counts->find(version);
    return it == counts->end() ? 0 : it->second;
  };
  auto still_used = [&](uint64_t n) {
    return Err(Errc::kPreconditionFailed, "key version " + std::to_string(version) + " still wraps the data keys of " +
                                              std::to_string(n) + " objects or uploads; run coffre key rewrap first");
  };
  auto before = references();
  if (!before.ok()) return before.error();
  if (*before > 0) return still_used(*before);
  // The fence (keystore.h): from the mark on, a writer committing a row under this version
  // re-wraps it; rows committed before the mark show in the second count.
  if (Status marked = keys_.SetKeyVersionDestroying(key, version, true); !marked.ok()) {
    if (marked.code() == StatusCode::kNotFound) return Err(Errc::kInvalidArgument, marked.message());
    if (marked.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, marked.message());
    return FromStatus(marked);
  }
  auto abandon = [&](Error e) {
    if (Status unmarked = keys_.SetKeyVersionDestroying(key, version, false); !unmarked.ok()) {
      spdlog::warn("key version {} of tenant {} stays marked for destruction: {}", version, tenant_id,
                   unmarked.ToString());
    }
    return e;
  };
  // Writers that checked before the mark commit their rows within moments; wait them out.
  std::this_thread::sleep_for(std::chrono::milliseconds(options_.destroy_fence_ms));
  auto after = references();
  if (!after.ok()) return abandon(after.error());
  if (*after > 0) return abandon(still_used(*after));
  // Destruction cannot be undone: its record is made durable first (docs/AUDIT.md). Only once the
  // checks above passed, so that a refused destroy leaves no record of a destruction.
  const audit::Event event = internal::LifecycleEvent(audit::Operation::kTenantKeyDestroy, key, version,
                                                      request != nullptr ? *request : RequestInfo{});
  if (audit_ != nullptr) {
    if (Status recorded = audit_->Record(event); !recorded.ok()) {
      return abandon(Err(Errc::kUnavailable, "the audit log cannot record the destruction (" + recorded.message() +
                                                 "); key version " + std::to_string(version) + " was not destroyed"));
    }
  }
  Status st = keys_.DestroyKeyVersion(key, version);
  if (!st.ok()) {
    internal::RecordKeyFailure(audit_, event, st);
    (void)abandon(Error{});
  }
  if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, st.message());
  if (st.code() == StatusCode::kNotFound) return Err(Errc::kInvalidArgument, st.message());
  if (!st.ok()) return FromStatus(st);
  // The key copies under the destroyed version open nothing any more. If this fails they stay
  // (harmless, a few bytes per object) until a later destruction of the tenant's data.
  if (auto dropped = catalog_.DropKeyCopyBlobs(key.key_id, version); !dropped.ok()) {
    spdlog::warn("key version {} of tenant {} is destroyed, but its key copies stay listed: {}", version, tenant_id,
                 dropped.status().ToString());
  }
  return Done{};
}

SResult<Done> ObjectService::DestroyNamedKey(const keystore::KeyRef& key, bool bypass_governance,
                                             const RequestInfo* request) {
  if (!key.named()) {
    return Err(Errc::kInvalidArgument, "a tenant's default key goes only with the tenant (coffre tenant shred)");
  }
  auto id = KeyIdBytes(key);
  if (!id.ok()) return id.error();
  // Object Lock first: a version it protects must stay readable, so its key must stay.
  auto refused = RefuseWhileProtected(key.tenant_id, *id, bypass_governance, "key " + keystore::KeyIdAsUuid(key.key_id),
                                      keystore::GuardedOperationName(keystore::GuardedOperation::kDestroyNamedKey));
  if (!refused.ok()) return refused.error();
  const audit::Event event = internal::LifecycleEvent(audit::Operation::kNamedKeyDestroy, key, 0,
                                                      request != nullptr ? *request : RequestInfo{});
  if (audit_ != nullptr) {
    if (Status recorded = audit_->Record(event); !recorded.ok()) {
      return Err(Errc::kUnavailable,
                 "the audit log cannot record the destruction (" + recorded.message() + "); the key was not destroyed");
    }
  }
  Status st = keys_.DestroyNamedKey(key);
  if (!st.ok()) {
    internal::RecordKeyFailure(audit_, event, st);
    if (st.code() == StatusCode::kFailedPrecondition) return Err(Errc::kPreconditionFailed, st.message());
    if (st.code() == StatusCode::kNotFound) return Err(Errc::kInvalidArgument, st.message());
    return FromStatus(st);
  }
  // The key copies under its versions open nothing any more (kept if this fails: harmless).
  if (auto dropped = catalog_.DropKeyCopyBlobs(key.key_id, std::nullopt); !dropped.ok()) {
    spdlog::warn("named key {} of tenant {} is destroyed, but its key copies stay listed: {}", key.key_id,
                 key.tenant_id, dropped.status().ToString());
  }
  return Done{};
}

// At most this many copies per key-copies blob: its description (about 150 bytes a copy) stays far
// below the 8 MiB a description may take.
constexpr size_t kKeyCopiesPerBlob = 16384;

SResult<std::vector<catalog::KeyCopyBlob>> ObjectService::WriteKeyCopies(const keystore::KeyRef& key,
                                                                         const std::vector<catalog::KeyCopy>& copies,
                                                                         const RequestInfo* request) {
  const std::string& tenant_id = key.tenant_id;
  auto tenant_key_id = KeyIdBytes(key);
  if (!tenant_key_id.ok()) return tenant_key_id.error();
  std::map<uint32_t, std::vector<const catalog::KeyCopy*>> by_version;
  for (const catalog::KeyCopy& copy : copies) by_version[copy.tenant_key_version].push_back(&copy);
  std::vector<catalog::KeyCopyBlob> written;
  auto undo = [&](Error e) {
    for (const catalog::KeyCopyBlob& k : written) (void)blobs_.Remove(k.blob_id);
    return e;
  };
  catalog::Bucket tenant_only;
  tenant_only.tenant_id = tenant_id;
  for (const auto& [version, list] : by_version) {
    for (size_t at = 0; at < list.size(); at += kKeyCopiesPerBlob) {
      catalog::BlobDescription d;
      d.kind = catalog::BlobDescription::Kind::kKeyCopies;
      d.tenant_id = tenant_id;
      d.last_modified = NowMillis();
      for (size_t i = at; i < std::min(list.size(), at + kKeyCopiesPerBlob); ++i) d.key_copies.push_back(*list[i]);
      const Bytes description = catalog::EncodeBlobDescription(d);
      // A blob of its own, never a pack record: rewrap runs in the admin command beside the
      // daemon, and only the daemon appends to packs.
      auto blob = blobs_.Create(RandomId(16), DescribedBlobSize(description.size()));
      if (!blob.ok()) return undo(FromStatus(blob.status()));
      // Its own data key, in its header under the version of the copies it holds: it opens as
      // long as they can.
      auto data_key = keys_.NewDataKey(key, internal::BlobHeaderKeyAad((*blob)->id()));
      const audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyWrap, tenant_only, "", (*blob)->id(),
                                                    *tenant_key_id, version, request);
      if (!data_key.ok()) {
        internal::RecordKeyFailure(audit_, event, data_key.status());
        return undo(internal::FromKeyStatus(data_key.status()));
      }
      if (auto e = internal::RecordKeyUse(audit_, event)) return undo(*e);
      auto sealed = SealDescribedBlob(**blob, tenant_id, catalog::KeyInfo{*tenant_key_id, version, {}}, data_key->key,
                                      description);
      if (!sealed.ok()) return undo(sealed.error());
      written.push_back(catalog::KeyCopyBlob{*sealed, key.key_id, version});
    }
  }
  return written;
}

SResult<Done> ObjectService::KeepClearOfDestruction(const catalog::Bucket& bucket, const std::string& key,
                                                    const std::string& object_id, catalog::KeyInfo& key_info,
                                                    const std::vector<std::string>& blob_ids,
                                                    const RequestInfo* request) {
  const keystore::KeyRef row_key = internal::RowKey(bucket.tenant_id, key_info);
  auto destroying = keys_.IsKeyVersionDestroying(row_key, key_info.tenant_key_version);
  if (!destroying.ok()) return internal::FromKeyStatus(destroying.status());
  if (!*destroying) return Done{};
  // Rare: a write that began before a rotation meets the old version's destruction. Its data key
  // moves to the active version before the row exists. The blob is untouched: readers use the
  // catalog's wrapping, as after coffre key rewrap.
  auto rewrapped = internal::RewrapRowDataKey(keys_, bucket.tenant_id, key_info, bucket.name, key, object_id);
  audit::Event event =
      internal::KeyEvent(audit::Operation::kDataKeyRewrap, bucket, key, object_id, key_info.tenant_key_id,
                         rewrapped.ok() ? rewrapped->tenant_key_version : key_info.tenant_key_version, request);
  if (!rewrapped.ok()) {
    internal::RecordKeyFailure(audit_, event, rewrapped.status());
    return internal::FromKeyStatus(rewrapped.status());
  }
  if (auto e = internal::RecordKeyUse(audit_, event)) return *e;
  if (!blob_ids.empty()) {
    auto copied = AddKeyCopies(row_key, rewrapped->data_key, rewrapped->tenant_key_version, blob_ids, request);
    if (!copied.ok()) return copied.error();
  }
  key_info.tenant_key_version = rewrapped->tenant_key_version;
  key_info.wrapped_data_key = std::move(rewrapped->wrapped);
  return Done{};
}

SResult<Done> ObjectService::AddKeyCopies(const keystore::KeyRef& key, const SecretBytes& data_key, uint32_t version,
                                          const std::vector<std::string>& blob_ids, const RequestInfo* request) {
  std::vector<catalog::KeyCopy> copies;
  for (const std::string& blob_id : blob_ids) {
    auto wrapped = keys_.WrapDataKey(key, version, data_key, internal::BlobHeaderKeyAad(blob_id));
    if (!wrapped.ok()) return internal::FromKeyStatus(wrapped.status());
    copies.push_back({blob_id, version, std::move(wrapped).value()});
  }
  auto key_copies = WriteKeyCopies(key, copies, request);
  if (!key_copies.ok()) return key_copies.error();
  if (Status st = catalog_.AddKeyCopyBlobs(*key_copies); !st.ok()) {
    for (const catalog::KeyCopyBlob& k : *key_copies) (void)blobs_.Remove(k.blob_id);
    return FromStatus(st);
  }
  return Done{};
}

SResult<catalog::KeyInfo> ObjectService::CoverUploadBlobs(const catalog::Bucket& bucket, const std::string& key,
                                                          const std::string& upload_id,
                                                          const std::vector<std::string>& blob_ids,
                                                          const RequestInfo* request) {
  auto up = GetUpload(bucket, key, upload_id);
  if (!up.ok()) return up.error();
  const catalog::KeyInfo& now = up->key_info;
  audit::Event event = internal::KeyEvent(audit::Operation::kDataKeyRewrap, bucket, key, upload_id, now.tenant_key_id,
                                          now.tenant_key_version, request);
  auto data_key = internal::UnwrapRowDataKey(keys_, bucket.tenant_id, now, bucket.name, key, upload_id);
  if (!data_key.ok()) {
    internal::RecordKeyFailure(audit_, event, data_key.status());
    return internal::FromKeyStatus(data_key.status());
  }
  if (auto e = internal::RecordKeyUse(audit_, event)) return *e;
  auto copied =
      AddKeyCopies(internal::RowKey(bucket.tenant_id, now), *data_key, now.tenant_key_version, blob_ids, request);
  if (!copied.ok()) return copied.error();
  return std::move(up->key_info);
}

SResult<uint64_t> ObjectService::RemoveTenantData(const std::string& tenant_id, uint32_t max_rows) {
  auto removed = catalog_.DeleteTenantData(tenant_id, max_rows);
  if (!removed.ok()) return FromStatus(removed.status());
  return *removed;
}

// --- KeyLifecycle -------------------------------------------------------------------------

namespace {

// The version a rotation creates: versions only grow and the active one is the highest (a
// destroyed version is never the highest), so it is the highest existing one plus one.
uint32_t NextVersion(const std::vector<keystore::KeyVersion>& versions) {
  uint32_t highest = 0;
  for (const auto& v : versions) {
    highest = std::max(highest, v.version);
  }
  return highest + 1;
}

const keystore::KeyVersion* ActiveVersion(const std::vector<keystore::KeyVersion>& versions) {
  for (const auto& v : versions) {
    if (v.active) {
      return &v;
    }
  }
  return nullptr;
}

audit::Event AccessKeyEvent(audit::Operation operation, const std::string& tenant_id, const std::string& access_key_id,
                            const audit::RequestInfo& request) {
  // No tenant key is involved: key_id stays empty (audit/event.h).
  audit::Event ev;
  ev.operation = operation;
  ev.tenant = tenant_id;
  ev.request = request;
  ev.request.access_key_id = access_key_id;
  return ev;
}

}  // namespace

KeyLifecycle::KeyLifecycle(keystore::Keystore& keys, audit::Recorder* recorder, const Clock& clock)
    : keys_(keys), recorder_(recorder), clock_(clock) {}

Status KeyLifecycle::RecordOrRefuse(const audit::Event& event, const std::string& not_done) {
  if (recorder_ == nullptr) {
    return Status::Ok();
  }
  Status st = recorder_->Record(event);
  if (st.ok()) {
    return st;
  }
  spdlog::error("{} refused: the audit log cannot record it ({})", audit::OperationName(event.operation),
                st.ToString());
  return Status::Unavailable("the audit log cannot be written (" + st.message() + "); " + not_done);
}

void KeyLifecycle::RecordFailure(audit::Event event) {
  if (recorder_ == nullptr) {
    return;
  }
  event.outcome = audit::Outcome::kFailure;
  if (Status st = recorder_->Record(event); !st.ok()) {
    spdlog::error("the audit log could not record a failed {} ({})", audit::OperationName(event.operation),
                  st.ToString());
  }
}

Result<keystore::Tenant> KeyLifecycle::CreateTenant(const std::string& name, const audit::RequestInfo& request) {
  auto created = keys_.CreateTenant(name);
  if (!created.ok() && created.status().code() == StatusCode::kAlreadyExists) {
    // A creation whose record failed left the tenant with its first key and nothing else (no
    // access key was issued): it is completed now, by recording it. Any later event (an access key
    // issued, a rotation, a shred) shows that the creation was completed, hence recorded.
    auto existing = keys_.GetTenantByName(name);
    if (!existing.ok()) {
      return existing.status();
    }
    COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyEvent> events, keys_.ListKeyEvents(existing->id));
    const bool incomplete = !existing->shredded && events.size() == 1 && events.front().event == "tenant-created";
    if (!incomplete) {
      return created.status();
    }
    created = std::move(existing);
  }
  if (!created.ok()) {
    return created.status();
  }
  // The keystore draws the tenant id, which is the key id the record names: recorded right after.
  // Until it is, the tenant has no access key, so its key cannot be used by anyone.
  COFFRE_RETURN_IF_ERROR(
      RecordOrRefuse(internal::LifecycleEvent(audit::Operation::kTenantKeyCreate, created->id, 1, request),
                     "tenant " + name +
                         " exists but its creation is not recorded and no access key was issued; run the same "
                         "command again once the audit log is writable"));
  return created;
}

Result<keystore::NewAccessKey> KeyLifecycle::CreateAccessKey(const std::string& tenant_id,
                                                             const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(keystore::Tenant tenant, keys_.GetTenant(tenant_id));
  if (tenant.shredded) {
    return Status::FailedPrecondition("tenant " + tenant.name + " was crypto-shredded: it gets no new access key");
  }
  COFFRE_ASSIGN_OR_RETURN(keystore::NewAccessKey key, keys_.CreateAccessKey(tenant_id));
  // The keystore draws the id the record names, so the record follows; if it fails the key is
  // deleted before its secret left this process, so nobody ever held it.
  Status recorded =
      RecordOrRefuse(AccessKeyEvent(audit::Operation::kAccessKeyCreate, tenant_id, key.key.access_key_id, request),
                     "no access key was created");
  if (!recorded.ok()) {
    if (Status undone = keys_.DeleteAccessKey(tenant_id, key.key.access_key_id); !undone.ok()) {
      spdlog::error("access key {} of tenant {} could not be deleted after its record failed: {}",
                    key.key.access_key_id, tenant_id, undone.ToString());
      return Status::Unavailable("the audit log cannot be written, and the unrecorded access key " +
                                 key.key.access_key_id + " could not be deleted (" + undone.message() +
                                 "); delete it with coffre access-key delete (its secret was never shown)");
    }
    return recorded;
  }
  return key;
}

Status KeyLifecycle::CheckAccessKey(const std::string& tenant_id, const std::string& access_key_id) {
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::AccessKey> keys, keys_.ListAccessKeys(tenant_id));
  for (const auto& k : keys) {
    if (k.access_key_id == access_key_id) {
      return Status::Ok();
    }
  }
  return Status::NotFound("the tenant has no access key " + access_key_id);
}

Status KeyLifecycle::DisableAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                                      const audit::RequestInfo& request) {
  COFFRE_RETURN_IF_ERROR(CheckAccessKey(tenant_id, access_key_id));
  const audit::Event event = AccessKeyEvent(audit::Operation::kAccessKeyDisable, tenant_id, access_key_id, request);
  COFFRE_RETURN_IF_ERROR(RecordOrRefuse(event, "access key " + access_key_id + " was not disabled"));
  Status st = keys_.SetAccessKeyEnabled(tenant_id, access_key_id, false);
  if (!st.ok()) {
    RecordFailure(event);
  }
  return st;
}

Status KeyLifecycle::DeleteAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                                     const audit::RequestInfo& request) {
  COFFRE_RETURN_IF_ERROR(CheckAccessKey(tenant_id, access_key_id));
  const audit::Event event = AccessKeyEvent(audit::Operation::kAccessKeyDelete, tenant_id, access_key_id, request);
  COFFRE_RETURN_IF_ERROR(RecordOrRefuse(event, "access key " + access_key_id + " was not deleted"));
  Status st = keys_.DeleteAccessKey(tenant_id, access_key_id);
  if (!st.ok()) {
    RecordFailure(event);
  }
  return st;
}

Status KeyLifecycle::EnableAccessKey(const std::string& tenant_id, const std::string& access_key_id,
                                     const audit::RequestInfo& request) {
  COFFRE_RETURN_IF_ERROR(CheckAccessKey(tenant_id, access_key_id));
  const audit::Event event = AccessKeyEvent(audit::Operation::kAccessKeyEnable, tenant_id, access_key_id, request);
  COFFRE_RETURN_IF_ERROR(RecordOrRefuse(event, "access key " + access_key_id + " was not enabled"));
  Status st = keys_.SetAccessKeyEnabled(tenant_id, access_key_id, true);
  if (!st.ok()) {
    RecordFailure(event);
  }
  return st;
}

Result<uint32_t> KeyLifecycle::RotateTenantKey(const keystore::KeyRef& key, const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(keystore::Tenant tenant, keys_.GetTenant(key.tenant_id));
  if (tenant.shredded) {
    return Status::FailedPrecondition("tenant " + tenant.name + " was crypto-shredded; it cannot get a new key");
  }
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyVersion> versions, keys_.ListKeyVersions(key));
  const uint32_t expected = NextVersion(versions);
  const std::string what = key.named() ? "key " + key.key_id + " of tenant " + tenant.name : "tenant " + tenant.name;
  // A new key comes into existence: recorded first, like every other key use.
  const audit::Event event = internal::LifecycleEvent(audit::Operation::kTenantKeyRotate, key, expected, request);
  COFFRE_RETURN_IF_ERROR(RecordOrRefuse(event, what + " was not rotated"));
  auto rotated = keys_.RotateTenantKey(key);
  if (!rotated.ok()) {
    RecordFailure(event);
    return rotated.status();
  }
  if (*rotated != expected) {
    // Another process rotated the same key between our look and our rotation (and recorded its
    // own version): record the version this rotation really made as well.
    spdlog::warn("{}: a concurrent rotation took version {}; this one made version {}", what, expected, *rotated);
    COFFRE_RETURN_IF_ERROR(
        RecordOrRefuse(internal::LifecycleEvent(audit::Operation::kTenantKeyRotate, key, *rotated, request),
                       "version " + std::to_string(*rotated) + " of " + what + " was made but is recorded as " +
                           std::to_string(expected)));
  }
  return *rotated;
}

Result<keystore::NamedKey> KeyLifecycle::CreateNamedKey(const std::string& tenant_id, const std::string& name,
                                                        const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(keystore::Tenant tenant, keys_.GetTenant(tenant_id));
  if (tenant.shredded) {
    return Status::FailedPrecondition("tenant " + tenant.name + " was crypto-shredded; it cannot get a new key");
  }
  COFFRE_ASSIGN_OR_RETURN(keystore::NamedKey key, keys_.CreateNamedKey(tenant_id, name));
  // The keystore draws the id the record names, so the record follows; if it fails, the key is
  // destroyed again before anything was encrypted under it.
  audit::RequestInfo named = request;
  named.action += " " + name;
  const audit::Event event = internal::LifecycleEvent(audit::Operation::kNamedKeyCreate, key.ref(), 1, named);
  if (Status recorded = RecordOrRefuse(event, "key " + name + " was not created"); !recorded.ok()) {
    if (Status undone = keys_.DestroyNamedKey(key.ref()); !undone.ok()) {
      spdlog::error("key {} of tenant {} was created unrecorded and could not be destroyed again: {}", key.key_id,
                    tenant_id, undone.ToString());
    }
    return recorded;
  }
  return key;
}

Result<std::vector<std::pair<keystore::KeyRef, uint32_t>>> KeyLifecycle::RotateKeysOlderThan(
    int64_t max_age_ms, const audit::RequestInfo& request) {
  std::vector<std::pair<keystore::KeyRef, uint32_t>> rotated;
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::Tenant> tenants, keys_.ListTenants());
  const UnixMillis cutoff = ToUnixMillis(clock_.Now()) - max_age_ms;
  for (const auto& tenant : tenants) {
    if (tenant.shredded) {
      continue;
    }
    std::vector<keystore::KeyRef> keys{keystore::KeyRef(tenant.id)};
    COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::NamedKey> named, keys_.ListNamedKeys(tenant.id));
    for (const auto& n : named) {
      if (!n.destroyed) keys.push_back(n.ref());
    }
    for (const auto& key : keys) {
      COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyVersion> versions, keys_.ListKeyVersions(key));
      const keystore::KeyVersion* active = ActiveVersion(versions);
      if (active == nullptr || active->created > cutoff) {
        continue;
      }
      auto r = RotateTenantKey(key, request);
      if (!r.ok() && (r.status().code() == StatusCode::kFailedPrecondition ||
                      r.status().code() == StatusCode::kPermissionDenied)) {
        continue;  // shredded or destroyed meanwhile
      }
      if (!r.ok()) {
        return r.status();
      }
      rotated.emplace_back(key, *r);
    }
  }
  return rotated;
}

Status KeyLifecycle::ShredTenant(const std::string& tenant_id, const audit::RequestInfo& request) {
  COFFRE_ASSIGN_OR_RETURN(keystore::Tenant tenant, keys_.GetTenant(tenant_id));
  if (tenant.shredded) {
    return Status::FailedPrecondition("tenant " + tenant.name + " is already crypto-shredded");
  }
  COFFRE_ASSIGN_OR_RETURN(std::vector<keystore::KeyVersion> versions, keys_.ListKeyVersions(tenant_id));
  const keystore::KeyVersion* active = ActiveVersion(versions);
  // Shredding cannot be undone: recorded first.
  const audit::Event event = internal::LifecycleEvent(audit::Operation::kTenantShred, tenant_id,
                                                      active != nullptr ? active->version : 0, request);
  COFFRE_RETURN_IF_ERROR(RecordOrRefuse(event, "tenant " + tenant.name + " was not shredded"));
  Status st = keys_.ShredTenant(tenant_id);
  if (!st.ok()) {
    RecordFailure(event);
  }
  return st;
}

}  // namespace coffre::service
