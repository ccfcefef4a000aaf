#include "workers/wsgi/wsgi_host.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "common/base/log.h"
#include "workers/exit_codes.h"
#include "workers/http_server.h"
#include "workers/wsgi/gevent_server.h"
#include "workers/wsgi/interpreter.h"
#include "workers/wsgi/python.h"
#include "workers/wsgi/wsgi_app.h"

namespace corral::worker::wsgi {
namespace {

// ResponseWriter (blocking socket writes) with the GIL released around every call that may
// block. Each release costs a GIL round trip, which under contention (other threads running
// Python) means waiting up to the switch interval, so the head is held back until the first
// body bytes, and the end of the response — the block that completes a known Content-Length,
// the last chunk — is written by complete() once the handler has given the GIL up anyway.
// A typical response (one block with a length) thus costs no round trip at all. Blocks of a
// streamed body go out as they are produced (PEP 3333 forbids delaying them).
class WriterSink final : public ResponseSink {
 public:
  WriterSink(ResponseWriter& w, bool head_request) : w_(w), head_request_(head_request) {}
  bool send_head(int status, std::string_view reason, std::span<const std::pair<std::string, std::string>> headers,
                 std::optional<uint64_t> content_length) override {
    status_ = status;
    reason_ = reason;
    headers_.assign(headers.begin(), headers.end());
    length_ = content_length;
    head_pending_ = true;
    return true;
  }
  bool send_body(std::string_view data) override {
    if (last_held_) return !w_.broken();  // past the Content-Length: the writer would drop it
    if (length_) {
      sent_ += data.size();
      if (sent_ >= *length_) {
        last_.assign(data);
        last_held_ = true;
        return !w_.broken();
      }
    }
    bool ok;
    Py_BEGIN_ALLOW_THREADS
    ok = flush_head() && w_.send_body(data);
    Py_END_ALLOW_THREADS
    return ok;
  }
  bool finish() override {
    finish_held_ = true;
    return !w_.broken();
  }
  void abort() override { w_.abort(); }
  bool head_request() const override { return head_request_; }

  /// Writes what was held back. Called without the GIL, after the app is done.
  void complete() {
    if (w_.broken()) return;
    if (!flush_head()) return;
    if (last_held_ && !w_.send_body(last_)) return;
    if (finish_held_) w_.finish();
  }

 private:
  bool flush_head() {  // without the GIL
    if (!head_pending_) return true;
    head_pending_ = false;
    return w_.send_head(status_, headers_, length_, reason_);
  }
  ResponseWriter& w_;
  bool head_request_;
  bool head_pending_ = false, last_held_ = false, finish_held_ = false;
  int status_ = 0;
  std::string reason_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::optional<uint64_t> length_;
  uint64_t sent_ = 0;
  std::string last_;
};

// sync and gthread: HttpServer threads call handle() without the GIL.
class ThreadedHandler final : public RequestHandler {
 public:
  explicit ThreadedHandler(WsgiApp& app) : app_(app) {}
  void handle(const Request& req, ResponseWriter& out) noexcept override {
    // Each server thread keeps one Python thread state for its life (threading.local data
    // survives between requests, as under gunicorn's gthread).
    thread_local PyThreadState* ts = nullptr;
    if (!ts) {
      PyGILState_Ensure();  // never released: registers this thread with the interpreter
      ts = PyThreadState_Get();
    } else {
      PyEval_RestoreThread(ts);
    }
    WriterSink sink(out, req.head.method == "HEAD");
    app_.call(req.head, req.body, req.has_body, sink);
    PyEval_SaveThread();
    sink.complete();
  }

 private:
  WsgiApp& app_;
};

HttpServer* g_server = nullptr;
void on_stop_signal(int) {
  if (g_server) g_server->stop();
}

bool set_wide(PyConfig& config, wchar_t** field, const std::string& value) {
  PyStatus st = PyConfig_SetBytesString(&config, field, value.c_str());
  return !PyStatus_Exception(st);
}

// Imports "module:callable" ("module" alone means module:application; "module:f()" calls f).
// Returns a new reference, or null with a Python error set.
PyObject* load_app(const std::string& spec) {
  auto colon = spec.find(':');
  std::string mod_name = spec.substr(0, colon);
  std::string attr = colon == std::string::npos ? "application" : spec.substr(colon + 1);
  bool factory = attr.size() > 2 && attr.ends_with("()");
  if (factory) attr.resize(attr.size() - 2);
  PyRef obj(PyImport_ImportModule(mod_name.c_str()));
  if (!obj) return nullptr;
  size_t start = 0;
  while (start <= attr.size()) {
    size_t dot = attr.find('.', start);
    std::string part = attr.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    PyRef next(PyObject_GetAttrString(obj.get(), part.c_str()));
    if (!next) {
      PyErr_Format(PyExc_AttributeError, "module '%s' has no attribute '%s' (module = \"%s\")", mod_name.c_str(),
                   attr.c_str(), spec.c_str());
      return nullptr;
    }
    obj = std::move(next);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (factory) {
    PyRef made(PyObject_CallNoArgs(obj.get()));
    if (!made) return nullptr;
    obj = std::move(made);
  }
  if (!PyCallable_Check(obj.get())) {
    PyErr_Format(PyExc_TypeError, "'%s' is not a WSGI callable (got %s)", spec.c_str(), Py_TYPE(obj.get())->tp_name);
    return nullptr;
  }
  return obj.release();
}

// sys.path: python_path entries, then the working folder, in front of the rest.
bool extend_sys_path(const Options& opts) {
  PyObject* path = PySys_GetObject("path");  // borrowed
  if (!path || !PyList_Check(path)) {
    PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
    return false;
  }
  std::vector<std::string> front = opts.python_path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd)) front.emplace_back(cwd);
  for (size_t i = front.size(); i-- > 0;) {
    PyRef s(PyUnicode_DecodeFSDefault(front[i].c_str()));
    if (!s || PyList_Insert(path, 0, s.get()) < 0) return false;
  }
  return true;
}

}  // namespace

