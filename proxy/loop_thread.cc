#include "proxy/loop_thread.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "common/base/log.h"
#include "common/base/log_throttle.h"
#include "proxy/frontend/http1_session.h"
#include "proxy/static/open_file.h"

namespace corral::proxy {
namespace {
// Spare HTTP/1.1 sessions kept per loop: enough for the connections that are busy at once
// on a loaded loop; the rest are freed (a spare session without buffers is ~3 KiB).
constexpr size_t kMaxSpareSessions = 128;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Accept pauses of every loop and listener: one log line per second at most, process-wide.
LogThrottle g_pause_log;
// Connections to a proxy_protocol listener from outside proxy_protocol_trusted: the same.
LogThrottle g_untrusted_log;
}  // namespace

LoopThread::LoopThread(int index, LoopShared& shared)
    : index_(index),
      shared_(shared),
      file_cache_timer_(loop_,
                        [this] {
                          statics::FileCache::for_this_thread().expire(loop_.now());
                          watch_file_cache();
                        }),
      pool_(loop_),
      access_log_(shared.access_log) {}

LoopThread::~LoopThread() {
  stop();
  // Sessions reference the pool and the loop: destroy them first.
  destroying_ = true;
  listeners_.clear();
  while (first_connection_) {
    ClientConnection* c = first_connection_;
    unlink(c);
    delete c;
  }
  graveyard_.clear();
  returned_sessions_.clear();
  spare_sessions_.clear();
}

void LoopThread::start() {
  thread_ = std::thread([this] {
    // The loop's own wake-up event is persistent, so run() returns only after break_loop().
    while (!stop_.load()) {
      if (!loop_.run()) {
        CORRAL_LOG(Error, "loop") << "event loop " << index_ << " failed";
        break;
      }
    }
  });
}

void LoopThread::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  loop_.break_loop();
  thread_.join();
}

void LoopThread::set_runtime(std::shared_ptr<const Runtime> rt) {
  loop_.post([this, rt = std::move(rt)] {
    runtime_ = rt;
    watch_file_cache();  // the entries of folders the new config dropped go once inactive
  });
}

void LoopThread::watch_file_cache() {
  const statics::FileCache& cache = statics::FileCache::for_this_thread();
  // Half the inactive period: an entry goes at most 1.5 periods after its last use.
  if (!cache.empty() && !file_cache_timer_.armed()) file_cache_timer_.arm(cache.inactive() / 2);
}

void LoopThread::set_access_log(std::shared_ptr<AccessLog> log) {
  loop_.post([this, log = std::move(log)] { access_log_ = log; });
}

void LoopThread::set_listeners(std::shared_ptr<const ListenerSet> ls) {
  loop_.post([this, ls = std::move(ls)] {
    if (retiring_) return;  // a successor accepts now
    listeners_.clear();  // unwatch before the old set may close its fds
    admin_watch_.reset();
    listener_set_ = ls;
    if (!ls) return;
    // After the listeners' fds comes the admin listener's, when there is one.
    if (ls->fds.size() > ls->addresses.size())
      admin_watch_ = std::make_unique<Listener>(
          loop_, ls->fds.back().get(),
          [this](UniqueFd c, const sockaddr_storage& peer) {
            set_nodelay(c.get(), peer);
            adopt(std::move(c), peer_ip(peer), Runtime::kAdminListener, {}, port_of(peer), admin_watch_->local_port());
          },
          64, [this](int err, std::chrono::milliseconds backoff) { on_accept_paused(SIZE_MAX, err, backoff); });
    if (draining_) return;
    for (size_t i = 0; i < ls->addresses.size() && i < ls->fds.size(); ++i)
      listeners_.push_back(std::make_unique<Listener>(
          loop_, ls->fds[i].get(),
          [this, i](UniqueFd c, const sockaddr_storage& peer) { accept_client(std::move(c), peer, i); }, 64,
          [this, i](int err, std::chrono::milliseconds backoff) { on_accept_paused(i, err, backoff); }));
  });
}

void LoopThread::retain_upstreams(std::shared_ptr<const std::vector<std::pair<std::string, uint64_t>>> live) {
  loop_.post([this, live = std::move(live)] { pool_.retain(*live); });
}

