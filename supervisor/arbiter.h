#pragma once
// The supervisor's main loop (gunicorn's Arbiter): binds sockets, starts the proxy and the
// workers, then turns signals, child deaths, proxy messages and control requests into
// actions. Signal handlers only run on the loop (ev::SignalWatch). Loop-affine.
//
// Reload (HUP, POST /reload): load and validate the file again (load_config: also the
// programs and folders it names); an invalid one is logged and rejected (the running config
// keeps serving). A valid one in two steps: plan_reload() (reload_plan.h) computes the whole
// difference, apply_reload() applies it — added listeners bound first (the only step that
// can fail, before anything changed), then per app: started, drained, updated in place or
// given a new generation (AppPool), with every pool always in pools_ or retired_pools_ —
// then SetListeners/SetConfig/SetPool go to the proxy once. RELOADING=1 … READY=1 around
// it; POST /reload answers once every pool settled (or the longest boot_timeout of the
// changed apps passed) and the proxy has applied the resulting pool (reply_after_proxy).
//
// Plan (arbiter_plan.cc): POST /plan loads a candidate exactly as a reload would
// (plan_candidate(): load_config, the runtime overrides, plan_reload()) and answers the
// plan and its id without changing anything; POST /reload {"plan_id"} plans the running
// config's file again and applies it only when that gives the same id.
//
// Drain (arbiter_drain.cc): POST /drain fails the proxy's /readyz and ends keep-alive while
// everything keeps serving; TERM and POST /stop do the same for drain_delay before the stop.
//
// Stop sequence. Graceful (TERM, POST /stop, after the drain): STOPPING=1, SIGTERM to the proxy (it drains
// within graceful_timeout), SIGKILL if it is not gone after graceful_timeout + 5 s, then
// SIGTERM to the workers, SIGKILL after 5 s, remove the sockets, exit 0. Fast (INT, QUIT):
// SIGINT to the proxy and SIGTERM to the workers at once, SIGKILL after 1 s.
//
// Proxy replacement (arbiter_proxy_swap.cc): replace_proxy() starts a new corral-proxy next
// to the serving one, gives it the whole state (the same listening sockets), and once it is
// ready tells the old one to retire: it stops accepting, hands its idle keep-alive
// connections over through us, finishes the rest and exits (reaped as a retirement, not a
// crash). For a moment two or three proxies live: the pool goes to all of them, a worker is
// stopped as drained only once every one of them says so.
//
// Upgrade in place (arbiter_upgrade.cc): POST /upgrade and SIGUSR2 re-execute the binary the
// supervisor was started from with the same pid, after a dry run of it, handing over the
// whole state (upgrade_state.h); workers and the proxy keep running, then the proxy is
// replaced make-before-break (replace_proxy()).
//
// Upkeep, every second (arbiter_upkeep.cc): max_rss; runtime_dir, control.sock and temp_dir
// still there (removed: made and bound again, logged once; what cannot be, once a minute); every worker's socket
// (AppPool::check_sockets); leftovers of workers (Strays: the supervisor is their
// subreaper), also looked for right after every reaped worker, before it restarts.
#include <sys/types.h>

#include <deque>
#include <utility>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/log_throttle.h"
#include "common/ev/loop.h"
#include "conf/config.h"
#include "conf/diagnostics.h"
#include "supervisor/app_pool.h"
#include "supervisor/control_api.h"
#include "supervisor/listeners.h"
#include "supervisor/overrides.h"
#include "supervisor/proxy_process.h"
#include "supervisor/reload_plan.h"
#include "supervisor/upgrade_state.h"
#include "workers/launcher.h"

namespace corral::supervisor {

class Arbiter {
 public:
  struct Options {
    std::string proxy_binary;  ///< empty = ProxyProcess::default_binary()
    std::string config_text;   ///< the config file's text as loaded (what an upgrade hands over)
    std::string binary;        ///< the executable the supervisor was started from; empty = no upgrades
  };

  /// loop, launcher and clock must outlive the arbiter.
  Arbiter(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::Config config, Options options);
  ~Arbiter();

