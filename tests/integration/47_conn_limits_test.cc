// Connection limits and hard times at the front door: [[listener]] max_connections and
// max_connections_per_client (reset at accept, exact when connections close, counted in
// /metrics, logged at most once per second, changed by a reload), accept back-off when the
// proxy is out of file descriptors (prlimit on the running proxy: no busy loop, serves again
// once fds are free), the TLS handshake deadline (tls_handshake_timeout), and TLS 1.2
// renegotiation refused (openssl s_client's R command).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t0) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
}

/// A client socket from a chosen source address ("127.0.0.2", "::1") to a local port.
class Conn : public RawClient {
 public:
  bool connect(int port, const std::string& src = "127.0.0.1", const std::string& dst = "127.0.0.1") {
    return connect_from(port, src, dst);
  }

  /// One GET / on the connection: its status, or 0 when the connection was closed or reset.
  int request(std::chrono::milliseconds timeout = 5s) {
    const size_t before = parse_responses(received()).size();
    if (!send("GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n")) return 0;
    auto rs = read_responses(before + 1, timeout);
    return rs.size() > before ? rs[before].status : 0;
  }

  /// True when the proxy closes (or resets) the connection within `timeout` without sending
  /// a byte; `ms` tells how long it took.
  bool closed_silently(std::chrono::milliseconds timeout, long* ms = nullptr) {
    const auto t0 = Clock::now();
    const size_t before = received().size();
    const size_t after = read_until_close(timeout).size();
    if (!closed() || after != before) return false;
    if (ms) *ms = ms_since(t0);
    return true;
  }
};

