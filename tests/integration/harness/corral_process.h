#pragma once
// CorralProcess: the real corral-supervisor, spawned with posix_spawn in its own process
// group, stdout+stderr appended to TempRuntime/corral.log. Readiness comes from the
// READY=1 datagram on $NOTIFY_SOCKET (a socket in the temp dir), never from polling.
// The destructor kills the group and every process it has seen (proxy, workers).
//
// Not thread-safe: use it from the test's main thread (clients may run in threads).
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/harness/temp_runtime.h"

namespace corral::itest {

using namespace std::chrono_literals;

class CorralProcess {
 public:
  /// `config_path` is the file passed with -c. `launcher` runs before the supervisor's argv
  /// and must exec it in place (same pid), e.g. {"ip", "netns", "exec", NAME}.
  CorralProcess(const TempRuntime& rt, std::string config_path, std::vector<std::string> launcher = {});
  ~CorralProcess();
  CorralProcess(const CorralProcess&) = delete;
  CorralProcess& operator=(const CorralProcess&) = delete;

  /// Spawns the supervisor and waits for READY=1. On failure returns false and fills
  /// `error` (including whether the supervisor exited early and how).
  [[nodiscard]] bool start(std::chrono::milliseconds ready_timeout, std::string* error);
  /// The supervisor executable start() runs (default: the built one). A test that replaces
  /// it on disk (an upgrade in place) runs a copy.
  void set_binary(std::string path) { binary_ = std::move(path); }

  pid_t pid() const { return pid_; }
  /// True while the supervisor has not exited (reaps it when it has).
  bool running();
  /// The datagrams the supervisor sent on $NOTIFY_SOCKET since READY=1 (or since the last
  /// call): waits up to `wait` for the first, then takes what else is there.
  std::vector<std::string> notifications(std::chrono::milliseconds wait);

  /// `corralctl --socket RUNTIME/control.sock status --json`, parsed. A null json on
  /// failure (with the reason in `error` when given). Records every pid it reports.
  nlohmann::json status(std::string* error = nullptr);
  /// The bound port of listener `index` from status (listeners[i].bound); 0 on failure.
  int port(size_t index = 0);
  /// Worker pids / socket paths of `app` from a status document (in slot order).
  static std::vector<pid_t> worker_pids(const nlohmann::json& status, const std::string& app);
  static std::vector<std::string> worker_sockets(const nlohmann::json& status, const std::string& app);

  /// Sends `sig` to the supervisor only.
  void signal(int sig);
  /// Waits for the supervisor to exit; its exit code, or -(signal) when killed by one,
  /// or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  /// Sends `sig` (TERM by default) and waits; see wait_exit.
  std::optional<int> stop(std::chrono::milliseconds timeout, int sig = 15);
  /// SIGKILL to the group and to every pid seen; reaps the supervisor.
  void kill_all();

  /// Every pid seen so far: supervisor, proxy, workers (from status calls).
  const std::set<pid_t>& seen_pids() const { return seen_; }
  /// The supervisor's start time (clock ticks since boot), for pid-reuse checks.
  unsigned long long start_ticks() const { return start_ticks_; }
  /// The whole log (supervisor stderr/stdout: its own lines, app output, access log).
  std::string log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  bool wait_ready(std::chrono::milliseconds timeout, std::string* error);

  const TempRuntime& rt_;
  std::string config_path_;
  std::vector<std::string> launcher_;
  std::string binary_;
  std::string log_path_;
  std::string notify_path_;
  int notify_fd_ = -1;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_status_ = 0;
  std::set<pid_t> seen_;
  unsigned long long start_ticks_ = 0;
};

}  // namespace corral::itest
