// Supervisor lifecycle: readiness, status, both socket hand-over styles, graceful stop
// (SIGTERM lets in-flight requests finish, exit 0, nothing left), fast stop (SIGINT), the
// recent death records in the status.
#include <gtest/gtest.h>

#include <signal.h>

#include <algorithm>
#include <future>
#include <set>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"
#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class LifecycleTest : public IntegrationTest {};

/// Waits up to `limit` for `path` to contain `needle` (access log lines are written as
/// requests end, by the proxy's loop threads).
bool file_gets(const std::string& path, const std::string& needle, std::chrono::milliseconds limit = 5s) {
  for (auto until = Clock::now() + limit; Clock::now() < until; std::this_thread::sleep_for(20ms))
    if (read_file(path).find(needle) != std::string::npos) return true;
  return false;
}

// logrotate renames the access log and sends SIGUSR1 (packaging/logrotate/corral): the
// supervisor opens the file anew and hands it to the proxy, so the next lines go to the new
// file and none to the renamed one. Two apps of different kinds log there; a reload that
// moves the log and changes the second app sends both apps' lines to the new path.
TEST_F(LifecycleTest, AccessLogFileIsOpenedAnewOnSigusr1AndMovedByAReload) {
  const std::string log = rt_.path() + "/access.log";
  config_.proxy("access_log", quote(log));
  AppSpec& cgi = config_.app("cgi");
  cgi.kind = "cgi";
  cgi.command.clear();
  cgi.set("root", quote(std::string(CORRAL_SOURCE_DIR) + "/tests/apps/cgi")).workers(1);
  config_.route("cgi", "/cgi-bin");
  config_.app("demo").workers(1);
  config_.route("demo", "/");
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_EQ(http_get(port(), "/pid?before-rotation").status, 200);
  ASSERT_TRUE(file_gets(log, "/pid?before-rotation")) << read_file(log);
  ASSERT_EQ(::rename(log.c_str(), (log + ".1").c_str()), 0);
  corral_->signal(SIGUSR1);
  for (auto until = Clock::now() + 5s; Clock::now() < until && log_lines_with("reopened the access log").empty();)
    std::this_thread::sleep_for(20ms);
  ASSERT_FALSE(log_lines_with("SIGUSR1: reopened the access log " + log).empty()) << corral_->log();
  ASSERT_EQ(http_get(port(), "/pid?after-rotation").status, 200);
  EXPECT_TRUE(file_gets(log, "/pid?after-rotation")) << "the new file: " << read_file(log);
  EXPECT_EQ(read_file(log + ".1").find("after-rotation"), std::string::npos) << "a line went to the renamed file";
  EXPECT_EQ(read_file(log).find("before-rotation"), std::string::npos);

  const std::string moved = rt_.path() + "/moved.log";
  config_.proxy("access_log", quote(moved));
  config_.app("cgi").env["CHANGED"] = "1";
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_EQ(http_get(port(), "/cgi-bin/env.sh?after-reload").status, 200);
  ASSERT_EQ(http_get(port(), "/pid?after-reload").status, 200);
  EXPECT_TRUE(file_gets(moved, "/cgi-bin/env.sh?after-reload")) << read_file(moved);
  EXPECT_TRUE(file_gets(moved, "/pid?after-reload")) << read_file(moved);
  EXPECT_EQ(read_file(log).find("after-reload"), std::string::npos) << "a line went to the old path";
}

