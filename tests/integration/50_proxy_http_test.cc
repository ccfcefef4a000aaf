// Proxying to kind="http" apps: balancing over workers, per-worker concurrency, the bounded
// queue (503 + Retry-After, queue_timeout), routing (404, host), forwarding headers,
// hop-by-hop stripping, app timeout (504), access log, upstream keep-alive.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ProxyHttpTest : public IntegrationTest {};

TEST_F(ProxyHttpTest, RequestsSpreadOverAllWorkers) {
  config_.app("demo").workers(3);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json st = corral_->status();
  std::vector<pid_t> pids = CorralProcess::worker_pids(st, "demo");
  ASSERT_EQ(pids.size(), 3u) << st.dump();
  std::set<pid_t> expected(pids.begin(), pids.end());
  ASSERT_EQ(expected.size(), 3u) << st.dump();

  std::set<pid_t> seen;
  for (int i = 0; i < 30; ++i) {
    HttpResponse r = http_get(port(), "/pid");
    ASSERT_EQ(r.status, 200) << r.error;
    seen.insert(static_cast<pid_t>(std::atoi(r.body.c_str())));
  }
  EXPECT_EQ(seen, expected) << "30 sequential requests did not reach exactly the 3 workers in status";
}

TEST_F(ProxyHttpTest, ASlowButSteadyDownloadOutlivesTheStallTimeout) {
  // The stall deadline (client_body_timeout) runs from the client's last progress, not from
  // the start of the response: a reader with a small receive buffer takes 6 MiB in steady
  // 64 KiB bites over about 2.5 s, with a 1 s timeout (the proxy's socket buffer and its
  // 1 MiB response buffer stay full for well over 1 s).
  config_.proxy("client_body_timeout", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  constexpr size_t kBytes = 6u << 20;
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port(), 64 * 1024));
  ASSERT_TRUE(c.send("GET /big?bytes=" + std::to_string(kBytes) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  const auto t0 = Clock::now();
  while (!c.closed() && Clock::now() - t0 < 30s) {
    c.read_some(20ms);
    std::this_thread::sleep_for(25ms);
  }
  const auto took = Clock::now() - t0;
  const std::string& all = c.received();
  const size_t body = all.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(all.size() - body - 4, kBytes) << "the download was cut after "
                                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                                           << " ms";
  EXPECT_GT(took, 1000ms) << "the reader was not slow enough to test the stall timeout";

  // A reader that takes nothing is cut off: what it reads afterwards is short of the body.
  RawClient stalled;
  ASSERT_TRUE(stalled.connect_tcp(port(), 64 * 1024));
  ASSERT_TRUE(stalled.send("GET /big?bytes=" + std::to_string(kBytes) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  std::this_thread::sleep_for(3s);
  const std::string rest = stalled.read_until_close(20s);
  EXPECT_TRUE(stalled.closed());
  EXPECT_LT(rest.size(), kBytes) << "a client that stopped reading got the whole response";
}

TEST_F(ProxyHttpTest, ConcurrencyOneIsNeverExceeded) {
  config_.app("demo").workers(3).concurrency(1).queue_size(100).queue_timeout("20s");
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(50, [&](int i) { return http_get(port(), "/sleep?ms=20&c=" + std::to_string(i)); });
  for (size_t i = 0; i < rs.size(); ++i) EXPECT_EQ(rs[i].status, 200) << "client " << i << ": " << rs[i].error;

  nlohmann::json st = corral_->status();
  std::vector<std::string> sockets = CorralProcess::worker_sockets(st, "demo");
  ASSERT_EQ(sockets.size(), 3u) << st.dump();
  for (auto& s : sockets) {
    // Straight to the worker: the most requests it ever had in flight at once.
    HttpResponse r = unix_get(s, "/maxinflight");
    ASSERT_EQ(r.status, 200) << s << ": " << r.error;
    EXPECT_EQ(r.body, "1") << "worker on " << s << " had " << r.body << " requests in flight at once";
  }
}

TEST_F(ProxyHttpTest, HigherConcurrencyIsUsed) {
  // The converse: with concurrency=4 a single worker does get parallel requests.
  config_.app("demo").workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(8, [&](int) { return http_get(port(), "/sleep?ms=300"); });
  for (auto& r : rs) EXPECT_EQ(r.status, 200) << r.error;
  auto sockets = CorralProcess::worker_sockets(corral_->status(), "demo");
  ASSERT_EQ(sockets.size(), 1u);
  HttpResponse r = unix_get(sockets[0], "/maxinflight");
  EXPECT_EQ(r.body, "4");
}

TEST_F(ProxyHttpTest, FullQueueGets503WithRetryAfter) {
  config_.app("demo").workers(1).concurrency(1).queue_size(1).queue_timeout("10s");
  ASSERT_NO_FATAL_FAILURE(start());
  // One in flight, one queued, the rest must be refused at once.
  auto t0 = Clock::now();
  auto rs = parallel(4, [&](int i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150 * i));  // arrival order
    return http_get(port(), "/sleep?ms=1500&q=" + std::to_string(i));
  });
  int ok = 0, refused = 0;
  for (auto& r : rs) {
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++refused;
      EXPECT_FALSE(r.header("Retry-After").empty()) << "503 without Retry-After";
    }
  }
  EXPECT_EQ(ok, 2) << "expected one in flight and one queued to succeed";
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(rs[2].status, 503);
  EXPECT_EQ(rs[3].status, 503);
  EXPECT_LT(Clock::now() - t0, 6s);
}

