// Arbiter: replacing corral-proxy make-before-break (corralctl restart-proxy, POST
// /proxy/restart, and the end of a supervisor upgrade), with the corral-proxy binary on disk
// now.
//
// 1. A second ProxyProcess (the replacement) starts with its own control channel and gets
//    the whole state: the same listening fds, the config, the pool, the drain state. Both
//    proxies accept on the shared sockets (one kernel queue per socket: no connection is
//    lost whichever process takes it).
// 2. When it reports proxy_ready it becomes proxy_ and the old one gets `retire`: it drops
//    its listener watches and its copies of the listening fds (never shutdown(): the socket
//    is shared), hands its idle plaintext keep-alive connections over (handoff_connections,
//    checked here, passed on as adopt_connections), answers what is in flight with
//    Connection: close or GOAWAY, and exits when nothing is left or at graceful_timeout.
//    The request is answered once its last hand-over batch came.
// 3. Its exit is reaped as a retirement (no restart, no back-off).
// A replacement that fails to start, dies or is not ready within kReadyBound is killed and
// the old proxy keeps serving. If the old proxy dies first, the replacement takes over at
// once. A second request while one is in progress gets 409.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

#include "common/base/crash.h"
#include "common/base/log.h"
#include "common/base/units.h"
#include "supervisor/arbiter.h"

