// Arbiter: upgrade in place (corralctl upgrade = POST /upgrade, SIGUSR2), as nginx's USR2
// but with the same pid, so systemd's MAINPID, Type=notify and the watchdog stay right.
//
// 1. Refused while a stop (or a stop's drain), a reload or a proxy replacement is in progress.
// 2. RELOADING=1; the state (upgrade_state.h) goes to a memfd and the binary the supervisor
//    was started from runs as a dry run: `BINARY --upgrade-check 3 -c CONFIG` reads the
//    state's format version and validates the config text with the new code. A failure,
//    an exit other than 0 or no answer within kCheckTimeout refuses the upgrade with what
//    it printed: nothing changed, READY=1.
// 3. Then, on the loop and with nothing pending, the state is written again (it moved while
//    the dry run ran), FD_CLOEXEC is cleared on every fd it names, the handled signals are
//    blocked (pending ones wait for the new image's handlers) and execve() runs
//    `BINARY -c CONFIG --upgrade-state N`. If execve fails, CLOEXEC and the signal mask
//    are restored and the upgrade is refused: the old image runs on.
// 4. The new image (resume()) adopts everything, reaps what died meanwhile, rolls
//    corral-worker processes whose binary changed (upgrade = "roll") and replaces the proxy
//    make before break (replace_proxy()); then READY=1 and the answer to the POST /upgrade
//    that asked (its connection is handed over too).
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "conf/snapshot.h"
#include "supervisor/arbiter.h"
#include "supervisor/exit_status.h"
#include "supervisor/sd_notify.h"
#include "supervisor/upgrade.h"

extern char** environ;

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
using std::chrono::milliseconds;
constexpr milliseconds kCheckTimeout{10'000};
constexpr milliseconds kReadyFallback{30'000};
constexpr size_t kMaxCheckOutput = 16 * 1024;

void notify(std::string_view state) {
  if (auto r = sd_notify(state); !r) {
    CORRAL_LOG(Warn, kTag) << r.error().message();
  }
}

std::string monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000);
}

UniqueFd adopt_fd(int fd) {
  if (fd < 0) return {};
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) (void)::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return UniqueFd(fd);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}
}  // namespace

/// An upgrade between its request and the execve (or its refusal).
struct Arbiter::Upgrade {
  std::vector<uint64_t> waiters;  // POST /upgrade requests to answer
  pid_t check_pid = 0;
  UniqueFd out, err;              // the dry run's stdout and stderr
  std::string output;             // what it printed (capped)
  std::unique_ptr<ev::FdWatch> out_watch, err_watch;
  std::unique_ptr<ev::Timer> timer;

