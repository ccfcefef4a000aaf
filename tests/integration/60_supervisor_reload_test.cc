// Reload, scale and recycling under load: make-before-break means no request of any kind
// fails (refused, reset, closed without response, timeout, 5xx) while workers turn over.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A load generator: half the threads reuse one keep-alive connection, half open a fresh
// connection per request. Every request must get a 200; anything else is a failure.
class Load {
 public:
  Load(int port, std::string path, int threads, std::chrono::milliseconds pause)
      : port_(port), path_(std::move(path)), pause_(pause) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { run(i % 2 == 0); });
  }
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int ok() const { return ok_; }
  /// Forgets the worst latency so far (connection warm-up).
  void reset_worst() { worst_us_ = 0; }
  int failed() const { return failed_; }
  std::chrono::microseconds worst() const { return std::chrono::microseconds(worst_us_.load()); }
  std::string failures() {
    std::lock_guard<std::mutex> g(mu_);
    return failures_;
  }
  /// Bodies seen, with the time each was first seen.
  std::optional<Clock::time_point> first_seen(const std::string& body) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = first_.find(body);
    if (it == first_.end()) return std::nullopt;
    return it->second;
  }
  /// When the last request that got `body` was sent.
  std::optional<Clock::time_point> last_sent(const std::string& body) {
    std::lock_guard<std::mutex> g(mu_);
    auto it = last_seen_.find(body);
    if (it == last_seen_.end()) return std::nullopt;
    return it->second;
  }
  /// The most recent bodies (any thread).
  std::string last_body() {
    std::lock_guard<std::mutex> g(mu_);
    return last_;
  }

 private:
  void run(bool keep_alive) {
    auto c = std::make_unique<RawClient>();
    bool connected = false;
    size_t sent = 0;  // requests on the current connection (RawClient keeps every byte received)
    const std::string req = "GET " + path_ + " HTTP/1.1\r\nHost: load\r\n" +
                            (keep_alive ? std::string() : std::string("Connection: close\r\n")) + "\r\n";
    while (!stop_) {
      auto t0 = Clock::now();
      std::string error;
      if (!connected) {
        c = std::make_unique<RawClient>();
        sent = 0;
        if (!c->connect_tcp(port_)) error = "connect refused/failed";
        connected = error.empty();
      }
      std::vector<RawResponse> all;
      RawResponse got;
      if (error.empty() && !c->send(req)) error = "send failed (reset?)";
      if (error.empty()) {
        ++sent;
        all = c->read_responses(sent, 5s);
        if (all.size() < sent) error = c->closed() ? "closed without a response" : "timed out";
        else got = all[sent - 1];
      }
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
      long long prev = worst_us_.load();
      while (us > prev && !worst_us_.compare_exchange_weak(prev, us)) {
      }
      if (error.empty() && got.status != 200) error = "status " + std::to_string(got.status);
      if (!error.empty()) {
        ++failed_;
        std::lock_guard<std::mutex> g(mu_);
        if (failures_.size() < 2000) failures_ += " [" + error + "]";
        connected = false;
      } else {
        ++ok_;
        std::lock_guard<std::mutex> g(mu_);
        first_.emplace(got.body, Clock::now());
        last_seen_[got.body] = t0;
        last_ = got.body;
        if (!keep_alive || got.header("Connection") == "close") connected = false;
      }
      if (!keep_alive) {
        c->close();
        connected = false;
      }
      std::this_thread::sleep_for(pause_);
    }
  }

  int port_;
  std::string path_;
  std::chrono::milliseconds pause_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::atomic<long long> worst_us_{0};
  std::mutex mu_;
  std::string failures_;
  std::map<std::string, Clock::time_point> first_;
  std::map<std::string, Clock::time_point> last_seen_;  // by request start
  std::string last_;
  std::vector<std::thread> threads_;
};