namespace corral::supervisor {
namespace {
constexpr const char* kTag = "supervisor";
using std::chrono::milliseconds;
// A new proxy applies its state in milliseconds; this bounds a binary that hangs at start.
constexpr milliseconds kReadyBound{10'000};
// The retiring proxy reports its idle connections as soon as it got `retire`.
constexpr milliseconds kHandoffBound{5'000};
// After graceful_timeout a retiring proxy cuts what remains and exits; past this it is killed.
constexpr milliseconds kRetireKillGrace{5'000};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

bool same_local_address(const sockaddr_storage& a, const sockaddr_storage& listener) {
  if (a.ss_family != listener.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& l = reinterpret_cast<const sockaddr_in&>(listener);
    return x.sin_port == l.sin_port && (l.sin_addr.s_addr == htonl(INADDR_ANY) || x.sin_addr.s_addr == l.sin_addr.s_addr);
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& l = reinterpret_cast<const sockaddr_in6&>(listener);
    return x.sin6_port == l.sin6_port &&
           (IN6_IS_ADDR_UNSPECIFIED(&l.sin6_addr) || std::memcmp(&x.sin6_addr, &l.sin6_addr, sizeof x.sin6_addr) == 0);
  }
  return false;
}

int sockopt(int fd, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, SOL_SOCKET, name, &v, &len) != 0) return -1;
  return v;
}
}  // namespace

ProxyProcess::Hooks Arbiter::proxy_hooks(ProxyProcess* p) {
  ProxyProcess::Hooks h;
  h.on_spawned = [this, p] {
    if (p == proxy_.get()) on_proxy_spawned();
    else send_state(*p);  // a replacement being started
  };
  h.on_ready = [this, p](const control::ProxyReady&) {
    if (swap_ && p == swap_->candidate.get()) return on_swap_ready(p);
    if (p != proxy_.get()) return;
    on_proxy_ready();
    // The old proxy died while its replacement started: the replacement took over at once.
    if (swap_ && swap_->promoted && !swap_->retiring) finish_swap("the old proxy had exited");
  };
  h.on_worker_hung = [this](const control::WorkerHung& w) { on_worker_hung(w); };  // from any proxy
  h.on_stats = [this, p](const control::ProxyStats& st) {
    // The serving proxy's figures only: the others count their own requests from zero.
    if (p == proxy_.get()) on_stats(st);
  };
  h.on_slot_event = [this, p](const control::SlotEvent& e) { on_proxy_slot_event(p, e); };
  h.on_slot_requests = [this](const control::SlotRequests& r) { on_slot_requests(r); };  // matched by query id
  h.on_handoff = [this, p](control::HandoffConnections&& m, std::vector<UniqueFd>&& fds) {
    on_handoff(p, std::move(m), std::move(fds));
  };
  return h;
}

control::SetPool Arbiter::make_pool() const {
  control::SetPool pool;
  for (auto& p : pools_) {
    p->append_slots(pool.slots);
    if (p->failing()) pool.failing.push_back(p->app().name);
  }
  for (auto& p : retired_pools_) p->append_slots(pool.slots);
  return pool;
}

std::vector<ProxyProcess*> Arbiter::pool_receivers() const {
  std::vector<ProxyProcess*> out{proxy_.get()};
  if (swap_ && swap_->candidate && swap_->candidate->running()) out.push_back(swap_->candidate.get());
  for (auto& o : outgoing_)
    if (o->retiring() && o->running()) out.push_back(o.get());
  return out;
}

void Arbiter::replace_proxy(std::function<void(const ProxySwapOutcome&)> done) {
  crash::Operation op("replacing the proxy");
  auto refuse = [&](int status, std::string why) {
    ProxySwapOutcome o;
    o.status = status;
    o.error = std::move(why);
    o.old_pid = proxy_->pid();
    loop_.post([done = std::move(done), o] { done(o); });
  };
  if (phase_ != Phase::Running) return refuse(503, "the supervisor is stopping");
  if (swap_) {
    const pid_t next = swap_->promoted ? proxy_->pid() : swap_->candidate ? swap_->candidate->pid() : 0;
    return refuse(409, "a proxy replacement is already in progress (new proxy pid " + std::to_string(next) + ")");
  }
  if (!proxy_->running())
    return refuse(503, "the proxy is not running (it restarts by itself with back-off); nothing to replace");
  swap_ = std::make_unique<ProxySwap>();
  swap_->done.push_back(std::move(done));
  swap_->started = std::chrono::steady_clock::now();
  swap_->old_pid = proxy_->pid();
  swap_->result.old_pid = proxy_->pid();
  auto candidate = std::make_unique<ProxyProcess>(loop_, launcher_, clock_, proxy_->binary(), ProxyProcess::Hooks{});
  candidate->set_hooks(proxy_hooks(candidate.get()));
  candidate->set_identity(proxy_->uid(), proxy_->gid());
  candidate->set_timeout(proxy_->timeout());
  candidate->set_restart(false, "it was to replace pid " + std::to_string(swap_->old_pid) + ", which keeps serving");
  swap_->candidate = std::move(candidate);
  CORRAL_LOG(Info, kTag) << "replacing the proxy (pid " << swap_->old_pid << ") make-before-break: starting "
                         << swap_->candidate->binary();
  swap_timer_.arm(kReadyBound);
  if (auto r = swap_->candidate->start(); !r) fail_swap(500, "cannot start the new proxy: " + r.error().message());
}

void Arbiter::on_swap_timer() {
  if (!swap_) return;
  if (!swap_->promoted) return fail_swap(500, "the new proxy did not become ready within " + format_duration(kReadyBound));
  if (!swap_->retiring && !proxy_->ready()) {
    // The old one had died and this one took over, but it is not ready: it is the serving
    // proxy now (restarted with back-off if it dies), so it is not killed here.
    std::unique_ptr<ProxySwap> swap = std::move(swap_);
    ProxySwapOutcome o = swap->result;
    o.status = 500;
    o.error = "the old proxy died and the new one did not become ready within " + format_duration(kReadyBound);
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - swap->started).count();
    CORRAL_LOG(Error, kTag) << "proxy replacement: " << o.error;
    for (auto& d : swap->done) d(o);
    return;
  }
  finish_swap(swap_->retiring ? "the old proxy did not report its idle connections in time" : "");
}

void Arbiter::on_swap_ready(ProxyProcess* p) {
  if (!swap_ || p != swap_->candidate.get() || swap_->promoted) return;
  promote_replacement();
}

void Arbiter::promote_replacement() {
  crash::Operation op("replacing the proxy: the new one serves");
  std::unique_ptr<ProxyProcess> old = std::move(proxy_);
  proxy_ = std::move(swap_->candidate);
  proxy_->set_restart(true);
  swap_->promoted = true;
  swap_->result.new_pid = proxy_->pid();
  if (old->running()) {
    CORRAL_LOG(Info, kTag) << "proxy pid " << proxy_->pid() << " serves; pid " << old->pid()
                           << " retires (stops accepting, hands its idle keep-alive connections over, finishes the rest "
                           << "within graceful_timeout " << format_duration(config_.supervisor.graceful_timeout) << ")";
    old->retire(config_.supervisor.graceful_timeout + kRetireKillGrace);
    swap_->retiring = old.get();
    outgoing_.push_back(std::move(old));
    swap_timer_.arm(kHandoffBound);
  }
  // The serving proxy changed: GET /status asks the new one from now on, and a reload's
  // answer waits for the new one to have applied the pool (reply_after_proxy).
  if (status_query_ != 0) answer_status();
  if (barrier_query_ != 0) {
    const uint64_t q = ++next_query_;
    if (proxy_->send(control::StatsQuery{q})) barrier_query_ = q;
    else release_barrier();
  }
  recheck_drained();
  maybe_notify_ready();
  if (!swap_->retiring) {
    // The old one died while this one started; it serves only once ready.
    if (proxy_->ready()) finish_swap("the old proxy had exited");
  }
}

void Arbiter::fail_swap(int status, const std::string& why) {
  if (!swap_) return;
  std::unique_ptr<ProxySwap> swap = std::move(swap_);
  swap_timer_.cancel();
  if (swap->candidate && swap->candidate->running()) {
    swap->candidate->kill_now();
    outgoing_.push_back(std::move(swap->candidate));  // reaped later
  }
  CORRAL_LOG(Error, kTag) << "proxy replacement failed: " << why << "; proxy pid " << proxy_->pid()
                          << " keeps serving";
  ProxySwapOutcome o = swap->result;
  o.status = status;
  o.error = why;
  o.new_pid = 0;
  o.seconds = seconds_since(swap->started);
  recheck_drained();
  for (auto& d : swap->done) d(o);
}

void Arbiter::finish_swap(const std::string& note) {
  if (!swap_) return;
  std::unique_ptr<ProxySwap> swap = std::move(swap_);
  swap_timer_.cancel();
  ProxySwapOutcome o = swap->result;
  o.status = 200;
  o.seconds = seconds_since(swap->started);
  CORRAL_LOG(Info, kTag) << "proxy replaced in " << static_cast<int>(o.seconds * 1000) << " ms: pid " << o.old_pid
                         << " -> pid " << o.new_pid << "; " << o.handed_over
                         << " idle connection(s) handed over, " << o.kept << " still finishing on the old one"
                         << (o.refused ? ", " + std::to_string(o.refused) + " refused by the checks" : std::string())
                         << (note.empty() ? std::string() : " (" + note + ")");
  for (auto& d : swap->done) d(o);
}

std::string Arbiter::check_handed(const control::HandedConnection& c, int fd) const {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return "not a socket";
  if (sockopt(fd, SO_TYPE) != SOCK_STREAM || sockopt(fd, SO_ACCEPTCONN) != 0) return "not a connected stream socket";
  const BoundListener* l = nullptr;
  for (auto& b : listeners_)
    if (b.bound == c.listener) l = &b;
  if (!l) return "no listener " + c.listener.substr(0, 64);
  // listeners_ is in config order; two listeners may share a configured address ("127.0.0.1:0").
  const size_t index = static_cast<size_t>(l - listeners_.data());
  if (index < config_.listeners.size() && !config_.listeners[index].tls.empty()) return "listener " + l->bound + " is TLS";
  sockaddr_storage local{}, want{}, peer{};
  socklen_t n1 = sizeof local, n2 = sizeof want, n3 = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n1) != 0 ||
      ::getsockname(l->fd.get(), reinterpret_cast<sockaddr*>(&want), &n2) != 0 || !same_local_address(local, want))
    return "not a connection accepted on " + l->bound;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &n3) != 0) return "not connected";
  in6_addr probe{};
  if (::inet_pton(AF_INET, c.client.c_str(), &probe) != 1 && ::inet_pton(AF_INET6, c.client.c_str(), &probe) != 1)
    return "client address '" + c.client.substr(0, 64) + "' is not an IP address";
  return {};
}

