// Started as root, corral runs the proxy as [supervisor] user and each app as its user/group,
// with the app's rlimits and umask; it still serves. (Skipped when not run as root.)
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/integration/harness/integration_test.h"

namespace corral::itest {
namespace {

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

class PrivilegesTest : public IntegrationTest {};

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

}  // namespace
}  // namespace corral::itest
