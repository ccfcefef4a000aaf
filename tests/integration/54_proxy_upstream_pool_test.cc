// The proxy's kept connections to workers: a worker that goes away (recycled by
// max_requests, here) takes its connections with it; the proxy holds no Unix socket whose
// other end is closed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/harness/integration_test.h"

namespace corral::itest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class UpstreamPoolTest : public IntegrationTest {
 protected:
  void expect_recycles_leave_no_connections(const std::string& path);
};

// The Unix sockets of `pid`, counted by what their peer is (as `ss -xan` reports them):
// "peer closed" for a connected socket whose other end no longer exists, "-> NAME" for a
// connection to a bound socket, "bound NAME" for a bound one, "unix" otherwise.
std::map<std::string, int> unix_sockets_of(pid_t pid) {
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::string link = std::filesystem::read_symlink(e.path(), ec).string();
    if (link.rfind("socket:[", 0) == 0) inodes.insert(link.substr(8, link.size() - 9));
  }
  ProcessResult ss = run_process({"ss", "-xan"}, 20s);
  std::map<std::string, std::pair<std::string, std::string>> table;  // inode -> (local, peer inode)
  std::istringstream lines(ss.out);
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::vector<std::string> w;
    for (std::string s; f >> s;) w.push_back(s);
    if (w.size() >= 8) table[w[5]] = {w[4], w[7]};
  }
  std::map<std::string, int> out;
  for (const auto& ino : inodes) {
    auto it = table.find(ino);
    if (it == table.end()) continue;  // not a Unix socket
    const auto& [local, peer] = it->second;
    std::string what;
    if (local != "*") {
      what = "bound " + std::filesystem::path(local).filename().string();
    } else if (peer == "0" || !table.count(peer)) {
      what = "peer closed";
    } else if (table[peer].first != "*") {
      what = "-> " + std::filesystem::path(table[peer].first).filename().string();
    } else {
      what = "unix";
    }
    ++out[what];
  }
  return out;
}

std::string describe(const std::map<std::string, int>& m) {
  std::string s;
  for (const auto& [k, n] : m) s += k + ": " + std::to_string(n) + "; ";
  return s;
}

// Sends `per_client` GETs of `path` from each of `clients` threads (a new client connection
// each, kept upstream connections underneath); returns how many did not get a 200.
int load(int port, const std::string& path, int clients, int per_client) {
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < per_client; ++i)
        if (http_get(port, path).status != 200) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  return failed.load();
}

// Waits up to 3 s for the proxy to hold no Unix socket whose peer is gone; returns what it
// holds at the end.
std::map<std::string, int> settle(pid_t proxy) {
  std::map<std::string, int> socks;
  auto deadline = Clock::now() + 3s;
  do {
    std::this_thread::sleep_for(100ms);
    socks = unix_sockets_of(proxy);
  } while (socks.count("peer closed") && Clock::now() < deadline);
  return socks;
}

// Loads `path` until workers are recycled (max_requests). The recycled processes are gone (their
// exit is logged): within a moment the proxy has closed every connection they had, pooled or not.
void UpstreamPoolTest::expect_recycles_leave_no_connections(const std::string& path) {
  pid_t proxy = proxy_pid();
  ASSERT_GT(proxy, 0);
  EXPECT_EQ(load(port(), path, 4, 15), 0);
  auto recycled = [&] { return log_lines_with("reason=max_requests").size(); };
  ASSERT_GE(recycled(), 2u) << "no worker was recycled";
  std::map<std::string, int> socks = settle(proxy);
  EXPECT_EQ(socks.count("peer closed"), 0u)
      << "the proxy keeps connections to workers that closed them: " << describe(socks)
      << "(after " << recycled() << " recycles)";
}

TEST_F(UpstreamPoolTest, RecycledWorkersLeaveNoConnectionsBehind) {
  // Two proxy threads, each with its own pool, and several kept connections per worker:
  // every recycle leaves idle connections in both pools.
  config_.proxy("threads", "2");
  auto& a = config_.app("demo");
  a.workers(2).concurrency(4);
  a.set("max_requests", "10");
  a.set("max_requests_jitter", "0");
  ASSERT_NO_FATAL_FAILURE(start());
  expect_recycles_leave_no_connections("/pid");
}

// FastCGI keeps idle connections in one store shared by the loop threads. Each recycled
// worker gets a new slot (a new socket path): the connections kept to the old one must go
// with its process, not wait for a request to that path that never comes.
TEST_F(UpstreamPoolTest, RecycledFastcgiWorkersLeaveNoConnectionsBehind) {
  config_.proxy("threads", "2");
  AppSpec& a = config_.app("c");
  a.kind = "fastcgi";
  a.command = {bin_path("corral-fcgi-hello")};
  a.workers(2);
  a.set("max_requests", "10");
  a.set("max_requests_jitter", "0");
  ASSERT_NO_FATAL_FAILURE(start());
  expect_recycles_leave_no_connections("/");
}

}  // namespace
}  // namespace corral::itest
