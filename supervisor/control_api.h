#pragma once
// The control API: HTTP/1.1 + JSON on runtime_dir/control.sock (mode 0600), one request
// per connection (the response carries "Connection: close"). Requests are parsed with the
// strict common/http1 RequestParser; the handler decides the response. Loop-affine.
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include <sys/types.h>

#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "common/ev/loop.h"

namespace corral::supervisor {

class ControlApi {
 public:
  struct Request {
    std::string method;
    std::string path;  ///< the target without a query string
    std::string body;
    uint64_t id = 0;  ///< for reply() when the handler defers
  };
  struct Response {
    int status = 200;  ///< 0 = deferred: the handler answers later with reply(id, ...)
    std::string body;  ///< JSON text
  };
  /// Called on the loop for every complete request.
  using Handler = std::function<Response(const Request&)>;

  /// Answers a deferred request (e.g. POST /reload once the reload finished). Does nothing
  /// when the client is gone. Loop-affine.
  void reply(uint64_t id, const Response& r);

  /// loop must outlive this.
  ControlApi(ev::Loop& loop, Handler handler);
  ~ControlApi();

  /// Binds and listens on path (mode 0600), replacing a stale socket file.
  [[nodiscard]] Result<void> listen(const std::string& path);
  /// Stops listening, drops open connections and removes the socket file (unless another
  /// file took its place).
  void close();
  /// True while the socket file at the path is the one bound by listen() (false after it
  /// was removed or replaced, e.g. runtime_dir deleted under us).
  bool intact() const;
  /// Binds the path again (a new socket; the old one, unreachable, is closed). Open
  /// connections are kept. Fails, leaving it alone, when another file took the path.
  [[nodiscard]] Result<void> rebind();

  // Upgrade in place: what a new supervisor image takes over.
  int listen_fd() const { return listen_fd_.get(); }
  const std::string& path() const { return path_; }
  dev_t path_dev() const { return path_dev_; }
  ino_t path_ino() const { return path_ino_; }
  /// Takes over the listening socket a previous image bound at `path` (its file: dev, ino).
  void adopt(const std::string& path, UniqueFd fd, dev_t dev, ino_t ino);
  /// The socket of a deferred request whose client still waits; -1 when there is none.
  int deferred_fd(uint64_t id) const;
  /// Takes over a connection whose request a previous image deferred (its answer is due);
  /// returns the id for reply().
  uint64_t adopt_deferred(UniqueFd fd);

 private:
  struct Connection;
  void on_accept();
  void on_io(Connection& c, bool readable, bool writable);
  void respond(Connection& c, const Response& r);
  void drop(Connection& c);

  ev::Loop& loop_;
  Handler handler_;
  std::string path_;
  UniqueFd listen_fd_;
  dev_t path_dev_ = 0;  // the socket file as bound
  ino_t path_ino_ = 0;
  std::unique_ptr<ev::FdWatch> accept_watch_;
  std::list<std::unique_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
};

/// "HTTP/1.1 200 OK\r\n...\r\n\r\n{body}": a complete response with Content-Length and
/// Connection: close. Pure.
std::string render_response(const ControlApi::Response& r);

}  // namespace corral::supervisor
