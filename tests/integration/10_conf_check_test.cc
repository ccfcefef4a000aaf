// corral-supervisor --check: a valid config passes; invalid ones fail with
// "file:line:col: key: message" naming the offending line; nothing starts on a bad config.
#include <gtest/gtest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

class ConfCheckTest : public IntegrationTest {
 protected:
  ProcessResult check(const std::string& toml) {
    std::string path = rt_.write_file("check.toml", toml);
    return run_process({bin_path("corral-supervisor"), "--check", "-c", path}, 10s);
  }
  // The 1-based line of the first line of `toml` containing `needle`.
  static int line_of(const std::string& toml, const std::string& needle) {
    size_t at = toml.find(needle);
    if (at == std::string::npos) return -1;
    return 1 + static_cast<int>(std::count(toml.begin(), toml.begin() + static_cast<long>(at), '\n'));
  }
  // Expects a "path:LINE:COL: ..." diagnostic on stderr naming `line` and containing `words`.
  void expect_diagnostic(const ProcessResult& r, int line, const std::string& words) {
    EXPECT_NE(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
    std::regex re(std::regex_replace(rt_.file("check.toml"), std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") + ":" +
                  std::to_string(line) + R"(:\d+: .*)");
    bool found = false;
    std::istringstream in(r.err);
    std::string l;
    while (std::getline(in, l))
      if (std::regex_match(l, re) && l.find(words) != std::string::npos) found = true;
    EXPECT_TRUE(found) << "no diagnostic for line " << line << " mentioning '" << words << "' in:\n" << r.err;
  }
};

TEST_F(ConfCheckTest, ValidConfigPasses) {
  config_.app("demo").workers(2).concurrency(4).timeout("5s");
  ProcessResult r = check(config_.render());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ConfCheckTest, UnknownKeyNamesLineAndSuggestsFix) {
  config_.app("demo").set("wokers", "2");
  std::string toml = config_.render();
  ProcessResult r = check(toml);
  expect_diagnostic(r, line_of(toml, "wokers"), "wokers");
  EXPECT_NE(r.err.find("workers"), std::string::npos) << "no 'did you mean workers' hint: " << r.err;
}

TEST_F(ConfCheckTest, KeyInTheWrongTableSaysWhereItBelongs) {
  config_.app("demo").set("max_body_size", quote("1MiB"));
  config_.proxy("workers", "2");
  std::string toml = config_.render();
  ProcessResult r = check(toml);
  expect_diagnostic(r, line_of(toml, "max_body_size"),
                    "app.demo: unknown key 'max_body_size' in [app.demo]; it belongs in [proxy]");
  expect_diagnostic(r, line_of(toml, "workers = 2"), "proxy: unknown key 'workers' in [proxy]; it belongs in [app.NAME]");
}

TEST_F(ConfCheckTest, WrongTypeNamesLine) {
  config_.app("demo").set("concurrency", quote("lots"));
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "concurrency"), "concurrency");
}

TEST_F(ConfCheckTest, BadDurationNamesLine) {
  config_.app("demo").timeout("ten seconds");
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "timeout = \"ten"), "timeout");
}

TEST_F(ConfCheckTest, RouteToUnknownAppNamesLine) {
  config_.app("demo");
  config_.route("nosuchapp", "/x");
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "\"nosuchapp\""), "nosuchapp");
}

TEST_F(ConfCheckTest, TomlSyntaxErrorNamesLine) {
  config_.app("demo");
  std::string toml = config_.render() + "\n[proxy\nmax_body_size = 1\n";
  ProcessResult r = check(toml);
  EXPECT_NE(r.exit_code, 0);
  expect_diagnostic(r, line_of(toml, "[proxy\n"), "");
}

