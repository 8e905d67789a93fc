#pragma once

// The BlobStore backend that keeps each blob as one object of an upstream S3 bucket (Ceph RGW, a
// provider, another Coffre), reached through upstream::S3Client.
//
// Names: a blob's id is 32 random lower-case hex digits (128 bits from the CSPRNG); its object key
// is prefix + id[0:4] + "/" + id, so keys say nothing of what a blob holds and spread over 65,536
// key prefixes (upstreams partition by prefix). Nothing else goes upstream: no metadata headers,
// no content type; the bytes are the blob format's ciphertext.
//
// Writing: CreateBlob needs the blob's exact size (the object service knows it), since S3 needs a
// body's length before its first byte. A blob of at most single_put_max bytes is held in memory
// and sent at Commit as one PutObject whose body is signed with its SHA-256. A larger one is
// streamed as it is appended: one streamed PutObject if it fits in part_size, else a multipart
// upload of part_size parts, each streamed as it fills, no part held in memory. Once a part's last
// byte is written, a thread of the writer's awaits its answer while the next part streams on
// another connection: at most three parts await theirs when a new one begins (so a writer holds at
// most four connections, and four threads). Those threads are the store's parts_awaiting_answer
// slots, shared by all its writers: a writer that finds none free awaits its part's answer itself
// before it streams the next, so an upstream slow to answer slows the uploads down instead of
// receiving ever more requests at once until they time out. Commit waits for every answer and
// completes the upload with the ETags in part order. Streaming sends the body UNSIGNED-PAYLOAD,
// which the client allows over TLS or to a loopback address only; elsewhere each part (at most
// part_size bytes) is held in memory and sent signed by a thread of its own while the next one
// fills, at most two parts held per writer. A part that fails fails the writer. What a failed or
// dropped writer leaves upstream (parts awaiting answers, the upload to abort) is dropped on a
// thread of the store's own, so that dropping a writer never waits for the upstream. Blobs are
// append-only: WriteAt is InvalidArgument.
//
// Reading: Open fetches the blob's first 64 KiB (its header, or all of a small blob). Reads past
// them are ranged GETs of a window larger than the read: 256 KiB first, doubling while the reads
// stay sequential, up to 4 MiB. While they stay sequential, the next windows (one, then up to
// three) are fetched ahead, each GET on a thread and a connection of its own, so that the
// upstream's round trips and transfers overlap with the decryption and sending of the window being
// read. The windows of all a store's readers, held and in flight, share read_ahead_budget: a read
// always fetches what it needs, but a window is fetched ahead only when there is room for it. A window fetched ahead
// that failed transiently is fetched again when it is read; bytes of a failed or short GET are never served. A read
// elsewhere, or the reader's end, stops the windows in flight at their next piece (each such GET counts as an Aborted
// operation in the client's counters); the store's own thread waits for those not yet stopped, so that dropping a
// reader, like dropping a writer, never waits for the upstream.
//
// Durability: Commit returns once the upstream acknowledged the PutObject or the
// CompleteMultipartUpload with a success; that answer is the upstream's promise that the object
// is durable, and the blob is visible under its id from then on. Before it the blob is invisible:
// a writer dropped uncommitted (or a crash) leaves at most an unfinished multipart upload, which
// the writer aborts when it can (the bucket's lifecycle rule for incomplete multipart uploads is
// what removes one left by a crash; RemoveTemporaries does not look for them and returns 0). A
// Commit whose answer was lost may fail after the upstream stored the object: that blob is an
// orphan no catalog row names, as after a local crash, and fsck finds it in ListBlobs.
//
// Create(blob_id), for a caller-named id, is InvalidArgument: it promises no size, and this
// backend needs one. MaxPackedBlob() is 0 (no packing). Errors are the client's Status values
// (Unavailable: retry later, ...) with messages that name the blob id, never a secret.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "coffre/common/status.h"
#include "coffre/storage/blob_store.h"
#include "coffre/upstream/s3_client.h"

namespace coffre::storage {

struct S3BlobStoreOptions {
  // Put before every key ("coffre/blobs/"); may be empty. Several stores can share a bucket under
  // different prefixes.
  std::string prefix;
  // Blobs up to this size are sent whole, from memory, at Commit.
  uint64_t single_put_max = 256 * 1024;
  // Larger blobs go up in parts of this size (the last part is shorter): S3's bounds, 5 MiB to
  // 5 GiB, else InvalidArgument. A blob of at most part_size bytes is a single streamed PUT.
  uint64_t part_size = uint64_t{8} << 20;
  // Keys asked for per ListObjectsV2 page (1 to 1000).
  int list_page_size = 1000;
  // The read-ahead windows of all the store's readers, held and in flight, stay within about this
  // many bytes: a read always fetches what it needs, but a window is fetched ahead only when there
  // is room for it (at least 256 KiB). 0: windows of 256 KiB, none fetched ahead.
  uint64_t read_ahead_budget = uint64_t{64} << 20;
  // Parts awaiting their answer on a thread of their own, over all the store's writers (at most
  // three per writer). 0: each writer awaits each part's answer before it sends the next.
  size_t parts_awaiting_answer = 16;
};

// InvalidArgument for options out of bounds; does not contact the upstream.
Result<std::unique_ptr<BlobStore>> OpenS3BlobStore(std::unique_ptr<upstream::S3Client> client,
                                                   S3BlobStoreOptions options = {});

}  // namespace coffre::storage
