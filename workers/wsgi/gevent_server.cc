#include "workers/wsgi/gevent_server.h"

#include <string>

#include "common/base/log.h"
#include "common/http1/parser.h"
#include "workers/wsgi/python.h"
#include <structmember.h>
#include "workers/response_encoder.h"
#include "workers/wsgi/wsgi_app.h"

namespace corral::worker::wsgi {
namespace {

// As in workers/http_server.cc: the proxy validated the head against its own limits.
constexpr http1::Limits kLimits{1 << 20, 10'000};

WsgiApp* g_app = nullptr;  // set by serve_gevent for the life of the loop (one per process)

// Encodes into a buffer and hands it to a Python callable (socket.sendall, which yields to
// the hub while the socket is full). The head is held back and sent with the first body
// bytes, so a small response is one write.
class SendSink final : public ResponseSink {
 public:
  SendSink(PyObject* send, bool head_request, bool keep_alive)
      : send_(send), enc_(head_request, keep_alive), head_request_(head_request) {}

  bool send_head(int status, std::string_view reason, std::span<const std::pair<std::string, std::string>> headers,
                 std::optional<uint64_t> content_length) override {
    if (broken_) return false;
    enc_.head(pending_, status, reason, headers, content_length);
    return true;
  }
  bool send_body(std::string_view data) override {
    if (broken_) return false;
    enc_.body(pending_, data);
    return flush();
  }
  bool finish() override {
    if (broken_) return false;
    bool complete = enc_.finish(pending_);
    return flush() && complete;
  }
  void abort() override {
    broken_ = true;
    enc_.close_after();
  }
  bool head_request() const override { return head_request_; }
  bool keep_alive() const { return !broken_ && enc_.keep_alive(); }

 private:
  bool flush() {
    if (pending_.empty()) return !broken_;
    PyRef bytes(PyBytes_FromStringAndSize(pending_.data(), static_cast<Py_ssize_t>(pending_.size())));
    pending_.clear();
    PyRef r(bytes ? PyObject_CallOneArg(send_, bytes.get()) : nullptr);
    if (!r) {
      // The proxy closed the connection (OSError), or the greenlet is being killed: stop
      // writing; the app finishes its call and the connection is closed.
      PyErr_Clear();
      broken_ = true;
      enc_.close_after();
      return false;
    }
    return true;
  }

  PyObject* send_;
  ResponseEncoder enc_;
  bool head_request_;
  bool broken_ = false;
  std::string pending_;
};

// ---- _corral.Connection ----------------------------------------------------------------------

struct ConnState {
  PyObject* send = nullptr;  // strong
  std::string buf;
  http1::RequestParser parser{kLimits};
  http1::RequestHead head;
  http1::BodyDecoder decoder;
  bool in_body = false;  // head parsed, body incomplete
  size_t pos = 0;        // bytes of buf consumed by the current request
  std::string body;
};

struct ConnectionObject {
  PyObject_HEAD
  ConnState* st;
  int closing;  // Python-visible: the next response says Connection: close
};

int connection_init(PyObject* self, PyObject* args, PyObject*) {
  auto* c = reinterpret_cast<ConnectionObject*>(self);
  PyObject* send;
  if (!PyArg_ParseTuple(args, "O:Connection", &send)) return -1;
  if (!PyCallable_Check(send)) {
    PyErr_SetString(PyExc_TypeError, "Connection(send): send must be callable");
    return -1;
  }
  delete c->st;
  c->st = new ConnState;
  Py_INCREF(send);
  c->st->send = send;
  return 0;
}

void connection_dealloc(PyObject* self) {
  auto* c = reinterpret_cast<ConnectionObject*>(self);
  if (c->st) {
    Py_XDECREF(c->st->send);
    delete c->st;
  }
  Py_TYPE(self)->tp_free(self);
}

// Sends a short error response and tells the caller to close.
PyObject* reject(ConnState& st, int status) {
  SendSink sink(st.send, false, false);
  static const std::pair<std::string, std::string> kType{"Content-Type", "text/plain; charset=utf-8"};
  constexpr std::string_view kText = "bad request\n";
  if (sink.send_head(status, {}, std::span(&kType, 1), kText.size()) && sink.send_body(kText)) sink.finish();
  Py_RETURN_FALSE;
}

// feed(data) -> bool: consumes bytes from the proxy; runs every request they complete.
// False = close the connection.
PyObject* connection_feed(PyObject* self, PyObject* data) {
  auto* c = reinterpret_cast<ConnectionObject*>(self);
  if (!c->st || !g_app) {
    PyErr_SetString(PyExc_RuntimeError, "Connection is not initialised");
    return nullptr;
  }
  ConnState& st = *c->st;
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) != 0) return nullptr;
  st.buf.append(static_cast<const char*>(view.buf), static_cast<size_t>(view.len));
  PyBuffer_Release(&view);
  for (;;) {
    if (!st.in_body) {
      http1::HeadResult hr = st.parser.parse(st.buf, st.head);
      if (hr.status == http1::ParseStatus::Incomplete) Py_RETURN_TRUE;
      if (hr.status == http1::ParseStatus::Error) {
        CORRAL_LOG(Warn, g_app->settings().tag) << "bad request from the proxy: " << hr.error.reason;
        return reject(st, hr.error.status);
      }
      st.in_body = true;
      st.pos = hr.consumed;
      st.body.clear();
      st.decoder.start(st.head.body, st.head.content_length);
    } else {
      // buf may have moved while the body was incomplete: refresh the head's views.
      st.parser.reset();
      st.parser.parse(st.buf, st.head);
    }
    while (!st.decoder.done()) {
      std::string_view in = std::string_view(st.buf).substr(st.pos);
      if (in.empty()) Py_RETURN_TRUE;
      auto step = st.decoder.step(in);
      if (step.error) return reject(st, 400);
      st.body.append(step.data);
      st.pos += step.consumed;
      if (step.consumed == 0 && !st.decoder.done()) Py_RETURN_TRUE;
    }
    const bool keep = st.head.keep_alive && !c->closing;
    SendSink sink(st.send, st.head.method == "HEAD", keep);
    g_app->call(st.head, st.body, st.head.body != http1::BodyKind::None, sink);
    st.buf.erase(0, st.pos);  // the head's views die here
    st.pos = 0;
    st.in_body = false;
    st.parser.reset();
    if (!sink.keep_alive() || c->closing) Py_RETURN_FALSE;
    if (st.buf.empty()) Py_RETURN_TRUE;
  }
}

PyMethodDef kConnectionMethods[] = {
    {"feed", connection_feed, METH_O, "feed(data) -> keep the connection open?"}, {nullptr, nullptr, 0, nullptr}};

PyMemberDef kConnectionMembers[] = {
    {"closing", T_INT, offsetof(ConnectionObject, closing), 0, "answer with Connection: close from now on"},
    {nullptr, 0, 0, 0, nullptr}};

PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(nullptr, 0) "_corral.Connection",
    sizeof(ConnectionObject),
};

