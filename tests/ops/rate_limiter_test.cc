#include "coffre/ops/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace coffre::ops {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const std::chrono::system_clock::time_point kStart = std::chrono::system_clock::time_point(seconds(1'800'000'000));

int TakeAll(TokenBucket& bucket, std::chrono::system_clock::time_point now) {
  int n = 0;
  while (bucket.TryTake(now) && n < 1'000'000) {
    ++n;
  }
  return n;
}

TEST(TokenBucketTest, StartsFullAndAllowsTheBurstAtOnce) {
  TokenBucket bucket({/*requests_per_second=*/2, /*burst=*/5}, kStart);
  EXPECT_EQ(TakeAll(bucket, kStart), 5);
}

TEST(TokenBucketTest, RefillsAtTheRateUpToTheBurst) {
  TokenBucket bucket({2, 5}, kStart);
  TakeAll(bucket, kStart);
  EXPECT_EQ(TakeAll(bucket, kStart + milliseconds(499)), 0);
  EXPECT_EQ(TakeAll(bucket, kStart + milliseconds(500)), 1);
  EXPECT_EQ(TakeAll(bucket, kStart + seconds(2)), 3);
  // A long quiet period saves no more than the burst.
  EXPECT_EQ(TakeAll(bucket, kStart + seconds(3600)), 5);
}

TEST(TokenBucketTest, SustainedRateIsTheConfiguredOne) {
  TokenBucket bucket({10, 1}, kStart);
  int admitted = 0;
  for (int ms = 0; ms < 10'000; ++ms) {  // one request per millisecond for 10 s
    admitted += bucket.TryTake(kStart + milliseconds(ms)) ? 1 : 0;
  }
  EXPECT_GE(admitted, 98);   // floating-point refill may lag a millisecond per token
  EXPECT_LE(admitted, 101);  // never more than the burst plus 10 s of rate
}

TEST(TokenBucketTest, RefusalSaysWhenTheNextTokenComes) {
  TokenBucket bucket({4, 1}, kStart);
  ASSERT_TRUE(bucket.TryTake(kStart));
  milliseconds wait{0};
  EXPECT_FALSE(bucket.TryTake(kStart + milliseconds(100), &wait));
  EXPECT_GE(wait, milliseconds(150));
  EXPECT_LE(wait, milliseconds(151));
}

TEST(TokenBucketTest, ClockSteppingBackGrantsNothingExtra) {
  TokenBucket bucket({1, 1}, kStart);
  ASSERT_TRUE(bucket.TryTake(kStart));
  EXPECT_FALSE(bucket.TryTake(kStart - seconds(3600)));
  EXPECT_FALSE(bucket.TryTake(kStart + milliseconds(999)));
  EXPECT_TRUE(bucket.TryTake(kStart + seconds(1)));
}

TEST(TokenBucketTest, FractionalRateBelowOnePerSecond) {
  TokenBucket bucket({0.5, 1}, kStart);
  ASSERT_TRUE(bucket.TryTake(kStart));
  EXPECT_FALSE(bucket.TryTake(kStart + seconds(1)));
  EXPECT_TRUE(bucket.TryTake(kStart + seconds(2)));
}

TEST(TokenBucketTest, ReconfigureKeepsSavedTokensCappedAtTheNewBurst) {
  TokenBucket bucket({1, 10}, kStart);
  bucket.Reconfigure({1, 3}, kStart);
  EXPECT_EQ(TakeAll(bucket, kStart), 3);
  bucket.Reconfigure({4, 100}, kStart);
  EXPECT_EQ(TakeAll(bucket, kStart), 0);  // a raised limit grants no instant burst
  EXPECT_EQ(TakeAll(bucket, kStart + milliseconds(1250)), 5);
}

class TenantRateLimiterTest : public ::testing::Test {
 protected:
  FixedClock clock_{kStart};
  TenantRateLimiter limiter_{clock_};

  int AdmitAll(std::string_view tenant, std::optional<std::string> name = std::nullopt) {
    int n = 0;
    while (n < 1000 && limiter_.Admit(tenant, [&] { return name; })) {
      ++n;
    }
    return n;
  }
};

TEST_F(TenantRateLimiterTest, NoLimitsAdmitsEverythingAndKeepsNoState) {
  EXPECT_EQ(AdmitAll("t-1"), 1000);
  EXPECT_EQ(limiter_.tracked_tenants(), 0u);
}

TEST_F(TenantRateLimiterTest, DefaultAppliesToEachTenantSeparately) {
  RateLimits limits;
  limits.default_limit = {1, 3};
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-1"), 3);
  EXPECT_EQ(AdmitAll("t-2"), 3);  // one tenant's flood does not starve another
  clock_.Set(kStart + seconds(1));
  EXPECT_EQ(AdmitAll("t-1"), 1);
}

