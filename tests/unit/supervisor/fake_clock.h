#pragma once
// A Clock the test moves by hand.
#include "supervisor/clock.h"

namespace corral::supervisor {

class FakeClock final : public Clock {
 public:
  TimePoint now() const override { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  TimePoint now_{std::chrono::hours(1)};
};

}  // namespace corral::supervisor
