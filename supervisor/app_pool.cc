#include "supervisor/app_pool.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/log.h"
#include "common/net/socket.h"
#include "supervisor/child_output.h"
#include "supervisor/exit_status.h"
#include "supervisor/listeners.h"

namespace corral::supervisor {
namespace {
constexpr std::chrono::milliseconds kProbeEvery{100};

std::string output_tag(const WorkerSlot& s) { return "app=" + s.app() + " worker=" + std::to_string(s.index()); }
}  // namespace

AppPool::AppPool(ev::Loop& loop, workers::Launcher& launcher, const Clock& clock, conf::App app,
                 const std::string& runtime_dir, std::function<void()> on_pool_changed)
    : loop_(loop), launcher_(launcher), app_(std::move(app)), on_pool_changed_(std::move(on_pool_changed)) {
  workers::LaunchSpec trial;
  trial.argv = app_.command;
  for (auto& kv : app_.env) trial.env.push_back(kv);
  const bool self_binds = workers::substitute_socket(trial, "");
  for (int i = 0; i < app_.workers; ++i) {
    auto s = std::make_unique<WorkerSlot>(clock, app_.name, i, slot_socket_path(runtime_dir, app_.name, i));
    s->self_binds = self_binds;
    WorkerSlot* raw = s.get();
    s->restart_timer = std::make_unique<ev::Timer>(loop_, [this, raw] { spawn(*raw); });
    s->kill_timer = std::make_unique<ev::Timer>(loop_, [raw] {
      if (raw->pid <= 0) return;
      CORRAL_LOG(Warn, raw->tag()) << "pid " << raw->pid << " did not stop in time; sending SIGKILL";
      raw->kill_sent = true;
      ::kill(-raw->pid, SIGKILL);
    });
    s->probe_timer = std::make_unique<ev::Timer>(loop_, [this, raw] { probe(*raw); });
    slots_.push_back(std::move(s));
  }
}

AppPool::~AppPool() = default;

Result<void> AppPool::open_sockets() {
  for (auto& s : slots_) {
    if (s->self_binds) {
      // The app binds the path itself; a leftover socket file would make its bind fail.
      ::unlink(s->socket_path().c_str());
      continue;
    }
    auto fd = net::listen_unix(s->socket_path(), 1024, 0660);
    if (!fd) return fail(fd.error());
    s->listen_fd = std::move(*fd);
  }
  return {};
}

void AppPool::start() {
  for (auto& s : slots_) spawn(*s);
}

void AppPool::apply(WorkerSlot& s, WorkerSlot::Event e) {
  auto from = s.state();
  // Every call site follows the table; a refusal here is a logic error, not a runtime one.
  CORRAL_CHECK(s.transition(e), std::string("illegal worker slot move: ") + std::string(WorkerSlot::state_name(from)) +
                                    " + " + std::string(WorkerSlot::event_name(e)));
}

workers::LaunchSpec AppPool::spec_for(const WorkerSlot& s) const {
  workers::LaunchSpec spec;
  spec.argv = app_.command;
  for (auto& kv : app_.env) spec.env.push_back(kv);
  spec.cwd = app_.cwd;
  if (s.self_binds) {
    workers::substitute_socket(spec, s.socket_path());
  } else {
    spec.fds = {{s.listen_fd.get(), 3}};
    spec.listen_fds = true;
  }
  return spec;
}

void AppPool::spawn(WorkerSlot& s) {
  if (stopping_) return;
  apply(s, WorkerSlot::Event::Spawn);
  if (s.generation > 0) ++s.restarts;
  ++s.generation;
  s.term_sent = s.kill_sent = false;
  s.backoff.on_start();
  // A self-binding app cannot bind over the file its dead predecessor left behind.
  if (s.self_binds) ::unlink(s.socket_path().c_str());
  auto child = launcher_.spawn(spec_for(s));
  if (!child) {
    const auto& e = child.error();
    CORRAL_LOG(Error, s.tag()) << "cannot start worker: " << e.message() << " (errno " << e.sys_errno << ")";
    on_slot_exit(s, 127 << 8);  // an exec failure is an immediate death: back off
    return;
  }
  s.pid = child->pid;
  s.out = std::make_unique<ChildOutput>(loop_, std::move(child->stdout_fd), output_tag(s), log::Level::Info);
  s.err = std::make_unique<ChildOutput>(loop_, std::move(child->stderr_fd), output_tag(s), log::Level::Warn);
  CORRAL_LOG(Info, s.tag()) << "started pid " << s.pid;
  if (s.self_binds) {
    s.probe_timer->arm(kProbeEvery);  // up once its own socket accepts
    on_pool_changed_();
  } else {
    set_up(s);  // the socket is ours and already listening: requests wait in its backlog
  }
}

void AppPool::set_up(WorkerSlot& s) {
  apply(s, WorkerSlot::Event::Up);
  on_pool_changed_();
}

void AppPool::probe(WorkerSlot& s) {
  if (s.state() != WorkerSlot::State::Starting || s.pid <= 0) return;
  // The path was unlinked before the spawn, so a socket there now is the new process's.
  // (No test connection: some apps crash on a peer that closes without a request.)
  struct stat st;
  if (::stat(s.socket_path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    set_up(s);
    return;
  }
  s.probe_timer->arm(kProbeEvery);
}

bool AppPool::on_exit(pid_t pid, int wait_status) {
  if (pid <= 0) return false;
  for (auto& s : slots_)
    if (s->pid == pid) {
      on_slot_exit(*s, wait_status);
      return true;
    }
  return false;
}

void AppPool::on_slot_exit(WorkerSlot& s, int wait_status) {
  const pid_t pid = s.pid;
  const auto uptime = s.backoff.uptime();
  // Log what it printed before it died, then the death.
  s.out.reset();
  s.err.reset();
  s.probe_timer->cancel();
  s.kill_timer->cancel();
  if (pid > 0) {
    ::kill(-pid, SIGKILL);  // whatever it forked dies with it
    const bool expected = s.term_sent || stopping_;
    auto level = expected ? log::Level::Info : log::Level::Error;
    if (level >= log::level())
      log::write_line(level, s.tag(),
                      "worker pid " + std::to_string(pid) + " died: " + describe_exit(wait_status, s.kill_sent) +
                          ", uptime " + format_uptime(uptime));
  }
  s.pid = 0;
  apply(s, WorkerSlot::Event::Exit);
  if (s.state() == WorkerSlot::State::Stopped || stopping_) {
    if (s.state() != WorkerSlot::State::Stopped) apply(s, WorkerSlot::Event::Stop);
    on_pool_changed_();
    return;
  }
  const auto delay = s.backoff.on_exit();
  if (delay.count() == 0) {
    spawn(s);
    return;
  }
  CORRAL_LOG(Warn, s.tag()) << "died " << s.backoff.failures() << " time(s) in a row within seconds of starting; "
                            << "restarting in " << delay.count() << "ms";
  s.restart_timer->arm(delay);
  on_pool_changed_();
}

void AppPool::on_hung(int slot, uint64_t generation, const std::string& request_id,
                      std::chrono::milliseconds kill_after) {
  if (slot < 0 || static_cast<size_t>(slot) >= slots_.size()) {
    CORRAL_LOG(Warn, "app=" + app_.name) << "proxy reported a hung worker in unknown slot " << slot;
    return;
  }
  WorkerSlot& s = *slots_[static_cast<size_t>(slot)];
  if (s.generation != generation || s.pid <= 0 || s.term_sent) return;  // already replaced or being killed
  CORRAL_LOG(Warn, s.tag()) << "worker pid " << s.pid << " timed out request " << request_id << "; replacing it (SIGTERM, SIGKILL after "
                            << kill_after.count() << "ms)";
  s.term_sent = true;
  ::kill(-s.pid, SIGTERM);
  s.kill_timer->arm(kill_after);
  on_pool_changed_();  // no new requests for it while it is replaced
}

void AppPool::stop(int sig, std::chrono::milliseconds kill_after) {
  stopping_ = true;
  for (auto& s : slots_) {
    s->restart_timer->cancel();
    s->probe_timer->cancel();
    apply(*s, WorkerSlot::Event::Stop);
    if (s->pid > 0) {
      s->term_sent = true;
      ::kill(-s->pid, sig);
      s->kill_timer->arm(kill_after);
    }
  }
}

bool AppPool::all_stopped() const {
  for (auto& s : slots_)
    if (s->pid > 0) return false;
  return true;
}

bool AppPool::any_starting() const {
  for (auto& s : slots_)
    if (s->state() == WorkerSlot::State::Starting) return true;
  return false;
}

void AppPool::remove_sockets() {
  for (auto& s : slots_) {
    s->listen_fd.reset();
    ::unlink(s->socket_path().c_str());
  }
}

void AppPool::append_slots(std::vector<control::SlotInfo>& out) const {
  for (auto& s : slots_) {
    control::SlotInfo i;
    i.app = app_.name;
    i.slot = s->index();
    i.generation = s->generation;
    i.path = s->socket_path();
    i.concurrency = app_.concurrency;
    // An inherited socket queues requests in its backlog even while the worker restarts;
    // a socket the app binds itself exists only while the app is up.
    // A worker being replaced (hung) gets nothing new: it would only time out again.
    i.accepting = !s->term_sent && (s->self_binds ? s->state() == WorkerSlot::State::Ready
                                                  : s->state() != WorkerSlot::State::Stopping);
    i.pid = s->pid;
    out.push_back(std::move(i));
  }
}

nlohmann::json AppPool::status() const {
  nlohmann::json workers = nlohmann::json::array();
  for (auto& s : slots_) {
    workers.push_back({{"slot", s->index()}, {"pid", s->pid}, {"generation", s->generation},
                       {"state", WorkerSlot::state_name(s->state())}, {"restarts", s->restarts},
                       {"socket", s->socket_path()}});
  }
  return {{"name", app_.name}, {"kind", "http"}, {"concurrency", app_.concurrency}, {"workers", workers}};
}

}  // namespace corral::supervisor