class ReloadTest : public IntegrationTest {
 protected:
  // The testapp behind a 2 s boot delay; VERSION tells generations apart.
  void slow_booting_app(const std::string& version, int workers = 2) {
    auto& a = config_.app("demo");
    a.command = {"/bin/sh", "-c", "sleep 2; exec " + bin_path("corral-testapp")};
    a.workers(workers);
    a.env["VERSION"] = version;
    a.set("boot_timeout", quote("10s"));
    a.set("graceful_timeout", quote("5s"));
  }
  std::vector<pid_t> pids() { return CorralProcess::worker_pids(corral_->status(), "demo"); }
  bool wait_pids(const std::function<bool(const std::vector<pid_t>&)>& pred, std::chrono::milliseconds timeout) {
    return wait_status([&](const nlohmann::json& s) { return pred(CorralProcess::worker_pids(s, "demo")); }, timeout);
  }
};

TEST_F(ReloadTest, ReloadUnderLoadFailsNothingAndServesTheNewCode) {
  slow_booting_app("1");
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = pids();
  ASSERT_EQ(before.size(), 2u);
  Load load(port(), "/env?name=VERSION", 4, 20ms);  // ~100 requests/s (4 × ~25/s; 2 keep-alive, 2 fresh)
  std::this_thread::sleep_for(300ms);
  load.reset_worst();
  std::this_thread::sleep_for(1000ms);
  const auto steady_worst = load.worst();
  load.reset_worst();

  slow_booting_app("2");
  rt_.write_file("corral.toml", config_.render());
  const auto t0 = Clock::now();
  ProcessResult r = ctl({"reload"});
  const auto reload_returned = Clock::now() - t0;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("app demo: new generation (env changed (VERSION))"), std::string::npos) << r.out;
  // Once reload returned, the new generation serves and the old one drains.
  std::this_thread::sleep_for(700ms);
  load.stop();
  auto v2 = load.first_seen("2");
  ASSERT_TRUE(v2.has_value()) << "the new code was never served";
  const auto live_after = *v2 - t0;
  EXPECT_EQ(load.last_body(), "2");
  auto v1 = load.last_sent("1");
  ASSERT_TRUE(v1.has_value());
  EXPECT_LT(*v1 - t0, reload_returned + 100ms) << "the old generation got requests after the reload finished";
  std::printf("[reload] %d ok, %d failed; worst latency during the reload %.1f ms (steady state before it %.1f ms); new code live %.2f s "
              "after the reload; corralctl reload returned after %.2f s\n",
              load.ok(), load.failed(), static_cast<double>(load.worst().count()) / 1000.0,
              static_cast<double>(steady_worst.count()) / 1000.0,
              std::chrono::duration<double>(live_after).count(), std::chrono::duration<double>(reload_returned).count());
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_GT(load.ok(), 100);
  EXPECT_LT(live_after, 3500ms) << "new generation should be live at boot time + well under a second";
  EXPECT_LT(load.worst(), 1000ms);
  EXPECT_TRUE(wait_pids(
      [&](const std::vector<pid_t>& now) {
        if (now.size() != 2) return false;
        for (pid_t p : now)
          if (p <= 0 || std::find(before.begin(), before.end(), p) != before.end()) return false;
        return true;
      },
      8s))
      << corral_->status().dump();
  EXPECT_FALSE(log_lines_with("reason=reload").empty());
}

