#include "supervisor/exit_status.h"

#include <unistd.h>

#include <csignal>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace corral::supervisor {
namespace {

// Linux wait status encodings.
int exited(int code) { return code << 8; }
int signaled(int sig, bool core = false) { return sig | (core ? 0x80 : 0); }

TEST(ExitStatus, Describes) {
  EXPECT_EQ(describe_exit(exited(0), false), "exit code 0");
  EXPECT_EQ(describe_exit(exited(3), false), "exit code 3");
  EXPECT_EQ(describe_exit(signaled(SIGTERM), false), "killed by signal 15 (SIGTERM)");
  EXPECT_EQ(describe_exit(signaled(SIGSEGV, true), false), "killed by signal 11 (SIGSEGV) (core dumped)");
  // A SIGKILL is called an OOM kill only with the kernel's evidence.
  EXPECT_EQ(describe_exit(signaled(SIGKILL), false), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(describe_exit(signaled(SIGKILL), true),
            "killed by signal 9 (SIGKILL), OOM kill (the cgroup's oom_kill counter rose)");
}

TEST(OomEvidence, OnlyWhenTheCounterRises) {
  char dir[] = "/tmp/crl-oom-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/memory.events";
  auto write = [&](int oom_kill) {
    std::ofstream(path) << "low 0\nhigh 0\nmax 3\noom 2\noom_kill " << oom_kill << "\noom_group_kill 0\n";
  };
  write(4);
  OomEvidence e(path);
  EXPECT_FALSE(e.consume());  // kills before we started are not ours
  write(5);
  EXPECT_TRUE(e.consume());
  EXPECT_FALSE(e.consume());  // one rise is evidence for one death
  ::unlink(path.c_str());
  EXPECT_FALSE(e.consume());  // no file, no evidence
  ::rmdir(dir);
  OomEvidence none("");
  EXPECT_FALSE(none.consume());
}

TEST(ExitStatus, FormatsUptime) {
  using std::chrono::milliseconds;
  EXPECT_EQ(format_uptime(milliseconds(420)), "0.4s");
  EXPECT_EQ(format_uptime(milliseconds(12'050)), "12.0s");
  EXPECT_EQ(format_uptime(milliseconds(185'000)), "3m05s");
  EXPECT_EQ(format_uptime(milliseconds(7'500'000)), "2h05m");
}

}  // namespace
}  // namespace corral::supervisor
