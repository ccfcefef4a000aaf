// Hard times: a full disk under the access log and the body temp files, runtime_dir removed
// under a running supervisor, workers that fork away or close their socket, a proxy that
// stops reading its control channel. Each must end in a logged (once), recoverable state:
// nothing crashes, service goes on or comes back by itself, and once the cause is gone
// requests, corralctl and reload work as before.
//
// A full disk is made with RLIMIT_FSIZE on the proxy (prlimit(2)): a write past the limit
// fails with EFBIG, as one on a full file system fails with ENOSPC, and the proxy handles
// both the same way. Unlike a small tmpfs or a loop device it needs no mount (so no private
// mount namespace or CAP_SYS_ADMIN, which a docker-style container may lack), works as root
// in CI, in systemd-nspawn and unprivileged, and "space comes back" by raising the limit.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

class HardTimesTest : public IntegrationTest {
 protected:
  pid_t proxy_pid() {
    auto st = corral_->status();
    return st.is_object() && st.contains("proxy") ? st["proxy"].value("pid", 0) : 0;
  }
  int admin_port() {
    auto st = corral_->status();
    if (!st.contains("admin") || !st["admin"].is_object()) return 0;
    std::string bound = st["admin"].value("bound", "");
    return std::atoi(bound.substr(bound.rfind(':') + 1).c_str());
  }
  ProcessResult ctl(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s) {
    std::vector<std::string> argv = {bin_path("corralctl"), "--socket", rt_.runtime_dir() + "/control.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, timeout);
  }
  // The value of a metric without labels on the admin listener; -1 when missing.
  double metric(const std::string& name) {
    HttpResponse r = http_get(admin_port(), "/metrics");
    std::istringstream in(r.body);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
    return -1;
  }
  size_t count_log(const std::string& needle) const { return log_lines_with(needle).size(); }
  nlohmann::json app_status(const std::string& app) {
    const nlohmann::json st = corral_->status();
    for (auto& a : st["apps"])
      if (a.value("name", "") == app) return a;
    return nullptr;
  }
  // Keeps GETting `path` until it answers 200 (or `timeout` passes).
  bool eventually_200(const std::string& path, std::chrono::milliseconds timeout = 10s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (http_get(port(), path).status == 200) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  // Back to normal: requests, corralctl status, a reload, requests again.
  void expect_back_to_normal(const std::string& path = "/") {
    EXPECT_TRUE(eventually_200(path)) << "requests are not served again";
    ProcessResult st = ctl({"status"}, 10s);
    EXPECT_EQ(st.exit_code, 0) << "corralctl status: " << st.out << st.err;
    ProcessResult rl = ctl({"reload"}, 60s);
    EXPECT_EQ(rl.exit_code, 0) << "corralctl reload: " << rl.out << rl.err;
    for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(port(), path).status, 200) << "after the reload";
  }
  static bool alive(pid_t pid) {
    ProcInfo p;
    return proc_info(pid, p) && p.state != 'Z';
  }
  static bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return pred();
  }
  static void set_fsize(pid_t pid, rlim_t soft) {
    rlimit now{};
    ASSERT_EQ(::prlimit(pid, RLIMIT_FSIZE, nullptr, &now), 0);
    rlimit want{soft, now.rlim_max};
    ASSERT_EQ(::prlimit(pid, RLIMIT_FSIZE, &want, nullptr), 0) << std::strerror(errno);
  }
};

// ---- a full disk ----