void LoopThread::begin_drain() {
  loop_.post([this] {
    // What waits in the backlog is served; later connections are refused (stop_listening).
    for (auto& l : listeners_) l->stop_listening();
    draining_ = true;
    listeners_.clear();  // the admin listener keeps answering (/readyz says "stopping")
    if (!admin_watch_) listener_set_.reset();
    std::vector<ClientConnection*> all;
    all.reserve(connection_count_);
    for (ClientConnection* c = first_connection_; c; c = c->host_next_) all.push_back(c);
    for (auto* c : all) c->drain();
    check_drained();
  });
}

void LoopThread::set_drain_announced(bool on) {
  loop_.post([this, on] {
    if (drain_announced_ == on) return;
    drain_announced_ = on;
    if (!on) return;
    std::vector<ClientConnection*> all;
    all.reserve(connection_count_);
    for (ClientConnection* c = first_connection_; c; c = c->host_next_) all.push_back(c);
    for (auto* c : all) c->announce_drain();
  });
}

void LoopThread::adopt(UniqueFd fd, std::string client_ip, size_t listener_index, ConnectionSlot slot,
                       uint16_t client_port, uint16_t local_port) {
  // No config yet, or draining: the socket closes (the admin listener answers while draining).
  if (!runtime_ || retiring_ || (draining_ && listener_index != Runtime::kAdminListener)) return;
  auto* c = new ClientConnection(*this, std::move(fd), std::move(client_ip), runtime_->listener(listener_index));
  // Both ports known without a system call each: the peer's from accept, ours the listener's.
  if (local_port) c->set_ports(client_port, local_port);
  c->hold(std::move(slot));
  link(c);  // owned by the list until connection_closed()
  c->start();
}

void LoopThread::accept_client(UniqueFd fd, const sockaddr_storage& peer, size_t index) {
  if (!runtime_ || draining_ || retiring_) return;
  const auto& l = runtime_->listener(index);
  if (l->proxy_protocol && !l->proxy_protocol_trusted.contains(peer)) {
    refuse_untrusted(std::move(fd), *l, peer);
    return;
  }
  ConnectionSlot slot;
  if (l->limiter) {
    ClientKey key = client_key(peer);
    // Behind PROXY protocol the peer is the balancer: the client is counted once the header
    // names it (ClientConnection::apply_proxy_header).
    auto verdict = l->limiter->admit(key, l->max_connections, l->proxy_protocol ? 0 : l->max_connections_per_client, slot);
    if (verdict != ConnectionLimiter::Verdict::Admitted) {
      refuse(std::move(fd), *l, key, verdict);
      return;
    }
  }
  set_nodelay(fd.get(), peer);  // admitted: a refused connection is reset without it
  adopt(std::move(fd), peer_ip(peer), index, std::move(slot), port_of(peer),
        index < listeners_.size() ? listeners_[index]->local_port() : 0);
}

void LoopThread::refuse(UniqueFd fd, const ListenerRuntime& l, const ClientKey& key, ConnectionLimiter::Verdict why) {
  // A reset, not a FIN: the client learns at once, and no TIME_WAIT is left on our side for
  // every connection of a flood.
  linger lg{1, 0};
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  fd.reset();
  bool per_client = why == ConnectionLimiter::Verdict::ClientFull;
  if (l.metrics) l.metrics->counters.at(static_cast<size_t>(index_)).refused[per_client ? 1 : 0].add();
  uint64_t total = 0, client = 0;
  if (!l.limiter->note_refusal(steady_ms(), why, total, client)) return;
  uint64_t n = total + client;
  std::string why_text;
  if (total) why_text = std::to_string(total) + " at max_connections = " + std::to_string(l.max_connections);
  if (client)
    why_text += std::string(total ? "; " : "") + std::to_string(client) + " at max_connections_per_client = " +
                std::to_string(l.max_connections_per_client) +
                (why == ConnectionLimiter::Verdict::ClientFull ? ", the latest from " + client_key_text(key) : "");
  CORRAL_LOG(Warn, "listener") << "listener " << l.address << ": refused " << n << " connection" << (n == 1 ? "" : "s")
                               << " since the last such line (" << why_text << ")";
}

void LoopThread::refuse_untrusted(UniqueFd fd, const ListenerRuntime& l, const sockaddr_storage& peer) {
  linger lg{1, 0};  // a reset, unread: nothing of the peer's bytes is looked at
  setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  fd.reset();
  if (l.metrics) l.metrics->counters.at(static_cast<size_t>(index_)).refused[2].add();
  if (uint64_t held = 0; g_untrusted_log.allow(&held)) {
    CORRAL_LOG(Warn, "listener") << "listener " << l.address << ": reset a connection from " << peer_ip(peer)
                                 << ", which is not in proxy_protocol_trusted (" << held
                                 << " more such since the last line)";
  }
}

