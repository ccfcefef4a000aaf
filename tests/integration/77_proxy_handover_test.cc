// corralctl restart-proxy: corral-proxy replaced make-before-break under load, with real
// clients. The new proxy accepts on the same sockets before the old one stops; idle
// plaintext keep-alive connections move to the new proxy (SCM_RIGHTS through the
// supervisor) and keep working; what is in flight finishes on the old one (HTTP/1.1 with
// Connection: close, HTTP/2 with the GOAWAY pair, a slow request, a WebSocket tunnel); no
// request fails. A new proxy that cannot start leaves the old one serving.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/load.h"
#include "tests/integration/harness/subprocess.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kSource = CORRAL_SOURCE_DIR;
const std::string kWsEcho = kSource + "/tests/apps/websocket_echo/echo.py";
const std::string kWsClient = kSource + "/tests/integration/ws/ws_client.py";

bool process_gone(pid_t pid, std::chrono::milliseconds limit) {
  for (auto until = Clock::now() + limit; Clock::now() < until;) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

const char kGet[] = "GET /pid HTTP/1.1\r\nHost: x\r\n\r\n";

class ProxyHandoverTest : public IntegrationTest {
 protected:
  void SetUp() override {
    config_.proxy("admin", quote("127.0.0.1:0"));
    config_.supervisor("graceful_timeout", quote("10s"));
    config_.app("demo").workers(2).concurrency(16);
  }
  /// The demo app at "/" (after any more specific route a test adds first: the first match wins).
  void start_with_demo() {
    config_.route("demo", "/");
    start();
  }
  /// `corralctl restart-proxy --json`, parsed (with "exit" = corralctl's exit code).
  nlohmann::json restart_proxy() {
    ProcessResult r = ctl({"restart-proxy", "--json"}, 30s);
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded()) j = nlohmann::json{{"raw", r.out + r.err}};
    j["exit"] = r.exit_code;
    j["stderr"] = r.err;
    return j;
  }
  /// n idle keep-alive connections that each had one answer.
  std::vector<std::unique_ptr<RawClient>> idle_connections(int port, size_t n) {
    std::vector<std::unique_ptr<RawClient>> out;
    for (size_t i = 0; i < n; ++i) {
      auto c = std::make_unique<RawClient>();
      EXPECT_TRUE(c->connect_tcp(port));
      EXPECT_TRUE(c->send(kGet));
      auto r = c->read_responses(1, 5s);
      EXPECT_EQ(r.size(), 1u);
      if (!r.empty()) {
        EXPECT_EQ(r[0].status, 200);
      }
      out.push_back(std::move(c));
    }
    return out;
  }
  /// Each connection answers a second request (on the same socket); returns how many did.
  size_t still_serving(std::vector<std::unique_ptr<RawClient>>& conns) {
    size_t n = 0;
    for (auto& c : conns) {
      if (!c->send(kGet)) continue;
      auto r = c->read_responses(2, 5s);
      if (r.size() == 2 && r[1].status == 200 && !c->closed()) ++n;
    }
    return n;
  }
};

