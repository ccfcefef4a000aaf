#pragma once
// Rate limiting for log lines about request paths ("script X is not executable"): a line
// about the same key is written at most once per interval, so a client repeating a request
// cannot flood the log, and an operator still sees each problem. Memory is fixed whatever
// the traffic: keys are hashed into kSets sets of kWays remembered keys; a set that is full
// forgets its least recently logged key (which may then be logged again early: harmless).
// Thread-safe: one mutex, O(kWays) work and no allocation under it.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

namespace corral::cgi {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kSets = 256;
  static constexpr size_t kWays = 4;

  explicit LogLimiter(Clock::duration interval = std::chrono::minutes(1)) : interval_(interval) {}

  /// True when a line about `key` may be written at `now` (and records it as written);
  /// false when one was written less than the interval ago. Thread-safe.
  bool allow(std::string_view key, Clock::time_point now = Clock::now());

 private:
  struct Entry {
    uint64_t hash = 0;
    Clock::time_point last{};
    bool used = false;
  };
  Clock::duration interval_;
  std::mutex mu_;
  std::array<std::array<Entry, kWays>, kSets> sets_{};
};

}  // namespace corral::cgi
