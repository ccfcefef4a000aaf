#include "proxy/client_connection.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/base/log.h"
#include "proxy/frontend/http1_session.h"
#include "proxy/frontend/http2_session.h"
#include "proxy/listener.h"
#include "proxy/runtime.h"
#include "proxy/tls_context.h"

namespace corral::proxy {
namespace {
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kWakeReadSize = 16 * 1024;
}  // namespace

ClientConnection::ClientConnection(SessionHost& host, UniqueFd fd, std::string client_ip,
                                   std::shared_ptr<const ListenerRuntime> listener)
    : host_(host),
      fd_(std::move(fd)),
      client_ip_(std::move(client_ip)),
      listener_(std::move(listener)),
      watch_(host.loop(), fd_.get(), [this](bool r, bool w) { on_io(r, w); }),
      timer_(host.loop(), [this] { on_timer(); }) {
  if (listener_ && listener_->metrics) {
    mc_ = &listener_->metrics->counters.at(host.thread_index());
    mc_->accepted.add();
    mc_->open[static_cast<size_t>(metrics::ConnProtocol::Pending)].add(1);
  }
}

void ClientConnection::count_as(metrics::ConnProtocol p) {
  if (!mc_) return;
  mc_->open[static_cast<size_t>(counted_as_)].add(-1);
  mc_->open[static_cast<size_t>(p)].add(1);
  counted_as_ = p;
}

void ClientConnection::count_tls_failure(unsigned long err) {
  if (!mc_) return;
  metrics::TlsFailure f = metrics::TlsFailure::Other;
  if (err == 0) {
    f = metrics::TlsFailure::ClosedByClient;
  } else if (ERR_GET_LIB(err) == ERR_LIB_SSL) {
    switch (ERR_GET_REASON(err)) {
      case SSL_R_UNEXPECTED_EOF_WHILE_READING: f = metrics::TlsFailure::ClosedByClient; break;
      case SSL_R_NO_SHARED_CIPHER:
      case SSL_R_NO_SHARED_GROUPS:
      case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM: f = metrics::TlsFailure::NoSharedCipher; break;
      case SSL_R_UNSUPPORTED_PROTOCOL:
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_VERSION_TOO_LOW:
      case SSL_R_VERSION_TOO_HIGH:
      case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION: f = metrics::TlsFailure::Version; break;
      case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
      case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
      case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
      case SSL_R_TLSV1_ALERT_DECRYPT_ERROR: f = metrics::TlsFailure::Certificate; break;
      default: f = metrics::TlsFailure::Protocol; break;
    }
  }
  mc_->tls_failures[static_cast<size_t>(f)].add();
}

ClientConnection::~ClientConnection() {
  if (session_ && h1_) give_back_session();
  session_.reset();  // the session may still talk to us while it is destroyed
  if (ssl_) SSL_free(ssl_);
}

void ClientConnection::give_back_session() {
  std::unique_ptr<Http1Session> s(static_cast<Http1Session*>(session_.release()));
  s->detach();
  host_.give_back_http1_session(std::move(s));
}

void ClientConnection::start() {
  if (listener_ && listener_->tls_failed) {
    close();  // never fall back to plaintext on a TLS port
    return;
  }
  const auto& settings = host_.runtime()->proxy;
  // One deadline from accept: the PROXY header, then the handshake or the first bytes.
  timer_.arm(listener_ && listener_->tls ? settings.tls_handshake_timeout : settings.client_header_timeout);
  if (listener_ && listener_->proxy_protocol) {
    phase_ = Phase::ProxyHeader;
    proxy_header_ = std::make_unique<ProxyHeaderReader>();
    watch_.set(true, false);
    return;
  }
  const auto& trusted = host_.runtime()->trusted_proxies;
  forwarded_trusted_ = !trusted.empty() && trusted.contains_text(client_ip_);
  begin_protocol();
}

void ClientConnection::begin_protocol() {
  if (listener_ && listener_->tls) {
    ssl_ = listener_->tls->new_ssl(fd_.get());
    if (!ssl_) {
      close();
      return;
    }
    phase_ = Phase::Handshake;
  } else {
    // Plaintext: no session until the first bytes (HTTP/1.1 only, or the h2c preface sniff),
    // so a connection that never speaks holds no session and costs no empty read.
    phase_ = Phase::Sniff;
  }
  watch_.set(true, false);
}

void ClientConnection::drain() {
  draining_ = true;
  if (session_) {
    session_->drain();
  } else if (phase_ != Phase::Session) {
    timer_.arm(kFirstRequestGraceOnDrain);  // handshake or sniff: its first request may be on its way
  } else if (awaiting_first_) {
    watch_.set_timeout(kFirstRequestGraceOnDrain);  // handshaken: likewise
  } else {
    close();  // parked: idle between requests
  }
}

void ClientConnection::announce_drain() {
  if (session_ && !closed_) session_->announce_drain();
}

void ClientConnection::close() {
  if (closed_) return;
  closed_ = true;
  if (mc_) mc_->open[static_cast<size_t>(counted_as_)].add(-1);
  watch_.set(false, false);
  timer_.cancel();
  fd_.reset();
  slot_.release();  // after the fd is closed: a new connection may take the place at once
  host_.connection_closed(this);
}

void ClientConnection::on_timer() {
  if (closed_) return;
  if (phase_ == Phase::Session) {
    // Zero-delay: TLS bytes already decrypted while the session paused.
    if (session_ && want_read_) session_->on_io(true, false);
    return;
  }
  if (phase_ == Phase::ProxyHeader) {
    proxy_header_failed("no complete PROXY header in time");
    return;
  }
  CORRAL_LOG(Debug, "tls") << "handshake/preface timeout from " << client_ip_;
  if (phase_ == Phase::Handshake && mc_) mc_->tls_failures[static_cast<size_t>(metrics::TlsFailure::Timeout)].add();
  close();
}

void ClientConnection::on_io(bool readable, bool writable) {
  if (closed_) return;
  switch (phase_) {
    case Phase::ProxyHeader: proxy_header(); return;
    case Phase::Handshake: handshake(); return;
    case Phase::Sniff: sniff(); return;
    case Phase::Session: break;
  }
  if (!session_) {  // parked
    if (!readable && !writable) {
      close();  // keep-alive timeout
      return;
    }
    wake();
    return;
  }
  // TLS may need the opposite direction to make progress: report what the session waits for.
  bool r = readable, w = writable;
  if (ssl_) {
    if (read_wants_write_ && writable) r = true;
    if (write_wants_read_ && readable) w = true;
  }
  session_->on_io(r, w);
}

void ClientConnection::handshake() {
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    const unsigned char* alpn = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &alpn, &len);
    bool h2 = len == 2 && std::memcmp(alpn, "h2", 2) == 0;
    if (mc_) mc_->tls_handshakes.add();
    install(h2);
    return;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ) {
    watch_.set(true, false);
    return;
  }
  if (err == SSL_ERROR_WANT_WRITE) {
    watch_.set(false, true);
    return;
  }
  unsigned long e = ERR_peek_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  CORRAL_LOG(Debug, "tls") << "handshake with " << client_ip_ << " failed: " << (e ? buf : "connection closed");
  count_tls_failure(e);
  ERR_clear_error();
  close();
}

