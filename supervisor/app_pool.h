#pragma once
// The worker slots of one app: opens their sockets, spawns their processes through the
// Launcher, restarts them with back-off when they die, kills hung ones, and stops them
// all on shutdown. Every change that the proxy must know about fires on_pool_changed.
// Loop-affine.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/control/messages.h"
#include "common/ev/loop.h"
#include "conf/config.h"
#include "supervisor/worker_slot.h"
#include "workers/launcher.h"

namespace corral::supervisor {

/// How long a worker asked to stop (hung, shutdown) gets before SIGKILL.
inline constexpr std::chrono::milliseconds kWorkerKillAfter{5'000};

class AppPool {
 public:
  /// loop, launcher and clock must outlive the pool. on_pool_changed fires on the loop
  /// whenever a slot's pid, generation or accepting flag changed.
  AppPool(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::App app,
          const std::string& runtime_dir, std::function<void()> on_pool_changed);
  ~AppPool();

  /// Creates the listening socket of every slot that inherits it. Apps that bind
  /// "{socket}" themselves get no socket from us: a stale file at the path is removed so the
  /// app can bind it. Fails on the first socket that cannot be created.
  [[nodiscard]] Result<void> open_sockets();
  /// Spawns every slot (failures back off and retry on their own).
  void start();
  /// Call for every reaped child. Returns false when pid is not one of ours.
  bool on_exit(pid_t pid, int wait_status);
  /// The proxy reports a request timed out on (slot, generation): the slot stops accepting,
  /// its process group gets SIGTERM, SIGKILL after kill_after, then it is restarted (and
  /// accepts again). Stale generations are ignored.
  void on_hung(int slot, uint64_t generation, const std::string& request_id,
               std::chrono::milliseconds kill_after = kWorkerKillAfter);
  /// Stops every slot: sig to each process group, SIGKILL after kill_after; no restarts.
  void stop(int sig, std::chrono::milliseconds kill_after);
  /// True when no slot has a process (after stop()).
  bool all_stopped() const;
  /// True while some slot is Starting (spawned, not yet known to serve).
  bool any_starting() const;
  /// Removes the slots' socket files.
  void remove_sockets();

  /// Appends this app's slots for a SetPool message.
  void append_slots(std::vector<control::SlotInfo>& out) const;
  /// {"name":..,"kind":"http","concurrency":..,"workers":[{slot,pid,generation,state,restarts,socket}]}
  nlohmann::json status() const;
  const conf::App& app() const { return app_; }
  const std::vector<std::unique_ptr<WorkerSlot>>& slots() const { return slots_; }

 private:
  void spawn(WorkerSlot& s);
  void on_slot_exit(WorkerSlot& s, int wait_status);
  void probe(WorkerSlot& s);
  void set_up(WorkerSlot& s);
  void apply(WorkerSlot& s, WorkerSlot::Event e);
  workers::LaunchSpec spec_for(const WorkerSlot& s) const;

  ev::Loop& loop_;
  workers::Launcher& launcher_;
  conf::App app_;
  std::function<void()> on_pool_changed_;
  std::vector<std::unique_ptr<WorkerSlot>> slots_;
  bool stopping_ = false;
};

}  // namespace corral::supervisor
