#pragma once
// Sends one buffered request to a worker over HTTP/1.1 and streams the response back to an
// UpstreamHandler. One client per frontend connection, reused for each of its requests (its
// buffers keep their capacity). Connections come from and go back to the loop's
// UpstreamPool. Loop-affine; every callback runs on the loop thread.
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/http1/parser.h"
#include "proxy/io_buffer.h"
#include "proxy/upstream/pool.h"

namespace corral::proxy {

/// What the upstream client reports, in order: either connect_failed (the request was never
/// sent), or head → body* → (complete | error), or error alone.
class UpstreamHandler {
 public:
  virtual ~UpstreamHandler() = default;
  /// Could not connect (errno): the request was never sent, safe to try another worker.
  virtual void on_upstream_connect_failed(int err) noexcept = 0;
  /// The final (non-1xx) response head. Views are valid during the call only.
  virtual void on_upstream_head(const http1::ResponseHead& head) noexcept = 0;
  /// Decoded body bytes (valid during the call only).
  virtual void on_upstream_body(std::string_view data) noexcept = 0;
  /// One read's worth of events has been delivered (a good moment to flush to the client).
  virtual void on_upstream_read_done() noexcept = 0;
  /// The response is complete; the connection is already back in the pool (or closed).
  virtual void on_upstream_complete() noexcept = 0;
  /// The worker failed (reset, EOF mid-message, garbage). `why` is a static string.
  virtual void on_upstream_error(const char* why) noexcept = 0;
};

class Http1Client : public UpstreamIoHandler {
 public:
  Http1Client(UpstreamPool& pool, UpstreamHandler& handler);
  ~Http1Client() override;

  /// Sends head+body to (path, generation): a pooled connection when there is one, else a
  /// new one. `head` and `body` must stay valid until complete/error/abort. `idempotent`:
  /// a pooled connection that fails before any response byte is retried once on a fresh
  /// connection. May call back synchronously (connect_failed, error).
  void start(std::string_view path, uint64_t generation, std::string_view method, bool idempotent,
             std::string_view head, std::string_view body);
  /// Stops everything and closes the connection (no callbacks). Safe when idle.
  void abort();
  /// Backpressure: stop / restart reading the response while the client is slow.
  void pause_reading();
  void resume_reading();
  bool active() const { return conn_ != nullptr; }
  /// Bytes of response (head and body) received for the current request.
  uint64_t received() const { return received_; }

  void on_upstream_io(bool readable, bool writable) noexcept override;

 private:
  enum class State { Idle, Writing, ReadingHead, ReadingBody };
  bool open_connection();  // false: connect_failed was reported
  void send_request();
  void read_response();
  bool parse();  // false: stop (done, error, or aborted)
  void finish(bool reusable);
  void fail(const char* why);
  bool retry_fresh();  // retry on a new connection after a keep-alive race

  UpstreamPool& pool_;
  UpstreamHandler& handler_;
  std::unique_ptr<UpstreamConn> conn_;
  State state_ = State::Idle;
  std::string_view path_, method_;
  uint64_t generation_ = 0;
  bool idempotent_ = false, retried_ = false, paused_ = false;
  std::string_view head_, body_;
  size_t written_ = 0;
  uint64_t received_ = 0;
  IoBuffer in_;
  http1::ResponseParser parser_;
  http1::ResponseHead resp_;
  http1::BodyDecoder decoder_;
};

}  // namespace corral::proxy
