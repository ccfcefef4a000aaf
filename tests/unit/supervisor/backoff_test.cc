#include "supervisor/backoff.h"

#include <gtest/gtest.h>

#include "tests/unit/supervisor/fake_clock.h"

namespace corral::supervisor {
namespace {
using std::chrono::milliseconds;

// Jitter at its midpoint: exact delays.
Backoff::Random mid() {
  return [] { return 0.5; };
}

Millis die_after(Backoff& b, FakeClock& clock, milliseconds lived) {
  b.on_start();
  clock.advance(lived);
  return b.on_exit();
}

TEST(Backoff, QuickDeathsDoubleFromHalfASecondUpToTheCap) {
  FakeClock clock;
  Backoff b(clock, {}, mid());
  const long expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (long e : expected) EXPECT_EQ(die_after(b, clock, milliseconds(100)).count(), e);
  EXPECT_EQ(b.failures(), 9);
}

TEST(Backoff, DeathAfterQuickWindowRestartsAtOnceButKeepsCount) {
  FakeClock clock;
  Backoff b(clock, {}, mid());
  EXPECT_EQ(die_after(b, clock, milliseconds(10)).count(), 500);
  EXPECT_EQ(die_after(b, clock, milliseconds(6000)).count(), 0);
  EXPECT_EQ(b.failures(), 1);
  EXPECT_EQ(die_after(b, clock, milliseconds(10)).count(), 1000);
}

TEST(Backoff, SurvivingTenSecondsResets) {
  FakeClock clock;
  Backoff b(clock, {}, mid());
  for (int i = 0; i < 4; ++i) die_after(b, clock, milliseconds(10));
  EXPECT_EQ(die_after(b, clock, milliseconds(10'000)).count(), 0);
  EXPECT_EQ(b.failures(), 0);
  EXPECT_EQ(die_after(b, clock, milliseconds(10)).count(), 500);
}

TEST(Backoff, NeverReadyCountsAsQuickDeathHoweverLongItTook) {
  FakeClock clock;
  Backoff b(clock, {}, mid());
  // Killed at a 30 s boot_timeout, again and again: backs off instead of restarting at once.
  for (long e : {500L, 1000L, 2000L}) {
    b.on_start();
    clock.advance(milliseconds(30'000));
    EXPECT_EQ(b.on_exit(/*never_ready=*/true).count(), e);
  }
  EXPECT_EQ(b.failures(), 3);
  // A worker that became ready and lived resets it as before.
  EXPECT_EQ(die_after(b, clock, milliseconds(10'000)).count(), 0);
  EXPECT_EQ(b.failures(), 0);
}

TEST(Backoff, JitterStaysWithinBoundsAndCap) {
  FakeClock clock;
  double r = 0.0;
  Backoff low(clock, {}, [&] { return r; });
  r = 0.0;
  EXPECT_EQ(die_after(low, clock, milliseconds(1)).count(), 400);  // 500 × 0.8
  r = 0.999999;
  EXPECT_EQ(die_after(low, clock, milliseconds(1)).count(), 1199);  // 1000 × ~1.2
  for (int i = 0; i < 10; ++i) EXPECT_LE(die_after(low, clock, milliseconds(1)).count(), 30'000);
}

TEST(Backoff, DefaultRandomVariesWithinTwentyPercent) {
  FakeClock clock;
  for (int i = 0; i < 50; ++i) {
    Backoff b(clock);
    auto d = die_after(b, clock, milliseconds(1)).count();
    EXPECT_GE(d, 400);
    EXPECT_LE(d, 600);
  }
}

TEST(Backoff, UptimeFollowsTheClock) {
  FakeClock clock;
  Backoff b(clock);
  b.on_start();
  clock.advance(milliseconds(1234));
  EXPECT_EQ(b.uptime().count(), 1234);
}

}  // namespace
}  // namespace corral::supervisor
