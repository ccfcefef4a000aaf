#include "tests/integration/harness/load.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <utility>

#include "tests/integration/harness/clients.h"

namespace corral::itest {

namespace {

const std::string kKeepaliveLoad = std::string(CORRAL_SOURCE_DIR) + "/tests/integration/drain/keepalive_load.py";

}  // namespace

Http1Load::Http1Load(int port, Expect expect, int threads, Connections connections, std::chrono::milliseconds pause)
    : port_(port), expect_(std::move(expect)), pause_(pause) {
  for (auto& [p, _] : expect_) paths_.push_back(p);
  if (paths_.empty()) return;
  for (int i = 0; i < threads; ++i) {
    const bool keep_alive = connections == Connections::kHalfKeepAlive && i % 2 == 0;
    threads_.emplace_back([this, i, keep_alive] { run(static_cast<size_t>(i), keep_alive); });
  }
}

Http1Load::~Http1Load() { stop(); }

void Http1Load::accept(const std::string& path, const std::string& body) {
  std::lock_guard<std::mutex> g(mu_);
  expect_[path].insert(body);
}

void Http1Load::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

std::string Http1Load::failures() {
  std::lock_guard<std::mutex> g(mu_);
  return failures_;
}

bool Http1Load::accepted(const std::string& path, const std::string& body) {
  std::lock_guard<std::mutex> g(mu_);
  const auto& bodies = expect_.at(path);
  return bodies.empty() || bodies.count(body) > 0;
}

void Http1Load::run(size_t next, bool keep_alive) {
  using namespace std::chrono_literals;
  std::unique_ptr<RawClient> c;
  size_t sent = 0;
  while (!stop_) {
    const std::string& path = paths_[next++ % paths_.size()];
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: load\r\n" +
                            (keep_alive ? std::string() : std::string("Connection: close\r\n")) + "\r\n";
    std::string error;
    if (!c) {
      c = std::make_unique<RawClient>();
      sent = 0;
      if (!c->connect_tcp(port_)) error = "connect failed";
    }
    RawResponse got;
    if (error.empty() && !c->send(req)) error = "send failed";
    if (error.empty()) {
      ++sent;
      auto all = c->read_responses(sent, 10s);
      if (all.size() < sent) error = c->closed() ? "closed without a response" : "timed out";
      else got = all[sent - 1];
    }
    if (error.empty() && got.status != 200) error = "status " + std::to_string(got.status) + " " + got.body.substr(0, 80);
    if (error.empty() && !accepted(path, got.body)) error = "unexpected body '" + got.body.substr(0, 80) + "'";
    if (!error.empty()) {
      ++failed_;
      std::lock_guard<std::mutex> g(mu_);
      if (failures_.size() < 4000)
        failures_ += " [" + path + (keep_alive ? " (keep-alive, request " + std::to_string(sent) + " on it)" : " (new connection)") +
                     ": " + error + "]";
      c.reset();
    } else {
      ++ok_;
      if (!keep_alive || got.header("Connection") == "close") c.reset();
    }
    std::this_thread::sleep_for(pause_);
  }
}

void KeepaliveLoad::start(int port, int conns, const std::string& path, const std::string& dir) {
  stop_file = dir + "/load.stop";
  ready_file = dir + "/load.ready";
  thread = std::thread([this, port, conns, path] {
    result = run_process({"/usr/bin/python3", kKeepaliveLoad, std::to_string(port), stop_file, std::to_string(conns), path,
                          ready_file},
                         std::chrono::seconds(90));
  });
}

bool KeepaliveLoad::wait_ready(std::chrono::milliseconds limit) {
  for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
    if (::access(ready_file.c_str(), F_OK) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void KeepaliveLoad::stop() {
  if (!stop_file.empty()) ::close(::open(stop_file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
}

nlohmann::json KeepaliveLoad::finish() {
  stop();
  if (thread.joinable()) thread.join();
  auto j = nlohmann::json::parse(result.out, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

KeepaliveLoad::~KeepaliveLoad() {
  stop();
  if (thread.joinable()) thread.join();
}

}  // namespace corral::itest
