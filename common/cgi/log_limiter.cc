#include "common/cgi/log_limiter.h"

#include <functional>

namespace corral::cgi {

bool LogLimiter::allow(std::string_view key, Clock::time_point now) {
  const uint64_t h = std::hash<std::string_view>{}(key);
  std::lock_guard<std::mutex> g(mu_);
  auto& set = sets_[h % kSets];
  Entry* victim = &set[0];
  for (Entry& e : set) {
    if (e.used && e.hash == h) {
      if (now - e.last < interval_) return false;
      e.last = now;
      return true;
    }
    // An unused entry first, else the one logged longest ago.
    if (victim->used && (!e.used || e.last < victim->last)) victim = &e;
  }
  *victim = Entry{h, now, true};
  return true;
}

}  // namespace corral::cgi
