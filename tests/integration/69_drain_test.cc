// Drain ([supervisor] drain_delay, corralctl drain / undrain): under load from real clients
// (a Python http.client keep-alive loop, nghttp, h2load, curl), /readyz fails at once with
// "draining", new connections are still accepted and served, HTTP/1.1 answers carry
// Connection: close, HTTP/2 connections get the graceful GOAWAY pair (notice, then the last
// stream processed) and their in-flight streams finish; no request fails; a stop then exits 0.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/load.h"
#include "tests/integration/harness/subprocess.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double mono_seconds(Clock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

/// The last_stream_id of every GOAWAY that `nghttp -v` printed, in order.
std::vector<long> goaways(const std::string& nghttp_out) {
  std::vector<long> out;
  static const std::regex re(R"(recv GOAWAY frame[^\n]*\n[^\n]*last_stream_id=(\d+))");
  for (std::sregex_iterator it(nghttp_out.begin(), nghttp_out.end(), re), end; it != end; ++it)
    out.push_back(std::stol((*it)[1].str()));
  return out;
}

class DrainTest : public IntegrationTest {
 protected:
  void SetUp() override {
    config_.proxy("admin", quote("127.0.0.1:0"));
    config_.app("demo").workers(2).concurrency(8);
    config_.route("demo", "/");
  }

