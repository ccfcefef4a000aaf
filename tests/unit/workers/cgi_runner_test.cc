// corral-worker's HTTP server and CGI runner with real processes (tests/apps/cgi scripts)
// over a real Unix socket: meta-variables, body round trip, 502/504, keep-alive, idle
// keep-alive connections not holding the only thread, root traversal, option parsing.
#include "workers/cgi_runner.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "common/net/socket.h"
#include "workers/http_server.h"
#include "workers/options.h"

namespace corral::worker {
namespace {

using namespace std::chrono_literals;

const std::string kApps = std::string(CORRAL_SOURCE_DIR) + "/tests/apps/cgi";

class Client {
 public:
  explicit Client(const std::string& path) {
    auto fd = net::connect_unix_blocking(path);
    EXPECT_TRUE(fd.has_value());
    if (fd) fd_ = std::move(*fd);
  }
  void send(std::string_view s) { ASSERT_TRUE(net::write_all(fd_.get(), s).has_value()); }
  // Reads until `needle` appears (or EOF / 10 s).
  std::string read_until(std::string_view needle) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (in_.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      in_.append(buf, static_cast<size_t>(n));
    }
    std::string out;
    out.swap(in_);
    return out;
  }
  // Reads one response: head + chunked body or Content-Length body (small helper).
  std::string response() {
    std::string r = read_until("\r\n\r\n");
    auto complete = [&r] {
      size_t head_end = r.find("\r\n\r\n");
      if (head_end == std::string::npos) return false;
      if (r.find("Transfer-Encoding: chunked") < head_end) return r.find("\r\n0\r\n\r\n", head_end) != std::string::npos ||
                                                                r.compare(head_end + 4, 5, "0\r\n\r\n") == 0;
      size_t cl = r.find("Content-Length: ");
      if (cl == std::string::npos || cl > head_end) return true;
      return r.size() >= head_end + 4 + std::strtoul(r.c_str() + cl + 16, nullptr, 10);
    };
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!complete() && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[65536];
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      r.append(buf, static_cast<size_t>(n));
    }
    return r;
  }

 private:
  UniqueFd fd_;
  std::string in_;
};

