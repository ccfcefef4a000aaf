// WebSocket tunnels end to end: the python3-websockets echo app (tests/apps/websocket_echo)
// as a kind = "http" worker behind corral, driven by python3-websockets over HTTP/1.1
// (plaintext and TLS) and by python3-h2 over HTTP/2 (RFC 8441 extended CONNECT, TLS and
// h2c), through tests/integration/ws/ws_client.py. Covers large messages under
// backpressure, bytes sent before the 101, a worker failing mid-tunnel, the idle timeout, concurrency accounting with and without max_tunnels,
// non-101 answers, upgrades to apps that cannot switch, /metrics, and a reload and a stop
// while tunnels are open.
#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

const std::string kSource = CORRAL_SOURCE_DIR;
const std::string kEcho = kSource + "/tests/apps/websocket_echo/echo.py";
const std::string kClient = kSource + "/tests/integration/ws/ws_client.py";

class WebSocketTest : public IntegrationTest {
 protected:
  /// The echo app as `name` (kind http, fd 3), routed at /echo, /info, /deny, /plain, /close.
  AppSpec& echo_app(const std::string& name = "ws") {
    AppSpec& a = config_.app(name);
    a.command = {"/usr/bin/python3", kEcho};
    a.set("health_path", quote("/health"));  // answered 426: below 500 = ready
    for (const char* p : {"/echo", "/info", "/deny", "/plain", "/close"}) config_.route(name, p);
    return a;
  }
  int tls_port() { return corral_->port(1); }
  nlohmann::json client(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s) {
    std::vector<std::string> argv = {"/usr/bin/python3", kClient};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = run_process(argv, timeout);
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded()) return nlohmann::json{{"ok", false}, {"error", "no JSON: " + r.out + r.err}};
    return j;
  }
  std::string ws(const std::string& path) { return "ws://127.0.0.1:" + std::to_string(port()) + path; }
  std::string wss(const std::string& path) { return "wss://127.0.0.1:" + std::to_string(tls_port()) + path; }  // an address: a fresh machine may not resolve localhost
  std::string http(const std::string& path) { return "http://127.0.0.1:" + std::to_string(port()) + path; }
};

TEST_F(WebSocketTest, EchoOverHttp1PlaintextAndTls) {
  echo_app().workers(1).concurrency(8);
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start());
  for (const std::string& url : {ws("/echo"), wss("/echo")}) {
    nlohmann::json r = client({"echo", "--url", url, "--messages", "50", "--size", "200", "--conns", "3"});
    EXPECT_TRUE(r.value("ok", false)) << url << ": " << r.dump();
    EXPECT_EQ(r.value("messages", 0), 150) << r.dump();
    r = client({"echo", "--url", url, "--messages", "20", "--size", "3000", "--binary"});
    EXPECT_TRUE(r.value("ok", false)) << url << ": " << r.dump();
  }
  // What the worker got: the client's Upgrade and the WebSocket fields, corral's forwarding.
  nlohmann::json r = client({"info", "--url", wss("/info")});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  const nlohmann::json& h = r["info"]["headers"];
  EXPECT_EQ(h.value("upgrade", ""), "websocket") << h.dump();
  EXPECT_EQ(h.value("connection", ""), "upgrade") << h.dump();
  EXPECT_EQ(h.value("sec-websocket-version", ""), "13") << h.dump();
  EXPECT_EQ(h.value("sec-websocket-key", "").size(), 24u) << h.dump();
  EXPECT_EQ(h.value("x-forwarded-proto", ""), "https") << h.dump();
  EXPECT_FALSE(h.value("x-request-id", "").empty()) << h.dump();
  // One access-log line per tunnel, with the 101.
  EXPECT_TRUE(wait_status([&](const nlohmann::json&) { return !log_lines_with("\"GET /info HTTP/1.1\" 101").empty(); }, 5s));
}

