#pragma once

// What a blob says of itself: the catalog's knowledge of it, sealed inside the blob (version 2 of
// the blob format, docs/FORMAT.md), so that the blobs in a store and the keystore are enough to
// rebuild a lost catalog. The encoding is versioned JSON (docs/FORMAT.md, "Blob descriptions").
//
// Six kinds: the only blob of a single-PUT object; one part of a multipart upload; the manifest a
// Complete writes, which names the parts that make the object, in order; a delete marker of a
// versioned bucket (an empty blob sealed under a data key of its own, so that a rebuild finds the
// marker too); the key copies a rewrap writes; and an object's attributes update. The key that opens a blob (tenant key
// id and version, wrapped data key) is in the blob's header, not here.
//
// Attributes updates: what may change on an object after it was written without rewriting its
// data (its tags, its retention and legal hold) is sealed, whole, in a
// blob of its own under the object's data key, naming the object's id and a write sequence larger
// than any before. The catalog names the newest one; the one it replaces goes to garbage. A rebuild
// applies, per object, the update with the highest sequence over what the object's own description
// says. Each update carries the complete state of every such attribute, so that the newest alone
// is enough.
//
// Key copies: a blob's header copy of its data key stays under the tenant-key version it was
// written with, and a rewrap moves only the catalog's copy. So that a blob still opens once that
// version is destroyed, rewrap also writes key-copies blobs: for each blob of the objects it moved,
// the data key wrapped under the new version and bound to the blob's id, exactly as a header copy
// is. They carry no object of their own.

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"
#include "coffre/common/status.h"

namespace coffre::catalog {

// One blob's data key, wrapped under `tenant_key_version` of the describing blob's tenant and
// bound to `blob_id` as a version 2 header's copy is.
struct KeyCopy {
  std::string blob_id;
  uint32_t tenant_key_version = 0;
  Bytes wrapped_data_key;
};

struct BlobDescription {
  enum class Kind { kObject, kPart, kManifest, kKeyCopies, kObjectUpdate, kDeleteMarker };
  Kind kind = Kind::kObject;
  std::string tenant_id;
  int64_t bucket_id = 0;
  std::string bucket_name;
  std::string key;
  std::string object_id;     // objects, manifests, delete markers and updates: the object's id; parts: ""
  std::string upload_id;     // parts and manifests: the multipart upload's id; objects: ""
  uint32_t part_number = 0;  // parts: 1..10000; otherwise 0
  uint64_t size = 0;         // plaintext bytes (a manifest: the whole object's)
  std::string etag;          // unquoted
  UnixMillis last_modified = 0;
  // Objects, manifests and delete markers: orders writes of one key made within the same millisecond (see
  // ObjectService::NextWriteSequence); 0 in descriptions written before it existed. Updates: orders
  // the updates of one object (always set).
  uint64_t sequence = 0;
  // Objects, manifests and delete markers: whether it is its key's null version (catalog.h, "Versions"),
  // as every object written before versions existed is; only a version of its own is encoded.
  bool null_version = true;
  // Objects and manifests: the tags given when the object was written (absent from the encoding
  // when empty, as in descriptions written before tags existed). Updates: the object's whole tag
  // set from then on (always encoded, empty or not).
  Tags tags;
  // Objects and manifests: the retention and legal hold the version was written with. Updates:
  // the version's whole Object Lock state from then on. Absent from the encoding when empty.
  ObjectLock lock;
  Attributes attributes;          // content headers, user metadata, checksums
  std::vector<ObjectPart> parts;  // manifests only: the object's parts, in order
  // Key copies only, which carry no bucket, key, size or attributes (left empty) and whose
  // last_modified is when they were written. Updates carry no size, etag, attributes or parts
  // either; their last_modified is when they were written.
  std::vector<KeyCopy> key_copies;
};

Bytes EncodeBlobDescription(const BlobDescription& description);
// Corruption when the bytes are not a description this version can read (unknown version or
// kind, a missing or mistyped field, a part number out of range).
Result<BlobDescription> DecodeBlobDescription(ByteView bytes);

}  // namespace coffre::catalog
