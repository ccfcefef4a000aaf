// Make-before-break replacement of the proxy, both ends (PROTOCOL.md: retire,
// handoff_connections, adopt_connections).
//
// The retiring proxy (Server::on_retire) stops accepting without shutdown() (the listening
// sockets are shared with its successor: a shutdown would stop theirs too) and lets go of
// its copies of them. Every loop then sorts its connections:
// - idle plaintext HTTP/1.1 connections (parked between requests with nothing buffered, or
//   accepted with no byte read yet) leave: their fds go to the supervisor in batches of at
//   most net::kMaxFds, with the accepting listener, the client's address and ports (they may
//   come from a PROXY header that cannot be read twice) and the keep-alive time left;
// - the others stay until what is in flight is done: an HTTP/1.1 response carries
//   Connection: close, HTTP/2 gets the notice + PING + GOAWAY pair; TLS connections cannot
//   move (the TLS state lives in this process): an idle one gets kFirstRequestGraceOnDrain
//   for a request on its way (answered with Connection: close), then closes; tunnels
//   (WebSocket) stay until either side closes them or graceful_timeout.
// The process exits when no connection is left, or at graceful_timeout (what remains is cut).
//
// The successor (Server::on_adopt_connections) takes each one as if just accepted on that
// listener (its limits apply), either parked for the keep-alive time left or waiting for
// its first request, never reading a PROXY header again.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/base/log.h"
#include "common/net/fd_passing.h"
#include "proxy/client_connection.h"
#include "proxy/loop_thread.h"
#include "proxy/runtime.h"
#include "proxy/server.h"

namespace corral::proxy {
namespace {
constexpr std::chrono::milliseconds kFlushWait{2000};

uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return 0;
}

bool parse_ip(const std::string& text, sockaddr_storage& out) {
  out = {};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    return true;
  }
  return false;
}
}  // namespace

// ---- the connection ----

bool ClientConnection::hand_off(const std::string& listener, HandedOff& out) {
  if (closed_ || ssl_ || draining_ || (pre_ && !pre_->empty())) return false;
  bool fresh = false;
  if (phase_ == Phase::Sniff) {
    fresh = true;  // nothing read (the sniff only peeks)
  } else if (phase_ == Phase::Session && !session_ && h1_ && !awaiting_first_) {
    fresh = false;  // parked between requests: nothing buffered on our side
  } else {
    return false;
  }
  uint64_t idle_ms = 0;
  if (!fresh) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(parked_until_ - host_.loop().now());
    if (left.count() <= 0) return false;  // its keep-alive ends now anyway
    idle_ms = static_cast<uint64_t>(left.count());
  }
  out.info = control::HandedConnection{listener, client_ip_, client_port(), server_port(), idle_ms, fresh};
  // Finished here as if closed, but the socket moves on open.
  closed_ = true;
  if (mc_) mc_->open[static_cast<size_t>(counted_as_)].add(-1);
  watch_.set(false, false);
  timer_.cancel();
  out.fd = std::move(fd_);
  slot_.release();
  host_.connection_closed(this);
  return true;
}

void ClientConnection::retire() {
  if (closed_) return;
  if (session_) {
    session_->announce_drain();  // HTTP/2: GOAWAY pair; HTTP/1.1: the host's drain_announced() ends keep-alive
    return;
  }
  // Idle without a session (TLS parked, or handshaken and waiting for its first request): a
  // request may be on its way; else it closes like a keep-alive timeout.
  if (phase_ == Phase::Session) watch_.set_timeout(kFirstRequestGraceOnDrain);
  // Before a session (PROXY header, handshake, a partial h2c preface): its own deadline runs.
}