class WorkerTest : public ::testing::Test {
 protected:
  void start(CgiSettings s, int threads = 2) {
    char tmpl[] = "/tmp/crl-wk-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/w.sock";
    auto fd = net::listen_unix(path_, 64, 0600);
    ASSERT_TRUE(fd.has_value());
    listen_ = std::move(*fd);
    s.env = {{"PATH", "/usr/bin:/bin"}, {"APP_SETTING", "on"}};
    runner_ = std::make_unique<CgiRunner>(std::move(s));
    ASSERT_TRUE(runner_->check().has_value());
    server_ = std::make_unique<HttpServer>(listen_.get(), threads, *runner_, "test");
    thread_ = std::thread([this] { ASSERT_TRUE(server_->run().has_value()); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  static CgiSettings root_settings() {
    CgiSettings s;
    s.app = "t";
    s.root = kApps;
    s.mounts = {"/cgi-bin"};
    s.timeout = 2s;
    return s;
  }
  std::string dir_, path_;
  UniqueFd listen_;
  std::unique_ptr<CgiRunner> runner_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(WorkerTest, MetaVariablesReachTheProgram) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  Client c(path_);
  c.send("GET /cgi-bin/env.sh/p%20i?q=1 HTTP/1.1\r\nHost: ex.test:8080\r\nProxy: http://evil/\r\nX_Bad: 1\r\n"
         "X-Forwarded-For: 198.51.100.7\r\nX-Remote-Port: 4567\r\nX-Forwarded-Proto: https\r\n"
         "X-Forwarded-Prefix: /cgi-bin\r\n\r\n");
  std::string r = c.response();
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  for (const char* want : {"PATH_INFO=/p i\n", "QUERY_STRING=q=1\n", "SCRIPT_NAME=/cgi-bin/env.sh\n",
                           "REMOTE_ADDR=198.51.100.7\n", "REMOTE_PORT=4567\n", "HTTPS=on\n", "SERVER_NAME=ex.test\n",
                           "SERVER_PORT=8080\n", "APP_SETTING=on\n", "GATEWAY_INTERFACE=CGI/1.1\n"})
    EXPECT_NE(r.find(want), std::string::npos) << want << " missing in\n" << r;
  EXPECT_EQ(r.find("HTTP_PROXY"), std::string::npos) << r;
  EXPECT_EQ(r.find("HTTP_X_BAD"), std::string::npos) << r;
  EXPECT_EQ(r.find("LISTEN_FDS"), std::string::npos) << r;
}

TEST_F(WorkerTest, RemoteAddrFromXRealIpThenTheLastForwardedFor) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  {
    Client c(path_);
    c.send("GET /cgi-bin/env.sh HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
           "X-Real-IP: 203.0.113.9\r\n\r\n");
    std::string r = c.response();
    EXPECT_NE(r.find("REMOTE_ADDR=203.0.113.9\n"), std::string::npos) << r;
  }
  Client c(path_);
  c.send("GET /cgi-bin/env.sh HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n\r\n");
  std::string r = c.response();
  EXPECT_NE(r.find("REMOTE_ADDR=10.0.0.1\n"), std::string::npos) << r;
}

TEST_F(WorkerTest, BodyRoundTripAndKeepAlive) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  std::string body(1 << 20, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7 + (i >> 10));
  Client c(path_);
  for (int round = 0; round < 2; ++round) {
    c.send("POST /cgi-bin/echo.pl HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-test\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n");
    c.send(body);
    std::string r = c.response();
    ASSERT_NE(r.find("X-Body-Length: 1048576"), std::string::npos) << r.substr(0, 300);
    // De-chunk.
    std::string got;
    size_t pos = r.find("\r\n\r\n") + 4;
    for (;;) {
      size_t len = std::strtoul(r.c_str() + pos, nullptr, 16);
      pos = r.find("\r\n", pos) + 2;
      if (len == 0) break;
      got.append(r, pos, len);
      pos += len + 2;
    }
    EXPECT_TRUE(got == body) << "round " << round << ": " << got.size() << " bytes back";
  }
}

TEST_F(WorkerTest, CrashBeforeHeadersIs502AndHangIs504WithTheGroupKilled) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  Client c(path_);
  c.send("GET /cgi-bin/crash.sh HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.response().find("HTTP/1.1 502"), std::string::npos);

  std::string pid_file = dir_ + "/hang.pid";
  ::setenv("HANG_PID_FILE", pid_file.c_str(), 1);  // not passed on: the app env is fixed
  auto t0 = std::chrono::steady_clock::now();
  Client h(path_);
  h.send("GET /cgi-bin/hang.sh HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = h.response();
  EXPECT_NE(r.find("HTTP/1.1 504"), std::string::npos) << r;
  // Cut at the 2 s timeout, not after the script's 1000 s (generous: sanitizer builds on a
  // busy machine are slow to start the script).
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

TEST_F(WorkerTest, IdleKeepAliveConnectionsDoNotHoldTheOnlyThread) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings(), /*threads=*/1));
  Client a(path_), b(path_);
  a.send("GET /cgi-bin/status.sh HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(a.response().find("200 OK"), std::string::npos);
  // a is now idle but open; b must still be served by the single thread.
  b.send("GET /cgi-bin/status.sh HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(b.response().find("200 OK"), std::string::npos);
  a.send("GET /cgi-bin/status.sh?notfound HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(a.response().find("404 Nope"), std::string::npos);
}

TEST_F(WorkerTest, TraversalNeverRunsAnything) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  Client c(path_);
  for (const char* t : {"/cgi-bin/../../etc/passwd", "/cgi-bin/%2e%2e/%2e%2e/etc/passwd", "/cgi-bin/..%2f..%2fetc/passwd",
                        "/cgi-bin/noexec.sh", "/cgi-bin/sub", "/cgi-bin/"}) {
    c.send(std::string("GET ") + t + " HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string r = c.response();
    EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << t << ": " << r;
  }
  c.send("GET /cgi-bin/sub/nested.sh/more HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.response().find("nested /more"), std::string::npos);
}

TEST_F(WorkerTest, LocalRedirectIsFollowedAndLoopsEnd) {
  ASSERT_NO_FATAL_FAILURE(start(root_settings()));
  Client c(path_);
  c.send("GET /cgi-bin/status.sh?local HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = c.response();
  EXPECT_NE(r.find("PATH_INFO=/after-redirect"), std::string::npos) << r;
  EXPECT_NE(r.find("REQUEST_METHOD=GET"), std::string::npos) << r;
  c.send("GET /cgi-bin/status.sh?loop HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.response().find("HTTP/1.1 502"), std::string::npos);
  c.send("GET /cgi-bin/status.sh?redirect HTTP/1.1\r\nHost: x\r\n\r\n");
  r = c.response();
  EXPECT_NE(r.find("HTTP/1.1 302"), std::string::npos) << r;
  EXPECT_NE(r.find("Location: https://example.com/elsewhere"), std::string::npos) << r;
}

TEST(WorkerOptions, RoundTrip) {
  Options o;
  o.app = "legacy";
  o.slot = 3;
  o.concurrency = 8;
  o.timeout_ms = 1500;
  o.command = {"/usr/lib/cgi-bin/app", "--flag"};
  auto back = parse_options(to_args(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->app, "legacy");
  EXPECT_EQ(back->slot, 3);
  EXPECT_EQ(back->concurrency, 8);
  EXPECT_EQ(back->timeout_ms, 1500);
  EXPECT_EQ(back->command, o.command);
  EXPECT_FALSE(parse_options({"w", "--root", "/x", "--", "/bin/prog"}).has_value());
  EXPECT_FALSE(parse_options({"w", "--concurrency", "0", "--root", "/x"}).has_value());
  EXPECT_FALSE(parse_options({"w"}).has_value());
  EXPECT_FALSE(parse_options({"w", "--bogus", "1", "--root", "/x"}).has_value());
}

TEST(WorkerOptions, IndexRoundTripsWithRoot) {
  Options o;
  o.root = "/srv/cgi-bin";
  o.index = "index.cgi";
  auto back = parse_options(to_args(o));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->root, "/srv/cgi-bin");
  EXPECT_EQ(back->index, "index.cgi");
  EXPECT_FALSE(parse_options({"w", "--root", "/x", "--index", "../x"}).has_value());
  EXPECT_FALSE(parse_options({"w", "--root", "/x", "--index", ".hidden"}).has_value());
}

TEST_F(WorkerTest, AFolderPathRunsTheIndexScript) {
  CgiSettings s = root_settings();
  s.index = "env.sh";
  ASSERT_NO_FATAL_FAILURE(start(std::move(s)));
  Client c(path_);
  c.send("GET /cgi-bin/?q=1 HTTP/1.1\r\nHost: x\r\nX-Forwarded-Prefix: /cgi-bin\r\n\r\n");
  std::string r = c.response();
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("SCRIPT_NAME=/cgi-bin/env.sh\n"), std::string::npos) << r;
  EXPECT_NE(r.find("QUERY_STRING=q=1\n"), std::string::npos) << r;
  c.send("GET /cgi-bin/sub/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Prefix: /cgi-bin\r\n\r\n");
  r = c.response();
  EXPECT_NE(r.find("HTTP/1.1 404"), std::string::npos) << "sub/ has no env.sh: " << r;
}

}  // namespace
}  // namespace corral::worker
