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

control::SlotRequestInfo req(std::string id, std::string path, uint64_t ms, std::string state) {
  return control::SlotRequestInfo{std::move(id), "GET", std::move(path), ms, std::move(state)};
}

TEST(DescribeRequests, NamesWhatTheProxySaysTheWorkerWasServing) {
  using Answer = std::optional<std::vector<control::SlotRequestInfo>>;
  EXPECT_EQ(describe_requests(Answer{std::vector<control::SlotRequestInfo>{}}, 3, false), ", serving no request");
  EXPECT_EQ(describe_requests(Answer{{req("r1", "/a", 1250, "in_flight"), req("r2", "/b", 40, "failed")}}, 0, false),
            ", serving 2 request(s): rid=r1 GET /a 1.250s; rid=r2 GET /b 0.040s (failed)");
  // The proxy's answer is what counts, not its (stale) last count.
  EXPECT_EQ(describe_requests(Answer{std::vector<control::SlotRequestInfo>{}}, 1, true), ", serving no request");
}

TEST(DescribeRequests, AWorkerStoppedOnPurposeIsNeverSaidToServe) {
  using Answer = std::optional<std::vector<control::SlotRequestInfo>>;
  // Requests cut by a deliberate stop (graceful_timeout passed while draining, a hung
  // worker killed) are named as such.
  EXPECT_EQ(describe_requests(Answer{{req("r1", "/hang", 30000, "timed_out")}}, 0, true),
            ", stopped with 1 request(s) unfinished: rid=r1 GET /hang 30.000s (timed_out)");
  // No answer (a clean stop: the proxy drained and exited first): its last count, sent up
  // to a second before, says nothing about now.
  EXPECT_EQ(describe_requests(std::nullopt, 1, true), "");
  EXPECT_EQ(describe_requests(std::nullopt, 0, true), "");
}

TEST(DescribeRequests, WithoutAnAnswerAnUnexpectedDeathFallsBackToTheCount) {
  EXPECT_EQ(describe_requests(std::nullopt, 2, false), ", 2 request(s) in flight (answered 502/504 by the proxy)");
  EXPECT_EQ(describe_requests(std::nullopt, 0, false), "");
}

}  // namespace
}  // namespace corral::supervisor
