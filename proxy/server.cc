#include "proxy/server.h"

#include <fcntl.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <set>

#include "common/base/log.h"
#include "conf/cores.h"
#include "conf/snapshot.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {
namespace {
// How often per-slot counters go to the supervisor (corralctl status shows them).
constexpr std::chrono::milliseconds kStatsEvery{1000};
}  // namespace

Server::Server(ev::Loop& main_loop) : main_(main_loop) {
  shared_.on_hung = [this](const std::string& app, int slot, uint64_t generation, std::string rid) {
    control::WorkerHung m;
    m.app = app;
    m.slot = slot;
    m.generation = generation;
    m.request_id = std::move(rid);
    if (control_) control_->send(std::move(m));
  };
  shared_.on_drained = [this](int) { main_.post([this] { on_loop_drained(); }); };
  shared_.admin = admin_;
  sigterm_ = std::make_unique<ev::SignalWatch>(main_, SIGTERM, [this] { begin_graceful_stop(); });
  sigint_ = std::make_unique<ev::SignalWatch>(main_, SIGINT, [this] { stop_now(0); });
}

Server::~Server() {
  for (auto& l : loops_) l->stop();
  loops_.clear();
}

void Server::attach_control(UniqueFd fd) {
  control_ = std::make_unique<ControlClient>(main_, std::move(fd), *this);
  stats_timer_ = std::make_unique<ev::Timer>(main_, [this] { send_stats(); });
  stats_timer_->arm(kStatsEvery);
}

void Server::send_stats() {
  send_stats_now(0);
  stats_timer_->arm(kStatsEvery);
}

void Server::on_stats_query(control::StatsQuery&& m) { send_stats_now(m.query); }

void Server::on_worker_figures(control::WorkerFigures&& m) { admin_->set_worker_figures(std::move(m.json)); }

void Server::on_set_draining(control::SetDraining&& m) {
  if (admin_->draining() == m.draining) return;
  admin_->set_draining(m.draining);
  CORRAL_LOG(Info, "proxy") << (m.draining ? "draining: /readyz fails, connections are asked to go away, the listeners keep serving"
                                           : "drain withdrawn: ready again");
  for (auto& l : loops_) l->set_drain_announced(m.draining);
}

void Server::sample_status() {
  if (runtime_ && runtime_->admin_listener)
    admin_->history().sample(admin_->app_totals(*runtime_), std::chrono::system_clock::now());
  sample_timer_->arm(kStatsEvery);
}

void Server::send_stats_now(uint64_t query) {
  control::ProxyStats st;
  st.query = query;
  for (auto& [name, d] : dispatchers_) {
    st.queued += d->queued();
    for (auto& s : d->slots()) {
      st.requests += s.requests;
      st.in_flight += static_cast<uint64_t>(s.in_flight);
      st.slots.push_back(control::SlotStats{name, s.slot, s.generation, static_cast<uint64_t>(s.in_flight), s.requests});
    }
    const auto t = d->totals();
    st.apps.push_back(control::AppStats{name, t.requests, static_cast<uint64_t>(t.busy.count() / 1000),
                                        static_cast<uint64_t>(t.queue.count() / 1000), t.queued, t.rejected,
                                        t.peak_in_flight});
  }
  if (control_) control_->send(std::move(st));
}

int Server::run() {
  main_.run();
  for (auto& l : loops_) l->stop();
  return exit_code_;
}

void Server::start_threads(int n) {
  for (int i = 0; i < n; ++i) {
    auto l = std::make_unique<LoopThread>(i, shared_);
    l->start();
    loops_.push_back(std::move(l));
  }
  std::vector<const metrics::LoopCounters*> counters;
  for (auto& l : loops_) counters.push_back(&l->counters_view());
  admin_->set_loops(std::move(counters));
  sample_timer_ = std::make_unique<ev::Timer>(main_, [this] { sample_status(); });
  sample_timer_->arm(kStatsEvery);
  CORRAL_LOG(Info, "proxy") << "started " << n << " event loop thread" << (n == 1 ? "" : "s");
}

