// Proxy behaviour at the edges of the request path: slow request bodies (pause timeout and
// minimum rate), slow readers (the worker is freed once the response is buffered; memory stays
// bounded when it is not), connect failures moving a request to another worker, IPv6 listeners.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "tests/integration/harness/integration_test.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ProxyEdgesTest : public IntegrationTest {
 protected:
  /// Waits up to `timeout` for the access-log line of `request_line` ("GET /x HTTP/1.1");
  /// returns it, or "" when none came.
  std::string access_line(const std::string& request_line, std::chrono::milliseconds timeout = 5s) {
    for (auto until = Clock::now() + timeout;; std::this_thread::sleep_for(50ms)) {
      for (auto& l : log_lines_with("\"" + request_line + "\""))
        if (l.find("testapp pid=") == std::string::npos) return l;
      if (Clock::now() > until) return "";
    }
  }
  /// Waits up to `timeout` for the testapp to log a request whose target contains `needle`.
  bool app_saw(const std::string& needle, std::chrono::milliseconds timeout = 10s) {
    for (auto until = Clock::now() + timeout; app_lines_with(needle).empty(); std::this_thread::sleep_for(50ms))
      if (Clock::now() > until) return false;
    return true;
  }
};

/// The status in an access-log line ("... \"GET / HTTP/1.1\" 499 0 ..."); 0 when none.
int logged_status(const std::string& line) {
  size_t q = line.find("\" ");
  return q == std::string::npos ? 0 : std::atoi(line.c_str() + q + 2);
}

std::string post_head(const std::string& path, size_t length) {
  return "POST " + path + " HTTP/1.1\r\nHost: t.example\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
}

TEST_F(ProxyEdgesTest, BodyPauseLongerThanClientBodyTimeoutGets408) {
  config_.proxy("client_body_timeout", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send(post_head("/mk-body-pause", 1000) + std::string(500, 'a')));
  auto t0 = Clock::now();
  std::string got = c.read_until_close(4s);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << got;
  EXPECT_GE(ms, 800);
  EXPECT_LT(ms, 2500);
  EXPECT_TRUE(app_lines_with("/mk-body-pause").empty()) << "an incomplete body reached the app";
}

TEST_F(ProxyEdgesTest, BodyBelowMinimumRateGets408EvenWithoutLongPauses) {
  // 100 bytes every 200 ms = 500 B/s: no single pause reaches client_body_timeout, but the
  // average stays below client_body_min_rate, so the body is cut off soon after 1 s.
  config_.proxy("client_body_timeout", quote("1s")).proxy("client_body_min_rate", quote("1KiB"));
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send(post_head("/mk-body-slow", 100000)));
  auto t0 = Clock::now();
  while (!c.closed() && Clock::now() - t0 < 6s) {
    if (!c.send(std::string(100, 'b'))) break;
    c.read_some(200ms);
  }
  if (!c.closed()) c.read_until_close(500ms);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_TRUE(c.closed()) << "a 500 B/s body was still accepted after " << ms << " ms";
  EXPECT_LT(ms, 4000);
  EXPECT_NE(c.received().find("408"), std::string::npos) << c.received();
  EXPECT_TRUE(app_lines_with("/mk-body-slow").empty());
}

TEST_F(ProxyEdgesTest, SlowReaderDoesNotHoldTheWorker) {
  // One sync worker. A client asks for 512 KiB and reads nothing: the proxy buffers the
  // response, frees the worker, and the next client is served at once.
  config_.app("demo").workers(1).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient slow;
  ASSERT_TRUE(slow.connect_tcp(port(), 4096));
  ASSERT_TRUE(slow.send("GET /big?bytes=524288 HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  std::this_thread::sleep_for(300ms);
  auto t0 = Clock::now();
  HttpResponse r = http_get(port(), "/pid");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_LT(ms, 1000) << "the second client waited behind a slow reader";
  // The slow client still gets its whole response when it finally reads.
  auto rs = slow.read_responses(1, 10s);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].body.size(), 524288u);
}

