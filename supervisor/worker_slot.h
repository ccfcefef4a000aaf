#pragma once
// One worker of an app: its own socket path (and, for apps that inherit it, the listening fd
// kept open across restarts of this worker so requests wait in the kernel backlog), the
// current process, its incarnation, and the worker's state machine.
//
// A worker that crashes is restarted in place (same id, same socket, next incarnation).
// A worker that must go for any other reason (reload, recycle, scale-down, hung) is
// *retired*: a new worker with a new id takes its place, and the retired one drains once
// its replacement is ready (AppPool decides when), then stops and is removed.
//
// States and the only legal moves (everything else is rejected by transition()):
//
//   Stopped ──Spawn──▶ Starting ──Up──▶ Ready ──Drain──▶ Draining ──Stop──▶ Stopping
//                        │  │             │                 │                  │
//                      Exit Stop/Drain   Exit             Exit               Exit
//                        ▼  ▼             ▼                 ▼                  ▼
//                 BackingOff  Stopping  BackingOff        Stopped            Stopped
//   BackingOff ──Spawn──▶ Starting;  BackingOff ──Stop/Drain──▶ Stopped;  Ready ──Stop──▶ Stopping
//
// Loop-affine: owned and used by AppPool on the supervisor's loop.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/unique_fd.h"
#include "conf/config.h"
#include "supervisor/backoff.h"
#include "supervisor/file_identity.h"

namespace corral::ev {
class Timer;
}

namespace corral::supervisor {

class ChildOutput;
class ReadinessProbe;

class WorkerSlot {
 public:
  enum class State { Stopped, Starting, Ready, BackingOff, Draining, Stopping };
  enum class Event {
    Spawn,  ///< a process is being started for the worker
    Up,     ///< the process passed its readiness probe
    Exit,   ///< the process died (or exec failed)
    Drain,  ///< retire: take no new requests, finish the ones in flight
    Stop,   ///< the supervisor wants the process down now (SIGTERM sent)
  };

  /// The transition table: the next state, or nullopt when `e` is illegal in `s`. Pure.
  static std::optional<State> next(State s, Event e);
  /// "stopped", "starting", "ready", "backoff", "draining", "stopping"
  static std::string_view state_name(State s);
  static std::string_view event_name(Event e);

  /// `config` is the app configuration this worker runs (its generation's).
  WorkerSlot(const Clock& clock, std::shared_ptr<const conf::App> config, uint64_t app_generation, int index,
             std::string socket_path);
  ~WorkerSlot();

  /// Applies e. Returns false (and changes nothing) when the move is illegal.
  bool transition(Event e);
  /// Puts the worker in `s` without a transition: only for a worker adopted from the
  /// previous supervisor image (upgrade in place), whose state was legal there.
  void restore_state(State s) { state_ = s; }
  State state() const { return state_; }

  const std::string& app() const { return config_->name; }
  const conf::App& config() const { return *config_; }
  /// The app's config generation this worker was created for (bumps on reloads that change the app).
  uint64_t app_generation() const { return app_generation_; }
  /// The worker id: unique within the app for the supervisor's lifetime.
  int index() const { return index_; }
  const std::string& socket_path() const { return socket_path_; }
  /// "app=demo worker=2 gen=1" for log tags.
  std::string tag() const;
  /// Retired: it will not be restarted and goes once its replacement is ready.
  bool retiring() const { return !retire_reason.empty(); }
  /// Replaced because a request timed out on it: takes no new requests.
  bool hung() const { return retire_reason == "timeout"; }
  /// Replaced because its socket file is gone (the proxy cannot reach it): drained once its
  /// replacement is started, not once that one is ready.
  bool unreachable() const { return retire_reason == "socket_removed"; }

  // Process bookkeeping, written by AppPool.
  pid_t pid = 0;
  uint64_t generation = 0;     ///< process incarnation: bumps at every spawn (the control protocol's generation)
  int restarts = 0;            ///< processes started after the first
  bool self_binds = false;     ///< "{socket}" in command/env: the app binds socket_path itself
  bool kill_sent = false;      ///< we sent SIGKILL (so a SIGKILL death is not an OOM guess)
  bool term_sent = false;      ///< we asked it to stop
  std::string retire_reason;   ///< why it is being replaced: reload, scale, max_requests, max_rss, timeout, stop
  std::string stop_reason;     ///< why the current process was asked to stop (boot_timeout, ...) when not retiring
  uint64_t max_requests = 0;   ///< this incarnation's max_requests (jitter applied); 0 = never
  std::string last_probe;      ///< the readiness probe's last answer: "GET /g: status 500", "" before any
  uint64_t in_flight = 0;      ///< from the proxy's stats
  uint64_t requests = 0;       ///< sent to this incarnation, from the proxy's stats
  std::chrono::steady_clock::time_point started_at{};
  double cpu_wait_seen = 0;    ///< run-queue wait of the current process when last measured (status)
  UniqueFd listen_fd;          ///< the kept listening socket (empty when self_binds)
  ino_t listen_inode = 0;      ///< listen_fd's socket inode (who else holds it); 0 when self_binds
  ino_t path_inode = 0;        ///< the file at socket_path when bound (ours) or found ready (self_binds); 0 = unknown
  dev_t path_dev = 0;          ///< and its device
  int waiting_checks = 0;      ///< periodic checks in a row that saw connections waiting in listen_fd's backlog
  Backoff backoff;
  /// When the armed restart, drain and kill timers fire (handed to a new image on upgrade).
  std::chrono::steady_clock::time_point restart_at{}, drain_deadline{}, kill_at{};
  FileIdentity binary;         ///< corral-worker's file when this process started (cgi, wsgi); unknown otherwise
  std::unique_ptr<ChildOutput> out, err;  ///< capture of the current process's stdout/stderr
  std::unique_ptr<ReadinessProbe> probe;
  std::unique_ptr<ev::Timer> restart_timer, kill_timer, boot_timer, drain_timer, poll_timer;

 private:
  std::shared_ptr<const conf::App> config_;
  uint64_t app_generation_;
  int index_;
  std::string socket_path_;
  State state_ = State::Stopped;
};

}  // namespace corral::supervisor