void Server::on_set_listeners(control::SetListeners&& m, std::vector<UniqueFd>&& fds) {
  auto ls = std::make_shared<ListenerSet>();
  ls->fds = std::move(fds);
  ls->addresses = std::move(m.addresses);
  for (const auto& a : ls->addresses) CORRAL_LOG(Info, "proxy") << "listening on " << a;
  if (retiring_) return;  // a successor accepts on them: our copies close here
  listeners_ = std::move(ls);
  if (stopping_) return;
  for (auto& l : loops_) l->set_listeners(listeners_);
}

void Server::install_access_log() {
  const std::string& spec = config_->proxy.access_log;
  std::shared_ptr<AccessLog> log;
  if (spec == "-" || spec == "off" || spec.empty()) {
    auto opened = AccessLog::open(spec, config_->proxy.access_log_format);
    if (!opened) return;  // cannot happen: neither opens a file
    log = *opened;
  } else if (handed_log_fd_ && handed_log_path_ == spec) {
    int fd = ::fcntl(handed_log_fd_.get(), F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
      CORRAL_LOG(Error, "proxy") << "access log " << spec << ": dup: " << std::strerror(errno)
                                 << "; requests are not logged";
      return;
    }
    log = AccessLog::adopt(UniqueFd(fd), spec, config_->proxy.access_log_format);
  } else {
    // The supervisor opens the file (it could not: it logged why); the proxy's user may not
    // be allowed to, and a file opened here could not be reopened for log rotation.
    CORRAL_LOG(Error, "proxy") << "access log " << spec
                               << ": the supervisor handed no file for it; requests are not logged";
    auto off = AccessLog::open("off", config_->proxy.access_log_format);
    if (!off) return;
    log = *off;
  }
  shared_.access_log = std::move(log);
  access_log_spec_ = spec;
  access_log_format_ = config_->proxy.access_log_format;
  for (auto& l : loops_) l->set_access_log(shared_.access_log);
}

void Server::on_access_log_file(control::AccessLogFile&& m, std::vector<UniqueFd>&& fds) {
  if (fds.size() != 1) {
    CORRAL_LOG(Warn, "proxy") << "access_log_file for " << m.path << " came with " << fds.size() << " fds; ignored";
    return;
  }
  handed_log_path_ = std::move(m.path);
  handed_log_fd_ = std::move(fds[0]);
  // The log in use (a reopen after SIGUSR1): switch now. Before a set_config, it waits for it.
  if (config_ && shared_.access_log && access_log_spec_ == handed_log_path_) install_access_log();
}

void Server::on_set_config(control::SetConfig&& m) {
  auto cfg = conf::from_snapshot(m.snapshot);
  if (!cfg) {
    // The supervisor validated it; a snapshot we cannot read is a version skew. Keep serving.
    CORRAL_LOG(Error, "proxy") << "rejected config generation " << m.generation << ": " << cfg.error().message();
    return;
  }
  config_ = std::move(*cfg);
  log::set_level(config_->supervisor.log_level);
  if (!shared_.access_log || access_log_spec_ != config_->proxy.access_log ||
      access_log_format_ != config_->proxy.access_log_format)
    install_access_log();
  // A removed app's dispatcher stays (retired) while its workers drain; an app that comes
  // back takes its dispatcher back.
  for (const auto& app : config_->apps)
    if (auto it = retired_dispatchers_.find(app.name); it != retired_dispatchers_.end()) {
      dispatchers_.emplace(app.name, it->second);
      retired_dispatchers_.erase(it);
    }
  auto before = dispatchers_;
  bool first = loops_.empty();
  // The thread count is fixed at start; a changed proxy.threads applies on restart.
  const int threads = first ? (config_->proxy.threads > 0 ? config_->proxy.threads : conf::usable_cores())
                            : static_cast<int>(loops_.size());
  rstate_.threads = static_cast<size_t>(threads);
  runtime_ = make_runtime(*config_, m.generation, rstate_);
  admin_->set_runtime(runtime_);
  for (auto& [name, d] : before)
    if (!dispatchers_.count(name)) retired_dispatchers_[name] = d;
  if (first) start_threads(threads);
  for (auto& l : loops_) l->set_runtime(runtime_);
  if (first && admin_->draining())
    for (auto& l : loops_) l->set_drain_announced(true);
  if (first && listeners_ && !stopping_)
    for (auto& l : loops_) l->set_listeners(listeners_);
  apply_pool();
  CORRAL_LOG(Info, "proxy") << "config generation " << m.generation << " applied";
  if (control_) control_->send(control::ProxyReady{m.generation});
}

