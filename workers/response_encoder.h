#pragma once
// Sans-I/O HTTP/1.1 response framing for corral-worker: the given Content-Length, else
// chunked; nothing after a HEAD (whose head has the given Content-Length, or no framing
// field when there is none) or for 204/304; bytes past a Content-Length dropped; a short
// Content-Length body is reported so the connection is closed. ResponseWriter
// (http_server.h) sends what it frames on a socket; the gevent worker class appends it to a
// buffer it sends itself.
// Not thread-safe; one per response.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace corral::worker {

class ResponseEncoder {
 public:
  ResponseEncoder(bool head_request, bool keep_alive) : head_request_(head_request), keep_alive_(keep_alive) {}

  /// Appends the status line and headers (Connection/Keep-Alive fields in `headers` are
  /// dropped; "Connection: close" is added when !keep_alive).
  void head(std::string& out, int status, std::string_view reason,
            std::span<const std::pair<std::string, std::string>> headers, std::optional<uint64_t> content_length);
  /// Appends body bytes (framed).
  void body(std::string& out, std::string_view data);
  /// Frames body bytes without copying them: appends the chunk header (if any) to `prefix`,
  /// trims `data` to what may still be sent, and returns what must follow it ("\r\n" or "").
  std::string_view frame_body(std::string& prefix, std::string_view& data);
  /// Appends the end of the body. False when a Content-Length body fell short (the caller
  /// must then close the connection).
  bool finish(std::string& out);

  bool head_sent() const { return head_sent_; }
  bool keep_alive() const { return keep_alive_; }
  void close_after() { keep_alive_ = false; }

 private:
  bool head_request_, keep_alive_;
  bool head_sent_ = false, chunked_ = false, finished_ = false;
  std::optional<uint64_t> remaining_;
};

}  // namespace corral::worker
