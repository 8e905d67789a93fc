// The storage walk of `coffre fsck`: ListBlobs, ListTemporaries, RemoveTemporary.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coffre/storage/blob_store.h"

namespace coffre::storage {
namespace {

class FsckWalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffre-fsckwalk-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    auto store = OpenLocalBlobStore(root_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Commit(const std::string& id, size_t size) {
    auto w = store_->Create(id);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append(std::vector<uint8_t>(size, 7)).ok());
    ASSERT_TRUE((*w)->Commit().ok());
  }

  std::string root_;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(FsckWalkTest, ListsCommittedBlobsAndReportsStrays) {
  const std::string a = "00112233445566778899aabbccddeeff";
  const std::string b = "ffeeddccbbaa99887766554433221100";
  Commit(a, 3);
  Commit(b, 5);
  // A writer that has not committed is a temporary, not a blob.
  auto pending = store_->Create("0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(pending.ok());
  // Foreign files in the blob area: a bad name, and a valid id in the wrong directory.
  std::ofstream(root_ + "/blobs/00/11/notablob") << "x";
  std::filesystem::create_directories(root_ + "/blobs/aa/bb");
  std::ofstream(root_ + "/blobs/aa/bb/" + a) << "x";

  std::vector<std::string> strays;
  auto blobs = store_->ListBlobs(&strays);
  ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
  ASSERT_EQ(blobs->size(), 2u);
  std::sort(blobs->begin(), blobs->end(), [](const auto& x, const auto& y) { return x.name < y.name; });
  EXPECT_EQ((*blobs)[0].name, a);
  EXPECT_EQ((*blobs)[0].size, 3u);
  EXPECT_EQ((*blobs)[1].name, b);
  EXPECT_EQ((*blobs)[1].size, 5u);
  EXPECT_GT((*blobs)[0].modified_unix, 0);
  std::sort(strays.begin(), strays.end());
  EXPECT_EQ(strays, (std::vector<std::string>{root_ + "/blobs/00/11/notablob", root_ + "/blobs/aa/bb/" + a}));
}

TEST_F(FsckWalkTest, TemporariesListedAndRemovedOneByOne) {
  auto w1 = store_->Create("0123456789abcdef0123456789abcdef");
  auto w2 = store_->Create("fedcba9876543210fedcba9876543210");
  ASSERT_TRUE(w1.ok() && w2.ok());
  auto temps = store_->ListTemporaries();
  ASSERT_TRUE(temps.ok());
  ASSERT_EQ(temps->size(), 2u);
  ASSERT_TRUE(store_->RemoveTemporary((*temps)[0].name).ok());
  EXPECT_TRUE(store_->RemoveTemporary((*temps)[0].name).ok());  // already gone is fine
  auto left = store_->ListTemporaries();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].name, (*temps)[1].name);
  // Only names inside the temporary area.
  EXPECT_EQ(store_->RemoveTemporary("../blobs").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->RemoveTemporary("..").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->RemoveTemporary("").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coffre::storage
