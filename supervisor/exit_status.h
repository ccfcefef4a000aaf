#pragma once
// How a child died, in words, for the one log line every death gets. Pure; thread-safe.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/control/messages.h"

namespace corral::supervisor {

/// "exit code 3", "killed by signal 11 (SIGSEGV) (core dumped)", "killed by signal 9
/// (SIGKILL)", and "killed by signal 9 (SIGKILL), OOM kill (the cgroup's oom_kill counter
/// rose)" when `oom` (evidence from OomEvidence, never a guess).
std::string describe_exit(int wait_status, bool oom);

/// Evidence of an OOM kill: the oom_kill counter of a cgroup v2 memory.events file (the
/// supervisor's own cgroup, which its workers share). consume() answers "did the kernel
/// OOM-kill a process of the cgroup since the last call?". Without the file (cgroup v1, no
/// memory controller) there is never evidence. Loop-affine.
class OomEvidence {
 public:
  /// `events_path`: a memory.events file; the default is the supervisor's cgroup's.
  explicit OomEvidence(std::string events_path = own_memory_events());
  /// True when the counter rose since the previous call (or since construction).
  bool consume();
  /// "/sys/fs/cgroup/<this process's cgroup>/memory.events", or "" when not on cgroup v2.
  static std::string own_memory_events();

 private:
  uint64_t read() const;
  std::string path_;
  uint64_t seen_ = 0;
};

/// The supervisor's OomEvidence (its own cgroup).
OomEvidence& oom_evidence();

/// The end of a death record: what the worker was serving when it died.
///   answer: the proxy's list for that worker (control::SlotRequests), nullopt when the
///     proxy did not answer (gone, restarting, or too slow);
///   last_in_flight: the worker's in-flight count in the proxy's last stats (sent once a
///     second, so possibly stale), used only without an answer and for a death nobody asked for;
///   on_purpose: the supervisor stopped it (stop, reload, scale, recycle, timeout): what it
///     still held was cut by that stop, not being served when it died unexpectedly.
/// Answered: ", serving no request", ", serving 2 request(s): rid=... GET /x 1.250s; rid=...
/// (failed)", or for a stop ", stopped with 1 request(s) unfinished: rid=...". Not answered:
/// ", 1 request(s) in flight (answered 502/504 by the proxy)" for an unexpected death with
/// a count, else "" (a stopped worker's stale count says nothing: the proxy finishes or
/// fails what it has before it exits).
std::string describe_requests(const std::optional<std::vector<control::SlotRequestInfo>>& answer,
                              uint64_t last_in_flight, bool on_purpose);

/// "0.4s", "12.0s", "3m05s".
std::string format_uptime(std::chrono::milliseconds uptime);

}  // namespace corral::supervisor
