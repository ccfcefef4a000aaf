// ClientConnection's PROXY protocol step (proxy_protocol listeners): read the header, take
// the client's address and ports from it, count the client under max_connections_per_client,
// then go on to TLS or the protocol sniff. A connection without a valid header in time is
// closed, counted (corral_connections_refused_total reason proxy_protocol_invalid) and
// logged at most once a second for the whole process.
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/base/log.h"
#include "common/base/log_throttle.h"
#include "proxy/client_connection.h"
#include "proxy/listener.h"
#include "proxy/runtime.h"

namespace corral::proxy {
namespace {

LogThrottle g_invalid_log;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void ClientConnection::proxy_header() {
  switch (proxy_header_->read(fd_.get())) {
    case ProxyHeaderReader::Step::Again: return;
    case ProxyHeaderReader::Step::Closed:
      proxy_header_failed(proxy_header_->consumed() ? "connection closed inside the PROXY header"
                                                    : "connection closed before a PROXY header");
      return;
    case ProxyHeaderReader::Step::Invalid: proxy_header_failed(proxy_header_->error()); return;
    case ProxyHeaderReader::Step::Done: break;
  }
  apply_proxy_header();
  if (closed_) return;
  const bool more = proxy_header_->more_ready();
  proxy_header_.reset();
  begin_protocol();
  if (closed_ || !more) return;  // else wait: a balancer often sends the header on its own
  // What follows the header is here already (the balancer sent both at once).
  if (phase_ == Phase::Handshake) handshake();
  else if (phase_ == Phase::Sniff) sniff();
}

void ClientConnection::apply_proxy_header() {
  const ProxyHeader& h = proxy_header_->header();
  if (h.has_addresses) {
    client_ip_ = peer_ip(h.source);
    client_port_ = port_of(h.source);
    server_port_ = port_of(h.destination);  // the port the client connected to, on the balancer
    ports_known_ = true;
    // The per-client limit counts the client the header names (the balancer was not counted).
    if (listener_ && listener_->limiter && listener_->max_connections_per_client &&
        slot_.count_client(client_key(h.source), listener_->max_connections_per_client) == LimitVerdict::ClientFull) {
      if (mc_) mc_->refused[1].add();
      uint64_t total = 0, client = 0;
      if (listener_->limiter->note_refusal(steady_ms(), LimitVerdict::ClientFull, total, client)) {
        CORRAL_LOG(Warn, "listener") << "listener " << listener_->address << ": refused " << (total + client)
                                     << " connection(s) since the last such line (" << client
                                     << " at max_connections_per_client = " << listener_->max_connections_per_client
                                     << ", the latest from " << client_ip_ << " by its PROXY header)";
      }
      linger lg{1, 0};
      setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close();
      return;
    }
  }
  // v2 LOCAL (health checks), v1 UNKNOWN, AF_UNSPEC / AF_UNIX: the peer's own address stays.
  const auto& trusted = host_.runtime()->trusted_proxies;
  forwarded_trusted_ = !trusted.empty() && trusted.contains_text(client_ip_);
}

void ClientConnection::proxy_header_failed(const char* why) {
  if (mc_) mc_->refused[3].add();
  if (uint64_t held = 0; g_invalid_log.allow(&held)) {
    CORRAL_LOG(Warn, "listener") << "listener " << (listener_ ? listener_->address : std::string("?"))
                                 << ": closed a connection from " << client_ip_ << ": " << why << " (" << held
                                 << " more such since the last line)";
  }
  close();
}

}  // namespace corral::proxy
