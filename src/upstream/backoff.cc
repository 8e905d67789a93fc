#include "upstream/backoff.h"

#include <algorithm>

namespace coffre::upstream {

std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, uint64_t random) {
  const uint64_t base = static_cast<uint64_t>(std::max<int64_t>(policy.base_delay.count(), 0));
  const uint64_t cap = static_cast<uint64_t>(std::max<int64_t>(policy.max_delay.count(), 0));
  // Doubling stops at the cap, so a large retry number cannot overflow the shift.
  uint64_t ceiling = base;
  for (int i = 1; i < retry && ceiling < cap; ++i) {
    ceiling *= 2;
  }
  ceiling = std::min(ceiling, cap);
  return std::chrono::milliseconds(random % (ceiling + 1));
}

}  // namespace coffre::upstream