TEST_F(LifecycleTest, StatusReportsListenersProxyAndWorkers) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json st = corral_->status();
  EXPECT_EQ(st.value("pid", 0), corral_->pid()) << st.dump();
  ASSERT_TRUE(st.contains("proxy") && st["proxy"].is_object()) << st.dump();
  EXPECT_GT(st["proxy"].value("pid", 0), 0);
  ASSERT_EQ(st["listeners"].size(), 1u);
  EXPECT_EQ(st["listeners"][0].value("address", ""), "127.0.0.1:0");
  EXPECT_EQ(st["listeners"][0].value("bound", "").rfind("127.0.0.1:", 0), 0u) << st.dump();
  ASSERT_TRUE(wait_status(
      [](const nlohmann::json& s) {
        for (auto& a : s["apps"])
          if (a.value("name", "") == "demo") {
            int ready = 0;
            for (auto& w : a["workers"]) ready += w.value("state", "") == "ready";
            return ready == 2;
          }
        return false;
      },
      5s))
      << corral_->status().dump();
  auto pids = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_NE(pids[0], pids[1]);
  EXPECT_EQ(http_get(port(), "/").body, "hello from testapp\n");
}

TEST_F(LifecycleTest, AppThatBindsItsOwnSocketServes) {
  config_.app("demo").workers(2).bind_itself();
  ASSERT_NO_FATAL_FAILURE(start());
  std::set<std::string> bodies;
  for (int i = 0; i < 6; ++i) {
    HttpResponse r = http_get(port(), "/pid");
    ASSERT_EQ(r.status, 200) << r.error;
    bodies.insert(r.body);
  }
  EXPECT_EQ(bodies.size(), 2u);
  auto sockets = CorralProcess::worker_sockets(corral_->status(), "demo");
  ASSERT_EQ(sockets.size(), 2u);
  for (auto& s : sockets) EXPECT_EQ(unix_get(s, "/").status, 200) << s;
}

TEST_F(LifecycleTest, AppEnvAndWorkerOutputReachTheLog) {
  config_.app("demo").env["GREETING"] = "bonjour";
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(http_get(port(), "/env?name=GREETING").body, "bonjour");
  // The supervisor's own environment does not leak into apps (clean environment).
  EXPECT_EQ(http_get(port(), "/env?name=NOTIFY_SOCKET").status, 404);
  EXPECT_EQ(http_get(port(), "/mk-stdout-line").status, 404);
  stop_and_expect_clean();
  // The testapp's own line (not the access log line for the same request).
  std::vector<std::string> lines = app_lines_with("GET /mk-stdout-line");
  ASSERT_EQ(lines.size(), 1u) << "the app's stdout line is missing from the supervisor log";
  EXPECT_NE(lines[0].find("demo"), std::string::npos) << "not tagged with the app name: " << lines[0];
}

TEST_F(LifecycleTest, SigtermLetsInFlightRequestFinish) {
  config_.app("demo").workers(1);
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json st = corral_->status();
  auto t0 = Clock::now();
  auto slow = std::async(std::launch::async, [&] { return http_get(port(), "/sleep?ms=1500"); });
  std::this_thread::sleep_for(400ms);  // the request is in flight
  corral_->signal(SIGTERM);
  // New connections are refused (or answered) quickly while draining, never hang.
  HttpResponse r = slow.get();
  EXPECT_EQ(r.status, 200) << "in-flight request during SIGTERM: " << r.error;
  EXPECT_EQ(r.body, "slept 1500\n");
  std::optional<int> code = corral_->wait_exit(10s);
  ASSERT_TRUE(code.has_value()) << "no exit within 10 s of SIGTERM";
  EXPECT_EQ(*code, 0);
  EXPECT_GE(Clock::now() - t0, 1400ms);
  stopped_ = true;
  auto left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  for (int i = 0; i < 20 && !left.empty(); ++i) {
    std::this_thread::sleep_for(50ms);
    left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  }
  EXPECT_TRUE(left.empty()) << "left: " << (left.empty() ? "" : left[0].cmdline);
}

TEST_F(LifecycleTest, SigtermWhenIdleExitsQuickly) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(http_get(port(), "/").status, 200);
  auto t0 = Clock::now();
  stop_and_expect_clean(10s);
  EXPECT_LT(Clock::now() - t0, 3s) << "an idle stop should not wait for graceful_timeout";
}