// Access log writes fail (EFBIG past RLIMIT_FSIZE, a line cut in the middle): requests are
// still served, the lines are dropped and counted, one log line says so (not one per
// request), and once there is room again writing resumes on a line of its own.
TEST_F(HardTimesTest, FullDiskUnderTheAccessLogDropsLinesAndServesOn) {
  const std::string access = rt_.path() + "/access.log";
  // Yesterday's lines: the limit set below must stay above the size of corral.log, which
  // the proxy writes its own lines to (RLIMIT_FSIZE is per process, not per file).
  std::string old;
  while (old.size() < 512 * 1024) old += "127.0.0.1 - - [04/Dec/2026:00:00:00 +0000] \"GET /echo?yesterday HTTP/1.1\" 200 5\n";
  ASSERT_FALSE(rt_.write_file("access.log", old).empty());
  auto written_since_start = [&] { return read_file(access).substr(old.size()); };
  config_.proxy("access_log", quote(access));
  config_.proxy("admin", quote("127.0.0.1:0"));
  allowed_errors_ = {"cannot write to " + access};
  ASSERT_NO_FATAL_FAILURE(start());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_get(port(), "/echo?before").status, 200);
  ASSERT_TRUE(wait_until([&] { return grep_lines(written_since_start(), "/echo?before").size() == 3; }, 5s));
  const pid_t proxy = proxy_pid();
  ASSERT_GT(proxy, 0);
  const auto full_at = std::filesystem::file_size(access) + 10;  // the next line is cut after 10 bytes
  ASSERT_NO_FATAL_FAILURE(set_fsize(proxy, full_at));
  const auto full_since = std::chrono::steady_clock::now();

  for (int i = 0; i < 30; ++i) ASSERT_EQ(http_get(port(), "/echo?while-full").status, 200) << "request " << i;
  EXPECT_EQ(std::filesystem::file_size(access), full_at);
  EXPECT_TRUE(wait_until([&] { return metric("corral_access_log_dropped_lines_total") >= 30; }, 5s))
      << metric("corral_access_log_dropped_lines_total");
  EXPECT_EQ(proxy_pid(), proxy) << "the proxy died of the full disk";
  const size_t complaints = count_log("cannot write to " + access);
  const double full_for = std::chrono::duration<double>(std::chrono::steady_clock::now() - full_since).count();
  EXPECT_GE(complaints, 1u);
  EXPECT_LE(static_cast<double>(complaints), full_for + 1) << "the failure is logged at most once a second, not per request";
  EXPECT_LT(complaints, 30u);
  EXPECT_NE(count_log("File too large"), 0u) << "the log line names the error";

  ASSERT_NO_FATAL_FAILURE(set_fsize(proxy, RLIM_INFINITY));  // room again
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_get(port(), "/echo?after").status, 200);
  ASSERT_TRUE(wait_until([&] { return grep_lines(written_since_start(), "/echo?after").size() == 3; }, 5s))
      << written_since_start();
  EXPECT_TRUE(wait_until([&] { return count_log("again; ") == 1; }, 2s)) << "one line says writing resumed";
  EXPECT_EQ(grep_lines(written_since_start(), "/echo?while-full").size(), 0u);
  // Every line is whole except the one the limit cut, which ends before the next begins.
  size_t torn = 0;
  for (auto& line : grep_lines(written_since_start(), "")) {
    if (line.empty()) continue;
    if (line.find("\"GET /") == std::string::npos) ++torn;
    else EXPECT_NE(line.find(" rt="), std::string::npos) << line;
  }
  EXPECT_EQ(torn, 1u) << written_since_start();
  expect_back_to_normal();
}