TEST_F(WebSocketTest, EchoOverHttp2ExtendedConnect) {
  echo_app().workers(1).concurrency(8);
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start());
  for (bool tls : {true, false}) {
    std::vector<std::string> base = {"h2", "--port", std::to_string(tls ? tls_port() : port())};
    if (tls) base.push_back("--tls");
    auto with = [&](std::vector<std::string> more) {
      std::vector<std::string> a = base;
      a.insert(a.end(), more.begin(), more.end());
      return client(a);
    };
    nlohmann::json r = with({"--path", "/info", "--messages", "20", "--size", "500"});
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_EQ(r.value("enable_connect_protocol", -1), 1) << r.dump();
    EXPECT_EQ(r.value("status", 0), 200) << r.dump();
    EXPECT_EQ(r.value("messages", 0), 20) << r.dump();
    EXPECT_EQ(r.value("close_opcode", 0), 8) << "the worker answered the close frame: " << r.dump();
    EXPECT_TRUE(r.value("ended", false)) << "END_STREAM both ways after the close: " << r.dump();
    EXPECT_FALSE(r["response_headers"].contains("sec-websocket-accept")) << r.dump();
    const nlohmann::json& h = r["info"]["headers"];
    EXPECT_EQ(h.value("upgrade", ""), "websocket") << h.dump();
    EXPECT_EQ(h.value("connection", ""), "upgrade") << h.dump();
    EXPECT_EQ(h.value("sec-websocket-key", "").size(), 24u) << "corral generates the key: " << h.dump();
    EXPECT_EQ(h.value("sec-websocket-version", ""), "13") << h.dump();
    EXPECT_EQ(h.value("x-forwarded-proto", ""), tls ? "https" : "http") << h.dump();
    // Answers that open no tunnel.
    r = with({"--path", "/deny"});
    EXPECT_EQ(r.value("status", 0), 403) << r.dump();
    EXPECT_EQ(r.value("body", ""), "denied\n") << r.dump();
    r = with({"--path", "/plain"});
    EXPECT_EQ(r.value("status", 0), 502) << "a 200 without a switch is no tunnel: " << r.dump();
    r = with({"--path", "/echo", "--protocol", "chat"});
    EXPECT_EQ(r.value("status", 0), 501) << r.dump();
  }
  EXPECT_FALSE(log_lines_with("\"CONNECT /info HTTP/2.0\" 200").empty());
  allowed_errors_ = {"instead of 101"};
}

TEST_F(WebSocketTest, AWorkerFailingMidTunnelResetsTheStream) {
  echo_app().workers(1).concurrency(4);
  config_.route("ws", "/abort");
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json r = client({"h2", "--port", std::to_string(port()), "--path", "/abort", "--size", std::to_string(200 << 10)});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r.value("status", 0), 200) << r.dump();
  EXPECT_EQ(r["reset"], 2) << "RST_STREAM(INTERNAL_ERROR): " << r.dump();
  // HTTP/1.1: the client connection is closed.
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  std::string frame = "\x82\xff";
  for (int i = 7; i >= 0; --i) frame.push_back(static_cast<char>((uint64_t{1} << 20) >> (8 * i) & 0xff));
  frame += std::string(4, '\0') + std::string(1 << 20, 'x');
  ASSERT_TRUE(c.send("GET /abort HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  c.send(frame);
  std::string got = c.read_until_close(10s);
  EXPECT_TRUE(c.closed()) << got.substr(0, 200);
  EXPECT_EQ(got.rfind("HTTP/1.1 101 ", 0), 0u) << got.substr(0, 200);
}

TEST_F(WebSocketTest, LargeMessagesUnderBackpressure) {
  echo_app().workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start());
  // 8 MiB messages, one at a time, both ways through the proxy's 256 KiB buffers.
  nlohmann::json r = client({"echo", "--url", ws("/echo"), "--messages", "3", "--size", std::to_string(8 << 20), "--binary"});
  EXPECT_TRUE(r.value("ok", false)) << r.dump();
  // 16 × 1 MiB sent before anything is read, the client silent for a second: the proxy
  // stops reading (both ways) instead of buffering, and every byte arrives.
  r = client({"burst", "--url", wss("/echo"), "--messages", "16", "--size", std::to_string(1 << 20), "--pause", "1"});
  EXPECT_TRUE(r.value("ok", false)) << r.dump();
  // HTTP/2: flow control end to end.
  r = client({"h2", "--port", std::to_string(tls_port()), "--tls", "--messages", "4", "--size", std::to_string(1 << 20)});
  EXPECT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r.value("messages", 0), 4) << r.dump();
}

