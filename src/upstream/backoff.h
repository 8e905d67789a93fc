#pragma once

#include <chrono>
#include <cstdint>

#include "coffre/upstream/options.h"

namespace coffre::upstream {

// The sleep before retry `retry` (1 for the first retry): full jitter, `random` mapped uniformly
// onto [0, min(max_delay, base_delay * 2^(retry-1))]. Pure, so tests pick the random value.
std::chrono::milliseconds BackoffDelay(const RetryPolicy& policy, int retry, uint64_t random);

}  // namespace coffre::upstream
