#include "supervisor/arbiter.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/base/log.h"
#include "conf/snapshot.h"
#include "supervisor/sd_notify.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
using std::chrono::milliseconds;
constexpr milliseconds kProxyKillGrace{5'000};  // after graceful_timeout
constexpr milliseconds kFastKillAfter{1'000};
// READY=1 waits for workers that bind their own socket; a worker that never does must not
// keep the service "starting" forever.
constexpr milliseconds kReadyFallback{30'000};

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
      control_(loop, [this](const ControlApi::Request& r) { return on_control(r); }),
      stop_timer_(loop, [this] {
        if (phase_ != Phase::Running && proxy_->running()) {
          CORRAL_LOG(Warn, kTag) << "proxy did not exit in time; killing it";
          proxy_->kill_now();
        }
      }),
      ready_fallback_(loop, [this] {
        if (ready_sent_ || !proxy_->ready()) return;
        CORRAL_LOG(Warn, kTag) << "some workers are still starting; reporting ready anyway";
        ready_sent_ = true;
        notify("READY=1");
      }) {
  for (auto& app : config_.apps)
    pools_.push_back(std::make_unique<AppPool>(loop_, launcher_, clock, app, config_.supervisor.runtime_dir,
                                               [this] { send_pool(); }));
  ProxyProcess::Hooks hooks;
  hooks.on_spawned = [this] { on_proxy_spawned(); };
  hooks.on_ready = [this](const control::ProxyReady&) { on_proxy_ready(); };
  hooks.on_worker_hung = [this](const control::WorkerHung& h) { on_worker_hung(h); };
  std::string binary = options.proxy_binary.empty() ? ProxyProcess::default_binary() : options.proxy_binary;
  proxy_ = std::make_unique<ProxyProcess>(loop_, launcher_, clock, std::move(binary), std::move(hooks));

  auto on = [this](int sig, void (Arbiter::*handler)()) {
    signals_.push_back(std::make_unique<ev::SignalWatch>(loop_, sig, [this, handler] { (this->*handler)(); }));
  };
  on(SIGTERM, &Arbiter::handle_term);
  on(SIGINT, &Arbiter::handle_int);
  on(SIGQUIT, &Arbiter::handle_quit);
  on(SIGHUP, &Arbiter::handle_hup);
  on(SIGUSR1, &Arbiter::handle_usr1);
  on(SIGCHLD, &Arbiter::handle_chld);
}

Arbiter::~Arbiter() {
  // Exit paths that skip the stop sequence still leave no child behind.
  if (proxy_) proxy_->kill_now();
  for (auto& p : pools_) p->stop(SIGKILL, milliseconds{0});
}

Result<void> Arbiter::start() {
  const auto& dir = config_.supervisor.runtime_dir;
  if (auto r = make_dirs(dir, 0755); !r) return r;
  auto bound = bind_listeners(config_.listeners);
  if (!bound) return fail(bound.error());
  listeners_ = std::move(*bound);
  for (auto& l : listeners_) CORRAL_LOG(Info, kTag) << "listening on " << l.bound;
  for (auto& p : pools_) {
    if (auto r = p->open_sockets(); !r) {
      remove_sockets();
      return r;
    }
  }
  if (auto r = control_.listen(control_socket_path(dir)); !r) {
    remove_sockets();
    return r;
  }
  for (auto& p : pools_) p->start();
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

void Arbiter::handle_term() {
  CORRAL_LOG(Info, kTag) << "SIGTERM: graceful stop";
  begin_stop(true);
}

void Arbiter::handle_int() {
  CORRAL_LOG(Info, kTag) << "SIGINT: fast stop";
  begin_stop(false);
}

void Arbiter::handle_quit() {
  CORRAL_LOG(Info, kTag) << "SIGQUIT: fast stop";
  begin_stop(false);
}

void Arbiter::handle_hup() { CORRAL_LOG(Warn, kTag) << "SIGHUP: reload is not supported yet; ignoring"; }

void Arbiter::handle_usr1() { CORRAL_LOG(Info, kTag) << "SIGUSR1: logging to stderr, nothing to reopen"; }

void Arbiter::handle_chld() { reap(); }

// ---- children ----

void Arbiter::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;
    if (proxy_->on_exit(pid, status)) {
      if (phase_ == Phase::StoppingProxy) stop_workers();
      continue;
    }
    bool ours = false;
    for (auto& p : pools_) ours = ours || p->on_exit(pid, status);
    if (!ours) {
      CORRAL_LOG(Debug, kTag) << "reaped unknown child " << pid;
    }
  }
  check_stopped();
}

// ---- proxy ----

void Arbiter::on_proxy_spawned() {
  std::vector<int> fds;
  control::SetListeners set_listeners;
  for (auto& l : listeners_) {
    fds.push_back(l.fd.get());
    set_listeners.addresses.push_back(l.bound);
  }
  proxy_->send(set_listeners, fds);
  proxy_->send(control::SetConfig{config_generation_, conf::to_snapshot(config_)});
  send_pool();
}

void Arbiter::on_proxy_ready() { maybe_notify_ready(); }

void Arbiter::on_worker_hung(const control::WorkerHung& h) {
  for (auto& p : pools_)
    if (p->app().name == h.app) {
      // A hung worker gets at most graceful_timeout (and never more than 5 s) to go.
      p->on_hung(h.slot, h.generation, h.request_id, std::min(kWorkerKillAfter, config_.supervisor.graceful_timeout));
      return;
    }
  CORRAL_LOG(Warn, kTag) << "proxy reported a hung worker of unknown app '" << h.app << "'";
}

void Arbiter::send_pool() {
  control::SetPool pool;
  for (auto& p : pools_) p->append_slots(pool.slots);
  proxy_->send(pool);
  maybe_notify_ready();
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
  if (phase_ != Phase::Running) {
    if (graceful || !graceful_) return;
    // A fast stop overrides a graceful one in progress.
    graceful_ = false;
    proxy_->stop(SIGINT);
    if (phase_ == Phase::StoppingProxy) stop_timer_.arm(kFastKillAfter);
    if (phase_ == Phase::StoppingWorkers) stop_workers();
    return;
  }
  graceful_ = graceful;
  notify("STOPPING=1");
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
  for (auto& p : pools_) p->stop(SIGTERM, graceful_ ? kWorkerKillAfter : kFastKillAfter);
  check_stopped();
}

void Arbiter::check_stopped() {
  if (phase_ != Phase::StoppingWorkers || proxy_->running()) return;
  for (auto& p : pools_)
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
  for (auto& p : pools_) p->remove_sockets();
}

// ---- control API ----

ControlApi::Response Arbiter::on_control(const ControlApi::Request& r) {
  if (r.path == "/status") {
    if (r.method != "GET") return {405, R"({"error":"use GET"})"};
    return {200, status().dump()};
  }
  if (r.path == "/stop") {
    if (r.method != "POST") return {405, R"({"error":"use POST"})"};
    CORRAL_LOG(Info, kTag) << "stop requested over the control API";
    // After this response is on its way: the handler runs inside the connection's callback.
    loop_.post([this] { begin_stop(true); });
    return {202, R"({"status":"stopping"})"};
  }
  return {404, R"({"error":"not found"})"};
}

nlohmann::json Arbiter::status() const {
  nlohmann::json listeners = nlohmann::json::array();
  for (auto& l : listeners_) listeners.push_back({{"address", l.address}, {"bound", l.bound}});
  nlohmann::json apps = nlohmann::json::array();
  for (auto& p : pools_) apps.push_back(p->status());
  const char* state = phase_ == Phase::Running ? (ready_sent_ ? "running" : "starting") : "stopping";
  return {{"pid", ::getpid()}, {"version", CORRAL_VERSION}, {"config", config_.file}, {"state", state},
          {"listeners", listeners}, {"proxy", proxy_->status()}, {"apps", apps}};
}

}  // namespace corral::supervisor
