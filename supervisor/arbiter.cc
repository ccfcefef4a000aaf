#include "supervisor/arbiter.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "conf/cores.h"
#include "conf/loader.h"
#include "conf/snapshot.h"
#include "supervisor/check.h"
#include "supervisor/exit_status.h"
#include "supervisor/proc_stats.h"
#include "supervisor/sd_notify.h"
#include "supervisor/usage_sampler.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
using std::chrono::milliseconds;
constexpr milliseconds kProxyKillGrace{5'000};  // after graceful_timeout
constexpr milliseconds kFastKillAfter{1'000};
// READY=1 waits for workers that bind their own socket; a worker that never does must not
// keep the service "starting" forever.
constexpr milliseconds kReadyFallback{30'000};
constexpr milliseconds kWorkerKillAfter{5'000};  // graceful stop: SIGTERM → SIGKILL of workers
constexpr milliseconds kStopSlack{5'000};  // on top of a stop's longest time, for the service manager
constexpr milliseconds kUpkeepEvery{1'000};
constexpr milliseconds kStatusWait{1000};   // a status answer waits this long for live figures
constexpr milliseconds kRequestsWait{300};  // a death record waits this long for the proxy's request list

bool access_log_is_path(const std::string& spec) { return !spec.empty() && spec != "-" && spec != "off"; }

std::string monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000);
}

std::string json_error(const std::string& message) { return nlohmann::json{{"error", message}}.dump(); }

// What `corralctl advise` weighs a recommendation against: usable cores (affinity and
// cgroup quota) and memory.
nlohmann::json host_status() {
  const HostMemory m = host_memory();
  return {{"usable_cores", conf::usable_cores()},
          {"mem_available_bytes", m.available_bytes},
          {"mem_total_bytes", m.total_bytes}};
}

void notify(std::string_view state) {
  if (auto r = sd_notify(state); !r) {
    CORRAL_LOG(Warn, kTag) << r.error().message();
  }
}
}  // namespace

Arbiter::Arbiter(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::Config config,
                 Options options)
    : loop_(loop),
      launcher_(launcher),
      config_(std::move(config)),
      clock_(clock),
      control_(loop, [this](const ControlApi::Request& r) { return on_control(r); }),
      stop_timer_(loop, [this] {
        if (phase_ != Phase::Running && proxy_->running()) {
          CORRAL_LOG(Warn, kTag) << "proxy did not exit in time; killing it";
          proxy_->kill_now();
        }
      }),
      drain_timer_(loop, [this] {
        CORRAL_LOG(Info, kTag) << "drain_delay passed: graceful stop";
        begin_stop(true);
      }),
      ready_fallback_(loop, [this] {
        if (ready_sent_ || !proxy_->ready()) return;
        CORRAL_LOG(Warn, kTag) << "some workers are still starting; reporting ready anyway";
        ready_sent_ = true;
        notify("READY=1");
      }),
      reload_timer_(loop, [this] { finish_reload(false); }),
      upkeep_timer_(loop, [this] {
        upkeep();
        upkeep_timer_.arm(kUpkeepEvery);
      }),
      watchdog_timer_(loop, [this] { watchdog(); }),
      queries_timer_(loop, [this] { expire_queries(); }),
      status_timer_(loop, [this] { answer_status(); }),
      barrier_timer_(loop, [this] { release_barrier(); }),
      swap_timer_(loop, [this] { on_swap_timer(); }),
      config_text_(std::move(options.config_text)),
      binary_(std::move(options.binary)) {
  for (auto& app : config_.apps) {
    pools_.push_back(std::make_unique<AppPool>(loop_, launcher_, clock, app, config_.supervisor.runtime_dir,
                                               [this] { send_pool(); }));
    wire(*pools_.back());
  }
  std::string binary = options.proxy_binary.empty() ? ProxyProcess::default_binary() : options.proxy_binary;
  proxy_ = std::make_unique<ProxyProcess>(loop_, launcher_, clock, std::move(binary), ProxyProcess::Hooks{});
  proxy_->set_hooks(proxy_hooks(proxy_.get()));
  proxy_->set_timeout(config_.supervisor.proxy_timeout);

  auto on = [this](int sig, void (Arbiter::*handler)()) {
    signals_.push_back(std::make_unique<ev::SignalWatch>(loop_, sig, [this, handler] { (this->*handler)(); }));
  };
  on(SIGTERM, &Arbiter::handle_term);
  on(SIGINT, &Arbiter::handle_int);
  on(SIGQUIT, &Arbiter::handle_quit);
  on(SIGHUP, &Arbiter::handle_hup);
  on(SIGUSR1, &Arbiter::handle_usr1);
  on(SIGCHLD, &Arbiter::handle_chld);
  on(SIGTTIN, &Arbiter::handle_ttin);
  on(SIGTTOU, &Arbiter::handle_ttou);
  on(SIGUSR2, &Arbiter::handle_usr2);
}

Arbiter::~Arbiter() {
  UsageSampler::instance().forget_refreshes();  // nothing more is posted to this loop
  // Exit paths that skip the stop sequence still leave no child behind.
  if (proxy_) proxy_->kill_now();
  if (swap_ && swap_->candidate) swap_->candidate->kill_now();
  for (auto& o : outgoing_) o->kill_now();
  for (auto& p : pools_) p->stop(SIGKILL, milliseconds{0});
  for (auto& p : retired_pools_) p->stop(SIGKILL, milliseconds{0});
}

Result<void> Arbiter::prepare_temp_dir(const std::string& dir) {
  // Request bodies above client_body_buffer_size are written here by the proxy: a folder
  // only the proxy's user can enter (upload contents are private). Its missing parents are
  // ordinary folders (0755): the proxy's user has to pass through them.
  const size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto r = make_dirs(dir.substr(0, slash), 0755); !r)
      return fail(Errc::Config, "proxy.temp_dir: " + r.error().message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return fail(sys_error("proxy.temp_dir: mkdir " + dir));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail(sys_error("proxy.temp_dir: stat " + dir));
  if (!S_ISDIR(st.st_mode)) return fail(Errc::Config, "proxy.temp_dir: " + dir + " exists and is not a folder");
  // The folder belongs to the proxy's user, whoever made it (an earlier run under another
  // user, a package, an operator's mkdir). Root gives it over; anyone else can only refuse.
  const uid_t owner = proxy_uid_ != static_cast<uid_t>(-1) ? proxy_uid_ : ::geteuid();
  if (st.st_uid != owner) {
    if (st.st_mode & S_ISVTX)  // /tmp and the like are shared: never taken over
      return fail(Errc::Config, "proxy.temp_dir: " + dir + " is a shared folder (sticky bit); use a folder of its own below it");
    if (::geteuid() != 0)
      return fail(Errc::Config, "proxy.temp_dir: " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                                    ", not to the proxy's user (uid " + std::to_string(owner) + ")");
    if (::chown(dir.c_str(), owner, socket_gid_) != 0 || ::chmod(dir.c_str(), 0700) != 0)
      return fail(sys_error("proxy.temp_dir: giving " + dir + " to the proxy's user"));
  }
  if (proxy_uid_ == static_cast<uid_t>(-1)) {
    if (::access(dir.c_str(), W_OK | X_OK) != 0) return fail(sys_error("proxy.temp_dir: " + dir + " is not writable"));
    return {};
  }
  // A parent that predates us may still shut the proxy's user out (mode 0700, another
  // owner): every spilled body would then fail. Supplementary groups are not known here,
  // so this is a warning, not a refusal.
  for (size_t end = dir.find('/', 1); end != std::string::npos; end = dir.find('/', end + 1)) {
    const std::string parent = dir.substr(0, end);
    struct stat ps {};
    if (::stat(parent.c_str(), &ps) != 0) continue;
    const bool enters = ps.st_uid == proxy_uid_ ? (ps.st_mode & S_IXUSR) != 0
                        : ps.st_gid == socket_gid_ ? (ps.st_mode & S_IXGRP) != 0
                                                   : (ps.st_mode & S_IXOTH) != 0;
    if (!enters) {
      CORRAL_LOG(Warn, kTag) << "proxy.temp_dir: the proxy's user may not be able to enter " << parent
                             << "; request bodies above client_body_buffer_size would fail";
    }
  }
  return {};
}

Result<void> Arbiter::start() {
  const auto& dir = config_.supervisor.runtime_dir;
  // What workers fork away becomes our child when its parent dies, not init's (strays.h).
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    CORRAL_LOG(Warn, kTag) << sys_error("prctl(PR_SET_CHILD_SUBREAPER)").message()
                           << ": processes that workers fork away are not cleaned up";
  }
  strays_.start();  // children we had before any worker (inherited across exec) are not strays
  auto bound = bind_listeners(config_.listeners);
  if (!bound) return fail(bound.error());
  listeners_ = std::move(*bound);
  for (auto& l : listeners_) CORRAL_LOG(Info, kTag) << "listening on " << l.bound;
  // Started as root: the proxy runs as supervisor.user and reaches the worker sockets
  // through that user's group.
  gid_t socket_gid = static_cast<gid_t>(-1);
  if (!config_.supervisor.user.empty()) {
    auto id = resolve_identity(config_.supervisor.user, "");
    if (!id) return fail(Errc::Config, "supervisor.user: " + id.error().message());
    if (::geteuid() != 0) {
      CORRAL_LOG(Warn, kTag) << "not running as root: supervisor.user ignored, the proxy runs as the supervisor's user";
    } else {
      proxy_->set_identity(id->uid, id->gid);
      socket_gid = id->gid;
      socket_gid_ = socket_gid;
      proxy_uid_ = id->uid;
    }
  }
  if (auto r = prepare_runtime_dir(); !r) return r;
  if (auto r = prepare_temp_dir(config_.body_temp_dir()); !r) return r;
  if (config_.proxy.admin != "off") {
    auto admin = bind_admin(config_.proxy.admin);
    if (!admin) return fail(admin.error());
    admin_ = std::move(*admin);
    CORRAL_LOG(Info, kTag) << "admin listener on " << admin_->bound;
  }
  if (auto r = control_.listen(control_socket_path(dir)); !r) {
    remove_sockets();
    return r;
  }
  for (auto& p : pools_) {
    p->set_socket_group(socket_gid);
    if (auto r = p->start(); !r) {
      for (auto& q : pools_) q->stop(SIGKILL, milliseconds{0});
      remove_sockets();
      return r;
    }
  }
  start_upkeep_and_watchdog(false);
  if (auto r = proxy_->start(); !r) {
    CORRAL_LOG(Error, kTag) << "the proxy did not start; retrying with back-off";
  }
  ready_fallback_.arm(kReadyFallback);
  return {};
}

int Arbiter::run() {
  loop_.run();
  return exit_code_;
}

// ---- signals ----

void Arbiter::handle_term() { stop_after_drain("SIGTERM"); }

void Arbiter::handle_int() {
  CORRAL_LOG(Info, kTag) << "SIGINT: fast stop";
  begin_stop(false);
}

void Arbiter::handle_quit() {
  CORRAL_LOG(Info, kTag) << "SIGQUIT: fast stop";
  begin_stop(false);
}

void Arbiter::handle_hup() {
  CORRAL_LOG(Info, kTag) << "SIGHUP: reloading " << config_.file;
  if (phase_ != Phase::Running) return;
  auto r = reload();
  if (!r) return;  // logged; the running config keeps serving
  if (!reload_) reload_.emplace();
  reload_->changes = *r;
  check_reload_settled();
}

void Arbiter::handle_ttin() {
  if (phase_ != Phase::Running) return;
  CORRAL_LOG(Info, kTag) << "SIGTTIN: one worker more for every app";
  for (auto& p : pools_) set_workers(*p, p->desired() + 1);
}

void Arbiter::handle_ttou() {
  if (phase_ != Phase::Running) return;
  CORRAL_LOG(Info, kTag) << "SIGTTOU: one worker fewer for every app (at least one stays)";
  for (auto& p : pools_) set_workers(*p, p->desired() - 1);
}

void Arbiter::start_upkeep_and_watchdog(bool ping_now) {
  upkeep_timer_.arm(kUpkeepEvery);
  // systemd's WatchdogSec: pinged at half the interval it asks for.
  if (const char* usec = std::getenv("WATCHDOG_USEC"); usec && *usec) {
    const char* wpid = std::getenv("WATCHDOG_PID");
    if (!wpid || !*wpid || std::atol(wpid) == static_cast<long>(::getpid())) {
      watchdog_every_ = milliseconds(std::max<long long>(1, std::atoll(usec) / 2000));
      watchdog_timer_.arm(watchdog_every_);
      if (ping_now) notify("WATCHDOG=1");
    }
  }
}

void Arbiter::watchdog() {
  notify("WATCHDOG=1");
  watchdog_timer_.arm(watchdog_every_);
}

void Arbiter::handle_usr1() {
  // logrotate's postrotate: the access log file was renamed; open it anew and hand it to every
  // proxy that runs (a retiring one switches only if it still logs to that path). corral's
  // own log is stderr (the journal), which needs no reopening.
  const std::string& path = config_.proxy.access_log;
  if (!access_log_is_path(path)) {
    CORRAL_LOG(Info, kTag) << "SIGUSR1: nothing to reopen (access_log = \"" << path << "\"; corral logs to stderr)";
    return;
  }
  if (!reopen_access_log()) return;
  CORRAL_LOG(Info, kTag) << "SIGUSR1: reopened the access log " << path;
  if (proxy_->running()) send_access_log(*proxy_);
  if (swap_ && swap_->candidate && swap_->candidate->running()) send_access_log(*swap_->candidate);
  for (auto& o : outgoing_)
    if (o->running()) send_access_log(*o);
}

void Arbiter::handle_chld() { reap(); }

// ---- children ----

void Arbiter::reap() {
  crash::Operation op("reaping children");
  struct Exit {
    pid_t pid;
    int status;
    rusage ru;
  };
  std::vector<Exit> exits;
  for (;;) {
    Exit e{};
    e.pid = ::wait4(-1, &e.status, WNOHANG, &e.ru);
    if (e.pid < 0 && errno == EINTR) continue;
    if (e.pid <= 0) break;
    exits.push_back(e);
  }
  // What the dead workers left running goes first: nothing may serve a worker's socket once
  // the worker restarts in place below.
  std::vector<WorkerRef> exited;
  for (auto& e : exits)
    if (auto w = worker_of(e.pid)) exited.push_back(*w);
  std::vector<LeftoverNote> leftovers;
  if (!exited.empty()) leftovers = sweep_strays(exited);
  for (auto& [pid, status, ru] : exits) {
    if (on_upgrade_check_exit(pid, status)) continue;
    if (reap_other_proxy(pid, status)) {
      check_stopped();
      continue;
    }
    if (proxy_->on_exit(pid, status)) {
      for (auto& p : pools_) p->on_proxy_gone();
      for (auto& p : retired_pools_) p->on_proxy_gone();
      if (phase_ == Phase::StoppingProxy) stop_workers();
      continue;
    }
    // The worker's CPU and its waited-for children's, for the app's totals.
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    bool ours = false;
    for (auto& p : pools_) ours = ours || p->on_exit(pid, status, cpu);
    for (auto& p : retired_pools_) ours = ours || p->on_exit(pid, status, cpu);
    if (!ours) {
      // A stray (strays.h) that ended or was killed.
      CORRAL_LOG(Debug, kTag) << "reaped pid " << pid << " (" << describe_exit(status, false) << ")";
    }
  }
  note_leftovers(leftovers);  // their death records exist now
  check_stopped();
}

// ---- proxy ----

void Arbiter::send_state(ProxyProcess& to) {
  std::vector<int> fds;
  control::SetListeners set_listeners;
  for (auto& l : listeners_) {
    fds.push_back(l.fd.get());
    set_listeners.addresses.push_back(l.bound);
  }
  if (admin_) {
    fds.push_back(admin_->fd.get());
    set_listeners.admin = admin_->bound;
  }
  to.send(set_listeners, fds);
  send_access_log(to);  // before set_config, which installs it
  to.send(control::SetConfig{config_generation_, conf::to_snapshot(config_)});
  to.send(make_pool());
  if (drain_since_) to.send(control::SetDraining{true});
}

bool Arbiter::reopen_access_log() {
  const std::string& path = config_.proxy.access_log;
  access_log_fd_.reset();
  access_log_path_.clear();
  if (!access_log_is_path(path)) return false;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) {
    CORRAL_LOG(Error, kTag) << "cannot open the access log " << path << ": " << std::strerror(errno)
                            << "; requests are not logged until it opens (a reload or SIGUSR1 tries again)";
    return false;
  }
  access_log_fd_ = UniqueFd(fd);
  access_log_path_ = path;
  return true;
}

void Arbiter::send_access_log(ProxyProcess& to) {
  const std::string& path = config_.proxy.access_log;
  if (!access_log_is_path(path)) {
    access_log_fd_.reset();  // a reload turned the file off: nothing more to hand
    access_log_path_.clear();
    return;
  }
  if ((!access_log_fd_ || access_log_path_ != path) && !reopen_access_log()) return;
  to.send(control::AccessLogFile{path}, {access_log_fd_.get()});
}

void Arbiter::on_proxy_spawned() {
  send_state(*proxy_);
  maybe_notify_ready();
  if (reload_) loop_.post([this] { check_reload_settled(); });
}

void Arbiter::send_all() {
  // A replacement being started gets the new state too; retiring proxies only the pool.
  on_proxy_spawned();
  if (swap_ && swap_->candidate && swap_->candidate->running()) send_state(*swap_->candidate);
  const control::SetPool pool = make_pool();
  for (auto& o : outgoing_)
    if (o->retiring() && o->running()) o->send(pool);
}

void Arbiter::on_proxy_ready() { maybe_notify_ready(); }

void Arbiter::on_worker_hung(const control::WorkerHung& h) {
  crash::Operation op("proxy event: hung worker of app " + h.app.substr(0, 64));
  if (AppPool* p = find_pool(h.app)) return p->on_hung(h.slot, h.generation, h.request_id);
  CORRAL_LOG(Warn, kTag) << "proxy reported a hung worker of unknown app '" << h.app << "'";
}

AppPool* Arbiter::find_pool(const std::string& name) {
  for (auto& p : pools_)
    if (p->app().name == name) return p.get();
  for (auto& p : retired_pools_)
    if (p->app().name == name) return p.get();
  return nullptr;
}

void Arbiter::wire(AppPool& pool) {
  pool.set_requests_query([this, app = pool.app().name](int slot, uint64_t generation,
                                                        std::function<void(AppPool::RequestsAnswer)> done) {
    query_requests(app, slot, generation, std::move(done));
  });
}

void Arbiter::query_requests(const std::string& app, int slot, uint64_t generation,
                             std::function<void(AppPool::RequestsAnswer)> done) {
  if (!proxy_ || !proxy_->ready()) return done(std::nullopt);
  const uint64_t id = ++next_query_;
  if (!proxy_->send(control::SlotRequestsQuery{id, app, slot, generation})) return done(std::nullopt);
  queries_.emplace(id, PendingQuery{std::chrono::steady_clock::now() + kRequestsWait, std::move(done)});
  if (!queries_timer_.armed()) queries_timer_.arm(kRequestsWait);
}

void Arbiter::on_slot_requests(const control::SlotRequests& r) {
  auto it = queries_.find(r.query);
  if (it == queries_.end()) return;  // expired: the line went out without them
  auto done = std::move(it->second.done);
  queries_.erase(it);
  done(r.requests);
}

void Arbiter::expire_queries() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::function<void(AppPool::RequestsAnswer)>> expired;
  auto next = std::chrono::steady_clock::time_point::max();
  for (auto it = queries_.begin(); it != queries_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second.done));
      it = queries_.erase(it);
    } else {
      next = std::min(next, it->second.deadline);
      ++it;
    }
  }
  if (!queries_.empty())
    queries_timer_.arm(std::chrono::duration_cast<milliseconds>(next - now) + milliseconds{1});
  for (auto& d : expired) d(std::nullopt);
}