class ConnLimitsTest : public IntegrationTest {
 protected:
  void SetUp() override { base_config(); }
  void base_config() {
    config_ = ConfigBuilder(rt_.path());
    // Two loops accept on every listener: the counts are shared between them.
    config_.proxy("admin", quote("127.0.0.1:0")).proxy("threads", "2");
  }
  /// Listener 0 is the harness's plaintext one (no limits); this adds listener 1.
  void add_listener(const std::string& keys, const std::string& address = "127.0.0.1:0") {
    config_.raw("\n[[listener]]\naddress = " + quote(address) + "\n" + keys);
  }
  /// Reloads config_ and waits until the proxy serves the new generation (corralctl reload
  /// may answer a moment before the proxy has applied it).
  void reload() {
    const double before = metric_sum(metrics(), "corral_config_generation ");
    ProcessResult r = reload_config();
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto t0 = Clock::now();
    while (metric_sum(metrics(), "corral_config_generation ") <= before && Clock::now() - t0 < 5s)
      std::this_thread::sleep_for(10ms);
    ASSERT_GT(metric_sum(metrics(), "corral_config_generation "), before) << metrics();
  }
  std::string metrics() { return http_get(admin_, "/metrics").body; }
  /// Open connections on a listener (by its metrics label), as the proxy counts them.
  double open_on(const std::string& label) {
    return metric_sum(metrics(), "corral_connections{listener=\"" + label + "\"");
  }
  bool wait_open(const std::string& label, double n, std::chrono::milliseconds timeout = 5s) {
    auto t0 = Clock::now();
    while (Clock::now() - t0 < timeout) {
      if (open_on(label) == n) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }
  double refused(const std::string& label, const std::string& reason) {
    return metric_sum(metrics(), "corral_connections_refused_total{listener=\"" + label + "\",reason=\"" + reason + "\"}");
  }
  void start_all() {
    ASSERT_NO_FATAL_FAILURE(start());
    admin_ = admin_port();
    ASSERT_GT(admin_, 0);
    limited_ = corral_->port(1);
    ASSERT_GT(limited_, 0);
  }
  int admin_ = 0;
  int limited_ = 0;
  // Both listeners are written "127.0.0.1:0": the second one's label gets its index.
  const std::string label_ = "127.0.0.1:0#1";
};

TEST_F(ConnLimitsTest, MaxConnectionsResetsOneMoreAtOnceAndTakesItBackWhenOneCloses) {
  add_listener("max_connections = 3\n");
  ASSERT_NO_FATAL_FAILURE(start_all());
  Conn c[3];
  for (auto& x : c) {
    ASSERT_TRUE(x.connect(limited_));
    ASSERT_EQ(x.request(), 200);
  }
  Conn extra;
  ASSERT_TRUE(extra.connect(limited_));  // the kernel completes the handshake; the proxy resets it
  long ms = 0;
  EXPECT_TRUE(extra.closed_silently(3s, &ms)) << "the fourth connection was not closed";
  EXPECT_LT(ms, 1500);
  EXPECT_EQ(extra.request(1s), 0);
  // The other listener has no limit of its own; the ones held are still served.
  EXPECT_EQ(http_get(port(), "/").status, 200);
  EXPECT_EQ(c[0].request(), 200);

  c[1].close();
  ASSERT_TRUE(wait_open(label_, 2)) << metrics();
  Conn again;
  ASSERT_TRUE(again.connect(limited_));
  EXPECT_EQ(again.request(), 200) << "the place of a closed connection is given back";
  Conn fifth;
  ASSERT_TRUE(fifth.connect(limited_));
  EXPECT_TRUE(fifth.closed_silently(3s));

  EXPECT_EQ(refused(label_, "max_connections"), 2) << metrics();
  EXPECT_EQ(refused(label_, "max_connections_per_client"), 0);
  EXPECT_EQ(refused("127.0.0.1:0", "max_connections"), 0);
  EXPECT_FALSE(log_lines_with("refused 1 connection since the last such line (1 at max_connections = 3)").empty())
      << corral_->log();
}

TEST_F(ConnLimitsTest, PerClientLimitCountsEachAddressAcrossLoopsAndIpv6) {
  add_listener("max_connections_per_client = 2\n");
  add_listener("max_connections_per_client = 2\n", "[::1]:0");
  ASSERT_NO_FATAL_FAILURE(start_all());
  const int v6 = corral_->port(2);
  ASSERT_GT(v6, 0);
  std::vector<std::unique_ptr<Conn>> held;
  auto open = [&](const std::string& src, int port = 0, const std::string& dst = "127.0.0.1") {
    held.push_back(std::make_unique<Conn>());
    EXPECT_TRUE(held.back()->connect(port ? port : limited_, src, dst));
    return held.back().get();
  };
  for (const char* src : {"127.0.0.1", "127.0.0.2"}) {
    EXPECT_EQ(open(src)->request(), 200) << src;
    EXPECT_EQ(open(src)->request(), 200) << src;
    EXPECT_TRUE(open(src)->closed_silently(3s)) << src << ": a third connection was not reset";
  }
  EXPECT_EQ(open("127.0.0.3")->request(), 200) << "another client is served";
  EXPECT_EQ(open("::1", v6, "::1")->request(), 200);
  EXPECT_EQ(open("::1", v6, "::1")->request(), 200);
  EXPECT_TRUE(open("::1", v6, "::1")->closed_silently(3s)) << "IPv6 clients are limited too";

  EXPECT_EQ(refused(label_, "max_connections_per_client"), 2) << metrics();
  EXPECT_EQ(refused("[::1]:0", "max_connections_per_client"), 1) << metrics();
  EXPECT_FALSE(log_lines_with("at max_connections_per_client = 2, the latest from 127.0.0.").empty()) << corral_->log();

  // One of 127.0.0.1's two closes: 127.0.0.1 may open one more, and only one.
  held[0]->close();
  ASSERT_TRUE(wait_open(label_, 4)) << metrics();
  EXPECT_EQ(open("127.0.0.1")->request(), 200);
  EXPECT_TRUE(open("127.0.0.1")->closed_silently(3s));
}

TEST_F(ConnLimitsTest, ReloadChangesTheLimitsForNewConnections) {
  add_listener("max_connections = 2\n");
  ASSERT_NO_FATAL_FAILURE(start_all());
  std::vector<std::unique_ptr<Conn>> held;
  auto open = [&](const std::string& src = "127.0.0.1") {
    held.push_back(std::make_unique<Conn>());
    EXPECT_TRUE(held.back()->connect(limited_, src));
    return held.back().get();
  };
  EXPECT_EQ(open()->request(), 200);
  EXPECT_EQ(open()->request(), 200);
  EXPECT_TRUE(open()->closed_silently(3s));
  held.pop_back();

  // Raised: the two open connections still count, two more fit.
  base_config();
  add_listener("max_connections = 4\nmax_connections_per_client = 3\n");
  ASSERT_NO_FATAL_FAILURE(reload());
  EXPECT_EQ(held[0]->request(), 200) << "a reload keeps open connections";
  EXPECT_EQ(open()->request(), 200);
  EXPECT_EQ(open("127.0.0.2")->request(), 200);
  // 127.0.0.1 has three, but the two opened before the per-client limit existed do not count
  // against it: the listener's total is what is reached.
  EXPECT_EQ(held.size(), 4u);
  EXPECT_TRUE(open("127.0.0.3")->closed_silently(3s)) << "max_connections = 4 reached";
  held.pop_back();

  // Lowered below what is open: nothing is closed, nothing new is accepted until enough close.
  base_config();
  add_listener("max_connections = 1\n");
  ASSERT_NO_FATAL_FAILURE(reload());
  for (auto& c : held) EXPECT_EQ(c->request(), 200);
  EXPECT_TRUE(open()->closed_silently(3s));
  held.pop_back();
  while (held.size() > 1) held.pop_back();
  ASSERT_TRUE(wait_open(label_, 1)) << metrics();
  EXPECT_TRUE(open()->closed_silently(3s)) << "one open = max_connections 1";
  held.pop_back();
  held.clear();
  ASSERT_TRUE(wait_open(label_, 0)) << metrics();
  EXPECT_EQ(open()->request(), 200);
  EXPECT_EQ(refused(label_, "max_connections"), 4) << metrics();
}

// The proxy at its file descriptor limit: accept() fails with EMFILE while connections wait
// in the backlog. Without a back-off the level-triggered listener wakes every loop at once,
// forever (a busy loop); with it the proxy stays idle and serves them once fds are free.
TEST_F(ConnLimitsTest, OutOfFileDescriptorsTheProxyWaitsWithoutSpinningAndThenServes) {
  // UndefinedBehaviorSanitizer's vptr check probes memory through a pipe(2); with no fd left it
  // cannot, and reports every virtual call as one on an invalid object, which stops the proxy.
  if (kAddressSanitizer) GTEST_SKIP() << "the sanitizers' checks need free file descriptors, which this test takes away";
  ASSERT_NO_FATAL_FAILURE(start());
  admin_ = admin_port();
  ASSERT_EQ(http_get(port(), "/").status, 200);  // the worker's pooled connection exists
  const pid_t pid = proxy_pid();
  // The highest fd open now + 1: the proxy may fill the holes below it, then has none.
  int highest = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    highest = std::max(highest, std::atoi(e.path().filename().c_str()));
  ProcessResult r = run_process({"prlimit", "--pid", std::to_string(pid), "--nofile", "--output", "SOFT", "--noheadings"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string old_soft = r.out.substr(0, r.out.find_last_not_of(" \n") + 1);
  r = run_process({"prlimit", "--pid", std::to_string(pid), "--nofile=" + std::to_string(highest + 1) + ":"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;

  constexpr int kClients = 30;
  std::vector<std::unique_ptr<Conn>> waiting;
  for (int i = 0; i < kClients; ++i) {
    waiting.push_back(std::make_unique<Conn>());
    ASSERT_TRUE(waiting.back()->connect(port())) << i;  // the kernel's backlog takes them
  }
  auto cpu_ticks = [&] {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::atol(field.c_str());
      if (i == 15) stime = std::atol(field.c_str());
    }
    return utime + stime;
  };
  std::this_thread::sleep_for(300ms);
  const long t0 = cpu_ticks();
  const auto w0 = Clock::now();
  std::this_thread::sleep_for(2s);
  const double cpu = static_cast<double>(cpu_ticks() - t0) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
                     (static_cast<double>(ms_since(w0)) / 1000.0);
  std::printf("[ figures ] proxy CPU while out of fds with %d connections waiting: %.1f%% of a core\n", kClients,
              cpu * 100);
  EXPECT_LT(cpu, 0.10) << "the proxy spins while it cannot accept";

  r = run_process({"prlimit", "--pid", std::to_string(pid), "--nofile=" + old_soft + ":"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto t1 = Clock::now();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(waiting[static_cast<size_t>(i)]->request(5s), 200) << i;
  std::printf("[ figures ] all %d waiting connections served %ld ms after the fd limit was raised\n", kClients,
              ms_since(t1));
  waiting.clear();
  EXPECT_GT(metric_sum(metrics(), "corral_accept_pauses_total"), 0) << metrics();
  auto lines = log_lines_with("not accepting for");
  EXPECT_FALSE(lines.empty()) << corral_->log();
  EXPECT_LE(lines.size(), 5u) << "logged at most once per second";
}

class TlsLimitsTest : public ConnLimitsTest {
 protected:
  void SetUp() override {
    ConnLimitsTest::SetUp();
    ASSERT_NO_FATAL_FAILURE(make_cert("a"));
  }
  void tls_config(const std::string& handshake_timeout) {
    base_config();
    config_.proxy("tls_handshake_timeout", quote(handshake_timeout)).proxy("client_header_timeout", quote("20s"));
    add_listener("tls = { cert = \"a.pem\", key = \"a.key\" }\n");
  }
  std::string https(const std::string& path) { return "https://localhost:" + std::to_string(limited_) + path; }
};

TEST_F(TlsLimitsTest, HandshakeDeadlineClosesSilentAndHalfHelloClients) {
  tls_config("1s");
  ASSERT_NO_FATAL_FAILURE(start_all());
  Conn silent, half;
  ASSERT_TRUE(silent.connect(limited_));
  ASSERT_TRUE(half.connect(limited_));
  // A TLS record header announcing a 512-byte ClientHello, and only its first bytes.
  ASSERT_TRUE(half.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(20, 'r')));
  long ms_silent = 0, ms_half = 0;
  std::thread t([&] { EXPECT_TRUE(half.closed_silently(5s, &ms_half)); });
  EXPECT_TRUE(silent.closed_silently(5s, &ms_silent));
  t.join();
  EXPECT_GE(ms_silent, 800);
  EXPECT_LT(ms_silent, 3000) << "closed by tls_handshake_timeout (1s), not client_header_timeout (20s)";
  EXPECT_GE(ms_half, 800);
  EXPECT_LT(ms_half, 3000);
  EXPECT_EQ(metric_sum(metrics(), "corral_tls_handshake_failures_total{listener=\"" + label_ + "\",reason=\"timeout\"}"), 2)
      << metrics();
  HttpResponse ok = curl({"-k", https("/")});
  EXPECT_EQ(ok.status, 200) << ok.error;

  // A reload changes the deadline for new connections.
  tls_config("3s");
  ASSERT_NO_FATAL_FAILURE(reload());
  Conn later;
  ASSERT_TRUE(later.connect(limited_));
  long ms_later = 0;
  EXPECT_TRUE(later.closed_silently(6s, &ms_later));
  EXPECT_GE(ms_later, 2500);
  EXPECT_LT(ms_later, 5000);
}

// Client-initiated renegotiation is a DoS lever (a cheap client request, an expensive server
// handshake): the proxy refuses it (SSL_OP_NO_RENEGOTIATION; OpenSSL 3 also refuses unless
// SSL_OP_ALLOW_CLIENT_RENEGOTIATION is set, which makes this test fail) while TLS 1.2 requests
// work.
TEST_F(TlsLimitsTest, Tls12RenegotiationIsRefused) {
  tls_config("10s");
  ASSERT_NO_FATAL_FAILURE(start_all());
  HttpResponse ok = curl({"-k", "--tlsv1.2", "--tls-max", "1.2", https("/")});
  ASSERT_EQ(ok.status, 200) << ok.error;
  // s_client's interactive "R" asks for a renegotiation; then it would send a request.
  // Without -quiet, a line starting with R renegotiates instead of being sent.
  ProcessResult r = run_process({"/bin/sh", "-c",
                                 "(printf 'R\\n'; sleep 1; printf 'GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n'; sleep 1) | "
                                 "openssl s_client -tls1_2 -connect 127.0.0.1:" + std::to_string(limited_) +
                                 " -servername localhost 2>&1"},
                                20s);
  const std::string out = r.out + r.err;
  ASSERT_NE(out.find("Protocol  : TLSv1.2"), std::string::npos) << out;
  EXPECT_NE(out.find("RENEGOTIATING"), std::string::npos) << out;
  EXPECT_NE(out.find("no renegotiation"), std::string::npos) << "the server's refusal: " << out;
  EXPECT_EQ(out.find("HTTP/1.1 200"), std::string::npos) << "the connection went on after the renegotiation: " << out;
  // Refused, the connection is gone; the next client is served.
  ok = curl({"-k", "--tlsv1.2", "--tls-max", "1.2", https("/")});
  EXPECT_EQ(ok.status, 200) << ok.error;
}

}  // namespace
}  // namespace corral::itest
