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

namespace {
nlohmann::json stats_json(const control::AppStats& s) {
  return {{"requests", s.requests}, {"busy_us", s.busy_us}, {"queue_us", s.queue_us},
          {"queued", s.queued}, {"rejected", s.rejected}, {"peak_in_flight", s.peak_in_flight}};
}

control::AppStats stats_from(const nlohmann::json& j) {
  control::AppStats s;
  if (!j.is_object()) return s;
  s.requests = j.value("requests", uint64_t{0});
  s.busy_us = j.value("busy_us", uint64_t{0});
  s.queue_us = j.value("queue_us", uint64_t{0});
  s.queued = j.value("queued", uint64_t{0});
  s.rejected = j.value("rejected", uint64_t{0});
  s.peak_in_flight = j.value("peak_in_flight", uint64_t{0});
  return s;
}
}  // namespace

nlohmann::json AppTotals::state() const {
  return {{"base", stats_json(base_)}, {"last", stats_json(last_)}, {"proxy_pid", proxy_pid_},
          {"exited_cpu", exited_cpu_}, {"exited_cpu_wait", exited_cpu_wait_}};
}

void AppTotals::restore(const nlohmann::json& j) {
  if (!j.is_object()) return;
  base_ = stats_from(j.value("base", nlohmann::json::object()));
  last_ = stats_from(j.value("last", nlohmann::json::object()));
  proxy_pid_ = j.value("proxy_pid", 0);
  exited_cpu_ = j.value("exited_cpu", 0.0);
  exited_cpu_wait_ = j.value("exited_cpu_wait", 0.0);
}

}  // namespace corral::supervisor
