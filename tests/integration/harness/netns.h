#pragma once
// Hosts on one machine for tests that need several: network namespaces the test makes for
// itself, named "crl<PID>-<name>", each with its loopback up, joined by veth pairs whose
// addresses exist only inside them (nothing is added to the machine's own namespace, and a
// namespace has no route but its links). Removed on destruction; namespaces left behind by a
// test binary that died (its pid is gone) are removed by the next one that makes any.
//
// BackgroundProcess: a long-running program (a load balancer) in its own process group, its
// output appended to a log file; stopped (TERM, then KILL) and reaped on destruction.
//
// Not thread-safe: build the topology and start processes from one thread; any thread may
// then enter() a namespace.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/integration/harness/subprocess.h"

namespace corral::itest {

class NetNamespaces {
 public:
  /// Why namespaces cannot be made here ("" when they can): not root, no `ip` (iproute2), or
  /// `ip netns add` refused (no CAP_NET_ADMIN / CAP_SYS_ADMIN). Tries one and removes it.
  static std::string unavailable_reason();

  NetNamespaces();
  ~NetNamespaces();
  NetNamespaces(const NetNamespaces&) = delete;
  NetNamespaces& operator=(const NetNamespaces&) = delete;

  /// Adds namespace `name` (short: it names the veth ends too) with lo up. False with the
  /// reason in `error`.
  bool add(const std::string& name, std::string* error);
  /// A veth pair between namespaces `a` and `b` ("v-B" in a, "v-A" in b), up, with the
  /// addresses `cidr_a` and `cidr_b` (e.g. "198.18.1.1/24").
  bool link(const std::string& a, const std::string& cidr_a, const std::string& b, const std::string& cidr_b,
            std::string* error);
  /// The namespace's system-wide name (for `ip -n` and `ip netns exec`).
  std::string full(const std::string& name) const { return prefix_ + name; }
  /// {"ip", "netns", "exec", full(name)}: a launcher that runs a program inside (it execs in
  /// place, so the program keeps the launcher's pid).
  std::vector<std::string> exec(const std::string& name) const;
  /// run_process() inside namespace `name`.
  ProcessResult run(const std::string& name, std::vector<std::string> argv, std::chrono::milliseconds timeout) const;
  /// Moves the calling thread into namespace `name`: the sockets it makes from then on live
  /// there. False on failure.
  bool enter(const std::string& name) const;

 private:
  static void remove_stale();
  std::string prefix_;
  std::vector<std::string> names_;
};

class BackgroundProcess {
 public:
  BackgroundProcess() = default;
  ~BackgroundProcess() { stop(); }
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  /// Spawns argv (argv[0] searched in PATH) in a new process group, stdin /dev/null,
  /// stdout+stderr appended to `log_path`. False with the reason in `error`.
  bool start(const std::vector<std::string>& argv, const std::string& log_path, std::string* error);
  pid_t pid() const { return pid_; }
  /// True while it has not exited (reaps it when it has); `status` gets the wait status text.
  bool running(std::string* status = nullptr);
  /// TERM to its process group, KILL to the group after `grace`; reaps.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(3));

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string exit_text_;
};

}  // namespace corral::itest
