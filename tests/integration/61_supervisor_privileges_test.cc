// Started as root, corral runs the proxy as [supervisor] user and each app as its user/group,
// with the app's rlimits and umask; it still serves. (Skipped when not run as root.)
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

std::string proc_file(pid_t pid, const char* name) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The real uid from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
long status_field(const std::string& status, const std::string& key) {
  auto at = status.find(key + ":\t");
  if (at == std::string::npos) return -1;
  return std::strtol(status.c_str() + at + key.size() + 2, nullptr, key == "Umask" ? 8 : 10);
}

class PrivilegesTest : public IntegrationTest {
 protected:
  // Uploads 100 KiB (above the default client_body_buffer_size: a temp file in temp_dir).
  HttpResponse upload() {
    std::string file = rt_.write_file("upload.bin", std::string(100 * 1024, 'x'));
    return curl({"--data-binary", "@" + file, "-H", "Expect:", "http://127.0.0.1:" + std::to_string(port()) + "/sha256"});
  }
};

std::string mode_and_owner(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path + ": missing";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return std::string(mode) + " uid " + std::to_string(st.st_uid);
}

TEST_F(PrivilegesTest, ProxyAndAppRunAsTheirUsersWithRlimitsAndUmask) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  // The unprivileged proxy and app must reach the runtime dir and their cwd inside it.
  ASSERT_EQ(chmod(rt_.path().c_str(), 0755), 0);
  config_.supervisor("user", quote("nobody"));
  config_.app("demo")
      .workers(1)
      .set("user", quote("nobody"))
      .set("rlimits", R"({ nofile = "1234" })")
      .set("umask", quote("0027"));
  ASSERT_NO_FATAL_FAILURE(start());

  HttpResponse r = http_get(port(), "/pid");
  ASSERT_EQ(r.status, 200) << r.error;
  pid_t worker = static_cast<pid_t>(std::atoi(r.body.c_str()));
  auto st = corral_->status();
  pid_t proxy = st["proxy"]["pid"].get<pid_t>();

  std::string ps = proc_file(proxy, "status");
  EXPECT_EQ(status_field(ps, "Uid"), static_cast<long>(nobody->pw_uid)) << ps.substr(0, 400);
  std::string ws = proc_file(worker, "status");
  EXPECT_EQ(status_field(ws, "Uid"), static_cast<long>(nobody->pw_uid)) << ws.substr(0, 400);
  EXPECT_EQ(status_field(ws, "Umask"), 027L);
  std::string limits = proc_file(worker, "limits");
  EXPECT_NE(limits.find("Max open files            1234                 1234"), std::string::npos) << limits;
  // The supervisor itself stays root (it binds, spawns and signals).
  EXPECT_EQ(status_field(proc_file(st["pid"].get<pid_t>(), "status"), "Uid"), 0L);
}

// The access log in a folder only root may enter (the packaged service's /var/log/corral is
// root's, 0750): the supervisor opens the file and hands it over, so the unprivileged proxy
// writes to it, and after a rotation (SIGUSR1) to the new file.
TEST_F(PrivilegesTest, UnprivilegedProxyWritesTheAccessLogInARootOnlyFolder) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  ASSERT_EQ(chmod(rt_.path().c_str(), 0755), 0);
  const std::string dir = rt_.path() + "/log";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string log = dir + "/access.log";
  config_.supervisor("user", quote("nobody"));
  config_.proxy("access_log", quote(log));
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  auto logged = [&](const std::string& path, const std::string& needle) {
    for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;
         std::this_thread::sleep_for(20ms))
      if (read_file(path).find(needle) != std::string::npos) return true;
    return false;
  };
  ASSERT_EQ(http_get(port(), "/pid?first").status, 200);
  EXPECT_TRUE(logged(log, "/pid?first")) << corral_->log();
  EXPECT_EQ(mode_and_owner(log), "0640 uid 0");
  EXPECT_TRUE(log_lines_with("access log").empty()) << "no error about the access log: " << corral_->log();
  ASSERT_EQ(::rename(log.c_str(), (log + ".1").c_str()), 0);
  corral_->signal(SIGUSR1);
  for (auto until = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < until && log_lines_with("reopened the access log").empty();)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(http_get(port(), "/pid?second").status, 200);
  EXPECT_TRUE(logged(log, "/pid?second")) << corral_->log();
}

// temp_dir's missing parents are made 0755 (the proxy's user passes through them) and the
// folder itself 0700, owned by that user; an existing one owned by someone else is given to it.
TEST_F(PrivilegesTest, TempDirBelongsToTheProxysUserAndItsParentsLetItIn) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  passwd* nobody = getpwnam("nobody");
  if (!nobody) GTEST_SKIP() << "no user 'nobody' here";
  ASSERT_EQ(chmod(rt_.path().c_str(), 0755), 0);
  const std::string nobody_0700 = "0700 uid " + std::to_string(nobody->pw_uid);
  const std::string fresh = rt_.path() + "/state/corral/body";
  config_.supervisor("user", quote("nobody"));
  config_.proxy("temp_dir", quote(fresh));
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(mode_and_owner(rt_.path() + "/state"), "0755 uid 0");
  EXPECT_EQ(mode_and_owner(rt_.path() + "/state/corral"), "0755 uid 0");
  EXPECT_EQ(mode_and_owner(fresh), nobody_0700);
  HttpResponse r = upload();
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find(" 102400"), std::string::npos) << r.body;

  // A folder made earlier by another user (open to all, even): reloading to it gives it over.
  const std::string taken = rt_.path() + "/state/taken";
  ASSERT_EQ(::mkdir(taken.c_str(), 0755), 0);
  ASSERT_EQ(::chown(taken.c_str(), nobody->pw_uid + 1, nobody->pw_gid), 0);
  config_.proxy("temp_dir", quote(taken));
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_EQ(mode_and_owner(taken), nobody_0700);
  r = upload();
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find(" 102400"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace corral::itest