  /// Creates runtime_dir, binds listeners, worker sockets and control.sock, starts the
  /// proxy and every worker. On error nothing keeps running (sockets are removed).
  [[nodiscard]] Result<void> start();
  /// Runs the loop until the supervisor has stopped. Returns the process exit code.
  int run();
  /// Instead of start() in a new image after an upgrade in place: takes over the sockets,
  /// workers, proxy and timers of the previous image (the config was made from its text).
  [[nodiscard]] Result<void> resume(UpgradeState state);

  /// GET /status body.
  nlohmann::json status() const;

  /// Reloads the config file in two steps: plan_reload() computes the whole difference,
  /// apply_reload() applies it. Returns what changed, or the reason it was rejected (then
  /// nothing changed).
  [[nodiscard]] Result<std::vector<std::string>> reload();

  /// How a proxy replacement ended. status: 200 replaced; 409 one is already in progress;
  /// 503 the supervisor stops or no proxy runs; 500 the new proxy failed (the old one serves).
  struct ProxySwapOutcome {
    int status = 200;
    std::string error;               ///< empty when replaced
    pid_t old_pid = 0, new_pid = 0;  ///< new_pid 0 when it failed
    uint64_t handed_over = 0;        ///< idle connections the new proxy adopted
    uint64_t refused = 0;            ///< handed connections that failed our checks (closed)
    uint64_t kept = 0;               ///< connections the old one still finishes
    double seconds = 0;
    bool ok() const { return status == 200; }
  };
  /// Replaces corral-proxy make-before-break with the binary on disk now (corralctl
  /// restart-proxy; the end of a supervisor upgrade). `done` fires exactly once, always
  /// later on the loop (also when refused at once): when the new proxy serves and the old
  /// one handed its idle connections over, or when it failed (then the old one still serves).
  void replace_proxy(std::function<void(const ProxySwapOutcome&)> done);
  /// A replacement is between its start and `done`.
  bool replacing_proxy() const { return swap_ != nullptr; }

 private:
  enum class Phase { Running, StoppingProxy, StoppingWorkers, Done };

  void handle_term();
  void handle_int();
  void handle_quit();
  void handle_hup();
  void handle_usr1();
  void handle_chld();
  void handle_ttin();
  void handle_ttou();
  void handle_usr2();

  // Upgrade in place (arbiter_upgrade.cc).
  struct Upgrade;
  /// Why an upgrade cannot start now ("" when it can): a stop or a reload in progress.
  std::string upgrade_refusal() const;
  /// Starts an upgrade (the dry run of the binary); `waiter`: a POST /upgrade to answer.
  void begin_upgrade(std::optional<uint64_t> waiter);
  /// The dry run ended with `wait_status`: exec the binary, or refuse.
  void on_upgrade_checked(int wait_status);
  /// Hands the state over and execs; returns only when that failed (then nothing changed).
  void exec_upgrade();
  /// The upgrade is off (logged); the running image goes on as it was.
  void refuse_upgrade(const std::string& why, int status = 500);
  /// The whole state for the next image (fds by number, still owned here).
  UpgradeState upgrade_state();
  /// True when `pid` is the upgrade's dry run (then it is handled).
  bool on_upgrade_check_exit(pid_t pid, int wait_status);
  /// The dry run's pid while it runs (a child of ours that is no stray); 0 otherwise.
  pid_t upgrade_check_pid() const;

  /// A reload computed and not applied yet (arbiter_plan.cc).
  struct PlannedReload {
    conf::Config next;               ///< the candidate as loaded, with the runtime overrides applied
    RuntimeOverrides overrides;      ///< overrides_ once it is applied
    std::vector<std::string> notes;  ///< values set at run time that it keeps
    ReloadPlan plan;                 ///< plan_reload(config_, next)
    std::string id;                  ///< make_plan_id(): generation, running config, candidate, plan
    std::string text;                ///< the candidate's text as loaded (what an upgrade hands over)
  };
  /// Loads `path` as a reload would (load_config: also the programs and folders it names)
  /// and plans it against the running state. Changes nothing. The file's errors on failure.
  [[nodiscard]] tl::expected<PlannedReload, conf::Diagnostics> plan_candidate(const std::string& path) const;
  /// Applies a plan made by plan_candidate(config_.file) in this loop turn: refused plans and
  /// listeners that cannot be bound are rejected (nothing changed). RELOADING=1 was sent.
  [[nodiscard]] Result<std::vector<std::string>> apply_planned(PlannedReload p);
  /// RELOADING=1 (with MONOTONIC_USEC) to systemd.
  void notify_reloading();
  /// STOPPING=1 to systemd, with EXTEND_TIMEOUT_USEC: the longest the stop can take from now
  /// (`before_stop` of drain first, then the proxy's and the workers' stop), so that a
  /// drain_delay and graceful_timeout longer than the unit's TimeoutStopSec are honoured.
  void notify_stopping(std::chrono::milliseconds before_stop, bool graceful);
  /// Logs why a reload was rejected, sends READY=1 and returns the error.
  [[nodiscard]] Result<std::vector<std::string>> reject_reload(const std::string& why);
  /// POST /plan {"config": PATH}: the plan of PATH (default: the running config's file).
  ControlApi::Response on_plan_request(const ControlApi::Request& r);
  /// POST /reload with {"plan_id": ID}: plans the running config's file again and applies it
  /// only when that gives ID (409 otherwise, nothing changed). nullopt: no plan id in the
  /// body, a plain reload.
  std::optional<ControlApi::Response> on_reload_with_plan(const ControlApi::Request& r);