TEST_F(LifecycleTest, SigintStopsFastWithNothingLeft) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  corral_->status();
  auto slow = std::async(std::launch::async, [&] { return http_get(port(), "/sleep?ms=5000"); });
  std::this_thread::sleep_for(300ms);
  auto t0 = Clock::now();
  corral_->signal(SIGINT);
  std::optional<int> code = corral_->wait_exit(4s);
  EXPECT_TRUE(code.has_value()) << "SIGINT did not stop the supervisor within 4 s";
  EXPECT_LT(Clock::now() - t0, 4s);
  stopped_ = true;
  slow.get();
  auto left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  for (int i = 0; i < 20 && !left.empty(); ++i) {
    std::this_thread::sleep_for(50ms);
    left = leftover_processes(corral_->pid(), rt_.path(), corral_->seen_pids(), corral_->start_ticks());
  }
  EXPECT_TRUE(left.empty()) << "left: " << (left.empty() ? "" : left[0].cmdline);
}

TEST_F(LifecycleTest, HungWorkerIsKilledAndReplaced) {
  // A request past `timeout` gets 504 and its worker is replaced; a worker that ignores
  // SIGTERM (here: still busy with a 30 s request) is killed after graceful_timeout.
  config_.supervisor("graceful_timeout", quote("2s"));
  config_.app("demo").workers(2).timeout("1s");
  allowed_errors_ = {"timed out", "did not answer", "hung", "killed", "signal"};
  ASSERT_NO_FATAL_FAILURE(start());
  auto before = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(before.size(), 2u);
  HttpResponse hung = http_get(port(), "/sleep?ms=30000");
  ASSERT_EQ(hung.status, 504) << hung.error;
  pid_t hung_pid = static_cast<pid_t>(std::atoi(hung.header("X-Testapp-Pid").c_str()));
  auto t0 = Clock::now();
  // Meanwhile the other worker answers; the hung slot must not be handed new requests.
  int ok = 0, failed = 0;
  std::string failures;
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = http_get(port(), "/pid?during-replacement");
    if (r.status == 200) {
      ++ok;
    } else {
      ++failed;
      failures += " " + std::to_string(r.status);
    }
  }
  EXPECT_EQ(failed, 0) << "requests sent while the hung worker was being replaced got:" << failures;
  bool replaced = wait_status(
      [&](const nlohmann::json& s) {
        auto now = CorralProcess::worker_pids(s, "demo");
        if (now.size() != 2 || now[0] <= 0 || now[1] <= 0) return false;
        int kept = 0;
        for (pid_t p : before) kept += std::find(now.begin(), now.end(), p) != now.end();
        return kept == 1 && std::find(now.begin(), now.end(), hung_pid) == now.end();
      },
      6s);
  EXPECT_TRUE(replaced) << "the hung worker was not replaced: " << corral_->status().dump();
  EXPECT_LT(Clock::now() - t0, 6s);
  ProcInfo info;
  bool alive = hung_pid > 0 && proc_info(hung_pid, info) && info.state != 'Z';
  EXPECT_FALSE(alive) << "the hung worker " << hung_pid << " is still running";
}

