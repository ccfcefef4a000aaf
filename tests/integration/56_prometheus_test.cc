// A real Prometheus server (Debian's prometheus) scrapes corral's admin listener every second,
// and a rate computed by Prometheus from corral's counters comes back through its HTTP API.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "tests/integration/harness/integration_test.h"
#include "tests/integration/harness/subprocess.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

class PrometheusTest : public IntegrationTest {
 protected:
  void TearDown() override {
    if (prom_ > 0) {
      ::kill(prom_, SIGKILL);
      ::waitpid(prom_, nullptr, 0);
    }
    IntegrationTest::TearDown();
  }
  pid_t prom_ = -1;
};

TEST_F(PrometheusTest, ScrapesCorralAndComputesARate) {
  const char* kPrometheus = "/usr/bin/prometheus";
  if (::access(kPrometheus, X_OK) != 0) GTEST_SKIP() << "prometheus (Debian's package) is not installed";
  config_.proxy("admin", quote("127.0.0.1:0"));
  config_.app("demo").workers(2).concurrency(4);
  ASSERT_NO_FATAL_FAILURE(start());
  std::string bound = corral_->status()["admin"].value("bound", "");
  ASSERT_FALSE(bound.empty());

  const int web = free_port();
  ASSERT_GT(web, 0);
  std::string cfg = rt_.write_file("prometheus.yml", "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                                     "scrape_configs:\n  - job_name: corral\n    static_configs:\n"
                                                     "      - targets: ['" + bound + "']\n");
  std::string data = rt_.path() + "/tsdb";
  std::string log = rt_.path() + "/prometheus.log";
  prom_ = ::fork();
  ASSERT_GE(prom_, 0);
  if (prom_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::string a1 = "--config.file=" + cfg, a2 = "--storage.tsdb.path=" + data,
                a3 = "--web.listen-address=127.0.0.1:" + std::to_string(web);
    ::execl(kPrometheus, kPrometheus, a1.c_str(), a2.c_str(), a3.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }

  // Load for the whole test (one curl at a time: a few dozen requests a second).
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::thread load([&] {
    while (!stop) {
      if (http_get(port(), "/").status == 200) ++ok;
      std::this_thread::sleep_for(10ms);
    }
  });
  const std::string base = "http://127.0.0.1:" + std::to_string(web);
  // The target must be up (scraped, valid) and the rate positive.
  double rate = 0;
  std::string last;
  bool up = false;
  auto deadline = std::chrono::steady_clock::now() + 40s;
  while (std::chrono::steady_clock::now() < deadline && rate <= 0) {
    std::this_thread::sleep_for(1s);
    HttpResponse t = curl({"-G", base + "/api/v1/query", "--data-urlencode", "query=up{job=\"corral\"}"});
    if (t.status == 200) {
      auto j = nlohmann::json::parse(t.body, nullptr, false);
      if (!j.is_discarded() && !j["data"]["result"].empty()) up = j["data"]["result"][0]["value"][1] == "1";
    }
    HttpResponse q = curl({"-G", base + "/api/v1/query", "--data-urlencode",
                           "query=sum(rate(corral_requests_total{app=\"demo\",code=\"2xx\"}[5s]))"});
    last = q.status ? q.body : q.error;
    if (q.status != 200) continue;
    auto j = nlohmann::json::parse(q.body, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) continue;
    rate = std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  }
  stop = true;
  load.join();
  EXPECT_TRUE(up) << "Prometheus did not report the corral target up; its log: " << log;
  EXPECT_GT(rate, 1.0) << "last answer: " << last;
  EXPECT_LT(rate, 500.0) << "last answer: " << last;
  std::printf("[prometheus] rate(corral_requests_total[5s]) = %.1f requests/s (%d requests sent)\n", rate, ok.load());
}

}  // namespace
}  // namespace corral::itest