void Arbiter::on_slot_event(const control::SlotEvent& e) {
  crash::Operation op("proxy event: app " + e.app.substr(0, 64));
  // A refused connect may mean runtime_dir is gone: make it again before the pool looks.
  if (e.kind == control::SlotEvent::Kind::Refused && phase_ == Phase::Running) check_runtime_dir();
  if (AppPool* p = find_pool(e.app)) p->on_slot_event(e);
}

void Arbiter::on_stats(const control::ProxyStats& st) {
  for (auto& s : st.slots)
    if (AppPool* p = find_pool(s.app)) p->on_stats(s);
  for (auto& a : st.apps)
    if (AppPool* p = find_pool(a.app)) p->on_app_stats(a, proxy_->pid());
  if (st.query != 0 && st.query == status_query_) {
    status_proxy_in_ = true;
    maybe_answer_status();
  }
  if (st.query != 0 && st.query == barrier_query_) release_barrier();
  // The proxy's periodic report (every second) paces the figures that go back to it.
  if (st.query == 0 && admin_) send_worker_figures();
}

void Arbiter::send_worker_figures() {
  crash::Operation op("sending worker figures to the proxy");
  if (proxy_->backlogged()) return;  // it has not read the last ones yet; the next report paces the next
  nlohmann::json apps = nlohmann::json::array();
  for (auto& p : pools_) apps.push_back(p->status());
  proxy_->send(control::WorkerFigures{nlohmann::json{{"apps", std::move(apps)}}.dump()});
}