// HTTP/1.1 keep-alive load (4 busy connections), new-connection load and 150 idle keep-alive
// connections (three hand-over batches of at most 64) across `corralctl restart-proxy`, then a reload: no request fails, the idle
// connections are handed over and answer on the same socket, the busy ones are told to
// reconnect, the old proxy exits as a retirement (no restart, no back-off).
TEST_F(ProxyHandoverTest, RestartUnderKeepaliveLoadHandsIdleConnectionsOver) {
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const pid_t old_pid = proxy_pid();
  ASSERT_GT(old_pid, 0);
  auto idle = idle_connections(port(), 150);
  KeepaliveLoad load;
  load.start(port(), 4, "/", rt_.path());
  ASSERT_TRUE(load.wait_ready()) << "the keep-alive load never got an answer";
  // New connections, one request each (Connection: close), on two threads.
  Http1Load fresh(port(), {{"/", {}}}, 2, Http1Load::Connections::kNewEach, 2ms);
  std::this_thread::sleep_for(300ms);

  const auto t0 = Clock::now();
  nlohmann::json r = restart_proxy();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  EXPECT_EQ(r.value("status", ""), "replaced") << r.dump();
  EXPECT_EQ(r.value("old_pid", 0), old_pid);
  const pid_t new_pid = r.value("new_pid", 0);
  EXPECT_GT(new_pid, 0);
  EXPECT_NE(new_pid, old_pid);
  EXPECT_EQ(proxy_pid(), new_pid);
  // The 150 idle ones at least (a load connection between two requests may be idle too).
  EXPECT_GE(r.value("handed_over", 0), 150) << r.dump();
  EXPECT_EQ(r.value("refused", -1), 0) << r.dump();

  // The old proxy has nothing left once its busy connections answered: it exits long
  // before graceful_timeout.
  EXPECT_TRUE(process_gone(old_pid, 8s)) << "the old proxy did not exit";
  std::this_thread::sleep_for(500ms);  // load on the new proxy alone
  nlohmann::json l = load.finish();
  fresh.stop();

  // The idle connections answer on their socket, served by the new proxy (the old is gone).
  EXPECT_EQ(still_serving(idle), idle.size());

  ASSERT_TRUE(l.is_object()) << load.result.out << load.result.err;
  EXPECT_TRUE(l["failures"].empty()) << l["failures"].dump();
  EXPECT_EQ(l.value("ok", 0), l.value("requests", -1)) << l["statuses"].dump();
  EXPECT_EQ(fresh.failed(), 0);
  EXPECT_GT(fresh.ok(), 5);
  const int reconnected = l.value("connections", 0) - 4;
  std::printf("restart-proxy took %lld ms: %d idle connection(s) handed over, %d kept on the old proxy; keep-alive "
              "load: %d requests, %d reconnects (answered with Connection: close), 0 failed; new-connection load: "
              "%d requests, %d failed\n",
              static_cast<long long>(took.count()), r.value("handed_over", 0), r.value("kept", 0),
              l.value("requests", 0), reconnected, fresh.ok(), fresh.failed());

  // Retired, not crashed: no restart, a clear line.
  EXPECT_FALSE(log_lines_with("retired proxy pid " + std::to_string(old_pid) + " exited").empty());
  EXPECT_TRUE(log_lines_with("PROXY DIED").empty());
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st["proxy"].value("pid", 0), new_pid);
  EXPECT_EQ(st["proxy"].value("restarts", -1), 0);
  EXPECT_FALSE(st["proxy_replacement"].value("in_progress", true));

  // A reload right after: served by the new proxy.
  ProcessResult rl = reload_config();
  EXPECT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_EQ(http_get(port(), "/").status, 200);
  EXPECT_EQ(proxy_pid(), new_pid);
  // /readyz on the shared admin listener: the new proxy answers.
  EXPECT_EQ(http_get(admin_port(), "/readyz").status, 200);
  // The new proxy counts what it adopted (its counters start from zero).
  const std::string metrics = http_get(admin_port(), "/metrics").body;
  EXPECT_NE(metrics.find("corral_connections_adopted_total " + std::to_string(r.value("handed_over", 0)) + "\n"),
            std::string::npos)
      << metrics.substr(0, 500);

  // A drain carries over to the next proxy: its /readyz fails from its first answer.
  ASSERT_EQ(ctl({"drain"}).exit_code, 0);
  nlohmann::json again = restart_proxy();
  ASSERT_EQ(again.value("exit", -1), 0) << again.dump();
  EXPECT_NE(again.value("new_pid", 0), new_pid);
  HttpResponse ready = http_get(admin_port(), "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_NE(ready.body.find("draining"), std::string::npos) << ready.body;
  EXPECT_EQ(http_get(port(), "/").header("Connection"), "close");
  ASSERT_EQ(ctl({"undrain"}).exit_code, 0);
  EXPECT_EQ(http_get(admin_port(), "/readyz").status, 200);
}