void ClientConnection::sniff() {
  if (listener_ && !listener_->h2c) {
    install(false);
    return;
  }
  if (!pre_) {
    // Peek first: an HTTP/1.1 request stays in the socket and its session reads it at once,
    // so a plaintext connection needs no buffer of its own here.
    char buf[kH2Preface.size()];
    ssize_t n = sniff_recv(buf, sizeof buf, MSG_PEEK);
    if (n <= 0) return;
    size_t k = static_cast<size_t>(n);
    if (kH2Preface.substr(0, k) != std::string_view(buf, k)) {
      install(false);
      return;
    }
    // The preface so far: read it (readiness would fire again for bytes left unread).
  }
  // Read what is there (not just the preface length): the session gets it all, and a
  // request left unread in the socket would turn the close after an error into a reset.
  size_t room = 0;
  if (!pre_) pre_ = std::make_unique<IoBuffer>();
  char* p = pre_->prepare(16 * 1024, &room);
  ssize_t n = sniff_recv(p, room, 0);
  if (n <= 0) return;
  pre_->commit(static_cast<size_t>(n));
  std::string_view got = pre_->readable();
  size_t k = got.size() < kH2Preface.size() ? got.size() : kH2Preface.size();
  if (kH2Preface.substr(0, k) != got.substr(0, k)) {
    install(false);
    return;
  }
  if (k == kH2Preface.size()) install(true);
}

