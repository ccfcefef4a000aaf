#pragma once
// The proxy's end of the control channel: decodes supervisor messages into calls on a
// handler, and sends events up (ProxyReady, WorkerHung). Lives on the control (main) loop;
// the send_* methods are thread-safe (they post to that loop).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/control/channel.h"
#include "common/ev/loop.h"

namespace corral::proxy {

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  virtual void on_set_listeners(control::SetListeners&& m, std::vector<UniqueFd>&& fds) = 0;
  virtual void on_set_config(control::SetConfig&& m) = 0;
  /// The access log file the supervisor opened (one fd; again after each SIGUSR1).
  virtual void on_access_log_file(control::AccessLogFile&& m, std::vector<UniqueFd>&& fds) = 0;
  virtual void on_set_pool(control::SetPool&& m) = 0;
  /// Answer with control::SlotRequests (same query id).
  virtual void on_slot_requests_query(control::SlotRequestsQuery&& m) = 0;
  /// The supervisor wants the counters now: answer ProxyStats with m.query.
  virtual void on_stats_query(control::StatsQuery&& m) = 0;
  /// The supervisor's worker figures (for /metrics and /status).
  virtual void on_worker_figures(control::WorkerFigures&& m) = 0;
  /// Drain on or off (corralctl drain / undrain, or the start of a stop with drain_delay).
  virtual void on_set_draining(control::SetDraining&& m) = 0;
  /// Make-before-break replacement: stop accepting, hand idle connections over, leave.
  virtual void on_retire() = 0;
  /// Idle connections a retiring proxy handed over (one fd per entry, checked by the supervisor).
  virtual void on_adopt_connections(control::AdoptConnections&& m, std::vector<UniqueFd>&& fds) = 0;
  /// The supervisor is gone (channel closed or broken).
  virtual void on_control_closed(const Error& e) = 0;
};

class ControlClient {
 public:
  /// Takes the channel fd. Loop-affine construction and destruction (control loop).
  ControlClient(ev::Loop& loop, UniqueFd fd, ControlHandler& handler);
  ~ControlClient();

  /// Thread-safe.
  void send(control::Message m);
  /// Control loop only: sends with fds (dup'ed; the caller closes its own). False when refused.
  bool send_with_fds(const control::Message& m, const std::vector<int>& fds);
  /// Control loop only: nothing waits to be written.
  bool flushed() const { return !channel_ || channel_->closed() || channel_->queued() == 0; }

 private:
  ev::Loop& loop_;
  std::unique_ptr<control::Channel> channel_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace corral::proxy
