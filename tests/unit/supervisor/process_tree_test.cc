#include "supervisor/process_tree.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "common/base/unique_fd.h"
#include "supervisor/death_log.h"

namespace corral::supervisor {
namespace {

TEST(ProcessTreeTest, ParsesStatWithACommandHoldingSpacesAndParentheses) {
  auto e = parse_proc_entry(
      812, "812 (my (odd) app) S 1 812 812 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 123456 1000 50 18446744073709551615");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->state, 'S');
  EXPECT_EQ(e->ppid, 1);
  EXPECT_EQ(e->pgrp, 812);
  EXPECT_EQ(e->session, 812);
  EXPECT_EQ(e->start_ticks, 123456u);
  EXPECT_FALSE(parse_proc_entry(1, "1 (x) S 1 2"));
  EXPECT_FALSE(parse_proc_entry(1, "garbage"));
}

TEST(ProcessTreeTest, ChildrenDescendantsAndSocketHolders) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  const ino_t inode = socket_inode(a.get());
  ASSERT_NE(inode, 0u);
  EXPECT_EQ(holds_socket(::getpid(), inode), Holding::Yes);
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(go[1]);
    if (::fork() == 0) {  // a grandchild that keeps the socket
      char c;
      [[maybe_unused]] ssize_t n = ::read(go[0], &c, 1);
      ::_exit(0);
    }
    char c;
    [[maybe_unused]] ssize_t n = ::read(go[0], &c, 1);
    ::_exit(0);
  }
  ::close(go[0]);
  auto kids = own_children();
  EXPECT_NE(std::find(kids.begin(), kids.end(), child), kids.end());
  std::vector<ProcEntry> below;
  for (int i = 0; i < 100 && below.empty(); ++i) {
    below = descendants(child);
    if (below.empty()) ::usleep(10'000);
  }
  ASSERT_EQ(below.size(), 1u);
  EXPECT_EQ(holds_socket(below[0].pid, inode), Holding::Yes);  // inherited across fork (CLOEXEC only matters at exec)
  EXPECT_EQ(holds_socket(below[0].pid, inode + 1000000), Holding::No);
  ::close(go[1]);  // both exit
  int st = 0;
  ::waitpid(child, &st, 0);
}

// A process whose fds we may not read (another user without CAP_SYS_PTRACE, or not
// dumpable) is not known to hold nothing: restarting a busy worker on that guess is wrong.
TEST(ProcessTreeTest, SocketHolderUnknownWhenItsFdsCannotBeRead) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  const ino_t inode = socket_inode(a.get());
  ASSERT_NE(inode, 0u);
  int res[2], go[2];
  ASSERT_EQ(::pipe(res), 0);
  ASSERT_EQ(::pipe(go), 0);
  const bool root = ::geteuid() == 0;
  const pid_t parent = ::getpid();
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(res[0]);
    ::close(go[1]);  // or the read below never sees the parent's end close
    char c = 'x';
    if (root) {
      // Root reads everything: look at the parent as an unprivileged user instead.
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(1);
      c = static_cast<char>('0' + static_cast<int>(holds_socket(parent, inode)));
    } else {
      ::prctl(PR_SET_DUMPABLE, 0);
    }
    [[maybe_unused]] ssize_t n = ::write(res[1], &c, 1);
    n = ::read(go[0], &c, 1);
    ::_exit(0);
  }
  ::close(res[1]);
  ::close(go[0]);
  char c = 0;
  ASSERT_EQ(::read(res[0], &c, 1), 1);
  const Holding seen = root ? static_cast<Holding>(c - '0') : holds_socket(child, inode);
  ::close(go[1]);
  ::close(res[0]);
  int st = 0;
  ::waitpid(child, &st, 0);
  EXPECT_EQ(seen, Holding::Unknown);
  const pid_t gone = child;  // reaped: its /proc entry is gone
  EXPECT_EQ(holds_socket(gone, inode), Holding::No);
}

// A pid seen earlier may name another process by the time it is signalled: only the
// process that started at the time seen gets the signal.
TEST(ProcessTreeTest, SignalsOnlyTheProcessThatWasSeen) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  auto e = read_proc_entry(child);
  ASSERT_TRUE(e.has_value());
  int st = 0;
  EXPECT_FALSE(signal_if_same(child, e->start_ticks + 1, SIGKILL)) << "signalled a process that started later";
  EXPECT_EQ(::waitpid(child, &st, WNOHANG), 0) << "the other process was killed";
  EXPECT_TRUE(signal_if_same(child, e->start_ticks, SIGKILL));
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  EXPECT_FALSE(signal_if_same(child, e->start_ticks, SIGKILL)) << "gone and reaped";
}

TEST(DeathLogTest, LeftoversAreNotedOnTheWorkersNewestRecord) {
  DeathLog log;
  DeathRecord r;
  r.pid = 42;
  r.reason = "signal";
  log.add(r);
  log.add(r);
  log.note_leftovers(42, "2 process(es) left running: 7 (sleep 600), 8; killed");
  auto j = log.json();
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0].value("leftovers", ""), "2 process(es) left running: 7 (sleep 600), 8; killed");
  EXPECT_FALSE(j[1].contains("leftovers"));
}

}  // namespace
}  // namespace corral::supervisor
