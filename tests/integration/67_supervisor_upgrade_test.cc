// Upgrade in place (corralctl upgrade, SIGUSR2): the supervisor re-executes its binary with
// the same pid and takes over its whole state. Every test runs a private copy of the corral
// binaries from its temp dir, so it can replace them on disk as a package upgrade does (a
// new file renamed over the old one: a new inode, the running image's file deleted).
//   - under load on four apps of every kind (http, fastcgi, cgi, wsgi) from HTTP/1.1
//     keep-alive, HTTP/1.1 new-connection and HTTP/2 clients: no request fails, the pids of
//     the supervisor, the proxy and the http/fastcgi workers stay, counters, death records
//     and a `corralctl scale` carry over; a reload, a scale and a second upgrade work after;
//   - a broken new binary: refused with its message, the old image serves on unchanged;
//   - SIGUSR2 upgrades as corralctl upgrade does, and a drain (corralctl drain) carries over;
//   - corral-worker replaced on disk: workers of an app with upgrade = "roll" are replaced
//     make before break, those with "keep" are not;
//   - a worker that dies around the upgrade is reaped, recorded and restarted;
//   - upgrades in a row leave the supervisor with the fds it had (nothing leaks per image);
//   - refused while a stop is in progress (its drain_delay), with a message;
//   - a TLS client that connected before the upgrade and sends its hello after it is served
//     (the replaced proxy keeps TLS connections; only plaintext ones move);
//   - a second upgrade while the proxy the first one replaced still finishes a slow request:
//     that retiring proxy is handed over too (its channel kept), and the request completes.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/load.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kApps = CORRAL_SOURCE_DIR "/tests/apps";
const std::string kLateHello = CORRAL_SOURCE_DIR "/tests/integration/upgrade/late_tls_hello.py";

// An HTTP/2 client over TLS that keeps going as browsers do: curl sends `n` requests at
// `rate`/s over one connection at a time, moving to a new one after a GOAWAY (the proxy
// replaced at the end of an upgrade sends one; TLS connections are not handed over).
struct H2Load {
  std::thread thread;
  ProcessResult result;
  int n = 0;
  void start(const std::string& url, int requests, int rate) {
    n = requests;
    thread = std::thread([this, url, rate] {
      result = run_process({"curl", "-sk", "--http2", "--rate", std::to_string(rate) + "/s", "-o",
                            "/dev/null", "-w", "%{http_code} %{num_connects}\n", url + "?[1-" + std::to_string(n) + "]"},
                           std::chrono::seconds(n / rate + 60));
    });
  }
  // Requests answered 200, and connections opened.
  std::pair<int, int> finish() {
    if (thread.joinable()) thread.join();
    int ok = 0, connects = 0;
    std::istringstream in(result.out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("200 ", 0) == 0) ++ok;
      if (line.size() > 4) connects += std::atoi(line.c_str() + 4);
    }
    return {ok, connects};
  }
  ~H2Load() {
    if (thread.joinable()) thread.join();
  }
};

// The socket fds of process `pid` without FD_CLOEXEC ("7 9"), from /proc/PID/fdinfo.
std::string sockets_without_cloexec(pid_t pid) {
  std::string out;
  const std::string dir = "/proc/" + std::to_string(pid);
  for (auto& e : fs::directory_iterator(dir + "/fdinfo")) {
    const std::string n = e.path().filename().string();
    std::error_code ec;
    if (fs::read_symlink(dir + "/fd/" + n, ec).string().rfind("socket:", 0) != 0) continue;
    std::ifstream in(e.path());
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("flags:", 0) != 0) continue;
      if ((std::stoul(line.substr(6), nullptr, 8) & 02000000) == 0) out += (out.empty() ? "" : " ") + n;
    }
  }
  return out;
}