ssize_t ClientConnection::sniff_recv(char* p, size_t len, int flags) {
  ssize_t n;
  do {
    n = ::recv(fd_.get(), p, len, flags);
  } while (n < 0 && errno == EINTR);
  if (n > 0) return n;
  if (n == 0 || errno != EAGAIN) close();
  return 0;
}

void ClientConnection::install(bool h2) {
  phase_ = Phase::Session;
  timer_.release();  // the handshake / preface deadline is over for good
  protocol_ = h2 ? "h2" : "http/1.1";
  count_as(h2 ? metrics::ConnProtocol::Http2 : metrics::ConnProtocol::Http1);
  if (h2) {
    session_ = make_http2_session(*this);
  } else {
    h1_ = true;
    if (ssl_ && !draining_ && !SSL_has_pending(ssl_)) {
      // Nothing read past the handshake: a client that spoke at once has its request in the
      // socket still. Wait for it without a session, as a parked connection does, under the
      // header timeout: a handshaken connection that stays silent costs its SSL object and
      // no more. Plaintext gets the same by waiting in the sniff.
      awaiting_first_ = true;
      want_read_ = true;
      want_write_ = false;
      watch_.set(true, false);
      watch_.set_timeout(host_.runtime()->proxy.client_header_timeout);
      return;
    }
    auto s = host_.take_http1_session();
    if (!s) s = std::make_unique<Http1Session>(host_);
    s->attach(*this);
    session_ = std::move(s);
  }
  session_->start();
  if (draining_ && !closed_ && session_) session_->drain();
}

bool ClientConnection::can_park() const {
  return h1_ && !closed_ && !draining_ && (!pre_ || pre_->empty()) && (!ssl_ || !SSL_has_pending(ssl_));
}

void ClientConnection::park(std::chrono::milliseconds keepalive) {
  give_back_session();
  timer_.cancel();
  want_read_ = true;
  want_write_ = false;
  watch_.set(true, false);
  watch_.set_timeout(keepalive);
  parked_until_ = host_.loop().now() + keepalive;
  // OpenSSL gives its record buffers back (SSL_MODE_RELEASE_BUFFERS) once they are empty.
}

void ClientConnection::wake() {
  // Read before taking a session: most parked connections that become readable are clients
  // closing, and a mass close must not build (and buffer) a session for each of them.
  static thread_local char buf[kWakeReadSize];
  ssize_t n = read(buf, sizeof buf);
  if (n < 0) {
    if (errno != EAGAIN) {
      close();
      return;
    }
    // TLS wanting to write changed the socket interest, which dropped the timeout.
    const auto& settings = host_.runtime()->proxy;
    if (read_wants_write_)
      watch_.set_timeout(awaiting_first_ ? settings.client_header_timeout : settings.keepalive_timeout);
    return;
  }
  if (n == 0) {
    close();
    return;
  }
  watch_.clear_timeout();
  awaiting_first_ = false;
  auto s = host_.take_http1_session();
  if (!s) s = std::make_unique<Http1Session>(host_);
  s->attach(*this);
  Http1Session* raw = s.get();
  session_ = std::move(s);
  raw->resume(std::string_view(buf, static_cast<size_t>(n)));
}

