#pragma once

// A small metrics registry exported in the Prometheus text format (version 0.0.4).
//
// Counters, gauges and histograms are registered once (a mutex guards the registry's maps) and
// then updated with relaxed atomics only, from any thread, without locks or allocation. A
// reference returned by the registry stays valid for the registry's lifetime. Nothing here
// throws on the update path; Render() allocates the text it returns.
//
// Metric and label names are program constants; label values may come from requests and are
// escaped on output. Never put secrets, keys or signatures in a label.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coffre::ops {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative histogram over fixed upper bounds (ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative); i == bounds().size() gives the total count.
  uint64_t cumulative_count(size_t i) const;
  // Observations in bucket i alone (i == bounds().size(): above the last bound).
  uint64_t bucket_count(size_t i) const {
    return i <= bounds_.size() ? buckets_[i].load(std::memory_order_relaxed) : 0;
  }
  uint64_t count() const { return cumulative_count(bounds_.size()); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative; last is +Inf
  std::atomic<double> sum_{0};
};

// What a histogram kept outside the registry holds when it is rendered: per-bucket counts (not
// cumulative; the last bucket is +Inf) and the sum of the observations.
struct HistogramSnapshot {
  std::vector<uint64_t> buckets;
  double sum = 0;
};

// Latency buckets in seconds, 1 ms to 60 s: S3 requests range from a HEAD to a 5 GiB PUT.
std::vector<double> LatencyBuckets();

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the series for (name, labels), creating it on first use. Asking for an existing
  // name with another type (a programming error) returns a detached metric that is never
  // exported, so a mistake costs a missing series, not a crash.
  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  Histogram& GetHistogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                          const Labels& labels = {});
  // A gauge computed when the registry is rendered (open connections, free disk space). `read`
  // runs on the rendering thread and must be thread-safe; it may do cheap blocking calls
  // (statvfs), so render off the network thread.
  void AddCallbackGauge(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> read);
  // A counter kept elsewhere (another module's running total), read when rendered. `read` must
  // not call back into the registry.
  void AddCallbackCounter(std::string_view name, std::string_view help, const Labels& labels,
                          std::function<uint64_t()> read);
  // A histogram kept elsewhere (another module's latency buckets), read when rendered. `bounds`
  // are its buckets' upper bounds; `read` returns one count more than there are bounds (the last
  // bucket is +Inf), must be thread-safe and must not call back into the registry. A snapshot
  // with the wrong number of buckets renders as empty rather than as a wrong distribution.
  void AddCallbackHistogram(std::string_view name, std::string_view help, const Labels& labels,
                            std::vector<double> bounds, std::function<HistogramSnapshot()> read);

  // The whole registry in the Prometheus text exposition format, families sorted by name.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    // Keyed by the rendered label set ("{a=\"b\"}"), so series print in a stable order.
    std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters;
    std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges;
    std::map<std::string, std::function<double()>, std::less<>> callbacks;
    std::map<std::string, std::function<uint64_t()>, std::less<>> counter_callbacks;
    std::map<std::string, std::pair<Labels, std::unique_ptr<Histogram>>, std::less<>> histograms;
    std::map<std::string, std::pair<std::vector<double>, std::function<HistogramSnapshot()>>, std::less<>>
        histogram_callbacks;
  };

  Family* FamilyFor(std::string_view name, std::string_view help, Type type);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
  std::vector<std::unique_ptr<Counter>> detached_counters_;
  std::vector<std::unique_ptr<Gauge>> detached_gauges_;
  std::vector<std::unique_ptr<Histogram>> detached_histograms_;
};

// `{k="v",...}` with Prometheus escaping of the values (backslash, double quote, newline);
// "" for no labels.
std::string FormatLabels(const Labels& labels);

}  // namespace coffre::ops
