#pragma once
// Where a WSGI response goes. WsgiApp calls a sink with the GIL held; an implementation that
// blocks on I/O releases it (WriterSink, gthread/sync) or yields to the gevent hub
// (BufferSink's Python send callable). Used by one thread (or greenlet) per request.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace corral::worker::wsgi {

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  /// Status line and headers (no framing headers: the sink frames the body itself, with
  /// `content_length` when known, else chunked). False once the connection is broken.
  virtual bool send_head(int status, std::string_view reason,
                         std::span<const std::pair<std::string, std::string>> headers,
                         std::optional<uint64_t> content_length) = 0;
  /// Body bytes. False once the connection is broken.
  virtual bool send_body(std::string_view data) = 0;
  /// Ends the response. False when it could not be ended cleanly.
  virtual bool finish() = 0;
  /// Gives up mid-response: the connection is closed without ending the body.
  virtual void abort() = 0;
  /// True for a HEAD request (the body is dropped by the sink; apps may stop early).
  virtual bool head_request() const = 0;
};

}  // namespace corral::worker::wsgi