void Arbiter::on_handoff(ProxyProcess* from, control::HandoffConnections&& h, std::vector<UniqueFd>&& fds) {
  crash::Operation op("passing connections to the new proxy");
  const bool counted = swap_ && swap_->retiring == from;
  control::AdoptConnections adopt;
  std::vector<int> pass;
  uint64_t refused = 0;
  std::string first_why;
  if (fds.size() != h.connections.size()) {
    refused = std::max(fds.size(), h.connections.size());
    first_why = std::to_string(fds.size()) + " fds for " + std::to_string(h.connections.size()) + " entries";
  } else {
    for (size_t i = 0; i < fds.size(); ++i) {
      std::string why = check_handed(h.connections[i], fds[i].get());
      if (!why.empty()) {
        if (first_why.empty()) first_why = why;
        ++refused;
        continue;
      }
      adopt.connections.push_back(std::move(h.connections[i]));
      pass.push_back(fds[i].get());
    }
  }
  if (refused) {
    CORRAL_LOG(Warn, kTag) << "retiring proxy pid " << from->pid() << " handed over " << refused
                           << " connection(s) that fail the checks; closed (" << first_why << ")";
  }
  uint64_t passed = 0;
  if (!pass.empty()) {
    if (proxy_->running() && proxy_->ready() && proxy_->send(adopt, pass)) {
      passed = pass.size();
    } else {
      CORRAL_LOG(Warn, kTag) << "no serving proxy to take " << pass.size()
                             << " idle connection(s) from the retiring one; closed (their clients reconnect)";
    }
  }
  // Our copies close here; the new proxy holds its own (sent with the message).
  fds.clear();
  if (!counted) return;
  swap_->result.handed_over += passed;
  swap_->result.refused += refused;
  if (h.last) {
    swap_->result.kept = h.kept;
    swap_->retiring = nullptr;
    finish_swap("");
  }
}