TEST_F(ProxyEdgesTest, SlowReaderOfAHugeResponseKeepsProxyMemoryBounded) {
  config_.app("demo").workers(2).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  pid_t proxy = proxy_pid();
  long before = rss_kib(proxy);
  ASSERT_GT(before, 0);
  std::vector<std::unique_ptr<RawClient>> readers;
  for (int i = 0; i < 4; ++i) {
    auto c = std::make_unique<RawClient>();
    ASSERT_TRUE(c->connect_tcp(port(), 4096));
    ASSERT_TRUE(c->send("GET /big?bytes=268435456 HTTP/1.1\r\nHost: t.example\r\n\r\n"));
    readers.push_back(std::move(c));
  }
  std::this_thread::sleep_for(1500ms);
  long after = rss_kib(proxy);
  // 4 × 256 MiB requested; the proxy may hold about its response buffer per request.
  EXPECT_LT(after - before, 32 * 1024) << "proxy RSS grew from " << before << " KiB to " << after << " KiB";
  // All four clients go away: two with their response streaming, two queued (or, when a
  // worker freed by the first two took them before their close arrived, with a worker). Each
  // request is cancelled and logged at once; none keeps a worker generating 256 MiB for
  // nobody, so other clients are served at once (a queued one would wait queue_timeout).
  readers.clear();
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    size_t n = 0;
    for (auto& l : log_lines_with("\"GET /big?bytes=268435456 HTTP/1.1\""))
      if (l.find("testapp pid=") == std::string::npos) ++n;
    if (n == 4) break;
  }
  std::vector<std::string> logged;
  for (auto& l : log_lines_with("\"GET /big?bytes=268435456 HTTP/1.1\""))
    if (l.find("testapp pid=") == std::string::npos) logged.push_back(l);
  EXPECT_EQ(logged.size(), 4u) << "every aborted request has its access-log line";
  for (auto& l : logged) {
    int st = logged_status(l);
    EXPECT_TRUE(st == 200 || st == 499) << l;
  }
  HttpResponse r = http_get(port(), "/pid");
  EXPECT_EQ(r.status, 200) << r.error;
}

