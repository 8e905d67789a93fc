#pragma once

// Where encrypted blobs rest. The local backend keeps a small blob in a record of an append-only
// pack file and a larger one in a file of its own, each named by its opaque id; the upstream S3
// backend (s3_blob_store.h) keeps each blob as one object of a bucket. It knows bytes, not keys.
// The durability contract below is the local backend's; the S3 backend's is in its header.
//
// Durability contract: a blob becomes visible under its id only through BlobWriter::Commit(),
// which returns once the bytes and whatever names them are durable. For a file: fsync of the
// file, rename, fsync of the directory (one that began after the rename, possibly shared with
// other commits). For a pack record: the record is written in place, then an fdatasync of the
// pack that began after the write, shared by every record committed meanwhile. Until then a crash
// leaves at most a temporary file, which RemoveTemporaries() deletes at start-up, an unused
// record (a hole, or bytes that no id names), or an orphan blob that no catalog row names (fsck
// removes those).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "coffre/common/status.h"

namespace coffre::storage {

class BlobWriter {
 public:
  virtual ~BlobWriter() = default;  // aborts (removes the temporary file) unless committed
  // The id the blob will have once committed.
  virtual const std::string& id() const = 0;
  // Appends at the current end.
  virtual Status Append(std::span<const uint8_t> data) = 0;
  // Writes at an absolute offset (used for the header, written last).
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  virtual uint64_t size() const = 0;
  // Makes the blob durable under its id (see the durability contract above). Exactly once.
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
  std::string name;  // the blob id, or the temporary's file name
  uint64_t size = 0;
  int64_t modified_unix = 0;  // seconds since the epoch
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // A writer for a new blob under an id the store chooses: unguessable and unique in practice, and
  // telling the store where the blob rests, so that blobs made at about the same time sit side by
  // side and share their flushes. `expected_size`, when known, is the blob's size in bytes: a
  // small blob goes to a pack record of about that size (and to a file of its own, under the same
  // id, should it outgrow it). Packs are appended to by one process only, the daemon: another
  // process that writes blobs beside it (an admin command) uses Create.
  virtual Result<std::unique_ptr<BlobWriter>> CreateBlob(std::optional<uint64_t> expected_size) = 0;
  // The largest blob CreateBlob puts in a pack record; 0 when every blob gets a file (packing
  // turned off, or a file system that cannot punch holes).
  virtual uint64_t MaxPackedBlob() const = 0;
  // A writer for a blob under a given id ([0-9a-f]{16,64}): in a file of its own locally. An
  // upstream store needs its size (`expected_size`), as CreateBlob does; the local one ignores it.
  virtual Result<std::unique_ptr<BlobWriter>> Create(const std::string& blob_id,
                                                     std::optional<uint64_t> expected_size) = 0;
  // NotFound if there is no such blob.
  virtual Result<std::unique_ptr<BlobReader>> Open(const std::string& blob_id) const = 0;
  // OK if it was already gone.
  virtual Status Remove(const std::string& blob_id) = 0;
  // Deletes what a crash left in the temporary area; returns how many files were removed.
  virtual Result<uint64_t> RemoveTemporaries() = 0;

  // For fsck. Every committed blob, in no particular order (not a snapshot: blobs committed or
  // removed during the walk may or may not appear); files under the blob area whose names are not
  // blob ids or that sit in the wrong directory, and pack bytes where a record should start but
  // none does, are returned in `strays` (full paths; "<pack path> bytes <from>..<to>" for pack
  // bytes).
  virtual Result<std::vector<StoredFile>> ListBlobs(std::vector<std::string>* strays) const = 0;
  // Punches out pack bytes that ListBlobs reported as a stray: no id can reach them. A stray file
  // is not Coffre's to remove: InvalidArgument. FailedPrecondition if a record starts there now.
  virtual Status RemoveStray(const std::string& stray) = 0;
  // What the temporary area holds: uploads in flight, or leftovers of a crash.
  virtual Result<std::vector<StoredFile>> ListTemporaries() const = 0;
  // Removes one temporary by the name ListTemporaries returned; OK if it is already gone.
  virtual Status RemoveTemporary(const std::string& name) = 0;
};

struct LocalBlobStoreOptions {
  // Makes a blob directory's entries durable after renames into it (fsync). Tests replace it to
  // count or fail the calls.
  std::function<Status(const std::string& dir)> sync_dir;
  // Makes a pack's records durable (fdatasync of the open pack). Tests replace it likewise.
  std::function<Status(int pack_fd)> sync_pack;
  // Blobs expected to be at most this large go to pack records; 0 turns packing off. A record's
  // blob is held in memory until it is committed, so this bounds that memory per writer too.
  uint64_t max_packed_blob = 256 * 1024;
  // A pack takes new records until it is this large, then the next pack is started.
  uint64_t pack_size_limit = uint64_t{4} << 30;
};

// Local filesystem backend rooted at `root` (creates root/blobs, root/packs and root/tmp).
// Blob ids are [0-9a-f]{16,64}; a file goes to blobs/<id[0:2]>/<id[2:4]>/<id>, a pack record to
// packs/<pack number, 8 hex digits>.pack at the offset its id names (layout: docs/FORMAT.md).
// Packing needs a file system that can punch holes (ext4, XFS, btrfs, tmpfs): a removed record's
// space goes back to it at once. Elsewhere every blob gets a file.
Result<std::unique_ptr<BlobStore>> OpenLocalBlobStore(const std::string& root, LocalBlobStoreOptions options = {});

}  // namespace coffre::storage