// True once `pid` is gone (reaped by its parent) within `limit`.
bool gone(pid_t pid, std::chrono::milliseconds limit) {
  for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

class UpgradeTest : public IntegrationTest {
 protected:
  void SetUp() override {
    bin_ = rt_.path() + "/bin";
    fs::create_directories(bin_);
    for (const char* name : {"corral-supervisor", "corral-proxy", "corral-worker"}) fs::copy_file(bin_path(name), bin_ + "/" + name);
    for (auto& e : fs::directory_iterator(fs::path(bin_path("corral-worker")).parent_path()))
      if (e.path().filename().string().rfind("_corral_wsgi", 0) == 0) fs::copy_file(e.path(), bin_ + "/" + e.path().filename().string());
    supervisor_binary_ = bin_ + "/corral-supervisor";
    config_.supervisor("log_level", quote("info")).proxy("access_log", quote("off"));
  }

  // Apps hosted by corral-worker (the ones an upgrade may roll): a CGI folder and a WSGI app,
  // each answering its WHOAMI (c1, w1).
  AppSpec& cgi_app(const std::string& name) {
    auto& c = config_.app(name);
    c.kind = "cgi";
    c.command.clear();
    c.set("root", quote(kApps + "/cgi"));
    c.env["WHOAMI"] = "c1";
    return c;
  }
  AppSpec& wsgi_app(const std::string& name) {
    auto& w = config_.app(name);
    w.kind = "wsgi";
    w.command.clear();
    w.set("module", quote("whoami_app:app")).set("python_path", "[" + quote(kApps + "/wsgi_whoami") + "]");
    w.env["WHOAMI"] = "w1";
    return w;
  }

  // As a package manager does: the new file next to it, renamed over it (a new inode; the
  // running image's file is deleted). `from` is copied, or `script` written when not empty.
  void replace(const std::string& name, const std::string& from, const std::string& script = "") {
    const std::string tmp = bin_ + "/." + name + ".new";
    if (script.empty()) {
      fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
    } else {
      std::ofstream(tmp) << script;
      ::chmod(tmp.c_str(), 0755);
    }
    ASSERT_EQ(::rename(tmp.c_str(), (bin_ + "/" + name).c_str()), 0) << std::strerror(errno);
  }

  void add_four_apps() {
    config_.route("h", "/h/").route("f", "/f/").route("c", "/c/").route("w", "/w/");
    auto& h = config_.app("h").workers(2);
    h.env["WHOAMI"] = "h1";
    auto& f = config_.app("f");
    f.kind = "fastcgi";
    f.command = {"/usr/bin/php-cgi"};
    f.set("root", quote(kApps + "/php"));
    f.env["WHOAMI"] = "f1";
    f.env["PHP_FCGI_MAX_REQUESTS"] = "0";
    cgi_app("c").concurrency(4);
    wsgi_app("w");
  }

  static std::map<std::string, std::set<std::string>> four_paths() {
    return {{"/h/whoami", {"h1"}}, {"/f/whoami.php", {"f1"}}, {"/c/whoami.sh", {"c1"}}, {"/w/whoami", {"w1"}}};
  }

  // corralctl upgrade: its exit code and output.
  ProcessResult upgrade() { return ctl({"upgrade"}, 60s); }

  nlohmann::json app_of(const nlohmann::json& st, const std::string& name) {
    for (auto& a : st["apps"])
      if (a.value("name", "") == name) return a;
    return nullptr;
  }

  bool all_ready(const nlohmann::json& st) {
    if (!st.is_object() || st.value("reloading", false)) return false;
    for (auto& a : st["apps"]) {
      if (a.value("removed", false) || static_cast<int>(a["workers"].size()) != a.value("desired", 0)) return false;
      for (auto& w : a["workers"])
        if (w.value("state", "") != "ready" || !w.value("retiring", "").empty()) return false;
    }
    return true;
  }

  std::string bin_;
};

TEST_F(UpgradeTest, UnderLoadNothingFailsAndTheStateCarriesOver) {
  add_four_apps();
  config_.proxy("admin", quote("127.0.0.1:0"));
  ASSERT_NO_FATAL_FAILURE(make_cert());
  config_.raw("\n[[listener]]\naddress = \"127.0.0.2:0\"\ntls = { cert = \"t.pem\", key = \"t.key\" }\n");
  ASSERT_NO_FATAL_FAILURE(start());
  allowed_errors_ = {"reason=signal"};  // the worker killed below for a death record
  const pid_t supervisor = corral_->pid();
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) { return all_ready(s); }, 30s));

  // Something to carry over: a runtime scale, a death record, request counters.
  ProcessResult sc = ctl({"scale", "c", "2"});
  ASSERT_EQ(sc.exit_code, 0) << sc.out << sc.err;
  nlohmann::json st = corral_->status();
  const pid_t killed = CorralProcess::worker_pids(st, "h").at(0);
  ASSERT_EQ(::kill(killed, SIGKILL), 0);
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) { return all_ready(s) && app_of(s, "h")["recent_deaths"].size() == 1; }, 30s));

  Http1Load load(port(), four_paths(), 6);
  H2Load h2;
  h2.start("https://127.0.0.2:" + std::to_string(corral_->port(1)) + "/w/whoami", 180, 30);
  std::this_thread::sleep_for(1500ms);
  st = corral_->status();
  const pid_t proxy = st["proxy"].value("pid", 0);
  const auto h_pids = CorralProcess::worker_pids(st, "h");
  const auto f_pids = CorralProcess::worker_pids(st, "f");
  const uint64_t h_requests = app_of(st, "h")["totals"].value("requests", uint64_t{0});
  ASSERT_GT(h_requests, 0u) << st.dump();

  // The package replaced the binaries: the supervisor re-executes the new file.
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  ProcessResult up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_NE(up.out.find("upgraded in place"), std::string::npos) << up.out;
  EXPECT_NE(up.out.find("proxy pid " + std::to_string(proxy) + " -> "), std::string::npos) << up.out;
  EXPECT_EQ(log_lines_with("upgraded in place from").size(), 1u);

  std::this_thread::sleep_for(1500ms);  // load after the upgrade
  st = corral_->status();
  EXPECT_EQ(st.value("pid", 0), supervisor);
  EXPECT_EQ(corral_->pid(), supervisor);
  // The proxy ran on across the re-exec, then was replaced make before break.
  EXPECT_NE(st["proxy"].value("pid", 0), proxy);
  EXPECT_GT(st["proxy"].value("pid", 0), 0);
  EXPECT_TRUE(gone(proxy, 15s)) << "the old proxy retires and exits";
  EXPECT_EQ(CorralProcess::worker_pids(st, "h"), h_pids);
  EXPECT_EQ(CorralProcess::worker_pids(st, "f"), f_pids);
  EXPECT_EQ(app_of(st, "c").value("desired", 0), 2) << "corralctl scale carries over";
  EXPECT_EQ(app_of(st, "c")["tuned"].value("workers", 0), 2) << app_of(st, "c").dump();
  ASSERT_EQ(app_of(st, "h")["recent_deaths"].size(), 1u) << app_of(st, "h").dump();
  EXPECT_EQ(app_of(st, "h")["recent_deaths"][0].value("pid", 0), killed);
  EXPECT_EQ(app_of(st, "h")["deaths"].value("signal", 0), 1);
  EXPECT_GE(app_of(st, "h")["totals"].value("requests", uint64_t{0}), h_requests) << "counters carry over";
  EXPECT_EQ(st.value("state", ""), "running");

  // A reload and a scale after the upgrade.
  config_.app("h").env["WHOAMI"] = "h2";
  load.accept("/h/whoami", "h2");
  ProcessResult rl = reload_config();
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  sc = ctl({"scale", "f", "2"});
  ASSERT_EQ(sc.exit_code, 0) << sc.out << sc.err;
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) { return all_ready(s) && app_of(s, "f")["workers"].size() == 2; }, 30s));
  EXPECT_EQ(http_get(port(), "/h/whoami").body, "h2");

  // A second upgrade, from the image that a first one started.
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_EQ(log_lines_with("upgraded in place from").size(), 2u);
  std::this_thread::sleep_for(1000ms);
  st = corral_->status();
  EXPECT_EQ(st.value("pid", 0), supervisor);
  EXPECT_EQ(app_of(st, "c").value("desired", 0), 2);
  EXPECT_EQ(app_of(st, "f").value("desired", 0), 2);
  EXPECT_EQ(st.value("config_generation", 0), 2);

  load.stop();
  auto [h2_ok, h2_connects] = h2.finish();
  std::printf("upgrade under load: %d HTTP/1.1 requests ok, %d failed; HTTP/2: %d of %d ok over %d connections\n",
              load.ok(), load.failed(), h2_ok, h2.n, h2_connects);
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_GT(load.ok(), 100);
  EXPECT_EQ(h2_ok, h2.n) << h2.result.out << h2.result.err;
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, BrokenBinaryIsRefusedAndTheOldImageServesOn) {
  ASSERT_NO_FATAL_FAILURE(start());
  allowed_errors_ = {"upgrade refused"};
  const nlohmann::json before = corral_->status();
  const auto pids = CorralProcess::worker_pids(before, "demo");
  Http1Load load(port(), {{"/whoami", {""}}}, 2);

  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", "", "#!/bin/sh\necho 'this build is broken' >&2\nexit 1\n"));
  ProcessResult up = upgrade();
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("upgrade refused"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("this build is broken"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("dry run"), std::string::npos) << up.err;

  // Not executable at all: refused as well.
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", "", "not a program"));
  ::chmod((bin_ + "/corral-supervisor").c_str(), 0644);
  up = upgrade();
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("upgrade refused"), std::string::npos) << up.err;

  nlohmann::json after = corral_->status();
  EXPECT_EQ(after.value("pid", 0), before.value("pid", 0));
  EXPECT_EQ(after["proxy"].value("pid", 0), before["proxy"].value("pid", 0));
  EXPECT_EQ(CorralProcess::worker_pids(after, "demo"), pids);
  EXPECT_EQ(after.value("state", ""), "running");
  EXPECT_EQ(http_get(port(), "/whoami").status, 200);
  EXPECT_TRUE(log_lines_with("upgraded in place").empty());

  // A binary that passes its dry run and then cannot be executed (it takes its own execute
  // bit away): execve fails, the fds get FD_CLOEXEC back and the signals are unblocked
  // (the reload and the TERM of the stop below are handled).
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", "", "#!/bin/sh\nchmod 644 \"$0\"\nexit 0\n"));
  up = upgrade();
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("execve"), std::string::npos) << up.err;
  ProcessResult rl = reload_config();
  EXPECT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_EQ(corral_->status().value("pid", 0), before.value("pid", 0));
  EXPECT_EQ(sockets_without_cloexec(corral_->pid()), "") << "every socket of the supervisor is FD_CLOEXEC again";

  // The real binary back: the upgrade goes through.
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  up = upgrade();
  EXPECT_EQ(up.exit_code, 0) << up.out << up.err;
  load.stop();
  EXPECT_EQ(load.failed(), 0) << load.failures();
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, Sigusr2UpgradesLikeCorralctl) {
  add_four_apps();
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) { return all_ready(s); }, 30s));
  ProcessResult dr = ctl({"drain"});
  ASSERT_EQ(dr.exit_code, 0) << dr.out << dr.err;
  const nlohmann::json before = corral_->status();
  ASSERT_TRUE(before["drain"].value("draining", false)) << before.dump();
  Http1Load load(port(), four_paths(), 4);
  std::this_thread::sleep_for(500ms);
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  corral_->signal(SIGUSR2);
  bool upgraded = false;
  for (auto until = std::chrono::steady_clock::now() + 20s; !upgraded && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(50ms);
    upgraded = !log_lines_with("upgraded in place from").empty();
  }
  ASSERT_TRUE(upgraded);
  nlohmann::json after;
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) {
    after = s;
    return s["proxy"].value("pid", 0) != before["proxy"].value("pid", 0) && s["proxy"].value("ready", false);
  }, 15s)) << after.dump();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(after.value("pid", 0), before.value("pid", 0));
  EXPECT_NE(after["proxy"].value("pid", 0), before["proxy"].value("pid", 0)) << "replaced after the re-exec";
  EXPECT_TRUE(after["drain"].value("draining", false)) << "the drain carries over: " << after["drain"].dump();
  EXPECT_GE(after["drain"].value("drain_seconds", 0.0), before["drain"].value("drain_seconds", 0.0));
  EXPECT_EQ(CorralProcess::worker_pids(after, "h"), CorralProcess::worker_pids(before, "h"));
  EXPECT_EQ(CorralProcess::worker_pids(after, "f"), CorralProcess::worker_pids(before, "f"));
  load.stop();
  std::printf("SIGUSR2 upgrade under load: %d requests ok, %d failed\n", load.ok(), load.failed());
  EXPECT_EQ(load.failed(), 0) << load.failures();
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, CorralWorkerRolledWhenReplacedAndAllowed) {
  config_.route("c", "/c/").route("w", "/w/");
  cgi_app("c").workers(2);
  wsgi_app("w").set("upgrade", quote("keep"));
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) { return all_ready(s); }, 30s));
  const nlohmann::json before = corral_->status();
  const auto c_pids = CorralProcess::worker_pids(before, "c");
  const auto w_pids = CorralProcess::worker_pids(before, "w");
  Http1Load load(port(), {{"/c/whoami.sh", {"c1"}}, {"/w/whoami", {"w1"}}}, 4);

  // Upgrade with corral-worker unchanged: nothing rolls.
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  ProcessResult up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(CorralProcess::worker_pids(corral_->status(), "c"), c_pids);

  // corral-worker replaced too: the cgi app (upgrade = "roll", the default) gets new
  // workers make before break, the wsgi app (upgrade = "keep") keeps its own.
  ASSERT_NO_FATAL_FAILURE(replace("corral-worker", bin_path("corral-worker")));
  up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_NE(up.out.find("2 corral-worker process(es) rolled"), std::string::npos) << up.out;
  nlohmann::json after;
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) {
    after = s;
    if (!all_ready(s)) return false;
    for (pid_t p : CorralProcess::worker_pids(s, "c"))
      if (std::find(c_pids.begin(), c_pids.end(), p) != c_pids.end()) return false;
    return true;
  }, 30s)) << after.dump();
  EXPECT_EQ(CorralProcess::worker_pids(after, "w"), w_pids);
  int rolled = 0;
  const nlohmann::json c_deaths = app_of(after, "c")["recent_deaths"];
  for (auto& d : c_deaths) rolled += d.value("reason", "") == "upgrade";
  EXPECT_EQ(rolled, 2) << app_of(after, "c").dump();
  load.stop();
  EXPECT_EQ(load.failed(), 0) << load.failures();
  EXPECT_GT(load.ok(), 20);
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, WorkerDyingAroundTheUpgradeIsRecordedAndRestarted) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  allowed_errors_ = {"reason=signal"};
  nlohmann::json st = corral_->status();
  const pid_t victim = CorralProcess::worker_pids(st, "demo").at(0);
  ASSERT_NO_FATAL_FAILURE(replace("corral-supervisor", bin_path("corral-supervisor")));
  // The kill lands while the old image hands over (right after it logged the execve), so
  // the new one reaps it.
  std::thread killer([&] {
    for (auto until = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < until;) {
      if (!log_lines_with("upgrade: executing").empty()) break;
      std::this_thread::sleep_for(1ms);
    }
    ::kill(victim, SIGKILL);
  });
  ProcessResult up = upgrade();
  killer.join();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  nlohmann::json after;
  ASSERT_TRUE(wait_status([&](const nlohmann::json& s) {
    after = s;
    auto pids = CorralProcess::worker_pids(s, "demo");
    return all_ready(s) && pids.size() == 2 && std::find(pids.begin(), pids.end(), victim) == pids.end();
  }, 20s)) << after.dump();
  auto deaths = app_of(after, "demo")["recent_deaths"];
  ASSERT_EQ(deaths.size(), 1u) << deaths.dump();
  EXPECT_EQ(deaths[0].value("pid", 0), victim);
  EXPECT_EQ(deaths[0].value("reason", ""), "signal");
  EXPECT_EQ(http_get(port(), "/whoami").status, 200);
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, UpgradesInARowLeakNoFd) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  // The fewest open fds over a second: a status call or a probe in progress opens some for
  // a moment; a leak stays (one per upgrade at least).
  auto fds = [&] {
    size_t fewest = SIZE_MAX;
    for (int i = 0; i < 10; ++i) {
      size_t n = 0;
      for ([[maybe_unused]] auto& e : fs::directory_iterator("/proc/" + std::to_string(corral_->pid()) + "/fd")) ++n;
      fewest = std::min(fewest, n);
      std::this_thread::sleep_for(100ms);
    }
    return fewest;
  };
  auto settled = [&] {
    // The replaced proxies are gone and nothing waits on control.sock.
    std::this_thread::sleep_for(300ms);
    return wait_status([&](const nlohmann::json& s) { return !s.value("reloading", true) && s["proxy"].value("ready", false); }, 10s);
  };
  ASSERT_TRUE(settled());
  const size_t before = fds();
  for (int i = 0; i < 4; ++i) {
    const pid_t old_proxy = proxy_pid();
    ProcessResult up = upgrade();
    ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
    ASSERT_TRUE(gone(old_proxy, 10s));
  }
  ASSERT_TRUE(settled());
  EXPECT_LE(fds(), before) << "fds of the supervisor after 4 upgrades";
  EXPECT_EQ(log_lines_with("upgraded in place from").size(), 4u);
  EXPECT_EQ(http_get(port(), "/whoami").status, 200);
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, RefusedDuringAStop) {
  config_.supervisor("drain_delay", quote("2s"));
  ASSERT_NO_FATAL_FAILURE(start());
  ProcessResult st = ctl({"stop"});
  ASSERT_EQ(st.exit_code, 0) << st.out << st.err;
  ProcessResult up = upgrade();
  EXPECT_EQ(up.exit_code, 1);
  EXPECT_NE(up.err.find("upgrade refused: a stop is in progress"), std::string::npos) << up.err;
  EXPECT_TRUE(log_lines_with("upgraded in place").empty());
  stopped_ = true;  // the stop goes on as asked
  auto code = corral_->wait_exit(15s);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
}

