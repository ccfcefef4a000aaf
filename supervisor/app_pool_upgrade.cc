// AppPool across an upgrade in place of the supervisor: what the old image hands over
// (handover) and how the new one takes the running workers back (adopt), timers included;
// then corral-worker processes whose binary was replaced are rolled (roll_changed_binaries).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "common/base/log.h"
#include "conf/snapshot.h"
#include "supervisor/app_kind.h"
#include "supervisor/app_pool.h"
#include "supervisor/child_output.h"
#include "supervisor/listeners.h"
#include "supervisor/readiness_probe.h"
#include "workers/options.h"

namespace corral::supervisor {
namespace {
using std::chrono::milliseconds;

std::string output_tag(const WorkerSlot& s) { return "app=" + s.app() + " worker=" + std::to_string(s.index()); }

std::optional<WorkerSlot::State> state_named(const std::string& name) {
  for (auto st : {WorkerSlot::State::Stopped, WorkerSlot::State::Starting, WorkerSlot::State::Ready,
                  WorkerSlot::State::BackingOff, WorkerSlot::State::Draining, WorkerSlot::State::Stopping})
    if (WorkerSlot::state_name(st) == name) return st;
  return std::nullopt;
}

// What is left of a deadline handed over (never negative); nullopt when none was armed.
std::optional<milliseconds> left_until(int64_t deadline_ns) {
  if (deadline_ns == 0) return std::nullopt;
  const auto left = from_ns(deadline_ns) - std::chrono::steady_clock::now();
  return std::max(milliseconds{0}, std::chrono::duration_cast<milliseconds>(left));
}

// The adopted fd must not leak into the processes this image starts.
UniqueFd adopt_fd(int fd) {
  if (fd < 0) return {};
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) (void)::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return UniqueFd(fd);
}

std::string app_snapshot(const conf::App& app) {
  conf::Config c;
  c.apps = {app};
  return conf::to_snapshot(c);
}
}  // namespace

PoolState AppPool::handover(bool retired) {
  PoolState st;
  st.app = app_->name;
  st.retired = retired;
  st.app_generation = app_generation_;
  st.desired = desired_;
  st.next_index = next_index_;
  st.self_binds = self_binds_;
  st.deaths = deaths_;
  st.death_log = deaths_log_->state();
  st.totals = totals_.state();
  st.configs[app_generation_] = app_snapshot(*app_);
  for (auto& s : slots_) {
    if (!st.configs.count(s->app_generation())) st.configs[s->app_generation()] = app_snapshot(s->config());
    // Nothing half-read stays behind in this image: the next one reads on from here.
    if (s->out) s->out->flush();
    if (s->err) s->err->flush();
    SlotState x;
    x.index = s->index();
    x.app_generation = s->app_generation();
    x.state = std::string(WorkerSlot::state_name(s->state()));
    x.pid = s->pid;
    x.generation = s->generation;
    x.restarts = s->restarts;
    x.self_binds = s->self_binds;
    x.kill_sent = s->kill_sent;
    x.term_sent = s->term_sent;
    x.retire_reason = s->retire_reason;
    x.stop_reason = s->stop_reason;
    x.max_requests = s->max_requests;
    x.last_probe = s->last_probe;
    x.in_flight = s->in_flight;
    x.requests = s->requests;
    x.started_at_ns = to_ns(s->started_at);
    x.cpu_wait_seen = s->cpu_wait_seen;
    x.listen_fd = s->listen_fd ? s->listen_fd.get() : -1;
    x.listen_inode = s->listen_inode;
    x.path_inode = s->path_inode;
    x.path_dev = s->path_dev;
    x.waiting_checks = s->waiting_checks;
    x.backoff_started_ns = to_ns(s->backoff.started());
    x.backoff_failures = s->backoff.failures();
    x.stdout_fd = s->out ? s->out->fd() : -1;
    x.stderr_fd = s->err ? s->err->fd() : -1;
    x.restart_at_ns = s->restart_timer->armed() ? to_ns(s->restart_at) : 0;
    x.drain_deadline_ns = s->drain_timer->armed() ? to_ns(s->drain_deadline) : 0;
    x.kill_at_ns = s->kill_timer->armed() ? to_ns(s->kill_at) : 0;
    x.binary = s->binary;
    st.slots.push_back(std::move(x));
  }
  return st;
}