void Server::on_set_pool(control::SetPool&& m) {
  pool_ = std::move(m);
  apply_pool();
}

void Server::apply_pool() {
  if (!pool_ || !runtime_) return;
  std::map<std::string, std::vector<control::SlotInfo>> by_app;
  auto live = std::make_shared<std::vector<std::pair<std::string, uint64_t>>>();
  std::vector<std::pair<std::string, uint64_t>> accepting;
  for (const auto& s : pool_->slots) {
    by_app[s.app].push_back(s);
    live->emplace_back(s.path, s.generation);
    if (s.accepting) accepting.emplace_back(s.path, s.generation);
  }
  std::set<std::string> failing(pool_->failing.begin(), pool_->failing.end());
  for (auto& [name, d] : dispatchers_) {
    // The supervisor acts on these: stop a drained worker, replace one at max_requests.
    d->set_observer([this](control::SlotEvent e) {
      if (control_) control_->send(std::move(e));  // thread-safe: posts to the main loop
    });
    d->set_failing(failing.count(name) > 0);
    auto it = by_app.find(name);
    d->update_slots(it == by_app.end() ? std::vector<control::SlotInfo>{} : it->second);
  }
  for (auto it = retired_dispatchers_.begin(); it != retired_dispatchers_.end();) {
    auto slots = by_app.find(it->first);
    it->second->update_slots(slots == by_app.end() ? std::vector<control::SlotInfo>{} : slots->second);
    if (slots == by_app.end() && it->second->slots().empty()) {
      it = retired_dispatchers_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& l : loops_) l->retain_upstreams(live);
  // FastCGI's shared idle connections: only those of slots that take requests (see pool.h).
  SharedIdleConns::instance().retain(accepting);
}

void Server::on_slot_requests_query(control::SlotRequestsQuery&& m) {
  control::SlotRequests r{m.query, m.app, m.slot, m.generation, {}};
  auto look = [&](const std::shared_ptr<AppDispatcher>& d) {
    for (auto& q : d->requests_of(m.slot, m.generation))
      r.requests.push_back(control::SlotRequestInfo{std::move(q.info.id), std::move(q.info.method),
                                                    std::move(q.info.path), static_cast<uint64_t>(q.elapsed.count()),
                                                    std::move(q.state), std::move(q.info.trace_id)});
  };
  if (auto it = dispatchers_.find(m.app); it != dispatchers_.end()) look(it->second);
  if (auto it = retired_dispatchers_.find(m.app); it != retired_dispatchers_.end()) look(it->second);
  if (control_) control_->send(std::move(r));
}

void Server::on_control_closed(const Error& e) {
  // The supervisor is gone: nobody will restart workers or us. Exit at once.
  CORRAL_LOG(Warn, "proxy") << "control channel closed (" << e.message() << "); exiting";
  std::_Exit(1);
}

void Server::begin_graceful_stop() {
  if (stopping_) return;
  stopping_ = true;
  admin_->set_stopping();
  auto timeout = config_ ? config_->supervisor.graceful_timeout : std::chrono::milliseconds(30'000);
  CORRAL_LOG(Info, "proxy") << "graceful stop (up to " << timeout.count() << "ms)";
  if (loops_.empty()) {
    stop_now(0);
    return;
  }
  graceful_timer_ = std::make_unique<ev::Timer>(main_, [this] {
    CORRAL_LOG(Warn, "proxy") << "graceful timeout passed; closing remaining connections";
    stop_now(0);
  });
  graceful_timer_->arm(timeout);
  for (auto& l : loops_) l->begin_drain();
}

void Server::on_loop_drained() {
  if (++drained_ == loops_.size()) {
    CORRAL_LOG(Info, "proxy") << "all connections finished";
    if (retiring_) exit_when_flushed(0);
    else stop_now(0);
  }
}

void Server::stop_now(int code) {
  exit_code_ = code;
  main_.break_loop();
}

}  // namespace corral::proxy
