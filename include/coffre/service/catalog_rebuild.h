#pragma once

// Rebuilding a lost catalog from the blob store and the keystore (`coffre catalog rebuild`, daemon
// stopped): the recovery when the gateway's own disk is gone but the upstream bucket and a
// keystore backup are not.
//
// Every version 2 blob carries its catalog row sealed inside it (catalog/blob_description.h) and
// a copy of its data key bound to the blob alone, which the keystore opens. The rebuild reads
// every blob's description, keeps for each bucket and key the newest object (a single-PUT blob, or
// a multipart manifest whose every part is present), and writes buckets and objects into a fresh
// catalog, each data key wrapped again under its row's binding. Each unwrap and wrap is recorded
// in the audit log before the key is used, as every key use is.
//
// A blob's header copy stays under the tenant-key version it was written with. Once a rewrap moved
// its object and that version was destroyed, the copy no longer opens: the blob is opened with the
// copy the rewrap left in a key-copies blob (blob_description.h) under the newer version. The
// key-copies blobs read are listed in the new catalog, as the old one listed them.
//
// What cannot come back, and is reported: version 1 blobs (written before descriptions existed),
// blobs whose data key does not open (damaged), blobs whose key version is gone and that no copy
// names (see without_key), multipart objects missing a part, and uploads that were never completed
// (their parts stay for fsck). An object's tags come back: those given at write time from its own
// description, those changed later from its newest attributes-update blob. Bucket tags live in
// the catalog alone and do not come back. Empty buckets leave no blob and do not come back; an
// object deleted less than the garbage grace before the loss may. Versions of a key are ordered
// by their Last-Modified, then by the write sequence sealed with them (two writes within one
// millisecond); blobs written before the sequence existed fall back on the object id.

#include <cstdint>
#include <string>
#include <vector>

#include "coffre/audit/event.h"
#include "coffre/catalog/catalog.h"
#include "coffre/common/status.h"
#include "coffre/keystore/tenant_key_store.h"
#include "coffre/storage/blob_store.h"

namespace coffre::service {

struct RebuildReport {
  uint64_t blobs = 0;                   // listed in the store
  uint64_t buckets = 0;                 // created in the new catalog
  uint64_t objects = 0;                 // rows written, multipart ones included
  uint64_t multipart_objects = 0;       // of which from a manifest
  uint64_t delete_markers = 0;          // delete markers of versioned buckets, written besides
  uint64_t superseded = 0;              // null versions older than the one kept for their key, and attributes
                                        // updates not applied (garbage for fsck)
  uint64_t object_updates = 0;          // attributes-update blobs applied (tags changed after the write)
  uint64_t unfinished_parts = 0;        // parts of uploads never completed (not rebuilt; fsck removes them)
  uint64_t versioned_buckets = 0;       // given versioning Enabled again: they hold versions of their own
  uint64_t locked_buckets = 0;          // given Object Lock again: they hold retained or held versions
  uint64_t key_copy_blobs = 0;          // blobs of key copies read (listed again in the new catalog)
  uint64_t opened_by_key_copy = 0;      // blobs whose header's key version is destroyed, opened by a copy
  std::vector<std::string> unreadable;  // "<blob id>: <why>"
  std::vector<std::string> incomplete;  // "<bucket>/<key>: <why>" multipart objects left out
  std::vector<std::string> strays;      // what the store holds that is not a blob: left alone
  // Blobs whose key version is gone (destroyed, or the tenant shredded) and that no key copy
  // names: those no object named when its version was rewrapped (deleted or overwritten before,
  // not yet collected), or a shredded tenant's. Left in place for fsck; not counted as a loss.
  std::vector<std::string> without_key;
};

// Fills `fresh`, a newly created, empty catalog. What the blobs say is gathered in a scratch
// SQLite database at `scratch_path` (a file beside the new catalog, as large as its rows; removed
// before and after), so memory stays small whatever the number of blobs. Stops at the first error
// of the store, the keystore (other than a key that no longer opens one blob) or the catalog;
// `audit` may be null (no records, for tests).
Result<RebuildReport> RebuildCatalog(keystore::TenantKeyStore& keys, storage::BlobStore& blobs, catalog::Catalog& fresh,
                                     const std::string& scratch_path, audit::Recorder* audit,
                                     const audit::RequestInfo& request);

}  // namespace coffre::service