  /// Applies a plan computed against config_: listeners, apps, then config_ = next. Fails
  /// (nothing changed) only when an added listener cannot be bound.
  [[nodiscard]] Result<std::vector<std::string>> apply_reload(const ReloadPlan& plan, conf::Config next);
  /// While one lives, pool changes are not sent to the proxy one by one (send_pool() does
  /// nothing): the owner sends the whole state once at the end (send_all()).
  class PoolBatch {
   public:
    explicit PoolBatch(Arbiter& a) : a_(a) { a_.batching_ = true; }
    ~PoolBatch() { a_.batching_ = false; }
    PoolBatch(const PoolBatch&) = delete;
    PoolBatch& operator=(const PoolBatch&) = delete;

   private:
    Arbiter& a_;
  };

  void reap();
  /// Every second: memory, runtime_dir, worker sockets, strays.
  void upkeep();
  /// runtime_dir, control.sock and temp_dir are still where they were; recreates and
  /// rebinds what is gone (logged once per event).
  void check_runtime_dir();
  /// Makes runtime_dir (0755) and, when the proxy runs as another user, lets its group in.
  [[nodiscard]] Result<void> prepare_runtime_dir();
  /// Kills the leftovers of workers that are gone (logged); `exited`: workers just reaped.
  /// Returns what goes into their death records (note_leftovers, once the records exist).
  struct LeftoverNote {
    std::string app;
    pid_t pid;
    std::string note;
  };
  std::vector<LeftoverNote> sweep_strays(const std::vector<WorkerRef>& exited);
  void note_leftovers(const std::vector<LeftoverNote>& notes);
  std::optional<WorkerRef> worker_of(pid_t pid) const;
  void on_proxy_spawned();
  // ---- proxy replacement (arbiter_proxy_swap.cc) ----
  struct ProxySwap {
    std::unique_ptr<ProxyProcess> candidate;  // until it is ready (then it is proxy_)
    std::vector<std::function<void(const ProxySwapOutcome&)>> done;
    std::chrono::steady_clock::time_point started{};
    pid_t old_pid = 0;
    ProxyProcess* retiring = nullptr;  // the old one (in outgoing_) until its last hand-over batch
    bool promoted = false;
    ProxySwapOutcome result;
  };
  /// The hooks of a proxy process; `p` is the process they belong to, whose role (serving,
  /// replacement being started, retiring) decides where each message goes.
  ProxyProcess::Hooks proxy_hooks(ProxyProcess* p);
  /// Listeners, config, pool and drain state to one proxy (a new one, or after a reload).
  void send_state(ProxyProcess& to);
  /// [proxy] access_log, when it is a path, is opened here and handed to each proxy before its
  /// set_config (the proxy's user may not be allowed to open it: under the packaged service
  /// /var/log/corral is root's), and opened anew on SIGUSR1 for log rotation.
  void send_access_log(ProxyProcess& to);
  /// Opens config_'s access log path (O_APPEND|O_CREAT, 0640); false, logged, when it cannot
  /// or when access_log is not a path.
  bool reopen_access_log();
  control::SetPool make_pool() const;
  /// Every running proxy that must hear of pool changes: the serving one, a replacement
  /// being started, retiring ones (they still finish requests on the workers).
  std::vector<ProxyProcess*> pool_receivers() const;
  void on_swap_ready(ProxyProcess* p);
  void on_swap_timer();
  void promote_replacement();
  void fail_swap(int status, const std::string& why);
  void finish_swap(const std::string& note);
  void on_handoff(ProxyProcess* from, control::HandoffConnections&& h, std::vector<UniqueFd>&& fds);
  /// A hand-over entry and its fd: what is wrong with it, or "" when it may pass.
  std::string check_handed(const control::HandedConnection& c, int fd) const;
  /// Drained events: with more than one proxy, forwarded once every running one said so.
  void on_proxy_slot_event(ProxyProcess* from, const control::SlotEvent& e);
  void recheck_drained();
  /// reap(): a replacement or retiring proxy that exited. True when pid was one of them.
  bool reap_other_proxy(pid_t pid, int status);
  nlohmann::json proxy_swap_status() const;
  ControlApi::Response on_restart_proxy_request(uint64_t id);
  void on_proxy_ready();
  void on_worker_hung(const control::WorkerHung& h);
  void send_pool();
  void send_all();
  void on_slot_event(const control::SlotEvent& e);
  void on_stats(const control::ProxyStats& st);
  /// Answers every GET /status waiting for the proxy's live counters.
  void answer_status();
  /// Answers the status waiters once the proxy's counters and fresh /proc figures are in.
  void maybe_answer_status();
  /// Sends the workers' figures to the proxy (its /metrics and /status show them).
  void send_worker_figures();
  /// AppPool::RequestsQuery for the pools: SlotRequestsQuery to the proxy, answered by
  /// SlotRequests or expired after kRequestsWait.
  void query_requests(const std::string& app, int slot, uint64_t generation,
                      std::function<void(AppPool::RequestsAnswer)> done);
  void on_slot_requests(const control::SlotRequests& r);
  void expire_queries();
  void wire(AppPool& pool);
  AppPool* find_pool(const std::string& name);
  void check_reload_settled();
  void finish_reload(bool settled);
  /// Replies to control request `id` once the proxy has handled every message sent to it so
  /// far (a StatsQuery answered in order), or after kBarrierWait; at once when no proxy serves.
  void reply_after_proxy(uint64_t id, ControlApi::Response r);
  void release_barrier();
  /// Arms the upkeep timer and, under systemd's WatchdogSec, the watchdog (pinging at once
  /// when `ping_now`: an upgraded image continues the previous one's pings). start() and the
  /// upgrade's take-over.
  void start_upkeep_and_watchdog(bool ping_now);
  void watchdog();
  void maybe_notify_ready();
  void begin_stop(bool graceful);
  /// TERM, POST /stop: drain for what is left of drain_delay, then begin_stop(true); a
  /// second one during the delay stops at once. `why` names the request in the log.
  void stop_after_drain(const char* why);
  /// Drain on or off: the proxy is told (and told again after a restart).
  void set_draining(bool on);
  /// POST /drain (on) and POST /undrain (off).
  ControlApi::Response on_drain_request(bool on);
  /// {"draining", "drain_seconds", "stop_in_seconds"} for the status.
  nlohmann::json drain_status() const;
  void stop_workers();
  void check_stopped();
  void finish();
  void remove_sockets();
  ControlApi::Response on_control(const ControlApi::Request& r);
  /// POST /apps/NAME/tune: the running config with that app's workers / concurrency /
  /// worker_class changed, applied as a reload of that app (make before break); answered
  /// like POST /reload once the new workers serve. The values are runtime overrides.
  ControlApi::Response tune(const std::string& app, const ControlApi::Request& r);
  /// scale, TTIN, TTOU: the app's worker count, kept as a runtime override.
  void set_workers(AppPool& p, int workers);