// Every worker exit is kept as data in GET /status ("recent_deaths", newest first): a
// SIGKILL nobody in corral sent is unexpected and names the request it was serving; a
// scale-down is expected.
TEST_F(LifecycleTest, StatusKeepsRecentDeathRecords) {
  config_.app("demo").workers(2);
  allowed_errors_ = {"exited: reason=signal", "connection to the worker"};
  ASSERT_NO_FATAL_FAILURE(start());
  nlohmann::json st = corral_->status();
  for (auto& a : st["apps"]) {
    ASSERT_TRUE(a.contains("recent_deaths")) << a.dump();
    EXPECT_TRUE(a["recent_deaths"].is_array() && a["recent_deaths"].empty()) << a.dump();
  }
  auto before = CorralProcess::worker_pids(st, "demo");
  ASSERT_EQ(before.size(), 2u);
  // One request in flight on each worker (concurrency 1, two workers), so the killed one
  // is surely serving one.
  std::vector<HttpResponse> answers(2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i) clients.emplace_back([&, i] { answers[i] = http_get(port(), "/sleep?ms=3000"); });
  ASSERT_TRUE(wait_status(
      [](const nlohmann::json& s) {
        for (auto& a : s["apps"]) {
          uint64_t busy = 0;
          for (auto& w : a["workers"]) busy += w.value("in_flight", uint64_t{0});
          return busy == 2;
        }
        return false;
      },
      3s))
      << corral_->status().dump();
  const int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  ASSERT_EQ(::kill(before[0], SIGKILL), 0);
  for (auto& c : clients) c.join();

  nlohmann::json death;
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        for (auto& a : s["apps"])
          for (auto& d : a["recent_deaths"])
            if (d.value("pid", 0) == before[0] && d["in_flight_requests"].is_array()) {
              death = d;
              return true;
            }
        return false;
      },
      5s))
      << corral_->status().dump();
  EXPECT_EQ(death.value("reason", ""), "signal") << death.dump();
  EXPECT_EQ(death.value("expected", true), false) << death.dump();
  EXPECT_EQ(death.value("exit", ""), "killed by signal 9 (SIGKILL)") << death.dump();
  EXPECT_EQ(death.value("worker", -1), 0) << death.dump();
  EXPECT_EQ(death.value("generation", 0), 1) << death.dump();
  EXPECT_GE(death.value("time_ms", int64_t{0}), t0) << death.dump();
  EXPECT_LT(death.value("time_ms", int64_t{0}), t0 + 5000) << death.dump();
  EXPECT_GT(death.value("uptime_seconds", 0.0), 0.0) << death.dump();
  EXPECT_GE(death.value("requests", 0), 1) << death.dump();
  ASSERT_EQ(death["in_flight_requests"].size(), 1u) << death.dump();
  auto& req = death["in_flight_requests"][0];
  EXPECT_EQ(req.value("method", ""), "GET");
  EXPECT_EQ(req.value("path", ""), "/sleep?ms=3000");
  EXPECT_FALSE(req.value("id", "").empty()) << death.dump();
  EXPECT_GT(req.value("elapsed_ms", 0), 0) << death.dump();
  // The record's line is the log's death line.
  const std::string line = death.value("line", "");
  EXPECT_NE(line.find("reason=signal, killed by signal 9 (SIGKILL)"), std::string::npos) << line;
  EXPECT_NE(line.find("/sleep?ms=3000"), std::string::npos) << line;
  std::vector<std::string> logged = log_lines_with(line);
  EXPECT_EQ(logged.size(), 1u) << "the record's line is not in the log: " << line;

  // A scale-down: the retired worker's exit is expected, and comes first (newest).
  ProcessResult r = ctl({"scale", "demo", "1"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  nlohmann::json deaths;
  ASSERT_TRUE(wait_status(
      [&](const nlohmann::json& s) {
        for (auto& a : s["apps"])
          if (a["recent_deaths"].size() >= 2 && a["recent_deaths"][0].value("reason", "") == "scale") {
            deaths = a["recent_deaths"];
            return true;
          }
        return false;
      },
      10s))
      << corral_->status().dump();
  EXPECT_EQ(deaths[0].value("expected", false), true) << deaths.dump();
  EXPECT_GE(deaths[0].value("time_ms", int64_t{0}), deaths[1].value("time_ms", int64_t{0})) << deaths.dump();
  EXPECT_EQ(deaths[1].value("pid", 0), before[0]) << deaths.dump();
  nlohmann::json app = corral_->status()["apps"][0];
  EXPECT_EQ(app["deaths"].value("signal", 0), 1) << app.dump();
  EXPECT_EQ(app["deaths"].value("scale", 0), 1) << app.dump();
}

}  // namespace
}  // namespace corral::itest