// The serve loop (see the header). Names starting with '_' stay private to this module.
constexpr const char* kServeSource = R"PY(
import errno as _errno
import signal as _signal
import sys as _sys

import gevent as _gevent
import gevent.lock as _glock
from gevent import socket as _gsocket


def serve(listen_fd, concurrency):
    listener = _gsocket.socket(fileno=listen_fd)  # timeout None: accept() waits in the hub
    sem = _glock.BoundedSemaphore(concurrency)
    conns = {}  # greenlet -> [Connection, busy]
    stopping = []

    def handle(sock):
        me = _gevent.getcurrent()
        conn = Connection(sock.sendall)
        entry = conns[me] = [conn, False]
        try:
            while not stopping:
                data = sock.recv(65536)
                if not data:
                    break
                entry[1] = True
                try:
                    with sem:
                        keep = conn.feed(data)
                finally:
                    entry[1] = False
                if not keep:
                    break
        except OSError:
            pass
        finally:
            conns.pop(me, None)
            sock.close()

    def accept_loop():
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as e:
                if stopping:
                    return
                if e.errno in (_errno.EAGAIN, _errno.ECONNABORTED, _errno.EINTR):
                    continue
                print("corral-worker: accept: %s" % e, file=_sys.stderr)
                _gevent.sleep(0.1)
                continue
            _gevent.spawn(handle, sock)

    acceptor = _gevent.spawn(accept_loop)

    def on_stop():
        if stopping:
            return
        stopping.append(True)
        acceptor.kill(block=False)
        for g, (conn, busy) in list(conns.items()):
            conn.closing = 1
            if not busy:
                g.kill(block=False)

    _gevent.signal_handler(_signal.SIGTERM, on_stop)
    _gevent.signal_handler(_signal.SIGINT, on_stop)
    acceptor.join()
    while conns:
        _gevent.joinall(list(conns), timeout=1)
)PY";

}  // namespace

bool add_gevent_types(PyObject* module) {
  ConnectionType.tp_flags = Py_TPFLAGS_DEFAULT;
  ConnectionType.tp_new = PyType_GenericNew;
  ConnectionType.tp_init = connection_init;
  ConnectionType.tp_dealloc = connection_dealloc;
  ConnectionType.tp_methods = kConnectionMethods;
  ConnectionType.tp_members = kConnectionMembers;
  ConnectionType.tp_doc = "Connection(send): one proxy connection of the gevent worker class";
  if (PyType_Ready(&ConnectionType) < 0) return false;
  Py_INCREF(&ConnectionType);
  if (PyModule_AddObject(module, "Connection", reinterpret_cast<PyObject*>(&ConnectionType)) < 0) {
    Py_DECREF(&ConnectionType);
    return false;
  }
  return true;
}

bool serve_gevent(WsgiApp& app, int listen_fd, int concurrency) {
  g_app = &app;
  PyRef mod(PyImport_ImportModule("_corral"));
  if (!mod) {
    log_python_error(app.settings().tag, "cannot import _corral");
    return false;
  }
  PyObject* dict = PyModule_GetDict(mod.get());  // borrowed
  PyRef r(PyRun_String(kServeSource, Py_file_input, dict, dict));
  PyRef done(r ? PyObject_CallMethod(mod.get(), "serve", "ii", listen_fd, concurrency) : nullptr);
  g_app = nullptr;
  if (!done) {
    log_python_error(app.settings().tag, "the gevent serve loop failed");
    return false;
  }
  return true;
}

}  // namespace corral::worker::wsgi
