#pragma once
// The HTTP/1.1 server side of one client connection: keep-alive, pipelining (strictly in
// order), limits and timeouts, routing, body buffering, dispatch to a worker and streaming
// of the response with bounded buffering. Plaintext only for now (TLS and ALPN selection
// will sit in front of it in client_connection).
//
// Loop-affine: created, driven and destroyed on its loop thread. Destruction is always
// deferred through SessionHost::session_closed(), never done inside a callback.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/unique_fd.h"
#include "common/ev/loop.h"
#include "common/http1/parser.h"
#include "proxy/access_log.h"
#include "proxy/body_buffer.h"
#include "proxy/exchange.h"
#include "proxy/io_buffer.h"
#include "proxy/upstream/http1_client.h"

namespace corral::proxy {

class Http1Session;

/// What a session needs from the loop that owns it. Implemented by LoopThread.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  virtual ev::Loop& loop() = 0;
  /// The current snapshot (never null once the loop accepts connections).
  virtual const std::shared_ptr<const Runtime>& runtime() const = 0;
  virtual UpstreamPool& pool() = 0;
  virtual RequestIdGenerator& request_ids() = 0;
  /// One access-log record (the host formats and writes it).
  virtual void log_access(const AccessRecord& r) = 0;
  /// A request passed its app's timeout on this worker.
  virtual void report_hung(const std::string& app, int slot, uint64_t generation, std::string_view request_id) = 0;
  /// True after SIGTERM: no new keep-alive rounds.
  virtual bool draining() const = 0;
  /// The session is finished; the host destroys it later (outside its callbacks).
  virtual void session_closed(Http1Session* s) = 0;
};

/// Response bytes buffered for a slow client before reading from the worker pauses.
inline constexpr size_t kResponseBufferLimit = 1 << 20;

class Http1Session : public UpstreamHandler {
 public:
  /// Takes the accepted (nonblocking) socket. `client_ip` goes into X-Forwarded-For and logs.
  Http1Session(SessionHost& host, UniqueFd fd, std::string client_ip);
  ~Http1Session() override;
  Http1Session(const Http1Session&) = delete;
  Http1Session& operator=(const Http1Session&) = delete;

  /// Starts reading (arms the header timeout for the first request).
  void start();
  /// Graceful stop: an idle connection closes now; a busy one after its current response.
  void drain();
  bool closed() const { return closed_; }
  ExchangeState state() const { return ex_.state; }

  /// Called (via the waiter, on this loop) when a queued request gets a lease.
  void on_granted(Lease lease);

  // UpstreamHandler
  void on_upstream_connect_failed(int err) noexcept override;
  void on_upstream_head(const http1::ResponseHead& head) noexcept override;
  void on_upstream_body(std::string_view data) noexcept override;
  void on_upstream_read_done() noexcept override;
  void on_upstream_complete() noexcept override;
  void on_upstream_error(const char* why) noexcept override;

 private:
  class Waiter;

  void on_io(bool readable, bool writable);
  void read_client();
  void process();
  bool parse_head();    // false: stop processing
  bool read_body();     // false: stop processing
  void head_accepted(const http1::RequestHead& head, size_t head_size);
  void body_complete();
  void dispatch();
  void send_upstream();
  void respond_error(int status, std::string_view reason, bool close, bool retry_after = false);
  void response_done();
  void flush();
  void after_flush();
  void next_request();
  void close();
  void abort_exchange();
  void log_exchange();
  void update_read_interest();
  void on_client_timer();
  void on_exchange_timer();
  double secs(Exchange::Clock::time_point a, Exchange::Clock::time_point b) const;

  SessionHost& host_;
  UniqueFd fd_;
  std::string client_ip_;
  ev::FdWatch watch_;
  ev::Timer client_timer_;    // keep-alive / header deadline / body pause / send stall
  ev::Timer exchange_timer_;  // queue timeout / app timeout
  IoBuffer in_;
  std::string out_;
  size_t out_pos_ = 0;
  http1::RequestParser parser_;
  http1::RequestHead head_;
  http1::BodyDecoder decoder_;
  BodyBuffer body_;
  Http1Client upstream_;
  Exchange ex_;
  std::shared_ptr<Waiter> waiter_;
  Exchange::Clock::time_point body_started_{};
  uint64_t body_bytes_read_ = 0;
  bool closed_ = false;
  bool client_eof_ = false;
  bool draining_ = false;
  bool upstream_paused_ = false;
  bool in_process_ = false;
};

}  // namespace corral::proxy
