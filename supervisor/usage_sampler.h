#pragma once
// Worker CPU and memory, read from /proc on a thread of its own. A read of
// /proc/PID/smaps_rollup (and of /proc/PID/stat on a busy machine) waits for that process's
// memory-map lock, which a process that is exec'ing, faulting or reclaiming memory can hold for
// seconds, and the scan for a process group's members meets every process on the host. Done on
// the supervisor's loop, these reads stalled reaping, timers and the control API for over a
// minute under load. The loop now only reads the last figures this sampler took (at most
// kEvery old), and a status query asks for fresh ones with refresh() and answers when they are
// in (the one place where a second's age matters: `corralctl advise` measures over windows of
// a few seconds).
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/ev/loop.h"
#include "supervisor/proc_stats.h"

namespace corral::supervisor {

class UsageSampler {
 public:
  /// The process's one sampler; its thread starts on first use.
  static UsageSampler& instance();
  ~UsageSampler();
  UsageSampler(const UsageSampler&) = delete;
  UsageSampler& operator=(const UsageSampler&) = delete;

  /// The last figures of process group `pgid` (zeros until its first sample, taken at once
  /// after the first ask); groups nobody asked about for 10 s are no longer sampled.
  /// Thread-safe.
  GroupUsage usage(pid_t pgid);
  /// Samples `pgids` (and every group sampled already) now, then posts `done` to `loop`.
  /// Thread-safe.
  void refresh(const std::vector<pid_t>& pgids, ev::Loop& loop, std::function<void()> done);
  /// Drops the refreshes not yet done: their `done` never runs (for an owner going away; once
  /// this returns, nothing is posted for them).
  void forget_refreshes();
  /// Waits until `pgid` has been sampled at least once after this call; false after
  /// `timeout` (tests).
  bool wait_fresh(pid_t pgid, std::chrono::milliseconds timeout);

  /// How often the thread samples on its own.
  static constexpr std::chrono::milliseconds kEvery{1000};

 private:
  UsageSampler();
  void run();
  void ask_locked(pid_t pgid);

  struct Group {
    GroupUsage usage;
    std::chrono::steady_clock::time_point asked;
    uint64_t samples = 0;
  };
  struct Refresh {
    ev::Loop* loop;
    std::function<void()> done;
  };
  std::mutex mu_;
  std::condition_variable wake_, sampled_;
  std::unordered_map<pid_t, Group> groups_;
  std::vector<Refresh> waiting_;  ///< refreshes asked for since the current sample began
  uint64_t forgotten_ = 0;        ///< forget_refreshes() calls: a sample under way posts nothing
  bool urgent_ = false;           ///< sample now: a new group or a refresh waits
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace corral::supervisor
