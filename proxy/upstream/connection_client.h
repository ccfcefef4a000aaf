#pragma once
// What the HTTP/1.1 and FastCGI upstream clients share: one worker connection at a time,
// taken from a keep-alive store or opened through the loop's UpstreamPool; the request's
// target and flags; and the one resend on a fresh connection when a kept connection turns
// out to have been closed by the worker before any response byte. Loop-affine.
#include <cstdint>
#include <memory>
#include <string_view>

#include "proxy/io_buffer.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/upstream_client.h"

namespace corral::proxy {

class ConnectionClient : public UpstreamClient, public UpstreamIoHandler {
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
  IoBuffer in_;
};

}  // namespace corral::proxy