TEST_F(ConfCheckTest, UnclosedArrayNamesTheLineWhereItOpens) {
  config_.app("demo");
  // toml++ only sees the end of the file; the diagnostic points at the '[' and names the key.
  std::string toml = config_.render() + "\n[app.extra]\ncommand = [\"/bin/true\",\n\n# more\n";
  ProcessResult r = check(toml);
  expect_diagnostic(r, line_of(toml, "[\"/bin/true\""), "app.extra.command: syntax error: this array is never closed");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// Every path key follows one rule: relative to the config file's folder, not to the
// directory the supervisor was started from (the test's own, somewhere in the build tree).
TEST_F(ConfCheckTest, RelativePathsAreRelativeToTheConfigFolder) {
  config_.supervisor("runtime_dir", quote("r"));
  config_.proxy("access_log", quote("logs/access.log"));
  ASSERT_EQ(::mkdir(rt_.file("logs").c_str(), 0755), 0);
  ASSERT_NO_FATAL_FAILURE(start());  // finds control.sock under rt_.path() + "/r"
  HttpResponse r = http_get(port(), "/?relative-paths-probe");
  EXPECT_EQ(r.status, 200) << r.body;
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    std::ifstream in(rt_.file("logs/access.log"));
    std::stringstream text;
    text << in.rdbuf();
    logged = text.str().find("/?relative-paths-probe") != std::string::npos;
    if (!logged) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(logged) << "no access log line in " << rt_.file("logs/access.log");
}

// health_path defaults to where the app is mounted: its worker is probed under /g/, not at /.
TEST_F(ConfCheckTest, ReadinessProbeAsksWhereTheAppIsMounted) {
  config_.app("demo");
  config_.route("demo", "/g/");
  ASSERT_NO_FATAL_FAILURE(start());
  // Ready means probed, and nothing else has sent the worker a request yet.
  EXPECT_FALSE(app_lines_with("GET /g/").empty()) << "the probe did not ask /g/";
  for (auto& l : log_lines_with("testapp pid=")) EXPECT_FALSE(l.ends_with(" GET /")) << "probed at /: " << l;
}

// A worker's program must exist: at run time a missing one means back-off forever and 503s.
TEST_F(ConfCheckTest, MissingCommandIsAnError) {
  config_.app("demo").command = {"/usr/bin/does-not-exist", "--port", "{socket}"};
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "does-not-exist"),
                    "app.demo.command: /usr/bin/does-not-exist does not exist");
  // corralctl check says the same.
  ProcessResult r = run_process({bin_path("corralctl"), "check", rt_.file("check.toml")}, 10s);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("app.demo.command: /usr/bin/does-not-exist does not exist"), std::string::npos) << r.err;
}

TEST_F(ConfCheckTest, CommandWithoutSlashIsLookedUpInTheWorkersPath) {
  config_.app("demo").command = {"corral-no-such-program"};
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "corral-no-such-program"),
                    "app.demo.command: 'corral-no-such-program' is not found in PATH (/usr/local/bin:/usr/bin:/bin)");
  // The worker's PATH is the app's env PATH when it sets one, not the supervisor's.
  ASSERT_EQ(::mkdir(rt_.file("bin").c_str(), 0755), 0);
  rt_.write_file("bin/corral-no-such-program", "#!/bin/sh\nexit 0\n");
  ASSERT_EQ(::chmod(rt_.file("bin/corral-no-such-program").c_str(), 0755), 0);
  config_.app("demo").env["PATH"] = rt_.file("bin");
  ProcessResult r = check(config_.render());
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ConfCheckTest, ProgramThatCannotRunIsAnError) {
  rt_.write_file("plain.sh", "#!/bin/sh\n");  // written 0644
  config_.app("demo").command = {"./plain.sh"};
  config_.app("demo").set("cwd", quote("no-such-folder"));
  std::string toml = config_.render();
  ProcessResult r = check(toml);
  expect_diagnostic(r, line_of(toml, "./plain.sh"), "app.demo.command: " + rt_.file("plain.sh") + " is not executable");
  expect_diagnostic(r, line_of(toml, "no-such-folder"), "app.demo.cwd: " + rt_.file("no-such-folder") + " does not exist");
}