TEST_F(TenantRateLimiterTest, OverridesByIdOrNameWinOverTheDefault) {
  RateLimits limits;
  limits.default_limit = {1, 2};
  limits.tenants["t-noisy"] = {1, 1};
  limits.tenants["bulk"] = {1, 50};
  limits.tenants["free"] = {0, 0};  // exempt from the default
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-noisy", "noisy"), 1);
  EXPECT_EQ(AdmitAll("t-bulk", "bulk"), 50);
  EXPECT_EQ(AdmitAll("t-free", "free"), 1000);
  EXPECT_EQ(AdmitAll("t-other", "other"), 2);
}

TEST_F(TenantRateLimiterTest, IdMatchWinsOverNameMatch) {
  RateLimits limits;
  limits.tenants["t-1"] = {1, 4};
  limits.tenants["alice"] = {1, 1};
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-1", "alice"), 4);
}

TEST_F(TenantRateLimiterTest, NameIsAskedOnceAndOnlyWhenOverridesExist) {
  int asked = 0;
  auto name_of = [&]() -> std::optional<std::string> {
    ++asked;
    return "alice";
  };
  RateLimits limits;
  limits.default_limit = {1, 100};
  limiter_.Configure(limits);
  limiter_.Admit("t-1", name_of);
  EXPECT_EQ(asked, 0);
  limits.tenants["alice"] = {1, 1};
  limiter_.Configure(limits);
  EXPECT_TRUE(limiter_.Admit("t-1", name_of));
  EXPECT_FALSE(limiter_.Admit("t-1", name_of));
  limiter_.Configure(limits);
  EXPECT_FALSE(limiter_.Admit("t-1", name_of));
  EXPECT_EQ(asked, 1);
}

TEST_F(TenantRateLimiterTest, UnreadableNameFallsBackToTheDefault) {
  RateLimits limits;
  limits.default_limit = {1, 2};
  limits.tenants["alice"] = {1, 1};
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-1", std::nullopt), 2);
}

TEST_F(TenantRateLimiterTest, ReloadChangesLimitsButKeepsSpentTokens) {
  RateLimits limits;
  limits.default_limit = {1, 5};
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-1"), 5);
  limits.default_limit = {1, 10};
  limiter_.Configure(limits);
  EXPECT_EQ(AdmitAll("t-1"), 0);  // a reload is no way to reset a flooding tenant's bucket
  limiter_.Configure(RateLimits{});
  EXPECT_EQ(AdmitAll("t-1"), 1000);
}

}  // namespace
}  // namespace coffre::ops

namespace coffre::ops {
namespace {

TEST(TenantBodyLimiterTest, BoundsEachTenantAndGivesSlotsBack) {
  TenantBodyLimiter limiter;
  limiter.Configure(2);
  auto a1 = limiter.TryAcquire("a");
  auto a2 = limiter.TryAcquire("a");
  ASSERT_TRUE(a1);
  ASSERT_TRUE(a2);
  EXPECT_FALSE(limiter.TryAcquire("a"));
  auto b1 = limiter.TryAcquire("b");  // another tenant is not affected
  EXPECT_TRUE(b1);
  EXPECT_EQ(limiter.in_flight(), 3u);
  EXPECT_EQ(limiter.in_flight("a"), 2u);
  auto copy = a1;  // the slot goes back with its last copy
  a1.reset();
  EXPECT_FALSE(limiter.TryAcquire("a"));
  copy.reset();
  auto a3 = limiter.TryAcquire("a");
  EXPECT_TRUE(a3);
  a2.reset();
  a3.reset();
  b1.reset();
  EXPECT_EQ(limiter.in_flight(), 0u);
  EXPECT_EQ(limiter.in_flight("a"), 0u);
}

TEST(TenantBodyLimiterTest, ZeroIsUnlimitedAndReconfigureKeepsSlotsInFlight) {
  TenantBodyLimiter limiter;
  std::vector<TenantBodyLimiter::Slot> slots;
  for (int i = 0; i < 100; ++i) {
    slots.push_back(limiter.TryAcquire("a"));
    ASSERT_TRUE(slots.back());
  }
  limiter.Configure(1);
  EXPECT_FALSE(limiter.TryAcquire("a"));
  EXPECT_EQ(limiter.in_flight("a"), 100u);
  slots.clear();
  EXPECT_TRUE(limiter.TryAcquire("a"));
}

}  // namespace
}  // namespace coffre::ops