// Apps of every kind behind one config (http, FastCGI php-cgi, CGI, a sync WSGI worker with
// concurrency 1 that both proxies may reach at once: its listening socket queues the second
// connection in the kernel), each under keep-alive load across the swap: no request fails.
TEST_F(ProxyHandoverTest, EveryAppKindUnderLoadAcrossTheSwap) {
  const std::string apps = kSource + "/tests/apps";
  config_.route("php", "/p/");
  config_.route("cgi", "/c/");
  config_.route("wsgi", "/w/");
  config_.raw("\n[app.php]\nkind = \"fastcgi\"\ncommand = [\"/usr/bin/php-cgi\"]\nroot = " + quote(apps + "/php") +
              "\nworkers = 1\nconcurrency = 1\nenv = { WHOAMI = \"php\", PHP_FCGI_MAX_REQUESTS = \"0\" }\n"
              "\n[app.cgi]\nkind = \"cgi\"\nroot = " + quote(apps + "/cgi") +
              "\nworkers = 1\nconcurrency = 4\nenv = { WHOAMI = \"cgi\" }\n"
              "\n[app.wsgi]\nkind = \"wsgi\"\nmodule = \"whoami_app:app\"\npython_path = [" +
              quote(apps + "/wsgi_whoami") +
              "]\nworker_class = \"sync\"\nworkers = 1\nconcurrency = 1\nenv = { WHOAMI = \"wsgi\" }\n");
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const std::vector<std::string> paths = {"/", "/p/whoami.php", "/c/whoami.sh", "/w/x"};
  std::vector<std::unique_ptr<KeepaliveLoad>> loads;
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string dir = rt_.path() + "/load" + std::to_string(i);
    ::mkdir(dir.c_str(), 0755);
    loads.push_back(std::make_unique<KeepaliveLoad>());
    loads.back()->start(port(), 2, paths[i], dir);
  }
  for (auto& l : loads) ASSERT_TRUE(l->wait_ready()) << "a load never got an answer";
  std::this_thread::sleep_for(300ms);
  const pid_t old_pid = proxy_pid();
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  EXPECT_TRUE(process_gone(old_pid, 8s));
  std::this_thread::sleep_for(300ms);
  for (size_t i = 0; i < paths.size(); ++i) {
    nlohmann::json l = loads[i]->finish();
    ASSERT_TRUE(l.is_object()) << paths[i] << ": " << loads[i]->result.out << loads[i]->result.err;
    EXPECT_TRUE(l["failures"].empty()) << paths[i] << ": " << l["failures"].dump();
    EXPECT_EQ(l.value("ok", 0), l.value("requests", -1)) << paths[i] << ": " << l["statuses"].dump();
    EXPECT_GT(l.value("requests", 0), 5) << paths[i];
    std::printf("%s: %d requests, %d reconnects, 0 failed\n", paths[i].c_str(), l.value("requests", 0),
                l.value("connections", 0) - 2);
  }
  std::printf("restart-proxy: %d handed over, %d kept\n", r.value("handed_over", 0), r.value("kept", 0));
}

