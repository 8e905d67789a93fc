#pragma once

// A base fixture for tests of the object service: OpenStores() makes a fresh temporary directory and
// opens the keystore, the catalog and the local blob store in it; TearDown() removes the directory.
// Fixtures derived from it build their own ObjectService over the stores after OpenStores().

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "coffre/catalog/catalog.h"
#include "coffre/common/secret.h"
#include "coffre/keystore/keystore.h"
#include "coffre/storage/blob_store.h"
#include "support/temp_dir.h"

namespace coffre::test_support {

class ServiceStoresTest : public ::testing::Test {
 protected:
  // Makes /tmp/coffre-<name>-XXXXXX and opens the three stores in it under a random root key. Use
  // as ASSERT_TRUE(OpenStores("name")); a failure names the store and its status.
  ::testing::AssertionResult OpenStores(std::string_view name) {
    temp_.emplace(name);
    dir_ = temp_->str();
    auto keys = keystore::Keystore::Open(dir_ + "/keystore.db", SecretBytes::Random(32));
    if (!keys.ok()) return ::testing::AssertionFailure() << "keystore: " << keys.status().ToString();
    keys_ = std::move(keys).value();
    auto cat = catalog::Catalog::Open(dir_ + "/catalog.db");
    if (!cat.ok()) return ::testing::AssertionFailure() << "catalog: " << cat.status().ToString();
    catalog_ = std::move(cat).value();
    auto blobs = storage::OpenLocalBlobStore(dir_);
    if (!blobs.ok()) return ::testing::AssertionFailure() << "blob store: " << blobs.status().ToString();
    blobs_ = std::move(blobs).value();
    return ::testing::AssertionSuccess();
  }

  std::optional<TempDir> temp_;  // declared first: removed after the stores close
  std::string dir_;
  std::unique_ptr<keystore::Keystore> keys_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<storage::BlobStore> blobs_;
};

}  // namespace coffre::test_support
