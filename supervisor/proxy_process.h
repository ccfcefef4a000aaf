#pragma once
// The corral-proxy child: spawns it with one end of a SEQPACKET socketpair as fd 3
// (`--control-fd 3`), owns the supervisor's end (a control::Channel), dispatches the
// messages the proxy may send, and restarts it with back-off when it dies (new channel;
// the owner resends listeners, config and pool from on_spawned). The proxy's stderr is
// inherited. Loop-affine.
//
// A proxy that stops reading or answering its channel (SIGSTOP, a stuck control loop) never
// blocks the supervisor: the channel is non-blocking and bounded (control::Channel), and the
// proxy's once-a-second report is its heartbeat. Silent for a few seconds: one warning;
// silent for `proxy_timeout`, or its channel full: one error, SIGKILL to its process
// group, and the usual restart (new channel, state resent). Workers are not touched.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/control/channel.h"
#include "common/ev/loop.h"
#include "supervisor/backoff.h"
#include "supervisor/upgrade_state.h"
#include "workers/launcher.h"

namespace corral::supervisor {

class ProxyProcess {
 public:
  /// Fired on the loop. on_spawned: a new proxy runs and its channel is open; send it its
  /// state now. on_ready / on_worker_hung: the proxy said so (already validated).
  struct Hooks {
    std::function<void()> on_spawned;
    std::function<void(const control::ProxyReady&)> on_ready;
    std::function<void(const control::WorkerHung&)> on_worker_hung;
    std::function<void(const control::ProxyStats&)> on_stats;
    std::function<void(const control::SlotEvent&)> on_slot_event;
    std::function<void(const control::SlotRequests&)> on_slot_requests;
    /// A retiring proxy handed connections over (only after retire(); fds not yet checked).
    std::function<void(control::HandoffConnections&&, std::vector<UniqueFd>&&)> on_handoff;
  };

  /// loop, launcher and clock must outlive this. binary: the corral-proxy executable.
  ProxyProcess(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, std::string binary, Hooks hooks);
  ~ProxyProcess();

  /// The proxy executable: $CORRAL_PROXY_BIN, else corral-proxy next to /proc/self/exe.
  static std::string default_binary();

  /// Replaces the hooks (a replacement proxy's hooks name the process they belong to).
  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }

  /// false: when this proxy dies it is not restarted (a replacement being started: its
  /// failure ends the replacement, the serving proxy stays). `why` goes into the exit's log line.
  void set_restart(bool on, std::string why = {}) {
    restart_ = on;
    no_restart_why_ = std::move(why);
  }
  /// Make-before-break: a successor serves. Sends `retire` (the proxy stops accepting, hands
  /// its idle connections over, finishes the rest and exits), never restarts it, and kills
  /// it if it is still there after `kill_after`. Its exit is logged as the end of a
  /// retirement, not as a crash.
  void retire(std::chrono::milliseconds kill_after);
  bool retiring() const { return retiring_; }

  /// The proxy's identity from the next start on (supervisor.user when root).
  void set_identity(uid_t uid, gid_t gid) {
    uid_ = uid;
    gid_ = gid;
  }

  /// Silence after which the proxy is killed and restarted (0 = never). Applies at once.
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

  /// Starts the proxy now. On failure (exec error) it is retried with back-off and the
  /// error is returned for the caller to log or abort on.
  [[nodiscard]] Result<void> start();
  /// Sends a message (fds are dup'ed). False when no proxy channel is open.
  bool send(const control::Message& m, const std::vector<int>& fds = {});
  /// Call for every reaped child. Returns false when pid is not the proxy. Logs the death
  /// and schedules a restart unless stop() was called.
  bool on_exit(pid_t pid, int wait_status);
  /// No more restarts; sends sig (SIGTERM graceful, SIGINT fast) to the proxy if it runs.
  void stop(int sig);
  /// SIGKILL to the proxy's process group.
  void kill_now();

  pid_t pid() const { return pid_; }
  const std::string& binary() const { return binary_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  bool running() const { return pid_ > 0; }
  /// The proxy reported ProxyReady since its last start.
  bool ready() const { return ready_; }
  int restarts() const { return restarts_; }
  /// True while messages wait in the channel because the proxy does not read them.
  bool backlogged() const { return channel_ && channel_->queued() > 0; }
  /// {"pid":..,"restarts":..,"ready":..,"silent_ms":..,"last_exit":{...}|null}
  nlohmann::json status() const;

  /// What a new supervisor image needs to take this proxy over (upgrade in place): its pid
  /// and the number of our end of the channel (still owned here).
  ProxyState handover() const;
  /// Takes over the proxy a previous image ran (st.pid > 0): `channel` is our end of its
  /// control channel (none: a proxy being killed). Nothing is resent; the caller sends what
  /// may have changed. A retiring one stays retiring (no restart; killed at its deadline).
  void adopt(const ProxyState& st, UniqueFd channel);

 private:
  void on_message(control::Message&& m, std::vector<UniqueFd>&& fds);
  void open_channel(UniqueFd ours);
  void schedule_restart();
  /// Every second while a proxy runs: warns once when it went silent, kills it at timeout_.
  void check_heartbeat();
  /// Kills an unresponsive proxy (logged once by the caller); it is restarted on its exit.
  void kill_unresponsive(const std::string& why);

  ev::Loop& loop_;
  workers::Launcher& launcher_;
  std::string binary_;
  Hooks hooks_;
  Backoff backoff_;
  std::unique_ptr<control::Channel> channel_;
  ev::Timer restart_timer_;
  ev::Timer heartbeat_timer_;
  ev::Timer retire_timer_;  // kills a retiring proxy that outstays its graceful_timeout
  bool restart_ = true;
  std::string no_restart_why_;
  bool retiring_ = false;
  std::chrono::steady_clock::time_point retired_at_{};
  std::chrono::steady_clock::time_point retire_kill_at_{};  // when retire_timer_ fires
  std::chrono::milliseconds timeout_{10'000};
  std::chrono::steady_clock::time_point heard_at_{};  // the proxy's last message (or its start)
  std::chrono::steady_clock::time_point checked_at_{};  // the last check_heartbeat()
  bool silence_warned_ = false;
  std::string unresponsive_;  // why we killed it, until its exit is reaped
  nlohmann::json last_exit_ = nullptr;
  pid_t pid_ = 0;
  bool ready_ = false;
  bool stopping_ = false;
  bool kill_sent_ = false;
  int starts_ = 0;
  int restarts_ = 0;
  control::ProxyStats stats_;
  std::chrono::steady_clock::time_point stats_at_{};  // when stats_ arrived
  uid_t uid_ = static_cast<uid_t>(-1);
  gid_t gid_ = static_cast<gid_t>(-1);
};

}  // namespace corral::supervisor
