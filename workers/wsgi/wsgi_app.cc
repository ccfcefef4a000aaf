#include "workers/wsgi/wsgi_app.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "workers/wsgi/gevent_server.h"
#include "workers/wsgi/python.h"

namespace corral::worker::wsgi {
namespace {

// ---- per-request state behind start_response / write ---------------------------------------

struct Call {
  ResponseSink* out = nullptr;
  const std::string* tag = nullptr;
  bool started = false;    // start_response was called
  bool head_sent = false;  // the head went to the sink
  bool broken = false;     // the sink failed: stop producing output
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<uint64_t> content_length;

  bool send_head() {
    if (head_sent) return !broken;
    head_sent = true;
    if (!out->send_head(status, reason, headers, content_length)) broken = true;
    return !broken;
  }
  bool send_body(std::string_view data) {
    if (broken || !send_head()) return false;
    if (!out->send_body(data)) broken = true;
    return !broken;
  }
};

bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}

bool is_hop_by_hop(std::string_view n) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                             "trailers", "transfer-encoding", "upgrade"})
    if (iequals(n, h)) return true;
  return false;
}

// A native string as latin-1 bytes (PEP 3333: status and headers are str of code points
// below 256). Sets a Python error and returns false otherwise.
bool latin1(PyObject* o, const char* what, std::string& out) {
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %s", what, Py_TYPE(o)->tp_name);
    return false;
  }
  PyRef b(PyUnicode_AsLatin1String(o));
  if (!b) return false;
  out.assign(PyBytes_AS_STRING(b.get()), static_cast<size_t>(PyBytes_GET_SIZE(b.get())));
  return true;
}

// Parses and validates start_response's arguments into `c`.
bool take_status_and_headers(Call& c, PyObject* status, PyObject* headers) {
  std::string st;
  if (!latin1(status, "status", st)) return false;
  // "200 OK": three digits, then a space and a reason (which may be empty).
  if (st.size() < 3 || !std::isdigit(static_cast<unsigned char>(st[0])) ||
      !std::isdigit(static_cast<unsigned char>(st[1])) || !std::isdigit(static_cast<unsigned char>(st[2])) ||
      (st.size() > 3 && st[3] != ' ')) {
    PyErr_Format(PyExc_ValueError, "status %R is not \"NNN Reason\"", status);
    return false;
  }
  int code = (st[0] - '0') * 100 + (st[1] - '0') * 10 + (st[2] - '0');
  if (code < 200 || code > 599) {
    PyErr_Format(PyExc_ValueError, "status %R: the code must be 200 to 599", status);
    return false;
  }
  std::string reason = st.size() > 4 ? st.substr(4) : std::string();
  for (char ch : reason)
    if (ch == '\r' || ch == '\n' || ch == '\0') {
      PyErr_SetString(PyExc_ValueError, "status contains CR, LF or NUL");
      return false;
    }
  PyRef seq(PySequence_Fast(headers, "response_headers must be a list of (name, value) tuples"));
  if (!seq) return false;
  std::vector<std::pair<std::string, std::string>> out;
  std::optional<uint64_t> length;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.get());
  out.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq.get(), i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      PyErr_Format(PyExc_TypeError, "response header %R is not a (name, value) tuple", item);
      return false;
    }
    std::string name, value;
    if (!latin1(PyTuple_GET_ITEM(item, 0), "a header name", name) ||
        !latin1(PyTuple_GET_ITEM(item, 1), "a header value", value))
      return false;
    if (name.empty()) {
      PyErr_SetString(PyExc_ValueError, "empty response header name");
      return false;
    }
    for (char ch : name)
      if (!is_tchar(static_cast<unsigned char>(ch))) {
        PyErr_Format(PyExc_ValueError, "invalid character in response header name %R", PyTuple_GET_ITEM(item, 0));
        return false;
      }
    for (char ch : value) {
      auto u = static_cast<unsigned char>(ch);
      if ((u < 0x20 && u != '\t') || u == 0x7f) {
        PyErr_Format(PyExc_ValueError, "response header %s has CR, LF or another control character in its value",
                     name.c_str());
        return false;
      }
    }
    if (is_hop_by_hop(name)) {
      PyErr_Format(PyExc_ValueError, "hop-by-hop header %s is not allowed in a WSGI response (PEP 3333)", name.c_str());
      return false;
    }
    if (iequals(name, "content-length")) {
      auto v = parse_decimal(value);
      if (!v || (length && *length != *v)) {
        PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", PyTuple_GET_ITEM(item, 1));
        return false;
      }
      length = *v;
      continue;  // the sink frames the body
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  c.status = code;
  c.reason = std::move(reason);
  c.headers = std::move(out);
  c.content_length = length;
  return true;
}

