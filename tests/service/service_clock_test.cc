// The object service tells time only by its injected clock: Last-Modified, and how long a blob
// made unreachable is kept (the garbage grace) before it is removed.

#include <gtest/gtest.h>

#include <chrono>

#include "coffre/service/object_service.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

using std::chrono::milliseconds;

class ServiceClockTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("service-clock"));
    ServiceOptions opts;
    opts.garbage_grace_ms = 30'000;
    opts.clock = &clock_;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    auto b = service_->CreateBucket(t->id, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  SResult<PutResult> Put(const std::string& key, const std::string& body) {
    auto w = service_->BeginPut(bucket_, key, {}, {});
    if (!w.ok()) return w.error();
    if (auto r = (*w)->Write(AsBytes(body)); !r.ok()) return r.error();
    return (*w)->Commit({});
  }

  FixedClock clock_{std::chrono::system_clock::now()};
  std::unique_ptr<ObjectService> service_;
  catalog::Bucket bucket_;
};

TEST_F(ServiceClockTest, LastModifiedComesFromTheClock) {
  clock_.Set(FromUnixMillis(1796342400123));
  auto put = Put("bilan.pdf", "2025 accounts");
  ASSERT_OK(put);
  EXPECT_EQ(put->last_modified, 1796342400123);
}

TEST_F(ServiceClockTest, AReplacedBlobIsKeptForTheGraceThenRemoved) {
  ASSERT_OK(Put("bilan.pdf", "first"));
  ASSERT_OK(Put("bilan.pdf", "second"));         // the first blob becomes garbage
  clock_.Set(std::chrono::system_clock::now());  // the catalog stamped it at most now

  auto early = service_->CollectGarbage();
  ASSERT_OK(early);
  EXPECT_EQ(*early, 0u);  // a reader that looked up the old version may still open it

  clock_.Set(clock_.Now() + milliseconds(15'000));
  auto still = service_->CollectGarbage();
  ASSERT_OK(still);
  EXPECT_EQ(*still, 0u);

  clock_.Set(clock_.Now() + milliseconds(16'000));  // 31 s after it became garbage, or more
  auto late = service_->CollectGarbage();
  ASSERT_OK(late);
  EXPECT_EQ(*late, 1u);
}

}  // namespace
}  // namespace coffre::service