ssize_t ClientConnection::read(char* buf, size_t len) {
  if (pre_ && !pre_->empty()) {
    std::string_view b = pre_->readable();
    size_t n = b.size() < len ? b.size() : len;
    std::memcpy(buf, b.data(), n);
    pre_->consume(n);
    if (pre_->empty()) pre_.reset();
    if (mc_) mc_->bytes_in.add(n);
    return static_cast<ssize_t>(n);
  }
  if (closed_) {
    errno = EBADF;
    return -1;
  }
  if (!ssl_) {
    ssize_t n;
    do {
      n = ::recv(fd_.get(), buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && mc_) mc_->bytes_in.add(static_cast<uint64_t>(n));
    return n;
  }
  ERR_clear_error();
  read_wants_write_ = false;
  int n = SSL_read(ssl_, buf, static_cast<int>(len > 1 << 30 ? 1 << 30 : len));
  if (n > 0) {
    ssl_starved_ = false;
    if (mc_) mc_->bytes_in.add(static_cast<uint64_t>(n));
    return n;
  }
  int err = SSL_get_error(ssl_, n);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      ssl_starved_ = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      read_wants_write_ = true;
      update_interest();
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0 && errno == 0) return 0;  // EOF without close_notify
      [[fallthrough]];
    default:
      ERR_clear_error();
      errno = ECONNRESET;
      return -1;
  }
}

ssize_t ClientConnection::write(const char* buf, size_t len, bool more) {
  if (closed_) {
    errno = EBADF;
    return -1;
  }
  if (!ssl_) {
    ssize_t n;
    do {
      n = ::send(fd_.get(), buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    } while (n < 0 && errno == EINTR);
    if (n > 0 && mc_) mc_->bytes_out.add(static_cast<uint64_t>(n));
    return n;
  }
  if (len == 0) return 0;
  ERR_clear_error();
  write_wants_read_ = false;
  int n = SSL_write(ssl_, buf, static_cast<int>(len > 1 << 30 ? 1 << 30 : len));
  if (n > 0) {
    if (mc_) mc_->bytes_out.add(static_cast<uint64_t>(n));
    return n;
  }
  int err = SSL_get_error(ssl_, n);
  switch (err) {
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_WANT_READ:
      write_wants_read_ = true;
      update_interest();
      errno = EAGAIN;
      return -1;
    default:
      ERR_clear_error();
      errno = EPIPE;
      return -1;
  }
}

ssize_t ClientConnection::send_file(int in_fd, off_t& offset, size_t len) {
  if (closed_ || ssl_) {
    errno = EBADF;
    return -1;
  }
  ssize_t n;
  do {
    n = ::sendfile(fd_.get(), in_fd, &offset, len);
  } while (n < 0 && errno == EINTR);
  if (n > 0 && mc_) mc_->bytes_out.add(static_cast<uint64_t>(n));
  return n;
}

void ClientConnection::shutdown_write() {
  if (closed_) return;
  if (ssl_) {
    ERR_clear_error();
    (void)SSL_shutdown(ssl_);
  }
  ::shutdown(fd_.get(), SHUT_WR);
}

void ClientConnection::want(bool read, bool write) {
  want_read_ = read;
  want_write_ = write;
  update_interest();
}

void ClientConnection::update_interest() {
  if (closed_ || phase_ != Phase::Session) return;
  bool r = want_read_ || (want_write_ && write_wants_read_);
  bool w = want_write_ || (want_read_ && read_wants_write_);
  watch_.set(r, w);
  // Bytes OpenSSL already holds (decrypted, or whole records read ahead) do not make the
  // socket readable again.
  if (ssl_ && want_read_ && !timer_.armed() && (SSL_pending(ssl_) > 0 || (!ssl_starved_ && SSL_has_pending(ssl_))))
    timer_.arm(std::chrono::milliseconds(0));
}

void ClientConnection::lookup_ports() {
  ports_known_ = true;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) client_port_ = port_of(ss);
  ss = {};
  len = sizeof ss;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) server_port_ = port_of(ss);
}

void ClientConnection::set_ports(uint16_t client_port, uint16_t server_port) {
  client_port_ = client_port;
  server_port_ = server_port;
  ports_known_ = true;
}

uint16_t ClientConnection::client_port() {
  if (!ports_known_) lookup_ports();
  return client_port_;
}

uint16_t ClientConnection::server_port() {
  if (!ports_known_) lookup_ports();
  return server_port_;
}

}  // namespace corral::proxy
