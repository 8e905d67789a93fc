#include "coffre/common/slots.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace coffre {
namespace {

TEST(SlotsTest, HandsOutAtMostItsCountAndTakesThemBack) {
  Slots slots(2);
  EXPECT_TRUE(slots.TryTake());
  EXPECT_TRUE(slots.TryTake());
  EXPECT_FALSE(slots.TryTake());  // a third body goes on without a slot
  EXPECT_EQ(slots.taken(), 2u);
  slots.Release();
  EXPECT_TRUE(slots.TryTake());
  EXPECT_FALSE(slots.TryTake());
}

TEST(SlotsTest, ZeroSlotsNeverHandsOneOut) {
  Slots slots(0);
  EXPECT_FALSE(slots.TryTake());
  EXPECT_EQ(slots.taken(), 0u);
}

TEST(SlotsTest, LeaseGivesItsSlotBackAndOnlyWhenItHoldsOne) {
  Slots slots(1);
  {
    SlotLease first(slots, true);
    EXPECT_TRUE(first.held());
    SlotLease second(slots, true);
    EXPECT_FALSE(second.held());  // none free
    SlotLease unwanted(slots, false);
    EXPECT_FALSE(unwanted.held());
    EXPECT_EQ(slots.taken(), 1u);
  }
  EXPECT_EQ(slots.taken(), 0u);  // only the holder released
}

TEST(SlotsTest, ConcurrentTakersNeverExceedTheCount) {
  Slots slots(2);
  std::atomic<size_t> most{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        SlotLease lease(slots, true);
        const size_t now = slots.taken();
        size_t seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most.load(), 2u);
  EXPECT_EQ(slots.taken(), 0u);
}

}  // namespace
}  // namespace coffre
