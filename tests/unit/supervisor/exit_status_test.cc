#include "supervisor/exit_status.h"

#include <csignal>

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
  EXPECT_EQ(describe_exit(signaled(SIGKILL), false), "killed by signal 9 (SIGKILL), likely OOM kill");
  EXPECT_EQ(describe_exit(signaled(SIGKILL), true), "killed by signal 9 (SIGKILL)");
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