// ---- _corral.StartResponse -------------------------------------------------------------------

struct StartResponseObject {
  PyObject_HEAD
  Call* call;  // null once the request is over
};

PyObject* start_response_call(PyObject* self, PyObject* args, PyObject* kwargs) {
  auto* sr = reinterpret_cast<StartResponseObject*>(self);
  static const char* kwlist[] = {"status", "response_headers", "exc_info", nullptr};
  PyObject *status, *headers, *exc_info = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|O:start_response", const_cast<char**>(kwlist), &status,
                                   &headers, &exc_info))
    return nullptr;
  Call* c = sr->call;
  if (!c) {
    PyErr_SetString(PyExc_RuntimeError, "start_response called after the request ended");
    return nullptr;
  }
  if (exc_info != Py_None) {
    if (c->head_sent) {
      // PEP 3333: too late to change the status; re-raise the app's exception.
      if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
        PyErr_SetString(PyExc_TypeError, "exc_info must be a (type, value, traceback) tuple");
        return nullptr;
      }
      PyObject* value = PyTuple_GET_ITEM(exc_info, 1);
      if (PyExceptionInstance_Check(value)) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(value)), value);
        PyObject* tb = PyTuple_GET_ITEM(exc_info, 2);
        if (tb != Py_None) PyException_SetTraceback(value, tb);
      } else {
        PyErr_SetString(PyExc_RuntimeError, "start_response(exc_info) after the headers were sent");
      }
      return nullptr;
    }
  } else if (c->started) {
    PyErr_SetString(PyExc_AssertionError, "start_response called a second time without exc_info");
    return nullptr;
  }
  if (!take_status_and_headers(*c, status, headers)) return nullptr;
  c->started = true;
  return PyObject_GetAttrString(self, "write");
}

