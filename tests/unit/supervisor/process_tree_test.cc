#include "supervisor/process_tree.h"

#include <gtest/gtest.h>
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
  EXPECT_TRUE(holds_socket(::getpid(), inode));
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
  std::vector<pid_t> below;
  for (int i = 0; i < 100 && below.empty(); ++i) {
    below = descendants(child);
    if (below.empty()) ::usleep(10'000);
  }
  ASSERT_EQ(below.size(), 1u);
  EXPECT_TRUE(holds_socket(below[0], inode));  // inherited across fork (CLOEXEC only matters at exec)
  EXPECT_FALSE(holds_socket(below[0], inode + 1000000));
  ::close(go[1]);  // both exit
  int st = 0;
  ::waitpid(child, &st, 0);
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