void Arbiter::maybe_answer_status() {
  if (status_proxy_in_ && status_sample_in_) answer_status();
}

void Arbiter::answer_status() {
  status_query_ = 0;
  status_timer_.cancel();
  auto waiters = std::move(status_waiters_);
  status_waiters_.clear();
  if (waiters.empty()) return;
  const std::string body = status().dump();
  for (auto id : waiters) control_.reply(id, {200, body});
}

void Arbiter::send_pool() {
  crash::Operation op("sending the worker pool to the proxy");
  if (batching_) return;  // the batch's owner sends once at its end
  const control::SetPool pool = make_pool();
  for (ProxyProcess* p : pool_receivers()) p->send(pool);
  maybe_notify_ready();
  if (reload_) loop_.post([this] { check_reload_settled(); });
}

// ---- reload ----

Result<std::vector<std::string>> Arbiter::reload() {
  crash::Operation op("reload: reading the config");
  check_runtime_dir();  // new workers' sockets go there
  notify_reloading();
  // Step 1: the whole difference, computed before anything moves (the same computation as
  // POST /plan's).
  auto planned = plan_candidate(config_.file);
  if (!planned) {
    std::string why = planned.error().to_string();
    if (!why.empty() && why.back() == '\n') why.pop_back();
    return reject_reload(why);
  }
  // Step 2: apply it.
  return apply_planned(std::move(*planned));
}

