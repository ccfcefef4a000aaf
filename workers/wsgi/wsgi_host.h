#pragma once
// kind = "wsgi" in corral-worker: boots CPython once per worker process, imports the app
// (gunicorn's "module:callable"), and serves the slot's socket with one of gunicorn's worker
// classes:
//   sync     HttpServer with one thread: one request at a time;
//   gthread  HttpServer with `concurrency` threads; the GIL is held only while Python runs:
//            it is released while a thread waits for work (epoll), writes to the proxy, or
//            reads a wsgi.file_wrapper file, so IO-bound apps scale with threads;
//   gevent   the stdlib monkey-patched before the app is imported, then `concurrency`
//            greenlets on one thread (gevent_server.h).
// Boot order, as gunicorn: python_path entries, then the working folder, first on sys.path;
// the virtualenv (if any) is the interpreter's prefix (its pyvenv.cfg decides whether the
// system site-packages are visible).
//
// Which interpreter: workers/wsgi/interpreter.h (the distribution's python3 binary with this
// host as an extension module, else CPython embedded in corral-worker).
//
// Exit codes (workers/exit_codes.h): the interpreter cannot start → kExitBootError; the app
// cannot be imported / is not callable / gevent is missing → kExitAppLoadError, with the
// traceback logged, so the supervisor backs off instead of respawning hot.
#include <string>
#include <string_view>

#include "workers/options.h"

namespace corral::worker::wsgi {

/// Runs the worker until SIGTERM/SIGINT (in-flight requests finish). `listen_fd` is the
/// inherited listening socket (non-blocking, close-on-exec). Returns the process exit
/// code. Call once, from the main thread.
int run_wsgi_worker(const Options& opts, const std::string& tag, int listen_fd);

/// The part after the interpreter is up, shared by the embedded interpreter and the extension
/// module (module.cc): sys.path, gevent's monkey-patch, the app import, the server loop until
/// SIGTERM/SIGINT. Returns the exit code; does not finalize. `host` ends the "serving" log
/// line (which interpreter). GIL held, main thread, "_corral" importable.
int serve_wsgi(const Options& opts, const std::string& tag, int listen_fd, std::string_view host);

}  // namespace corral::worker::wsgi