TEST_F(WebSocketTest, IdleTunnelsAreClosed) {
  echo_app().workers(1).concurrency(4).set("tunnel_idle_timeout", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json r = client({"idle", "--url", ws("/echo"), "--idle", "1"});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_TRUE(r.value("busy_survived", false)) << r.dump();
  EXPECT_TRUE(r.value("idle_closed", false)) << r.dump();
  EXPECT_GE(r.value("idle_closed_after", 0.0), 0.9) << r.dump();
  EXPECT_LT(r.value("idle_closed_after", 99.0), 3.0) << r.dump();
}

TEST_F(WebSocketTest, ATunnelHoldsItsRequestSlot) {
  // No max_tunnels: a concurrency = 1 worker with an open tunnel takes no other request.
  echo_app().workers(1).concurrency(1).queue_timeout("20s");
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json r = client({"concurrency", "--url", ws("/echo"), "--get", http("/plain"), "--hold", "1.5"});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_TRUE(r.value("waited_while_open", false)) << "the request went to a worker busy with a tunnel: " << r.dump();
  EXPECT_TRUE(r.value("tunnel_worked", false)) << r.dump();
  EXPECT_EQ(r["get"].value("status", 0), 200) << r.dump();
  EXPECT_GE(r["get"].value("at", 0.0), 1.4) << r.dump();
}

TEST_F(WebSocketTest, MaxTunnelsIsASeparateBound) {
  config_.proxy("admin", quote("127.0.0.1:0"));
  echo_app().workers(1).concurrency(1).queue_timeout("1s").set("max_tunnels", "2");
  ASSERT_NO_FATAL_FAILURE(start());
  const int ap = admin_port();
  ASSERT_GT(ap, 0);
  nlohmann::json r = client({"max-tunnels", "--url", ws("/echo"), "--get", http("/plain"), "--n", "2", "--metrics",
                             "http://127.0.0.1:" + std::to_string(ap) + "/metrics"});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r.value("opened", 0), 2) << r.dump();
  EXPECT_EQ(r.value("plain_status", 0), 200) << "the request slot is free while 2 tunnels are open: " << r.dump();
  EXPECT_LT(r.value("plain_seconds", 99.0), 0.9) << r.dump();
  EXPECT_EQ(r.value("extra_status", 0), 503) << "a third tunnel waits for a place, then 503: " << r.dump();
  EXPECT_TRUE(r.value("after_close", false)) << "a place frees when a tunnel closes: " << r.dump();
  ASSERT_TRUE(r["metrics_open"].is_array()) << r.dump();
  const std::string metrics = r["metrics_open"][1].get<std::string>();
  EXPECT_NE(metrics.find("corral_tunnels_open{app=\"ws\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("corral_tunnels_total{app=\"ws\"} 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("corral_tunnel_bytes_total{app=\"ws\",direction=\"up\"}"), std::string::npos) << metrics;
  // All closed now.
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json&) {
        HttpResponse m = http_get(ap, "/metrics");
        return m.body.find("corral_tunnels_open{app=\"ws\"} 0") != std::string::npos;
      },
      5s));
  // A reload that changes the bound applies in place.
  config_.app("ws").set("max_tunnels", "3");
  rt_.write_file("corral.toml", config_.render());
  ProcessResult rl = ctl({"reload"});
  EXPECT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_NE(rl.out.find("max_tunnels 2 -> 3"), std::string::npos) << rl.out;
  r = client({"max-tunnels", "--url", ws("/echo"), "--get", http("/plain"), "--n", "3"});
  EXPECT_EQ(r.value("opened", 0), 3) << r.dump();
  EXPECT_EQ(r.value("extra_status", 0), 503) << r.dump();
}

