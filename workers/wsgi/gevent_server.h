#pragma once
// worker_class = "gevent": the accept/serve loop runs in Python greenlets on the inherited
// listening socket (after gevent.monkey.patch_all()), because a blocking C++ thread would
// stall gevent's hub. Each connection is a greenlet that reads with gevent's cooperative
// socket and hands the bytes to _corral.Connection, a C++ object that parses them with
// common/http1 (the same strict parser as every other corral-worker path), runs the same
// WsgiApp::call as sync/gthread, and writes the response through the socket's sendall, which
// yields to the hub when the proxy is not reading. So the environ, start_response, error
// handling and framing are identical across the three classes, and gevent only supplies the
// scheduling. (gevent.pywsgi would bring a second HTTP parser and its own WSGI semantics.)
//
// At most `concurrency` requests run the app at once (a gevent semaphore). SIGTERM/SIGINT:
// stop accepting, close idle keep-alive connections, let in-flight requests finish (their
// responses say Connection: close), then return.
// Threading: one OS thread, the GIL always held by it.
#include <string>

typedef struct _object PyObject;

namespace corral::worker::wsgi {

class WsgiApp;

/// Adds the Connection type to the _corral module (called by its init). False with a
/// Python error set on failure.
bool add_gevent_types(PyObject* module);

/// Serves `listen_fd` with gevent until SIGTERM/SIGINT. GIL held; gevent already patched.
/// Returns false (the error logged) when the loop could not run.
bool serve_gevent(WsgiApp& app, int listen_fd, int concurrency);

}  // namespace corral::worker::wsgi