void Arbiter::on_proxy_slot_event(ProxyProcess* from, const control::SlotEvent& e) {
  if (e.kind != control::SlotEvent::Kind::Drained) return on_slot_event(e);
  // A worker may stop only when no proxy has a request on it any more.
  const auto receivers = pool_receivers();
  if (receivers.size() <= 1 || from->pid() <= 0) {
    drained_by_.erase({e.app, e.slot, e.generation});
    return on_slot_event(e);
  }
  auto& by = drained_by_[{e.app, e.slot, e.generation}];
  if (std::find(by.begin(), by.end(), from->pid()) == by.end()) by.push_back(from->pid());
  recheck_drained();
}

void Arbiter::recheck_drained() {
  if (drained_by_.empty()) return;
  std::vector<pid_t> live;
  for (ProxyProcess* p : pool_receivers())
    if (p->running()) live.push_back(p->pid());
  std::vector<control::SlotEvent> ready;
  for (auto it = drained_by_.begin(); it != drained_by_.end();) {
    const auto& by = it->second;
    const bool all = std::all_of(live.begin(), live.end(), [&](pid_t p) { return std::find(by.begin(), by.end(), p) != by.end(); });
    if (!all) {
      ++it;
      continue;
    }
    control::SlotEvent e;
    std::tie(e.app, e.slot, e.generation) = it->first;
    e.kind = control::SlotEvent::Kind::Drained;
    ready.push_back(std::move(e));
    it = drained_by_.erase(it);
  }
  for (auto& e : ready) on_slot_event(e);
}

bool Arbiter::reap_other_proxy(pid_t pid, int status) {
  if (pid <= 0) return false;
  if (swap_ && swap_->candidate && swap_->candidate->pid() == pid) {
    swap_->candidate->on_exit(pid, status);
    std::string how = swap_->candidate->status()["last_exit"].value("exit", std::string("exited"));
    fail_swap(500, "the new proxy " + how + " before it was ready (see the log above)");
    return true;
  }
  for (auto it = outgoing_.begin(); it != outgoing_.end(); ++it) {
    if ((*it)->pid() != pid) continue;
    std::unique_ptr<ProxyProcess> gone = std::move(*it);
    outgoing_.erase(it);
    gone->on_exit(pid, status);
    if (swap_ && swap_->retiring == gone.get()) {
      swap_->retiring = nullptr;
      finish_swap("the old proxy exited before its hand-over report");
    }
    recheck_drained();
    return true;
  }
  // The serving proxy died while its replacement starts: the replacement takes over now
  // (it holds the listeners and the state already), no restart of the old one.
  if (swap_ && !swap_->promoted && swap_->candidate && swap_->candidate->running() && pid == proxy_->pid()) {
    proxy_->set_restart(false, "its replacement pid " + std::to_string(swap_->candidate->pid()) + " takes over");
    proxy_->on_exit(pid, status);
    for (auto& p : pools_) p->on_proxy_gone();
    for (auto& p : retired_pools_) p->on_proxy_gone();
    promote_replacement();
    return true;
  }
  return false;
}

nlohmann::json Arbiter::proxy_swap_status() const {
  nlohmann::json retiring = nlohmann::json::array();
  for (auto& o : outgoing_) {
    if (o->running() && o->retiring()) retiring.push_back(o->status());
  }
  nlohmann::json out{{"in_progress", swap_ != nullptr}, {"retiring", retiring}};
  if (swap_) {
    out["old_pid"] = swap_->old_pid;
    out["new_pid"] = swap_->promoted ? proxy_->pid() : swap_->candidate ? swap_->candidate->pid() : 0;
    out["phase"] = swap_->promoted ? "handing_over" : "starting";
    out["seconds"] = seconds_since(swap_->started);
  }
  return out;
}

ControlApi::Response Arbiter::on_restart_proxy_request(uint64_t id) {
  CORRAL_LOG(Info, kTag) << "proxy restart requested over the control API";
  replace_proxy([this, id](const ProxySwapOutcome& o) {
    nlohmann::json body{{"old_pid", o.old_pid}, {"new_pid", o.new_pid}, {"handed_over", o.handed_over},
                        {"refused", o.refused}, {"kept", o.kept}, {"seconds", o.seconds}};
    if (o.ok()) body["status"] = "replaced";
    else body["error"] = o.error;
    control_.reply(id, {o.status, body.dump()});
  });
  return {0, {}};  // answered when the replacement finished or failed
}

}  // namespace corral::supervisor
