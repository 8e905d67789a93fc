#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "coffre/storage/blob_store.h"

namespace coffre::storage {
namespace {

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/coffre-storage-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    auto store = OpenLocalBlobStore(root_);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::string root_;
  std::unique_ptr<BlobStore> store_;
};

const std::string kId = "00112233445566778899aabbccddeeff";

TEST_F(LocalBlobStoreTest, CommittedBlobReadsBack) {
  auto w = store_->Create(kId);
  ASSERT_TRUE(w.ok());
  std::vector<uint8_t> header(4, 0), body = {1, 2, 3};
  ASSERT_TRUE((*w)->Append(header).ok());
  ASSERT_TRUE((*w)->Append(body).ok());
  std::vector<uint8_t> real_header = {9, 9, 9, 9};
  ASSERT_TRUE((*w)->WriteAt(0, real_header).ok());
  EXPECT_EQ((*w)->size(), 7u);
  ASSERT_TRUE((*w)->Commit().ok());

  auto r = store_->Open(kId);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->size(), 7u);
  std::vector<uint8_t> out(7);
  ASSERT_TRUE((*r)->ReadAt(0, out).ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{9, 9, 9, 9, 1, 2, 3}));
  std::vector<uint8_t> past(2);
  EXPECT_EQ((*r)->ReadAt(6, past).code(), StatusCode::kCorruption);
  // Opaque fan-out layout, private permissions.
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/blobs/00/11/" + kId).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

TEST_F(LocalBlobStoreTest, UncommittedBlobIsInvisibleAndCleanedUp) {
  {
    auto w = store_->Create(kId);
    ASSERT_TRUE(w.ok());
    std::vector<uint8_t> body = {1, 2, 3};
    ASSERT_TRUE((*w)->Append(body).ok());
  }  // destroyed without Commit
  EXPECT_EQ(store_->Open(kId).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/tmp"));
}

TEST_F(LocalBlobStoreTest, CrashLeftoversRemovedAtStartup) {
  std::ofstream(root_ + "/tmp/" + kId + ".tmp") << "partial";
  auto removed = store_->RemoveTemporaries();
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/tmp"));
}

TEST_F(LocalBlobStoreTest, RejectsPathLikeIds) {
  EXPECT_EQ(store_->Create("../../etc/passwd").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Open("0011223344556677/../x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Remove("short").code(), StatusCode::kInvalidArgument);
}

TEST_F(LocalBlobStoreTest, RemoveIsIdempotent) {
  auto w = store_->Create(kId);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Commit().ok());
  EXPECT_TRUE(store_->Remove(kId).ok());
  EXPECT_TRUE(store_->Remove(kId).ok());
  EXPECT_EQ(store_->Open(kId).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace coffre::storage