// A spilled request body that cannot be written (temp_dir's disk full) fails that request
// with 500 (as nginx does for client_body_temp); other requests, and small bodies kept in
// memory, are served; one log line, a counter; uploads work again once there is room.
TEST_F(HardTimesTest, FullDiskUnderTheBodyTempFilesFailsOnlyThoseUploads) {
  config_.proxy("admin", quote("127.0.0.1:0"));
  config_.proxy("client_body_buffer_size", quote("16KiB"));
  config_.app("demo").workers(2).concurrency(4);
  allowed_errors_ = {"request body temp file"};
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string big = rt_.path() + "/big.bin", small = rt_.path() + "/small.bin";
  std::ofstream(big) << std::string(2 << 20, 'b');
  std::ofstream(small) << std::string(4 * 1024, 's');
  const pid_t proxy = proxy_pid();
  // Every spill fails past 1 MiB (corral.log, which the proxy writes to, stays below it).
  ASSERT_NO_FATAL_FAILURE(set_fsize(proxy, 1 << 20));

  auto upload = [&](const std::string& file) {
    return curl({"-X", "POST", "--data-binary", "@" + file, "http://127.0.0.1:" + std::to_string(port()) + "/sha256"});
  };
  std::atomic<int> others_ok{0};
  std::thread other([&] {
    for (int i = 0; i < 20; ++i) others_ok += http_get(port(), "/").status == 200;
  });
  const auto full_since = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) EXPECT_EQ(upload(big).status, 500) << "upload " << i;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(upload(small).status, 200) << "a body kept in memory";
  other.join();
  EXPECT_EQ(others_ok.load(), 20);
  EXPECT_GE(metric("corral_request_body_temp_errors_total"), 8);
  const size_t complaints = count_log("request body temp file");
  const double full_for = std::chrono::duration<double>(std::chrono::steady_clock::now() - full_since).count();
  EXPECT_GE(complaints, 1u);
  EXPECT_LE(static_cast<double>(complaints), full_for + 1) << "logged at most once a second";
  EXPECT_LT(complaints, 8u);
  EXPECT_EQ(proxy_pid(), proxy);

  ASSERT_NO_FATAL_FAILURE(set_fsize(proxy, RLIM_INFINITY));
  HttpResponse ok = upload(big);
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find(" 2097152"), std::string::npos) << ok.body;
  expect_back_to_normal();
}

// ---- runtime_dir removed ----

// rm -rf runtime_dir under a running corral: within a second or two the supervisor makes it
// again, binds control.sock again, makes temp_dir (runtime_dir/body) again and replaces the
// workers whose socket files went with it (inherited-socket and self-binding ones). It says
// so in one line; corralctl, reload and uploads work afterwards.
TEST_F(HardTimesTest, RemovedRuntimeDirIsMadeAgain) {
  config_.app("demo").workers(2);
  config_.app("self").bind_itself().workers(1);
  config_.route("self", "/self");
  config_.route("demo", "/");
  config_.proxy("client_body_buffer_size", quote("16KiB"));
  allowed_errors_ = {"runtime_dir", "failed"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto demo_before = CorralProcess::worker_pids(corral_->status(), "demo");
  const auto self_before = CorralProcess::worker_pids(corral_->status(), "self");
  ASSERT_EQ(demo_before.size(), 2u);
  ASSERT_EQ(self_before.size(), 1u);

  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread load([&] {
    while (!done) (http_get(port(), "/").status == 200 ? ok : failed)++;
  });
  struct Join {
    std::atomic<bool>& done;
    std::thread& t;
    ~Join() {
      done = true;
      if (t.joinable()) t.join();
    }
  } join{done, load};
  std::this_thread::sleep_for(200ms);
  std::filesystem::remove_all(rt_.runtime_dir());
  const auto removed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(rt_.runtime_dir() + "/control.sock"); }, 5s))
      << "control.sock is not bound again";
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - removed_at).count();
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto d = CorralProcess::worker_pids(s, "demo");
        auto m = CorralProcess::worker_pids(s, "self");
        if (d.size() != 2 || m.size() != 1) return false;
        for (pid_t p : d)
          if (p <= 0 || p == demo_before[0] || p == demo_before[1]) return false;
        return m[0] > 0 && m[0] != self_before[0];
      },
      15s))
      << corral_->status().dump();
  EXPECT_TRUE(eventually_200("/self/whoami"));
  std::this_thread::sleep_for(300ms);
  done = true;
  load.join();
  std::printf("runtime_dir removed: control.sock back after %.2f s; %d requests ok, %d failed meanwhile\n", seconds,
              ok.load(), failed.load());
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(count_log("runtime_dir " + rt_.runtime_dir() + " was removed"), 1u);
  for (auto& sock : CorralProcess::worker_sockets(corral_->status(), "demo"))
    EXPECT_TRUE(std::filesystem::exists(sock)) << sock;
  // temp_dir (runtime_dir/body by default) is back: a spilled upload works.
  const std::string big = rt_.path() + "/big.bin";
  std::ofstream(big) << std::string(100 * 1024, 'x');
  HttpResponse up = curl({"-X", "POST", "--data-binary", "@" + big, "http://127.0.0.1:" + std::to_string(port()) + "/sha256"});
  EXPECT_EQ(up.status, 200) << up.body;
  expect_back_to_normal();
  expect_back_to_normal("/self/whoami");
}

