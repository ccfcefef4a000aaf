#pragma once
// What the HTTP/1.1 and FastCGI upstream clients share: one worker connection at a time,
// taken from a keep-alive store or opened through the loop's UpstreamPool; the request's
// target and flags; and the one resend on a fresh connection when a kept connection turns
// out to have been closed by the worker before any response byte. Loop-affine.
#include <cstdint>
#include <memory>
#include <string_view>

#include "proxy/io_buffer.h"
#include "proxy/request_body.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/upstream_client.h"

namespace corral::proxy {

class ConnectionClient : public UpstreamClient, public UpstreamIoHandler, public BodyReader {
 public:
  /// A streamed body has more bytes (or ended): write when the socket allows.
  void on_body_more() noexcept override;

 protected:
  ConnectionClient(UpstreamPool& pool, UpstreamHandler& handler) : pool_(pool), handler_(handler) {}

  /// Takes the request's target and flags (path, generation, method, idempotent) and resets
  /// the per-request ones (retried, paused).
  void begin(const UpstreamRequest& req);
  /// Opens a new connection to the slot. false: connect_failed was reported (and the
  /// client went idle).
  bool open_connection();
  /// After a read or write error: a kept connection that failed before any response byte,
  /// for an idempotent request not resent yet, is replaced by a fresh one and the request
  /// sent again. true: handled (resent, or connect_failed reported); false: the caller fails.
  bool retry_fresh();

  /// The request body at body offset `at` (at most `max` bytes); nothing without a body.
  RequestBody::Piece body_peek(uint64_t at, size_t max) const;
  /// Every body byte is available (a buffered body always is).
  bool body_complete() const { return !source_ || source_->complete(); }
  /// A streamed body was cut short by the client.
  bool body_failed() const { return source_ && source_->failed(); }
  /// The body was sent up to `at` (a streamed body frees that memory).
  void body_sent(uint64_t at) {
    if (source_) source_->release(at);
  }
  /// Sends a body piece to the socket: send(2) from memory, sendfile(2) from a temp file.
  /// Returns the bytes written, or -1 with errno.
  ssize_t send_piece(const RequestBody::Piece& p);
  /// Writing is waiting for body bytes that have not arrived.
  virtual bool waiting_for_body() const = 0;
  /// Detaches from the body (request over).
  void end_body() {
    if (source_) source_->set_reader(nullptr);
    source_ = nullptr;
  }

  /// Sends the current request on conn_ from its first byte.
  virtual void send_request() = 0;
  /// Nothing is in flight any more (the state machine goes back to idle).
  virtual void become_idle() = 0;

  UpstreamPool& pool_;
  UpstreamHandler& handler_;
  std::unique_ptr<UpstreamConn> conn_;
  std::string_view path_, method_;
  uint64_t generation_ = 0;
  bool idempotent_ = false, retried_ = false, paused_ = false;
  uint64_t received_ = 0;  ///< response bytes of the current request
  RequestBody* source_ = nullptr;  ///< the request's body, or null (none)
  IoBuffer in_;
};

}  // namespace corral::proxy
