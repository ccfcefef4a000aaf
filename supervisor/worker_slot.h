#pragma once
// One worker slot of an app: a stable socket path (and, for apps that inherit it, the
// listening fd kept open across restarts so requests wait in the kernel backlog), the
// current process, its generation, and the slot's state machine.
//
// States and the only legal moves (everything else is rejected by transition()):
//
//   Stopped ──Spawn──▶ Starting ──Up──▶ Ready
//      ▲                 │  │             │
//      │               Exit Stop        Exit / Stop
//      │                 ▼  ▼             ▼
//      └──Stop── BackingOff   Stopping ◀──┘ (Stop)      BackingOff ──Spawn──▶ Starting
//                             Stopping ──Exit──▶ Stopped
//
// Loop-affine: owned and used by AppPool on the supervisor's loop.
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/unique_fd.h"
#include "supervisor/backoff.h"

namespace corral::ev {
class Timer;
}

namespace corral::supervisor {

class ChildOutput;

class WorkerSlot {
 public:
  enum class State { Stopped, Starting, Ready, BackingOff, Stopping };
  enum class Event {
    Spawn,  ///< a process is being started for the slot
    Up,     ///< the process is known to serve (socket inherited, or its own socket accepts)
    Exit,   ///< the process died (or exec failed)
    Stop,   ///< the supervisor wants the slot down
  };

  /// The transition table: the next state, or nullopt when `e` is illegal in `s`. Pure.
  static std::optional<State> next(State s, Event e);
  static std::string_view state_name(State s);  ///< "stopped", "starting", "ready", "backoff", "stopping"
  static std::string_view event_name(Event e);

  WorkerSlot(const Clock& clock, std::string app, int index, std::string socket_path);
  ~WorkerSlot();

  /// Applies e. Returns false (and changes nothing) when the move is illegal.
  bool transition(Event e);
  State state() const { return state_; }

  const std::string& app() const { return app_; }
  int index() const { return index_; }
  const std::string& socket_path() const { return socket_path_; }
  /// "app=demo slot=2 gen=5" for log tags.
  std::string tag() const;

  // Process bookkeeping, written by AppPool.
  pid_t pid = 0;
  uint64_t generation = 0;
  int restarts = 0;            ///< processes started after the first
  bool self_binds = false;     ///< "{socket}" in command/env: the app binds socket_path itself
  bool kill_sent = false;      ///< we sent SIGKILL (so a SIGKILL death is not an OOM guess)
  bool term_sent = false;      ///< we asked it to stop (hung, shutdown)
  UniqueFd listen_fd;          ///< the kept listening socket (empty when self_binds)
  Backoff backoff;
  std::unique_ptr<ChildOutput> out, err;  ///< capture of the current process's stdout/stderr
  std::unique_ptr<ev::Timer> restart_timer, kill_timer, probe_timer;

 private:
  std::string app_;
  int index_;
  std::string socket_path_;
  State state_ = State::Stopped;
};

}  // namespace corral::supervisor