// HTTP/2 and TLS across the swap: an nghttp stream in flight finishes on the old proxy
// (GOAWAY pair), curl's HTTP/2 loop moves to a new connection, a slow HTTP/1.1 request and
// a TLS keep-alive load complete; a WebSocket tunnel stays on the old proxy and keeps
// working until its client closes it; the old proxy exits then.
TEST_F(ProxyHandoverTest, Http2TlsSlowRequestAndTunnelAcrossTheSwap) {
  config_.app("ws").command = {"/usr/bin/python3", kWsEcho};
  config_.app("ws").set("health_path", quote("/health"));
  config_.route("ws", "/info");
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const pid_t old_pid = proxy_pid();
  const int tls = corral_->port(1);
  ASSERT_GT(tls, 0);
  const std::string h2url = "https://127.0.0.1:" + std::to_string(tls);

  ProcessResult slow_h2, slow_h1, h2_loop, tls_h1, ws;
  std::thread t1([&] { slow_h2 = run_process({"nghttp", "-nv", h2url + "/sleep?ms=2000"}, 20s); });
  std::thread t2([&] {
    slow_h1 = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                           "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=2000"},
                          20s);
  });
  std::thread t3([&] {
    h2_loop = run_process({"curl", "-sk", "--http2", "--rate", "40/s", "-o", "/dev/null", "-w",
                           "%{http_code} %{num_connects}\n", h2url + "/?[1-80]"},
                          30s);
  });
  std::thread t4([&] {
    tls_h1 = run_process({"curl", "-sk", "--http1.1", "--rate", "40/s", "-o", "/dev/null", "-w",
                          "%{http_code} %{num_connects}\n", h2url + "/?[1-80]"},
                         30s);
  });
  // The tunnel: opened, then the restart runs (from the client, so the tunnel is open
  // across it), then used again, then closed by its client one second later.
  const std::string restart = bin_path("corralctl") + "\x1f--socket\x1f" + rt_.runtime_dir() +
                              "/control.sock\x1frestart-proxy";
  std::this_thread::sleep_for(600ms);
  std::thread t5([&] {
    ws = run_process({"/usr/bin/python3", kWsClient, "reload", "--url",
                      "ws://127.0.0.1:" + std::to_string(port()) + "/info", "--reload-cmd", restart, "--close-after",
                      "1"},
                     60s);
  });
  t5.join();
  nlohmann::json w = nlohmann::json::parse(ws.out, nullptr, false);
  ASSERT_FALSE(w.is_discarded()) << ws.out << ws.err;
  EXPECT_EQ(w.value("reload_exit", -1), 0) << w.dump();
  EXPECT_TRUE(w.value("old_works_after_reload", false)) << "the tunnel must survive the swap: " << w.dump();
  const pid_t new_pid = proxy_pid();
  EXPECT_NE(new_pid, old_pid);
  for (auto* t : {&t1, &t2, &t3, &t4}) t->join();

  EXPECT_EQ(slow_h1.out, "200") << slow_h1.err;
  EXPECT_EQ(slow_h2.exit_code, 0) << slow_h2.out << slow_h2.err;
  EXPECT_NE(slow_h2.out.find(":status: 200"), std::string::npos) << slow_h2.out;
  std::regex goaway(R"(recv GOAWAY frame[^\n]*\n[^\n]*last_stream_id=(\d+))");
  std::vector<long> ids;
  for (std::sregex_iterator it(slow_h2.out.begin(), slow_h2.out.end(), goaway), end; it != end; ++it)
    ids.push_back(std::stol((*it)[1].str()));
  ASSERT_GE(ids.size(), 2u) << "the graceful GOAWAY pair: " << slow_h2.out;
  EXPECT_EQ(ids[0], 2147483647);
  EXPECT_LT(ids[1], 2147483647);
  auto count = [](const std::string& out, int& ok, int& connects) {
    ok = connects = 0;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("200 ", 0) == 0) ++ok;
      if (line.size() > 4) connects += std::atoi(line.c_str() + 4);
    }
  };
  int ok = 0, connects = 0;
  count(h2_loop.out, ok, connects);
  EXPECT_EQ(ok, 80) << h2_loop.out << h2_loop.err;
  std::printf("HTTP/2 loop: %d/80 ok over %d connection(s)\n", ok, connects);
  count(tls_h1.out, ok, connects);
  EXPECT_EQ(ok, 80) << tls_h1.out << tls_h1.err;
  std::printf("TLS HTTP/1.1 loop: %d/80 ok over %d connection(s)\n", ok, connects);
  // The tunnel was the last thing on the old proxy: it leaves once its client closed it.
  EXPECT_TRUE(process_gone(old_pid, 8s)) << "the old proxy did not exit after its last tunnel";
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

// Two replacements back to back while each old proxy still finishes a slow request: three
// proxies live for a moment; both slow requests complete, both old proxies leave.
TEST_F(ProxyHandoverTest, BackToBackRestartsWhileOldProxiesFinish) {
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const pid_t p1 = proxy_pid();
  auto slow = [&](ProcessResult& out, int ms) {
    return std::thread([&out, ms, this] {
      out = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                         "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=" + std::to_string(ms)},
                        20s);
    });
  };
  ProcessResult a, b;
  std::thread ta = slow(a, 2500);
  std::this_thread::sleep_for(300ms);
  nlohmann::json r1 = restart_proxy();
  ASSERT_EQ(r1.value("exit", -1), 0) << r1.dump();
  EXPECT_EQ(r1.value("kept", 0), 1) << r1.dump();
  const pid_t p2 = r1.value("new_pid", 0);
  std::thread tb = slow(b, 1500);
  std::this_thread::sleep_for(300ms);
  nlohmann::json r2 = restart_proxy();
  ASSERT_EQ(r2.value("exit", -1), 0) << r2.dump();
  EXPECT_EQ(r2.value("old_pid", 0), p2);
  const pid_t p3 = r2.value("new_pid", 0);
  EXPECT_NE(p3, p1);
  EXPECT_NE(p3, p2);
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st["proxy_replacement"]["retiring"].size(), 2u) << st["proxy_replacement"].dump();
  EXPECT_EQ(st["proxy"].value("pid", 0), p3);
  EXPECT_EQ(http_get(port(), "/").status, 200);
  ta.join();
  tb.join();
  EXPECT_EQ(a.out, "200") << a.err;
  EXPECT_EQ(b.out, "200") << b.err;
  EXPECT_TRUE(process_gone(p1, 8s));
  EXPECT_TRUE(process_gone(p2, 8s));
  EXPECT_TRUE(wait_status([](const nlohmann::json& s) { return s["proxy_replacement"]["retiring"].empty(); }, 5s));
}