  /// Polls /readyz every 5 ms until it answers 503 "draining" (or `limit` passes); returns
  /// how long that took from `since`, or nullopt.
  std::optional<std::chrono::milliseconds> wait_draining(int admin, Clock::time_point since,
                                                         std::chrono::milliseconds limit = 3s) {
    // A raw socket per probe (a balancer's check): no process start between two probes.
    while (Clock::now() - since < limit) {
      RawClient c;
      if (c.connect_tcp(admin) && c.send("GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) {
        auto r = c.read_responses(1, 2s);
        if (!r.empty() && r[0].status == 503 && r[0].body.find("draining") != std::string::npos)
          return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
      }
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }
};

// SIGTERM with drain_delay = 3s under HTTP/1.1 keep-alive and HTTP/2 (TLS) load.
TEST_F(DrainTest, SigtermDrainsUnderLoadThenStops) {
  config_.supervisor("drain_delay", quote("3s"));
  config_.supervisor("graceful_timeout", quote("10s"));
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  const int tls = corral_->port(1);
  ASSERT_GT(tls, 0);
  ASSERT_EQ(http_get(admin, "/readyz").status, 200);
  const std::string h2url = "https://127.0.0.1:" + std::to_string(tls);

  // Four keep-alive clients, from before the SIGTERM until 1.5 s into the 3 s delay (a
  // balancer stops sending once /readyz failed; here the load stops first).
  KeepaliveLoad load;
  load.start(port(), 4, "/", rt_.path());
  // An HTTP/2 stream in flight across the drain, on a connection made before it.
  ProcessResult slow_h2;
  std::thread slow([&] {
    slow_h2 = run_process({"nghttp", "-nv", h2url + "/sleep?ms=1500"}, 20s);
  });
  ASSERT_TRUE(load.wait_ready()) << "the keep-alive load never got an answer";
  // An HTTP/2 client that keeps going (curl, 50 requests a second over one connection at a
  // time, reconnecting after GOAWAY as browsers do): 80 requests, through the drain.
  ProcessResult h2_loop;
  std::thread h2_loop_thread([&] {
    h2_loop = run_process({"curl", "-sk", "--http2", "--rate", "50/s", "-o", "/dev/null", "-w",
                           "%{http_code} %{num_connects}\n", h2url + "/?[1-80]"},
                          30s);
  });
  std::this_thread::sleep_for(400ms);

  const Clock::time_point term = Clock::now();
  corral_->signal(SIGTERM);
  auto flipped = wait_draining(admin, term);
  ASSERT_TRUE(flipped.has_value()) << "/readyz never answered 503 draining";
  std::printf("/readyz answered 503 draining %lld ms after SIGTERM\n", static_cast<long long>(flipped->count()));
  EXPECT_LT(flipped->count(), 1000) << "the readiness check must fail long before drain_delay ends";
  const double flip_at = mono_seconds(term + *flipped);

  // New connections during the delay: accepted and served, and told to go away.
  HttpResponse h1 = http_get(port(), "/");
  EXPECT_EQ(h1.status, 200) << h1.error;
  EXPECT_EQ(h1.header("Connection"), "close");
  HttpResponse h2 = curl({"-sk", "--http2", h2url + "/"});
  EXPECT_EQ(h2.status, 200) << h2.error;
  // h2load opens 40 new HTTP/2 connections during the delay, one request each: all served.
  // (h2load does not reconnect after a GOAWAY, so more requests per connection would be
  // counted as failed by h2load itself; curl below does reconnect, as browsers do.)
  ProcessResult bench = run_process({"h2load", "-n", "40", "-c", "40", "-m", "1", h2url + "/"}, 20s);
  EXPECT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_NE(bench.out.find("40 succeeded, 0 failed, 0 errored"), std::string::npos) << bench.out;

  std::this_thread::sleep_until(term + 1500ms);
  nlohmann::json l = load.finish();
  ASSERT_TRUE(l.is_object()) << load.result.out << load.result.err;
  EXPECT_TRUE(l["failures"].empty()) << l["failures"].dump();
  EXPECT_GT(l.value("requests", 0), 20) << l.dump();
  EXPECT_EQ(l.value("ok", 0), l.value("requests", -1)) << l["statuses"].dump();
  // Before the drain: keep-alive. After it: every answer ends its connection, so the
  // clients opened new ones, which were served too.
  const double term_at = mono_seconds(term);
  int before = 0, late_keepalive = 0, after_close = 0;
  for (auto& t : l["keepalive_at"]) {
    if (t.get<double>() < term_at) ++before;
    if (t.get<double>() > flip_at + 0.2) ++late_keepalive;
  }
  for (auto& t : l["close_responses"])
    if (t.get<double>() > flip_at) ++after_close;
  EXPECT_GT(before, 0) << l.dump();
  EXPECT_EQ(late_keepalive, 0) << "answers without Connection: close while draining";
  EXPECT_GT(after_close, 4) << l.dump();
  EXPECT_GT(l.value("connections", 0), 4) << "the clients reconnected while draining";

  h2_loop_thread.join();
  EXPECT_EQ(h2_loop.exit_code, 0) << h2_loop.err;
  int h2_ok = 0, h2_connects = 0;
  for (size_t at = 0; at < h2_loop.out.size();) {
    size_t end = h2_loop.out.find('\n', at);
    if (end == std::string::npos) end = h2_loop.out.size();
    const std::string line = h2_loop.out.substr(at, end - at);
    at = end + 1;
    if (line.rfind("200 ", 0) == 0) ++h2_ok;
    if (line.size() > 4) h2_connects += std::atoi(line.c_str() + 4);
  }
  EXPECT_EQ(h2_ok, 80) << h2_loop.out;
  EXPECT_GE(h2_connects, 2) << "curl moved to a new connection after the GOAWAY";

  slow.join();
  EXPECT_EQ(slow_h2.exit_code, 0) << slow_h2.out << slow_h2.err;
  EXPECT_NE(slow_h2.out.find(":status: 200"), std::string::npos) << slow_h2.out;
  // The graceful pair: a notice (2^31-1), then the last stream processed (the in-flight one).
  std::vector<long> ids = goaways(slow_h2.out);
  ASSERT_GE(ids.size(), 2u) << slow_h2.out;
  EXPECT_EQ(ids[0], 2147483647);
  EXPECT_GT(ids[1], 0);
  EXPECT_LT(ids[1], 2147483647);

  // Then the graceful stop, after the delay.
  std::optional<int> code = corral_->wait_exit(15s);
  const auto took = Clock::now() - term;
  stopped_ = true;
  EXPECT_EQ(code, std::optional<int>(0));
  EXPECT_GE(took, 3s) << "the stop waited for drain_delay";
  EXPECT_FALSE(log_lines_with("draining for 3000ms").empty());
}

// corralctl drain: out of the balancer but still serving, through a reload and a proxy
// restart; corralctl undrain: ready again; a stop after a long drain does not wait again.
TEST_F(DrainTest, CorralctlDrainKeepsServingUntilUndrain) {
  config_.supervisor("drain_delay", quote("1s"));
  ASSERT_NO_FATAL_FAILURE(start());
  const int admin = admin_port();
  ASSERT_EQ(http_get(admin, "/readyz").status, 200);

  // A keep-alive connection made before the drain, idle when it starts.
  RawClient idle;
  ASSERT_TRUE(idle.connect_tcp(port()));
  ASSERT_TRUE(idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto first = idle.read_responses(1, 5s);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].header("Connection"), "");

  KeepaliveLoad load;
  load.start(port(), 2, "/", rt_.path());
  ASSERT_TRUE(load.wait_ready());
  const Clock::time_point asked = Clock::now();
  ProcessResult d = ctl({"drain"});
  ASSERT_EQ(d.exit_code, 0) << d.out << d.err;
  EXPECT_NE(d.out.find("draining"), std::string::npos) << d.out;
  auto flipped = wait_draining(admin, asked);
  ASSERT_TRUE(flipped.has_value());
  std::printf("/readyz answered 503 draining %lld ms after corralctl drain was started\n",
              static_cast<long long>(flipped->count()));

  // The idle connection is not closed under its client: its next answer ends it.
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(idle.closed());
  ASSERT_TRUE(idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto both = idle.read_responses(2, 5s);  // the buffer holds the first one too
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].status, 200);
  EXPECT_EQ(both[1].header("Connection"), "close");
  idle.read_until_close(5s);
  EXPECT_TRUE(idle.closed());

