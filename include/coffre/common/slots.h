#pragma once

// A fixed number of slots that requests take without waiting: a request that finds none free goes
// on without one (the gateway's large receive buffers are handed out this way). Thread-safe.

#include <atomic>
#include <cstddef>

namespace coffre {

class Slots {
 public:
  explicit Slots(size_t count) : count_(count) {}
  Slots(const Slots&) = delete;
  Slots& operator=(const Slots&) = delete;

  // Takes a slot if one is free.
  bool TryTake() {
    size_t taken = taken_.load(std::memory_order_relaxed);
    while (taken < count_) {
      if (taken_.compare_exchange_weak(taken, taken + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  // Gives back a slot TryTake() handed out.
  void Release() { taken_.fetch_sub(1, std::memory_order_relaxed); }
  size_t taken() const { return taken_.load(std::memory_order_relaxed); }

 private:
  const size_t count_;
  std::atomic<size_t> taken_{0};
};

// Holds a slot, when `wanted` and one is free, until it goes out of scope.
class SlotLease {
 public:
  SlotLease(Slots& slots, bool wanted) : slots_(slots), held_(wanted && slots.TryTake()) {}
  ~SlotLease() {
    if (held_) slots_.Release();
  }
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;
  bool held() const { return held_; }

 private:
  Slots& slots_;
  const bool held_;
};

}  // namespace coffre
