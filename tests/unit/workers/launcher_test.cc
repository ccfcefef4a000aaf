// The launcher with real processes: fd map + LISTEN_*, {socket} substitution, clean
// environment, cwd, exec/chdir failure errno, process group, output capture, signal reset.
#include "workers/launcher.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace corral::workers {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Reads a nonblocking pipe until EOF (bounded by a 10 s deadline).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (int rounds = 0; rounds < 1000; ++rounds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) < 0) break;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int wait_exit(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

struct Ran {
  std::string out, err;
  int code = -1;
  pid_t pid = -1;
};

Ran run(const LaunchSpec& spec) {
  SystemLauncher launcher;
  auto child = launcher.spawn(spec);
  EXPECT_TRUE(child.has_value()) << (child ? "" : child.error().message());
  Ran r;
  if (!child) return r;
  r.pid = child->pid;
  r.out = read_all(child->stdout_fd.get());
  r.err = read_all(child->stderr_fd.get());
  r.code = wait_exit(child->pid);
  return r;
}

LaunchSpec shell(const std::string& script) {
  LaunchSpec s;
  s.argv = {"/bin/sh", "-c", script};
  return s;
}

TEST(Launcher, PassesListeningSocketAsFd3WithListenFdsAndPid) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  LaunchSpec s = shell("echo $LISTEN_FDS $LISTEN_PID $$; readlink /proc/$$/fd/3; ls /proc/$$/fd");
  s.fds = {{sv[0], 3}};
  s.listen_fds = true;
  Ran r = run(s);
  ::close(sv[0]);
  ::close(sv[1]);
  EXPECT_EQ(r.code, 0) << r.err;
  const std::string pid = std::to_string(r.pid);
  EXPECT_THAT(r.out, HasSubstr("1 " + pid + " " + pid + "\n"));
  EXPECT_THAT(r.out, HasSubstr("socket:["));
  // The shell holds 0, 1, 2 and 3 only (ls lists the shell's table, not its own).
  EXPECT_THAT(r.out, HasSubstr("\n0\n1\n2\n3\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("\n4\n")));
}

TEST(Launcher, ClosesFdsThatAreNotMapped) {
  int leaked = ::dup(1);  // not CLOEXEC: only the launcher's closing keeps it out
  ASSERT_GT(leaked, 2);
  Ran r = run(shell("ls /proc/$$/fd"));
  ::close(leaked);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "0\n1\n2\n");
}

TEST(Launcher, MapsFdOntoZero) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  LaunchSpec s = shell("readlink /proc/$$/fd/0; echo ${LISTEN_FDS:-none}");
  s.fds = {{sv[1], 0}};
  Ran r = run(s);
  ::close(sv[0]);
  ::close(sv[1]);
  EXPECT_THAT(r.out, HasSubstr("socket:["));
  EXPECT_THAT(r.out, HasSubstr("none\n"));
}

TEST(Launcher, SubstitutesSocketPlaceholderInArgvAndEnv) {
  LaunchSpec s;
  s.argv = {"/bin/sh", "-c", "echo arg=$1; echo env=$SOCK", "sh", "--unix={socket}"};
  s.env = {{"SOCK", "unix:{socket}"}, {"OTHER", "x"}};
  EXPECT_TRUE(substitute_socket(s, "/run/t/demo.0.sock"));
  EXPECT_EQ(s.argv[4], "--unix=/run/t/demo.0.sock");
  Ran r = run(s);
  EXPECT_EQ(r.out, "arg=--unix=/run/t/demo.0.sock\nenv=unix:/run/t/demo.0.sock\n");

  LaunchSpec none = shell("true");
  none.env = {{"A", "b"}};
  EXPECT_FALSE(substitute_socket(none, "/x.sock"));
}

TEST(Launcher, CleanEnvironmentPlusAppEnv) {
  ::setenv("CORRAL_TEST_LEAK", "1", 1);
  LaunchSpec s;
  s.argv = {"env"};  // found through the clean PATH
  s.env = {{"APP_MODE", "production"}, {"GREETING", "a b=c"}};
  Ran r = run(s);
  ::unsetenv("CORRAL_TEST_LEAK");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("PATH=") + kChildPath + "\nAPP_MODE=production\nGREETING=a b=c\n");
}

TEST(Launcher, AppEnvOverridesPath) {
  LaunchSpec s = shell("echo $PATH");
  s.env = {{"PATH", "/opt/x/bin"}};
  EXPECT_EQ(run(s).out, "/opt/x/bin\n");
}

TEST(Launcher, InheritedEnvironmentDropsListenAndNotifyVariables) {
  ::setenv("CORRAL_TEST_KEEP", "yes", 1);
  ::setenv("NOTIFY_SOCKET", "/tmp/nope", 1);
  LaunchSpec s = shell("echo ${CORRAL_TEST_KEEP:-} ${NOTIFY_SOCKET:-unset}");
  s.inherit_environment = true;
  Ran r = run(s);
  ::unsetenv("CORRAL_TEST_KEEP");
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(r.out, "yes unset\n");
}

