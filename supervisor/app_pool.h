#pragma once
// The workers of one app: spawns them through the Launcher, probes their readiness,
// restarts crashed ones in place with back-off, and replaces the others make-before-break:
// a worker that must go (reload, recycle at max_requests or max_rss, scale-down, hung) is
// *retired*, a new worker (new id, new socket) starts, and the retired ones drain once the
// app has `workers` ready non-retired workers again. Draining = no new requests; the proxy
// reports when the last in-flight one finished (or graceful_timeout passes), then SIGTERM,
// then SIGKILL after kill_timeout. Every exit gets one death-record line and a counter by
// reason. Every change the proxy must know about fires on_pool_changed. Loop-affine.
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/log_throttle.h"
#include "common/control/messages.h"
#include "common/ev/loop.h"
#include "conf/config.h"
#include "supervisor/app_totals.h"
#include "supervisor/death_log.h"
#include "supervisor/strays.h"
#include "supervisor/upgrade_state.h"
#include "supervisor/worker_slot.h"
#include "workers/launcher.h"

namespace corral::supervisor {

/// Who workers run as (resolved from user/group when the supervisor is root).
struct Identity {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
};

/// Resolves `user` / `group` names (or numbers) for the launcher. Empty user and group →
/// unchanged identity. Not root → unchanged identity (the caller logs that it is ignored).
[[nodiscard]] Result<Identity> resolve_identity(const std::string& user, const std::string& group);

/// The rlimits of an app as launcher entries (values already validated by the schema).
std::vector<workers::RLimit> launcher_rlimits(const conf::App& app);

class AppPool {
 public:
  /// What the proxy says a worker was serving, or nullopt when it did not answer in time.
  using RequestsAnswer = std::optional<std::vector<control::SlotRequestInfo>>;
  /// Asks the proxy which requests (worker id, incarnation) was serving; `done` runs once,
  /// on the loop, possibly before query returns.
  using RequestsQuery = std::function<void(int slot, uint64_t generation, std::function<void(RequestsAnswer)> done)>;

  /// loop, launcher and clock must outlive the pool. on_pool_changed fires on the loop
  /// whenever the proxy-visible set of workers changed.
  AppPool(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::App app,
          const std::string& runtime_dir, std::function<void()> on_pool_changed);
  ~AppPool();

  /// Group that gets access (0660) to the worker sockets the supervisor creates: the
  /// proxy's, when it runs as another user. Call before start().
  void set_socket_group(gid_t gid) { socket_gid_ = gid; }

  /// The death record of a worker waits for this answer (bounded by the query) to name the
  /// requests it was serving. Unset: the line goes out at once without them.
  void set_requests_query(RequestsQuery q) { requests_query_ = std::move(q); }

  /// Creates and spawns `workers` workers. Fails when a socket cannot be created.
  [[nodiscard]] Result<void> start();
  /// Call for every reaped child. Returns false when pid is not one of ours. cpu_seconds:
  /// the CPU time it (and the children it waited for) used, from wait4(), for the totals.
  bool on_exit(pid_t pid, int wait_status, double cpu_seconds = 0);
  /// The proxy reports a request timed out on (worker, incarnation): it gets nothing new,
  /// a replacement starts, and it gets SIGTERM now and SIGKILL after kill_timeout.
  void on_hung(int slot, uint64_t generation, const std::string& request_id);
  /// Drained / max_requests from the proxy.
  void on_slot_event(const control::SlotEvent& e);
  /// Per-worker counters from the proxy.
  void on_stats(const control::SlotStats& s);
  /// The proxy exited: the in-flight counts it reported are void (they would otherwise
  /// linger in status and death records).
  void on_proxy_gone();
  /// The app's request totals from the proxy (process proxy_pid).
  void on_app_stats(const control::AppStats& s, pid_t proxy_pid) { totals_.on_proxy_stats(s, proxy_pid); }
  /// Checks max_rss of every ready worker (periodic).
  void check_memory();
  /// Checks every worker's socket (periodic, every second; app_pool_sockets.cc):
  /// - its file is gone or is another file (runtime_dir removed, a cleanup job): the proxy
  ///   cannot reach it, so the worker is replaced make before break with a new socket
  ///   ("socket_removed"; it finishes what it holds over kept connections, and drains only
  ///   once its replacement is started: while none can be made, it serves on and the
  ///   replacement is tried again at every check);
  /// - connections wait in the backlog of the socket the supervisor keeps for it while no
  ///   process of the worker holds that socket any more (it closed it): restarted in place
  ///   ("socket_closed"), so the waiting requests are served by its next incarnation.
  /// Returns how many workers were replaced for a removed socket.
  int check_sockets();
  /// The workers that run now, for the strays tracker.
  void append_running(std::vector<WorkerRef>& out) const;
  /// The worker whose process is `pid`, if it is one of ours.
  std::optional<WorkerRef> worker_of(pid_t pid) const;
  /// Notes on the death record of worker process `pid` what it left behind (killed).
  void note_leftovers(pid_t pid, const std::string& leftovers) { deaths_log_->note_leftovers(pid, leftovers); }