// A reload that replaces the workers while the retiring proxy still has a request on one of
// them: the new proxy says at once that the old workers are drained, but the one with the
// request is stopped only once the retiring proxy says so too.
TEST_F(ProxyHandoverTest, OldWorkerStaysUntilTheRetiringProxyIsDoneWithIt) {
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const auto old_workers = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(old_workers.size(), 2u);
  ProcessResult slow;
  std::thread t([&] {
    slow = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=3500"},
                       20s);
  });
  ASSERT_TRUE(wait_status([](const nlohmann::json& st) {
    for (auto& w : st["apps"][0]["workers"])
      if (w.value("in_flight", 0) > 0) return true;
    return false;
  }, 5s)) << "the slow request never reached a worker";
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  config_.app("demo").set("cwd", quote("/"));  // a new generation of workers
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  std::this_thread::sleep_for(700ms);  // the new proxy's drained reports are in
  int draining = 0, other = 0;
  const nlohmann::json mid = corral_->status();
  for (auto& w : mid["apps"][0]["workers"]) {
    if (std::find(old_workers.begin(), old_workers.end(), w.value("pid", 0)) == old_workers.end()) continue;
    (w.value("state", "") == "draining" ? draining : other)++;
  }
  EXPECT_EQ(draining, 1) << "the worker serving the retiring proxy's request keeps draining: "
                         << mid["apps"][0]["workers"].dump();
  t.join();
  EXPECT_EQ(slow.out, "200") << slow.err;
  EXPECT_TRUE(wait_status([&](const nlohmann::json& st) {
    for (pid_t p : CorralProcess::worker_pids(st, "demo"))
      if (std::find(old_workers.begin(), old_workers.end(), p) != old_workers.end()) return false;
    return true;
  }, 10s)) << "the old workers leave once the retiring proxy is done with them";
}

// Idle connections accepted before a reload (under the previous config snapshot) on the
// first of two listeners configured alike ("127.0.0.1:0", the other one TLS): handed over to
// the listener they were accepted on, none refused.
TEST_F(ProxyHandoverTest, ConnectionsFromBeforeAReloadFindTheirListener) {
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  auto idle = idle_connections(port(), 10);
  config_.app("demo").workers(3);
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  EXPECT_EQ(r.value("handed_over", 0), 10) << r.dump();
  EXPECT_EQ(r.value("refused", -1), 0) << r.dump();
  EXPECT_TRUE(process_gone(r.value("old_pid", 0), 8s));
  EXPECT_EQ(still_serving(idle), idle.size());
}

