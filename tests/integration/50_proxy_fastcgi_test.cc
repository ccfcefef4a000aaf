// kind = "fastcgi" end to end: the supervisor starts FastCGI responders with the slot socket
// as fd 0 and the proxy is their FastCGI client. Two real applications: the libfcgi C program
// (tests/apps/fcgi/hello.c) and php-cgi as a pool (PHP_FCGI_CHILDREN=0: one slot = one
// process) serving tests/apps/php. Covers meta-variables (query string, PATH_INFO, httpoxy),
// a 5 MiB body echoed byte-exact, streaming, Status/Location, 502 on a crash before headers,
// 504 on a hang with the hung process gone, traversal → 404, and connection reuse.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kPhpDir = std::string(CORRAL_SOURCE_DIR) + "/tests/apps/php";

bool have_php() { return ::access("/usr/bin/php-cgi", X_OK) == 0; }

bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

class ProxyFastcgiTest : public IntegrationTest {
 protected:
  // [app.c]: the libfcgi program, routed at /hello.
  AppSpec& c_app() {
    AppSpec& a = config_.app("c");
    a.kind = "fastcgi";
    a.command = {bin_path("corral-fcgi-hello")};
    a.workers(2);
    config_.route("c", "/hello");
    return a;
  }
  // [app.php]: php-cgi serving the scripts of tests/apps/php, routed at /php.
  AppSpec& php_app() {
    AppSpec& a = config_.app("php");
    a.kind = "fastcgi";
    a.command = {"/usr/bin/php-cgi"};
    a.set("root", quote(kPhpDir)).workers(2);
    // One process per slot, never recycled by PHP itself (corral's max_requests does that).
    a.env["PHP_FCGI_CHILDREN"] = "0";
    a.env["PHP_FCGI_MAX_REQUESTS"] = "0";
    config_.route("php", "/php");
    return a;
  }
};

TEST_F(ProxyFastcgiTest, LibfcgiProgramSeesTheRequest) {
  c_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/hello");
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_EQ(r.body, "hello from fcgi\n");
  EXPECT_EQ(r.header("Content-Length"), "16");
  r = http_get(port(), "/hello/extra/p%20i?env", {"-H", "Proxy: http://evil.example:3128"});
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("GATEWAY_INTERFACE=CGI/1.1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("SCRIPT_NAME=/hello\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("PATH_INFO=/extra/p i\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("QUERY_STRING=env\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("REMOTE_ADDR=127.0.0.1\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("SERVER_PORT=" + std::to_string(port()) + "\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("HTTP_PROXY=<unset>\n"), std::string::npos) << "httpoxy: " << r.body;
}

TEST_F(ProxyFastcgiTest, ConnectionsAreReused) {
  c_app().workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  // Many requests over one client connection and over fresh ones: one FastCGI connection
  // per proxy thread at most would do; without KEEP_CONN reuse each would be a new accept.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(http_get(port(), "/hello").status, 200);
  auto pids = CorralProcess::worker_pids(corral_->status(), "c");
  ASSERT_EQ(pids.size(), 1u);
  // libfcgi serves one connection at a time: count its open sockets via /proc.
  int sockets = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pids[0]) + "/fd")) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++sockets;
  }
  // The listening socket plus at most one kept-alive connection per proxy thread.
  EXPECT_GE(sockets, 2) << "no connection was kept alive";
}

TEST_F(ProxyFastcgiTest, FiveMebibytesEchoedByteExact) {
  c_app();
  ASSERT_NO_FATAL_FAILURE(start());
  std::string body(5 << 20, '\0');
  std::mt19937 rng(7);
  for (auto& ch : body) ch = static_cast<char>(rng());
  std::string file = rt_.path() + "/body.bin";
  std::ofstream(file, std::ios::binary).write(body.data(), static_cast<std::streamsize>(body.size()));
  HttpResponse r = curl({"-X", "POST", "--data-binary", "@" + file, "-H", "Content-Type: application/x-test",
                         "http://127.0.0.1:" + std::to_string(port()) + "/hello"});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.header("Content-Length"), std::to_string(body.size()));
  EXPECT_TRUE(r.body == body) << "echoed " << r.body.size() << " bytes, not the same 5 MiB";
}

