#include "common/base/log_throttle.h"

#include <gtest/gtest.h>

#include <thread>

namespace corral {
namespace {

TEST(LogThrottleTest, FirstOccurrenceThenAtMostOncePerIntervalWithTheHeldBackCount) {
  LogThrottle t(std::chrono::milliseconds(200));
  uint64_t held = 99;
  EXPECT_TRUE(t.allow(&held));
  EXPECT_EQ(held, 0u);
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(t.allow());
  std::this_thread::sleep_for(std::chrono::milliseconds(260));
  EXPECT_TRUE(t.allow(&held));
  EXPECT_EQ(held, 50u);
  EXPECT_FALSE(t.allow());
  t.reset();
  EXPECT_TRUE(t.allow(&held));
  EXPECT_EQ(held, 0u);
}

}  // namespace
}  // namespace corral