  /// Applies a reloaded config of this app (the reload plan decided what it means):
  /// `new_generation` retires every worker for a new generation (make before break);
  /// otherwise a new count scales and other settings apply to the running workers (the
  /// proxy-level ones through the next SetPool/SetConfig).
  void reconfigure(conf::App app, bool new_generation);
  /// An app removed by a reload (retire_all) and added again while its old workers may
  /// still drain: they keep draining, and a new generation of `app` starts with new worker
  /// ids (ids stay unique within the app name, which the proxy and the sockets rely on).
  void revive(conf::App app);
  /// True when the pool holds no worker and no pending work: a removed app's pool can be
  /// destroyed.
  bool idle() const;
  /// Sets the number of workers (at least 1); extra ones drain.
  void scale(int workers);
  int desired() const { return desired_; }
  /// Retires every worker with no replacement (the app was removed from the config).
  void retire_all(const std::string& reason);
  /// True once no retired worker is waiting for replacements to become ready.
  bool settled() const;

  /// Stops every worker: sig to each process group (graceful: drain first within
  /// graceful_timeout is the proxy's job), SIGKILL after kill_after; no restarts.
  void stop(int sig, std::chrono::milliseconds kill_after);
  /// True when no worker has a process.
  bool all_stopped() const;
  /// True while some non-retired worker is starting.
  bool any_starting() const;
  /// True when workers keep failing to start and none is ready.
  bool failing() const;
  /// Removes the socket files.
  void remove_sockets();

  /// Appends this app's proxy-visible workers for a SetPool message.
  void append_slots(std::vector<control::SlotInfo>& out) const;
  /// Appends the pids (= process groups) of this app's running workers.
  void append_pids(std::vector<pid_t>& out) const;
  /// {"name", "kind", "worker_class" (wsgi), "concurrency", "desired", "generation", "failing",
  ///  "deaths": {reason: n}, "workers": [...], "recent_deaths": [DeathLog records, newest
  ///  first], "totals": AppTotals::to_json}
  nlohmann::json status() const;
  const conf::App& app() const { return *app_; }
  const std::vector<std::unique_ptr<WorkerSlot>>& slots() const { return slots_; }

  // Upgrade in place (app_pool_upgrade.cc).
  /// The whole pool for a new supervisor image: fds by number (still owned here), the
  /// workers' output read and logged up to now.
  PoolState handover(bool retired);
  /// Takes over a pool a previous image ran (instead of start()): its workers keep running
  /// and its timers go on where they were. Call set_socket_group() first.
  void adopt(const PoolState& st);
  /// After an upgrade: the workers of a cgi/wsgi app with upgrade = "roll" that started
  /// from another corral-worker file than the one there now are replaced make before
  /// break (retire reason "upgrade"). Returns how many.
  int roll_changed_binaries();

 private:
  WorkerSlot* add_worker();
  /// Gives a new slot its timers and probe and adds it.
  WorkerSlot* install(std::unique_ptr<WorkerSlot> s);
  void spawn(WorkerSlot& s);
  void on_slot_exit(WorkerSlot& s, int wait_status);
  void start_probe(WorkerSlot& s);
  void on_boot_timeout(WorkerSlot& s);
  void set_up(WorkerSlot& s);
  void replace(WorkerSlot& s, const std::string& reason);
  void drain(WorkerSlot& s);
  void terminate(WorkerSlot& s, int sig, std::chrono::milliseconds kill_after);
  /// The stop sequence of a process: `sig` to its process group, SIGKILL after kill_after.
  void signal_group(WorkerSlot& s, int sig, std::chrono::milliseconds kill_after);
  /// Stops the current process so that the worker restarts in place (same id and socket):
  /// `reason` is its death record's (boot_timeout, socket_closed).
  void restart_in_place(WorkerSlot& s, const std::string& reason);
  /// One worker's socket checks (see check_sockets); refused: the proxy's connect to it
  /// failed, so a self-binding worker's socket is tried too. True when it was replaced
  /// for a removed socket.
  bool check_socket(WorkerSlot& s, bool refused);
  /// Restarts a ready worker in place that no longer listens on its socket.
  void restart_not_listening(WorkerSlot& s, const std::string& why);
  void retire_ready_ones();
  void remove_dead();
  /// Removes the worker's socket file, unless another file took its place.
  void remove_socket_file(const WorkerSlot& s);
  void ensure_count();
  void apply(WorkerSlot& s, WorkerSlot::Event e);
  uint64_t pick_max_requests();
  WorkerSlot* find(int slot, uint64_t generation);
  workers::LaunchSpec spec_for(const WorkerSlot& s) const;

  ev::Loop& loop_;
  workers::Launcher& launcher_;
  const Clock& clock_;
  std::shared_ptr<const conf::App> app_;
  std::string runtime_dir_;
  std::function<void()> on_pool_changed_;
  RequestsQuery requests_query_;
  std::vector<std::unique_ptr<WorkerSlot>> slots_;
  std::map<std::string, uint64_t> deaths_;  // by reason
  // Shared with the pending requests queries, which may answer after the pool is gone.
  std::shared_ptr<DeathLog> deaths_log_ = std::make_shared<DeathLog>();
  AppTotals totals_;
  Identity identity_;
  gid_t socket_gid_ = static_cast<gid_t>(-1);
  uint64_t app_generation_ = 1;
  int desired_ = 1;
  int next_index_ = 0;
  bool self_binds_ = false;
  bool stopping_ = false;
  bool sweep_posted_ = false;
  LogThrottle socket_errors_{std::chrono::minutes(1)};  ///< add_worker: a socket that cannot be made
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace corral::supervisor