TEST_F(ProxyHttpTest, QueueTimeoutGets503) {
  config_.app("demo").workers(1).concurrency(1).queue_size(10).queue_timeout("500ms");
  ASSERT_NO_FATAL_FAILURE(start());
  auto rs = parallel(2, [&](int i) {
    if (i == 1) std::this_thread::sleep_for(200ms);
    auto t0 = Clock::now();
    HttpResponse r = http_get(port(), i == 0 ? "/sleep?ms=2500" : "/pid?queued");
    r.headers.emplace_back("X-Elapsed-Ms",
                           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count()));
    return r;
  });
  EXPECT_EQ(rs[0].status, 200) << rs[0].error;
  EXPECT_EQ(rs[1].status, 503) << "a request queued past queue_timeout must get 503";
  int waited = std::atoi(rs[1].header("X-Elapsed-Ms").c_str());
  EXPECT_GE(waited, 400);
  EXPECT_LT(waited, 2000) << "the queued request waited for the worker instead of timing out";
  stop_and_expect_clean();
  EXPECT_TRUE(app_lines_with("/pid?queued").empty()) << "the timed-out request reached the app";
}

TEST_F(ProxyHttpTest, NoMatchingRouteGets404) {
  config_.app("demo");
  config_.route("demo", "/app");
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(http_get(port(), "/app/echo").status, 404) << "the app itself answers 404 for /app/echo";
  HttpResponse in = http_get(port(), "/app");
  EXPECT_EQ(in.status, 404);
  EXPECT_EQ(in.header("X-Testapp-Target"), "/app") << "a routed request reaches the app";
  HttpResponse out = http_get(port(), "/other/mk-unrouted");
  EXPECT_EQ(out.status, 404);
  EXPECT_TRUE(out.header("X-Testapp-Pid").empty()) << "an unrouted request reached the app";
}

TEST_F(ProxyHttpTest, HostRoutingPicksTheApp) {
  config_.app("alpha").env["APP_TAG"] = "alpha";
  config_.app("beta").env["APP_TAG"] = "beta";
  config_.route("alpha", "/", "a.test");
  config_.route("beta", "/", "b.test");
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse a = http_get(port(), "/env?name=APP_TAG", {"-H", "Host: a.test"});
  HttpResponse b = http_get(port(), "/env?name=APP_TAG", {"-H", "Host: B.TEST:8080"});
  HttpResponse none = http_get(port(), "/env?name=APP_TAG", {"-H", "Host: c.test"});
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "alpha");
  EXPECT_EQ(b.status, 200);
  EXPECT_EQ(b.body, "beta") << "host match is case-insensitive and ignores the port";
  EXPECT_EQ(none.status, 404);
}

TEST_F(ProxyHttpTest, ForwardingHeadersReachTheApp) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r1 = http_get(port(), "/echo", {"-H", "Host: shop.example"});
  HttpResponse r2 = http_get(port(), "/echo", {"-H", "Host: shop.example"});
  ASSERT_EQ(r1.status, 200) << r1.error;
  nlohmann::json e1 = parse_echo(r1.body), e2 = parse_echo(r2.body);
  ASSERT_TRUE(e1.is_object()) << r1.body;
  ASSERT_EQ(echo_headers(e1, "X-Forwarded-For").size(), 1u) << r1.body;
  EXPECT_EQ(echo_headers(e1, "X-Forwarded-For")[0], "127.0.0.1");
  ASSERT_EQ(echo_headers(e1, "X-Forwarded-Proto").size(), 1u) << r1.body;
  EXPECT_EQ(echo_headers(e1, "X-Forwarded-Proto")[0], "http");
  ASSERT_EQ(echo_headers(e1, "X-Forwarded-Host").size(), 1u) << r1.body;
  EXPECT_EQ(echo_headers(e1, "X-Forwarded-Host")[0], "shop.example");
  auto id1 = echo_headers(e1, "X-Request-Id"), id2 = echo_headers(e2, "X-Request-Id");
  ASSERT_EQ(id1.size(), 1u) << r1.body;
  ASSERT_EQ(id2.size(), 1u) << r2.body;
  EXPECT_FALSE(id1[0].empty());
  EXPECT_NE(id1[0], id2[0]) << "X-Request-Id must differ between requests";
  ASSERT_EQ(echo_headers(e1, "Host").size(), 1u);
  EXPECT_EQ(echo_headers(e1, "Host")[0], "shop.example");
}

