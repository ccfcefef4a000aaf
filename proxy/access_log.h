#pragma once
// The access log: one line per request, combined format plus corral's fields
//   1.2.3.4 - - [25/Nov/2026:17:18:01 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8"
//     rid=5f3a9c1e-00000000002a trace=4bf92f3577b34da6a3ce929d0e0e4736 worker=shop#3
//     queue=0.000 upstream=0.002 rt=0.002
// (one line), or JSON lines with the same fields ("trace_id" for trace). Formatting appends to a caller-owned
// buffer (no allocation once it has grown); AccessLog::write() is one write(2) per line.
#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "common/base/log_throttle.h"
#include "common/base/result.h"
#include "common/base/unique_fd.h"
#include "conf/config.h"

namespace corral::proxy {

/// Everything one access-log line says. Views must outlive the format call only.
struct AccessRecord {
  std::string_view client_ip;
  std::string_view method;
  std::string_view target;
  int version_major = 1;  ///< 2: HTTP/2
  int version_minor = 1;
  int status = 0;
  uint64_t bytes_sent = 0;  ///< response body bytes sent to the client
  std::string_view referer;
  std::string_view user_agent;
  std::string_view request_id;
  std::string_view trace_id;  ///< W3C trace-id (32 hex digits) of the traceparent sent on
  std::string_view app;  ///< empty: no worker was involved; "static" (slot -1): a static file route
  int slot = -1;
  double queue_s = 0;     ///< waiting for a worker
  double upstream_s = 0;  ///< request sent → response complete
  double rt_s = 0;        ///< first byte of the request → response handed to the socket
  time_t time = 0;        ///< wall clock, seconds
};

/// Appends one combined-format line (with '\n'). Thread-safe (pure, per-thread time cache).
void format_combined(const AccessRecord& r, std::string& out);
/// Appends one JSON object line (with '\n'). Thread-safe.
void format_json(const AccessRecord& r, std::string& out);

/// The sink. Shared by all loop threads; write() is thread-safe (O_APPEND, one write per
/// line, so lines from several threads never interleave).
class AccessLog {
 public:
  /// spec: "-" = stderr, "off" = disabled (returns a disabled log), else a path opened
  /// O_WRONLY|O_APPEND|O_CREAT 0644. Fails when the file cannot be opened.
  [[nodiscard]] static Result<std::shared_ptr<AccessLog>> open(const std::string& spec, conf::AccessLogFormat format);
  /// A log on a file someone else opened (the supervisor: control::AccessLogFile); `path` names
  /// it in messages. Takes the fd.
  [[nodiscard]] static std::shared_ptr<AccessLog> adopt(UniqueFd fd, const std::string& path,
                                                        conf::AccessLogFormat format);

  bool enabled() const { return fd_ >= 0; }
  conf::AccessLogFormat format() const { return format_; }
  /// Appends the record in this log's format to `line`.
  void format(const AccessRecord& r, std::string& line) const;
  /// Writes bytes (one or more complete lines) with one write(2). A write that fails
  /// (ENOSPC, EFBIG over RLIMIT_FSIZE, EIO, ...) drops the lines and returns false: requests
  /// are served on, the caller counts the drop; the failure is logged at once and then at
  /// most once a second, and the first write that works again logs how many lines were
  /// dropped. A line cut short by the failure is ended with a newline before the next one.
  bool write(std::string_view lines) const;

  ~AccessLog();

 private:
  AccessLog() = default;
  void on_write_failed(int err, bool torn, std::string_view lines) const;
  void on_write_ok() const;

  int fd_ = -1;
  bool owned_ = false;
  std::string name_;  // the path, or "stderr"
  // Failure state, shared by every loop thread writing here.
  mutable std::atomic<bool> failing_{false};
  mutable std::atomic<bool> torn_{false};          // the file ends inside a line
  mutable std::atomic<uint64_t> dropped_{0};       // lines dropped since failing_ was set
  mutable LogThrottle limit_;
  conf::AccessLogFormat format_ = conf::AccessLogFormat::Combined;
};

}  // namespace corral::proxy