TEST_F(ConfCheckTest, CgiRootMustBeAFolder) {
  AppSpec& a = config_.app("scripts");
  a.kind = "cgi";
  a.command.clear();
  a.set("root", quote("cgi-bin"));
  std::string toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "cgi-bin"), "app.scripts.root: " + rt_.file("cgi-bin") + " does not exist");
  ASSERT_EQ(::mkdir(rt_.file("cgi-bin").c_str(), 0755), 0);
  ProcessResult r = check(toml);
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Run as root, workers of an app with `user` are that user: the check asks as that user.
TEST_F(ConfCheckTest, ProgramIsCheckedAsTheAppsUser) {
  if (::geteuid() != 0 || !::getpwnam("nobody")) GTEST_SKIP() << "needs root and a user 'nobody'";
  ASSERT_EQ(::chmod(rt_.path().c_str(), 0711), 0);  // nobody may enter it (cwd), not list it
  ASSERT_EQ(::mkdir(rt_.file("private").c_str(), 0700), 0);
  rt_.write_file("private/server", "#!/bin/sh\n");
  ASSERT_EQ(::chmod(rt_.file("private/server").c_str(), 0755), 0);
  config_.app("demo").command = {rt_.file("private/server")};
  std::string toml = config_.render();
  ProcessResult ok = check(toml);
  EXPECT_EQ(ok.exit_code, 0) << "root can run it: " << ok.err;
  config_.app("demo").set("user", quote("nobody"));
  toml = config_.render();
  ProcessResult r = check(toml);
  expect_diagnostic(r, line_of(toml, "private/server"),
                    "app.demo.command: " + rt_.file("private/server") + " cannot be reached by user 'nobody'");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  config_.app("demo").set("user", quote("corral-no-such-user"));
  toml = config_.render();
  expect_diagnostic(check(toml), line_of(toml, "corral-no-such-user"), "app.demo.user: unknown user 'corral-no-such-user'");
}

TEST_F(ConfCheckTest, SupervisorRefusesToStartWithAMissingCommand) {
  config_.app("demo").command = {"/usr/bin/does-not-exist"};
  std::string path = rt_.write_file("bad.toml", config_.render());
  ProcessResult r = run_process({bin_path("corral-supervisor"), "-c", path}, 10s);
  EXPECT_FALSE(r.timed_out) << "the supervisor kept running (and retrying) with a missing program";
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("app.demo.command: /usr/bin/does-not-exist does not exist"), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_processes(0, rt_.path(), {}, 0).empty()) << "something was started";
}

// corralctl -c FILE reads only runtime_dir (tolerantly): a running supervisor whose file was
// since broken can still be asked for its status, and a reload reports why it was refused.
TEST_F(ConfCheckTest, CorralctlWorksWithABrokenConfigFile) {
  config_.supervisor("runtime_dir", quote("r"));  // relative: found the way the loader finds it
  ASSERT_NO_FATAL_FAILURE(start());
  std::string path = rt_.file("corral.toml");
  std::string broken = config_.render() + "\n[app.extra]\ncommand = [\"/bin/true\",\n";
  rt_.write_file("corral.toml", broken);
  ProcessResult st = run_process({bin_path("corralctl"), "-c", path, "status", "--json"}, 10s);
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_NE(st.out.find("\"apps\""), std::string::npos) << st.out;
  EXPECT_EQ(st.err, "");
  ProcessResult rl = run_process({bin_path("corralctl"), "-c", path, "reload"}, 30s);
  EXPECT_EQ(rl.exit_code, 1) << rl.out << rl.err;
  EXPECT_NE(rl.err.find(path + ":" + std::to_string(line_of(broken, "[\"/bin/true\"")) + ":11: app.extra.command: syntax error"),
            std::string::npos)
      << rl.err;
  allowed_errors_.push_back("reload rejected");
  // Still serving the config it started with.
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

TEST_F(ConfCheckTest, SupervisorRefusesToStartOnBadConfig) {
  config_.app("demo").set("wokers", "2");
  std::string path = rt_.write_file("bad.toml", config_.render());
  // Not --check: the daemon itself must exit non-zero without starting anything.
  ProcessResult r = run_process({bin_path("corral-supervisor"), "-c", path}, 10s);
  EXPECT_FALSE(r.timed_out) << "the supervisor kept running on a bad config";
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("wokers"), std::string::npos) << r.err;
  EXPECT_TRUE(leftover_processes(0, rt_.path(), {}, 0).empty()) << "a worker was started";
}

}  // namespace
}  // namespace corral::itest
