"""Tells which interpreter runs it, as JSON: the worker process's executable (/proc/self/exe),
sys.executable and sys.prefix, sys.argv, SIGINT's disposition, whether corral's host module is
loaded, and the process name. corral-worker execs the python3 binary with its WSGI host as the
extension module _corral_wsgi; on the embedded fallback /proc/self/exe stays corral-worker."""
import json
import os
import signal
import sys


def app(environ, start_response):
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    body = json.dumps({
        "pid": os.getpid(),
        "exe": os.readlink("/proc/self/exe"),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "argv": sys.argv,
        "sigint": repr(signal.getsignal(signal.SIGINT)),
        "sigxfsz": repr(signal.getsignal(signal.SIGXFSZ)),
        "host_module": "_corral_wsgi" in sys.modules,
        "corral_module": "_corral" in sys.modules,
        "path": sys.path,
        "comm": comm,
        "server": environ["SERVER_SOFTWARE"],
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