  void read(UniqueFd& fd, std::unique_ptr<ev::FdWatch>& watch) {
    char buf[4096];
    for (;;) {
      ssize_t n = fd ? ::read(fd.get(), buf, sizeof buf) : 0;
      if (n > 0) {
        if (output.size() < kMaxCheckOutput) output.append(buf, std::min(static_cast<size_t>(n), kMaxCheckOutput - output.size()));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (watch) watch->set(false, false);
      return;  // EOF: kept open until the upgrade ends (the watch is off)
    }
  }
};

void Arbiter::handle_usr2() {
  CORRAL_LOG(Info, kTag) << "SIGUSR2: upgrading in place (re-executing " << binary_ << ")";
  begin_upgrade(std::nullopt);
}

std::string Arbiter::upgrade_refusal() const {
  if (phase_ != Phase::Running || drain_timer_.armed()) return "a stop is in progress";
  if (reload_) return "a reload is in progress; try again once it is done";
  if (swap_) return "a proxy replacement is in progress; try again once it is done";
  if (binary_.empty()) return "the supervisor's own executable is not known";
  if (config_text_.empty()) return "the text of the running config is not known";
  return "";
}

pid_t Arbiter::upgrade_check_pid() const { return upgrade_ ? upgrade_->check_pid : 0; }

void Arbiter::begin_upgrade(std::optional<uint64_t> waiter) {
  crash::Operation op("upgrade: dry run");
  if (upgrade_) {  // one is on its way: this request gets its answer
    if (waiter) upgrade_->waiters.push_back(*waiter);
    return;
  }
  if (auto why = upgrade_refusal(); !why.empty()) {
    CORRAL_LOG(Warn, kTag) << "upgrade refused: " << why;
    if (waiter) control_.reply(*waiter, {409, nlohmann::json{{"error", "upgrade refused: " + why}}.dump()});
    return;
  }
  upgrade_ = std::make_shared<Upgrade>();
  if (waiter) upgrade_->waiters.push_back(*waiter);
  notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
  auto memfd = write_state_memfd(encode_state(upgrade_state()));
  if (!memfd) return refuse_upgrade("cannot write the state: " + memfd.error().message());
  workers::LaunchSpec spec;
  spec.argv = {binary_, "--upgrade-check", "3", "-c", config_.file};
  spec.inherit_environment = true;
  spec.env = {{"NOTIFY_SOCKET", ""}, {"WATCHDOG_USEC", ""}};  // a dry run never speaks to systemd
  spec.fds = {{memfd->get(), 3}};
  spec.parent_death_signal = SIGKILL;
  auto child = launcher_.spawn(spec);
  if (!child) return refuse_upgrade("cannot run " + binary_ + ": " + child.error().message());
  Upgrade& u = *upgrade_;
  u.check_pid = child->pid;
  u.out = std::move(child->stdout_fd);
  u.err = std::move(child->stderr_fd);
  u.out_watch = std::make_unique<ev::FdWatch>(loop_, u.out.get(), [&u](bool, bool) { u.read(u.out, u.out_watch); });
  u.err_watch = std::make_unique<ev::FdWatch>(loop_, u.err.get(), [&u](bool, bool) { u.read(u.err, u.err_watch); });
  u.out_watch->set(true, false);
  u.err_watch->set(true, false);
  u.timer = std::make_unique<ev::Timer>(loop_, [this] {
    if (!upgrade_ || upgrade_->check_pid <= 0) return;
    ::kill(upgrade_->check_pid, SIGKILL);
    upgrade_->check_pid = 0;  // reaped as a stray
    refuse_upgrade(binary_ + " --upgrade-check did not answer within " + std::to_string(kCheckTimeout.count() / 1000) + "s");
  });
  u.timer->arm(kCheckTimeout);
  CORRAL_LOG(Info, kTag) << "upgrade: dry run of " << binary_ << " (pid " << u.check_pid << ")";
}

bool Arbiter::on_upgrade_check_exit(pid_t pid, int wait_status) {
  if (!upgrade_ || pid <= 0 || pid != upgrade_->check_pid) return false;
  upgrade_->check_pid = 0;
  // Outside reap(): the execve must not leave children reaped but not yet handled.
  loop_.post([this, wait_status] { on_upgrade_checked(wait_status); });
  return true;
}

void Arbiter::on_upgrade_checked(int wait_status) {
  if (!upgrade_) return;
  upgrade_->read(upgrade_->out, upgrade_->out_watch);
  upgrade_->read(upgrade_->err, upgrade_->err_watch);
  const std::string said = trim(upgrade_->output);
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    return refuse_upgrade("the dry run of " + binary_ + " failed (" + describe_exit(wait_status, false) + ")" +
                          (said.empty() ? std::string() : ": " + said));
  }
  if (auto why = upgrade_refusal(); !why.empty()) return refuse_upgrade(why, 409);
  CORRAL_LOG(Info, kTag) << "upgrade: dry run passed" << (said.empty() ? std::string() : ": " + said);
  exec_upgrade();
}

void Arbiter::refuse_upgrade(const std::string& why, int status) {
  CORRAL_LOG(Error, kTag) << "upgrade refused, the running image keeps serving: " << why;
  std::shared_ptr<Upgrade> u = std::move(upgrade_);
  upgrade_.reset();
  if (u && u->check_pid > 0) ::kill(u->check_pid, SIGKILL);  // reaped as a stray
  if (phase_ == Phase::Running && !drain_timer_.armed()) notify("READY=1");  // a stop said STOPPING=1 meanwhile
  if (!u) return;
  const std::string body = nlohmann::json{{"error", "upgrade refused: " + why}}.dump();
  for (auto id : u->waiters) control_.reply(id, {status, body});
  // Its timer or watch may be the callback running now: freed after it.
  loop_.post([u] {});
}

void Arbiter::exec_upgrade() {
  crash::Operation op("upgrade: exec");
  // Death records waiting for the proxy's answer get their line now (the next image does
  // not hear the answer).
  {
    auto pending = std::move(queries_);
    queries_.clear();
    for (auto& [id, q] : pending) q.done(std::nullopt);
  }
  UpgradeState st = upgrade_state();
  for (auto id : upgrade_->waiters)
    if (int fd = control_.deferred_fd(id); fd >= 0) st.waiter_fds.push_back(fd);
  auto memfd = write_state_memfd(encode_state(st));
  if (!memfd) return refuse_upgrade("cannot write the state: " + memfd.error().message());
  std::vector<int> fds = st.fds();
  fds.push_back(memfd->get());
  if (auto r = set_cloexec(fds, false); !r) {
    (void)set_cloexec(fds, true);
    return refuse_upgrade(r.error().message());
  }
  // Signals that arrive from here on wait, pending, for the new image's handlers (a TERM
  // in between would otherwise kill the process with its default action).
  sigset_t handled, before;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_BLOCK, &handled, &before);
  const std::string fd_arg = std::to_string(memfd->get());
  CORRAL_LOG(Info, kTag) << "upgrade: executing " << binary_ << " (this is " << CORRAL_VERSION << ", pid " << ::getpid()
                         << ")";
  std::vector<std::string> args = {binary_, "-c", config_.file, "--upgrade-state", fd_arg};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execve(binary_.c_str(), argv.data(), environ);
  const Error e = sys_error("execve " + binary_);
  ::sigprocmask(SIG_SETMASK, &before, nullptr);
  (void)set_cloexec(fds, true);
  refuse_upgrade(e.message());
}

