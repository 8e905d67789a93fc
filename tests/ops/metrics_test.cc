#include "coffre/ops/metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace coffre::ops {
namespace {

bool Contains(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

TEST(MetricsTest, CounterRendersWithHelpTypeAndLabels) {
  Registry registry;
  registry.GetCounter("coffre_requests_total", "Requests.", {{"operation", "GetObject"}, {"status", "200"}}).Add(3);
  registry.GetCounter("coffre_requests_total", "Requests.", {{"operation", "GetObject"}, {"status", "404"}}).Add();
  const std::string text = registry.Render();
  EXPECT_TRUE(Contains(text, "# HELP coffre_requests_total Requests.\n# TYPE coffre_requests_total counter\n"));
  EXPECT_TRUE(Contains(text, "coffre_requests_total{operation=\"GetObject\",status=\"200\"} 3\n")) << text;
  EXPECT_TRUE(Contains(text, "coffre_requests_total{operation=\"GetObject\",status=\"404\"} 1\n")) << text;
}

TEST(MetricsTest, SameNameAndLabelsReturnTheSameSeries) {
  Registry registry;
  Counter& a = registry.GetCounter("c_total", "h", {{"k", "v"}});
  Counter& b = registry.GetCounter("c_total", "h", {{"k", "v"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &registry.GetCounter("c_total", "h", {{"k", "w"}}));
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  Registry registry;
  registry.GetCounter("c_total", "h", {{"key", "a\"b\\c\nd"}}).Add();
  EXPECT_TRUE(Contains(registry.Render(), "c_total{key=\"a\\\"b\\\\c\\nd\"} 1\n")) << registry.Render();
}

TEST(MetricsTest, TypeClashGivesADetachedMetricNotACrash) {
  Registry registry;
  registry.GetCounter("m", "h").Add(5);
  Gauge& g = registry.GetGauge("m", "h");
  g.Set(42);
  const std::string text = registry.Render();
  EXPECT_TRUE(Contains(text, "m 5\n"));
  EXPECT_FALSE(Contains(text, "42"));
}

TEST(MetricsTest, GaugesStoredAndComputed) {
  Registry registry;
  registry.GetGauge("g", "gauge", {{"a", "1"}}).Set(2.5);
  double computed = 7;
  registry.AddCallbackGauge("g", "gauge", {{"a", "2"}}, [&computed] { return computed; });
  EXPECT_TRUE(Contains(registry.Render(), "# TYPE g gauge\ng{a=\"1\"} 2.5\ng{a=\"2\"} 7\n")) << registry.Render();
  computed = 1e12;
  EXPECT_TRUE(Contains(registry.Render(), "g{a=\"2\"} 1000000000000\n")) << registry.Render();
}

TEST(MetricsTest, CallbackCounterIsReadAtRender) {
  Registry registry;
  uint64_t total = 3;
  registry.AddCallbackCounter("records_total", "Records.", {}, [&total] { return total; });
  EXPECT_TRUE(Contains(registry.Render(), "# TYPE records_total counter\nrecords_total 3\n")) << registry.Render();
  total = 10;
  EXPECT_TRUE(Contains(registry.Render(), "records_total 10\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry registry;
  Histogram& h = registry.GetHistogram("lat_seconds", "latency", {0.1, 1, 0.5}, {{"op", "Put"}});
  h.Observe(0.05);
  h.Observe(0.1);  // on a bound: counted in le="0.1"
  h.Observe(0.7);
  h.Observe(100);
  const std::string text = registry.Render();
  EXPECT_TRUE(Contains(text, "# TYPE lat_seconds histogram\n"));
  EXPECT_TRUE(Contains(text, "lat_seconds_bucket{op=\"Put\",le=\"0.1\"} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "lat_seconds_bucket{op=\"Put\",le=\"0.5\"} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "lat_seconds_bucket{op=\"Put\",le=\"1\"} 3\n")) << text;
  EXPECT_TRUE(Contains(text, "lat_seconds_bucket{op=\"Put\",le=\"+Inf\"} 4\n")) << text;
  EXPECT_TRUE(Contains(text, "lat_seconds_sum{op=\"Put\"} 100.85\n")) << text;
  EXPECT_TRUE(Contains(text, "lat_seconds_count{op=\"Put\"} 4\n")) << text;
}

TEST(MetricsTest, CallbackHistogramIsReadAtRenderAndMadeCumulative) {
  Registry registry;
  HistogramSnapshot kept{{2, 0, 3}, 4.5};
  registry.AddCallbackHistogram("attempt_seconds", "Attempts.", {{"store", "up"}}, {0.01, 0.1},
                                [&kept] { return kept; });
  std::string text = registry.Render();
  EXPECT_TRUE(Contains(text, "# TYPE attempt_seconds histogram\n")) << text;
  EXPECT_TRUE(Contains(text,
                       "attempt_seconds_bucket{store=\"up\",le=\"0.01\"} 2\n"
                       "attempt_seconds_bucket{store=\"up\",le=\"0.1\"} 2\n"
                       "attempt_seconds_bucket{store=\"up\",le=\"+Inf\"} 5\n"
                       "attempt_seconds_sum{store=\"up\"} 4.5\n"
                       "attempt_seconds_count{store=\"up\"} 5\n"))
      << text;
  kept = {{1, 1, 1, 1}, 9};  // a bucket too many: rendered empty, never as a wrong distribution
  text = registry.Render();
  EXPECT_TRUE(Contains(text, "attempt_seconds_bucket{store=\"up\",le=\"+Inf\"} 0\n")) << text;
  EXPECT_TRUE(Contains(text, "attempt_seconds_sum{store=\"up\"} 0\n")) << text;
}

TEST(MetricsTest, FamiliesRenderSortedByName) {
  Registry registry;
  registry.GetCounter("zz_total", "z").Add();
  registry.GetCounter("aa_total", "a").Add();
  const std::string text = registry.Render();
  EXPECT_LT(text.find("aa_total"), text.find("zz_total"));
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry registry;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      for (int i = 0; i < kPerThread; ++i) {
        registry.GetCounter("c_total", "h", {{"shard", std::to_string(t % 2)}}).Add();
        registry.GetHistogram("h_seconds", "h", LatencyBuckets()).Observe(0.002);
        if (i % 1000 == 0) {
          (void)registry.Render();
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(registry.GetCounter("c_total", "h", {{"shard", "0"}}).value() +
                registry.GetCounter("c_total", "h", {{"shard", "1"}}).value(),
            static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(registry.GetHistogram("h_seconds", "h", LatencyBuckets()).count(),
            static_cast<uint64_t>(kThreads) * kPerThread);
}

}  // namespace
}  // namespace coffre::ops
