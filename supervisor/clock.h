#pragma once
// The time source of supervisor policy (back-off, uptime), so tests can drive it.
#include <chrono>

namespace corral::supervisor {

using TimePoint = std::chrono::steady_clock::time_point;

/// Monotonic time. Implementations are used from the supervisor's loop thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

/// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace corral::supervisor
