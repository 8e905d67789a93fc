#include "coffre/storage/filesystem_sync.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

namespace coffre::storage {
namespace {

// Waits (bounded) until `done` holds; the tests' threads reach their waits quickly.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 5000 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// Callers that arrive while a sync runs are not covered by it (their writes may have come after it
// started); they all share the next one.
TEST(FilesystemSyncTest, CallersArrivingDuringASyncShareTheNextOne) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  FilesystemSync sync([&] {
    if (calls++ == 0) released.wait();
    return 0;
  });

  std::thread first([&] { EXPECT_TRUE(sync.Sync(sync.Begin()).ok()); });
  ASSERT_TRUE(Eventually([&] { return calls.load() == 1; }));
  constexpr int kLater = 15;
  std::vector<std::thread> later;
  for (int i = 0; i < kLater; ++i) {
    later.emplace_back([&] { EXPECT_TRUE(sync.Sync(sync.Begin()).ok()); });
  }
  ASSERT_TRUE(Eventually([&] { return sync.waiting() == 1 + kLater; }));
  EXPECT_EQ(calls.load(), 1);  // nobody synced beside the running sync
  release.set_value();
  first.join();
  for (auto& t : later) t.join();
  EXPECT_EQ(sync.syncs(), 2u);
  EXPECT_EQ(sync.waiting(), 0u);
}

// A failed sync fails its callers, and later every writer that began before it (its pages may have
// been lost in background writeback before a sync that did not report it); writers that begin
// afterwards succeed.
TEST(FilesystemSyncTest, AFailureFailsEveryWriterThatBeganBeforeIt) {
  std::atomic<int> result{0};
  FilesystemSync sync([&] { return result.load(); });
  const FilesystemSync::Epoch before = sync.Begin();
  EXPECT_TRUE(sync.Sync(before).ok());

  result = EIO;
  const Status failed = sync.Sync(before);
  EXPECT_EQ(failed.code(), StatusCode::kIOError);
  result = 0;
  EXPECT_EQ(sync.Sync(before).code(), StatusCode::kIOError);  // the sync succeeded, the writer not
  EXPECT_TRUE(sync.Sync(sync.Begin()).ok());

  result = ENOSPC;
  EXPECT_EQ(sync.Sync(sync.Begin()).code(), StatusCode::kNoSpace);
}

TEST(FilesystemSyncTest, SyncsARealFilesystem) {
  char tmpl[] = "/tmp/coffre-fssync-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  {
    auto sync = FilesystemSync::Open(dir);
    ASSERT_TRUE(sync.ok()) << sync.status().ToString();
    EXPECT_TRUE((*sync)->Sync((*sync)->Begin()).ok());
    EXPECT_EQ((*sync)->syncs(), 1u);
  }
  std::filesystem::remove_all(dir);
  EXPECT_EQ(FilesystemSync::Open(dir).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace coffre::storage
