#pragma once

// What an S3Client counts, as plain relaxed atomics: any thread updates them without a lock, and
// ops' metrics can read them (or export them as Prometheus counters) without knowing the client.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "coffre/common/status.h"

namespace coffre::upstream {

struct ClientCounters {
  // Upper bounds, in milliseconds, of the attempt latency buckets; the last bucket is "above".
  static constexpr std::array<uint64_t, 8> kLatencyBoundsMs = {5, 10, 25, 50, 100, 250, 1000, 5000};
  static constexpr size_t kStatusCodes = static_cast<size_t>(StatusCode::kInternal) + 1;

  std::atomic<uint64_t> operations{0};  // calls of the client's operations
  std::atomic<uint64_t> attempts{0};    // HTTP requests sent or tried (operations plus retries)
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> connections_opened{0};
  // Failed operations (after their retries), by the StatusCode they returned.
  std::array<std::atomic<uint64_t>, kStatusCodes> errors_by_code{};
  // Attempts by how long they took, and their total, for a mean.
  std::array<std::atomic<uint64_t>, kLatencyBoundsMs.size() + 1> latency_buckets{};
  std::atomic<uint64_t> latency_total_us{0};

  void RecordAttempt(std::chrono::microseconds latency);
  void RecordFailure(StatusCode code) {
    errors_by_code[static_cast<size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t Errors(StatusCode code) const {
    return errors_by_code[static_cast<size_t>(code)].load(std::memory_order_relaxed);
  }
};

}  // namespace coffre::upstream
