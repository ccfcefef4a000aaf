// common/ev: lazily allocated timers, FdWatch inactivity timeouts, now() read once per callback.
#include "common/ev/loop.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace corral::ev {
namespace {

using namespace std::chrono_literals;

TEST(EvLoop, NowIsReadOncePerCallbackAndFreshOutsideCallbacks) {
  Loop loop;
  auto a = loop.now();
  std::this_thread::sleep_for(2ms);
  EXPECT_GT(loop.now(), a);  // outside callbacks: the clock itself

  std::chrono::steady_clock::time_point in1, in2, next;
  Timer second(loop, [&] {
    next = loop.now();
    loop.break_loop();
  });
  Timer first(loop, [&] {
    in1 = loop.now();
    std::this_thread::sleep_for(2ms);
    in2 = loop.now();
    second.arm(0ms);
  });
  first.arm(0ms);
  loop.run();
  EXPECT_EQ(in1, in2);  // one callback, one reading
  EXPECT_GE(next - in1, 2ms);  // the next callback reads again
}

TEST(EvLoop, TimerAllocatesNothingUntilArmedAndCanBeReleased) {
  Loop loop;
  int fired = 0;
  Timer t(loop, [&] {
    ++fired;
    loop.break_loop();
  });
  EXPECT_FALSE(t.armed());
  t.cancel();   // safe before the first arm
  t.release();  // likewise
  t.arm(1ms);
  EXPECT_TRUE(t.armed());
  t.release();
  EXPECT_FALSE(t.armed());
  t.arm(1ms);  // allocated again
  loop.run();
  EXPECT_EQ(fired, 1);
}

TEST(EvLoop, FdWatchInactivityTimeoutReportsNeitherReadableNorWritable) {
  Loop loop;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  int reads = 0, timeouts = 0;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now(), t_timeout;
  FdWatch w(loop, sv[0], [&](bool r, bool wr) {
    if (!r && !wr) {
      ++timeouts;
      t_timeout = std::chrono::steady_clock::now();
      loop.break_loop();
      return;
    }
    char c;
    while (::read(sv[0], &c, 1) > 0) {
    }
    ++reads;
  });
  w.set(true, false);
  w.set_timeout(100ms);
  // Activity before the timeout: a read, and the timeout starts again from there.
  Timer poke(loop, [&] { ASSERT_EQ(::write(sv[1], "x", 1), 1); });
  poke.arm(60ms);
  loop.run();
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(timeouts, 1);
  EXPECT_GE(t_timeout - t0, 150ms);

  // clear_timeout: nothing fires any more; data still does.
  reads = timeouts = 0;
  w.clear_timeout();
  Timer stop(loop, [&] { loop.break_loop(); });
  poke.arm(20ms);
  stop.arm(300ms);
  loop.run();
  EXPECT_EQ(reads, 1);
  EXPECT_EQ(timeouts, 0);
  ::close(sv[0]);
  ::close(sv[1]);
}

}  // namespace
}  // namespace corral::ev