void Arbiter::notify_reloading() { notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec()); }

void Arbiter::notify_stopping(milliseconds before_stop, bool graceful) {
  // The bound follows stop_workers() and the stop timers: the proxy's graceful stop (or the
  // fast kill), then the slowest app's SIGTERM-to-SIGKILL delay.
  milliseconds workers = graceful ? kWorkerKillAfter : kFastKillAfter;
  if (graceful)
    for (const auto& p : pools_) workers = std::max(workers, milliseconds(p->app().kill_timeout));
  const milliseconds proxy = graceful ? config_.supervisor.graceful_timeout + kProxyKillGrace : kFastKillAfter;
  const milliseconds bound = std::max(before_stop, milliseconds{0}) + proxy + workers + kStopSlack;
  notify("STOPPING=1\nEXTEND_TIMEOUT_USEC=" + std::to_string(bound.count() * 1000));
}

Result<std::vector<std::string>> Arbiter::reject_reload(const std::string& why) {
  CORRAL_LOG(Error, kTag) << "reload rejected, the running config keeps serving: " << why;
  notify("READY=1");
  return fail(Errc::Config, why);
}

Result<std::vector<std::string>> Arbiter::apply_planned(PlannedReload p) {
  if (!p.plan.refused.empty()) return reject_reload(p.plan.refused);
  auto applied = apply_reload(p.plan, std::move(p.next));
  if (!applied) return reject_reload(applied.error().message());
  overrides_ = std::move(p.overrides);
  config_text_ = std::move(p.text);
  for (auto& n : p.notes) CORRAL_LOG(Info, kTag) << "reload: " << n;
  for (auto& c : *applied) CORRAL_LOG(Info, kTag) << "reload: " << c;
  // Answer once the new generations are ready; never later than the longest boot_timeout.
  milliseconds limit{1'000};
  for (auto& app : config_.apps) limit = std::max(limit, app.boot_timeout + milliseconds{1'000});
  reload_timer_.arm(limit);
  return applied;
}

Result<std::vector<std::string>> Arbiter::apply_reload(const ReloadPlan& plan, conf::Config next) {
  // The steps that can fail come first, before anything changes: the body folder, the added
  // listeners and a changed admin address. Only then are the sockets of addresses still
  // listed kept (no connection is refused while the proxy swaps sets) and the removed ones
  // closed.
  crash::set_operation("reload: preparing temp_dir");
  if (next.body_temp_dir() != config_.body_temp_dir()) {
    if (auto r = prepare_temp_dir(next.body_temp_dir()); !r) return fail(r.error());
  }
  crash::set_operation("reload: binding listeners");
  // plan.listeners starts with one entry per new listener, in order.
  CORRAL_CHECK(plan.listeners.size() >= next.listeners.size(), "the plan covers every new listener");
  std::vector<conf::Listener> to_bind;
  for (size_t i = 0; i < next.listeners.size(); ++i)
    if (plan.listeners[i].action == ListenerDiff::Action::Add) to_bind.push_back(next.listeners[i]);
  auto bound = bind_listeners(to_bind);
  if (!bound) return fail(bound.error());
  std::optional<BoundListener> next_admin;
  const bool admin_changed = next.proxy.admin != config_.proxy.admin;
  if (admin_changed && next.proxy.admin != "off") {
    auto admin = bind_admin(next.proxy.admin);
    if (!admin) return fail(admin.error());
    next_admin = std::move(*admin);
  }
  // Nothing fails from here on.
  std::vector<BoundListener> kept_listeners;
  size_t next_bound = 0;
  for (size_t i = 0; i < next.listeners.size(); ++i) {
    if (plan.listeners[i].action == ListenerDiff::Action::Add) {
      BoundListener& b = (*bound)[next_bound++];
      CORRAL_LOG(Info, kTag) << "listening on " << b.bound;
      kept_listeners.push_back(std::move(b));
      continue;
    }
    auto it = std::find_if(listeners_.begin(), listeners_.end(),
                           [&](const BoundListener& b) { return b.address == next.listeners[i].address && b.fd; });
    CORRAL_CHECK(it != listeners_.end(), "a kept listener is bound");
    kept_listeners.push_back(std::move(*it));
  }
  listeners_ = std::move(kept_listeners);  // the removed ones close here
  if (admin_changed) {
    if (admin_ && admin_->bound.rfind("unix:", 0) == 0 && next.proxy.admin != admin_->address)
      ::unlink(admin_->address.c_str());
    admin_ = std::move(next_admin);
    CORRAL_LOG(Info, kTag) << (admin_ ? "admin listener on " + admin_->bound : std::string("admin listener off"));
  }

  // Apps: every pool stays in pools_ or retired_pools_ throughout (no half-moved state a
  // callback could see), and the proxy hears of the result once, after its new config.
  std::vector<std::string> changes = plan.describe();
  {
    PoolBatch batch(*this);
    for (auto& d : plan.apps) {
      crash::set_operation("reload: app " + d.name + ": " + action_name(d.action));
      const conf::App* app = next.find_app(d.name);
      switch (d.action) {
        case AppDiff::Action::Keep:
          break;
        case AppDiff::Action::Update:
        case AppDiff::Action::Replace: {
          auto it = std::find_if(pools_.begin(), pools_.end(), [&](auto& p) { return p->app().name == d.name; });
          CORRAL_CHECK(it != pools_.end() && app, "a changed app has a running pool and a new config");
          (*it)->reconfigure(*app, d.action == AppDiff::Action::Replace);
          break;
        }
        case AppDiff::Action::Add: {
          CORRAL_CHECK(app != nullptr, "an added app has a config");
          auto old = std::find_if(retired_pools_.begin(), retired_pools_.end(), [&](auto& p) { return p->app().name == d.name; });
          if (old != retired_pools_.end()) {
            // Its previous workers may still drain: the same pool takes it back, so worker
            // ids and socket paths stay unique within the name.
            pools_.push_back(std::move(*old));
            retired_pools_.erase(old);
            pools_.back()->revive(*app);
            break;
          }
          auto pool = std::make_unique<AppPool>(loop_, launcher_, clock_, *app, config_.supervisor.runtime_dir, [this] { send_pool(); });
          wire(*pool);
          pool->set_socket_group(socket_gid_);
          if (auto r = pool->start(); !r) {
            CORRAL_LOG(Error, kTag) << "app " << d.name << ": " << r.error().message();
            changes.push_back("app " + d.name + ": cannot start: " + r.error().message());
          }
          pools_.push_back(std::move(pool));
          break;
        }
        case AppDiff::Action::Remove: {
          auto it = std::find_if(pools_.begin(), pools_.end(), [&](auto& p) { return p->app().name == d.name; });
          CORRAL_CHECK(it != pools_.end(), "a removed app has a running pool");
          std::unique_ptr<AppPool> p = std::move(*it);
          pools_.erase(it);
          p->retire_all("reload");
          retired_pools_.push_back(std::move(p));
          break;
        }
      }
    }
    std::sort(pools_.begin(), pools_.end(), [](auto& a, auto& b) { return a->app().name < b->app().name; });
    // Removed apps whose workers are all gone are dropped here.
    std::erase_if(retired_pools_, [](auto& p) { return p->idle(); });
    crash::set_operation("reload: switching config");
    log::set_level(next.supervisor.log_level);
    proxy_->set_timeout(next.supervisor.proxy_timeout);
    if (swap_ && swap_->candidate) swap_->candidate->set_timeout(next.supervisor.proxy_timeout);
    config_ = std::move(next);
    ++config_generation_;
  }
  send_all();
  return changes;
}

void Arbiter::check_reload_settled() {
  if (!reload_) return;
  for (auto& p : pools_)
    if (!p->settled() || p->any_starting()) return;
  finish_reload(true);
}

void Arbiter::finish_reload(bool settled) {
  if (!reload_) return;
  PendingReload done = std::move(*reload_);
  reload_.reset();
  reload_timer_.cancel();
  if (settled) {
    CORRAL_LOG(Info, kTag) << "reload complete (config generation " << config_generation_ << ")";
  } else {
    CORRAL_LOG(Warn, kTag) << "reload: some new workers are not ready yet; the previous ones keep serving";
  }
  notify("READY=1");
  nlohmann::json body{{"status", settled ? "reloaded" : "pending"},
                      {"generation", config_generation_},
                      {"changes", done.changes},
                      {"settled", settled}};
  if (!settled) body["note"] = "some new workers are not ready yet; the previous ones keep serving";
  // Answered once the proxy has applied the pool the reload led to: the proxy handles its
  // channel in order, so the answer to a query sent now comes after every set_pool before it.
  // Whoever sends a request after `corralctl reload` returned reaches the new workers.
  for (auto id : done.waiters) reply_after_proxy(id, {200, body.dump()});
}

void Arbiter::reply_after_proxy(uint64_t id, ControlApi::Response r) {
  // A new query each time: one sent earlier may have gone before the latest set_pool. Replies
  // already waiting wait for this one too.
  const uint64_t q = ++next_query_;
  if (proxy_->ready() && proxy_->send(control::StatsQuery{q})) {
    barrier_query_ = q;
    barrier_timer_.arm(kBarrierWait);
    barrier_replies_.emplace_back(id, std::move(r));
  } else {
    barrier_replies_.emplace_back(id, std::move(r));
    release_barrier();
  }
}

void Arbiter::release_barrier() {
  barrier_query_ = 0;
  barrier_timer_.cancel();
  auto replies = std::move(barrier_replies_);
  barrier_replies_.clear();
  for (auto& [id, r] : replies) control_.reply(id, std::move(r));
}

void Arbiter::maybe_notify_ready() {
  if (ready_sent_ || phase_ != Phase::Running || !proxy_->ready()) return;
  for (auto& p : pools_)
    if (p->any_starting()) return;
  ready_sent_ = true;
  ready_fallback_.cancel();
  CORRAL_LOG(Info, kTag) << "ready";
  notify("READY=1");
}

// ---- stopping ----

void Arbiter::begin_stop(bool graceful) {
  crash::Operation op(graceful ? "graceful stop" : "fast stop");
  drain_timer_.cancel();
  if (swap_ && !swap_->promoted) fail_swap(503, "the supervisor is stopping");
  // Retiring proxies are leaving anyway: a fast stop hurries them (the kernel queues nothing for them).
  if (!graceful)
    for (auto& o : outgoing_) o->stop(SIGINT);
  if (phase_ != Phase::Running) {
    if (graceful || !graceful_) return;
    // A fast stop overrides a graceful one in progress.
    graceful_ = false;
    proxy_->stop(SIGINT);
    for (auto& o : outgoing_) o->stop(SIGINT);
    if (phase_ == Phase::StoppingProxy) stop_timer_.arm(kFastKillAfter);
    if (phase_ == Phase::StoppingWorkers) stop_workers();
    return;
  }
  graceful_ = graceful;
  notify_stopping(milliseconds{0}, graceful);
  ready_fallback_.cancel();
  phase_ = Phase::StoppingProxy;
  const bool proxy_running = proxy_->running();
  proxy_->stop(graceful ? SIGTERM : SIGINT);
  if (!graceful) {
    stop_workers();  // fast: everything at once
    return;
  }
  if (!proxy_running) {
    stop_workers();
    return;
  }
  stop_timer_.arm(config_.supervisor.graceful_timeout + kProxyKillGrace);
}

void Arbiter::stop_workers() {
  if (phase_ == Phase::StoppingProxy) phase_ = Phase::StoppingWorkers;
  if (!graceful_ && proxy_->running()) stop_timer_.arm(kFastKillAfter);  // also kills a lingering proxy
  for (auto& p : pools_) p->stop(SIGTERM, graceful_ ? std::max(kWorkerKillAfter, p->app().kill_timeout) : kFastKillAfter);
  for (auto& p : retired_pools_) p->stop(SIGTERM, graceful_ ? kWorkerKillAfter : kFastKillAfter);
  check_stopped();
}

void Arbiter::check_stopped() {
  if (phase_ != Phase::StoppingWorkers || proxy_->running()) return;
  for (auto& o : outgoing_)
    if (o->running()) return;
  for (auto& p : pools_)
    if (!p->all_stopped()) return;
  for (auto& p : retired_pools_)
    if (!p->all_stopped()) return;
  finish();
}

void Arbiter::finish() {
  phase_ = Phase::Done;
  stop_timer_.cancel();
  remove_sockets();
  CORRAL_LOG(Info, kTag) << "stopped";
  exit_code_ = 0;
  loop_.break_loop();
}

void Arbiter::remove_sockets() {
  control_.close();
  if (admin_ && admin_->bound.rfind("unix:", 0) == 0) ::unlink(admin_->address.c_str());
  for (auto& p : pools_) p->remove_sockets();
  for (auto& p : retired_pools_) p->remove_sockets();
}

// ---- control API ----

ControlApi::Response Arbiter::on_control(const ControlApi::Request& r) {
  crash::Operation op("control API: " + r.method + " " + r.path.substr(0, 64));
  if (r.path == "/status") {
    if (r.method != "GET") return {405, R"({"error":"use GET"})"};
    // Live figures: ask the proxy for its counters and the sampler for the workers' /proc
    // figures now, and answer when both are in (or after kStatusWait with the last ones,
    // whose age the status shows).
    if (!proxy_ || !proxy_->ready()) return {200, status().dump()};
    status_waiters_.push_back(r.id);
    if (status_query_ == 0) {
      const uint64_t q = status_query_ = ++next_query_;
      status_proxy_in_ = !proxy_->send(control::StatsQuery{q});
      status_sample_in_ = false;
      std::vector<pid_t> pids;
      for (auto& p : pools_) p->append_pids(pids);
      UsageSampler::instance().refresh(pids, loop_, [this, q] {
        if (q != status_query_) return;
        status_sample_in_ = true;
        maybe_answer_status();
      });
      status_timer_.arm(kStatusWait);
    }
    return {0, {}};  // answered by answer_status()
  }
  if (r.path == "/stop") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    // After this response is on its way: the handler runs inside the connection's callback.
    loop_.post([this] { stop_after_drain("stop requested over the control API"); });
    return {202, R"({"status":"stopping"})"};
  }
  if (r.path == "/proxy/restart") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    return on_restart_proxy_request(r.id);
  }
  if (r.path == "/drain" || r.path == "/undrain") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    return on_drain_request(r.path == "/drain");
  }
  if (r.path == "/upgrade") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    if (auto why = upgrade_refusal(); !why.empty()) return {409, json_error("upgrade refused: " + why)};
    CORRAL_LOG(Info, kTag) << "upgrade requested over the control API";
    // After this handler returns: the connection is then a deferred one, handed over.
    loop_.post([this, id = r.id] { begin_upgrade(id); });
    return {0, {}};  // answered by the new image, or by refuse_upgrade()
  }
  if (r.path == "/reload") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    if (phase_ != Phase::Running) return {503, json_error("stopping")};
    if (auto planned = on_reload_with_plan(r)) return *planned;
    CORRAL_LOG(Info, kTag) << "reload requested over the control API";
    auto changes = reload();
    if (!changes) return {400, json_error("invalid config, nothing changed: " + changes.error().context)};
    if (!reload_) reload_.emplace();
    reload_->changes = *changes;
    reload_->waiters.push_back(r.id);
    loop_.post([this] { check_reload_settled(); });
    return {0, {}};  // answered by finish_reload()
  }
  if (r.path == "/plan") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    return on_plan_request(r);
  }
  static constexpr std::string_view kApps = "/apps/";
  if (r.path.rfind(kApps, 0) == 0 && r.path.size() > kApps.size() + 6 &&
      r.path.compare(r.path.size() - 6, 6, "/scale") == 0) {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    std::string name = r.path.substr(kApps.size(), r.path.size() - kApps.size() - 6);
    AppPool* p = nullptr;
    for (auto& q : pools_)
      if (q->app().name == name) p = q.get();
    if (!p) return {404, json_error("no app named '" + name + "'")};
    auto body = nlohmann::json::parse(r.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("workers") || !body["workers"].is_number_integer())
      return {400, json_error("send {\"workers\": N}")};
    long long n = body["workers"].get<long long>();
    if (n < 1 || n > 4096) return {400, json_error("workers must be from 1 to 4096")};
    if (phase_ != Phase::Running) return {503, json_error("stopping")};
    const int before = p->desired();
    set_workers(*p, static_cast<int>(n));
    return {200, nlohmann::json{{"app", name}, {"workers", p->desired()}, {"before", before}}.dump()};
  }
  if (r.path.rfind(kApps, 0) == 0 && r.path.size() > kApps.size() + 5 &&
      r.path.compare(r.path.size() - 5, 5, "/tune") == 0) {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    return tune(r.path.substr(kApps.size(), r.path.size() - kApps.size() - 5), r);
  }
  return {404, R"({"error":"not found"})"};
}