  // HTTP/2 (h2c): served, then told to go away.
  ProcessResult h2 = run_process({"nghttp", "-nv", "http://127.0.0.1:" + std::to_string(port()) + "/"}, 20s);
  EXPECT_EQ(h2.exit_code, 0) << h2.out << h2.err;
  EXPECT_NE(h2.out.find(":status: 200"), std::string::npos) << h2.out;
  // The notice at least (nghttp may be done with its one stream and gone before the final
  // GOAWAY: the SIGTERM test checks the pair with a stream in flight).
  std::vector<long> ids = goaways(h2.out);
  ASSERT_GE(ids.size(), 1u) << h2.out;
  EXPECT_EQ(ids[0], 2147483647);

  nlohmann::json l = load.finish();
  ASSERT_TRUE(l.is_object()) << load.result.out << load.result.err;
  EXPECT_TRUE(l["failures"].empty()) << l["failures"].dump();
  EXPECT_FALSE(l["close_responses"].empty()) << l.dump();

  nlohmann::json st = corral_->status();
  EXPECT_EQ(st.value("state", ""), "draining") << st.dump();
  EXPECT_TRUE(st["drain"].value("draining", false)) << st.dump();
  EXPECT_FALSE(st["drain"].contains("stop_in_seconds")) << "a maintenance drain has no stop";
  ProcessResult table = ctl({"status"});
  EXPECT_NE(table.out.find("draining for"), std::string::npos) << table.out;
  HttpResponse m = http_get(admin, "/metrics");
  EXPECT_NE(m.body.find("\ncorral_draining 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("\ncorral_ready 0\n"), std::string::npos);

  // A reload while draining: applied, and the drain stays.
  config_.app("demo").workers(3);
  ProcessResult r = reload_config();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  HttpResponse rz = http_get(admin, "/readyz");
  EXPECT_EQ(rz.status, 503);
  EXPECT_NE(rz.body.find("draining"), std::string::npos) << rz.body;
  EXPECT_EQ(http_get(port(), "/").status, 200);

  // A new proxy (the old one killed) is told again.
  const pid_t old_proxy = proxy_pid();
  ASSERT_GT(old_proxy, 0);
  ::kill(old_proxy, SIGKILL);
  allowed_errors_ = {"proxy pid", "killed by signal 9", "SIGKILL"};
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) {
    return s["proxy"].value("pid", 0) != old_proxy && s["proxy"].value("pid", 0) > 0 && s["proxy"].value("ready", false);
  }, 15s)) << corral_->status().dump();
  rz = http_get(admin, "/readyz");
  EXPECT_EQ(rz.status, 503) << rz.body;
  EXPECT_NE(rz.body.find("draining"), std::string::npos) << rz.body;
  HttpResponse served = http_get(port(), "/");
  EXPECT_EQ(served.status, 200);
  EXPECT_EQ(served.header("Connection"), "close");

  // Undrain: ready, keep-alive again.
  ProcessResult u = ctl({"undrain"});
  ASSERT_EQ(u.exit_code, 0) << u.out << u.err;
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    ready = http_get(admin, "/readyz").status == 200;
    if (!ready) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(ready);
  RawClient ka;
  ASSERT_TRUE(ka.connect_tcp(port()));
  ASSERT_TRUE(ka.send("GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto two = ka.read_responses(2, 5s);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].header("Connection"), "");
  EXPECT_EQ(two[1].header("Connection"), "");
  EXPECT_EQ(corral_->status().value("state", ""), "running");

  // Drained for longer than drain_delay: a stop does not wait again.
  ASSERT_EQ(ctl({"drain"}).exit_code, 0);
  std::this_thread::sleep_for(1200ms);
  corral_->signal(SIGTERM);
  EXPECT_EQ(corral_->wait_exit(10s), std::optional<int>(0));
  stopped_ = true;
  EXPECT_TRUE(log_lines_with("draining for").empty()) << "the stop waited for drain_delay again";
  EXPECT_FALSE(log_lines_with("SIGTERM: graceful stop").empty());
}

// corralctl stop drains first; its drain cannot be withdrawn; a second stop request stops at
// once instead of waiting out the delay.
TEST_F(DrainTest, StopDrainsFirstAndASecondStopCutsTheDelay) {
  config_.supervisor("drain_delay", quote("20s"));
  config_.supervisor("graceful_timeout", quote("40s"));
  config_.app("demo").set("kill_timeout", quote("12s"));
  ASSERT_NO_FATAL_FAILURE(start());
  corral_->notifications(0ms);  // what came before the stop
  const int admin = admin_port();
  const Clock::time_point asked = Clock::now();
  ProcessResult s = ctl({"stop"});
  ASSERT_EQ(s.exit_code, 0) << s.out << s.err;
  ASSERT_TRUE(wait_draining(admin, asked).has_value());
  // systemd hears of the stop at once, with the longest it can take (drain_delay left +
  // graceful_timeout + 5 s for the proxy + the slowest kill_timeout + 5 s), so the unit's
  // TimeoutStopSec (45 s) does not cut a drain and graceful stop that need 82 s.
  auto extend_of = [](const std::vector<std::string>& msgs) -> long long {
    for (const auto& m : msgs) {
      if (m.find("STOPPING=1") == std::string::npos) continue;
      size_t at = m.find("EXTEND_TIMEOUT_USEC=");
      return at == std::string::npos ? -1 : std::atoll(m.c_str() + at + 20);
    }
    return -2;
  };
  const long long first_extend = extend_of(corral_->notifications(2s));
  EXPECT_GT(first_extend, 79'000'000) << "20 s of drain + 40 + 5 + 12 + 5";
  EXPECT_LE(first_extend, 82'000'000);
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st.value("state", ""), "draining") << st.dump();
  EXPECT_GT(st["drain"].value("stop_in_seconds", 0.0), 10.0) << st.dump();
  EXPECT_EQ(http_get(port(), "/").status, 200) << "still serving during the delay";

  ProcessResult u = ctl({"undrain"});
  EXPECT_EQ(u.exit_code, 1);
  EXPECT_NE(u.err.find("cannot be withdrawn"), std::string::npos) << u.err;

  const Clock::time_point second = Clock::now();
  corral_->signal(SIGTERM);
  EXPECT_EQ(corral_->wait_exit(10s), std::optional<int>(0));
  stopped_ = true;
  EXPECT_LT(Clock::now() - second, 10s) << "the second request did not wait for drain_delay";
  EXPECT_FALSE(log_lines_with("SIGTERM again while draining: stopping now").empty());
  // The stop proper, without the drain: 40 + 5 + 12 + 5 s.
  EXPECT_EQ(extend_of(corral_->notifications(1s)), 62'000'000);
}

