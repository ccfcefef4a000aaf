#pragma once
// The proxy process: owns the control client (on the main loop), the loop threads, the
// per-app dispatchers and the listener set, and applies what the supervisor sends:
// SetListeners → every loop accepts on the new fds; SetConfig → a new Runtime snapshot
// posted to every loop, then ProxyReady; SetPool → dispatcher slot sets and pool pruning.
// SetDraining fails /readyz and ends keep-alive while the listeners keep serving.
// SIGTERM drains gracefully (exit 0), SIGINT and a closed control channel exit at once.
// Loop-affine to the main loop.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/ev/loop.h"
#include "conf/config.h"
#include "proxy/control_client.h"
#include "proxy/admin/admin.h"
#include "proxy/loop_thread.h"

namespace corral::proxy {

class Server : public ControlHandler {
 public:
  explicit Server(ev::Loop& main_loop);
  ~Server() override;

  /// Starts serving the control channel on fd.
  void attach_control(UniqueFd fd);
  /// Runs the main loop until exit; returns the process exit code.
  int run();

  void on_set_listeners(control::SetListeners&& m, std::vector<UniqueFd>&& fds) override;
  void on_set_config(control::SetConfig&& m) override;
  void on_access_log_file(control::AccessLogFile&& m, std::vector<UniqueFd>&& fds) override;
  void on_set_pool(control::SetPool&& m) override;
  void on_slot_requests_query(control::SlotRequestsQuery&& m) override;
  void on_stats_query(control::StatsQuery&& m) override;
  void on_worker_figures(control::WorkerFigures&& m) override;
  void on_set_draining(control::SetDraining&& m) override;
  void on_control_closed(const Error& e) override;
  /// proxy/retire.cc: a successor serves; stop accepting, hand idle connections over, leave.
  void on_retire() override;
  void on_adopt_connections(control::AdoptConnections&& m, std::vector<UniqueFd>&& fds) override;

  /// SIGTERM: stop accepting, finish in-flight requests, exit 0 (or at graceful_timeout).
  void begin_graceful_stop();
  /// SIGINT: exit now.
  void stop_now(int code);

 private:
  void start_threads(int n);
  void apply_pool();
  void on_loop_drained();
  /// One loop's connections handed over (retire): sent in batches once every loop reported.
  void on_loop_handoff(std::vector<HandedOff>&& handed, size_t kept);
  /// Exits once what the control channel holds is written (the hand-over must reach the
  /// supervisor), at most kFlushWait later.
  void exit_when_flushed(int code);
  /// Sends ProxyStats (totals and per slot) to the supervisor; re-arms itself.
  void send_stats();
  /// Sends ProxyStats now, answering StatsQuery `query` (0 = periodic).
  void send_stats_now(uint64_t query);
  /// Adds a point to the status page's time series; re-arms itself.
  void sample_status();

  ev::Loop& main_;
  LoopShared shared_;
  std::unique_ptr<ControlClient> control_;
  std::vector<std::unique_ptr<LoopThread>> loops_;
  // Kept across config snapshots: dispatchers and metrics blocks, by name.
  RuntimeState rstate_;
  std::map<std::string, std::shared_ptr<AppDispatcher>>& dispatchers_ = rstate_.dispatchers;
  std::shared_ptr<AdminService> admin_ = std::make_shared<AdminService>();
  std::unique_ptr<ev::Timer> sample_timer_;  // the status page's time series, every second
  /// Apps removed from the config whose workers still drain: kept until the pool no longer
  /// lists any of their slots, so the Drained events still reach the supervisor.
  std::map<std::string, std::shared_ptr<AppDispatcher>> retired_dispatchers_;
  std::shared_ptr<const Runtime> runtime_;
  std::optional<conf::Config> config_;
  std::shared_ptr<const ListenerSet> listeners_;
  std::optional<control::SetPool> pool_;
  std::string access_log_spec_;
  conf::AccessLogFormat access_log_format_ = conf::AccessLogFormat::Combined;
  /// The access log file the supervisor handed over last, and its path; each log made from it
  /// gets its own dup.
  std::string handed_log_path_;
  UniqueFd handed_log_fd_;
  /// The access log for config_'s spec: stderr, off, or the handed file (a disabled log, with
  /// an error logged, when none was handed for that path).
  void install_access_log();
  std::unique_ptr<ev::SignalWatch> sigterm_, sigint_;
  std::unique_ptr<ev::Timer> graceful_timer_;
  std::unique_ptr<ev::Timer> stats_timer_;
  size_t drained_ = 0;
  bool retiring_ = false;
  size_t handoff_reports_ = 0;        // loops that reported their hand-over
  std::vector<HandedOff> handoff_;    // until every loop reported
  size_t handoff_kept_ = 0;
  size_t adopt_next_ = 0;             // round-robin over the loops for adopted connections
  std::unique_ptr<ev::Timer> exit_timer_;
  std::chrono::steady_clock::time_point exit_by_{};
  bool stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace corral::proxy