void LoopThread::on_accept_paused(size_t index, int err, std::chrono::milliseconds backoff) {
  counters_.accept_pauses.add();
  uint64_t held = 0;
  if (!g_pause_log.allow(&held)) return;
  const uint64_t pauses = held + 1;  // this one included
  std::string address = "admin";
  if (index != SIZE_MAX && listener_set_ && index < listener_set_->addresses.size())
    address = listener_set_->addresses[index];
  CORRAL_LOG(Warn, "listener") << "accept on " << address << ": " << std::strerror(err) << "; not accepting for "
                               << backoff.count() << " ms (" << pauses << " pause" << (pauses == 1 ? "" : "s")
                               << " since the last such line; connections wait in the listen backlog)";
}

void LoopThread::link(ClientConnection* c) {
  c->host_prev_ = nullptr;
  c->host_next_ = first_connection_;
  if (first_connection_) first_connection_->host_prev_ = c;
  first_connection_ = c;
  c->host_listed_ = true;
  ++connection_count_;
}

void LoopThread::unlink(ClientConnection* c) {
  if (c->host_prev_) c->host_prev_->host_next_ = c->host_next_;
  else first_connection_ = c->host_next_;
  if (c->host_next_) c->host_next_->host_prev_ = c->host_prev_;
  c->host_prev_ = c->host_next_ = nullptr;
  c->host_listed_ = false;
  --connection_count_;
}

void LoopThread::connection_closed(ClientConnection* c) {
  if (!c->host_listed_) return;
  unlink(c);
  graveyard_.push_back(std::unique_ptr<ClientConnection>(c));
  // Destroyed after the current callback chain unwinds (it may be running inside s).
  schedule_reap();
  watch_file_cache();  // the connection may have filled the cache
}

size_t LoopThread::parked_count() const {
  size_t n = 0;
  for (const ClientConnection* c = first_connection_; c; c = c->host_next_) n += c->parked() ? 1 : 0;
  return n;
}

std::unique_ptr<Http1Session> LoopThread::take_http1_session() {
  if (spare_sessions_.empty()) return nullptr;
  auto s = std::move(spare_sessions_.back());
  spare_sessions_.pop_back();
  return s;
}

void LoopThread::give_back_http1_session(std::unique_ptr<Http1Session> s) {
  if (destroying_) return;  // destroyed here: no callback of it is running
  // A detached session does nothing more, so it can be reused at once even while its own
  // callback unwinds (only a new fd event takes one, never a callback of another session).
  // Destroying it must wait until the callback chain is over.
  if (spare_sessions_.size() < kMaxSpareSessions) {
    spare_sessions_.push_back(std::move(s));
    return;
  }
  returned_sessions_.push_back(std::move(s));
  schedule_reap();
}

void LoopThread::schedule_reap() {
  if (reap_posted_) return;
  reap_posted_ = true;
  loop_.post([this] { reap(); });
}

void LoopThread::reap() {
  graveyard_.clear();  // their sessions come back (spare or returned)
  returned_sessions_.clear();
  reap_posted_ = false;
  check_drained();
}

void LoopThread::check_drained() {
  if ((draining_ || retiring_) && connection_count_ == 0 && !drained_reported_) {
    drained_reported_ = true;
    if (shared_.on_drained) shared_.on_drained(index_);
  }
}

std::string LoopThread::https_port() const {
  if (!runtime_ || !listener_set_) return {};
  for (size_t i = 0; i < runtime_->listeners.size() && i < listener_set_->addresses.size(); ++i) {
    if (!runtime_->listeners[i]->tls) continue;
    const std::string& a = listener_set_->addresses[i];
    size_t c = a.rfind(':');
    if (c == std::string::npos || a.substr(c + 1) == "443") return {};
    return a.substr(c);
  }
  return {};
}

void LoopThread::log_access(const AccessRecord& r) {
  if (!access_log_ || !access_log_->enabled()) return;
  log_line_.clear();
  access_log_->format(r, log_line_);
  if (!access_log_->write(log_line_)) counters_.access_log_dropped.add();
}

void LoopThread::report_hung(const std::string& app, int slot, uint64_t generation, std::string_view request_id) {
  if (shared_.on_hung) shared_.on_hung(app, slot, generation, std::string(request_id));
}

}  // namespace corral::proxy