// packaging/kubernetes: every manifest parses, the Deployment agrees with the ConfigMap's
// corral.toml (probes on the admin port, preStop drain, grace period above drain_delay +
// graceful_timeout, a CPU limit), and that corral.toml is a valid config: --check finds
// nothing but the app's files, which live in the image and not here.
TEST(KubernetesManifests, ParseAndAgreeWithTheConfig) {
  TempRuntime rt;
  const std::string toml = rt.path() + "/k8s-corral.toml";
  ProcessResult r = run_process({"/usr/bin/python3", std::string(CORRAL_SOURCE_DIR) + "/tests/integration/drain/k8s_manifests.py",
                                 std::string(CORRAL_SOURCE_DIR) + "/packaging/kubernetes", toml},
                                30s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_TRUE(j["problems"].empty()) << j.dump(2);
  EXPECT_EQ(j["facts"]["kinds"], nlohmann::json({"ConfigMap", "Deployment", "Service"}));

  ProcessResult check = run_process({bin_path("corral-supervisor"), "--check", "-c", toml}, 30s);
  const std::string all = check.out + check.err;
  size_t lines = 0;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\n', at);
    if (end == std::string::npos) end = all.size();
    const std::string line = all.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line.find(": ok") != std::string::npos) continue;
    ++lines;
    EXPECT_TRUE(line.find(" does not exist") != std::string::npos || line.find(" cannot be entered") != std::string::npos)
        << "not about the image's files: " << line;
  }
  EXPECT_LE(lines, 3u) << all;
}

