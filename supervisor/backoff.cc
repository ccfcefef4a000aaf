#include "supervisor/backoff.h"

#include <algorithm>
#include <random>

namespace corral::supervisor {

Backoff::Backoff(const Clock& clock, BackoffPolicy policy, Random random)
    : clock_(clock), policy_(policy), random_(std::move(random)) {
  if (!random_) {
    random_ = [engine = std::minstd_rand(std::random_device{}())]() mutable {
      return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
  }
}

void Backoff::on_start() { started_ = clock_.now(); }

Millis Backoff::uptime() const { return std::chrono::duration_cast<Millis>(clock_.now() - started_); }

Millis Backoff::on_exit(bool never_ready) {
  const Millis lived = uptime();
  if (!never_ready) {
    if (lived >= policy_.stable_after) failures_ = 0;
    if (lived >= policy_.quick_death) return Millis{0};
  }
  // 2^failures, computed in doubles so a long crash loop cannot overflow the shift.
  double delay = static_cast<double>(policy_.initial.count());
  for (int i = 0; i < failures_ && delay < static_cast<double>(policy_.max.count()); ++i) delay *= 2;
  ++failures_;
  delay *= 1.0 - policy_.jitter + 2.0 * policy_.jitter * random_();
  delay = std::min(delay, static_cast<double>(policy_.max.count()));
  return Millis{static_cast<Millis::rep>(delay)};
}

}  // namespace corral::supervisor
