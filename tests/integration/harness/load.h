#pragma once
// Load generators for tests that change the server under traffic (reload, upgrade, drain,
// proxy restart) and then check that no request failed:
//   - Http1Load: RawClient threads sending HTTP/1.1 GETs over a set of paths, each with
//     the bodies it may answer; failures are counted and kept with their reasons;
//   - KeepaliveLoad: the Python keep-alive client (tests/integration/drain/keepalive_load.py)
//     run on a thread until stopped; its JSON summary is the result.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/harness/subprocess.h"

namespace corral::itest {

/// HTTP/1.1 load on 127.0.0.1:port, started by the constructor and run until stop(). Thread
/// i begins at path i and walks the paths in turn, pausing `pause` between two requests.
/// With Connections::kHalfKeepAlive the even threads keep their connection alive (a new
/// one after a failure or a Connection: close) and the odd ones open one per request
/// (Connection: close); with Connections::kNewEach every thread opens one per request.
/// Anything but a 200 whose body is accepted for its path is a failure.
class Http1Load {
 public:
  /// Path -> the bodies it may answer; an empty set accepts any body.
  using Expect = std::map<std::string, std::set<std::string>>;
  enum class Connections { kHalfKeepAlive, kNewEach };

  Http1Load(int port, Expect expect, int threads, Connections connections = Connections::kHalfKeepAlive,
            std::chrono::milliseconds pause = std::chrono::milliseconds(3));
  ~Http1Load();
  Http1Load(const Http1Load&) = delete;
  Http1Load& operator=(const Http1Load&) = delete;

  /// Accepts `body` for `path` from now on (a change the test made on purpose).
  void accept(const std::string& path, const std::string& body);
  /// Stops and joins the threads (idempotent).
  void stop();
  int ok() const { return ok_; }
  int failed() const { return failed_; }
  /// The failures, " [path (connection): reason]" each (capped at a few KB).
  std::string failures();

 private:
  bool accepted(const std::string& path, const std::string& body);
  void run(size_t next, bool keep_alive);

  int port_;
  Expect expect_;
  std::vector<std::string> paths_;
  std::chrono::milliseconds pause_;
  std::atomic<bool> stop_{false};
  std::atomic<int> ok_{0}, failed_{0};
  std::mutex mu_;
  std::string failures_;
  std::vector<std::thread> threads_;
};

/// The keep-alive load client (tests/integration/drain/keepalive_load.py) on a thread until
/// stop() or finish() (it prints its JSON summary then). Files in `dir` tell it when to stop
/// and tell the test when it has had its first answer, so a loaded machine that starts Python
/// late changes nothing in the schedule.
struct KeepaliveLoad {
  std::thread thread;
  ProcessResult result;
  std::string stop_file, ready_file;

  /// `conns` connections on 127.0.0.1:port, GET `path` on each in a loop.
  void start(int port, int conns, const std::string& path, const std::string& dir);
  /// True once the load had its first answer (within `limit`).
  bool wait_ready(std::chrono::milliseconds limit = std::chrono::seconds(20));
  /// Tells the client to stop (it prints its summary then).
  void stop();
  /// Stops, waits for the client and returns its summary (null json when it printed none).
  nlohmann::json finish();
  ~KeepaliveLoad();
};

}  // namespace corral::itest
