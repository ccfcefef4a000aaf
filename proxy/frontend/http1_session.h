#pragma once
// The HTTP/1.1 server side of one client connection: keep-alive, pipelining (strictly in
// order), limits and timeouts, body buffering and the HTTP/1.1 framing of the response. The
// request itself (routing, dispatch, upstream, access log) runs in the shared Exchange.
// I/O goes through the ClientConnection (plaintext or TLS).
//
// Loop-affine: created, driven and destroyed on its loop thread, owned by its connection.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/ev/loop.h"
#include "common/http1/parser.h"
#include "proxy/request_body.h"
#include "proxy/client_connection.h"
#include "proxy/exchange.h"
#include "proxy/io_buffer.h"

namespace corral::proxy {

/// Response bytes buffered for a slow client before reading from the worker pauses.
inline constexpr size_t kResponseBufferLimit = 1 << 20;

class Http1Session final : public FrontendSession, public ExchangeSink, public BodyWriter {
 public:
  /// A session is made for its host's loop and then serves one connection after another:
  /// attach() binds it, detach() frees it for reuse (see SessionHost::take_http1_session).
  explicit Http1Session(SessionHost& host);
  ~Http1Session() override;
  Http1Session(const Http1Session&) = delete;
  Http1Session& operator=(const Http1Session&) = delete;

  /// Binds the session to a connection (new, or coming back from parked) with fresh
  /// per-connection state. Call start() or resume() next.
  void attach(ClientConnection& conn);
  /// Unbinds it (the connection parked or closed): cancels anything in flight, without
  /// callbacks, and frees the buffers. The session does nothing more until attach().
  void detach();
  /// The parked connection read `first` (the start of its next request): go on from there.
  void resume(std::string_view first);

  // FrontendSession
  /// Starts reading (arms the header timeout for the first request).
  void start() override;
  void on_io(bool readable, bool writable) override;
  /// Graceful stop: an idle connection closes now; a busy one after its current response.
  void drain() override;

  ExchangeState state() const { return ex_.state; }

  // ExchangeSink
  void on_response_head(const http1::ResponseHead& head) noexcept override;
  void on_response_interim(const http1::ResponseHead& head) noexcept override;
  void on_response_body(std::string_view data) noexcept override;
  void on_response_flush() noexcept override;
  void on_response_complete() noexcept override;
  void on_response_file(std::shared_ptr<const statics::OpenFile> file, uint64_t offset,
                        uint64_t length) noexcept override;
  void on_exchange_failed(int status, bool retry_after) noexcept override;
  void on_upgrade(const http1::ResponseHead& head) noexcept override;
  void on_tunnel_data(std::string_view data) noexcept override;
  void on_tunnel_eof() noexcept override;
  void on_tunnel_writable() noexcept override;
  void on_tunnel_closed(TunnelEnd end, const char* why) noexcept override;
  // BodyWriter: a streamed body's reader made room (reading from the client resumes).
  void on_body_drained() noexcept override;

 private:
  void tunnel_read();
  void tunnel_after_flush();
  void read_client();
  void process();
  bool parse_head();    // false: stop processing
  bool read_body();     // false: stop processing
  void head_accepted(const http1::RequestHead& head, size_t head_size);
  void body_complete();
  /// The body could not be read to its end (bad framing, limit, timeout, temp file): answers
  /// `status` and closes; a body already streaming to a worker aborts that request.
  void body_failed(int status);
  /// Starts the body: buffered (the exchange is submitted once it is complete), or streamed
  /// (request_buffering = false: submitted now, the worker gets bytes as they arrive).
  void begin_body(http1::BodyKind kind, uint64_t length, bool expect_continue);
  void respond_error(int status, bool close, bool retry_after = false);
  void respond_redirect(const http1::RequestHead& head);
  void response_done();
  void flush();
  /// Sends file_ once out_ is empty (http1_send_file.cc); false: the connection closed.
  bool send_file();
  void after_flush();
  void next_request();
  void close();
  void update_read_interest();
  void on_client_timer();
  void wait_for_next_request();
  void start_linger();
  void linger_read();
  bool draining() const;
  /// No keep-alive after the current response: draining, or a drain announced.
  bool ends_keepalive() const;

  ClientConnection* conn_ = nullptr;
  SessionHost& host_;
  ev::Timer client_timer_;    // keep-alive / header deadline / body pause / send stall
  IoBuffer in_;
  std::string out_;
  size_t out_pos_ = 0;
  // A static file body, sent after out_: sendfile(2) on plaintext, pread + TLS write
  // (tls_retry_: the length of a TLS write to repeat after EAGAIN, 0 = none).
  std::shared_ptr<const statics::OpenFile> file_;
  uint64_t file_off_ = 0, file_left_ = 0;
  size_t tls_retry_ = 0;
  http1::RequestParser parser_;
  http1::Limits parser_limits_;
  http1::RequestHead head_;
  http1::BodyDecoder decoder_;
  RequestBody body_;
  bool streaming_ = false;  // a body is streaming to a worker and not read to its end yet
  Exchange ex_;
  ClientFraming framing_ = ClientFraming::None;
  bool keep_alive_ = true;
  Exchange::Clock::time_point body_started_{};
  uint64_t body_bytes_read_ = 0;
  bool closed_ = false;
  bool client_eof_ = false;
  bool draining_ = false;
  bool answered_ = false;  // a request was answered since attach(): idle now means between requests
  bool in_process_ = false;
  bool linger_ = false;     // the current answer leaves request bytes unread: linger after it
  bool lingering_ = false;  // answered and half-closed; reading and discarding until close
  Exchange::Clock::time_point linger_until_{};
  /// Bytes in the socket's send queue when the send-stall deadline was armed (-1: unknown).
  /// The kernel wakes a writer only when a third of a large send buffer is free, so a
  /// steady slow reader can go longer than the deadline without a write of ours succeeding:
  /// a queue that shrank since is progress too.
  int stall_outq_ = -1;
  void arm_send_stall();
  // Tunnel (state Tunnel): the worker's side stopped sending (half-close the client's once
  // out_ is written), the tunnel is over (close once out_ is written), the worker's buffer
  // is full (stop reading the client), the access-log line is written.
  bool tunnel_worker_eof_ = false, tunnel_done_ = false, tunnel_blocked_ = false, tunnel_logged_ = false;
  bool tunnel_shut_client_ = false;
};

}  // namespace corral::proxy