TEST_F(ProxyEdgesTest, ClientClosingWhileItsRequestIsWithAWorkerFreesTheWorker) {
  // One sync worker with a request that would keep it 30 s. Its client closes: the request
  // is cancelled (the worker's connection closed), so the next client is served at once, not
  // after the 30 s (the queue and the app allow far longer than curl waits).
  config_.app("demo").workers(1).concurrency(1).timeout("60s").queue_timeout("60s");
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient gone;
  ASSERT_TRUE(gone.connect_tcp(port()));
  ASSERT_TRUE(gone.send("GET /sleep?ms=30000&m=gone HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  ASSERT_TRUE(app_saw("/sleep?ms=30000&m=gone"));
  gone.close();
  HttpResponse r = curl({"http://127.0.0.1:" + std::to_string(port()) + "/pid?m=next"}, 10s);
  EXPECT_EQ(r.status, 200) << "the worker stayed busy for a client that was gone: " << r.error;
  std::string line = access_line("GET /sleep?ms=30000&m=gone HTTP/1.1");
  EXPECT_EQ(logged_status(line), 499) << line;
}

TEST_F(ProxyEdgesTest, ClientHalfClosingWhileItsRequestIsWithAWorkerCancelsIt) {
  // As nginx: the end of the client's stream before its response is complete is the client
  // going away (a half-close cannot be told from a close).
  config_.app("demo").workers(1).concurrency(1).timeout("60s").queue_timeout("60s");
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient gone;
  ASSERT_TRUE(gone.connect_tcp(port()));
  ASSERT_TRUE(gone.send("GET /sleep?ms=30000&m=half HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  ASSERT_TRUE(app_saw("/sleep?ms=30000&m=half"));
  gone.shutdown_write();
  gone.read_until_close(10s);
  EXPECT_TRUE(gone.closed());
  EXPECT_TRUE(gone.received().empty()) << gone.received();
  HttpResponse r = curl({"http://127.0.0.1:" + std::to_string(port()) + "/pid?m=next"}, 10s);
  EXPECT_EQ(r.status, 200) << r.error;
  std::string line = access_line("GET /sleep?ms=30000&m=half HTTP/1.1");
  EXPECT_EQ(logged_status(line), 499) << line;
}

TEST_F(ProxyEdgesTest, ClientClosingWhileQueuedLeavesTheQueue) {
  // The worker is busy for 2 s; a second client queues and closes. Its request never
  // reaches the worker, and it is logged as 499.
  config_.app("demo").workers(1).concurrency(1).timeout("60s").queue_timeout("60s");
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient busy;
  ASSERT_TRUE(busy.connect_tcp(port()));
  ASSERT_TRUE(busy.send("GET /sleep?ms=2000&m=busy HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  ASSERT_TRUE(app_saw("/sleep?ms=2000&m=busy"));
  RawClient queued;
  ASSERT_TRUE(queued.connect_tcp(port()));
  ASSERT_TRUE(queued.send("GET /pid?m=queued HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  std::this_thread::sleep_for(300ms);
  queued.close();
  std::string line = access_line("GET /pid?m=queued HTTP/1.1");
  EXPECT_EQ(logged_status(line), 499) << line;
  auto rs = busy.read_responses(1, 10s);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].status, 200);
  EXPECT_EQ(http_get(port(), "/pid?m=after").status, 200);
  EXPECT_TRUE(app_lines_with("m=queued").empty()) << "a request whose client had gone reached the worker";
}

TEST_F(ProxyEdgesTest, ClientClosingWhileItsResponseStreamsFreesTheWorker) {
  // A 64 MiB response to a client that reads a little and closes: the worker's connection is
  // closed (not drained), the next client is served, and the request has its log line with
  // the worker's status and the bytes the proxy took until then.
  config_.app("demo").workers(1).concurrency(1).timeout("60s").queue_timeout("60s");
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient gone;
  ASSERT_TRUE(gone.connect_tcp(port(), 4096));
  ASSERT_TRUE(gone.send("GET /big?bytes=67108864&m=stream HTTP/1.1\r\nHost: t.example\r\n\r\n"));
  for (auto until = Clock::now() + 10s; gone.received().empty() && Clock::now() < until;) gone.read_some(100ms);
  ASSERT_FALSE(gone.received().empty());
  gone.close();
  HttpResponse r = curl({"http://127.0.0.1:" + std::to_string(port()) + "/pid?m=next"}, 10s);
  EXPECT_EQ(r.status, 200) << r.error;
  std::string line = access_line("GET /big?bytes=67108864&m=stream HTTP/1.1");
  EXPECT_EQ(logged_status(line), 200) << line;
  size_t q = line.find("\" 200 ");
  ASSERT_NE(q, std::string::npos) << line;
  EXPECT_LT(std::strtoull(line.c_str() + q + 6, nullptr, 10), 67108864u) << line;
}

TEST_F(ProxyEdgesTest, ConnectFailureMovesTheRequestToAnotherWorker) {
  // Apps that bind {socket} themselves: a dead worker leaves a socket nobody listens on, so
  // connecting fails and the request must go to the other worker, never to the client as 502.
  config_.app("demo").workers(2).concurrency(1).bind_itself();
  ASSERT_NO_FATAL_FAILURE(start());
  auto pids = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(pids.size(), 2u);
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  int ok = 0;
  std::string failures;
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = http_get(port(), "/pid");
    if (r.status == 200) ++ok;
    else failures += std::to_string(r.status) + " " + r.error + "; ";
  }
  EXPECT_EQ(ok, 20) << failures;
  allowed_errors_.push_back("reason=signal");  // the death record of the worker this test SIGKILLed
}

TEST_F(ProxyEdgesTest, AppWithAPlainBlockingAcceptLoopServes) {
  // Many small servers written for socket activation just call accept() on fd 3 and give up
  // on EAGAIN; they must get a blocking listening socket, as systemd hands them.
  auto& app = config_.app("demo").workers(1);
  app.command = {"/usr/bin/perl", "-e",
                 R"(open(L, "+<&=3") or die "fd 3: $!"; while (1) { accept(C, L) or die "accept: $!"; )"
                 R"(while (<C>) { last if $_ eq "\r\n" } )"
                 R"(print C "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"; close(C) })"};
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = http_get(port(), "/");
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "ok\n");
  }
  EXPECT_EQ(CorralProcess::worker_pids(corral_->status(), "demo").size(), 1u);
  EXPECT_TRUE(log_lines_with("accept:").empty()) << "the app's accept() failed";
}

bool ipv6_loopback_available() {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

TEST_F(ProxyEdgesTest, Ipv6AndIpv4ListenersServeTogether) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback here";
  config_.listeners({"127.0.0.1:0", "[::1]:0"});
  ASSERT_NO_FATAL_FAILURE(start());
  int p6 = corral_->port(1);
  ASSERT_GT(p6, 0);
  HttpResponse r6 = curl({"-g", "http://[::1]:" + std::to_string(p6) + "/echo"});
  ASSERT_EQ(r6.status, 200) << r6.error;
  auto echo = parse_echo(r6.body);
  auto xff = echo_headers(echo, "X-Forwarded-For");
  ASSERT_EQ(xff.size(), 1u);
  EXPECT_EQ(xff[0], "::1");
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

}  // namespace
}  // namespace corral::itest