TEST_F(ProxyFastcgiTest, CrashBeforeHeadersIs502AndTheSlotComesBack) {
  c_app().workers(1);
  allowed_errors_.push_back("signal");
  allowed_errors_.push_back("exited");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/hello?crash");
  EXPECT_EQ(r.status, 502) << r.error << r.body;
  // The supervisor restarts the worker (its socket kept requests waiting meanwhile).
  auto t0 = Clock::now();
  int st = 0;
  while (Clock::now() - t0 < 5s && (st = http_get(port(), "/hello").status) != 200) std::this_thread::sleep_for(100ms);
  EXPECT_EQ(st, 200);
}

TEST_F(ProxyFastcgiTest, PhpCgiPoolServesScripts) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/php/index.php/some/path?name=corral", {"-H", "Proxy: http://evil:1"});
  ASSERT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("hello corral"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("path_info=/some/path"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("http_proxy=<unset>"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("remote_addr=127.0.0.1"), std::string::npos) << r.body;
  r = http_get(port(), "/php/index.php?status=teapot");
  EXPECT_EQ(r.status, 418);
  // One slot = one process: php-cgi forked no children of its own.
  for (pid_t pid : CorralProcess::worker_pids(corral_->status(), "php")) {
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::string kids;
    std::getline(children, kids);
    EXPECT_EQ(kids, "") << "php-cgi " << pid << " has children";
  }
}

TEST_F(ProxyFastcgiTest, PhpStatusAndLocation) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/php/status.php?notfound");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "missing\n");
  r = http_get(port(), "/php/status.php?redirect");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("Location"), "https://example.com/elsewhere");
  EXPECT_EQ(header_count(r.headers, "Location"), 1);
  r = http_get(port(), "/php/status.php?created");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("Location"), "/items/7");
  EXPECT_EQ(header_count(r.headers, "Location"), 1);
  // header('Location: /php/index.php') and no status: php-cgi says 302 itself.
  r = http_get(port(), "/php/status.php?local");
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.header("Location"), "/php/index.php");
  EXPECT_EQ(header_count(r.headers, "Location"), 1) << "the Location field was repeated";
  // The same over HTTP/2 (one location field).
  r = http_get(port(), "/php/status.php?local", {"--http2-prior-knowledge"});
  EXPECT_EQ(r.status, 302) << r.error;
  EXPECT_EQ(header_count(r.headers, "Location"), 1) << "the location field was repeated over h2";
}

TEST_F(ProxyFastcgiTest, LocalRedirectWithoutStatusIs302WithOneLocation) {
  // RFC 3875 §6.2.2: "Location: /path" without a Status is a local redirect; corral answers
  // it as nginx does for FastCGI, with a 302 to the client.
  c_app();
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/hello?local-redirect");
  EXPECT_EQ(r.status, 302) << r.error << r.body;
  EXPECT_EQ(r.header("Location"), "/hello");
  EXPECT_EQ(header_count(r.headers, "Location"), 1);
}

TEST_F(ProxyFastcgiTest, PhpEchoesFiveMebibytes) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  std::string body(5 << 20, '\0');
  std::mt19937 rng(11);
  for (auto& ch : body) ch = static_cast<char>(rng());
  std::string file = rt_.path() + "/body.bin";
  std::ofstream(file, std::ios::binary).write(body.data(), static_cast<std::streamsize>(body.size()));
  HttpResponse r = curl({"-X", "POST", "--data-binary", "@" + file,
                         "http://127.0.0.1:" + std::to_string(port()) + "/php/echo.php"});
  ASSERT_EQ(r.status, 200) << r.error << r.body.substr(0, 300);
  EXPECT_TRUE(r.body == body) << "echoed " << r.body.size() << " bytes, not the same 5 MiB";
}