TEST_F(ProxyHttpTest, HopByHopHeadersAreStripped) {
  ASSERT_NO_FATAL_FAILURE(start());
  HttpResponse r = http_get(port(), "/echo", {"-H", "Connection: keep-alive, X-Hop-Custom", "-H", "X-Hop-Custom: 1",
                                              "-H", "Keep-Alive: timeout=5", "-H", "Proxy-Connection: keep-alive",
                                              "-H", "TE: trailers", "-H", "X-End-To-End: kept"});
  ASSERT_EQ(r.status, 200) << r.error;
  nlohmann::json e = parse_echo(r.body);
  ASSERT_TRUE(e.is_object()) << r.body;
  for (const char* h : {"X-Hop-Custom", "Keep-Alive", "Proxy-Connection", "TE"})
    EXPECT_TRUE(echo_headers(e, h).empty()) << h << " was forwarded: " << r.body;
  for (auto& c : echo_headers(e, "Connection"))
    EXPECT_EQ(c.find("X-Hop-Custom"), std::string::npos) << "the client's Connection header was forwarded";
  ASSERT_EQ(echo_headers(e, "X-End-To-End").size(), 1u) << r.body;
  EXPECT_EQ(echo_headers(e, "X-End-To-End")[0], "kept");
}

TEST_F(ProxyHttpTest, AppTimeoutGets504) {
  config_.app("demo").timeout("1s");
  allowed_errors_ = {"timeout", "timed out", "hung", "killed", "signal"};
  ASSERT_NO_FATAL_FAILURE(start());
  auto t0 = Clock::now();
  HttpResponse r = http_get(port(), "/sleep?ms=4000");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(r.status, 504) << r.error;
  EXPECT_GE(ms, 900);
  EXPECT_LT(ms, 3000) << "504 came after " << ms << " ms";
  // The app recovers (the hung worker is replaced or freed).
  bool ok = false;
  for (int i = 0; i < 50 && !ok; ++i) {
    ok = http_get(port(), "/").status == 200;
    if (!ok) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(ok) << "no 200 within 5 s after the 504";
}

TEST_F(ProxyHttpTest, AppTimeoutCountsFromEachRequestOnAKeptAliveConnection) {
  config_.app("demo").timeout("1s");
  ASSERT_NO_FATAL_FAILURE(start());
  // Two requests on one connection (one exchange, whose timer outlives a request): the second
  // starts 600 ms in and takes 700 ms, within its own 1 s.
  std::string base = "http://127.0.0.1:" + std::to_string(port());
  ProcessResult r = run_process({"curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}:%{num_connects} ",
                                 base + "/sleep?ms=600", base + "/sleep?ms=700"},
                                10s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "200:1 200:0 ") << "status:new connections per request";
}

TEST_F(ProxyHttpTest, AccessLogHasOneLinePerRequest) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http_get(port(), "/access-marker-" + std::to_string(i)).status, 404);
  EXPECT_EQ(http_get(port(), "/echo?access-marker-ok").status, 200);
  stop_and_expect_clean();
  for (int i = 0; i < 3; ++i) {
    std::string needle = "\"GET /access-marker-" + std::to_string(i) + " HTTP/1.1\" 404 ";
    auto lines = log_lines_with(needle);
    EXPECT_EQ(lines.size(), 1u) << "access log lines with " << needle;
    if (!lines.empty()) {
      EXPECT_NE(lines[0].find("127.0.0.1"), std::string::npos) << lines[0];
    }
  }
  EXPECT_EQ(log_lines_with("\"GET /echo?access-marker-ok HTTP/1.1\" 200 ").size(), 1u);
}

TEST_F(ProxyHttpTest, UpstreamConnectionsAreReused) {
  // Pools are per event-loop thread: with one thread, one pooled connection serves all.
  config_.proxy("threads", "1");
  config_.app("demo").workers(1).concurrency(1);
  ASSERT_NO_FATAL_FAILURE(start());
  std::set<std::string> conns;
  for (int i = 0; i < 5; ++i) {
    HttpResponse r = http_get(port(), "/conn");
    ASSERT_EQ(r.status, 200) << r.error;
    conns.insert(r.body);
  }
  EXPECT_EQ(conns.size(), 1u) << "5 sequential requests used " << conns.size() << " upstream connections";
}

TEST_F(ProxyHttpTest, LargeResponsesArriveIntact) {
  ASSERT_NO_FATAL_FAILURE(start());
  for (const char* q : {"/big?bytes=3000000", "/big?bytes=3000000&chunked=1"}) {
    HttpResponse r = http_get(port(), q);
    ASSERT_EQ(r.status, 200) << q << ": " << r.error;
    ASSERT_EQ(r.body.size(), 3000000u) << q;
    bool intact = true;
    for (size_t i = 0; i < r.body.size() && intact; ++i) intact = r.body[i] == static_cast<char>('a' + i % 26);
    EXPECT_TRUE(intact) << q;
  }
}

}  // namespace
}  // namespace corral::itest
