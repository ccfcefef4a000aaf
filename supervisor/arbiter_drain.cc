// Arbiter drain: taking the host out of its load balancer before it stops (SIGTERM, POST
// /stop with [supervisor] drain_delay) or for maintenance (POST /drain, corralctl drain).
// While draining, the proxy's /readyz answers 503 "draining", HTTP/1.1 responses carry
// Connection: close and HTTP/2 connections get GOAWAY; the listeners keep accepting and
// serving, workers keep running, and a reload is allowed (the drain stays on).
//
// A stop drains for what is left of drain_delay (a host drained long enough by corralctl
// drain stops at once), then runs the graceful stop. A second SIGTERM or POST /stop during
// that delay stops at once; SIGINT/SIGQUIT stop fast as always. POST /undrain withdraws a
// maintenance drain; a stop's drain cannot be withdrawn.
#include <algorithm>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "supervisor/arbiter.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
using std::chrono::milliseconds;

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

void Arbiter::set_draining(bool on) {
  if (on == drain_since_.has_value()) return;
  if (on) drain_since_ = clock_.now();
  else drain_since_.reset();
  proxy_->send(control::SetDraining{on});  // not running: on_proxy_spawned() sends it
  if (swap_ && swap_->candidate) swap_->candidate->send(control::SetDraining{on});
}

void Arbiter::stop_after_drain(const char* why) {
  crash::Operation op("drain before stop");
  if (phase_ != Phase::Running) return begin_stop(true);
  if (drain_timer_.armed()) {
    CORRAL_LOG(Info, kTag) << why << " again while draining: stopping now";
    drain_timer_.cancel();
    return begin_stop(true);
  }
  milliseconds left = config_.supervisor.drain_delay;
  if (drain_since_) left -= std::chrono::duration_cast<milliseconds>(clock_.now() - *drain_since_);
  if (left <= milliseconds{0}) {
    CORRAL_LOG(Info, kTag) << why << ": graceful stop";
    return begin_stop(true);
  }
  CORRAL_LOG(Info, kTag) << why << ": draining for " << left.count()
                         << "ms (drain_delay; /readyz fails, the listeners keep serving), then a graceful stop";
  set_draining(true);
  // The service manager learns now that this is a stop (systemctl shows it deactivating), and
  // how long it may take.
  notify_stopping(left, true);
  drain_stop_at_ = clock_.now() + left;
  drain_timer_.arm(left);
}

ControlApi::Response Arbiter::on_drain_request(bool on) {
  if (phase_ != Phase::Running) return {503, nlohmann::json{{"error", "stopping"}}.dump()};
  if (!on && drain_timer_.armed())
    return {409, nlohmann::json{{"error", "the drain is part of a stop in progress and cannot be withdrawn"}}.dump()};
  const bool changed = on != drain_since_.has_value();
  if (changed) {
    CORRAL_LOG(Info, kTag) << (on ? "drain requested over the control API: /readyz fails, the listeners keep serving"
                                  : "undrain requested over the control API: ready again");
  }
  set_draining(on);
  nlohmann::json body = drain_status();
  body["changed"] = changed;
  return {200, body.dump()};
}

nlohmann::json Arbiter::drain_status() const {
  nlohmann::json out{{"draining", drain_since_.has_value()}};
  if (drain_since_) out["drain_seconds"] = seconds(clock_.now() - *drain_since_);
  if (drain_timer_.armed()) out["stop_in_seconds"] = std::max(0.0, seconds(drain_stop_at_ - clock_.now()));
  return out;
}

}  // namespace corral::supervisor
