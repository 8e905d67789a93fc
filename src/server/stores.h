#pragma once

// Opens the data directory's stores (root key, keystore, catalog, blobs) for the daemon and for
// the admin subcommands, which run beside a live daemon.

#include <memory>

#include "coffre/catalog/catalog.h"
#include "coffre/keystore/keystore.h"
#include "coffre/server/config.h"
#include "coffre/storage/blob_store.h"

namespace coffre::server {

struct Stores {
  std::unique_ptr<keystore::Keystore> keystore;
  std::unique_ptr<catalog::Catalog> catalog;
  std::unique_ptr<storage::BlobStore> blobs;
};

// The daemon may create the data directory and (when configured) the root key; admin commands
// only open what exists.
Result<Stores> OpenStores(const Config& config, bool for_daemon);
Result<std::unique_ptr<keystore::Keystore>> OpenKeystore(const Config& config, bool create);

}  // namespace coffre::server
