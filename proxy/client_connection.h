#pragma once
// One accepted client connection: the socket, TLS when the listener has it, and the
// frontend session chosen once the protocol is known (nghttpx's ClientHandler). On a
// proxy_protocol listener the PROXY header is read first (client_proxy_header.cc), under the
// same deadline as what follows it, and its client address replaces the peer's. TLS:
// handshake first (under tls_handshake_timeout), then ALPN picks HTTP/2 ("h2") or HTTP/1.1.
// Plaintext: the first bytes are sniffed for the HTTP/2 connection preface (h2c prior
// knowledge); anything else is HTTP/1.1. The session then does its I/O through read(),
// write() and want(), which hide TLS (including TLS wanting to write during a read and the
// bytes OpenSSL has decrypted but not yet returned).
//
// Loop-affine. Destruction is always deferred through SessionHost::connection_closed().
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/base/unique_fd.h"
#include "common/control/messages.h"
#include "common/ev/loop.h"
#include "proxy/connection_limiter.h"
#include "proxy/io_buffer.h"
#include "proxy/metrics/metrics.h"
#include "proxy/proxy_protocol.h"
#include "proxy/session_host.h"

typedef struct ssl_st SSL;

namespace corral::proxy {

class TlsContext;
struct ListenerRuntime;

/// A frontend protocol on a connection (Http1Session, Http2Session).
class FrontendSession {
 public:
  virtual ~FrontendSession() = default;
  /// Called once when the session is installed; bytes already read are returned by the
  /// connection's read() first.
  virtual void start() = 0;
  /// The socket is readable / writable (readable is also reported for TLS bytes pending).
  virtual void on_io(bool readable, bool writable) = 0;
  /// Graceful stop: finish what is in flight, accept nothing new, then close.
  virtual void drain() = 0;
  /// The process drains but keeps serving (SessionHost::drain_announced()): end the
  /// connection politely once what is in flight is done. HTTP/1.1 needs nothing here (its
  /// next response carries Connection: close); HTTP/2 sends GOAWAY.
  virtual void announce_drain() {}
};

/// An idle connection leaving a retiring proxy, with what its successor needs to adopt it.
struct HandedOff {
  UniqueFd fd;
  control::HandedConnection info;
};

class ClientConnection {
 public:
  /// `listener` describes the accepting listener (TLS context, redirect, HSTS); null means
  /// plaintext with defaults (tests).
  ClientConnection(SessionHost& host, UniqueFd fd, std::string client_ip,
                   std::shared_ptr<const ListenerRuntime> listener);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  /// Takes the place the connection holds in its listener's limits (given back on close).
  void hold(ConnectionSlot slot) { slot_ = std::move(slot); }
  /// Starts the TLS handshake (under tls_handshake_timeout) or the protocol sniff (under the
  /// header timeout), after the PROXY header on a proxy_protocol listener (same deadline).
  void start();
  /// A connection accepted before a graceful stop whose first request has not come yet gets
  /// this long for it (a load balancer sends it right after connecting), then closes.
  static constexpr std::chrono::milliseconds kFirstRequestGraceOnDrain{1000};
  /// Graceful stop (forwarded to the session). A connection without one closes now when it
  /// is idle between requests, or after kFirstRequestGraceOnDrain unless its first request
  /// comes.
  void drain();
  /// The process drains but keeps serving: forwarded to the session (see FrontendSession).
  void announce_drain();
  /// Retiring proxy (proxy/retire.cc): an idle plaintext HTTP/1.1 connection (parked between
  /// requests, or accepted with no byte read yet) gives its socket up into `out` (accepted on
  /// the listener bound at `listener`) and is finished here as if closed, but the socket
  /// stays open. False (nothing changes) for any other: TLS, HTTP/2, a request in progress.
  bool hand_off(const std::string& listener, HandedOff& out);
  /// Retiring proxy, for the connections not handed over: end after what is in flight
  /// (HTTP/2: notice + PING + GOAWAY; HTTP/1.1: its next response says Connection: close);
  /// idle without a session (TLS): kFirstRequestGraceOnDrain for a request on its way.
  void retire();
  /// Instead of start(), for a connection a retiring proxy handed over: `info.fresh` waits
  /// for its first request as a new one (no PROXY header again), else it parks for
  /// `info.idle_ms` (at most keepalive_timeout). `proxy_header`: the client's address and
  /// ports come from `info` (they were read from the PROXY header).
  void start_adopted(const control::HandedConnection& info, bool proxy_header);

  /// Closes the socket at once; the host destroys the connection later. Idempotent.
  void close();
  bool closed() const { return closed_; }
  /// Idle HTTP/1.1 connection waiting without a session: kept alive (see park()), or TLS
  /// waiting for its first request after the handshake.
  bool parked() const { return phase_ == Phase::Session && !session_ && !closed_; }

