#pragma once
// One log line per interval for a problem that recurs on every request (a full disk under
// the access log or the request-body temp files): the first occurrence is logged at once,
// the next ones at most once per interval, each logged line saying how many were held back
// since the previous one. What is not logged is still counted by the caller's metric.
//
//   static LogThrottle limit;
//   if (uint64_t held = 0; limit.allow(&held)) CORRAL_LOG(Error, "x") << "... (" << held << " more)";
//
// Thread-safe: atomics only (contended on the failure path alone).
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace corral {

class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::milliseconds every = std::chrono::milliseconds(1000)) : every_ms_(every.count()) {}

  /// True when this occurrence is to be logged; then `*held` (when given) is the number of
  /// occurrences not logged since the last logged one.
  bool allow(uint64_t* held = nullptr) { return allow_at(now_ms(), held); }

  /// The same at `now` (milliseconds on a monotonic clock: the same clock for every call on
  /// one throttle), for a caller that has read the time already or a test that sets it.
  bool allow_at(int64_t now, uint64_t* held = nullptr) {
    int64_t next = next_ms_.load(std::memory_order_relaxed);
    if (now >= next && next_ms_.compare_exchange_strong(next, now + every_ms_, std::memory_order_relaxed)) {
      const uint64_t h = held_.exchange(0, std::memory_order_relaxed);
      if (held) *held = h;
      return true;
    }
    held_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  /// Starts afresh: the next occurrence is logged at once (call when the problem is over).
  void reset() {
    next_ms_.store(0, std::memory_order_relaxed);
    held_.store(0, std::memory_order_relaxed);
  }

 private:
  static int64_t now_ms() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  }

  const int64_t every_ms_;
  std::atomic<int64_t> next_ms_{0};
  std::atomic<uint64_t> held_{0};
};

}  // namespace corral