UpgradeState Arbiter::upgrade_state() {
  UpgradeState st;
  st.from_version = CORRAL_VERSION;
  st.binary = binary_;
  st.config_file = config_.file;
  st.config_text = config_text_;
  st.overrides = overrides_.state();
  st.config_generation = config_generation_;
  for (auto& l : listeners_) st.listeners.push_back({l.address, l.bound, l.fd.get()});
  if (admin_) {
    st.has_admin = true;
    st.admin = {admin_->address, admin_->bound, admin_->fd.get()};
  }
  st.control_path = control_.path();
  st.control_fd = control_.listen_fd();
  st.control_dev = static_cast<uint64_t>(control_.path_dev());
  st.control_ino = static_cast<uint64_t>(control_.path_ino());
  st.runtime_dev = static_cast<uint64_t>(runtime_dev_);
  st.runtime_ino = static_cast<uint64_t>(runtime_ino_);
  st.socket_gid = static_cast<uint32_t>(socket_gid_);
  st.proxy_uid = static_cast<uint32_t>(proxy_uid_);
  st.draining = drain_since_.has_value();
  if (drain_since_) st.drain_since_ns = to_ns(*drain_since_);
  st.ready_sent = ready_sent_;
  st.unattributed_leftovers.assign(unattributed_leftovers_.begin(), unattributed_leftovers_.end());
  st.ignored_children = strays_.ignored_children();
  st.proxy = proxy_->handover();
  for (auto& o : outgoing_)
    if (o->running()) st.outgoing.push_back(o->handover());
  for (auto& [key, pids] : drained_by_)
    st.drained_by.push_back({std::get<0>(key), std::get<1>(key), std::get<2>(key), pids});
  for (auto& p : pools_) st.pools.push_back(p->handover(false));
  for (auto& p : retired_pools_) st.pools.push_back(p->handover(true));
  return st;
}

