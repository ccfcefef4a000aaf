#pragma once
// corral-worker's command line, as the supervisor writes it (workers do not read the config
// file; DESIGN.md):
//   corral-worker --app NAME --slot N --kind cgi --concurrency N --timeout-ms MS
//                 [--root DIR [--index FILE]] [--mount /prefix]... [--script-filename F]
//                 [-- PROGRAM ARGS...]
//   corral-worker --app NAME --slot N --kind wsgi --concurrency N --timeout-ms MS
//                 --module MOD:CALLABLE [--python-path DIR]... [--virtualenv DIR]
//                 [--worker-class sync|gthread|gevent]
// The listening socket is fd 3 (LISTEN_FDS=1). Pure parsing; thread-safe.
#include <string>
#include <vector>

#include "common/base/result.h"

namespace corral::worker {

struct Options {
  std::string app = "app";
  int slot = 0;
  std::string kind = "cgi";
  int concurrency = 1;
  long long timeout_ms = 30'000;
  std::string root;
  std::string index;  ///< root mode: the script a folder path runs ("" = none)
  std::vector<std::string> mounts;
  std::string script_filename;
  std::vector<std::string> command;
  // kind = "wsgi"
  std::string module;                    ///< "pkg.module:callable"
  std::vector<std::string> python_path;  ///< put first on sys.path
  std::string virtualenv;                ///< "" = none
  std::string worker_class = "sync";     ///< "sync" | "gthread" | "gevent"
};

/// Parses argv (argv[0] is skipped). Errors name the offending argument.
[[nodiscard]] Result<Options> parse_options(const std::vector<std::string>& args);

/// The tag of the worker's log lines: "app=NAME worker=SLOT".
std::string log_tag(const Options& o);

/// The worker's thread name, "<app>#<slot>" cut to 15 bytes (ps -L, top): prctl(PR_SET_NAME).
void set_thread_name(const Options& o);

/// Builds the argv that parse_options() reads back (the supervisor's side).
std::vector<std::string> to_args(const Options& o);

/// The corral-worker executable: $CORRAL_WORKER_BIN, else corral-worker next to
/// /proc/self/exe (the supervisor's own folder).
std::string worker_binary();

}  // namespace corral::worker