void ClientConnection::start_adopted(const control::HandedConnection& info, bool proxy_header) {
  if (proxy_header) {
    client_port_ = static_cast<uint16_t>(info.client_port);
    server_port_ = static_cast<uint16_t>(info.server_port);
    ports_known_ = true;
  }
  const auto& settings = host_.runtime()->proxy;
  const auto& trusted = host_.runtime()->trusted_proxies;
  forwarded_trusted_ = !trusted.empty() && trusted.contains_text(client_ip_);
  if (info.fresh) {
    timer_.arm(settings.client_header_timeout);
    begin_protocol();
    return;
  }
  phase_ = Phase::Session;
  h1_ = true;
  protocol_ = "http/1.1";
  count_as(metrics::ConnProtocol::Http1);
  auto idle = std::chrono::milliseconds(
      static_cast<int64_t>(std::min<uint64_t>(info.idle_ms, static_cast<uint64_t>(settings.keepalive_timeout.count()))));
  if (idle.count() <= 0) idle = std::chrono::milliseconds(1);
  want_read_ = true;
  want_write_ = false;
  watch_.set(true, false);
  watch_.set_timeout(idle);
  parked_until_ = host_.loop().now() + idle;
}

// ---- the loop ----

void LoopThread::retire(std::function<void(std::vector<HandedOff>&&, size_t kept)> done) {
  loop_.post([this, done = std::move(done)] {
    std::vector<HandedOff> out;
    if (retiring_ || draining_) {
      done(std::move(out), connection_count_);
      return;
    }
    retiring_ = true;
    drain_announced_ = true;  // every response from now on ends its connection
    // Where each listener is bound (the successor knows its listeners by that address).
    std::vector<std::pair<const ListenerRuntime*, std::string>> bound;
    if (runtime_ && listener_set_)
      for (size_t i = 0; i < runtime_->listeners.size() && i < listener_set_->addresses.size(); ++i)
        bound.emplace_back(runtime_->listeners[i].get(), listener_set_->addresses[i]);
    listeners_.clear();  // no more accepts here; never shutdown(): the sockets are shared
    admin_watch_.reset();
    listener_set_.reset();  // the fds close once every loop and the server let go
    std::vector<ClientConnection*> all;
    all.reserve(connection_count_);
    for (ClientConnection* c = first_connection_; c; c = c->host_next_) all.push_back(c);
    for (auto* c : all) {
      const ListenerRuntime* l = c->listener();
      std::string where;
      if (l && !l->admin) {
        for (auto& [p, a] : bound)
          if (p == l) where = a;
        if (where.empty()) {
          // Accepted under an earlier snapshot of the same listener (before a reload): the
          // one with its address whose bound port is the socket's (several listeners may be
          // configured as "127.0.0.1:0").
          const std::string port = ":" + std::to_string(local_port(c->fd()));
          for (auto& [p, a] : bound)
            if (p->address == l->address && a.size() > port.size() &&
                a.compare(a.size() - port.size(), port.size(), port) == 0)
              where = a;
        }
      }
      HandedOff h;
      if (!where.empty() && c->hand_off(where, h)) {
        out.push_back(std::move(h));
        continue;
      }
      c->retire();
    }
    done(std::move(out), connection_count_);
    check_drained();
  });
}

void LoopThread::adopt_handed(UniqueFd fd, control::HandedConnection info, size_t listener_index) {
  auto box = std::make_shared<UniqueFd>(std::move(fd));
  loop_.post([this, box, info = std::move(info), listener_index] {
    UniqueFd conn = std::move(*box);
    if (!runtime_ || draining_ || retiring_ || listener_index >= runtime_->listeners.size()) return;
    const auto& l = runtime_->listener(listener_index);
    if (!l || l->tls || l->admin) return;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(conn.get(), reinterpret_cast<sockaddr*>(&peer), &len) != 0) return;  // gone meanwhile
    ConnectionSlot slot;
    if (l->limiter) {
      const auto verdict = l->limiter->admit(client_key(peer), l->max_connections,
                                             l->proxy_protocol ? 0 : l->max_connections_per_client, slot);
      if (verdict != ConnectionLimiter::Verdict::Admitted) return;  // idle: its client reconnects
      sockaddr_storage client{};
      if (l->proxy_protocol && l->max_connections_per_client && parse_ip(info.client, client) &&
          slot.count_client(client_key(client), l->max_connections_per_client) == LimitVerdict::ClientFull)
        return;
    }
    set_nodelay(conn.get(), peer);
    auto* c = new ClientConnection(*this, std::move(conn), l->proxy_protocol ? info.client : peer_ip(peer), l);
    c->hold(std::move(slot));
    link(c);  // owned by the list until connection_closed()
    c->start_adopted(info, l->proxy_protocol);
    counters_.connections_adopted.add();
  });
}

