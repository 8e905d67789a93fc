#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "coffre/storage/blob_store.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::storage {
namespace {

using test_support::StatusIs;

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenLocalBlobStore(root_);
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  test_support::TempDir temp_{"storage"};
  const std::string root_ = temp_.str();
  std::unique_ptr<BlobStore> store_;
};

const std::string kId = "00112233445566778899aabbccddeeff";

TEST_F(LocalBlobStoreTest, CommittedBlobReadsBack) {
  auto w = store_->Create(kId, std::nullopt);
  ASSERT_OK(w);
  std::vector<uint8_t> header(4, 0), body = {1, 2, 3};
  ASSERT_OK((*w)->Append(header));
  ASSERT_OK((*w)->Append(body));
  std::vector<uint8_t> real_header = {9, 9, 9, 9};
  ASSERT_OK((*w)->WriteAt(0, real_header));
  EXPECT_EQ((*w)->size(), 7u);
  ASSERT_OK((*w)->Commit());

  auto r = store_->Open(kId);
  ASSERT_OK(r);
  EXPECT_EQ((*r)->size(), 7u);
  std::vector<uint8_t> out(7);
  ASSERT_OK((*r)->ReadAt(0, out));
  EXPECT_EQ(out, (std::vector<uint8_t>{9, 9, 9, 9, 1, 2, 3}));
  std::vector<uint8_t> past(2);
  EXPECT_THAT((*r)->ReadAt(6, past), StatusIs(StatusCode::kCorruption));
  // Opaque fan-out layout, private permissions.
  struct stat st {};
  ASSERT_EQ(::stat((root_ + "/blobs/00/11/" + kId).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
}

// A blob of several MiB starts its writeback as it is appended (a MiB at a time, in pieces that
// do not fall on MiB boundaries), and its header is rewritten in place at the end: what reads back
// is every byte as last written.
TEST_F(LocalBlobStoreTest, MultiMebibyteBlobWrittenBackAsAppendedReadsBack) {
  auto w = store_->Create(kId, std::nullopt);
  ASSERT_OK(w);
  constexpr size_t kPiece = 300 * 1000;
  constexpr size_t kPieces = 12;  // 3.6 MB: three writeback steps and a tail
  std::vector<uint8_t> expected;
  for (size_t p = 0; p < kPieces; ++p) {
    std::vector<uint8_t> piece(kPiece);
    for (size_t i = 0; i < kPiece; ++i) piece[i] = static_cast<uint8_t>((p * 7 + i * 13) & 0xff);
    ASSERT_OK((*w)->Append(piece));
    expected.insert(expected.end(), piece.begin(), piece.end());
  }
  const std::vector<uint8_t> header = {0xc0, 0xff, 0xee};
  ASSERT_OK((*w)->WriteAt(0, header));
  std::copy(header.begin(), header.end(), expected.begin());
  ASSERT_OK((*w)->Commit());

  auto r = store_->Open(kId);
  ASSERT_OK(r);
  ASSERT_EQ((*r)->size(), expected.size());
  std::vector<uint8_t> out(expected.size());
  ASSERT_OK((*r)->ReadAt(0, out));
  EXPECT_TRUE(out == expected);
}

// Writers racing to create the same fan-out directories (and different ones) all commit, and a
// store opened later on the same root commits into the directories it finds.
TEST_F(LocalBlobStoreTest, ConcurrentCommitsIntoNewDirectories) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 12;
  auto id_of = [](int t, int i) {
    // Three ids per leaf directory; leaves under two first-level directories.
    char id[40];
    std::snprintf(id, sizeof id, "%02x%02x%04x%04x00000000000000000000", (t * kPerThread + i) % 2,
                  (t * kPerThread + i) / 3 % 256, t, i);
    return std::string(id);
  };
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto w = store_->Create(id_of(t, i), std::nullopt);
        const std::vector<uint8_t> body = {static_cast<uint8_t>(t), static_cast<uint8_t>(i)};
        if (!w.ok() || !(*w)->Append(body).ok() || !(*w)->Commit().ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  auto reopened = OpenLocalBlobStore(root_);
  ASSERT_OK(reopened);
  auto w = (*reopened)->Create("0001ffff000000000000000000000000", std::nullopt);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append(std::vector<uint8_t>{42}));
  ASSERT_OK((*w)->Commit());

  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto r = (*reopened)->Open(id_of(t, i));
      ASSERT_OK(r) << id_of(t, i);
      std::vector<uint8_t> out(2);
      ASSERT_OK((*r)->ReadAt(0, out));
      EXPECT_EQ(out, (std::vector<uint8_t>{static_cast<uint8_t>(t), static_cast<uint8_t>(i)}));
    }
  }
}