TEST_F(WebSocketTest, NonSwitchingAnswersAreRelayed) {
  AppSpec& t = config_.app("t");  // corral-testapp: answers an upgrade request like any GET
  t.workers(1);
  config_.route("t", "/", "t.test");
  echo_app().workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json r = client({"status", "--url", ws("/deny")});
  EXPECT_EQ(r.value("status", 0), 403) << r.dump();
  // The testapp answers 200 to an upgrade request: relayed as a response, and the
  // connection goes on with the next request.
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  ASSERT_TRUE(c.send("GET /echo HTTP/1.1\r\nHost: t.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                     "GET /echo HTTP/1.1\r\nHost: t.test\r\n\r\n"));
  auto rs = c.read_responses(2, 10s);
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].status, 200);
  nlohmann::json echo = parse_echo(rs[0].body);
  EXPECT_EQ(echo_headers(echo, "upgrade"), std::vector<std::string>{"websocket"}) << rs[0].body;
  EXPECT_EQ(rs[1].status, 200);
  EXPECT_TRUE(echo_headers(parse_echo(rs[1].body), "upgrade").empty()) << rs[1].body;
}

TEST_F(WebSocketTest, BytesSentBeforeTheSwitchReachTheWorker) {
  echo_app().workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  // The upgrade request and a first WebSocket frame in one write (a client need not wait for
  // the 101): the frame was read with the head, and goes to the worker after the switch.
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(port()));
  const std::string frame = std::string("\x81\x85\x00\x00\x00\x00hello", 11);  // masked (zero key) "hello"
  ASSERT_TRUE(c.send("GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" +
                     frame));
  std::string got;
  for (int i = 0; i < 50 && got.find("hello") == std::string::npos; ++i) got += c.read_some(200ms);
  EXPECT_EQ(got.rfind("HTTP/1.1 101 ", 0), 0u) << got;
  EXPECT_NE(got.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << got;
  EXPECT_NE(got.find("\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello"), std::string::npos) << got;
}

