#pragma once
// Runs a CGI program once per request (RFC 3875): kind = "cgi" in corral-worker.
//
// Per request: map the path onto the program (one fixed `command`, or a script below
// `root` that never escapes it), build the meta-variables (common/cgi), start the program
// with clone(CLONE_VM|CLONE_VFORK) — posix_spawn's technique, plus a parent-death signal —
// in its own process group, feed the body to its stdin while reading its stdout, parse the
// CGI header block (common/cgi/response_head.h) and stream the body on. stderr is the
// worker's own, which the supervisor logs line by line with the app name.
//
// A path with no script is answered 404 (400 when undecodable) and the reason logged, at
// warn when the server's files are at fault (not executable, not a regular file, a symlink
// out of root), else at info; once per file per minute (common/cgi/log_limiter.h).
// Outcomes: no header block before exit → 502; past the timeout → the whole process group
// is killed, 504 (or a truncated response when the head was already sent); "Location: /x"
// without Status → the request is re-run as GET /x (at most kMaxLocalRedirects times).
// Thread-safe: handle() runs on every server thread at once.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/cgi/log_limiter.h"
#include "common/cgi/script_path.h"
#include "workers/http_server.h"

namespace corral::worker {

struct CgiSettings {
  std::string app;                      ///< for log lines
  std::vector<std::string> command;     ///< command mode: argv (argv[0] absolute); empty in root mode
  std::string root;                     ///< root mode: folder of scripts (absolute, symlinks resolved)
  std::string index;                    ///< root mode: the script a folder path runs ("" = none: 404)
  /// Route path prefixes (SCRIPT_NAME base) used when a request has no X-Forwarded-Prefix.
  std::vector<std::string> mounts;
  std::string script_filename;          ///< command mode: SCRIPT_FILENAME (default: command[0])
  std::vector<std::pair<std::string, std::string>> env;  ///< the app's env (and PATH)
  std::chrono::milliseconds timeout{30'000};
  std::string server_software = "corral";
};

class CgiRunner final : public RequestHandler {
 public:
  static constexpr int kMaxLocalRedirects = 5;

  explicit CgiRunner(CgiSettings s);
  void handle(const Request& req, ResponseWriter& out) noexcept override;

  /// Checks the program or root once at start (the worker exits kExitAppLoadError when
  /// this fails): an executable regular file, or a folder.
  [[nodiscard]] Result<void> check() const;

 private:
  void run(const http1::RequestHead& head, std::string_view body, bool has_body, ResponseWriter& out,
           int redirects_left, std::chrono::steady_clock::time_point deadline) noexcept;
  // Logs why a path has no script (warn when the server's files are at fault), rate limited.
  void log_miss(const cgi::RootResult& r, std::string_view path) noexcept;
  CgiSettings s_;
  std::string tag_;
  cgi::LogLimiter misses_;
};

}  // namespace corral::worker