TEST(Launcher, RunsInCwd) {
  LaunchSpec s = shell("pwd");
  s.cwd = "/tmp";
  EXPECT_EQ(run(s).out, "/tmp\n");
}

TEST(Launcher, ReportsExecFailureWithErrno) {
  SystemLauncher launcher;
  LaunchSpec s;
  s.argv = {"/nonexistent/corral-app"};
  auto child = launcher.spawn(s);
  ASSERT_FALSE(child.has_value());
  EXPECT_EQ(child.error().sys_errno, ENOENT);
  EXPECT_THAT(child.error().context, HasSubstr("exec /nonexistent/corral-app"));

  s.argv = {"/etc/passwd"};  // exists, not executable
  child = launcher.spawn(s);
  ASSERT_FALSE(child.has_value());
  EXPECT_EQ(child.error().sys_errno, EACCES);

  s.argv = {"corral-no-such-program"};
  child = launcher.spawn(s);
  ASSERT_FALSE(child.has_value());
  EXPECT_EQ(child.error().sys_errno, ENOENT);
  // The failed child was reaped by the launcher.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Launcher, ReportsChdirFailure) {
  SystemLauncher launcher;
  LaunchSpec s = shell("true");
  s.cwd = "/nonexistent-dir";
  auto child = launcher.spawn(s);
  ASSERT_FALSE(child.has_value());
  EXPECT_EQ(child.error().sys_errno, ENOENT);
  EXPECT_THAT(child.error().context, HasSubstr("chdir /nonexistent-dir"));
}

TEST(Launcher, StartsANewProcessGroup) {
  SystemLauncher launcher;
  auto child = launcher.spawn(shell("exec sleep 30"));
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(::getpgid(child->pid), child->pid);
  EXPECT_NE(::getpgid(child->pid), ::getpgrp());
  ASSERT_EQ(::kill(-child->pid, SIGTERM), 0);  // the whole group
  EXPECT_EQ(wait_exit(child->pid), -SIGTERM);
}

TEST(Launcher, CapturesStdoutAndStderrSeparately) {
  Ran r = run(shell("echo out1; echo err1 >&2; printf partial; exit 3"));
  EXPECT_EQ(r.out, "out1\npartial");
  EXPECT_EQ(r.err, "err1\n");
  EXPECT_EQ(r.code, 3);
}

TEST(Launcher, ResetsSignalMaskAndDispositions) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  struct sigaction old_usr1 {};
  ::sigaction(SIGUSR1, &ign, &old_usr1);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  ::sigprocmask(SIG_BLOCK, &block, &old_mask);
  LaunchSpec s;
  s.argv = {"/bin/cat", "/proc/self/status"};
  Ran r = run(s);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  EXPECT_THAT(r.out, HasSubstr("SigBlk:\t0000000000000000\n"));
  // Signals 32 and 33 belong to glibc (thread cancellation, setxid) and cannot be reset through
  // sigaction(); some containers start everything with them ignored. Every other one must be
  // back to its default.
  auto at = r.out.find("SigIgn:\t");
  ASSERT_NE(at, std::string::npos) << r.out;
  unsigned long long ignored = std::stoull(r.out.substr(at + 8, 16), nullptr, 16);
  EXPECT_EQ(ignored & ~0x180000000ull, 0ull) << r.out.substr(at, 25);
}

}  // namespace
}  // namespace corral::workers

namespace corral::workers {
namespace {

TEST(Launcher, SetsRlimitsAndUmask) {
  LaunchSpec s = shell("ulimit -n; umask");
  s.rlimits = {RLimit{RLIMIT_NOFILE, 123}};
  s.umask = 027;
  EXPECT_EQ(run(s).out, "123\n0027\n");
}

TEST(Launcher, ReportsImpossibleRlimit) {
  rlimit cur{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &cur), 0);
  if (::geteuid() == 0 || cur.rlim_max == RLIM_INFINITY) GTEST_SKIP() << "root may raise any limit";
  SystemLauncher launcher;
  LaunchSpec s = shell("true");
  s.rlimits = {RLimit{RLIMIT_NOFILE, cur.rlim_max + 1}};
  auto child = launcher.spawn(s);
  ASSERT_FALSE(child.has_value());
  EXPECT_THAT(child.error().context, HasSubstr("setrlimit"));
}

TEST(Launcher, ChangesIdentityOnlyWhenAsked) {
  LaunchSpec s = shell("id -u");
  EXPECT_EQ(run(s).out, std::to_string(::geteuid()) + "\n");
  if (::geteuid() != 0) {
    // Unprivileged: asking for another user fails clearly instead of running as ourselves.
    SystemLauncher launcher;
    s.uid = 0;
    auto child = launcher.spawn(s);
    ASSERT_FALSE(child.has_value());
    EXPECT_THAT(child.error().context, HasSubstr("dropping privileges"));
  } else {
    s.uid = 65534;
    s.gid = 65534;
    EXPECT_EQ(run(s).out, "65534\n");
  }
}

}  // namespace
}  // namespace corral::workers
