#pragma once
// An app's cumulative request and CPU figures as the supervisor keeps them for GET /status
// (`totals`) and `corralctl advise`: the proxy's per-app counters (control::AppStats), which
// start again from zero with a new proxy process or a new dispatcher for the app, folded so
// they only grow; plus the CPU time of the app's workers that have exited (the running
// ones are measured when asked). Loop-affine (owned by its AppPool).
#include <sys/types.h>

#include <cstdint>

#include <nlohmann/json.hpp>

#include "common/control/messages.h"

namespace corral::supervisor {

class AppTotals {
 public:
  /// The proxy's latest counters for the app; `proxy_pid` tells one proxy process from the
  /// next. A restart (another pid, or a counter that went down) adds the previous
  /// counters to the base instead of losing them.
  void on_proxy_stats(const control::AppStats& s, pid_t proxy_pid);
  /// A worker of the app exited after using `cpu_seconds` of CPU (it and its children) and
  /// waiting `cpu_wait_seconds` for a core (as last measured).
  void add_exited(double cpu_seconds, double cpu_wait_seconds) {
    exited_cpu_ += cpu_seconds;
    exited_cpu_wait_ += cpu_wait_seconds;
  }

  /// {"requests", "busy_seconds", "queue_seconds", "queued", "rejected", "cpu_seconds",
  ///  "cpu_wait_seconds", "peak_in_flight"}; `live_*` are the figures of the workers
  ///  running now.
  nlohmann::json to_json(double live_cpu_seconds, double live_cpu_wait_seconds) const;
  /// Everything, for a new supervisor image (upgrade in place), and back. restore() takes
  /// what it can read and leaves the rest at zero.
  nlohmann::json state() const;
  void restore(const nlohmann::json& j);

 private:
  control::AppStats base_;  // previous proxies' counters, summed (peak: the max)
  control::AppStats last_;  // the current proxy's latest
  pid_t proxy_pid_ = 0;
  double exited_cpu_ = 0;
  double exited_cpu_wait_ = 0;
};

}  // namespace corral::supervisor
