#pragma once
// One loaded WSGI application and the PEP 3333 calling convention around it: the environ
// (environ.h + wsgi.*), start_response (with exc_info), the write() callable, the returned
// iterable (close() always called), wsgi.file_wrapper (regular files are read with pread in
// 64 KiB blocks, without the GIL), header validation, and the response streamed to a
// ResponseSink as the app produces it.
//
// Failures: an exception before the head is out → 500 "Internal Server Error" (the
// traceback goes to the log, never to the client); after → the connection is aborted, so
// the proxy sees a truncated response. Invalid status or headers count as exceptions.
//
// Threading: every method needs the GIL (the caller holds it); the sink may release it.
#include <string>
#include <string_view>

#include "common/http1/parser.h"
#include "workers/wsgi/environ.h"
#include "workers/wsgi/sink.h"

typedef struct _object PyObject;

namespace corral::worker::wsgi {

struct AppSettings {
  EnvironSettings environ;
  bool multithread = false;   ///< wsgi.multithread
  bool multiprocess = true;   ///< wsgi.multiprocess (the supervisor may always add workers)
  std::string tag;            ///< log prefix
};

class WsgiApp {
 public:
  /// Takes a reference to `callable` and looks up what every request needs (io.BytesIO,
  /// traceback). GIL held. CORRAL_CHECKs that the _corral module is importable.
  WsgiApp(PyObject* callable, AppSettings settings);
  ~WsgiApp();
  WsgiApp(const WsgiApp&) = delete;
  WsgiApp& operator=(const WsgiApp&) = delete;

  /// Runs one request through the app and ends the response on `out` (or aborts it).
  /// GIL held. Never throws; a Python exception never escapes.
  void call(const http1::RequestHead& head, std::string_view body, bool has_body, ResponseSink& out) noexcept;

  const AppSettings& settings() const { return s_; }

 private:
  PyObject* build_environ(const http1::RequestHead& head, std::string_view body, bool has_body) noexcept;

  PyObject* app_;
  AppSettings s_;
  PyObject* bytes_io_;       ///< io.BytesIO
  PyObject* file_wrapper_;   ///< _corral.FileWrapper
  PyObject* version_;        ///< (1, 0)
};

/// Logs the pending Python exception with its traceback (one log line per line, level
/// Error, `what` first) and clears it. GIL held.
void log_python_error(const std::string& tag, std::string_view what);

/// Registers the built-in module "_corral" (StartResponse, FileWrapper, and for gevent the
/// Connection type). Call before the interpreter is initialized.
void register_corral_module();

/// The same "_corral" module for a running interpreter (the extension module path): created
/// and put into sys.modules. False with a Python error set on failure. GIL held.
bool install_corral_module();

}  // namespace corral::worker::wsgi
