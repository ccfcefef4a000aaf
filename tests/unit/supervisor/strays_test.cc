#include "supervisor/strays.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

namespace corral::supervisor {
namespace {

// A child of the test process that sleeps until killed.
pid_t sleeper() {
  pid_t pid = ::fork();
  if (pid == 0) {
    for (;;) ::pause();
  }
  return pid;
}

// Alive (not yet reaped and not a zombie).
bool running(pid_t pid) {
  int st = 0;
  return ::waitpid(pid, &st, WNOHANG) == 0;
}

void reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
}

// /proc start times tick every 10 ms: a process started later gets a later one.
void next_tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

TEST(StraysTest, AChildNoWorkerCanHaveMadeIsLeftAlone) {
  Strays strays;
  const pid_t orphan = sleeper();
  ASSERT_GT(orphan, 0);
  EXPECT_TRUE(strays.scan({}, {}, {}).empty());
  EXPECT_TRUE(strays.scan({}, {}, {}).empty());
  EXPECT_TRUE(running(orphan)) << "a child with no possible owner was killed";
  EXPECT_EQ(strays.ignored(), 1u);
  reap(orphan);
}

TEST(StraysTest, ChildrenThereAtStartAreNeverStrays) {
  Strays strays;
  const pid_t inherited = sleeper();
  ASSERT_GT(inherited, 0);
  strays.start();
  next_tick();
  const pid_t worker = sleeper();
  ASSERT_GT(worker, 0);
  const WorkerRef w{"demo", 0, worker, 0};
  EXPECT_TRUE(strays.scan({worker}, {w}, {}).empty());
  reap(worker);
  // An exited worker is a possible maker of any stray (its start time is gone with it).
  EXPECT_TRUE(strays.scan({}, {}, {w}).empty());
  EXPECT_TRUE(running(inherited)) << "a child the supervisor had before its first worker was killed";
  reap(inherited);
}

TEST(StraysTest, AStrayIsKilledOnceTheWorkersThatMayHaveMadeItAreGone) {
  Strays strays;
  strays.start();
  const pid_t worker = sleeper();
  ASSERT_GT(worker, 0);
  next_tick();
  const pid_t stray = sleeper();
  ASSERT_GT(stray, 0);
  const WorkerRef w{"demo", 3, worker, 0};
  EXPECT_TRUE(strays.scan({worker}, {w}, {}).empty());
  EXPECT_TRUE(running(stray)) << "killed while the worker that may have made it runs";
  reap(worker);
  auto killed = strays.scan({}, {}, {w});
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_EQ(killed[0].owner.pid, worker);
  EXPECT_FALSE(killed[0].certain);
  ASSERT_EQ(killed[0].processes.size(), 1u);
  EXPECT_EQ(killed[0].processes[0].first, stray);
  int st = 0;
  ASSERT_EQ(::waitpid(stray, &st, 0), stray);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

// Two workers ran before it and neither is tied to it: it is charged to neither of them.
TEST(StraysTest, AStrayTwoWorkersMayHaveMadeIsChargedToNeither) {
  Strays strays;
  strays.start();
  const pid_t w1 = sleeper(), w2 = sleeper();
  ASSERT_GT(w1, 0);
  ASSERT_GT(w2, 0);
  next_tick();
  const pid_t stray = sleeper();
  ASSERT_GT(stray, 0);
  const WorkerRef a{"demo", 0, w1, 0}, b{"other", 1, w2, 0};
  EXPECT_TRUE(strays.scan({w1, w2}, {a, b}, {}).empty());
  reap(w1);
  EXPECT_TRUE(strays.scan({w2}, {b}, {a}).empty()) << "killed while a worker that may have made it runs";
  EXPECT_TRUE(running(stray));
  reap(w2);
  auto killed = strays.scan({}, {}, {b});
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_EQ(killed[0].owner.pid, 0) << "charged to worker pid " << killed[0].owner.pid << " on a guess";
  EXPECT_FALSE(killed[0].certain);
  ASSERT_EQ(killed[0].makers.size(), 2u);
  EXPECT_EQ(killed[0].makers[0].pid + killed[0].makers[1].pid, w1 + w2);
  ASSERT_EQ(killed[0].processes.size(), 1u);
  EXPECT_EQ(killed[0].processes[0].first, stray);
  int st = 0;
  ASSERT_EQ(::waitpid(stray, &st, 0), stray);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

}  // namespace
}  // namespace corral::supervisor
