#include "supervisor/app_totals.h"

#include <algorithm>

namespace corral::supervisor {

void AppTotals::on_proxy_stats(const control::AppStats& s, pid_t proxy_pid) {
  const bool went_down = s.requests < last_.requests || s.busy_us < last_.busy_us || s.queue_us < last_.queue_us ||
                         s.queued < last_.queued || s.rejected < last_.rejected;
  if ((proxy_pid_ != 0 && proxy_pid != proxy_pid_) || went_down) {
    base_.requests += last_.requests;
    base_.busy_us += last_.busy_us;
    base_.queue_us += last_.queue_us;
    base_.queued += last_.queued;
    base_.rejected += last_.rejected;
    base_.peak_in_flight = std::max(base_.peak_in_flight, last_.peak_in_flight);
  }
  proxy_pid_ = proxy_pid;
  last_ = s;
}

nlohmann::json AppTotals::to_json(double live_cpu_seconds, double live_cpu_wait_seconds) const {
  auto seconds = [](uint64_t us) { return static_cast<double>(us) / 1e6; };
  return {{"requests", base_.requests + last_.requests},
          {"busy_seconds", seconds(base_.busy_us + last_.busy_us)},
          {"queue_seconds", seconds(base_.queue_us + last_.queue_us)},
          {"queued", base_.queued + last_.queued},
          {"rejected", base_.rejected + last_.rejected},
          {"cpu_seconds", exited_cpu_ + live_cpu_seconds},
          {"cpu_wait_seconds", exited_cpu_wait_ + live_cpu_wait_seconds},
          {"peak_in_flight", std::max(base_.peak_in_flight, last_.peak_in_flight)}};
}

}  // namespace corral::supervisor
