#pragma once

// Deterministic pseudo-random test content: the same size and seed give the same bytes on every
// run, different seeds give different bytes, and nothing compresses or repeats at a segment or
// part boundary by accident.

#include <cstddef>
#include <cstdint>
#include <random>

#include "coffre/common/bytes.h"

namespace coffre::test_support {

inline Bytes Pattern(size_t n, uint32_t seed = 1) {
  Bytes b(n);
  std::mt19937 rng(seed);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

}  // namespace coffre::test_support
