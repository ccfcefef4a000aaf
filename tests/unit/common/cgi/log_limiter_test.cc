// LogLimiter: once per key per interval, keys independent, memory bounded (a flood of
// distinct keys neither grows it nor stops a new key from being logged).
#include "common/cgi/log_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace corral::cgi {
namespace {

using namespace std::chrono_literals;
using Clock = LogLimiter::Clock;

TEST(LogLimiter, OncePerKeyPerInterval) {
  LogLimiter l(60s);
  Clock::time_point t0{1h};
  EXPECT_TRUE(l.allow("/srv/cgi/a.sh", t0));
  EXPECT_FALSE(l.allow("/srv/cgi/a.sh", t0 + 1s));
  EXPECT_FALSE(l.allow("/srv/cgi/a.sh", t0 + 59s));
  EXPECT_TRUE(l.allow("/srv/cgi/b.sh", t0 + 1s)) << "another key has its own budget";
  EXPECT_TRUE(l.allow("/srv/cgi/a.sh", t0 + 60s)) << "a minute later it may be logged again";
  EXPECT_FALSE(l.allow("/srv/cgi/a.sh", t0 + 61s));
}

TEST(LogLimiter, BoundedMemoryUnderAFloodOfKeys) {
  static_assert(sizeof(LogLimiter) < 64 * 1024, "the table is fixed and small");
  LogLimiter l(60s);
  Clock::time_point t0{1h};
  EXPECT_TRUE(l.allow("/hot", t0));
  // Far more distinct keys than the table holds, all within the minute: each new one is
  // allowed once (nothing is silently lost) ...
  const int n = static_cast<int>(LogLimiter::kSets * LogLimiter::kWays * 8);
  int allowed = 0;
  for (int i = 0; i < n; ++i) allowed += l.allow("/scan/" + std::to_string(i), t0 + 1s);
  EXPECT_EQ(allowed, n);
  // ... and a key seen just now is still held back.
  EXPECT_TRUE(l.allow("/fresh", t0 + 2s));
  EXPECT_FALSE(l.allow("/fresh", t0 + 3s));
}

}  // namespace
}  // namespace corral::cgi