// An idle TLS keep-alive connection cannot move (its TLS state is the old proxy's): it gets
// a moment for a request on its way, then the old proxy closes it cleanly (as a keep-alive
// timeout would) and exits, long before keepalive_timeout or graceful_timeout.
TEST_F(ProxyHandoverTest, IdleTlsConnectionIsClosedSoonAfterTheSwap) {
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const int tls = corral_->port(1);
  const std::string go = rt_.path() + "/tls.go", ready = rt_.path() + "/tls.ready";
  const std::string script =
      "import http.client, os, ssl, sys, time\n"
      "c = http.client.HTTPSConnection('127.0.0.1', int(sys.argv[1]), context=ssl._create_unverified_context())\n"
      "c.request('GET', '/'); r = c.getresponse(); r.read(); print('first', r.status)\n"
      "open(sys.argv[3], 'w').close()\n"
      "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n"
      "t = time.monotonic(); c.sock.settimeout(20)\n"
      "try:\n  data = c.sock.recv(1)\nexcept Exception as e:\n  data = repr(e)\n"
      "print('closed_after %.2f %r' % (time.monotonic() - t, data))\n";
  ProcessResult py;
  std::thread t([&] { py = run_process({"/usr/bin/python3", "-c", script, std::to_string(tls), go, ready}, 30s); });
  for (auto until = Clock::now() + 10s; ::access(ready.c_str(), F_OK) != 0 && Clock::now() < until;)
    std::this_thread::sleep_for(10ms);
  const pid_t old_pid = proxy_pid();
  nlohmann::json r = restart_proxy();
  ::close(::open(go.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  EXPECT_EQ(r.value("kept", 0), 1) << "the TLS connection stays with the old proxy: " << r.dump();
  EXPECT_TRUE(process_gone(old_pid, 5s)) << "the old proxy waits for its idle TLS connection";
  t.join();
  EXPECT_NE(py.out.find("first 200"), std::string::npos) << py.out << py.err;
  // EOF (b'') after about a second: a clean close, not a reset.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(py.out, m, std::regex(R"(closed_after ([0-9.]+) b'')"))) << py.out << py.err;
  EXPECT_LT(std::stod(m[1].str()), 4.0) << py.out;
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

// A PROXY protocol listener: an idle connection whose header was read by the old proxy is
// handed over with the client's address and port, which the app still sees afterwards.
TEST_F(ProxyHandoverTest, ProxyProtocolConnectionKeepsItsClientAddress) {
  config_.raw("\n[[listener]]\naddress = \"127.0.0.1:0\"\nproxy_protocol = true\n"
              "proxy_protocol_trusted = [\"127.0.0.1/32\"]\n");
  ASSERT_NO_FATAL_FAILURE(start_with_demo());
  const int pp = corral_->port(1);
  ASSERT_GT(pp, 0);
  RawClient c;
  ASSERT_TRUE(c.connect_tcp(pp));
  const std::string echo = "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE(c.send("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n" + echo));
  auto first = c.read_responses(1, 5s);
  ASSERT_EQ(first.size(), 1u);
  auto client_of = [](const std::string& body, const std::string& header) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded()) return std::string("?");
    for (auto& h : j["headers"])
      if (h[0].get<std::string>() == header) return h[1].get<std::string>();
    return std::string();
  };
  EXPECT_EQ(client_of(first[0].body, "X-Forwarded-For"), "203.0.113.7") << first[0].body;
  EXPECT_EQ(client_of(first[0].body, "X-Remote-Port"), "5555") << first[0].body;
  const pid_t old_pid = proxy_pid();
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  EXPECT_GE(r.value("handed_over", 0), 1) << r.dump();
  EXPECT_TRUE(process_gone(old_pid, 8s));
  ASSERT_TRUE(c.send(echo));
  auto both = c.read_responses(2, 5s);
  ASSERT_EQ(both.size(), 2u) << c.received();
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(client_of(both[1].body, "X-Forwarded-For"), "203.0.113.7") << both[1].body;
  EXPECT_EQ(client_of(both[1].body, "X-Remote-Port"), "5555") << both[1].body;
}

// A new proxy that cannot start (the binary on disk now fails) leaves the old one serving,
// and the failure is the answer; a second restart while one is starting is refused (409);
// with a working binary back, the restart succeeds.
TEST_F(ProxyHandoverTest, FailingNewProxyLeavesTheOldOneServing) {
  const std::string wrapper = rt_.path() + "/corral-proxy";
  auto write_wrapper = [&](const std::string& body) {
    const std::string tmp = wrapper + ".tmp";
    std::ofstream(tmp) << "#!/bin/sh\n" << body << "\n";
    ::chmod(tmp.c_str(), 0755);
    ::rename(tmp.c_str(), wrapper.c_str());  // as a package upgrade replaces it
  };
  write_wrapper("exec " + bin_path("corral-proxy") + " \"$@\"");
  ::setenv("CORRAL_PROXY_BIN", wrapper.c_str(), 1);
  allowed_errors_.push_back("proxy replacement failed");
  start_with_demo();
  ::unsetenv("CORRAL_PROXY_BIN");
  if (HasFatalFailure()) return;
  const pid_t old_pid = proxy_pid();
  KeepaliveLoad load;
  load.start(port(), 2, "/", rt_.path());
  ASSERT_TRUE(load.wait_ready());

  write_wrapper("echo 'corral-proxy: broken build' >&2; exit 3");
  nlohmann::json r = restart_proxy();
  EXPECT_EQ(r.value("exit", -1), 1) << r.dump();
  EXPECT_NE(r.value("stderr", "").find("(500)"), std::string::npos) << r.dump();
  EXPECT_NE(r.value("stderr", "").find("new proxy"), std::string::npos) << r.dump();
  EXPECT_EQ(proxy_pid(), old_pid);
  EXPECT_EQ(http_get(port(), "/").status, 200);

  // Slow to start: a second request meanwhile is refused.
  write_wrapper("sleep 1; exec " + bin_path("corral-proxy") + " \"$@\"");
  nlohmann::json first, second;
  std::thread a([&] { first = restart_proxy(); });
  std::this_thread::sleep_for(300ms);
  second = restart_proxy();
  // A reload while the new proxy starts: both proxies get the new state.
  config_.app("demo").workers(3);
  ProcessResult rl = reload_config();
  a.join();
  EXPECT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_EQ(second.value("exit", -1), 1) << second.dump();
  EXPECT_NE(second.value("stderr", "").find("(409)"), std::string::npos) << second.dump();
  EXPECT_EQ(first.value("exit", -1), 0) << first.dump();
  EXPECT_EQ(first.value("old_pid", 0), old_pid);
  EXPECT_EQ(proxy_pid(), first.value("new_pid", -1));

  // The new proxy runs the reloaded config and knows the third worker.
  nlohmann::json st = corral_->status();
  EXPECT_EQ(CorralProcess::worker_pids(st, "demo").size(), 3u);
  const std::string metrics = http_get(admin_port(), "/metrics").body;
  EXPECT_NE(metrics.find("corral_config_generation " + std::to_string(st.value("config_generation", 0))),
            std::string::npos)
      << st.value("config_generation", 0) << "\n" << metrics.substr(0, 2000);
    nlohmann::json l = load.finish();
  ASSERT_TRUE(l.is_object()) << load.result.out << load.result.err;
  EXPECT_TRUE(l["failures"].empty()) << l["failures"].dump();
  EXPECT_EQ(l.value("ok", 0), l.value("requests", -1));
  EXPECT_TRUE(log_lines_with("PROXY DIED").empty());

  // [proxy] threads: a reload cannot change a running proxy's; the next one starts with it.
  write_wrapper("exec " + bin_path("corral-proxy") + " \"$@\"");
  config_.proxy("threads", "3");
  ASSERT_EQ(reload_config().exit_code, 0);
  nlohmann::json third = restart_proxy();
  ASSERT_EQ(third.value("exit", -1), 0) << third.dump();
  EXPECT_FALSE(log_lines_with("corral-proxy[" + std::to_string(third.value("new_pid", 0)) +
                              "] [proxy] started 3 event loop threads")
                   .empty());
}

// The new proxy dies right after it took over: the usual restart path (back-off) brings a
// proxy back, while the retiring one finishes its slow request. The old proxy dies while
// the new one starts: the new one takes over, the old one is not restarted.
TEST_F(ProxyHandoverTest, EitherProxyDyingDuringTheSwap) {
  const std::string wrapper = rt_.path() + "/corral-proxy";
  auto write_wrapper = [&](const std::string& body) {
    const std::string tmp = wrapper + ".tmp";
    std::ofstream(tmp) << "#!/bin/sh\n" << body << "\n";
    ::chmod(tmp.c_str(), 0755);
    ::rename(tmp.c_str(), wrapper.c_str());
  };
  write_wrapper("exec " + bin_path("corral-proxy") + " \"$@\"");
  ::setenv("CORRAL_PROXY_BIN", wrapper.c_str(), 1);
  allowed_errors_.push_back("PROXY DIED");
  start_with_demo();
  ::unsetenv("CORRAL_PROXY_BIN");
  if (HasFatalFailure()) return;

  // 1. The new one killed once it serves, with a slow request still on the old one.
  const pid_t first = proxy_pid();
  ProcessResult slow;
  std::thread t([&] {
    slow = run_process({"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=1500"},
                       20s);
  });
  std::this_thread::sleep_for(300ms);
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  const pid_t second = r.value("new_pid", 0);
  ASSERT_GT(second, 0);
  ::kill(second, SIGKILL);
  ASSERT_TRUE(wait_status([&](const nlohmann::json& st) {
    return st["proxy"].value("pid", 0) > 0 && st["proxy"].value("pid", 0) != second && st["proxy"].value("ready", false);
  }, 10s)) << "no proxy came back after the new one died";
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st["proxy"].value("restarts", 0), 1);
  EXPECT_EQ(http_get(port(), "/").status, 200);
  t.join();
  EXPECT_EQ(slow.out, "200") << "the retiring proxy finished its request: " << slow.err;
  EXPECT_TRUE(process_gone(first, 8s));
  EXPECT_FALSE(log_lines_with("PROXY DIED: pid " + std::to_string(second)).empty());

  // 2. The old one killed while the new one starts (slowly): the new one takes over.
  const pid_t third = proxy_pid();
  write_wrapper("sleep 1; exec " + bin_path("corral-proxy") + " \"$@\"");
  nlohmann::json r2;
  std::thread a([&] { r2 = restart_proxy(); });
  std::this_thread::sleep_for(400ms);
  ::kill(third, SIGKILL);
  a.join();
  EXPECT_EQ(r2.value("exit", -1), 0) << r2.dump();
  const pid_t fourth = r2.value("new_pid", 0);
  EXPECT_GT(fourth, 0);
  EXPECT_NE(fourth, third);
  EXPECT_EQ(proxy_pid(), fourth);
  EXPECT_EQ(http_get(port(), "/").status, 200);
  EXPECT_TRUE(log_lines_with("PROXY DIED: pid " + std::to_string(third)).empty()) << "not a crash to restart";
  EXPECT_FALSE(log_lines_with("takes over").empty());
  std::this_thread::sleep_for(700ms);  // a wrongly scheduled restart would show by now
  EXPECT_EQ(proxy_pid(), fourth);
}