TEST_F(WebSocketTest, UpgradesThatAreNotForwarded) {
  AppSpec& t = config_.app("t");
  t.workers(1);
  config_.route("t", "/", "t.test");
  AppSpec& cgi = config_.app("cgi");
  cgi.kind = "cgi";
  cgi.command = {kSource + "/tests/apps/cgi/env.sh"};
  cgi.workers(1);
  config_.route("cgi", "/cgi");
  ASSERT_NO_FATAL_FAILURE(start());
  // A cgi app cannot switch: a plain request without Upgrade (nginx without upgrade settings).
  HttpResponse r = http_get(port(), "/cgi", {"-H", "Upgrade: websocket", "-H", "Connection: Upgrade"});
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body.find("HTTP_UPGRADE"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("HTTP_CONNECTION"), std::string::npos) << r.body;
  // h2c is for the proxy's own hop: never forwarded, even to an http app.
  r = http_get(port(), "/echo", {"-H", "Host: t.test", "-H", "Upgrade: h2c", "-H", "Connection: Upgrade, HTTP2-Settings", "-H", "HTTP2-Settings: AAMAAABkAAQAAP__"});
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(echo_headers(parse_echo(r.body), "upgrade").empty()) << r.body;
  EXPECT_TRUE(echo_headers(parse_echo(r.body), "http2-settings").empty()) << r.body;
  // A request with a body, or HTTP/1.0: no upgrade either.
  r = http_get(port(), "/echo", {"-H", "Host: t.test", "-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "--data", "x=1"});
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(echo_headers(parse_echo(r.body), "upgrade").empty()) << r.body;
  r = http_get(port(), "/echo", {"-H", "Host: t.test", "-0", "-H", "Upgrade: websocket", "-H", "Connection: Upgrade"});
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(echo_headers(parse_echo(r.body), "upgrade").empty()) << r.body;
}

TEST_F(WebSocketTest, AReloadLeavesTunnelsWithTheOldWorkerUntilGracefulTimeout) {
  echo_app().workers(1).concurrency(4).set("graceful_timeout", quote("3s")).env["GEN"] = "1";
  ASSERT_NO_FATAL_FAILURE(start());
  config_.app("ws").env["GEN"] = "2";
  rt_.write_file("corral.toml", config_.render());
  const std::string reload = bin_path("corralctl") + "\x1f--socket\x1f" + rt_.runtime_dir() + "/control.sock\x1freload";
  nlohmann::json r = client({"reload", "--url", ws("/info"), "--reload-cmd", reload});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_EQ(r.value("reload_exit", -1), 0) << r.dump();
  EXPECT_TRUE(r.value("old_works_after_reload", false)) << r.dump();
  EXPECT_NE(r.value("old_pid", 0), r.value("new_pid", 0)) << "new tunnels go to the new generation: " << r.dump();
  EXPECT_TRUE(r.value("closed", false)) << r.dump();
  EXPECT_GE(r.value("closed_after", 0.0), 2.0) << "kept until graceful_timeout: " << r.dump();
  EXPECT_LT(r.value("closed_after", 99.0), 8.0) << r.dump();
  const pid_t old_pid = r.value("old_pid", 0);
  ASSERT_GT(old_pid, 0);
  EXPECT_TRUE(wait_status([&](const nlohmann::json&) { return ::kill(old_pid, 0) != 0; }, 10s))
      << "the old worker is stopped after graceful_timeout";
  EXPECT_FALSE(log_lines_with("graceful_timeout passed while draining").empty());
  allowed_errors_ = {"graceful_timeout passed"};
}

TEST_F(WebSocketTest, AClosedTunnelLetsTheOldWorkerGoAtOnce) {
  echo_app().workers(1).concurrency(4).set("graceful_timeout", quote("20s")).env["GEN"] = "1";
  ASSERT_NO_FATAL_FAILURE(start());
  // The tunnel closes 1 s after the reload: the old worker, with nothing left, stops then,
  // long before its 20 s graceful_timeout.
  config_.app("ws").env["GEN"] = "2";
  rt_.write_file("corral.toml", config_.render());
  const std::string reload = bin_path("corralctl") + "\x1f--socket\x1f" + rt_.runtime_dir() + "/control.sock\x1freload";
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json r = client({"reload", "--url", ws("/info"), "--reload-cmd", reload, "--close-after", "1"});
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_TRUE(r.value("old_works_after_reload", false)) << r.dump();
  const pid_t old_pid = r.value("old_pid", 0);
  ASSERT_GT(old_pid, 0);
  EXPECT_TRUE(wait_status([&](const nlohmann::json&) { return ::kill(old_pid, 0) != 0; }, 8s))
      << "the old worker stops once its last tunnel closed";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  EXPECT_TRUE(log_lines_with("graceful_timeout passed while draining").empty());
}

TEST_F(WebSocketTest, AGracefulStopKeepsTunnelsUntilGracefulTimeout) {
  config_.supervisor("graceful_timeout", quote("2s"));
  echo_app().workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json r;
  std::chrono::steady_clock::time_point closed_at;
  std::thread t([&] {
    r = client({"hold", "--url", ws("/echo"), "--hold", "20"});
    closed_at = std::chrono::steady_clock::now();
  });
  // The tunnel is open and busy when the stop begins (the client opens it well within 1.5 s,
  // its interpreter's start included).
  std::this_thread::sleep_for(1500ms);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(stop_and_expect_clean(15s));
  const auto stopped = std::chrono::steady_clock::now() - t0;
  t.join();
  ASSERT_TRUE(r.value("ok", false)) << r.dump();
  EXPECT_GT(r.value("echoes", 0), 10) << r.dump();
  // Open before the stop, kept through the proxy's 2 s graceful_timeout: the client sees
  // its tunnel end no sooner than 2 s after the stop began (measured here, not from the
  // client's own start, which a loaded machine delays).
  EXPECT_GE(closed_at - t0, 1900ms) << r.dump();
  EXPECT_GE(r.value("lived", 0.0), 2.0) << r.dump();
  EXPECT_LT(r.value("lived", 99.0), 12.0) << r.dump();
  EXPECT_GE(stopped, 1900ms);
  allowed_errors_ = {"graceful timeout passed"};
}

}  // namespace
}  // namespace corral::itest
