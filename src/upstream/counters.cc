#include "coffre/upstream/counters.h"

namespace coffre::upstream {

void ClientCounters::RecordAttempt(std::chrono::microseconds latency) {
  attempts.fetch_add(1, std::memory_order_relaxed);
  const auto us = static_cast<uint64_t>(latency.count() < 0 ? 0 : latency.count());
  latency_total_us.fetch_add(us, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < kLatencyBoundsMs.size() && us > kLatencyBoundsMs[bucket] * 1000) {
    ++bucket;
  }
  latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace coffre::upstream
