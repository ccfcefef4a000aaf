// kind = "cgi" end to end: corral-supervisor starts corral-worker, the proxy forwards, real
// CGI programs run (POSIX shell and Perl scripts from tests/apps/cgi, the libfcgi C program,
// php-cgi). Covers meta-variables (query string, PATH_INFO, REMOTE_ADDR/PORT, httpoxy), a
// 5 MiB body echoed byte-exact, streaming, Status/Location, 502 on a crash before headers,
// 504 with nothing left behind on a hang, and root traversal → 404.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kCgiDir = std::string(CORRAL_SOURCE_DIR) + "/tests/apps/cgi";

class ProxyCgiTest : public IntegrationTest {
 protected:
  // [app.cgi] kind = "cgi", root = tests/apps/cgi, routed at /cgi-bin.
  AppSpec& root_app() {
    AppSpec& a = config_.app("cgi");
    a.kind = "cgi";
    a.command.clear();
    a.set("root", quote(kCgiDir)).workers(1).concurrency(4);
    a.env["APP_SETTING"] = "from-config";
    config_.route("cgi", "/cgi-bin");
    return a;
  }
  // [app.php] kind = "cgi": php-cgi run once per request on tests/apps/php/<script>, at /php.
  AppSpec& php_cgi_program(const std::string& script) {
    AppSpec& a = config_.app("php");
    a.kind = "cgi";
    a.command = {"/usr/bin/php-cgi"};
    a.set("script_filename", quote(std::string(CORRAL_SOURCE_DIR) + "/tests/apps/php/" + script));
    a.env["REDIRECT_STATUS"] = "200";  // php-cgi's cgi.force_redirect guard
    config_.route("php", "/php");
    return a;
  }
  static std::string line_of(const std::string& body, const std::string& name) {
    size_t p = body.find("\n" + name + "=");
    if (p == std::string::npos) return "<unset>";
    p += name.size() + 2;
    return body.substr(p, body.find('\n', p) - p);
  }
};

TEST_F(ProxyCgiTest, ShellScriptSeesTheRequestAsMetaVariables) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  // The client's own port from a known range, so REMOTE_PORT can be checked for what it is.
  HttpResponse r = http_get(port(), "/cgi-bin/env.sh/extra/p%20i?a=1&b=two",
                            {"-H", "Proxy: http://evil.example:3128", "-H", "X-Custom: yes", "-H", "X_Under: no",
                             "--local-port", "47100-47299"});
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  std::string env = "\n" + r.body;
  EXPECT_EQ(line_of(env, "GATEWAY_INTERFACE"), "CGI/1.1");
  EXPECT_EQ(line_of(env, "REQUEST_METHOD"), "GET");
  EXPECT_EQ(line_of(env, "QUERY_STRING"), "a=1&b=two");
  EXPECT_EQ(line_of(env, "SCRIPT_NAME"), "/cgi-bin/env.sh");
  EXPECT_EQ(line_of(env, "PATH_INFO"), "/extra/p i");
  EXPECT_EQ(line_of(env, "REQUEST_URI"), "/cgi-bin/env.sh/extra/p%20i?a=1&b=two");
  EXPECT_EQ(line_of(env, "SERVER_PORT"), std::to_string(port()));
  EXPECT_EQ(line_of(env, "REMOTE_ADDR"), "127.0.0.1");
  int remote_port = std::atoi(line_of(env, "REMOTE_PORT").c_str());
  EXPECT_GE(remote_port, 47100) << r.body;
  EXPECT_LE(remote_port, 47299) << r.body;
  EXPECT_EQ(line_of(env, "HTTP_X_CUSTOM"), "yes");
  EXPECT_EQ(line_of(env, "APP_SETTING"), "from-config");
  EXPECT_EQ(line_of(env, "HTTP_PROXY"), "<unset>") << "httpoxy: the Proxy header reached the program";
  EXPECT_EQ(line_of(env, "HTTP_X_UNDER"), "<unset>");
  EXPECT_EQ(line_of(env, "LISTEN_FDS"), "<unset>");
  EXPECT_EQ(line_of(env, "CORRAL_ITEST_RUN"), rt_.path());  // the app's env, nothing else of ours
}