void AppPool::adopt(const PoolState& st) {
  self_binds_ = st.self_binds;
  if (auto id = resolve_identity(app_->user, app_->group)) identity_ = *id;
  app_generation_ = st.app_generation;
  desired_ = std::max(1, st.desired);
  if (st.retired) desired_ = 0;
  next_index_ = st.next_index;
  deaths_ = st.deaths;
  deaths_log_->restore(st.death_log);
  totals_.restore(st.totals);
  // The app's config of each generation still running: the running generation is app_
  // (from the config text); older ones from their snapshots, else (a snapshot this binary
  // cannot read) the running one, which only matters for timeouts of workers on their way out.
  std::map<uint64_t, std::shared_ptr<const conf::App>> configs;
  configs[app_generation_] = app_;
  for (auto& [generation, bytes] : st.configs) {
    if (configs.count(generation)) continue;
    auto c = conf::from_snapshot(bytes);
    if (c && c->apps.size() == 1) configs[generation] = std::make_shared<const conf::App>(c->apps.front());
  }
  for (auto& x : st.slots) {
    auto cfg = configs.count(x.app_generation) ? configs[x.app_generation] : app_;
    auto s = std::make_unique<WorkerSlot>(clock_, cfg, x.app_generation, x.index,
                                          slot_socket_path(runtime_dir_, app_->name, x.index));
    s->pid = x.pid;
    s->generation = x.generation;
    s->restarts = x.restarts;
    s->self_binds = x.self_binds;
    s->kill_sent = x.kill_sent;
    s->term_sent = x.term_sent;
    s->retire_reason = x.retire_reason;
    s->stop_reason = x.stop_reason;
    s->max_requests = x.max_requests;
    s->last_probe = x.last_probe;
    s->in_flight = x.in_flight;
    s->requests = x.requests;
    s->started_at = from_ns(x.started_at_ns);
    s->cpu_wait_seen = x.cpu_wait_seen;
    s->listen_fd = adopt_fd(x.listen_fd);
    s->listen_inode = static_cast<ino_t>(x.listen_inode);
    s->path_inode = static_cast<ino_t>(x.path_inode);
    s->path_dev = static_cast<dev_t>(x.path_dev);
    s->waiting_checks = x.waiting_checks;
    s->backoff.restore(from_ns(x.backoff_started_ns), x.backoff_failures);
    s->binary = x.binary;
    const auto state = state_named(x.state).value_or(x.pid > 0 ? WorkerSlot::State::Ready : WorkerSlot::State::Stopped);
    s->restore_state(state);
    WorkerSlot* w = install(std::move(s));
    if (UniqueFd fd = adopt_fd(x.stdout_fd)) w->out = std::make_unique<ChildOutput>(loop_, std::move(fd), output_tag(*w), log::Level::Info);
    if (UniqueFd fd = adopt_fd(x.stderr_fd)) w->err = std::make_unique<ChildOutput>(loop_, std::move(fd), output_tag(*w), log::Level::Info);
    // The timers go on where the previous image left them.
    if (auto left = left_until(x.restart_at_ns); left && state == WorkerSlot::State::BackingOff) {
      w->restart_at = from_ns(x.restart_at_ns);
      w->restart_timer->arm(*left);
    }
    if (auto left = left_until(x.drain_deadline_ns); left && state == WorkerSlot::State::Draining) {
      w->drain_deadline = from_ns(x.drain_deadline_ns);
      w->drain_timer->arm(*left);
    }
    if (auto left = left_until(x.kill_at_ns); left && w->pid > 0 && w->term_sent) {
      w->kill_at = from_ns(x.kill_at_ns);
      w->kill_timer->arm(*left);
    }
    if (state == WorkerSlot::State::Starting && w->pid > 0) {
      const auto booting = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - w->started_at);
      w->boot_timer->arm(std::max(milliseconds{0}, w->config().boot_timeout - booting));
      start_probe(*w);
    }
  }
  remove_dead();  // workers the previous image was about to sweep away
}

int AppPool::roll_changed_binaries() {
  if (app_->kind != conf::AppKind::Cgi && app_->kind != conf::AppKind::Wsgi) return 0;
  if (app_->upgrade != "roll" || stopping_) return 0;
  const std::string path = worker::worker_binary();
  const FileIdentity now = file_identity(path);
  if (!now.known()) {
    CORRAL_LOG(Warn, "app=" + app_->name) << path << " cannot be read; its workers keep running the binary they started with";
    return 0;
  }
  int rolled = 0;
  for (auto& s : slots_) {
    if (s->retiring() || s->pid <= 0 || !s->binary.known() || s->binary == now) continue;
    s->retire_reason = "upgrade";
    s->restart_timer->cancel();
    ++rolled;
  }
  if (rolled == 0) return 0;
  CORRAL_LOG(Info, "app=" + app_->name) << path << " changed: replacing " << rolled
                                        << " worker(s) make before break (upgrade = \"roll\")";
  ensure_count();
  retire_ready_ones();
  on_pool_changed_();
  return rolled;
}

}  // namespace corral::supervisor