// Another process put its own socket where a worker's was (a second supervisor on the same
// runtime_dir, a cleanup job): the worker is replaced on a new socket, and the file that took
// the old path is not removed with the old worker.
TEST_F(HardTimesTest, ASocketThatTookAWorkersPathIsLeftThere) {
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  const auto sockets = CorralProcess::worker_sockets(corral_->status(), "demo");
  ASSERT_EQ(before.size(), 1u);
  ASSERT_EQ(sockets.size(), 1u);
  const std::string path = sockets[0];
  ASSERT_EQ(::unlink(path.c_str()), 0);
  const int other = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(other, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof sa.sun_path);
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(other, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(other, 4), 0);
  struct stat theirs {};
  ASSERT_EQ(::stat(path.c_str(), &theirs), 0);
  // Replaced, and the old worker gone from the app (its socket file removed then, if ours).
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        auto socks = CorralProcess::worker_sockets(s, "demo");
        return now.size() == 1 && now[0] > 0 && now[0] != before[0] && socks.size() == 1 && socks[0] != path;
      },
      15s))
      << corral_->status().dump();
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << "the socket that took the old worker's path was removed";
  EXPECT_EQ(st.st_ino, theirs.st_ino);
  ::close(other);
  ::unlink(path.c_str());
  expect_back_to_normal();
}

// A worker's socket file is removed and its replacement's socket cannot be made at first (a
// file that is not a socket holds the next worker's path): the worker is not drained with
// nothing to take over; it serves on until a replacement, tried again every second, runs.
TEST_F(HardTimesTest, AnUnreachableWorkerServesOnUntilItsReplacementStarts) {
  config_.app("demo").workers(1);
  allowed_errors_ = {"cannot create its socket"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  const auto sockets = CorralProcess::worker_sockets(corral_->status(), "demo");
  ASSERT_EQ(before.size(), 1u);
  ASSERT_EQ(sockets.size(), 1u);
  const std::string dir = sockets[0].substr(0, sockets[0].rfind('/'));
  std::ofstream(dir + "/demo.1.sock") << "not a socket";
  ASSERT_EQ(::unlink(sockets[0].c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return count_log("cannot create its socket") > 0; }, 5s));
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        return now.size() == 1 && now[0] > 0 && now[0] != before[0];
      },
      15s))
      << "the app did not get its worker back: " << corral_->status().dump();
  auto deaths = app_status("demo")["recent_deaths"];
  ASSERT_FALSE(deaths.empty());
  EXPECT_EQ(deaths[0].value("pid", 0), before[0]);
  EXPECT_EQ(deaths[0].value("reason", ""), "socket_removed") << deaths.dump();
  ::unlink((dir + "/demo.1.sock").c_str());
  expect_back_to_normal();
}

// ---- workers that fork away ----