void Arbiter::set_workers(AppPool& p, int workers) {
  workers = std::max(1, workers);
  for (auto& a : config_.apps) {
    if (a.name != p.app().name) continue;
    conf::App changed = a;
    changed.workers = workers;
    overrides_.record(a, changed);
    a.workers = workers;  // config_ stays what runs, so the next reload's plan compares like with like
  }
  p.scale(workers);
}

ControlApi::Response Arbiter::tune(const std::string& name, const ControlApi::Request& r) {
  const conf::App* running = config_.find_app(name);
  if (!running || !find_pool(name)) return {404, json_error("no app named '" + name + "'")};
  auto body = nlohmann::json::parse(r.body, nullptr, false);
  auto tuning = parse_tuning(body);
  if (!tuning) return {400, json_error(tuning.error().context)};
  auto app = tuned_app(*running, *tuning);
  if (!app) return {400, json_error(app.error().context)};
  if (phase_ != Phase::Running) return {503, json_error("stopping")};
  if (*app == *running)
    return {200, nlohmann::json{{"status", "unchanged"}, {"generation", config_generation_},
                                {"changes", {"nothing changed"}}, {"settled", true}}.dump()};
  // A reload of this one app, from the running config: the same plan and make-before-break
  // path as a file reload, so no request fails.
  CORRAL_LOG(Info, kTag) << "tune requested over the control API for app " << name;
  notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  const conf::App before = *running;
  conf::Config next = config_;
  for (auto& a : next.apps)
    if (a.name == name) a = *app;
  ReloadPlan plan = plan_reload(config_, next);
  auto applied = apply_reload(plan, std::move(next));
  if (!applied) {
    notify("READY=1");
    return {500, json_error("cannot apply: " + applied.error().message())};
  }
  overrides_.record(before, *app);
  for (auto& c : *applied) CORRAL_LOG(Info, kTag) << "tune: " << c;
  if (!reload_) reload_.emplace();
  reload_->changes.insert(reload_->changes.end(), applied->begin(), applied->end());
  reload_->waiters.push_back(r.id);
  if (!reload_timer_.armed()) reload_timer_.arm(app->boot_timeout + milliseconds{1'000});
  loop_.post([this] { check_reload_settled(); });
  return {0, {}};  // answered by finish_reload()
}

nlohmann::json Arbiter::status() const {
  nlohmann::json listeners = nlohmann::json::array();
  for (auto& l : listeners_) listeners.push_back({{"address", l.address}, {"bound", l.bound}});
  nlohmann::json admin = nullptr;
  if (admin_) admin = {{"address", admin_->address}, {"bound", admin_->bound}};
  nlohmann::json apps = nlohmann::json::array();
  for (auto& p : pools_) {
    apps.push_back(p->status());
    if (auto tuned = overrides_.describe(p->app().name); !tuned.empty()) apps.back()["tuned"] = std::move(tuned);
  }
  for (auto& p : retired_pools_) {
    if (p->all_stopped()) continue;
    auto a = p->status();
    a["removed"] = true;
    apps.push_back(std::move(a));
  }
  const char* state = phase_ != Phase::Running ? "stopping" : drain_since_ ? "draining" : ready_sent_ ? "running" : "starting";
  return {{"pid", ::getpid()}, {"version", CORRAL_VERSION}, {"config", config_.file}, {"state", state},
          {"config_generation", config_generation_}, {"reloading", reload_.has_value()},
          {"listeners", listeners}, {"admin", admin}, {"proxy", proxy_->status()},
          {"proxy_replacement", proxy_swap_status()}, {"apps", apps},
          {"host", host_status()}, {"drain", drain_status()},
          {"unattributed_leftovers", nlohmann::json(std::vector<std::string>(unattributed_leftovers_.rbegin(),
                                                                             unattributed_leftovers_.rend()))}};
}

}  // namespace corral::supervisor
