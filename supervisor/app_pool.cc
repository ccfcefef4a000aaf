#include "supervisor/app_pool.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "common/base/log.h"
#include "common/base/units.h"
#include "common/net/socket.h"
#include "supervisor/app_kind.h"
#include "supervisor/child_output.h"
#include "supervisor/exit_status.h"
#include "supervisor/listeners.h"
#include "supervisor/proc_stats.h"
#include "supervisor/process_tree.h"
#include "supervisor/readiness_probe.h"
#include "supervisor/usage_sampler.h"

namespace corral::supervisor {
namespace {
using std::chrono::milliseconds;
constexpr milliseconds kProbeRetry{100};

std::string output_tag(const WorkerSlot& s) { return "app=" + s.app() + " worker=" + std::to_string(s.index()); }

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "exit", "signal", "oom" for a death nobody asked for; "oom" only on the kernel's evidence.
std::string unexpected_reason(int wait_status, bool oom) {
  if (WIFSIGNALED(wait_status)) return oom ? "oom" : "signal";
  return "exit";
}
// The death record of the slot's process that just exited (the line is completed later).
// `expected` is the log level's (the supervisor asked it to stop); a hung worker and a failed
// boot were asked too, but they are failures.
DeathRecord death_record(const WorkerSlot& s, pid_t pid, const std::string& reason, std::string how, bool expected,
                         Millis uptime, const std::string& line) {
  DeathRecord r;
  r.time_ms = std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  r.worker = s.index();
  r.pid = pid;
  r.generation = s.app_generation();
  r.incarnation = s.generation;
  r.reason = reason;
  r.exit = std::move(how);
  r.expected = expected && reason != "timeout" && reason != "boot_timeout" && reason != "socket_closed";
  r.uptime_seconds = std::chrono::duration<double>(uptime).count();
  r.requests = s.requests;
  r.in_flight = s.in_flight;
  r.line = line;
  return r;
}
}  // namespace

Result<Identity> resolve_identity(const std::string& user, const std::string& group) {
  Identity id;
  if (user.empty() && group.empty()) return id;
  if (::geteuid() != 0) return id;
  if (!user.empty()) {
    if (is_number(user)) {
      id.uid = static_cast<uid_t>(std::stoul(user));
      if (passwd* pw = ::getpwuid(id.uid)) id.gid = pw->pw_gid;
    } else {
      passwd* pw = ::getpwnam(user.c_str());
      if (!pw) return fail(Errc::InvalidInput, "unknown user '" + user + "'");
      id.uid = pw->pw_uid;
      id.gid = pw->pw_gid;
    }
  }
  if (!group.empty()) {
    if (is_number(group)) {
      id.gid = static_cast<gid_t>(std::stoul(group));
    } else {
      struct group* gr = ::getgrnam(group.c_str());
      if (!gr) return fail(Errc::InvalidInput, "unknown group '" + group + "'");
      id.gid = gr->gr_gid;
    }
  }
  return id;
}

std::vector<workers::RLimit> launcher_rlimits(const conf::App& app) {
  std::vector<workers::RLimit> out;
  for (auto& [name, value] : app.rlimits) {
    workers::RLimit r;
    r.resource = name == "nofile" ? RLIMIT_NOFILE : name == "nproc" ? RLIMIT_NPROC : RLIMIT_AS;
    if (value == "unlimited") r.value = RLIM_INFINITY;
    else if (auto v = parse_size(value)) r.value = static_cast<rlim_t>(*v);
    else continue;  // the schema rejected it already
    out.push_back(r);
  }
  return out;
}

AppPool::AppPool(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::App app,
                 const std::string& runtime_dir, std::function<void()> on_pool_changed)
    : loop_(loop),
      launcher_(launcher),
      clock_(clock),
      app_(std::make_shared<const conf::App>(std::move(app))),
      runtime_dir_(runtime_dir),
      on_pool_changed_(std::move(on_pool_changed)),
      desired_(std::max(1, app_->workers)) {}

AppPool::~AppPool() = default;

Result<void> AppPool::start() {
  self_binds_ = app_self_binds(*app_);
  auto id = resolve_identity(app_->user, app_->group);
  if (!id) return fail(Errc::InvalidInput, "app " + app_->name + ": " + id.error().message());
  identity_ = *id;
  if ((!app_->user.empty() || !app_->group.empty()) && ::geteuid() != 0) {
    CORRAL_LOG(Warn, "app=" + app_->name) << "not running as root: user/group ignored, workers run as the supervisor's user";
  }
  for (int i = 0; i < desired_; ++i) {
    WorkerSlot* s = add_worker();
    if (!s) return fail(Errc::System, "app " + app_->name + ": cannot create a worker socket under " + runtime_dir_);
  }
  for (auto& s : slots_) spawn(*s);
  return {};
}

WorkerSlot* AppPool::add_worker() {
  const int index = next_index_++;
  auto s = std::make_unique<WorkerSlot>(clock_, app_, app_generation_, index,
                                        slot_socket_path(runtime_dir_, app_->name, index));
  s->self_binds = self_binds_;
  if (s->self_binds) {
    ::unlink(s->socket_path().c_str());  // a leftover file would make the app's bind fail
  } else {
    auto fd = net::listen_unix(s->socket_path(), 1024, 0660);
    if (!fd) {
      // Tried again every second while a worker waits for this replacement: logged once a minute.
      if (uint64_t held = 0; socket_errors_.allow(&held)) {
        CORRAL_LOG(Error, s->tag()) << "cannot create its socket: " << fd.error().message()
                                    << (held ? " (" + std::to_string(held) + " more failures since the last line)" : "");
      }
      return nullptr;
    }
    socket_errors_.reset();
    s->listen_fd = std::move(*fd);
    s->listen_inode = socket_inode(s->listen_fd.get());
    struct stat st {};
    if (::stat(s->socket_path().c_str(), &st) == 0) {
      s->path_inode = st.st_ino;
      s->path_dev = st.st_dev;
    }
    if (socket_gid_ != static_cast<gid_t>(-1) && ::chown(s->socket_path().c_str(), static_cast<uid_t>(-1), socket_gid_) != 0) {
      CORRAL_LOG(Warn, s->tag()) << sys_error("chown " + s->socket_path()).message();
    }
  }
  return install(std::move(s));
}

WorkerSlot* AppPool::install(std::unique_ptr<WorkerSlot> s) {
  WorkerSlot* raw = s.get();
  s->restart_timer = std::make_unique<ev::Timer>(loop_, [this, raw] { spawn(*raw); });
  s->kill_timer = std::make_unique<ev::Timer>(loop_, [raw] {
    if (raw->pid <= 0) return;
    CORRAL_LOG(Warn, raw->tag()) << "pid " << raw->pid << " did not stop in time; sending SIGKILL";
    raw->kill_sent = true;
    ::kill(-raw->pid, SIGKILL);
  });
  s->boot_timer = std::make_unique<ev::Timer>(loop_, [this, raw] { on_boot_timeout(*raw); });
  s->drain_timer = std::make_unique<ev::Timer>(loop_, [this, raw] {
    if (raw->state() != WorkerSlot::State::Draining) return;
    CORRAL_LOG(Info, raw->tag()) << "graceful_timeout passed while draining; stopping it";
    terminate(*raw, SIGTERM, raw->config().kill_timeout);
  });
  s->poll_timer = std::make_unique<ev::Timer>(loop_, [this, raw] { start_probe(*raw); });
  s->probe = std::make_unique<ReadinessProbe>(loop_, s->socket_path(), s->config().health_path);
  slots_.push_back(std::move(s));
  return raw;
}

void AppPool::apply(WorkerSlot& s, WorkerSlot::Event e) {
  auto from = s.state();
  // Every call site follows the table; a refusal here is a logic error, not a runtime one.
  CORRAL_CHECK(s.transition(e), std::string("illegal worker slot move: ") + std::string(WorkerSlot::state_name(from)) +
                                    " + " + std::string(WorkerSlot::event_name(e)));
}

workers::LaunchSpec AppPool::spec_for(const WorkerSlot& s) const {
  const conf::App& a = s.config();
  workers::LaunchSpec spec = worker_launch_spec(a, s.index(), s.socket_path(), s.listen_fd.get(), s.self_binds);
  spec.uid = identity_.uid;
  spec.gid = identity_.gid;
  spec.rlimits = launcher_rlimits(a);
  spec.umask = a.umask;
  return spec;
}

uint64_t AppPool::pick_max_requests() {
  if (app_->max_requests == 0) return 0;
  if (app_->max_requests_jitter == 0) return app_->max_requests;
  std::uniform_int_distribution<uint64_t> d(0, app_->max_requests_jitter);
  return app_->max_requests + d(rng_);
}

void AppPool::spawn(WorkerSlot& s) {
  if (stopping_ || s.retiring()) return;
  apply(s, WorkerSlot::Event::Spawn);
  if (s.generation > 0) ++s.restarts;
  ++s.generation;
  s.term_sent = s.kill_sent = false;
  s.stop_reason.clear();
  s.in_flight = s.requests = 0;
  s.max_requests = pick_max_requests();
  s.backoff.on_start();
  s.started_at = std::chrono::steady_clock::now();
  // A self-binding app cannot bind over the file its dead predecessor left behind.
  if (s.self_binds) {
    ::unlink(s.socket_path().c_str());
    s.path_inode = 0;  // known again once it is ready
    s.path_dev = 0;
  }
  s.waiting_checks = 0;
  // App binaries get a blocking listening socket, as systemd and spawn-fcgi hand them: FastCGI
  // responders (libfcgi, php-cgi) and plain accept() loops give up on EAGAIN. The supervisor
  // never accepts on it; corral-worker (cgi, wsgi) keeps its non-blocking one for epoll.
  const auto kind = s.config().kind;
  if (!s.self_binds && (kind == conf::AppKind::Fastcgi || kind == conf::AppKind::Http))
    (void)net::set_nonblocking(s.listen_fd.get(), false);
  workers::LaunchSpec spec = spec_for(s);
  // corral-worker's file as this process starts from it: an upgrade rolls the process once
  // the file is replaced (upgrade = "roll").
  s.binary = kind == conf::AppKind::Cgi || kind == conf::AppKind::Wsgi ? file_identity(spec.argv[0]) : FileIdentity{};
  auto child = launcher_.spawn(spec);
  if (!child) {
    const auto& e = child.error();
    CORRAL_LOG(Error, s.tag()) << "cannot start worker: " << e.message() << " (errno " << e.sys_errno << ")";
    on_slot_exit(s, 127 << 8);  // an exec failure is an immediate death: back off
    return;
  }
  s.pid = child->pid;
  s.out = std::make_unique<ChildOutput>(loop_, std::move(child->stdout_fd), output_tag(s), log::Level::Info);
  s.err = std::make_unique<ChildOutput>(loop_, std::move(child->stderr_fd), output_tag(s), log::Level::Info);
  CORRAL_LOG(Info, s.tag()) << "started pid " << s.pid;
  s.boot_timer->arm(s.config().boot_timeout);
  start_probe(s);
}

void AppPool::start_probe(WorkerSlot& s) {
  if (s.state() != WorkerSlot::State::Starting || s.pid <= 0) return;
  // A FastCGI responder does not speak HTTP, and a FastCGI request would run app code
  // (php-cgi executes a script): it is up when started, as with health_path = "".
  if (s.config().health_path.empty() || s.config().kind == conf::AppKind::Fastcgi) {
    if (!s.self_binds) return set_up(s);  // our socket is listening: requests wait in its backlog
    // Up once its own socket exists (the path was unlinked before the spawn).
    struct stat st;
    if (::stat(s.socket_path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return set_up(s);
    s.poll_timer->arm(kProbeRetry);
    return;
  }
  auto left = s.config().boot_timeout - std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - s.started_at);
  if (left.count() <= 0) return;  // the boot timer handles it
  s.probe->start(left, [this, &s](bool ok, std::string why) {
    if (s.state() != WorkerSlot::State::Starting || s.pid <= 0) return;
    s.last_probe = "GET " + s.config().health_path + ": " + why;
    if (ok) {
      CORRAL_LOG(Debug, s.tag()) << "ready: " << why;
      return set_up(s);
    }
    CORRAL_LOG(Debug, s.tag()) << "not ready yet: " << why;
    s.poll_timer->arm(kProbeRetry);  // try again shortly
  });
}

void AppPool::on_boot_timeout(WorkerSlot& s) {
  if (s.state() != WorkerSlot::State::Starting || s.pid <= 0) return;
  CORRAL_LOG(Error, s.tag()) << "pid " << s.pid << " not ready within boot_timeout ("
                             << format_duration(s.config().boot_timeout) << "); killing it"
                             << (s.last_probe.empty() ? std::string() : "; readiness probe " + s.last_probe);
  s.probe->cancel();
  s.poll_timer->cancel();
  restart_in_place(s, "boot_timeout");
}

void AppPool::restart_in_place(WorkerSlot& s, const std::string& reason) {
  s.stop_reason = reason;
  signal_group(s, SIGTERM, s.config().kill_timeout);
}

void AppPool::signal_group(WorkerSlot& s, int sig, std::chrono::milliseconds kill_after) {
  s.term_sent = true;  // takes nothing new (accepting = false)
  ::kill(-s.pid, sig);
  s.kill_timer->arm(kill_after);
  s.kill_at = std::chrono::steady_clock::now() + kill_after;
}

void AppPool::set_up(WorkerSlot& s) {
  s.boot_timer->cancel();
  s.poll_timer->cancel();
  s.probe->cancel();
  apply(s, WorkerSlot::Event::Up);
  if (s.self_binds) {
    struct stat st {};
    if (::stat(s.socket_path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      s.path_inode = st.st_ino;
      s.path_dev = st.st_dev;
    }
  }
  CORRAL_LOG(Info, s.tag()) << "pid " << s.pid << " ready";
  retire_ready_ones();
  on_pool_changed_();
}

bool AppPool::on_exit(pid_t pid, int wait_status, double cpu_seconds) {
  if (pid <= 0) return false;
  for (auto& s : slots_)
    if (s->pid == pid) {
      totals_.add_exited(cpu_seconds, s->cpu_wait_seen);
      s->cpu_wait_seen = 0;
      on_slot_exit(*s, wait_status);
      return true;
    }
  return false;
}

void AppPool::on_slot_exit(WorkerSlot& s, int wait_status) {
  const pid_t pid = s.pid;
  const auto uptime = s.backoff.uptime();
  // Killed at boot_timeout or died while starting: a failed boot, backed off like a crash.
  const bool never_ready = s.state() == WorkerSlot::State::Starting;
  // Log what it printed before it died, then the death.
  s.out.reset();
  s.err.reset();
  s.probe->cancel();
  s.kill_timer->cancel();
  s.boot_timer->cancel();
  s.poll_timer->cancel();
  s.drain_timer->cancel();
  // A SIGKILL we did not send may be the kernel's OOM killer: ask the cgroup's counter.
  const bool oom = WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL && !s.kill_sent &&
                   oom_evidence().consume();
  std::string reason = s.retiring() ? s.retire_reason : !s.stop_reason.empty() ? s.stop_reason
                       : stopping_  ? "stop"
                                    : unexpected_reason(wait_status, oom);
  if (pid > 0) {
    ::kill(-pid, SIGKILL);  // whatever it forked dies with it
    ++deaths_[reason];
    const bool expected = s.term_sent || stopping_ || s.retiring();
    auto level = expected ? log::Level::Info : log::Level::Error;
    const bool logged = level >= log::level();
    std::string how = describe_exit(wait_status, oom);
    std::string line = "worker " + std::to_string(s.index()) + " pid " + std::to_string(pid) + " gen " +
                       std::to_string(s.app_generation()) + " exited: reason=" + reason + ", " + how +
                       ", uptime " + format_uptime(uptime) + ", requests " + std::to_string(s.requests);
    // Signalled by us (stop, reload, scale, recycle, timeout): what it held was cut by the
    // stop. A retiring worker that died before its signal did so on its own.
    const bool on_purpose = s.term_sent || s.kill_sent || stopping_;
    // Every exit is recorded, whatever the log level; the record is completed with the line.
    const uint64_t record = deaths_log_->add(death_record(s, pid, reason, std::move(how), expected, uptime, line));
    if (requests_query_) {
      // The proxy knows what it was serving; wait for it (bounded), then log one line.
      requests_query_(s.index(), s.generation,
                      [level, logged, tag = s.tag(), line, in_flight = s.in_flight, on_purpose, record,
                       deaths = std::weak_ptr<DeathLog>(deaths_log_)](RequestsAnswer answer) mutable {
                        line += describe_requests(answer, in_flight, on_purpose);
                        if (logged) log::write_line(level, tag, line);
                        if (auto d = deaths.lock()) d->complete(record, std::move(answer), std::move(line));
                      });
    } else {
      line += describe_requests(std::nullopt, s.in_flight, on_purpose);
      if (logged) log::write_line(level, s.tag(), line);
      deaths_log_->complete(record, std::nullopt, std::move(line));
    }
  }
  s.pid = 0;
  apply(s, WorkerSlot::Event::Exit);
  if (stopping_ || s.retiring()) {
    if (s.state() != WorkerSlot::State::Stopped) apply(s, WorkerSlot::Event::Stop);
    remove_dead();
    on_pool_changed_();
    return;
  }
  const auto delay = s.backoff.on_exit(never_ready);
  if (delay.count() == 0) {
    spawn(s);
    on_pool_changed_();
    return;
  }
  CORRAL_LOG(Warn, s.tag()) << "failed " << s.backoff.failures() << " time(s) in a row (died young or never became ready); "
                            << "restarting in " << delay.count() << "ms";
  s.restart_timer->arm(delay);
  s.restart_at = std::chrono::steady_clock::now() + delay;
  on_pool_changed_();
}

void AppPool::remove_dead() {
  // Deferred: the caller may be running inside one of the slot's own timers.
  if (sweep_posted_) return;
  sweep_posted_ = true;
  loop_.post([this] {
    sweep_posted_ = false;
    for (size_t i = slots_.size(); i-- > 0;) {
      WorkerSlot& s = *slots_[i];
      if (s.state() != WorkerSlot::State::Stopped || s.pid > 0 || stopping_) continue;
      s.listen_fd.reset();
      remove_socket_file(s);
      slots_.erase(slots_.begin() + static_cast<long>(i));
    }
    retire_ready_ones();
  });
}

WorkerSlot* AppPool::find(int slot, uint64_t generation) {
  for (auto& s : slots_)
    if (s->index() == slot && s->generation == generation) return s.get();
  return nullptr;
}

void AppPool::on_hung(int slot, uint64_t generation, const std::string& request_id) {
  WorkerSlot* s = find(slot, generation);
  if (!s || s->pid <= 0 || s->hung() || s->term_sent) return;  // already replaced or being stopped
  CORRAL_LOG(Warn, s->tag()) << "worker pid " << s->pid << " timed out request " << request_id
                             << "; replacing it (SIGTERM, SIGKILL after " << format_duration(s->config().kill_timeout)
                             << ")";
  replace(*s, "timeout");
  // It takes no new requests and what it holds has timed out: no point waiting for the replacement.
  terminate(*s, SIGTERM, s->config().kill_timeout);
  on_pool_changed_();
}

void AppPool::on_slot_event(const control::SlotEvent& e) {
  WorkerSlot* s = find(e.slot, e.generation);
  if (!s) return;
  if (e.kind == control::SlotEvent::Kind::Refused) {
    check_socket(*s, /*refused=*/true);
    return;
  }
  if (e.kind == control::SlotEvent::Kind::Drained) {
    if (s->state() == WorkerSlot::State::Draining) {
      CORRAL_LOG(Debug, s->tag()) << "drained";
      terminate(*s, SIGTERM, s->config().kill_timeout);
    }
    return;
  }
  if (s->retiring() || s->state() != WorkerSlot::State::Ready) return;
  CORRAL_LOG(Info, s->tag()) << "pid " << s->pid << " reached max_requests (" << e.requests << "); replacing it";
  replace(*s, "max_requests");
}

void AppPool::on_stats(const control::SlotStats& st) {
  if (WorkerSlot* s = find(st.slot, st.generation)) {
    s->in_flight = st.in_flight;
    s->requests = st.requests;
  }
}

void AppPool::on_proxy_gone() {
  // Its requests ended with it: none is in flight on any worker any more.
  for (auto& s : slots_) s->in_flight = 0;
}

void AppPool::check_memory() {
  if (app_->max_rss == 0) return;
  for (auto& s : slots_) {
    if (s->state() != WorkerSlot::State::Ready || s->retiring() || s->pid <= 0) continue;
    const GroupUsage u = UsageSampler::instance().usage(s->pid);  // sampled off the loop, at most 1 s old
    if (u.pss_bytes <= s->config().max_rss) continue;
    CORRAL_LOG(Warn, s->tag()) << "pid " << s->pid << " uses " << (u.pss_bytes >> 20) << " MiB (PSS, " << u.processes
                               << " process(es)), above max_rss " << (s->config().max_rss >> 20) << " MiB; replacing it";
    replace(*s, "max_rss");
  }
}

void AppPool::replace(WorkerSlot& s, const std::string& reason) {
  if (s.retiring() || stopping_) return;
  s.retire_reason = reason;
  s.restart_timer->cancel();
  ensure_count();
  retire_ready_ones();
  on_pool_changed_();
}

void AppPool::ensure_count() {
  if (stopping_) return;
  int active = 0;
  for (auto& s : slots_) active += !s->retiring();
  while (active < desired_) {
    WorkerSlot* n = add_worker();
    if (!n) return;  // logged; the old worker keeps serving
    spawn(*n);
    ++active;
  }
}

void AppPool::retire_ready_ones() {
  if (stopping_) return;
  int ready_active = 0, active = 0;
  for (auto& s : slots_) {
    ready_active += !s->retiring() && s->state() == WorkerSlot::State::Ready;
    active += !s->retiring();
  }
  for (auto& s : slots_) {
    if (!s->retiring()) continue;
    switch (s->state()) {
      case WorkerSlot::State::Ready:
        // Make before break: it serves until the app is back at full ready capacity. One
        // the proxy cannot reach any more (or hung) goes once its replacement is started;
        // with none (its socket could not be made) it serves on over the open connections.
        if (ready_active >= desired_ || ((s->hung() || s->unreachable()) && active >= desired_)) drain(*s);
        break;
      case WorkerSlot::State::Starting:
      case WorkerSlot::State::BackingOff:
        drain(*s);  // no capacity to keep
        break;
      case WorkerSlot::State::Stopped:
      case WorkerSlot::State::Draining:
      case WorkerSlot::State::Stopping:
        break;
    }
  }
}

void AppPool::drain(WorkerSlot& s) {
  const auto before = s.state();
  s.restart_timer->cancel();
  s.probe->cancel();
  s.poll_timer->cancel();
  s.boot_timer->cancel();
  apply(s, WorkerSlot::Event::Drain);
  if (s.state() == WorkerSlot::State::Draining) {
    CORRAL_LOG(Info, s.tag()) << "draining pid " << s.pid << " (" << s.retire_reason << ")";
    s.drain_timer->arm(s.config().graceful_timeout);
    s.drain_deadline = std::chrono::steady_clock::now() + s.config().graceful_timeout;
    on_pool_changed_();  // the proxy stops sending and reports when it is idle
    return;
  }
  if (s.state() == WorkerSlot::State::Stopping && s.pid > 0) {
    terminate(s, SIGTERM, s.config().kill_timeout);
  } else if (s.state() == WorkerSlot::State::Stopped && before != WorkerSlot::State::Stopped) {
    remove_dead();
  }
  on_pool_changed_();
}

void AppPool::terminate(WorkerSlot& s, int sig, std::chrono::milliseconds kill_after) {
  s.drain_timer->cancel();
  if (s.state() == WorkerSlot::State::Draining || s.state() == WorkerSlot::State::Ready) apply(s, WorkerSlot::Event::Stop);
  if (s.pid <= 0 || s.term_sent) return;
  signal_group(s, sig, kill_after);
}

void AppPool::reconfigure(conf::App app, bool new_generation) {
  const conf::App old = *app_;
  if (new_generation) {
    auto id = resolve_identity(app.user, app.group);
    if (id) identity_ = *id;
    self_binds_ = app_self_binds(app);
  }
  const int old_desired = desired_;
  desired_ = std::max(1, app.workers);
  app_ = std::make_shared<const conf::App>(std::move(app));
  if (new_generation) {
    ++app_generation_;
    for (auto& s : slots_)
      if (!s->retiring()) s->retire_reason = "reload";
    ensure_count();
    retire_ready_ones();
  } else if (desired_ != old_desired) {
    const int d = desired_;
    desired_ = old_desired;
    scale(d);
  }
  if (!new_generation && (old.max_requests != app_->max_requests || old.max_requests_jitter != app_->max_requests_jitter)) {
    // max_requests of running workers follows the new value.
    for (auto& s : slots_) s->max_requests = pick_max_requests();
  }
  on_pool_changed_();
}

void AppPool::revive(conf::App app) {
  CORRAL_LOG(Info, "app=" + app.name) << "added again while its previous workers drain; starting new ones";
  auto id = resolve_identity(app.user, app.group);
  if (id) identity_ = *id;
  self_binds_ = app_self_binds(app);
  desired_ = std::max(1, app.workers);
  app_ = std::make_shared<const conf::App>(std::move(app));
  ++app_generation_;
  ensure_count();
  retire_ready_ones();
  on_pool_changed_();
}

bool AppPool::idle() const { return slots_.empty() && !sweep_posted_; }

void AppPool::scale(int workers) {
  workers = std::max(1, workers);
  if (stopping_ || workers == desired_) return;
  CORRAL_LOG(Info, "app=" + app_->name) << "scaling from " << desired_ << " to " << workers << " workers";
  desired_ = workers;
  std::vector<WorkerSlot*> active;
  for (auto& s : slots_)
    if (!s->retiring()) active.push_back(s.get());
  if (static_cast<int>(active.size()) > desired_) {
    // Remove the ones that serve least first: not ready, then the youngest.
    std::stable_sort(active.begin(), active.end(), [](WorkerSlot* a, WorkerSlot* b) {
      bool ra = a->state() == WorkerSlot::State::Ready, rb = b->state() == WorkerSlot::State::Ready;
      if (ra != rb) return !ra;
      return a->index() > b->index();
    });
    for (size_t i = 0; i < active.size() - static_cast<size_t>(desired_); ++i) active[i]->retire_reason = "scale";
  }
  ensure_count();
  retire_ready_ones();
  on_pool_changed_();
}

void AppPool::retire_all(const std::string& reason) {
  desired_ = 0;
  for (auto& s : slots_)
    if (!s->retiring()) s->retire_reason = reason;
  for (auto& s : slots_) {
    if (s->state() == WorkerSlot::State::Ready) drain(*s);
  }
  retire_ready_ones();
  on_pool_changed_();
}

bool AppPool::settled() const {
  for (auto& s : slots_)
    if (s->retiring() && s->state() == WorkerSlot::State::Ready) return false;
  return true;
}

void AppPool::stop(int sig, std::chrono::milliseconds kill_after) {
  stopping_ = true;
  for (auto& s : slots_) {
    s->restart_timer->cancel();
    s->probe->cancel();
    s->poll_timer->cancel();
    s->boot_timer->cancel();
    s->drain_timer->cancel();
    if (s->state() != WorkerSlot::State::Stopping) apply(*s, WorkerSlot::Event::Stop);
    if (s->pid > 0) signal_group(*s, sig, kill_after);
  }
}

bool AppPool::all_stopped() const {
  for (auto& s : slots_)
    if (s->pid > 0) return false;
  return true;
}

bool AppPool::any_starting() const {
  for (auto& s : slots_)
    if (!s->retiring() && s->state() == WorkerSlot::State::Starting) return true;
  return false;
}

bool AppPool::failing() const {
  bool backing_off = false;
  for (auto& s : slots_) {
    if (s->state() == WorkerSlot::State::Ready) return false;
    backing_off = backing_off || (s->state() == WorkerSlot::State::BackingOff && s->backoff.failures() > 0) ||
                  (s->state() == WorkerSlot::State::Starting && s->backoff.failures() > 0);
  }
  return backing_off;
}

void AppPool::remove_sockets() {
  for (auto& s : slots_) {
    s->listen_fd.reset();
    remove_socket_file(*s);
  }
}

void AppPool::remove_socket_file(const WorkerSlot& s) {
  if (s.path_inode != 0) {
    // Only the file bound there (ours, or the self-binding worker's once ready): one that
    // replaced it since belongs to someone else.
    remove_own_file(s.socket_path(), s.path_dev, s.path_inode);
    return;
  }
  // A self-binding worker that never became ready: what it bound at the path given to it.
  struct stat st {};
  if (s.self_binds && ::lstat(s.socket_path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(s.socket_path().c_str());
}

void AppPool::append_pids(std::vector<pid_t>& out) const {
  for (auto& s : slots_)
    if (s->pid > 0) out.push_back(s->pid);
}

void AppPool::append_slots(std::vector<control::SlotInfo>& out) const {
  for (auto& s : slots_) {
    const auto st = s->state();
    // Only processes that serve or still hold requests: a starting worker takes nothing
    // before its readiness probe passed.
    if (st != WorkerSlot::State::Ready && st != WorkerSlot::State::Draining && st != WorkerSlot::State::Stopping) continue;
    if (s->pid <= 0) continue;
    control::SlotInfo i;
    i.app = app_->name;
    i.slot = s->index();
    i.generation = s->generation;
    i.path = s->socket_path();
    i.concurrency = s->config().concurrency;
    i.accepting = st == WorkerSlot::State::Ready && !s->hung() && !s->term_sent;
    i.pid = s->pid;
    i.max_requests = s->retiring() ? 0 : s->max_requests;
    out.push_back(std::move(i));
  }
}

nlohmann::json AppPool::status() const {
  nlohmann::json workers = nlohmann::json::array();
  const auto now = std::chrono::steady_clock::now();
  double live_cpu = 0, live_wait = 0;
  for (auto& s : slots_) {
    const GroupUsage u = s->pid > 0 ? UsageSampler::instance().usage(s->pid) : GroupUsage{};
    live_cpu += u.cpu_seconds;
    live_wait += u.cpu_wait_seconds;
    if (s->pid > 0) s->cpu_wait_seen = u.cpu_wait_seconds;
    double uptime = s->pid > 0 ? std::chrono::duration<double>(now - s->started_at).count() : 0.0;
    workers.push_back({{"id", s->index()}, {"slot", s->index()}, {"pid", s->pid}, {"generation", s->app_generation()},
                       {"incarnation", s->generation}, {"state", WorkerSlot::state_name(s->state())},
                       {"retiring", s->retire_reason}, {"in_flight", s->in_flight}, {"requests", s->requests},
                       {"max_requests", s->max_requests}, {"restarts", s->restarts}, {"rss", u.pss_bytes},
                       {"cpu_seconds", u.cpu_seconds}, {"cpu_wait_seconds", u.cpu_wait_seconds},
                       {"uptime_seconds", uptime}, {"socket", s->socket_path()},
                       {"probe", s->last_probe}});
  }
  nlohmann::json deaths = nlohmann::json::object();
  for (auto& [k, v] : deaths_) deaths[k] = v;
  nlohmann::json out{{"name", app_->name}, {"kind", app_kind_name(app_->kind)},         {"concurrency", app_->concurrency},
                     {"desired", desired_}, {"generation", app_generation_}, {"failing", failing()},
                     {"deaths", deaths},    {"workers", workers}, {"recent_deaths", deaths_log_->json()}};
  if (app_->kind == conf::AppKind::Wsgi) out["worker_class"] = app_->worker_class;
  out["totals"] = totals_.to_json(live_cpu, live_wait);
  return out;
}

}  // namespace corral::supervisor
