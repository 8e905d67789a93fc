// The storage walk of `coffre fsck`: ListBlobs, ListTemporaries, RemoveTemporary.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coffre/storage/blob_store.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::storage {
namespace {

using test_support::StatusIs;

class FsckWalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenLocalBlobStore(root_.str());
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  void Commit(const std::string& id, size_t size) {
    auto w = store_->Create(id, std::nullopt);
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::vector<uint8_t>(size, 7)));
    ASSERT_OK((*w)->Commit());
  }

  test_support::TempDir root_{"fsckwalk"};
  std::unique_ptr<BlobStore> store_;
};

TEST_F(FsckWalkTest, ListsCommittedBlobsAndReportsStrays) {
  const std::string a = "00112233445566778899aabbccddeeff";
  const std::string b = "ffeeddccbbaa99887766554433221100";
  Commit(a, 3);
  Commit(b, 5);
  // A writer that has not committed is a temporary, not a blob.
  auto pending = store_->Create("0123456789abcdef0123456789abcdef", std::nullopt);
  ASSERT_OK(pending);
  // Foreign files in the blob area: a bad name, and a valid id in the wrong directory.
  std::ofstream(root_.str() + "/blobs/00/11/notablob") << "x";
  std::filesystem::create_directories(root_.str() + "/blobs/aa/bb");
  std::ofstream(root_.str() + "/blobs/aa/bb/" + a) << "x";

  std::vector<std::string> strays;
  auto blobs = store_->ListBlobs(&strays);
  ASSERT_OK(blobs);
  ASSERT_EQ(blobs->size(), 2u);
  std::sort(blobs->begin(), blobs->end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  EXPECT_EQ((*blobs)[0].name, a);
  EXPECT_EQ((*blobs)[0].size, 3u);
  EXPECT_EQ((*blobs)[1].name, b);
  EXPECT_EQ((*blobs)[1].size, 5u);
  EXPECT_GT((*blobs)[0].modified_unix, 0);
  std::sort(strays.begin(), strays.end());
  EXPECT_EQ(strays,
            (std::vector<std::string>{root_.str() + "/blobs/00/11/notablob", root_.str() + "/blobs/aa/bb/" + a}));
}

TEST_F(FsckWalkTest, TemporariesListedAndRemovedOneByOne) {
  auto w1 = store_->Create("0123456789abcdef0123456789abcdef", std::nullopt);
  auto w2 = store_->Create("fedcba9876543210fedcba9876543210", std::nullopt);
  ASSERT_OK(w1);
  ASSERT_OK(w2);
  auto temps = store_->ListTemporaries();
  ASSERT_OK(temps);
  ASSERT_EQ(temps->size(), 2u);
  ASSERT_OK(store_->RemoveTemporary((*temps)[0].name));
  EXPECT_OK(store_->RemoveTemporary((*temps)[0].name));  // already gone is fine
  auto left = store_->ListTemporaries();
  ASSERT_OK(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].name, (*temps)[1].name);
  // Only names inside the temporary area.
  EXPECT_THAT(store_->RemoveTemporary("../blobs"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->RemoveTemporary(".."), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->RemoveTemporary(""), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace coffre::storage
