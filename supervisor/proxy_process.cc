#include "supervisor/proxy_process.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <variant>

#include "common/base/log.h"
#include "common/base/units.h"
#include "supervisor/exit_status.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "proxy";
constexpr int kControlFd = 3;
constexpr std::chrono::milliseconds kHeartbeatCheck{1'000};
// The proxy reports every second: this much silence is worth one warning.
constexpr std::chrono::milliseconds kSilenceWarning{3'000};

// "3.2s", "2m05s" (format_uptime).
std::string format_seconds(std::chrono::steady_clock::duration d) {
  return format_uptime(std::chrono::duration_cast<std::chrono::milliseconds>(d));
}
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
      }),
      heartbeat_timer_(loop, [this] { check_heartbeat(); }),
      retire_timer_(loop, [this] {
        if (pid_ <= 0) return;
        CORRAL_LOG(Warn, kTag) << "retiring proxy pid " << pid_ << " is still there after its graceful_timeout; killing it";
        kill_now();
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
  heard_at_ = std::chrono::steady_clock::now();
  checked_at_ = {};
  silence_warned_ = false;
  unresponsive_.clear();
  heartbeat_timer_.arm(kHeartbeatCheck);
  open_channel(std::move(ours));
  CORRAL_LOG(Info, kTag) << "started " << binary_ << " pid " << pid_;
  if (hooks_.on_spawned) hooks_.on_spawned();
  return {};
}

void ProxyProcess::open_channel(UniqueFd ours) {
  channel_ = std::make_unique<control::Channel>(
      loop_, std::move(ours), [this](control::Message&& m, std::vector<UniqueFd>&& fds) { on_message(std::move(m), std::move(fds)); },
      [this](const Error& e) {
        // The process's death (SIGCHLD) drives the restart; this only explains it.
        if (pid_ > 0 && !stopping_ && !retiring_) {
          CORRAL_LOG(Warn, kTag) << "control channel closed: " << e.message();
        }
      });
}

ProxyState ProxyProcess::handover() const {
  ProxyState st;
  st.pid = pid_;
  st.channel_fd = channel_ && !channel_->closed() ? channel_->fd() : -1;
  st.ready = ready_;
  st.starts = starts_;
  st.restarts = restarts_;
  st.last_exit = last_exit_;
  st.backoff_started_ns = to_ns(backoff_.started());
  st.backoff_failures = backoff_.failures();
  st.retiring = retiring_;
  st.retire_kill_at_ns = retiring_ && retire_timer_.armed() ? to_ns(retire_kill_at_) : 0;
  return st;
}

void ProxyProcess::adopt(const ProxyState& st, UniqueFd channel) {
  pid_ = st.pid;
  ready_ = st.ready;
  starts_ = st.starts;
  restarts_ = st.restarts;
  last_exit_ = st.last_exit;
  backoff_.restore(from_ns(st.backoff_started_ns), st.backoff_failures);
  kill_sent_ = false;
  heard_at_ = std::chrono::steady_clock::now();
  checked_at_ = {};
  silence_warned_ = false;
  unresponsive_.clear();
  if (st.retiring) {
    retiring_ = true;
    restart_ = false;
    retired_at_ = std::chrono::steady_clock::now();
    if (st.retire_kill_at_ns != 0) {
      retire_kill_at_ = from_ns(st.retire_kill_at_ns);
      retire_timer_.arm(std::max(std::chrono::milliseconds{0},
                                 std::chrono::duration_cast<std::chrono::milliseconds>(retire_kill_at_ - retired_at_)));
    }
  }
  if (!channel) return;  // a failed replacement being killed: only its exit is awaited
  heartbeat_timer_.arm(kHeartbeatCheck);
  open_channel(std::move(channel));
}

bool ProxyProcess::send(const control::Message& m, const std::vector<int>& fds) {
  if (!channel_ || channel_->closed()) return false;
  if (channel_->send(m, fds)) return true;
  // Refused: the proxy has not read for so long that the bounded queue is full. Dropping
  // messages would leave it with a stale pool; a new proxy gets the whole state.
  if (pid_ > 0 && unresponsive_.empty() && !channel_->closed()) {
    CORRAL_LOG(Error, kTag) << "proxy pid " << pid_ << " does not read its control channel ("
                            << channel_->queued() << " messages, " << (channel_->queued_bytes() >> 10)
                            << " KiB waiting); killing it, it restarts (workers keep running)";
    kill_unresponsive("control channel full");
  }
  return false;
}

void ProxyProcess::check_heartbeat() {
  if (pid_ <= 0 || stopping_ || !unresponsive_.empty()) return;
  heartbeat_timer_.arm(kHeartbeatCheck);
  const auto now = std::chrono::steady_clock::now();
  // Far later than planned: the supervisor itself was stopped or starved, and the proxy's
  // reports may wait unread in the socket. Its silence is not known; count afresh.
  const bool we_were_away = checked_at_ != std::chrono::steady_clock::time_point{} && now - checked_at_ > 3 * kHeartbeatCheck;
  checked_at_ = now;
  if (we_were_away) {
    heard_at_ = now;
    return;
  }
  const auto silent = now - heard_at_;
  const size_t waiting = channel_ ? channel_->queued() : 0;
  if (timeout_.count() > 0 && silent >= timeout_) {
    CORRAL_LOG(Error, kTag) << "proxy pid " << pid_ << " has been silent on its control channel for "
                            << format_seconds(silent) << " (proxy_timeout " << format_duration(timeout_)
                            << "; stopped or stuck, " << waiting << " messages waiting for it); killing it"
                            << (retiring_ ? " (it was retiring: the proxy that replaced it serves on)"
                                          : ", it restarts (workers keep running)");
    kill_unresponsive("silent for " + format_seconds(silent));
    return;
  }
  const auto warn_after = timeout_.count() > 0 ? std::min<std::chrono::steady_clock::duration>(kSilenceWarning, timeout_ / 2)
                                               : std::chrono::steady_clock::duration(kSilenceWarning);
  if (!silence_warned_ && silent >= warn_after) {
    silence_warned_ = true;
    CORRAL_LOG(Warn, kTag) << "proxy pid " << pid_ << " has not reported for " << format_seconds(silent) << " ("
                           << waiting << " messages waiting for it)"
                           << (timeout_.count() == 0 ? std::string("; proxy_timeout = 0: it is left alone")
                               : retiring_             ? "; it is killed if silent for " + format_duration(timeout_)
                                                       : "; it is restarted if silent for " + format_duration(timeout_));
  }
}

void ProxyProcess::kill_unresponsive(const std::string& why) {
  unresponsive_ = why;
  heartbeat_timer_.cancel();
  kill_now();
}

void ProxyProcess::on_message(control::Message&& m, std::vector<UniqueFd>&& fds) {
  // Privilege rule: accept only what a proxy may send; it may be compromised by traffic.
  // The one message that carries fds is a retiring proxy's hand-over (checked by the hook).
  if (auto* h = std::get_if<control::HandoffConnections>(&m); h && retiring_ && hooks_.on_handoff) {
    heard_at_ = std::chrono::steady_clock::now();
    hooks_.on_handoff(std::move(*h), std::move(fds));
    return;
  }
  if (!fds.empty()) {
    CORRAL_LOG(Warn, kTag) << "ignoring " << fds.size() << " fd(s) sent with " << control::type_name(m);
    fds.clear();
  }
  const auto now = std::chrono::steady_clock::now();
  if (silence_warned_) {
    CORRAL_LOG(Info, kTag) << "proxy pid " << pid_ << " reports again after " << format_seconds(now - heard_at_)
                           << " of silence";
    silence_warned_ = false;
  }
  heard_at_ = now;
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
  heartbeat_timer_.cancel();
  ::kill(-pid, SIGKILL);  // nothing of the proxy's group may linger
  const bool oom = WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL && !kill_sent_ &&
                   oom_evidence().consume();
  const std::string how = describe_exit(wait_status, oom);
  const std::string reason = !unresponsive_.empty() ? "unresponsive" : stopping_ ? "stop"
                             : WIFSIGNALED(wait_status)                     ? (oom ? "oom" : "signal")
                                                                            : "exit";
  last_exit_ = {{"time_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count()},
                {"pid", pid}, {"reason", reason}, {"exit", how},
                {"uptime_seconds", std::chrono::duration<double>(uptime).count()}};
  if (!unresponsive_.empty()) last_exit_["note"] = unresponsive_;
  if (retiring_) {
    last_exit_["reason"] = "retired";
    CORRAL_LOG(Info, kTag) << "retired proxy pid " << pid << " exited: " << how << " "
                           << format_seconds(std::chrono::steady_clock::now() - retired_at_)
                           << " after its successor took over (not a crash; not restarted)";
    return true;
  }
  if (stopping_) {
    CORRAL_LOG(Info, kTag) << "pid " << pid << " exited: " << how << " after " << format_uptime(uptime);
    return true;
  }
  if (!restart_) {
    CORRAL_LOG(Warn, kTag) << "proxy pid " << pid << " " << how << " after " << format_uptime(uptime)
                           << "; not restarted (" << (no_restart_why_.empty() ? "replaced" : no_restart_why_) << ")";
    unresponsive_.clear();
    return true;
  }
  if (!unresponsive_.empty()) {
    // The kill was logged with its reason; this is the expected end of it.
    CORRAL_LOG(Warn, kTag) << "unresponsive proxy pid " << pid << " " << how << " after " << format_uptime(uptime)
                           << "; restarting it";
    unresponsive_.clear();
  } else {
    CORRAL_LOG(Error, kTag) << "PROXY DIED: pid " << pid << " " << how << " after " << format_uptime(uptime)
                            << "; restarting it";
  }
  schedule_restart();
  return true;
}

void ProxyProcess::schedule_restart() {
  if (stopping_ || !restart_ || retiring_) return;
  auto delay = backoff_.on_exit();
  if (delay.count() > 0) {
    CORRAL_LOG(Warn, kTag) << "restarting the proxy in " << delay.count() << "ms";
  }
  restart_timer_.arm(delay);
}

void ProxyProcess::retire(std::chrono::milliseconds kill_after) {
  if (retiring_) return;
  retiring_ = true;
  retired_at_ = std::chrono::steady_clock::now();
  restart_timer_.cancel();
  if (pid_ <= 0) return;
  send(control::Retire{});
  retire_timer_.arm(kill_after);
  retire_kill_at_ = retired_at_ + kill_after;
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
  nlohmann::json st{{"pid", pid_}, {"restarts", restarts_}, {"ready", ready_}, {"last_exit", last_exit_},
                    {"retiring", retiring_},
                    {"requests", stats_.requests}, {"in_flight", stats_.in_flight},
                    {"queued", stats_.queued}, {"connections", stats_.connections}};
  // How old the figures are (the workers' in_flight and requests come with them); null
  // before the first report.
  if (stats_at_ != std::chrono::steady_clock::time_point{})
    st["stats_age_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stats_at_).count();
  else
    st["stats_age_ms"] = nullptr;
  // How long the running proxy has been silent on its channel (its heartbeat is 1 s).
  if (pid_ > 0)
    st["silent_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - heard_at_).count();
  else
    st["silent_ms"] = nullptr;
  return st;
}

}  // namespace corral::supervisor
