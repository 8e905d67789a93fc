#include "coffre/ops/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace coffre::ops {
namespace {

std::string FormatNumber(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  // Whole numbers (byte counts, connection counts) print as integers, not in exponent form.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) {
    return "NaN";
  }
  return std::string(buf, end);
}

void EscapeHelp(std::string_view help, std::string& out) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Inserts `extra` (already formatted `k="v"`) into a rendered label set.
std::string WithLabel(std::string_view labels, std::string_view extra) {
  if (labels.empty()) {
    return "{" + std::string(extra) + "}";
  }
  std::string out(labels.substr(0, labels.size() - 1));
  out += ",";
  out += extra;
  out += "}";
  return out;
}

}  // namespace

std::string FormatLabels(const Labels& labels) {
  if (labels.empty()) {
    return "";
  }
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) {
      out += ",";
    }
    first = false;
    out += name;
    out += "=\"";
    for (char c : value) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '"') {
        out += "\\\"";
      } else if (c == '\n') {
        out += "\\n";
      } else {
        out += c;
      }
    }
    out += "\"";
  }
  out += "}";
  return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_([&] {
        std::sort(bounds.begin(), bounds.end());
        bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
        return bounds;
      }()),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    buckets_[i].store(0, std::memory_order_relaxed);
  }
}

void Histogram::Observe(double v) {
  // First bound >= v ("le" semantics); past the end is the +Inf bucket.
  const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::cumulative_count(size_t i) const {
  uint64_t total = 0;
  for (size_t b = 0; b <= i && b <= bounds_.size(); ++b) {
    total += bucket_count(b);
  }
  return total;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

Registry::Family* Registry::FamilyFor(std::string_view name, std::string_view help, Type type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family family;
    family.type = type;
    family.help = std::string(help);
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  return it->second.type == type ? &it->second : nullptr;
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kCounter);
  if (family == nullptr) {
    return *detached_counters_.emplace_back(std::make_unique<Counter>());
  }
  const std::string key = FormatLabels(labels);
  auto it = family->counters.find(key);
  if (it == family->counters.end()) {
    it = family->counters.emplace(key, std::make_unique<Counter>()).first;
  }
  return *it->second;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kGauge);
  if (family == nullptr) {
    return *detached_gauges_.emplace_back(std::make_unique<Gauge>());
  }
  const std::string key = FormatLabels(labels);
  auto it = family->gauges.find(key);
  if (it == family->gauges.end()) {
    it = family->gauges.emplace(key, std::make_unique<Gauge>()).first;
  }
  return *it->second;
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                                  const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kHistogram);
  if (family == nullptr) {
    return *detached_histograms_.emplace_back(std::make_unique<Histogram>(bounds));
  }
  const std::string key = FormatLabels(labels);
  auto it = family->histograms.find(key);
  if (it == family->histograms.end()) {
    it = family->histograms.emplace(key, std::make_pair(labels, std::make_unique<Histogram>(bounds))).first;
  }
  return *it->second.second;
}

void Registry::AddCallbackGauge(std::string_view name, std::string_view help, const Labels& labels,
                                std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kGauge);
  if (family == nullptr) {
    return;
  }
  family->callbacks[FormatLabels(labels)] = std::move(read);
}

void Registry::AddCallbackCounter(std::string_view name, std::string_view help, const Labels& labels,
                                  std::function<uint64_t()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kCounter);
  if (family == nullptr) {
    return;
  }
  family->counter_callbacks[FormatLabels(labels)] = std::move(read);
}

void Registry::AddCallbackHistogram(std::string_view name, std::string_view help, const Labels& labels,
                                    std::vector<double> bounds, std::function<HistogramSnapshot()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* family = FamilyFor(name, help, Type::kHistogram);
  if (family == nullptr) {
    return;
  }
  family->histogram_callbacks[FormatLabels(labels)] = {std::move(bounds), std::move(read)};
}

std::string Registry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP " + name + " ";
    EscapeHelp(family.help, out);
    out += "\n# TYPE " + name + " ";
    switch (family.type) {
      case Type::kCounter: {
        out += "counter\n";
        std::map<std::string_view, uint64_t> values;
        for (const auto& [labels, counter] : family.counters) {
          values[labels] = counter->value();
        }
        for (const auto& [labels, read] : family.counter_callbacks) {
          values[labels] = read();
        }
        for (const auto& [labels, value] : values) {
          out += name;
          out += labels;
          out += " " + std::to_string(value) + "\n";
        }
        break;
      }
      case Type::kGauge: {
        out += "gauge\n";
        // Stored and computed gauges merged in label order.
        std::map<std::string_view, double> values;
        for (const auto& [labels, gauge] : family.gauges) {
          values[labels] = gauge->value();
        }
        for (const auto& [labels, read] : family.callbacks) {
          values[labels] = read();
        }
        for (const auto& [labels, value] : values) {
          out += name;
          out += labels;
          out += " " + FormatNumber(value) + "\n";
        }
        break;
      }
      case Type::kHistogram: {
        out += "histogram\n";
        // Each bucket read once, so that the cumulative counts never decrease.
        const auto emit = [&out, &name = name](std::string_view labels, const std::vector<double>& bounds,
                                               const std::function<uint64_t(size_t)>& bucket, double sum) {
          uint64_t cumulative = 0;
          for (size_t i = 0; i <= bounds.size(); ++i) {
            cumulative += bucket(i);
            const std::string le = "le=\"" + (i < bounds.size() ? FormatNumber(bounds[i]) : std::string("+Inf")) + "\"";
            out += name + "_bucket" + WithLabel(labels, le) + " " + std::to_string(cumulative) + "\n";
          }
          out += name + "_sum" + std::string(labels) + " " + FormatNumber(sum) + "\n";
          out += name + "_count" + std::string(labels) + " " + std::to_string(cumulative) + "\n";
        };
        for (const auto& [labels, entry] : family.histograms) {
          const Histogram& h = *entry.second;
          emit(
              labels, h.bounds(), [&h](size_t i) { return h.bucket_count(i); }, h.sum());
        }
        for (const auto& [labels, entry] : family.histogram_callbacks) {
          const auto& [bounds, read] = entry;
          HistogramSnapshot snapshot = read();
          if (snapshot.buckets.size() != bounds.size() + 1) snapshot = {std::vector<uint64_t>(bounds.size() + 1), 0};
          emit(
              labels, bounds, [&snapshot](size_t i) { return snapshot.buckets[i]; }, snapshot.sum);
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace coffre::ops