TEST_F(UpgradeTest, TlsClientConnectedBeforeTheUpgradeIsServed) {
  ASSERT_NO_FATAL_FAILURE(add_tls_listener());  // "127.0.0.1:0" like the plaintext one
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string ready = rt_.path() + "/hello.ready", go = rt_.path() + "/hello.go";
  ProcessResult hello;
  std::thread client([&] {
    hello = run_process({"/usr/bin/python3", kLateHello, std::to_string(corral_->port(1)), "/whoami", ready, go}, 60s);
  });
  for (auto until = std::chrono::steady_clock::now() + 20s; ::access(ready.c_str(), F_OK) != 0 &&
                                                            std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(200ms);  // accepted by the first proxy
  ProcessResult up = upgrade();
  ::close(::open(go.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  client.join();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_EQ(hello.exit_code, 0) << hello.out << hello.err;
  EXPECT_NE(hello.out.find("HTTP/1.1 200"), std::string::npos) << hello.out << hello.err;
  stop_and_expect_clean();
}

TEST_F(UpgradeTest, RetiringProxyIsHandedOverToo) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  const pid_t first_proxy = proxy_pid();
  HttpResponse slow;
  std::thread slow_client([&] { slow = http_get(port(), "/sleep?ms=3000"); });
  // The request is on the first proxy once the worker has it (curl may start late).
  for (auto until = std::chrono::steady_clock::now() + 10s;
       app_lines_with("GET /sleep").empty() && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(20ms);
  ASSERT_FALSE(app_lines_with("GET /sleep").empty()) << "the slow request never reached the worker";
  ProcessResult up = ctl({"upgrade", "--json"}, 60s);
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  const nlohmann::json answer = nlohmann::json::parse(up.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << up.out;
  EXPECT_EQ(answer["proxy"].value("old_pid", 0), first_proxy) << up.out;
  EXPECT_GE(answer["proxy"].value("kept", 0), 1) << "the slow request stays on the old proxy: " << up.out;
  EXPECT_NE(proxy_pid(), first_proxy);
  EXPECT_FALSE(gone(first_proxy, 200ms)) << "the first proxy still finishes the slow request";
  // Again, while that proxy retires: it goes to the next image with its channel.
  up = upgrade();
  ASSERT_EQ(up.exit_code, 0) << up.out << up.err;
  slow_client.join();
  EXPECT_EQ(slow.status, 200) << slow.error;
  EXPECT_TRUE(gone(first_proxy, 10s)) << "the retiring proxy exits once done";
  EXPECT_EQ(log_lines_with("retired proxy pid " + std::to_string(first_proxy) + " exited").size(), 1u)
      << "reaped as a retirement by the image that adopted it";
  EXPECT_EQ(http_get(port(), "/whoami").status, 200);
  stop_and_expect_clean();
}

}  // namespace
}  // namespace corral::itest
