#pragma once
// ReadinessProbe: one HTTP/1.1 request to a worker's Unix socket ("GET <health_path>",
// Connection: close) to learn whether it serves. Any status below 500 counts as ready. A
// refused or reset connection, a 5xx, or no answer within the attempt's time counts as not
// ready. On an inherited socket the connection waits in the backlog until the app accepts,
// so one attempt may last the whole boot. Loop-affine; the callback runs on the loop and
// may destroy the probe.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/unique_fd.h"
#include "common/ev/loop.h"

namespace corral::supervisor {

class ReadinessProbe {
 public:
  /// ok, and a short reason ("status 200", "connect: Connection refused", "status 503", "timed out").
  using Done = std::function<void(bool ok, std::string why)>;

  /// loop must outlive the probe.
  ReadinessProbe(ev::Loop& loop, std::string socket_path, std::string health_path);
  ~ReadinessProbe();

  /// Starts one attempt that gives up after `timeout`; `done` fires exactly once unless the
  /// probe is destroyed or start() is called again first.
  void start(std::chrono::milliseconds timeout, Done done);
  /// Abandons the attempt in progress (no callback).
  void cancel();

  /// The request bytes sent for `health_path`. Pure.
  static std::string request_for(std::string_view health_path);
  /// The status code of a response beginning ("HTTP/1.1 204 ..."), or 0 while the status
  /// line is incomplete, or -1 when it is not an HTTP/1.x status line. Pure.
  static int parse_status(std::string_view response_start);

 private:
  void on_io(bool readable, bool writable);
  void finish(bool ok, std::string why);

  ev::Loop& loop_;
  std::string socket_path_;
  std::string request_;
  UniqueFd fd_;
  std::unique_ptr<ev::FdWatch> watch_;
  ev::Timer timer_;
  std::string in_;
  size_t written_ = 0;
  std::string fail_why_;  // set when the attempt failed before any I/O
  Done done_;
};

}  // namespace corral::supervisor