TEST_F(ProxyCgiTest, OverHttp2TheProgramStillSeesPortsAndScriptName) {
  // The HTTP/2 frontend must hand the worker the same connection facts as HTTP/1.1 does.
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/cgi-bin/env.sh/x?y=1", {"--http2-prior-knowledge", "--local-port", "47300-47499"});
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  std::string env = "\n" + r.body;
  EXPECT_EQ(line_of(env, "SCRIPT_NAME"), "/cgi-bin/env.sh");
  EXPECT_EQ(line_of(env, "PATH_INFO"), "/x");
  EXPECT_EQ(line_of(env, "SERVER_PORT"), std::to_string(port()));
  int remote_port = std::atoi(line_of(env, "REMOTE_PORT").c_str());
  EXPECT_GE(remote_port, 47300) << r.body;
  EXPECT_LE(remote_port, 47499) << r.body;
}

TEST_F(ProxyCgiTest, PerlEchoesFiveMebibytesByteExact) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  std::string body(5 << 20, '\0');
  std::mt19937 rng(42);
  for (auto& c : body) c = static_cast<char>(rng());
  std::string file = rt_.path() + "/body.bin";
  std::ofstream(file, std::ios::binary).write(body.data(), static_cast<std::streamsize>(body.size()));
  HttpResponse r = curl({"-X", "POST", "--data-binary", "@" + file, "-H", "Content-Type: application/x-test",
                         "http://127.0.0.1:" + std::to_string(port()) + "/cgi-bin/echo.pl"});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("X-Body-Length"), std::to_string(body.size()));
  EXPECT_EQ(r.header("Content-Type"), "application/x-test");
  EXPECT_TRUE(r.body == body) << "echoed " << r.body.size() << " bytes, not the same 5 MiB";
}

TEST_F(ProxyCgiTest, SlowOutputIsStreamed) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  auto t0 = Clock::now();
  ASSERT_TRUE(c.send("GET /cgi-bin/slow.sh?1 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first;
  while (first.find("first") == std::string::npos && Clock::now() - t0 < 3s) first += c.read_some(100ms);
  auto t_first = Clock::now() - t0;
  EXPECT_NE(first.find("first"), std::string::npos) << first;
  EXPECT_EQ(first.find("second"), std::string::npos) << "the whole response arrived at once";
  EXPECT_LT(t_first, 800ms) << "the first bytes waited for the program to end";
  auto rs = c.read_responses(1, 5s);
  EXPECT_NE(c.received().find("second"), std::string::npos);
}

TEST_F(ProxyCgiTest, StatusAndLocation) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/cgi-bin/status.sh?notfound");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "missing\n");
  r = http_get(port(), "/cgi-bin/status.sh?redirect");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("Location"), "https://example.com/elsewhere");
  EXPECT_EQ(header_count(r.headers, "Location"), 1);
  r = http_get(port(), "/cgi-bin/status.sh?created");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("Location"), "/items/7");
  EXPECT_EQ(header_count(r.headers, "Location"), 1);
  r = http_get(port(), "/cgi-bin/status.sh?local");  // served internally: the client sees the target
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("PATH_INFO=/after-redirect"), std::string::npos) << r.body;
  r = http_get(port(), "/cgi-bin/status.sh?bad");
  EXPECT_EQ(r.status, 502);
}

TEST_F(ProxyCgiTest, CrashBeforeHeadersIs502) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/cgi-bin/crash.sh");
  EXPECT_EQ(r.status, 502);
  // Its stderr went to the log with the app name (it may reach the log just after the
  // answer reaches the client); the worker survived.
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    logged = !log_lines_with("crash.sh: about to die").empty();
    if (!logged) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(logged);
  EXPECT_EQ(http_get(port(), "/cgi-bin/status.sh").status, 200);
}

TEST_F(ProxyCgiTest, HangIs504AndLeavesNothingBehind) {
  std::string pid_file = rt_.path() + "/hang.pid";
  root_app().timeout("1s").env["HANG_PID_FILE"] = pid_file;
  ASSERT_NO_FATAL_FAILURE(start());
  auto t0 = Clock::now();
  HttpResponse r = http_get(port(), "/cgi-bin/hang.sh");
  EXPECT_EQ(r.status, 504) << r.error;
  EXPECT_LT(Clock::now() - t0, 3s);
  std::ifstream in(pid_file);
  pid_t child = 0;
  in >> child;
  ASSERT_GT(child, 0) << "hang.sh did not record its child";
  bool gone = false;
  // Killed: no such process, or a zombie its new parent (init) has not reaped yet.
  auto dead = [child] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  for (int i = 0; i < 50 && !gone; ++i, std::this_thread::sleep_for(20ms)) gone = dead();
  EXPECT_TRUE(gone) << "the hung program's child " << child << " is still alive";
  // The worker was not replaced: the program was killed, not the worker.
  EXPECT_EQ(http_get(port(), "/cgi-bin/status.sh").status, 200);
}

