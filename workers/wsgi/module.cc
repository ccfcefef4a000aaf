// _corral_wsgi: the WSGI host as a CPython extension module, for corral-worker's processes
// that exec the interpreter binary (workers/wsgi/interpreter.h). Built from the same sources
// as the embedded host, against the interpreter's headers without linking libpython: the
// interpreter provides the C API. Its one function, main(args), does what corral-worker's
// main() and run_wsgi_worker() do once Python is up, and returns the exit code.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/base/log.h"
#include "workers/exit_codes.h"
#include "workers/options.h"
#include "workers/wsgi/python.h"
#include "workers/wsgi/wsgi_app.h"
#include "workers/wsgi/wsgi_host.h"

namespace corral::worker::wsgi {
namespace {

constexpr int kListenFd = 3;

// Makes the interpreter look as the embedded one is configured (wsgi_host.cc): sys.argv is
// ["corral-worker"], and SIGXFSZ keeps its default action (python3 ignores it at startup, the
// embedded interpreter installs no handlers). SIGINT is alike already: the signal module sets
// KeyboardInterrupt when it is first imported, in both, until the server loop takes
// SIGTERM/SIGINT over.
bool match_embedded() {
  PyRef argv(Py_BuildValue("[s]", "corral-worker"));
  if (!argv || PySys_SetObject("argv", argv.get()) < 0) return false;
  PyRef signal(PyImport_ImportModule("signal"));
  PyRef dfl(signal ? PyObject_GetAttrString(signal.get(), "SIG_DFL") : nullptr);
  PyRef r(dfl ? PyObject_CallMethod(signal.get(), "signal", "iO", SIGXFSZ, dfl.get()) : nullptr);
  return static_cast<bool>(r);
}

int run(const std::vector<std::string>& args) {
  log::set_program("corral-worker");
  auto opts = parse_options(args);
  if (!opts) {
    CORRAL_LOG(Error, "worker") << opts.error().message();
    return kExitBootError;
  }
  const std::string tag = log_tag(*opts);
  set_thread_name(*opts);  // exec named it after the interpreter
  struct stat st;
  if (::fstat(kListenFd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    CORRAL_LOG(Error, tag) << "no listening socket on fd 3; _corral_wsgi is started by corral-worker";
    return kExitBootError;
  }
  ::fcntl(kListenFd, F_SETFD, FD_CLOEXEC);  // never inherited by the app's subprocesses
  ::fcntl(kListenFd, F_SETFL, ::fcntl(kListenFd, F_GETFL) | O_NONBLOCK);
  ::signal(SIGPIPE, SIG_IGN);  // python3 does this too; an app writing to a closed socket gets EPIPE
  if (!match_embedded() || !install_corral_module()) {
    log_python_error(tag, "cannot set up the WSGI host");
    return kExitBootError;
  }
  std::string host = "interpreter";
  if (PyObject* exe = PySys_GetObject("executable"); exe && PyUnicode_Check(exe)) {  // borrowed
    if (const char* s = PyUnicode_AsUTF8(exe)) host += std::string(" ") + s;
  }
  PyErr_Clear();
  return serve_wsgi(*opts, tag, kListenFd, host);
}

PyObject* host_main(PyObject*, PyObject* arg) {
  std::vector<std::string> args = {"corral-worker"};
  PyRef seq(PySequence_Fast(arg, "main() takes the list of corral-worker's arguments"));
  if (!seq) return nullptr;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()); ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq.get(), i);  // borrowed
    PyRef bytes(PyUnicode_Check(item) ? PyUnicode_EncodeFSDefault(item) : nullptr);
    if (!bytes) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "main() arguments must be str");
      return nullptr;
    }
    args.emplace_back(PyBytes_AS_STRING(bytes.get()), static_cast<size_t>(PyBytes_GET_SIZE(bytes.get())));
  }
  return PyLong_FromLong(run(args));
}

PyMethodDef kMethods[] = {
    {"main", host_main, METH_O, "main(args) -> exit code: serve the WSGI app as corral-worker would (args without argv[0])"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_corral_wsgi", "corral-worker's WSGI host on the interpreter binary", -1,
                       kMethods, nullptr, nullptr, nullptr, nullptr};

}  // namespace
}  // namespace corral::worker::wsgi

PyMODINIT_FUNC PyInit__corral_wsgi() { return PyModule_Create(&corral::worker::wsgi::kModule); }
