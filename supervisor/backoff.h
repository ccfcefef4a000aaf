#pragma once
// Restart back-off for a process that keeps dying young (nghttpx ConnectBlocker): a slot
// whose process dies within `quick_death` of starting waits initial, 2×, 4×, … (capped,
// with jitter) before the next start; a process that lived `stable_after` resets it. A
// process that never became ready (boot_timeout) counts as dying young however long it took.
// Loop-affine (no locking); one per worker slot and one for the proxy.
#include <chrono>
#include <functional>

#include "supervisor/clock.h"

namespace corral::supervisor {

using Millis = std::chrono::milliseconds;

struct BackoffPolicy {
  Millis initial{500};
  Millis max{30'000};
  Millis quick_death{5'000};   ///< dying sooner than this after start counts as a failure
  Millis stable_after{10'000}; ///< living this long resets the failure count
  double jitter = 0.2;         ///< delay × uniform[1 - jitter, 1 + jitter], then capped at max
};

class Backoff {
 public:
  /// Returns a number uniformly in [0, 1). The default uses a per-process random engine.
  using Random = std::function<double()>;

  /// clock must outlive the Backoff.
  explicit Backoff(const Clock& clock, BackoffPolicy policy = {}, Random random = {});

  /// The process started now.
  void on_start();
  /// The process died now. Returns how long to wait before starting it again (0 = at once).
  /// never_ready: it died (or was killed at boot_timeout) before it ever became ready, which
  /// counts as a quick death however long it lived.
  Millis on_exit(bool never_ready = false);
  /// Uptime of the current (or last) process.
  Millis uptime() const;
  /// Consecutive quick deaths so far.
  int failures() const { return failures_; }
  void reset() { failures_ = 0; }
  /// When the current (or last) process started.
  TimePoint started() const { return started_; }
  /// Takes over the state of a previous supervisor image (upgrade in place).
  void restore(TimePoint started, int failures) {
    started_ = started;
    failures_ = failures;
  }

 private:
  const Clock& clock_;
  BackoffPolicy policy_;
  Random random_;
  TimePoint started_{};
  int failures_ = 0;
};

}  // namespace corral::supervisor