// corralctl reload answers once the proxy has applied the new pool: the first request sent
// after it returns reaches the new generation (a deploy script's smoke test right after the
// reload sees the new code), on a new connection as on one kept alive from before.
TEST_F(ReloadTest, TheFirstRequestAfterReloadReachesTheNewGeneration) {
  config_.app("demo").workers(2).env["VERSION"] = "v0";
  ASSERT_NO_FATAL_FAILURE(start());
  RawClient kept;
  ASSERT_TRUE(kept.connect_tcp(port()));
  for (size_t i = 1; i <= 6; ++i) {
    const std::string version = "v" + std::to_string(i);
    config_.app("demo").env["VERSION"] = version;
    rt_.write_file("corral.toml", config_.render());
    ProcessResult r = ctl({"reload"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_EQ(http_get(port(), "/env?name=VERSION").body, version) << "reload " << i << " (a new connection)";
    ASSERT_TRUE(kept.send("GET /env?name=VERSION HTTP/1.1\r\nHost: t\r\n\r\n"));
    auto answers = kept.read_responses(i, 5s);
    ASSERT_EQ(answers.size(), i) << kept.received();
    EXPECT_EQ(answers.back().body, version) << "reload " << i << " (a keep-alive connection)";
  }
}

// The same with the proxy slow to read its channel (stopped for a moment): the new workers are
// ready, but reload waits until the proxy has applied their pool.
TEST_F(ReloadTest, ReloadWaitsForTheProxyToApplyThePool) {
  config_.app("demo").workers(1).env["VERSION"] = "old";
  ASSERT_NO_FATAL_FAILURE(start());
  config_.app("demo").env["VERSION"] = "new";
  rt_.write_file("corral.toml", config_.render());
  const pid_t proxy = proxy_pid();
  ASSERT_GT(proxy, 0);
  ASSERT_EQ(::kill(proxy, SIGSTOP), 0);
  auto reload = std::async(std::launch::async, [this] { return ctl({"reload"}); });
  // The new worker boots and passes the supervisor's readiness probe in well under this.
  const bool answered_early = reload.wait_for(900ms) == std::future_status::ready;
  ::kill(proxy, SIGCONT);
  EXPECT_FALSE(answered_early) << "corralctl reload answered before the proxy had the new pool";
  ProcessResult r = reload.get();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(http_get(port(), "/env?name=VERSION").body, "new");
}

// Issue 12: a reload that changed any app but the first (by name) crashed the supervisor.
TEST_F(ReloadTest, ChangingTheSecondOfTwoAppsKeepsTheSupervisorUp) {
  config_.app("a").workers(2).env["WHO"] = "a1";
  config_.app("b").workers(2).env["WHO"] = "b1";
  config_.route("a", "/a/").route("b", "/");
  ASSERT_NO_FATAL_FAILURE(start());
  const pid_t proxy_pid = corral_->status()["proxy"].value("pid", 0);
  auto a_before = CorralProcess::worker_pids(corral_->status(), "a");
  for (const char* sig : {"ctl", "hup"}) {
    config_.app("b").env["WHO"] = std::string("b-") + sig;
    rt_.write_file("corral.toml", config_.render());
    if (std::string(sig) == "ctl") {
      ProcessResult r = ctl({"reload"});
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
      EXPECT_NE(r.out.find("app b: new generation (env changed (WHO))"), std::string::npos) << r.out;
    } else {
      corral_->signal(SIGHUP);
    }
    ASSERT_TRUE(wait_status(
        [&](const nlohmann::json& st) {
          for (auto& app : st["apps"])
            if (app["name"] == "b") {
              for (auto& w : app["workers"])
                if (w.value("retiring", "") != "" || w.value("state", "") != "ready") return false;
              return app["workers"].size() == 2;
            }
          return false;
        },
        10s))
        << corral_->status().dump();
    ASSERT_TRUE(corral_->running()) << "the supervisor died on a reload that changed app b";
    EXPECT_EQ(http_get(port(), "/env?name=WHO").body, std::string("b-") + sig);
  }
  EXPECT_EQ(corral_->status()["proxy"].value("pid", 0), proxy_pid) << "the proxy was restarted";
  EXPECT_EQ(CorralProcess::worker_pids(corral_->status(), "a"), a_before) << "app a's workers were replaced";
}

// A reload that removes an app: the requests routed to it before the switch (one its only
// worker serves, one queued behind it) are both answered, the queued one by the draining
// worker, not left to wait for queue_timeout and a 503.
TEST_F(ReloadTest, RemovingAnAppAnswersTheRequestsQueuedForIt) {
  config_.app("a");
  AppSpec& gone = config_.app("gone");
  gone.workers(1).concurrency(1).queue_timeout("5s");
  gone.env["WHOAMI"] = "gone";
  config_.route("gone", "/gone/").route("a", "/");
  ASSERT_NO_FATAL_FAILURE(start());
  const auto t0 = Clock::now();
  auto busy = std::async(std::launch::async, [this] { return http_get(port(), "/gone/soak?ms=1500"); });
  std::this_thread::sleep_for(300ms);
  auto queued = std::async(std::launch::async, [this] { return http_get(port(), "/gone/soak?ms=0"); });
  std::this_thread::sleep_for(300ms);
  ConfigBuilder without(rt_.path());
  without.app("a");
  without.route("a", "/");
  rt_.write_file("corral.toml", without.render());
  ProcessResult r = ctl({"reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("app gone: removed"), std::string::npos) << r.out;
  HttpResponse b = busy.get(), q = queued.get();
  EXPECT_EQ(b.status, 200) << b.body;
  EXPECT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.body.substr(0, 5), "gone ") << q.body;
  EXPECT_LT(Clock::now() - t0, 4s) << "the queued request waited for queue_timeout";
}

// corralctl status right after a request finished shows it finished (live figures from the
// proxy, not the last periodic report).
TEST_F(ReloadTest, StatusShowsLiveInFlightFigures) {
  config_.app("demo").workers(1).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  for (int round = 0; round < 3; ++round) {
    std::thread slow([&] { EXPECT_EQ(http_get(port(), "/sleep?ms=700").status, 200); });
    ASSERT_TRUE(wait_status([](const nlohmann::json& st) { return st["proxy"].value("in_flight", 0) == 1; }, 2s))
        << corral_->status().dump();
    slow.join();
    nlohmann::json st = corral_->status();
    EXPECT_EQ(st["proxy"].value("in_flight", -1), 0) << st.dump();
    EXPECT_EQ(st["apps"][0]["workers"][0].value("in_flight", -1), 0) << st.dump();
    EXPECT_LT(st["proxy"].value("stats_age_ms", 100000), 1000) << st.dump();
  }
}

// A SIGKILL the supervisor did not send is not an OOM kill without the kernel's word.
TEST_F(ReloadTest, AnOperatorsSigkillIsNotReportedAsOom) {
  config_.app("demo").workers(1);
  allowed_errors_ = {"exited: reason=signal"};
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = pids();
  ASSERT_EQ(before.size(), 1u);
  ::kill(before[0], SIGKILL);
  ASSERT_TRUE(wait_pids([&](const std::vector<pid_t>& now) { return now.size() == 1 && now[0] > 0 && now != before; }, 5s));
  auto lines = log_lines_with("pid " + std::to_string(before[0]) + " gen 1 exited");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("reason=signal, killed by signal 9 (SIGKILL),"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("oom"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[0].find("OOM"), std::string::npos) << lines[0];
  auto deaths = corral_->status()["apps"][0]["deaths"];
  EXPECT_EQ(deaths.value("signal", 0), 1) << deaths.dump();
  EXPECT_FALSE(deaths.contains("oom")) << deaths.dump();
}

// A crash never goes silent: one line names the signal and the last operation; the
// restarted tree (as systemd's Restart= does it) takes over the same sockets.
TEST_F(ReloadTest, AFatalSignalIsLoggedAndARestartServesAgain) {
  config_.app("demo").workers(1);
  allowed_errors_ = {"[crash] fatal signal 11 (SIGSEGV)"};
  ASSERT_NO_FATAL_FAILURE(start());
  (void)corral_->status();
  corral_->signal(SIGSEGV);
  auto code = corral_->wait_exit(5s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, -SIGSEGV) << "the supervisor must die of the signal (for the service manager)";
  stopped_ = true;
  auto lines = log_lines_with("[crash] fatal signal 11 (SIGSEGV) sent by pid " + std::to_string(::getpid()));
  ASSERT_EQ(lines.size(), 1u) << corral_->log();
  EXPECT_NE(lines[0].find("error corral-supervisor["), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(", last operation: idle (waiting for events)"), std::string::npos) << lines[0];
  // Everything it started goes with it (fate sharing)...
  auto left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  for (int i = 0; i < 60 && !left.empty(); ++i) {
    std::this_thread::sleep_for(50ms);
    left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  }
  EXPECT_TRUE(left.empty()) << "left: " << (left.empty() ? "" : left[0].cmdline);
  // ...and a restart on the same runtime_dir comes back and serves.
  corral_ = std::make_unique<CorralProcess>(rt_, rt_.path() + "/corral.toml");
  std::string error;
  ASSERT_TRUE(corral_->start(15s, &error)) << error;
  stopped_ = false;
  EXPECT_EQ(http_get(corral_->port(0), "/").status, 200);
}

TEST_F(ReloadTest, InvalidConfigOnReloadKeepsServing) {
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = pids();
  rt_.write_file("corral.toml", config_.render() + "\n[app.demo]\nwokers = 3\n");
  ProcessResult r = ctl({"reload"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("invalid config"), std::string::npos) << r.err;
  allowed_errors_ = {"reload rejected"};
  corral_->signal(SIGHUP);  // the same through the signal: logged, nothing changes
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(log_lines_with("reload rejected").empty());
  EXPECT_EQ(http_get(port(), "/").status, 200);
  EXPECT_EQ(pids(), before);
}

// A reload checks what --check checks: a program that is not there is rejected, not retried forever.
TEST_F(ReloadTest, AReloadNamingAMissingProgramIsRejected) {
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = pids();
  config_.app("demo").command = {"/usr/bin/does-not-exist"};
  ProcessResult r = reload_config();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/usr/bin/does-not-exist"), std::string::npos) << r.err;
  allowed_errors_ = {"reload rejected"};
  EXPECT_EQ(http_get(port(), "/").status, 200);
  EXPECT_EQ(pids(), before);
}

// A reload whose temp_dir cannot be made, or whose admin address cannot be bound, is refused
// before anything changes: the listener keeps its socket and the next reload applies.
TEST_F(ReloadTest, AReloadThatCannotPrepareItsFoldersOrAdminChangesNothing) {
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  const int port_before = port();
  allowed_errors_ = {"reload rejected"};
  const std::string file = rt_.write_file("a-file", "not a folder\n");
  for (auto [key, value] : {std::pair{"temp_dir", file + "/body"}, std::pair{"admin", file + "/admin.sock"}}) {
    ConfigBuilder bad = config_;
    bad.proxy(key, quote(value));
    rt_.write_file("corral.toml", bad.render());
    ProcessResult r = ctl({"reload"});
    EXPECT_NE(r.exit_code, 0) << key;
    EXPECT_NE(r.err.find(file), std::string::npos) << key << ": " << r.err;
    EXPECT_EQ(http_get(port_before, "/").status, 200) << key;
  }
  // The kept listener survived both: a good reload (one more worker) applies and serves.
  config_.app("demo").workers(2);
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(wait_pids([](const std::vector<pid_t>& now) { return now.size() == 2; }, 10s));
  EXPECT_EQ(port(), port_before);
  EXPECT_EQ(http_get(port_before, "/").status, 200);
}

TEST_F(ReloadTest, TtinTtouAndScaleChangeTheWorkerSet) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  corral_->signal(SIGTTIN);
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        int ready = 0;
        for (auto& a : s["apps"])
          for (auto& w : a["workers"]) ready += w.value("state", "") == "ready";
        return ready == 3;
      },
      5s))
      << corral_->status().dump();
  corral_->signal(SIGTTOU);
  EXPECT_TRUE(wait_pids([](const std::vector<pid_t>& p) { return p.size() == 2; }, 5s)) << corral_->status().dump();
  ProcessResult r = ctl({"scale", "demo", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("demo: 2 -> 4 workers"), std::string::npos) << r.out;
  EXPECT_TRUE(wait_pids([](const std::vector<pid_t>& p) { return p.size() == 4; }, 5s)) << corral_->status().dump();
  r = ctl({"scale", "demo", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(wait_pids([](const std::vector<pid_t>& p) { return p.size() == 1; }, 5s)) << corral_->status().dump();
  EXPECT_EQ(http_get(port(), "/").status, 200);
  r = ctl({"scale", "nosuch", "2"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no app named 'nosuch'"), std::string::npos) << r.err;
  EXPECT_FALSE(log_lines_with("reason=scale").empty());
}

TEST_F(ReloadTest, MaxRequestsRecyclesWithoutFailingRequests) {
  config_.app("demo").workers(2).set("max_requests", "20");
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = pids();
  Load load(port(), "/pid", 2, 5ms);
  EXPECT_TRUE(wait_pids(
      [&](const std::vector<pid_t>& now) {
        for (pid_t p : before)
          if (std::find(now.begin(), now.end(), p) != now.end()) return false;
        return now.size() == 2;
      },
      10s))
      << corral_->status().dump();
  load.stop();
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_FALSE(log_lines_with("reason=max_requests").empty());
}

// A worker that never becomes ready says why: the probe's last answer, in the status and in
// the boot_timeout line.
TEST_F(ReloadTest, StatusShowsWhichProbeFailedWithWhatAnswer) {
  auto& a = config_.app("demo");
  a.workers(1);
  a.set("health_path", quote("/status?code=503"));
  a.set("boot_timeout", quote("1s"));
  allowed_errors_ = {"not ready within boot_timeout", "exited: reason=boot_timeout"};
  std::string cfg = rt_.write_file("corral.toml", config_.render());
  corral_ = std::make_unique<CorralProcess>(rt_, cfg);
  std::string error;
  (void)corral_->start(500ms, &error);  // never READY: its only worker never is
  ASSERT_TRUE(wait_status(
      [](const nlohmann::json& s) {
        return !s["apps"].empty() && !s["apps"][0]["workers"].empty() &&
               s["apps"][0]["workers"][0].value("probe", "") == "GET /status?code=503: status 503";
      },
      5s))
      << corral_->status().dump();
  ProcessResult r = ctl({"status"});
  EXPECT_NE(r.out.find("worker 0 probe: GET /status?code=503: status 503"), std::string::npos) << r.out;
  for (int i = 0; i < 40 && log_lines_with("not ready within boot_timeout").empty(); ++i) std::this_thread::sleep_for(100ms);
  auto lines = log_lines_with("not ready within boot_timeout");
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("; readiness probe GET /status?code=503: status 503"), std::string::npos) << lines[0];
}

TEST_F(ReloadTest, CrashLoopingAppBacksOffAnswers503AndRecovers) {
  // The app crashes at start until a flag file exists.
  const std::string flag = rt_.file("healthy");
  auto& a = config_.app("demo");
  a.command = {"/bin/sh", "-c", "test -e " + flag + " || exit 3; exec " + bin_path("corral-testapp")};
  a.workers(1);
  a.set("boot_timeout", quote("5s"));
  allowed_errors_ = {"exited: reason=exit", "died", "not ready"};
  std::string cfg = rt_.write_file("corral.toml", config_.render());
  corral_ = std::make_unique<CorralProcess>(rt_, cfg);
  std::string error;
  // READY=1 comes only once the app is up: do not wait for it here.
  (void)corral_->start(500ms, &error);
  ASSERT_TRUE(wait_status([](const nlohmann::json& s) { return !s["apps"].empty() && s["apps"][0].value("failing", false); },
                          5s))
      << corral_->status().dump();
  int port = corral_->port(0);
  ASSERT_GT(port, 0);
  HttpResponse r = http_get(port, "/");
  EXPECT_EQ(r.status, 503) << r.error;
  for (int i = 0; i < 50 && log_lines_with("restarting in").size() < 2; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_GE(log_lines_with("restarting in").size(), 2u) << "no timed restarts (back-off) in the log";
  rt_.write_file("healthy", "");
  EXPECT_TRUE(wait_status([](const nlohmann::json& s) { return !s["apps"][0].value("failing", true); }, 40s))
      << corral_->status().dump();
  EXPECT_EQ(http_get(port, "/").status, 200);
}

TEST_F(ReloadTest, KillingTheSupervisorLeavesNothingBehind) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  (void)corral_->status();  // records proxy and worker pids
  corral_->signal(SIGKILL);
  (void)corral_->wait_exit(2s);
  stopped_ = true;
  auto left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  for (int i = 0; i < 40 && !left.empty(); ++i) {
    std::this_thread::sleep_for(50ms);
    left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  }
  EXPECT_TRUE(left.empty()) << "left: " << (left.empty() ? "" : left[0].cmdline);
}

TEST_F(ReloadTest, CorralctlStatusTableAndErrors) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  ProcessResult r = ctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* col : {"APP", "PID", "GEN", "STATE", "INFLIGHT", "REQUESTS", "RESTARTS", "RSS", "CPU", "UPTIME"})
    EXPECT_NE(r.out.find(col), std::string::npos) << col << "\n" << r.out;
  EXPECT_NE(r.out.find("ready"), std::string::npos) << r.out;
  r = run_process({bin_path("corralctl"), "--socket", rt_.path() + "/nope.sock", "status"}, 5s);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("is corral-supervisor running?"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace corral::itest