PyObject* start_response_write(PyObject* self, PyObject* data) {
  Call* c = reinterpret_cast<StartResponseObject*>(self)->call;
  if (!c) {
    PyErr_SetString(PyExc_RuntimeError, "write() called after the request ended");
    return nullptr;
  }
  if (!c->started) {
    PyErr_SetString(PyExc_AssertionError, "write() called before start_response");
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return nullptr;
  bool ok = c->send_body(std::string_view(static_cast<const char*>(view.buf), static_cast<size_t>(view.len)));
  PyBuffer_Release(&view);
  if (!ok) {
    errno = EPIPE;
    PyErr_SetString(PyExc_BrokenPipeError, "the connection to the client is gone");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyMethodDef kStartResponseMethods[] = {
    {"write", start_response_write, METH_O, "write(data): the PEP 3333 write() callable"},
    {nullptr, nullptr, 0, nullptr}};

PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(nullptr, 0) "_corral.StartResponse",  // tp_name
    sizeof(StartResponseObject),                                 // tp_basicsize
};

// ---- the module ------------------------------------------------------------------------------

// FileWrapper is plain Python: iteration calls the file's read(); WsgiApp recognises the type
// and reads a regular file itself.
constexpr const char* kModuleSource = R"PY(
class FileWrapper:
    """wsgi.file_wrapper (PEP 3333): iterates filelike in blksize blocks; close() closes it."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration
)PY";

PyModuleDef kModuleDef = {PyModuleDef_HEAD_INIT, "_corral", "corral-worker's WSGI host", -1,
                          nullptr, nullptr, nullptr, nullptr, nullptr};

PyObject* init_module() {
  StartResponseType.tp_flags = Py_TPFLAGS_DEFAULT;
  StartResponseType.tp_call = start_response_call;
  StartResponseType.tp_methods = kStartResponseMethods;
  StartResponseType.tp_doc = "start_response(status, response_headers, exc_info=None) (PEP 3333)";
  if (PyType_Ready(&StartResponseType) < 0) return nullptr;
  PyRef m(PyModule_Create(&kModuleDef));
  if (!m) return nullptr;
  Py_INCREF(&StartResponseType);
  if (PyModule_AddObject(m.get(), "StartResponse", reinterpret_cast<PyObject*>(&StartResponseType)) < 0) {
    Py_DECREF(&StartResponseType);
    return nullptr;
  }
  PyObject* dict = PyModule_GetDict(m.get());  // borrowed
  if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins()) < 0) return nullptr;
  PyRef r(PyRun_String(kModuleSource, Py_file_input, dict, dict));
  if (!r) return nullptr;
  if (!add_gevent_types(m.get())) return nullptr;
  return m.release();
}

// Ends a request whose app failed: 500 when nothing was sent yet, else a broken connection.
void fail(Call& c) {
  if (c.head_sent) {
    c.out->abort();
    return;
  }
  static const std::pair<std::string, std::string> kType{"Content-Type", "text/plain; charset=utf-8"};
  constexpr std::string_view kText = "Internal Server Error\n";
  c.head_sent = true;
  if (c.out->send_head(500, "Internal Server Error", std::span(&kType, 1), kText.size()) &&
      c.out->send_body(kText))
    c.out->finish();
}

// Regular-file fast path of wsgi.file_wrapper: pread in 64 KiB blocks from the file's current
// offset. Returns false (Python error set) when the file has no usable descriptor, so the
// caller iterates normally; `handled` tells whether it ran.
bool send_regular_file(Call& c, PyObject* wrapper, bool& handled) {
  handled = false;
  PyRef filelike(PyObject_GetAttrString(wrapper, "filelike"));
  if (!filelike) return PyErr_Clear(), true;
  PyRef fileno(PyObject_CallMethod(filelike.get(), "fileno", nullptr));
  if (!fileno) return PyErr_Clear(), true;
  int fd = static_cast<int>(PyLong_AsLong(fileno.get()));
  if (fd < 0) return PyErr_Clear(), true;
  // Buffered Python files may have read ahead: flush our view through tell().
  PyRef tell(PyObject_CallMethod(filelike.get(), "tell", nullptr));
  if (!tell) return PyErr_Clear(), true;
  long long offset = PyLong_AsLongLong(tell.get());
  struct stat st;
  if (offset < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return PyErr_Clear(), true;
  handled = true;
  uint64_t left = st.st_size > offset ? static_cast<uint64_t>(st.st_size - offset) : 0;
  if (!c.content_length) c.content_length = left;
  left = std::min<uint64_t>(left, *c.content_length);
  if (c.out->head_request()) left = 0;  // HEAD: the length is all the client gets
  if (!c.send_head()) return false;
  std::string buf(64 * 1024, '\0');
  while (left > 0 && !c.broken) {
    ssize_t n;
    Py_BEGIN_ALLOW_THREADS
    n = ::pread(fd, buf.data(), std::min<uint64_t>(left, buf.size()), offset);
    Py_END_ALLOW_THREADS
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      PyErr_SetFromErrno(PyExc_OSError);
      return false;
    }
    offset += n;
    left -= static_cast<uint64_t>(n);
    if (!c.send_body(std::string_view(buf.data(), static_cast<size_t>(n)))) break;
  }
  return true;
}

}  // namespace

namespace {
std::atomic<bool> g_python_embedded{false};
}  // namespace

void register_corral_module() {
  g_python_embedded.store(true);
  PyImport_AppendInittab("_corral", &init_module);
}

bool install_corral_module() {
  PyRef m(init_module());
  return m && PyDict_SetItemString(PyImport_GetModuleDict(), "_corral", m.get()) == 0;
}

}  // namespace corral::worker::wsgi

// Under LeakSanitizer (make test-asan): CPython keeps interned strings, type caches and module
// state for the life of the process even after Py_FinalizeEx, which LSan would report at exit
// as leaks of this process. Leak checking stays on for processes that never embed Python.
extern "C" __attribute__((visibility("default"))) int __lsan_is_turned_off() {
  return corral::worker::wsgi::g_python_embedded.load() ? 1 : 0;
}

namespace corral::worker::wsgi {

void log_python_error(const std::string& tag, std::string_view what) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyRef t(type), v(value), b(tb);
  std::string text;
  PyRef mod(PyImport_ImportModule("traceback"));
  PyRef lines(mod ? PyObject_CallMethod(mod.get(), "format_exception", "OOO", t ? t.get() : Py_None,
                                        v ? v.get() : Py_None, b ? b.get() : Py_None)
                  : nullptr);
  if (lines) {
    PyRef joined(PyUnicode_Join(PyRef(PyUnicode_FromString("")).get(), lines.get()));
    if (joined) {
      Py_ssize_t n;
      const char* s = PyUnicode_AsUTF8AndSize(joined.get(), &n);
      if (s) text.assign(s, static_cast<size_t>(n));
    }
  }
  if (text.empty()) text = "(no traceback available)\n";
  PyErr_Clear();
  std::string_view rest = text;
  CORRAL_LOG(Error, tag) << what;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    if (!line.empty()) {
      CORRAL_LOG(Error, tag) << "  " << line;
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
}

WsgiApp::WsgiApp(PyObject* callable, AppSettings settings) : app_(callable), s_(std::move(settings)) {
  Py_INCREF(app_);
  PyRef io(PyImport_ImportModule("io"));
  CORRAL_CHECK(io, "import io");
  bytes_io_ = PyObject_GetAttrString(io.get(), "BytesIO");
  PyRef corral(PyImport_ImportModule("_corral"));
  CORRAL_CHECK(corral, "import _corral");
  file_wrapper_ = PyObject_GetAttrString(corral.get(), "FileWrapper");
  version_ = Py_BuildValue("(ii)", 1, 0);
  CORRAL_CHECK(bytes_io_ && file_wrapper_ && version_, "WSGI host setup");
}

WsgiApp::~WsgiApp() {
  // Runs at exit with the GIL held, before the interpreter is finalized.
  Py_XDECREF(app_);
  Py_XDECREF(bytes_io_);
  Py_XDECREF(file_wrapper_);
  Py_XDECREF(version_);
}

PyObject* WsgiApp::build_environ(const http1::RequestHead& head, std::string_view body, bool has_body) noexcept {
  CgiEnviron cgi = build_cgi_environ(head, body.size(), has_body, s_.environ);
  PyRef env(PyDict_New());
  if (!env) return nullptr;
  auto set = [&](const char* key, PyObject* value) {  // steals value
    PyRef v(value);
    return v && PyDict_SetItemString(env.get(), key, v.get()) == 0;
  };
  for (auto& [k, v] : cgi.vars) {
    if (!set(k.c_str(), PyUnicode_DecodeLatin1(v.data(), static_cast<Py_ssize_t>(v.size()), nullptr))) return nullptr;
  }
  PyRef bytes(PyBytes_FromStringAndSize(body.data(), static_cast<Py_ssize_t>(body.size())));
  if (!bytes) return nullptr;
  PyObject* errors = PySys_GetObject("stderr");  // borrowed
  Py_XINCREF(errors);
  Py_INCREF(version_);
  Py_INCREF(file_wrapper_);
  if (!set("wsgi.version", version_) || !set("wsgi.url_scheme", PyUnicode_FromString(cgi.url_scheme.c_str())) ||
      !set("wsgi.input", PyObject_CallOneArg(bytes_io_, bytes.get())) ||
      !set("wsgi.errors", errors ? errors : Py_NewRef(Py_None)) ||
      !set("wsgi.multithread", PyBool_FromLong(s_.multithread)) ||
      !set("wsgi.multiprocess", PyBool_FromLong(s_.multiprocess)) || !set("wsgi.run_once", Py_NewRef(Py_False)) ||
      !set("wsgi.input_terminated", Py_NewRef(Py_True)) || !set("wsgi.file_wrapper", file_wrapper_))
    return nullptr;
  return env.release();
}

void WsgiApp::call(const http1::RequestHead& head, std::string_view body, bool has_body, ResponseSink& out) noexcept {
  Call c;
  c.out = &out;
  c.tag = &s_.tag;
  auto what = [&] { return "the app raised an exception on " + std::string(head.method) + " " + std::string(head.target); };

  PyRef environ(build_environ(head, body, has_body));
  if (!environ) {
    log_python_error(s_.tag, "cannot build the WSGI environ");
    fail(c);
    return;
  }
  PyRef sr_obj(PyType_GenericAlloc(&StartResponseType, 0));
  if (!sr_obj) {
    log_python_error(s_.tag, "cannot allocate start_response");
    fail(c);
    return;
  }
  auto* sr = reinterpret_cast<StartResponseObject*>(sr_obj.get());
  sr->call = &c;

  bool ok = true;
  PyRef result(PyObject_CallFunctionObjArgs(app_, environ.get(), sr_obj.get(), nullptr));
  if (!result) {
    log_python_error(s_.tag, what());
    ok = false;
  } else {
    bool file_done = false;
    if (Py_IS_TYPE(result.get(), reinterpret_cast<PyTypeObject*>(file_wrapper_)) && c.started && !c.head_sent) {
      if (!send_regular_file(c, result.get(), file_done)) {
        log_python_error(s_.tag, what());
        ok = false;
      }
    }
    if (ok && !file_done) {
      // A one-item list or tuple is the whole body: announce its length (gunicorn does too).
      if (!c.content_length && c.started && (PyList_CheckExact(result.get()) || PyTuple_CheckExact(result.get())) &&
          PySequence_Fast_GET_SIZE(result.get()) == 1 && PyBytes_Check(PySequence_Fast_GET_ITEM(result.get(), 0)))
        c.content_length = static_cast<uint64_t>(PyBytes_GET_SIZE(PySequence_Fast_GET_ITEM(result.get(), 0)));
      PyRef it(PyObject_GetIter(result.get()));
      if (!it) {
        log_python_error(s_.tag, what());
        ok = false;
      }
      while (ok && !c.broken) {
        PyRef item(PyIter_Next(it.get()));
        if (!item) {
          if (PyErr_Occurred()) {
            log_python_error(s_.tag, what());
            ok = false;
          }
          break;
        }
        if (!PyBytes_Check(item.get())) {
          PyErr_Format(PyExc_TypeError, "the app's iterable yielded %s, not bytes", Py_TYPE(item.get())->tp_name);
          log_python_error(s_.tag, what());
          ok = false;
          break;
        }
        if (PyBytes_GET_SIZE(item.get()) == 0) continue;  // PEP 3333: the head waits for real data
        if (!c.started) {
          PyErr_SetString(PyExc_AssertionError, "the app yielded data before calling start_response");
          log_python_error(s_.tag, what());
          ok = false;
          break;
        }
        c.send_body(std::string_view(PyBytes_AS_STRING(item.get()), static_cast<size_t>(PyBytes_GET_SIZE(item.get()))));
      }
    }
    // PEP 3333: close() is called whatever happened, even when the client went away.
    if (PyObject_HasAttrString(result.get(), "close")) {
      PyRef r(PyObject_CallMethod(result.get(), "close", nullptr));
      if (!r) {
        log_python_error(s_.tag, "the app's iterable raised in close() on " + std::string(head.method) + " " +
                                     std::string(head.target));
        // A body already on its way is still ended properly; with nothing sent yet: 500.
        if (!c.head_sent) ok = false;
      }
    }
  }
  sr->call = nullptr;  // a start_response the app kept is dead from here on

  if (ok && !c.started) {
    CORRAL_LOG(Error, s_.tag) << "the app returned without calling start_response on " << head.method << " "
                              << head.target;
    ok = false;
  }
  if (!ok) {
    fail(c);
    return;
  }
  if (c.broken) {
    out.abort();
    return;
  }
  // Nothing was yielded: an empty body. Not for HEAD, where frameworks yield nothing
  // whatever the GET's body (Werkzeug does): no length is better than a false 0.
  if (!c.head_sent && !c.content_length && !out.head_request()) c.content_length = 0;
  if (c.send_head()) out.finish();
}

}  // namespace corral::worker::wsgi