TEST_F(ProxyFastcgiTest, PhpSlowOutputIsStreamed) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  auto t0 = Clock::now();
  ASSERT_TRUE(c.send("GET /php/slow.php HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string first;
  while (first.find("first") == std::string::npos && Clock::now() - t0 < 3s) first += c.read_some(50ms);
  auto t_first = Clock::now() - t0;
  EXPECT_NE(first.find("first"), std::string::npos) << first;
  EXPECT_EQ(first.find("second"), std::string::npos) << "the whole response arrived at once";
  EXPECT_LT(t_first, 500ms) << "the first bytes waited for the script to end";
  c.read_responses(1, 5s);
  EXPECT_NE(c.received().find("second"), std::string::npos);
}

TEST_F(ProxyFastcgiTest, PhpHangIs504AndTheHungProcessIsGone) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  std::string pid_file = rt_.path() + "/hang.pid";
  php_app().workers(1).timeout("1s").set("graceful_timeout", quote("1s")).set("kill_timeout", quote("1s"));
  config_.app("php").env["HANG_PID_FILE"] = pid_file;
  allowed_errors_.push_back("signal");
  allowed_errors_.push_back("exited");
  ASSERT_NO_FATAL_FAILURE(start());
  auto t0 = Clock::now();
  HttpResponse r = http_get(port(), "/php/hang.php");
  EXPECT_EQ(r.status, 504) << r.error;
  EXPECT_LT(Clock::now() - t0, 3s);
  pid_t hung = 0;
  std::ifstream(pid_file) >> hung;
  ASSERT_GT(hung, 0) << "hang.php did not record its pid";
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i, std::this_thread::sleep_for(50ms)) gone = process_gone(hung);
  EXPECT_TRUE(gone) << "the hung php-cgi " << hung << " is still alive";
  // A replacement serves.
  int st = 0;
  for (int i = 0; i < 50 && (st = http_get(port(), "/php/index.php").status) != 200; ++i)
    std::this_thread::sleep_for(100ms);
  EXPECT_EQ(st, 200);
}

TEST_F(ProxyFastcgiTest, TraversalIs404AndReachesNothing) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* path : {"/php/../../etc/passwd", "/php/%2e%2e/%2e%2e/etc/passwd", "/php/..%2f..%2fetc%2fpasswd",
                           "/php/missing.php", "/php/.hidden.php"}) {
    HttpResponse r = http_get(port(), path, {"--path-as-is"});
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << path;
  }
}

TEST_F(ProxyFastcgiTest, PhpFolderPathRunsItsIndex) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app().workers(1);  // index left at its default, "index.php"
  // The same scripts with index = "": a folder path is a 404.
  AppSpec& plain = config_.app("plain");
  plain.kind = "fastcgi";
  plain.command = {"/usr/bin/php-cgi"};
  plain.set("root", quote(kPhpDir)).set("index", quote("")).workers(1);
  plain.env["PHP_FCGI_CHILDREN"] = "0";
  config_.route("plain", "/plain");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/php/?name=index");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("hello index"), std::string::npos) << r.body;
  r = http_get(port(), "/php/sub/");
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  EXPECT_NE(r.body.find("sub index\nscript_name=/php/sub/index.php\npath_info=<unset>"), std::string::npos) << r.body;
  EXPECT_EQ(http_get(port(), "/php/sub").status, 404) << "a folder without its '/'";
  EXPECT_EQ(http_get(port(), "/plain/sub/").status, 404) << "index = \"\": no index script";
  EXPECT_EQ(http_get(port(), "/plain/sub/index.php").status, 200);
}

TEST_F(ProxyFastcgiTest, A404SaysWhyInTheLogOncePerMinute) {
  if (!have_php()) GTEST_SKIP() << "php-cgi is not installed";
  php_app();
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(http_get(port(), "/php/missing.php").status, 404);
  auto lines = log_lines_with("no script at " + kPhpDir + "/missing.php");
  ASSERT_EQ(lines.size(), 1u) << "two requests, one line";
  EXPECT_NE(lines[0].find("app=php"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace corral::itest
