// The admin listener ([proxy] admin): /metrics in the Prometheus text format (checked with
// promtool), /healthz, /readyz (fails when no worker is ready and first when stopping),
// served by the proxy itself on its own socket, reconfigured by a reload.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <map>
#include <regex>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kCgiDir = std::string(CORRAL_SOURCE_DIR) + "/tests/apps/cgi";

/// One sample of a Prometheus text exposition: name{labels} value, by the exact series text.
std::map<std::string, double> parse_samples(const std::string& text) {
  std::map<std::string, double> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

class AdminTest : public IntegrationTest {
 protected:
  void SetUp() override {
    config_.proxy("admin", quote("127.0.0.1:0"));
    config_.app("demo").workers(2).concurrency(2);
    AppSpec& cgi = config_.app("cgi");
    cgi.kind = "cgi";
    cgi.command.clear();
    cgi.set("root", quote(kCgiDir));
    cgi.workers(1);
    config_.route("cgi", "/cgi-bin");
    config_.route("demo", "/");
  }
};

TEST_F(AdminTest, MetricsCountWhatHappenedAndPassPromtool) {
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  ASSERT_GT(admin, 0) << corral_->status().dump();

  for (int i = 0; i < 5; ++i) ASSERT_EQ(http_get(port(), "/").status, 200);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_get(port(), "/", {"--http2-prior-knowledge"}).status, 200);
  ASSERT_EQ(http_get(port(), "/status?code=503").status, 503);
  ASSERT_EQ(http_get(port(), "/cgi-bin/env.sh").status, 200);
  {
    // Malformed: two Host fields → 400 from the proxy; no app sees it.
    RawClient c;
    ASSERT_TRUE(c.connect_tcp(port()));
    c.send("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    auto rs = parse_responses(c.read_until_close(5s));
    ASSERT_EQ(rs.size(), 1u);
    EXPECT_EQ(rs[0].status, 400);
  }

  {
    // HTTP/2 by hand (h2c prior knowledge): a client's GOAWAY(NO_ERROR), and a DATA frame on
    // stream 0, which the proxy answers with GOAWAY(PROTOCOL_ERROR).
    const std::string preface = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9);
    RawClient a;
    ASSERT_TRUE(a.connect_tcp(port()));
    a.send(preface + std::string("\0\0\x08\x07\0\0\0\0\0" "\0\0\0\0" "\0\0\0\0", 17));
    a.read_some(500ms);
    RawClient b;
    ASSERT_TRUE(b.connect_tcp(port()));
    b.send(preface + std::string("\0\0\x01\0\0\0\0\0\0" "x", 10));
    b.read_until_close(5s);
  }

  HttpResponse m = http_get(admin, "/metrics");
  ASSERT_EQ(m.status, 200) << m.error;
  EXPECT_NE(m.header("content-type").find("text/plain; version=0.0.4"), std::string::npos);
  auto s = parse_samples(m.body);
  EXPECT_EQ(s[R"(corral_requests_total{app="demo",route="/",code="2xx",protocol="http1"})"], 5) << m.body;
  EXPECT_EQ(s[R"(corral_requests_total{app="demo",route="/",code="2xx",protocol="h2"})"], 3) << m.body;
  EXPECT_EQ(s[R"(corral_requests_total{app="demo",route="/",code="5xx",protocol="http1"})"], 1) << m.body;
  EXPECT_EQ(s[R"(corral_requests_total{app="cgi",route="/cgi-bin",code="2xx",protocol="http1"})"], 1) << m.body;
  EXPECT_EQ(s[R"(corral_request_duration_seconds_count{app="demo",route="/"})"], 9) << m.body;
  EXPECT_EQ(s[R"(corral_upstream_time_seconds_count{app="demo",route="/"})"], 9) << m.body;
  EXPECT_EQ(s[R"(corral_rejected_requests_total{reason="several_host_fields",status="400",protocol="http1"})"], 1)
      << m.body;
  EXPECT_GE(s[R"(corral_connections_accepted_total{listener="127.0.0.1:0"})"], 10) << m.body;
  EXPECT_GT(s[R"(corral_received_bytes_total{listener="127.0.0.1:0"})"], 0) << m.body;
  EXPECT_GE(s[R"(corral_h2_streams_total)"], 3) << m.body;
  EXPECT_EQ(s[R"(corral_h2_goaways_total{direction="received",error="NO_ERROR"})"], 1) << m.body;
  EXPECT_EQ(s[R"(corral_h2_goaways_total{direction="sent",error="PROTOCOL_ERROR"})"], 1) << m.body;
  EXPECT_EQ(s[R"(corral_ready)"], 1) << m.body;
  // Worker figures come from the supervisor within about a second.
  bool figures = false;
  for (int i = 0; i < 30 && !figures; ++i) {
    auto now = parse_samples(http_get(admin, "/metrics").body);
    figures = now[R"(corral_workers{app="demo",state="ready"})"] == 2 &&
              now[R"(corral_worker_pss_bytes{app="demo",worker="0"})"] > 0;
    if (!figures) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(figures) << http_get(admin, "/metrics").body;

  // The exposition is valid for Prometheus's own checker.
  std::string file = rt_.write_file("metrics.txt", http_get(admin, "/metrics").body);
  if (::access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "promtool (Debian's prometheus package) is not installed";
  ProcessResult p = run_process({"/bin/sh", "-c", "promtool check metrics < " + file}, 30s);
  EXPECT_EQ(p.exit_code, 0) << p.out << p.err;
}

TEST_F(AdminTest, ExitsAndQueueRejectionsAreCounted) {
  config_.app("demo").workers(1).concurrency(1).queue_size(1).queue_timeout("300ms");
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  // One in flight, one queued (times out after 300 ms), the rest refused at once (queue full).
  auto rs = parallel(4, [&](int) { return http_get(port(), "/sleep?ms=1000"); });
  int rejected = 0;
  for (auto& r : rs) rejected += r.status == 503;
  EXPECT_GE(rejected, 2);
  auto pids = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(pids.size(), 1u);
  ::kill(pids[0], SIGKILL);
  allowed_errors_ = {"exited: reason=signal"};
  bool seen = false;
  std::string body;
  for (int i = 0; i < 50 && !seen; ++i) {
    body = http_get(admin, "/metrics").body;
    auto s = parse_samples(body);
    seen = s[R"(corral_worker_exits_total{app="demo",reason="signal"})"] >= 1;
    if (!seen) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(seen) << body;
  auto s = parse_samples(body);
  double full = s[R"(corral_queue_rejections_total{app="demo",route="/",cause="queue_full"})"];
  double timeout = s[R"(corral_queue_rejections_total{app="demo",route="/",cause="queue_timeout"})"];
  EXPECT_EQ(full + timeout, rejected) << body;
  EXPECT_GE(timeout, 1) << body;
}

TEST_F(AdminTest, ReadyzFollowsWorkersAndFailsFirstWhenStopping) {
  config_.supervisor("graceful_timeout", quote("10s"));
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  EXPECT_EQ(http_get(admin, "/healthz").status, 200);
  HttpResponse r = http_get(admin, "/readyz");
  EXPECT_EQ(r.status, 200) << r.body;

  // An app without a ready worker (added by a reload; it exits at once): not ready, and the
  // answer says which app.
  AppSpec& broken = config_.app("broken");
  broken.command = {"/bin/sh", "-c", "exit 3"};
  config_.route("broken", "/broken");
  rt_.write_file("corral.toml", config_.render());
  allowed_errors_ = {"exited: reason=", "exit code 3", "broken"};
  corral_->signal(SIGHUP);
  bool not_ready = false;
  for (int i = 0; i < 50 && !not_ready; ++i) {
    r = http_get(admin, "/readyz");
    not_ready = r.status == 503;
    if (!not_ready) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(not_ready);
  EXPECT_NE(r.body.find("app broken: no ready worker"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("app demo"), std::string::npos) << r.body;
  // Removed again: ready.
  config_ = ConfigBuilder(rt_.path());
  SetUp();
  config_.supervisor("graceful_timeout", quote("10s"));
  rt_.write_file("corral.toml", config_.render());
  corral_->signal(SIGHUP);
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    ready = http_get(admin, "/readyz").status == 200;
    if (!ready) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(ready);

  // A graceful stop with a request in flight: /readyz answers 503 "stopping" while the
  // request finishes; the listener itself no longer accepts.
  std::thread slow([&] { EXPECT_EQ(http_get(port(), "/sleep?ms=2500").status, 200); });
  std::this_thread::sleep_for(300ms);
  corral_->signal(SIGTERM);
  bool stopping = false;
  for (int i = 0; i < 40 && !stopping; ++i) {
    r = http_get(admin, "/readyz");
    stopping = r.status == 503 && r.body.find("stopping") != std::string::npos;
    if (!stopping) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(stopping) << r.status << " " << r.body;
  slow.join();
  EXPECT_EQ(corral_->wait_exit(15s), std::optional<int>(0));
  stopped_ = true;
}

TEST_F(AdminTest, ReloadMovesTheAdminListenerAndAcceptsAUnixSocket) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_GT(admin_port(), 0);
  const std::string sock = rt_.path() + "/admin.sock";
  config_.proxy("admin", quote(sock));
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("proxy.admin"), std::string::npos) << r.out;
  HttpResponse h = curl({"--unix-socket", sock, "http://localhost/healthz"});
  EXPECT_EQ(h.status, 200) << h.error;
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  config_.proxy("admin", quote("off"));
  r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(::access(sock.c_str(), F_OK), 0) << "the old admin socket file is removed";
  EXPECT_TRUE(corral_->status()["admin"].is_null());
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

TEST_F(AdminTest, AdminRequestsNeverReachAWorkerAndOthersAreRefused) {
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  EXPECT_EQ(http_get(admin, "/hello").status, 404);
  EXPECT_EQ(http_get(admin, "/metrics", {"-X", "POST", "-d", "x"}).status, 405);
  HttpResponse head = http_get(admin, "/healthz", {"-I"});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "3");
  EXPECT_TRUE(app_lines_with("/hello").empty()) << "the admin listener forwarded a request to an app";
  // The public listener does not serve admin paths: they go to the app like any path.
  HttpResponse pub = http_get(port(), "/metrics");
  EXPECT_NE(pub.status, 0) << pub.error;
  EXPECT_EQ(pub.body.find("corral_requests_total"), std::string::npos);
}

}  // namespace
}  // namespace corral::itest