Result<void> Arbiter::resume(UpgradeState st) {
  crash::Operation op("upgrade: taking over");
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    CORRAL_LOG(Warn, kTag) << sys_error("prctl(PR_SET_CHILD_SUBREAPER)").message()
                           << ": processes that workers fork away are not cleaned up";
  }
  strays_.restore_ignored(st.ignored_children);
  socket_gid_ = static_cast<gid_t>(st.socket_gid);
  proxy_uid_ = static_cast<uid_t>(st.proxy_uid);
  if (proxy_uid_ != static_cast<uid_t>(-1)) proxy_->set_identity(proxy_uid_, socket_gid_);
  for (auto& l : st.listeners) listeners_.push_back(BoundListener{l.address, l.bound, adopt_fd(l.fd)});
  if (st.has_admin) admin_ = BoundListener{st.admin.address, st.admin.bound, adopt_fd(st.admin.fd)};
  runtime_dev_ = static_cast<dev_t>(st.runtime_dev);
  runtime_ino_ = static_cast<ino_t>(st.runtime_ino);
  if (st.control_fd >= 0) {
    control_.adopt(st.control_path, adopt_fd(st.control_fd), static_cast<dev_t>(st.control_dev),
                   static_cast<ino_t>(st.control_ino));
  } else if (auto r = control_.listen(control_socket_path(config_.supervisor.runtime_dir)); !r) {
    CORRAL_LOG(Error, kTag) << "control.sock: " << r.error().message();
  }
  overrides_.restore(st.overrides);
  config_generation_ = st.config_generation;
  // Every pool of the previous image; a running app is the pool made from the config text.
  std::vector<std::string> adopted;
  for (auto& ps : st.pools) {
    AppPool* pool = nullptr;
    if (!ps.retired) {
      for (auto& p : pools_)
        if (p->app().name == ps.app) pool = p.get();
    }
    if (!pool) {
      // Removed by a reload and still draining (or, impossibly, missing from the text):
      // its config from the state.
      conf::App app;
      app.name = ps.app;
      if (auto it = ps.configs.find(ps.app_generation); it != ps.configs.end()) {
        if (auto c = conf::from_snapshot(it->second); c && c->apps.size() == 1) app = c->apps.front();
      }
      retired_pools_.push_back(std::make_unique<AppPool>(loop_, launcher_, clock_, app, config_.supervisor.runtime_dir,
                                                         [this] { send_pool(); }));
      pool = retired_pools_.back().get();
      wire(*pool);
      if (!ps.retired) {
        CORRAL_LOG(Error, kTag) << "app " << ps.app << " ran but is not in the config text; its workers drain";
        PoolState rest = ps;
        rest.retired = true;
        pool->set_socket_group(socket_gid_);
        pool->adopt(rest);
        pool->retire_all("upgrade");
        continue;
      }
    }
    pool->set_socket_group(socket_gid_);
    pool->adopt(ps);
    adopted.push_back(ps.app);
  }
  for (auto& p : pools_) {
    if (std::find(adopted.begin(), adopted.end(), p->app().name) != adopted.end()) continue;
    p->set_socket_group(socket_gid_);
    if (auto r = p->start(); !r) {
      CORRAL_LOG(Error, kTag) << r.error().message();
    }
  }
  size_t workers = 0;
  for (auto& p : pools_) workers += p->slots().size();
  if (st.proxy.pid > 0 && st.proxy.channel_fd >= 0) {
    proxy_->adopt(st.proxy, adopt_fd(st.proxy.channel_fd));
  } else if (auto r = proxy_->start(); !r) {
    CORRAL_LOG(Error, kTag) << "the proxy did not start; retrying with back-off";
  }
  // Proxies on their way out keep their channels (EOF would make them drop what they finish).
  for (auto& o : st.outgoing) {
    auto p = std::make_unique<ProxyProcess>(loop_, launcher_, clock_, proxy_->binary(), ProxyProcess::Hooks{});
    p->set_hooks(proxy_hooks(p.get()));
    p->set_identity(proxy_->uid(), proxy_->gid());
    p->set_timeout(proxy_->timeout());
    p->set_restart(false, "it was retiring");
    p->adopt(o, adopt_fd(o.channel_fd));
    outgoing_.push_back(std::move(p));
  }
  for (auto& d : st.drained_by) drained_by_[{d.app, d.slot, d.generation}] = d.proxies;
  if (st.draining) drain_since_ = from_ns(st.drain_since_ns);
  ready_sent_ = st.ready_sent;
  unattributed_leftovers_.assign(st.unattributed_leftovers.begin(), st.unattributed_leftovers.end());
  start_upkeep_and_watchdog(true);  // the last ping was the previous image's
  if (!ready_sent_) ready_fallback_.arm(kReadyFallback);
  // The previous image blocked these before execve; the handlers are in place now, and
  // whatever arrived meanwhile is delivered.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU}) sigaddset(&handled, sig);
  ::sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  std::vector<uint64_t> waiters;
  for (int fd : st.waiter_fds) waiters.push_back(control_.adopt_deferred(adopt_fd(fd)));
  reap();  // workers (or the proxy) that died while no image listened: recorded, restarted
  send_pool();
  CORRAL_LOG(Info, kTag) << "upgraded in place from " << st.from_version << " to " << CORRAL_VERSION << " (pid "
                         << ::getpid() << "; " << workers << " workers and proxy pid " << proxy_->pid() << " kept)";
  int rolled = 0;
  for (auto& p : pools_) rolled += p->roll_changed_binaries();
  nlohmann::json body{{"status", "upgraded"}, {"from", st.from_version}, {"to", CORRAL_VERSION},
                      {"pid", ::getpid()}, {"rolled_workers", rolled}};
  // Then the proxy, make before break, with the corral-proxy on disk now; the upgrade is
  // answered (and READY=1 sent) once that is done too.
  replace_proxy([this, body, waiters](const ProxySwapOutcome& o) mutable {
    body["proxy_pid"] = proxy_->pid();
    body["proxy"] = {{"replaced", o.ok()}, {"old_pid", o.old_pid}, {"new_pid", o.new_pid},
                     {"handed_over", o.handed_over}, {"kept", o.kept}};
    if (!o.ok()) {
      body["proxy"]["error"] = o.error;
      CORRAL_LOG(Warn, kTag) << "upgrade: the proxy was not replaced (" << o.error << "); pid " << proxy_->pid()
                             << " serves on";
    }
    if (ready_sent_) notify("READY=1\nMAINPID=" + std::to_string(::getpid()));
    for (auto id : waiters) control_.reply(id, {200, body.dump()});
  });
  return {};
}

}  // namespace corral::supervisor