// README "Deployment": the haproxy.cfg it shows is one HAProxy accepts (haproxy -c).
TEST(DeploymentDocs, HaproxyExampleIsValid) {
  const std::string readme = read_file(std::string(CORRAL_SOURCE_DIR) + "/README.md");
  const size_t start = readme.find("\n# haproxy.cfg\n");
  ASSERT_NE(start, std::string::npos) << "README has no haproxy.cfg example";
  const size_t end = readme.find("\n```", start + 1);
  ASSERT_NE(end, std::string::npos);
  const std::string cfg = readme.substr(start + 1, end - start);
  EXPECT_NE(cfg.find("option httpchk GET /readyz"), std::string::npos) << cfg;
  EXPECT_NE(cfg.find("send-proxy-v2"), std::string::npos) << cfg;
  TempRuntime rt;
  const std::string path = rt.write_file("haproxy.cfg", cfg);
  ProcessResult r = run_process({"haproxy", "-c", "-f", path}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << cfg;
}

// README "Deployment": the corral.toml shown for hosts behind HAProxy is a valid config (with
// this machine's certificate, loopback addresses and an app added: the snippet shows only
// the settings the balancer needs).
TEST(DeploymentDocs, HostBehindHaproxyConfigIsValid) {
  const std::string readme = read_file(std::string(CORRAL_SOURCE_DIR) + "/README.md");
  const size_t start = readme.find("\n# corral.toml on each host");
  ASSERT_NE(start, std::string::npos) << "README has no corral.toml example for HAProxy";
  const size_t end = readme.find("\n```", start + 1);
  ASSERT_NE(end, std::string::npos);
  std::string toml = readme.substr(start + 1, end - start);
  EXPECT_NE(toml.find("drain_delay"), std::string::npos) << toml;
  EXPECT_NE(toml.find("proxy_protocol = true"), std::string::npos) << toml;
  TempRuntime rt;
  ProcessResult cert = run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", rt.file("t.key"),
                                    "-out", rt.file("t.pem")},
                                   30s);
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  auto replace_all = [&](const std::string& from, const std::string& to) {
    for (size_t at = toml.find(from); at != std::string::npos; at = toml.find(from, at + to.size()))
      toml.replace(at, from.size(), to);
  };
  replace_all("/etc/corral/tls/cert.pem", rt.file("t.pem"));
  replace_all("/etc/corral/tls/key.pem", rt.file("t.key"));
  replace_all("10.0.0.11:", "127.0.0.1:");
  toml += "\n[[route]]\napp = \"shop\"\n\n[app.shop]\ncommand = [\"/bin/true\"]\n";
  const std::string path = rt.write_file("corral.toml", toml);
  ProcessResult r = run_process({bin_path("corral-supervisor"), "--check", "-c", path}, 30s);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << toml;
}

}  // namespace
}  // namespace corral::itest
