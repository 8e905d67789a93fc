#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>

#include "coffre/server/config.h"
#include "support/status_matchers.h"

namespace coffre::server {
namespace {

using test_support::IsOk;
using ::testing::Not;

std::string ErrorOf(const std::string& json) {
  auto c = ParseConfig(json);
  EXPECT_THAT(c, Not(IsOk())) << json;
  return c.ok() ? std::string() : c.status().message();
}

TEST(ConfigLogFormatTest, DefaultsToTextAndAcceptsJson) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_EQ(c->log_format, "text");
  c = ParseConfig(R"({"log_format": "json"})");
  ASSERT_OK(c);
  EXPECT_EQ(c->log_format, "json");
}

TEST(ConfigLogFormatTest, OtherValuesNameTheFieldAndTheAllowedOnes) {
  EXPECT_EQ(ErrorOf(R"({"log_format": "xml"})"), "config: 'log_format' must be \"text\" or \"json\"");
  EXPECT_EQ(ErrorOf(R"({"log_format": 1})"), "config: 'log_format' must be a string");
}

TEST(ConfigDualControlTest, OffByDefaultWithAnHourToApprove) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_FALSE(c->dual_control);
  EXPECT_EQ(c->dual_control_approval_minutes, 60u);
  c = ParseConfig(R"({"dual_control": true, "dual_control_approval_minutes": 15})");
  ASSERT_OK(c);
  EXPECT_TRUE(c->dual_control);
  EXPECT_EQ(c->dual_control_approval_minutes, 15u);
}

TEST(ConfigDualControlTest, BadValuesNameTheFieldAndTheAllowedValues) {
  EXPECT_EQ(ErrorOf(R"({"dual_control": "yes"})"), "config: 'dual_control' must be true or false");
  EXPECT_EQ(ErrorOf(R"({"dual_control_approval_minutes": 0})"),
            "config: 'dual_control_approval_minutes' must be an integer from 1 to 10080");
  EXPECT_EQ(ErrorOf(R"({"dual_control_approval_minutes": 10081})"),
            "config: 'dual_control_approval_minutes' must be an integer from 1 to 10080");
}

TEST(ConfigThreadsTest, WorkerThreadsDefaultToTwiceTheCoresAndAtLeastFour) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_EQ(c->worker_threads, 0u);
  EXPECT_EQ(WorkerThreads(*c), std::max(4u, 2 * std::thread::hardware_concurrency()));
  c = ParseConfig(R"({"worker_threads": 3})");
  ASSERT_OK(c);
  EXPECT_EQ(WorkerThreads(*c), 3u);
  EXPECT_EQ(ErrorOf(R"({"worker_threads": 257})"), "config: 'worker_threads' must be an integer from 0 to 256");
}

TEST(ConfigThreadsTest, CommitThreadsDefaultAndBounds) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_EQ(c->commit_threads, 32u);
  c = ParseConfig(R"({"commit_threads": 1})");
  ASSERT_OK(c);
  EXPECT_EQ(c->commit_threads, 1u);
  EXPECT_EQ(ErrorOf(R"({"commit_threads": 0})"), "config: 'commit_threads' must be an integer from 1 to 1024");
  EXPECT_EQ(ErrorOf(R"({"commit_threads": 1025})"), "config: 'commit_threads' must be an integer from 1 to 1024");
}

TEST(ConfigPackedBlobsTest, UpTo256KiBByDefaultZeroTurnsThemOff) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_EQ(c->packed_blob_max_bytes, 256u * 1024u);
  c = ParseConfig(R"({"packed_blob_max_bytes": 0})");
  ASSERT_OK(c);
  EXPECT_EQ(c->packed_blob_max_bytes, 0u);
  EXPECT_EQ(ErrorOf(R"({"packed_blob_max_bytes": 16777217})"),
            "config: 'packed_blob_max_bytes' must be an integer from 0 to 16777216");
  EXPECT_EQ(ErrorOf(R"({"packed_blob_max_bytes": -1})"),
            "config: 'packed_blob_max_bytes' must be an integer from 0 to 16777216");
}

TEST(ConfigRateLimitsTest, UnlimitedByDefault) {
  auto c = ParseConfig("{}");
  ASSERT_OK(c);
  EXPECT_TRUE(c->rate_limits.default_limit.unlimited());
  EXPECT_TRUE(c->rate_limits.tenants.empty());
}

TEST(ConfigRateLimitsTest, DefaultAndOverridesWithBurstDefaultingToOneSecond) {
  auto c = ParseConfig(R"({"rate_limits": {
      "default": {"requests_per_second": 100, "burst": 250},
      "tenants": {"batch": {"requests_per_second": 2.5}, "slowest": {"requests_per_second": 0.1},
                  "exempt": {"requests_per_second": 0}}}})");
  ASSERT_OK(c);
  EXPECT_EQ(c->rate_limits.default_limit, (ops::RateLimit{100, 250}));
  EXPECT_EQ(c->rate_limits.tenants.at("batch"), (ops::RateLimit{2.5, 3}));
  EXPECT_EQ(c->rate_limits.tenants.at("slowest"), (ops::RateLimit{0.1, 1}));
  EXPECT_TRUE(c->rate_limits.tenants.at("exempt").unlimited());
}

TEST(ConfigRateLimitsTest, BadValuesNameTheFieldAndTheAllowedValues) {
  EXPECT_EQ(ErrorOf(R"({"rate_limits": []})"),
            "config: 'rate_limits' must be an object with \"default\" and/or \"tenants\"");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"defaults": {}}})"),
            "config: unknown field 'rate_limits.defaults' (allowed: default, tenants)");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"default": {"requests_per_second": -1}}})"),
            "config: 'rate_limits.default.requests_per_second' must be a number from 0 (no limit) to 1000000");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"default": {"burst": 5}}})"),
            "config: 'rate_limits.default.requests_per_second' must be a number from 0 (no limit) to 1000000");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"tenants": {"a": {"requests_per_second": 1, "burst": 0}}}})"),
            "config: 'rate_limits.tenants.a.burst' must be an integer from 1 to 1000000");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"tenants": {"a": {"requests_per_second": 1, "brust": 2}}}})"),
            "config: unknown field 'rate_limits.tenants.a.brust' (allowed: requests_per_second, burst)");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"tenants": ["a"]}})"),
            "config: 'rate_limits.tenants' must be an object keyed by tenant name or id");
  EXPECT_EQ(ErrorOf(R"({"rate_limits": {"tenants": {"a": 5}}})"),
            "config: 'rate_limits.tenants.a' must be an object {\"requests_per_second\": N, \"burst\": M}");
}

}  // namespace
}  // namespace coffre::server