// A retiring proxy that goes silent (SIGSTOP) while it finishes a slow request is killed after
// proxy_timeout like any silent proxy, but as a retirement: the log says so, nothing restarts,
// and the proxy that replaced it serves on.
TEST_F(ProxyHandoverTest, SilentRetiringProxyIsKilledNotRestarted) {
  config_.supervisor("proxy_timeout", quote("2s"));
  allowed_errors_.push_back("silent on its control channel");
  start_with_demo();
  if (HasFatalFailure()) return;
  const pid_t old_pid = proxy_pid();
  std::thread slow([&] {
    run_process({"curl", "-sS", "-o", "/dev/null", "http://127.0.0.1:" + std::to_string(port()) + "/sleep?ms=8000"}, 20s);
  });
  std::this_thread::sleep_for(300ms);
  nlohmann::json r = restart_proxy();
  ASSERT_EQ(r.value("exit", -1), 0) << r.dump();
  const pid_t new_pid = r.value("new_pid", 0);
  ASSERT_GT(new_pid, 0);
  ASSERT_EQ(::kill(old_pid, 0), 0) << "the old proxy should still be finishing the slow request";
  ASSERT_EQ(::kill(old_pid, SIGSTOP), 0);
  EXPECT_TRUE(process_gone(old_pid, 8s)) << "the silent retiring proxy was not killed";
  slow.join();
  const auto killed = log_lines_with("proxy pid " + std::to_string(old_pid) + " has been silent");
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_NE(killed[0].find("it was retiring"), std::string::npos) << killed[0];
  EXPECT_EQ(killed[0].find("it restarts"), std::string::npos) << killed[0];
  std::this_thread::sleep_for(700ms);  // a wrongly scheduled restart would show by now
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st["proxy"].value("pid", 0), new_pid);
  EXPECT_EQ(st["proxy"].value("restarts", -1), 0);
  EXPECT_EQ(http_get(port(), "/").status, 200);
}

}  // namespace
}  // namespace corral::itest
