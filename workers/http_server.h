#pragma once
// corral-worker's HTTP/1.1 server on the slot's inherited listening socket. Plain blocking
// code: `threads` threads, each serving one request at a time (gunicorn gthread), so a worker
// runs at most `threads` requests at once. Idle keep-alive connections do not hold a thread:
// they wait in one shared epoll set (EPOLLONESHOT), together with the listening socket, and
// whichever thread is free serves the next request that arrives on any of them. (With one
// thread per connection, a proxy thread's idle pooled connection would block a request
// that another proxy thread sends on a new connection.)
//
// Requests are parsed with common/http1 (the proxy already validated them; this is the
// second, equally strict line). The body is read completely before the handler runs (the
// proxy has buffered it and sends Content-Length). What runs a request is a RequestHandler:
// the CGI runner now, a WSGI host later.
#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "common/http1/parser.h"
#include "workers/response_encoder.h"

namespace corral::worker {

/// One request as the handler sees it. Views are valid during handle() only.
struct Request {
  const http1::RequestHead& head;
  std::string_view body;
  bool has_body = false;  ///< the request carried a body (Content-Length, even 0, or chunked)
};

/// Writes one response on the connection. Framing is decided by send_head(): the given
/// Content-Length, else chunked. Methods return false once the connection is broken (the
/// peer is gone or a write timed out); the handler should then stop producing output.
/// Used by one thread (the one running the handler).
class ResponseWriter {
 public:
  ResponseWriter(int fd, bool head_request) : fd_(fd), enc_(head_request, /*keep_alive=*/true) {}

  /// Sends the status line and headers (Content-Length / Transfer-Encoding / Connection
  /// fields in `headers` are ignored; the writer frames the body itself).
  bool send_head(int status, std::span<const std::pair<std::string, std::string>> headers,
                 std::optional<uint64_t> content_length, std::string_view reason = {});
  /// Sends body bytes (as one chunk when chunked; bytes past a Content-Length are dropped;
  /// nothing for HEAD).
  bool send_body(std::string_view data);
  /// Ends the response (last chunk). A Content-Length response that got fewer bytes than it
  /// announced breaks the connection instead (the only honest signal left).
  bool finish();
  /// A short complete response: `status`, text/plain `text`.
  bool send_simple(int status, std::string_view text);
  /// Marks the connection for closing after this response (on error paths).
  void close_after() { enc_.close_after(); }
  /// Gives up mid-response: the connection is closed without ending the body, so the
  /// proxy sees a truncated response (the only honest signal once a head is out).
  void abort() { broken_ = true; }

  bool head_sent() const { return enc_.head_sent(); }
  bool broken() const { return broken_; }
  bool keep_alive() const { return enc_.keep_alive() && !broken_; }
  int status() const { return status_; }

 private:
  bool write_all(std::string_view a, std::string_view b = {}, std::string_view c = {});
  int fd_;
  ResponseEncoder enc_;  // the framing; this class only writes what it produces
  bool broken_ = false;
  int status_ = 0;
  std::string buf_;
};

/// Runs requests. handle() is called from up to `threads` server threads at once, so an
/// implementation must be thread-safe. It must always produce a response (or break the
/// connection); it never throws.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void handle(const Request& req, ResponseWriter& out) noexcept = 0;
};

class HttpServer {
 public:
  /// `listen_fd`: the inherited listening socket (not owned). `tag` prefixes log lines.
  HttpServer(int listen_fd, int threads, RequestHandler& handler, std::string tag);
  ~HttpServer();

  /// Serves until stop(); returns once every thread has finished its current request.
  /// Fails (before serving) when epoll or the threads cannot be set up.
  [[nodiscard]] Result<void> run();
  /// Stops accepting; threads exit after their current request. Async-signal-safe.
  void stop() noexcept;

 private:
  struct Conn;
  void thread_main() noexcept;
  void serve(Conn* c) noexcept;
  void accept_some() noexcept;
  void park(Conn* c) noexcept;
  void drop(Conn* c) noexcept;

  int listen_fd_;
  int threads_;
  RequestHandler& handler_;
  std::string tag_;
  UniqueFd epoll_, stop_fd_;
  std::atomic<bool> stopping_{false};
  int listen_tag_ = 0, stop_tag_ = 0;  // their addresses mark epoll events
};

}  // namespace corral::worker
