"""A Flask app for corral's wsgi integration tests and the WSGI benchmark.

Every route answers something a test can check; /sleep and /cpu also report how many
requests this process had in flight at once, which is how tests observe concurrency
without relying on timings.
"""
import hashlib
import os
import threading
import time

from flask import Flask, Response, jsonify, request, send_file, stream_with_context

app = Flask(__name__)

_lock = threading.Lock()
_inflight = 0
_peak = 0
_counter = 0
HERE = os.path.dirname(os.path.abspath(__file__))


class _InFlight:
    """Counts requests running in this process (threads or greenlets)."""

    def __enter__(self):
        global _inflight, _peak
        with _lock:
            _inflight += 1
            _peak = max(_peak, _inflight)
            self.now = _inflight
        return self

    def __exit__(self, *exc):
        global _inflight
        with _lock:
            _inflight -= 1


@app.route("/")
def index():
    return "hello from flask\n"


@app.route("/json")
def json_route():
    return jsonify(ok=True, pid=os.getpid(), items=[1, 2, 3], text="ünïcode")


@app.route("/stream")
def stream():
    n = request.args.get("n", 5, type=int)

    def gen():
        for i in range(n):
            yield "chunk %d\n" % i

    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.route("/file")
def file_route():
    return send_file(os.path.join(HERE, "static.txt"), mimetype="text/plain")


@app.route("/error")
def error():
    raise RuntimeError("boom from /error (expected by the test)")


@app.route("/echo", methods=["GET", "POST", "PUT"])
def echo():
    body = request.get_data()
    return jsonify(
        method=request.method,
        path=request.path,
        script_root=request.script_root,
        args=request.args.to_dict(flat=False),
        form=request.form.to_dict(flat=False),
        length=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        content_type=request.content_type,
        remote_addr=request.remote_addr,
        scheme=request.scheme,
        host=request.host,
        request_id=request.headers.get("X-Request-Id"),
    )


@app.route("/sleep")
def sleep_route():
    ms = request.args.get("ms", 100, type=int)
    with _InFlight():
        time.sleep(ms / 1000.0)
    return jsonify(pid=os.getpid(), peak=_peak)


@app.route("/cpu")
def cpu():
    n = request.args.get("n", 200000, type=int)
    with _InFlight():
        start = time.monotonic()
        x = 0
        for i in range(n):
            x = (x * 31 + i) % 1000003
        end = time.monotonic()
    return jsonify(pid=os.getpid(), start=start, end=end, result=x, peak=_peak)


@app.route("/count")
def count():
    global _counter
    token = request.args.get("token", "")
    with _lock:
        _counter += 1
        mine = _counter
    # The OS thread (gevent patches threading.get_ident to name greenlets instead).
    return jsonify(token=token, n=mine, pid=os.getpid(), thread=os.readlink("/proc/thread-self"))


@app.route("/peak")
def peak():
    return jsonify(pid=os.getpid(), peak=_peak)
