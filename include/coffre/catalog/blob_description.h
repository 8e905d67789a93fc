#pragma once

// What a blob says of itself: the catalog's knowledge of it, sealed inside the blob (version 2 of
// the blob format, docs/FORMAT.md), so that the blobs in a store and the keystore are enough to
// rebuild a lost catalog. The encoding is versioned JSON (docs/FORMAT.md, "Blob descriptions").
//
// Three kinds: the only blob of a single-PUT object; one part of a multipart upload; and the
// manifest a Complete writes, which names the parts that make the object, in order. The key that
// opens a blob (tenant key id and version, wrapped data key) is in the blob's header, not here.

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/catalog/catalog.h"
#include "coffre/common/bytes.h"
#include "coffre/common/status.h"

namespace coffre::catalog {

struct BlobDescription {
  enum class Kind { kObject, kPart, kManifest };
  Kind kind = Kind::kObject;
  std::string tenant_id;
  int64_t bucket_id = 0;
  std::string bucket_name;
  std::string key;
  std::string object_id;     // objects and manifests: the object's id; parts: ""
  std::string upload_id;     // parts and manifests: the multipart upload's id; objects: ""
  uint32_t part_number = 0;  // parts: 1..10000; otherwise 0
  uint64_t size = 0;         // plaintext bytes (a manifest: the whole object's)
  std::string etag;          // unquoted
  UnixMillis last_modified = 0;
  Attributes attributes;          // content headers, user metadata, checksums
  std::vector<ObjectPart> parts;  // manifests only: the object's parts, in order
};

Bytes EncodeBlobDescription(const BlobDescription& description);
// Corruption when the bytes are not a description this version can read (unknown version or
// kind, a missing or mistyped field, a part number out of range).
Result<BlobDescription> DecodeBlobDescription(ByteView bytes);

}  // namespace coffre::catalog