  ev::Loop& loop_;
  workers::Launcher& launcher_;
  conf::Config config_;  // the file's, plus overrides_
  RuntimeOverrides overrides_;
  uint64_t config_generation_ = 1;
  std::vector<BoundListener> listeners_;
  std::optional<BoundListener> admin_;  // [proxy] admin, when not "off"
  std::vector<std::unique_ptr<AppPool>> pools_;
  std::vector<std::unique_ptr<AppPool>> retired_pools_;  // removed by a reload, draining
  const Clock& clock_;
  std::unique_ptr<ProxyProcess> proxy_;
  std::unique_ptr<ProxySwap> swap_;                       // a replacement in progress
  UniqueFd access_log_fd_;       // the file of access_log_path_, kept to hand to every new proxy
  std::string access_log_path_;
  std::vector<std::unique_ptr<ProxyProcess>> outgoing_;   // retiring proxies, failed replacements: until reaped
  std::map<std::tuple<std::string, int, uint64_t>, std::vector<pid_t>> drained_by_;  // (app, slot, gen) → proxies
  ControlApi control_;
  std::vector<std::unique_ptr<ev::SignalWatch>> signals_;
  ev::Timer stop_timer_;
  ev::Timer drain_timer_;  // armed while a stop waits for drain_delay
  std::optional<TimePoint> drain_since_;  // draining since (corralctl drain, or a stop's delay)
  TimePoint drain_stop_at_{};             // when drain_timer_ fires
  ev::Timer ready_fallback_;
  // A reload in progress: answered (POST /reload) once the pools settled.
  struct PendingReload {
    std::vector<uint64_t> waiters;  // control request ids
    std::vector<std::string> changes;
  };
  std::optional<PendingReload> reload_;
  // The last plans answered (id, candidate path), newest last: a stale id is explained.
  std::deque<std::pair<std::string, std::string>> recent_plans_;
  ev::Timer reload_timer_;
  ev::Timer upkeep_timer_;
  Strays strays_;
  /// Leftovers killed that no one worker can be charged with (newest last), for the status.
  std::deque<std::string> unattributed_leftovers_;
  static constexpr size_t kUnattributedKept = 20;
  dev_t runtime_dev_ = 0;  // runtime_dir as made at start (or last made again)
  ino_t runtime_ino_ = 0;
  bool runtime_dir_failing_ = false;  // logged that it cannot be made again
  LogThrottle control_sock_failures_{std::chrono::minutes(1)};  // control.sock cannot be bound again
  LogThrottle temp_dir_failures_{std::chrono::minutes(1)};      // temp_dir cannot be made again
  ev::Timer watchdog_timer_;
  struct PendingQuery {
    std::chrono::steady_clock::time_point deadline;
    std::function<void(AppPool::RequestsAnswer)> done;
  };
  std::map<uint64_t, PendingQuery> queries_;  // by query id
  uint64_t next_query_ = 0;
  ev::Timer queries_timer_;
  uint64_t status_query_ = 0;            // the StatsQuery in flight; 0 = none
  bool status_proxy_in_ = false;         // the proxy answered it (or cannot)
  bool status_sample_in_ = false;        // the workers' /proc figures were sampled for it
  std::vector<uint64_t> status_waiters_;  // GET /status control request ids
  ev::Timer status_timer_;
  uint64_t barrier_query_ = 0;  // the StatsQuery reply_after_proxy() waits for; 0 = none
  std::vector<std::pair<uint64_t, ControlApi::Response>> barrier_replies_;
  ev::Timer barrier_timer_;
  static constexpr std::chrono::milliseconds kBarrierWait{2'000};
  ev::Timer swap_timer_;  // a proxy replacement's readiness bound, then its hand-over bound
  std::chrono::milliseconds watchdog_every_{0};
  Phase phase_ = Phase::Running;
  bool graceful_ = true;
  bool ready_sent_ = false;
  bool batching_ = false;    // inside a PoolBatch
  gid_t socket_gid_ = static_cast<gid_t>(-1);  // group of the worker sockets (the proxy's)
  uid_t proxy_uid_ = static_cast<uid_t>(-1);   // the proxy's user when it differs from ours
  /// Creates [proxy] temp_dir (missing parents 0755, the folder itself 0700) and makes sure
  /// the proxy's user owns it: started as root, an existing folder is given to that user
  /// (never a sticky, shared one); otherwise one owned by someone else is refused.
  [[nodiscard]] Result<void> prepare_temp_dir(const std::string& dir);
  int exit_code_ = 0;
  std::string config_text_;  // the text config_ was loaded from (before overrides_)
  std::string binary_;       // what an upgrade executes
  std::shared_ptr<Upgrade> upgrade_;  // an upgrade in progress (its dry run runs)
};

}  // namespace corral::supervisor
