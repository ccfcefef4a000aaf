#include "supervisor/proxy_process.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <variant>

#include "common/base/log.h"
#include "supervisor/exit_status.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "proxy";
constexpr int kControlFd = 3;
}  // namespace

ProxyProcess::ProxyProcess(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, std::string binary,
                           Hooks hooks)
    : loop_(loop),
      launcher_(launcher),
      binary_(std::move(binary)),
      hooks_(std::move(hooks)),
      backoff_(clock),
      restart_timer_(loop, [this] {
        auto r = start();
        (void)r;  // start() logs and reschedules on failure
      }) {}

ProxyProcess::~ProxyProcess() = default;

std::string ProxyProcess::default_binary() {
  if (const char* env = std::getenv("CORRAL_PROXY_BIN"); env && *env) return env;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "corral-proxy";
  std::string self(buf, static_cast<size_t>(n));
  auto slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/corral-proxy";
}

Result<void> ProxyProcess::start() {
  if (stopping_ || pid_ > 0) return {};
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    auto e = sys_error("socketpair for the proxy control channel");
    CORRAL_LOG(Error, kTag) << e.message();
    schedule_restart();
    return fail(e);
  }
  UniqueFd ours(sv[0]), theirs(sv[1]);
  workers::LaunchSpec spec;
  spec.argv = {binary_, "--control-fd", std::to_string(kControlFd)};
  spec.inherit_environment = true;
  spec.capture_output = false;  // its log lines go straight to our stderr
  spec.fds = {{theirs.get(), kControlFd}};
  spec.parent_death_signal = SIGTERM;
  spec.uid = uid_;
  spec.gid = gid_;
  ++starts_;
  if (starts_ > 1) ++restarts_;
  backoff_.on_start();
  auto child = launcher_.spawn(spec);
  if (!child) {
    CORRAL_LOG(Error, kTag) << "cannot start " << binary_ << ": " << child.error().message();
    schedule_restart();
    return fail(child.error());
  }
  pid_ = child->pid;
  ready_ = false;
  kill_sent_ = false;
  channel_ = std::make_unique<control::Channel>(
      loop_, std::move(ours), [this](control::Message&& m, std::vector<UniqueFd>&& fds) { on_message(std::move(m), std::move(fds)); },
      [this](const Error& e) {
        // The process's death (SIGCHLD) drives the restart; this only explains it.
        if (pid_ > 0 && !stopping_) {
          CORRAL_LOG(Warn, kTag) << "control channel closed: " << e.message();
        }
      });
  CORRAL_LOG(Info, kTag) << "started " << binary_ << " pid " << pid_;
  if (hooks_.on_spawned) hooks_.on_spawned();
  return {};
}

bool ProxyProcess::send(const control::Message& m, const std::vector<int>& fds) {
  if (!channel_ || channel_->closed()) return false;
  return channel_->send(m, fds);
}

void ProxyProcess::on_message(control::Message&& m, std::vector<UniqueFd>&& fds) {
  // Privilege rule: accept only what a proxy may send; it may be compromised by traffic.
  if (!fds.empty()) {
    CORRAL_LOG(Warn, kTag) << "ignoring " << fds.size() << " fd(s) sent with " << control::type_name(m);
    fds.clear();
  }
  if (auto* ready = std::get_if<control::ProxyReady>(&m)) {
    ready_ = true;
    backoff_.reset();
    CORRAL_LOG(Info, kTag) << "ready (config generation " << ready->config_generation << ")";
    if (hooks_.on_ready) hooks_.on_ready(*ready);
  } else if (auto* hung = std::get_if<control::WorkerHung>(&m)) {
    if (hooks_.on_worker_hung) hooks_.on_worker_hung(*hung);
  } else if (auto* stats = std::get_if<control::ProxyStats>(&m)) {
    stats_ = *stats;
    stats_at_ = std::chrono::steady_clock::now();
    if (hooks_.on_stats) hooks_.on_stats(stats_);
    stats_.slots.clear();  // per-slot numbers live in the pools
  } else if (auto* ev = std::get_if<control::SlotEvent>(&m)) {
    if (hooks_.on_slot_event) hooks_.on_slot_event(*ev);
  } else if (auto* reqs = std::get_if<control::SlotRequests>(&m)) {
    if (hooks_.on_slot_requests) hooks_.on_slot_requests(*reqs);
  } else {
    CORRAL_LOG(Warn, kTag) << "ignoring unexpected message from the proxy: " << control::type_name(m);
  }
}

bool ProxyProcess::on_exit(pid_t pid, int wait_status) {
  if (pid <= 0 || pid != pid_) return false;
  const auto uptime = backoff_.uptime();
  pid_ = 0;
  ready_ = false;
  channel_.reset();
  ::kill(-pid, SIGKILL);  // nothing of the proxy's group may linger
  const bool oom = WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL && !kill_sent_ &&
                   oom_evidence().consume();
  if (stopping_) {
    CORRAL_LOG(Info, kTag) << "pid " << pid << " exited: " << describe_exit(wait_status, oom) << " after "
                           << format_uptime(uptime);
    return true;
  }
  CORRAL_LOG(Error, kTag) << "PROXY DIED: pid " << pid << " " << describe_exit(wait_status, oom) << " after "
                          << format_uptime(uptime) << "; restarting it";
  schedule_restart();
  return true;
}

void ProxyProcess::schedule_restart() {
  if (stopping_) return;
  auto delay = backoff_.on_exit();
  if (delay.count() > 0) {
    CORRAL_LOG(Warn, kTag) << "restarting the proxy in " << delay.count() << "ms";
  }
  restart_timer_.arm(delay);
}

void ProxyProcess::stop(int sig) {
  stopping_ = true;
  restart_timer_.cancel();
  if (pid_ > 0) ::kill(pid_, sig);
}

void ProxyProcess::kill_now() {
  if (pid_ <= 0) return;
  kill_sent_ = true;
  ::kill(-pid_, SIGKILL);
}

nlohmann::json ProxyProcess::status() const {
  nlohmann::json st{{"pid", pid_}, {"restarts", restarts_}, {"ready", ready_},
                    {"requests", stats_.requests}, {"in_flight", stats_.in_flight},
                    {"queued", stats_.queued}, {"connections", stats_.connections}};
  // How old the figures are (the workers' in_flight and requests come with them); null
  // before the first report.
  if (stats_at_ != std::chrono::steady_clock::time_point{})
    st["stats_age_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stats_at_).count();
  else
    st["stats_age_ms"] = nullptr;
  return st;
}

}  // namespace corral::supervisor