// A worker daemonizes two processes (double fork + setsid, out of its process group); one of
// them holds the worker's listening socket and starts answering it once the worker is gone.
// While the worker runs they are left alone; when it dies they are killed before the worker
// restarts in place (no request is answered by the stray), and the death record says so.
TEST_F(HardTimesTest, ProcessesAWorkerForkedAwayDieWithIt) {
  config_.app("demo").workers(1);
  allowed_errors_ = {"exited", "signal"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(before.size(), 1u);
  HttpResponse a = http_get(port(), "/fork-away");
  HttpResponse b = http_get(port(), "/fork-away?serve=1");
  ASSERT_EQ(a.status, 200);
  ASSERT_EQ(b.status, 200);
  const pid_t sleeper = std::atoi(a.body.c_str()), server = std::atoi(b.body.c_str());
  ASSERT_GT(sleeper, 0);
  ASSERT_GT(server, 0);
  ProcInfo info;
  ASSERT_TRUE(proc_info(sleeper, info));
  EXPECT_EQ(info.ppid, corral_->pid()) << "the supervisor is the subreaper of what workers fork away";
  std::this_thread::sleep_for(1500ms);  // a second upkeep pass: a running worker's daemons stay
  EXPECT_TRUE(alive(sleeper));
  EXPECT_TRUE(alive(server));

  ASSERT_EQ(::kill(before[0], SIGKILL), 0);
  EXPECT_TRUE(wait_until([&] { return !alive(sleeper) && !alive(server); }, 3s)) << "the leftovers still run";
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        return now.size() == 1 && now[0] > 0 && now[0] != before[0];
      },
      10s));
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = http_get(port(), "/");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body.find("stray"), std::string::npos) << "a leftover process answered the slot's socket";
  }
  auto deaths = app_status("demo")["recent_deaths"];
  ASSERT_FALSE(deaths.empty());
  EXPECT_EQ(deaths[0].value("pid", 0), before[0]);
  const std::string note = deaths[0].value("leftovers", "");
  EXPECT_NE(note.find(std::to_string(sleeper)), std::string::npos) << deaths[0].dump();
  EXPECT_NE(note.find(std::to_string(server)), std::string::npos) << deaths[0].dump();
  EXPECT_EQ(count_log("worker pid " + std::to_string(before[0]) + " left 2 process(es)"), 1u);
  expect_back_to_normal();
}

// The same when the worker is replaced on purpose (a reload that changes its env): its
// daemon goes with it once it has stopped.
TEST_F(HardTimesTest, ProcessesAReplacedWorkerForkedAwayAreKilled) {
  config_.app("demo").workers(1).env["GEN"] = "1";
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  HttpResponse a = http_get(port(), "/fork-away");
  ASSERT_EQ(a.status, 200);
  const pid_t daemon = std::atoi(a.body.c_str());
  ASSERT_TRUE(alive(daemon));
  config_.app("demo").env["GEN"] = "2";
  ASSERT_FALSE(rt_.write_file("corral.toml", config_.render()).empty());
  ProcessResult rl = ctl({"reload"}, 60s);
  ASSERT_EQ(rl.exit_code, 0) << rl.out << rl.err;
  EXPECT_TRUE(wait_until([&] { return !alive(before[0]); }, 10s));
  EXPECT_TRUE(wait_until([&] { return !alive(daemon); }, 3s)) << "the replaced worker's daemon still runs";
  EXPECT_EQ(http_get(port(), "/env?name=GEN").body, "2");
  expect_back_to_normal();
}

// ---- a worker that closes its socket ----

// The worker (inherited socket, which the supervisor keeps too) stops listening but stays
// alive: connections wait in the backlog; the supervisor sees nobody of the worker holds the
// socket any more, restarts it in place with a death record "socket_closed", and the waiting
// requests are answered by its next process: none fails.
TEST_F(HardTimesTest, WorkerThatClosesItsSocketIsRestartedAndItsWaitingRequestsServed) {
  config_.app("demo").workers(1).concurrency(4);
  allowed_errors_ = {"does not listen any more"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(http_get(port(), "/close-listener").status, 200);
  // Several at once, so the proxy opens new connections that only the backlog takes.
  auto results = parallel(6, [&](int) { return http_get(port(), "/pid"); });
  std::set<std::string> answered_by;
  for (auto& r : results) {
    EXPECT_EQ(r.status, 200) << r.error;
    answered_by.insert(r.body);
  }
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        return now.size() == 1 && now[0] > 0 && now[0] != before[0];
      },
      10s));
  auto deaths = app_status("demo")["recent_deaths"];
  ASSERT_FALSE(deaths.empty());
  EXPECT_EQ(deaths[0].value("reason", ""), "socket_closed") << deaths.dump();
  EXPECT_FALSE(deaths[0].value("expected", true));
  EXPECT_EQ(count_log("does not listen any more"), 1u);
  expect_back_to_normal();
}