int run_wsgi_worker(const Options& opts, const std::string& tag, int listen_fd) {
  ::signal(SIGPIPE, SIG_IGN);  // an app writing to a closed socket gets EPIPE, not death
  register_corral_module();
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;  // SIGTERM/SIGINT belong to the server loop
  config.buffered_stdio = 0;           // print() reaches the supervisor's log at once
  config.parse_argv = 0;
  bool ok = set_wide(config, &config.program_name, interpreter_path(opts));
  std::string argv0 = "corral-worker";
  char* argv[] = {argv0.data()};
  if (ok) ok = !PyStatus_Exception(PyConfig_SetBytesArgv(&config, 1, argv));
  PyStatus st = ok ? Py_InitializeFromConfig(&config) : PyStatus_Error("bad interpreter settings");
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st)) {
    CORRAL_LOG(Error, tag) << "cannot start Python: " << (st.err_msg ? st.err_msg : "unknown error");
    return kExitBootError;
  }
  int code = serve_wsgi(opts, tag, listen_fd, "embedded libpython");
  Py_FinalizeEx();  // runs atexit handlers; their errors are printed by Python
  return code;
}

int serve_wsgi(const Options& opts, const std::string& tag, int listen_fd, std::string_view host) {
  const bool gevent = opts.worker_class == "gevent";
  AppSettings settings;
  settings.tag = tag;
  settings.multithread = gevent || opts.worker_class == "gthread";
  settings.environ.server_software = std::string("corral/") + CORRAL_VERSION;
  if (const char* sn = std::getenv("SCRIPT_NAME")) {
    settings.environ.script_name = sn;
    while (!settings.environ.script_name.empty() && settings.environ.script_name.back() == '/')
      settings.environ.script_name.pop_back();
  }

  if (!extend_sys_path(opts)) {
    log_python_error(tag, "cannot set sys.path");
    return kExitBootError;
  }
  if (gevent) {
    // Before the app (or anything it imports) binds the blocking socket/ssl/threading names.
    PyRef monkey(PyImport_ImportModule("gevent.monkey"));
    PyRef patched(monkey ? PyObject_CallMethod(monkey.get(), "patch_all", nullptr) : nullptr);
    if (!patched) {
      log_python_error(tag, "worker_class \"gevent\" needs gevent (Debian: python3-gevent)");
      return kExitAppLoadError;
    }
  }
  PyRef callable(load_app(opts.module));
  if (!callable) {
    log_python_error(tag, "cannot load the WSGI app \"" + opts.module + "\"");
    return kExitAppLoadError;
  }
  auto app = std::make_unique<WsgiApp>(callable.get(), settings);
  callable = PyRef();
  CORRAL_LOG(Info, tag) << "serving WSGI app " << opts.module << " (" << opts.worker_class << ", concurrency "
                        << opts.concurrency << ", Python " << Py_GetVersion() << ", " << host << ")";

  int code = kExitOk;
  if (gevent) {
    if (!serve_gevent(*app, listen_fd, opts.concurrency)) code = kExitBootError;
  } else {
    ThreadedHandler handler(*app);
    HttpServer server(listen_fd, opts.worker_class == "sync" ? 1 : opts.concurrency, handler, tag);
    g_server = &server;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    PyThreadState* main_ts = PyEval_SaveThread();  // server threads take the GIL per request
    auto ran = server.run();
    PyEval_RestoreThread(main_ts);
    g_server = nullptr;
    if (!ran) {
      CORRAL_LOG(Error, tag) << ran.error().message();
      code = kExitBootError;
    }
  }
  app.reset();
  return code;
}

}  // namespace corral::worker::wsgi
