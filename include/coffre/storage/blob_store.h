#pragma once

// Where encrypted blobs rest. The local backend keeps each blob in a file named by its opaque id;
// an upstream S3 backend can implement the same interface later. It knows bytes, not S3 or keys.
//
// Durability contract: a blob becomes visible under its id only through BlobWriter::Commit(),
// which returns after the bytes and the directory entry are durable (fsync of the file, rename,
// fsync of the directory: one that began after the rename, possibly shared with other commits).
// Until then it lives under the temporary area and a crash leaves at most a temporary file, which
// RemoveTemporaries() deletes at start-up, or an orphan blob file that no catalog row names (fsck
// removes those).

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "coffre/common/status.h"

namespace coffre::storage {

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;  // aborts (removes the temporary file) unless committed
  // Appends at the current end.
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Writes at an absolute offset (used for the header, written last).
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual uint64_t size() const = 0;
  // fsync + rename into place + fsync of the directory. Exactly once.
  virtual Status Commit() = 0;
};

class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Reads exactly out.size() bytes at offset; Corruption if the blob is shorter.
  virtual Status ReadAt(uint64_t offset, std::span<uint8_t> out) const = 0;
  virtual uint64_t size() const = 0;
};

// A file found by a storage walk (fsck): a committed blob or a writer's temporary.
struct StoredFile {
  std::string name;           // the blob id, or the temporary's file name
  uint64_t size = 0;
  int64_t modified_unix = 0;  // seconds since the epoch
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // An id for a new blob, unguessable and unique in practice. The store chooses it, so that it can
  // place blobs made at about the same time side by side.
  virtual std::string NewBlobId() = 0;
  virtual Result<std::unique_ptr<BlobWriter>> Create(const std::string& blob_id) = 0;
  // NotFound if there is no such blob.
  virtual Result<std::unique_ptr<BlobReader>> Open(const std::string& blob_id) const = 0;
  // OK if it was already gone.
  virtual Status Remove(const std::string& blob_id) = 0;
  // Deletes what a crash left in the temporary area; returns how many files were removed.
  virtual Result<uint64_t> RemoveTemporaries() = 0;

  // For fsck. Every committed blob, in no particular order (not a snapshot: blobs committed or
  // removed during the walk may or may not appear); files under the blob area whose names are not
  // blob ids or that sit in the wrong directory are returned in `strays` (full paths, never removed).
  virtual Result<std::vector<StoredFile>> ListBlobs(std::vector<std::string>* strays) const = 0;
  // What the temporary area holds: uploads in flight, or leftovers of a crash.
  virtual Result<std::vector<StoredFile>> ListTemporaries() const = 0;
  // Removes one temporary by the name ListTemporaries returned; OK if it is already gone.
  virtual Status RemoveTemporary(const std::string& name) = 0;
};

struct LocalBlobStoreOptions {
  // Makes a blob directory's entries durable after renames into it (fsync). Tests replace it to
  // count or fail the calls.
  std::function<Status(const std::string& dir)> sync_dir;
};

// Local filesystem backend rooted at `root` (creates root/blobs and root/tmp).
// Blob ids must be [0-9a-f]{16,64}; files go to blobs/<id[0:2]>/<id[2:4]>/<id>.
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root, LocalBlobStoreOptions options = {});

}  // namespace coffre::storage