// A worker that binds its socket itself and closes it: connects are refused, the proxy moves
// those requests to the other worker and reports it; the supervisor checks and restarts it.
TEST_F(HardTimesTest, SelfBindingWorkerThatClosesItsSocketIsRestarted) {
  config_.app("demo").bind_itself().workers(2);
  allowed_errors_ = {"does not listen any more"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(before.size(), 2u);
  HttpResponse c = http_get(port(), "/close-listener");
  ASSERT_EQ(c.status, 200);
  const pid_t closed = std::atoi(c.body.c_str());
  ASSERT_GT(closed, 0);
  std::atomic<int> failed{0};
  for (int i = 0; i < 30; ++i) {
    auto rs = parallel(3, [&](int) { return http_get(port(), "/"); });
    for (auto& r : rs) failed += r.status != 200;
  }
  EXPECT_EQ(failed.load(), 0) << "requests refused by the closed worker go to the other one";
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        return now.size() == 2 && std::find(now.begin(), now.end(), closed) == now.end() && now[0] > 0 && now[1] > 0;
      },
      10s))
      << corral_->status().dump();
  bool found = false;
  const nlohmann::json demo = app_status("demo");
  for (auto& d : demo["recent_deaths"])
    found = found || (d.value("pid", 0) == closed && d.value("reason", "") == "socket_closed");
  EXPECT_TRUE(found) << demo.dump();
  EXPECT_EQ(count_log("does not listen any more"), 1u);
  expect_back_to_normal();
}

// ---- a proxy that stops reading its control channel ----

// SIGSTOP the proxy: the supervisor keeps answering corralctl, warns once, kills the silent
// proxy after proxy_timeout and starts a new one; the workers are not touched.
TEST_F(HardTimesTest, StoppedProxyIsRestartedAndWorkersAreUntouched) {
  config_.supervisor("proxy_timeout", quote("3s"));
  config_.app("demo").workers(2);
  allowed_errors_ = {"silent on its control channel"};
  ASSERT_NO_FATAL_FAILURE(start());
  const auto workers = CorralProcess::worker_pids(corral_->status(), "demo");
  const pid_t proxy = proxy_pid();
  ASSERT_EQ(::kill(proxy, SIGSTOP), 0);
  // The supervisor's loop is not blocked by the stopped reader.
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult st = ctl({"status", "--json"}, 5s);
  EXPECT_EQ(st.exit_code, 0) << st.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        return s["proxy"].value("pid", 0) > 0 && s["proxy"].value("pid", 0) != proxy && s["proxy"].value("ready", false);
      },
      10s))
      << corral_->status().dump();
  EXPECT_FALSE(alive(proxy));
  auto last = corral_->status()["proxy"]["last_exit"];
  EXPECT_EQ(last.value("reason", ""), "unresponsive") << last.dump();
  EXPECT_EQ(last.value("pid", 0), proxy);
  // One warning when it went silent (a second one only if a loaded machine made it late once
  // before), one error when it was killed.
  EXPECT_GE(count_log("has not reported for"), 1u);
  EXPECT_LE(count_log("has not reported for"), 2u);
  EXPECT_EQ(count_log("silent on its control channel"), 1u);
  EXPECT_EQ(CorralProcess::worker_pids(corral_->status(), "demo"), workers) << "workers were touched";
  EXPECT_TRUE(app_status("demo")["recent_deaths"].empty());
  expect_back_to_normal();
}

// proxy_timeout = "0": a stopped proxy (e.g. under a debugger) is left alone, and once it
// runs again the supervisor says so and everything goes on.
TEST_F(HardTimesTest, ProxyTimeoutZeroLeavesAStoppedProxyAlone) {
  config_.supervisor("proxy_timeout", quote("0"));
  ASSERT_NO_FATAL_FAILURE(start());
  const pid_t proxy = proxy_pid();
  ASSERT_EQ(::kill(proxy, SIGSTOP), 0);
  std::this_thread::sleep_for(4500ms);
  EXPECT_EQ(count_log("has not reported for"), 1u);
  ASSERT_EQ(::kill(proxy, SIGCONT), 0);
  EXPECT_TRUE(wait_until([&] { return count_log("reports again after") == 1; }, 5s));
  EXPECT_EQ(proxy_pid(), proxy);
  expect_back_to_normal();
}

}  // namespace
}  // namespace corral::itest