// ---- the process ----

void Server::on_retire() {
  if (retiring_ || stopping_) return;
  retiring_ = true;
  const auto timeout = config_ ? config_->supervisor.graceful_timeout : std::chrono::milliseconds(30'000);
  CORRAL_LOG(Info, "proxy") << "retiring: a new proxy accepts on the listeners now; handing idle keep-alive "
                            << "connections over and finishing the others (up to " << timeout.count() << "ms)";
  listeners_.reset();
  if (loops_.empty()) {
    if (control_) control_->send_with_fds(control::HandoffConnections{{}, true, 0}, {});
    exit_when_flushed(0);
    return;
  }
  graceful_timer_ = std::make_unique<ev::Timer>(main_, [this] {
    CORRAL_LOG(Warn, "proxy") << "graceful timeout passed while retiring; closing the remaining connections";
    exit_when_flushed(0);
  });
  graceful_timer_->arm(timeout);
  for (auto& l : loops_)
    l->retire([this](std::vector<HandedOff>&& handed, size_t kept) {
      auto box = std::make_shared<std::vector<HandedOff>>(std::move(handed));
      main_.post([this, box, kept] { on_loop_handoff(std::move(*box), kept); });
    });
}

void Server::on_loop_handoff(std::vector<HandedOff>&& handed, size_t kept) {
  for (auto& h : handed) handoff_.push_back(std::move(h));
  handoff_kept_ += kept;
  if (++handoff_reports_ < loops_.size()) return;
  const size_t n = handoff_.size();
  size_t sent = 0, lost = 0;
  do {
    control::HandoffConnections m;
    std::vector<int> fds;
    const size_t first = sent;
    for (; sent < n && sent - first < net::kMaxFds; ++sent) {
      m.connections.push_back(handoff_[sent].info);
      fds.push_back(handoff_[sent].fd.get());
    }
    m.last = sent == n;
    m.kept = handoff_kept_;
    if (!control_ || !control_->send_with_fds(m, fds)) lost += fds.size();
  } while (sent < n);
  handoff_.clear();  // our copies close; the channel holds its own until they are written
  if (lost) {
    CORRAL_LOG(Warn, "proxy") << "could not hand " << lost << " idle connection(s) over; closed (their clients reconnect)";
  }
  CORRAL_LOG(Info, "proxy") << "handed " << (n - lost) << " idle connection(s) over to the new proxy; "
                            << handoff_kept_ << " still open here";
}

void Server::on_adopt_connections(control::AdoptConnections&& m, std::vector<UniqueFd>&& fds) {
  if (fds.size() != m.connections.size() || retiring_ || stopping_ || loops_.empty() || !listeners_) {
    CORRAL_LOG(Warn, "proxy") << "cannot adopt " << fds.size() << " handed-over connection(s) now; closed";
    return;
  }
  size_t adopted = 0;
  for (size_t i = 0; i < fds.size(); ++i) {
    const auto& addresses = listeners_->addresses;
    auto it = std::find(addresses.begin(), addresses.end(), m.connections[i].listener);
    if (it == addresses.end()) continue;  // closed
    const auto index = static_cast<size_t>(it - addresses.begin());
    loops_[adopt_next_++ % loops_.size()]->adopt_handed(std::move(fds[i]), std::move(m.connections[i]), index);
    ++adopted;
  }
  CORRAL_LOG(Info, "proxy") << "adopted " << adopted << " idle connection(s) from the retiring proxy";
}

void Server::exit_when_flushed(int code) {
  exit_code_ = code;
  if (!exit_timer_) {
    exit_by_ = std::chrono::steady_clock::now() + kFlushWait;
    exit_timer_ = std::make_unique<ev::Timer>(main_, [this] { exit_when_flushed(exit_code_); });
  }
  if (!control_ || control_->flushed() || std::chrono::steady_clock::now() >= exit_by_) {
    main_.break_loop();
    return;
  }
  exit_timer_->arm(std::chrono::milliseconds(10));
}

}  // namespace corral::proxy
