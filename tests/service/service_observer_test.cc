// ServiceObserver: what the object service reports for metrics (bytes through the cipher, data-key
// operations and their outcome), without depending on any metrics library.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "coffre/service/object_service.h"
#include "support/service_stores.h"
#include "support/status_matchers.h"

namespace coffre::service {
namespace {

using test_support::IsOk;
using ::testing::Not;

struct Counts {
  std::atomic<uint64_t> encrypted{0};
  std::atomic<uint64_t> decrypted{0};
  std::atomic<int> wrap_ok{0};
  std::atomic<int> wrap_error{0};
  std::atomic<int> unwrap_ok{0};
  std::atomic<int> unwrap_error{0};
};

class ServiceObserverTest : public test_support::ServiceStoresTest {
 protected:
  void SetUp() override {
    ASSERT_TRUE(OpenStores("observer"));
    ServiceOptions opts;
    opts.segment_size = 4096;
    service_ = std::make_unique<ObjectService>(*catalog_, *keys_, *blobs_, opts);
    ServiceObserver observer;
    observer.encrypted = [this](uint64_t n) { counts_.encrypted += n; };
    observer.decrypted = [this](uint64_t n) { counts_.decrypted += n; };
    observer.key_operation = [this](KeyOperation op, bool ok) {
      if (op == KeyOperation::kWrap) {
        ++(ok ? counts_.wrap_ok : counts_.wrap_error);
      } else if (op == KeyOperation::kUnwrap) {
        ++(ok ? counts_.unwrap_ok : counts_.unwrap_error);
      }
    };
    service_->set_observer(std::move(observer));
    auto t = keys_->CreateTenant("acme");
    ASSERT_OK(t);
    tenant_ = t->id;
    auto b = service_->CreateBucket(tenant_, "dossiers");
    ASSERT_OK(b);
    bucket_ = *b;
  }

  void Put(const std::string& key, size_t size) {
    auto w = service_->BeginPut(bucket_, key, {}, {});
    ASSERT_OK(w);
    Bytes data(size, 0x5a);
    ASSERT_OK((*w)->Write(data));
    ASSERT_OK((*w)->Commit({}));
  }

  uint64_t ReadAll(const std::string& key, std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt) {
    auto r = service_->OpenObject(bucket_, key);
    EXPECT_OK(r);
    if (!r.ok()) {
      return 0;
    }
    if (range) {
      EXPECT_OK((*r)->SetRange(range->first, range->second));
    }
    uint64_t total = 0;
    Bytes buf(1000);
    for (;;) {
      auto n = (*r)->Read(buf);
      if (!n.ok() || *n == 0) {
        break;
      }
      total += *n;
    }
    return total;
  }

  std::unique_ptr<ObjectService> service_;
  std::string tenant_;
  catalog::Bucket bucket_;
  Counts counts_;
};

TEST_F(ServiceObserverTest, PutAndGetReportPlaintextBytesAndKeyOperations) {
  Put("k", 10000);
  EXPECT_EQ(counts_.encrypted, 10000u);
  EXPECT_EQ(counts_.wrap_ok, 1);
  EXPECT_EQ(ReadAll("k"), 10000u);
  EXPECT_EQ(counts_.decrypted, 10000u);
  EXPECT_EQ(counts_.unwrap_ok, 1);
  EXPECT_EQ(counts_.wrap_error + counts_.unwrap_error, 0);
}

TEST_F(ServiceObserverTest, EmptyObjectEncryptsNothing) {
  Put("empty", 0);
  EXPECT_EQ(counts_.encrypted, 0u);
  EXPECT_EQ(counts_.wrap_ok, 1);
}

TEST_F(ServiceObserverTest, RangedReadDecryptsOnlyTheSegmentsItNeeds) {
  Put("k", 3 * 4096);
  EXPECT_EQ(ReadAll("k", std::make_pair<uint64_t, uint64_t>(4100, 4109)), 10u);
  EXPECT_EQ(counts_.decrypted, 4096u);
}

TEST_F(ServiceObserverTest, ShreddedTenantsKeysAreCountedAsErrors) {
  Put("k", 100);
  ASSERT_OK(keys_->ShredTenant(tenant_));
  EXPECT_THAT(service_->OpenObject(bucket_, "k"), Not(IsOk()));
  EXPECT_EQ(counts_.unwrap_error, 1);
  EXPECT_THAT(service_->BeginPut(bucket_, "new", {}, {}), Not(IsOk()));
  EXPECT_EQ(counts_.wrap_error, 1);
  EXPECT_EQ(counts_.decrypted, 0u);
}

}  // namespace
}  // namespace coffre::service
