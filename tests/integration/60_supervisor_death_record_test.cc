// Death records name only requests really in flight: after load, a clean stop or a reload
// stops workers that serve nothing, and their records must not claim otherwise (the proxy's
// per-worker counts, sent once a second, are stale by then). A worker killed under a request
// still names it (70_chaos_test.cc checks the full line).
#include <gtest/gtest.h>

#include <signal.h>

#include <future>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

class DeathRecordTest : public IntegrationTest {
 protected:
  std::vector<std::string> death_lines() const { return log_lines_with("exited: reason="); }

  // Requests on every worker that stay in flight across at least one of the proxy's
  // once-a-second stats reports, then end.
  void load(int workers) {
    std::vector<std::future<HttpResponse>> slow;
    for (int i = 0; i < workers; ++i)
      slow.push_back(std::async(std::launch::async, [this] { return http_get(port(), "/sleep?ms=1300"); }));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(http_get(port(), "/sleep?ms=100").status, 200);
    for (auto& f : slow) EXPECT_EQ(f.get().status, 200);
  }
};

TEST_F(DeathRecordTest, CleanStopRightAfterLoadNamesNoRequest) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  // The proxy reported these requests in flight; it drains and exits before the workers
  // are stopped, so nobody can answer for them afterwards.
  std::vector<std::future<HttpResponse>> slow;
  for (int i = 0; i < 2; ++i)
    slow.push_back(std::async(std::launch::async, [this] { return http_get(port(), "/sleep?ms=1500"); }));
  std::this_thread::sleep_for(1200ms);
  corral_->signal(SIGTERM);
  for (auto& f : slow) EXPECT_EQ(f.get().status, 200) << "a graceful stop finishes what is in flight";
  std::optional<int> code = corral_->wait_exit(10s);
  stopped_ = true;
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0);
  auto deaths = death_lines();
  EXPECT_EQ(deaths.size(), 2u) << corral_->log();
  for (auto& d : deaths) {
    EXPECT_NE(d.find("reason=stop"), std::string::npos) << d;
    EXPECT_EQ(d.find("request(s)"), std::string::npos) << "a worker stopped idle named requests: " << d;
    EXPECT_EQ(d.find("in flight"), std::string::npos) << d;
  }
}

TEST_F(DeathRecordTest, ReloadAfterLoadNamesNoRequest) {
  config_.app("demo").workers(2);
  ASSERT_NO_FATAL_FAILURE(start());
  load(2);
  config_.app("demo").env["GENERATION"] = "2";  // a new generation: every worker is replaced
  ProcessResult r = reload_config();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::string> deaths;
  for (int i = 0; i < 50 && deaths.size() < 2; ++i) {
    std::this_thread::sleep_for(100ms);
    deaths = death_lines();
  }
  ASSERT_EQ(deaths.size(), 2u) << corral_->log();
  for (auto& d : deaths) {
    EXPECT_NE(d.find("reason=reload"), std::string::npos) << d;
    // The proxy answered: the drained worker was serving nothing.
    EXPECT_NE(d.find(", serving no request"), std::string::npos) << d;
    EXPECT_EQ(d.find("request(s)"), std::string::npos) << d;
  }
  EXPECT_EQ(http_get(port(), "/env?name=GENERATION").body, "2");
}

TEST_F(DeathRecordTest, KilledWorkerStillNamesItsRequest) {
  config_.app("demo").workers(1);
  allowed_errors_ = {"reason=signal"};
  ASSERT_NO_FATAL_FAILURE(start());
  load(1);
  auto pids = CorralProcess::worker_pids(corral_->status(), "demo");
  ASSERT_EQ(pids.size(), 1u);
  // A POST: a GET on a reused keep-alive connection would be resent once to the slot's
  // socket (connection_client.cc) and answered by the restarted worker.
  auto killed = std::async(std::launch::async,
                           [this] { return http_get(port(), "/sleep?ms=5000", {"-X", "POST", "--data", "x"}); });
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  EXPECT_EQ(killed.get().status, 502);
  std::vector<std::string> deaths;
  for (int i = 0; i < 50 && deaths.empty(); ++i) {
    std::this_thread::sleep_for(100ms);
    deaths = death_lines();
  }
  ASSERT_EQ(deaths.size(), 1u) << corral_->log();
  EXPECT_NE(deaths[0].find("serving 1 request(s): rid="), std::string::npos) << deaths[0];
  EXPECT_NE(deaths[0].find("POST /sleep?ms=5000"), std::string::npos) << deaths[0];
  // Only that one: the requests it completed before are not named.
  EXPECT_EQ(deaths[0].find("/sleep?ms=1300"), std::string::npos) << deaths[0];
  EXPECT_EQ(deaths[0].find("/sleep?ms=100"), std::string::npos) << deaths[0];
}

}  // namespace
}  // namespace corral::itest