TEST_F(LocalBlobStoreTest, NewIdsMadeTogetherShareADirectoryThenMoveToTheNext) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3 * 64; ++i) {
    auto w = store_->CreateBlob(std::nullopt);  // size unknown: a file of its own
    ASSERT_OK(w);
    ids.push_back((*w)->id());
  }
  auto dir_of = [](const std::string& id) { return std::stoul(id.substr(0, 4), nullptr, 16); };
  for (int i = 0; i < 3 * 64; ++i) {
    EXPECT_EQ(ids[i].size(), 32u);
    EXPECT_TRUE(store_->Open(ids[i]).status().code() == StatusCode::kNotFound) << ids[i];  // a valid id
    EXPECT_EQ(dir_of(ids[i]), (dir_of(ids[0]) + i / 64) % 65536) << i;
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

// Commits into one directory while its fsync is under way share the next fsync, and each learns
// whether the fsync that covered it failed.
class DirectorySyncTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr int kWriters = 8;

  void SetUp() override {
    for (int i = 0; i < kWriters; ++i) {
      char id[40];
      std::snprintf(id, sizeof id, "abcd%028d", i);
      ids_.push_back(id);
    }
    LocalBlobStoreOptions options;
    options.sync_dir = [this](const std::string&) -> Status {
      // The first fsync lasts until every writer has renamed its blob: all of them then need the next.
      if (syncs_.fetch_add(1) == 0) {
        for (int waited_ms = 0; waited_ms < 10000 && !AllRenamed(); ++waited_ms) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
      return GetParam() ? Status::IOError("fsync: injected failure") : Status::Ok();
    };
    auto store = OpenLocalBlobStore(root_, std::move(options));
    ASSERT_OK(store);
    store_ = std::move(store).value();
  }

  bool AllRenamed() const {
    return std::all_of(ids_.begin(), ids_.end(),
                       [&](const std::string& id) { return std::filesystem::exists(root_ + "/blobs/ab/cd/" + id); });
  }

  test_support::TempDir temp_{"storage"};
  const std::string root_ = temp_.str();
  std::vector<std::string> ids_;
  std::atomic<int> syncs_{0};
  std::unique_ptr<BlobStore> store_;
};

TEST_P(DirectorySyncTest, CommitsInOneDirectoryShareItsFsyncAndItsOutcome) {
  const bool fsync_fails = GetParam();
  std::vector<Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      auto w = store_->Create(ids_[i], std::nullopt);
      if (!w.ok()) {
        results[i] = w.status();
        return;
      }
      const std::vector<uint8_t> body = {static_cast<uint8_t>(i)};
      results[i] = (*w)->Append(body);
      if (results[i].ok()) {
        results[i] = (*w)->Commit();
      }
    });
  }
  for (auto& th : threads) th.join();

  for (int i = 0; i < kWriters; ++i) {
    if (fsync_fails) {
      EXPECT_THAT(results[i], StatusIs(StatusCode::kIOError)) << i;
    } else {
      EXPECT_OK(results[i]) << i;
      auto r = store_->Open(ids_[i]);
      ASSERT_OK(r);
      std::vector<uint8_t> out(1);
      ASSERT_OK((*r)->ReadAt(0, out));
      EXPECT_EQ(out[0], i);
    }
  }
  // The first fsync may have begun before the others' renames, so a second one is needed; the
  // writers that renamed while it ran share that one.
  EXPECT_GE(syncs_.load(), 2);
  EXPECT_LT(syncs_.load(), kWriters);
}

INSTANTIATE_TEST_SUITE_P(FsyncOutcome, DirectorySyncTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) { return p.param ? "Fails" : "Succeeds"; });

TEST_F(LocalBlobStoreTest, UncommittedBlobIsInvisibleAndCleanedUp) {
  {
    auto w = store_->Create(kId, std::nullopt);
    ASSERT_OK(w);
    std::vector<uint8_t> body = {1, 2, 3};
    ASSERT_OK((*w)->Append(body));
  }  // destroyed without Commit
  EXPECT_THAT(store_->Open(kId), StatusIs(StatusCode::kNotFound));
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/tmp"));
}

TEST_F(LocalBlobStoreTest, CrashLeftoversRemovedAtStartup) {
  std::ofstream(root_ + "/tmp/" + kId + ".tmp") << "partial";
  auto removed = store_->RemoveTemporaries();
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 1u);
  EXPECT_TRUE(std::filesystem::is_empty(root_ + "/tmp"));
}

TEST_F(LocalBlobStoreTest, RejectsPathLikeIds) {
  EXPECT_THAT(store_->Create("../../etc/passwd", std::nullopt), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Open("0011223344556677/../x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(store_->Remove("short"), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(LocalBlobStoreTest, RemoveIsIdempotent) {
  auto w = store_->Create(kId, std::nullopt);
  ASSERT_OK(w);
  ASSERT_OK((*w)->Commit());
  EXPECT_OK(store_->Remove(kId));
  EXPECT_OK(store_->Remove(kId));
  EXPECT_THAT(store_->Open(kId), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace coffre::storage