  // For the session.
  /// Like recv(2): >0 bytes, 0 end of stream, -1 with errno (EAGAIN: nothing now).
  ssize_t read(char* buf, size_t len);
  /// Like send(2): bytes written (maybe fewer), or -1 with errno (EAGAIN: try when writable).
  /// With TLS, a retry after EAGAIN may pass a moved or longer buffer. `more` (plaintext):
  /// more data follows at once (MSG_MORE: a response head waits for its sendfile'd body).
  ssize_t write(const char* buf, size_t len, bool more = false);
  /// Plaintext only: sendfile(2) of `len` bytes of `in_fd` from `offset` (advanced) to the
  /// socket; like write() otherwise (-1 with EAGAIN: try when writable).
  ssize_t send_file(int in_fd, off_t& offset, size_t len);
  /// Which events the session wants; the connection maps them to socket interest.
  void want(bool read, bool write);
  /// Half-closes the write side after the last byte (TLS close_notify first).
  void shutdown_write();
  /// An idle HTTP/1.1 keep-alive connection can wait without its session (nothing is
  /// buffered on our side of the socket).
  bool can_park() const;
  /// Called by the HTTP/1.1 session when it waits for the next request: detaches it and
  /// gives it back to the host; the connection then waits (at most `keepalive`) with its
  /// socket watch alone and takes a session again when the client speaks.
  void park(std::chrono::milliseconds keepalive);

  SessionHost& host() { return host_; }
  const std::string& client_ip() const { return client_ip_; }
  /// The client's source port and the local port it connected to (0 when unknown): given at
  /// accept (set_ports), else looked up once per connection (CGI's REMOTE_PORT / SERVER_PORT).
  uint16_t client_port();
  uint16_t server_port();
  void set_ports(uint16_t client_port, uint16_t server_port);
  bool tls() const { return ssl_ != nullptr; }
  /// The peer (after the PROXY header) is in [proxy] trusted_proxies of the snapshot the
  /// connection started with: its X-Forwarded-For is extended and believed.
  bool forwarded_trusted() const { return forwarded_trusted_; }
  const ListenerRuntime* listener() const { return listener_.get(); }
  /// "h2", "http/1.1" or "" (before the choice).
  const char* protocol() const { return protocol_; }
  int fd() const { return fd_.get(); }

 private:
  enum class Phase { ProxyHeader, Handshake, Sniff, Session };
  void on_io(bool readable, bool writable);
  /// After the PROXY header (or at once without one): TLS handshake or sniff.
  void begin_protocol();
  // client_proxy_header.cc: one read step of the PROXY header; closing on a bad one.
  void proxy_header();
  void proxy_header_failed(const char* why);
  void apply_proxy_header();
  void handshake();
  void sniff();
  /// recv(2) for the sniff: > 0 bytes, else 0: nothing now (EAGAIN) or closed (EOF, error).
  ssize_t sniff_recv(char* p, size_t len, int flags);
  void install(bool h2);
  void wake();
  void give_back_session();
  void update_interest();
  void on_timer();

  friend class LoopThread;  // its list of connections is threaded through them
  ClientConnection* host_prev_ = nullptr;
  ClientConnection* host_next_ = nullptr;
  bool host_listed_ = false;

  SessionHost& host_;
  UniqueFd fd_;
  std::string client_ip_;
  void lookup_ports();
  bool ports_known_ = false;
  uint16_t client_port_ = 0, server_port_ = 0;
  std::shared_ptr<const ListenerRuntime> listener_;
  ConnectionSlot slot_;  // after listener_, which keeps its limiter alive
  ev::FdWatch watch_;
  // Before the session: the handshake / preface deadline. With a session: zero-delay, for
  // TLS bytes already decrypted while the session paused.
  ev::Timer timer_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<IoBuffer> pre_;  // bytes read before the session was chosen (h2c preface)
  std::unique_ptr<ProxyHeaderReader> proxy_header_;  // while the PROXY header is read
  bool forwarded_trusted_ = false;
  std::unique_ptr<FrontendSession> session_;
  Phase phase_ = Phase::Sniff;
  bool h1_ = false;      // session_ is an Http1Session (a null session_ in Phase::Session: parked)
  const char* protocol_ = "";
  bool want_read_ = false, want_write_ = false;
  bool read_wants_write_ = false, write_wants_read_ = false;
  // The last SSL_read wanted more bytes: what OpenSSL holds (read ahead) is part of a record,
  // and the socket becomes readable when the rest comes.
  bool ssl_starved_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool awaiting_first_ = false;  // TLS HTTP/1.1 waiting for its first request without a session
  std::chrono::steady_clock::time_point parked_until_{};  // parked: when keep-alive ends
  // This loop's counters of the accepting listener (null: no metrics) and the protocol slot
  // this connection counts in.
  metrics::ListenerCounters* mc_ = nullptr;
  metrics::ConnProtocol counted_as_ = metrics::ConnProtocol::Pending;
  void count_as(metrics::ConnProtocol p);
  void count_tls_failure(unsigned long err);
};

}  // namespace corral::proxy