TEST_F(ProxyCgiTest, TraversalIs404AndRunsNothing) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* path : {"/cgi-bin/../../etc/passwd", "/cgi-bin/%2e%2e/%2e%2e/etc/passwd",
                           "/cgi-bin/..%2f..%2fetc%2fpasswd", "/cgi-bin/%2E%2E/hang.sh", "/cgi-bin/noexec.sh",
                           "/cgi-bin/sub/../env.sh"}) {
    HttpResponse r = http_get(port(), path, {"--path-as-is"});
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
  }
  EXPECT_TRUE(log_lines_with("hang.sh: hanging").empty()) << "a traversal ran a script";
}

TEST_F(ProxyCgiTest, A404SaysWhyInTheLogOncePerMinute) {
  root_app();
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(http_get(port(), "/cgi-bin/noexec.sh").status, 404);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(http_get(port(), "/cgi-bin/missing.sh").status, 404);
  // A request to another path is logged even though noexec.sh's line is held back.
  EXPECT_EQ(http_get(port(), "/cgi-bin/sub").status, 404);
  // The worker's lines reach the log through the supervisor, maybe just after the responses.
  for (int i = 0; i < 40 && log_lines_with(kCgiDir + "/sub is a folder").empty(); ++i) std::this_thread::sleep_for(50ms);
  auto noexec = log_lines_with("noexec.sh is not executable (mode 0644)");
  ASSERT_EQ(noexec.size(), 1u) << "two requests, one warning";
  // corral-worker's line, relayed at its own level with the supervisor's tag only (no
  // second timestamp and program[pid]).
  EXPECT_NE(noexec[0].find(" warn corral-supervisor["), std::string::npos) << noexec[0];
  EXPECT_NE(noexec[0].find("[app=cgi worker=0] "), std::string::npos) << noexec[0];
  EXPECT_EQ(noexec[0].find("corral-worker["), std::string::npos) << noexec[0];
  auto missing = log_lines_with("no script at " + kCgiDir + "/missing.sh");
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_NE(missing[0].find(" info corral-supervisor["), std::string::npos)
      << "a path with nothing there is the client's doing: " << missing[0];
  EXPECT_EQ(log_lines_with(kCgiDir + "/sub is a folder").size(), 1u);
}

TEST_F(ProxyCgiTest, AFolderPathRunsItsIndex) {
  root_app().set("index", quote("env.sh"));
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/cgi-bin/?a=1");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  std::string env = "\n" + r.body;
  EXPECT_EQ(line_of(env, "SCRIPT_NAME"), "/cgi-bin/env.sh");
  EXPECT_EQ(line_of(env, "QUERY_STRING"), "a=1");
  EXPECT_EQ(http_get(port(), "/cgi-bin/sub/").status, 404);  // sub/ has no env.sh
}

TEST_F(ProxyCgiTest, CompiledProgramAsOneCommand) {
  AppSpec& a = config_.app("c");
  a.kind = "cgi";
  a.command = {bin_path("corral-fcgi-hello")};
  a.concurrency(2);
  config_.route("c", "/hello");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/hello");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "hello from fcgi\n");
  r = http_get(port(), "/hello/x?env");
  EXPECT_NE(r.body.find("SCRIPT_NAME=/hello\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("PATH_INFO=/x\n"), std::string::npos) << r.body;
}

TEST_F(ProxyCgiTest, PhpCgiAsACgiProgram) {
  if (::access("/usr/bin/php-cgi", X_OK) != 0) GTEST_SKIP() << "php-cgi is not installed";
  php_cgi_program("index.php");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/php/some/path?name=corral", {"-H", "Proxy: http://evil:1"});
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("hello corral"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("path_info=/some/path"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("http_proxy=<unset>"), std::string::npos) << r.body;
}

TEST_F(ProxyCgiTest, PhpCgiRedirectsWithOneLocation) {
  // header('Location: ...') in a script run by php-cgi as a CGI program: php-cgi adds
  // "Status: 302 Found" itself, so the client sees a 302 with the Location once.
  if (::access("/usr/bin/php-cgi", X_OK) != 0) GTEST_SKIP() << "php-cgi is not installed";
  php_cgi_program("status.php");
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* q : {"local", "redirect"}) {
    HttpResponse r = http_get(port(), std::string("/php?") + q);
    EXPECT_EQ(r.status, 302) << q << ": " << r.error << r.body;
    EXPECT_EQ(header_count(r.headers, "Location"), 1) << q;
  }
  EXPECT_EQ(http_get(port(), "/php?local").header("Location"), "/php/index.php");
}

}  // namespace
}  // namespace corral::itest
