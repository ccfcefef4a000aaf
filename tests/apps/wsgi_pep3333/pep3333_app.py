"""Small hand-written WSGI callables for PEP 3333 details (no framework in between)."""
import hashlib
import json
import sys


class Closing:
    """An iterable whose close() the server must call; records it in CLOSED."""

    def __init__(self, chunks, name):
        self.chunks = chunks
        self.name = name

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        CLOSED.append(self.name)


class FailingIter:
    """Yields one chunk, then raises: the head is out, so the response must be cut."""

    def __init__(self):
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        if self.n == 1:
            return b"first"
        raise ValueError("iteration failed (expected by the test)")

    def close(self):
        CLOSED.append("failing")


CLOSED = []


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/environ":
        out = {k: v for k, v in environ.items() if isinstance(v, str)}
        out["wsgi.version"] = list(environ["wsgi.version"])
        out["wsgi.multithread"] = environ["wsgi.multithread"]
        out["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
        out["wsgi.run_once"] = environ["wsgi.run_once"]
        out["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
        out["errors_has_write"] = hasattr(environ["wsgi.errors"], "write")
        environ["wsgi.errors"].write("wsgi.errors line from /environ\n")
        body = json.dumps(out).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/input":
        inp = environ["wsgi.input"]
        first = inp.readline()
        rest = inp.read(int(environ.get("CONTENT_LENGTH") or 0))
        body = json.dumps({"first": first.decode("latin-1"), "rest": len(rest)}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/sha256":
        # The body hashed as it is read, in 64 KiB reads: "HEX BYTES\n".
        inp = environ["wsgi.input"]
        left = int(environ.get("CONTENT_LENGTH") or 0)
        h = hashlib.sha256()
        n = 0
        while left > 0:
            block = inp.read(min(left, 65536))
            if not block:
                break
            h.update(block)
            n += len(block)
            left -= len(block)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%s %d\n" % (h.hexdigest(), n)).encode()]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"from write(), ")
        return [b"then from the iterable"]
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b", b"c"], "close")
    if path == "/closed":
        body = json.dumps(CLOSED).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/exc_info":
        # An error after start_response but before any body: replace the response.
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc_info_late":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise KeyError("late (expected by the test)")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())  # re-raises
        return [b"never"]
    if path == "/failing_iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return FailingIter()
    if path == "/bad_header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"never"]
    if path == "/hop":
        start_response("200 OK", [("Connection", "close")])
        return [b"never"]
    if path == "/no_start":
        return [b"no start_response"]
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/generator":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"x" * 1000 for _ in range(100))
    if path == "/file_wrapper":
        f = open(__file__, "rb")
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/length":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"he", b"llo"]
    if path == "/str_body":
        start_response("200 OK", [])
        return ["not bytes"]
    if path == "/latin1":
        start_response("200 OK", [("X-Path", environ["PATH_INFO"]), ("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode("latin-1")]
    if path.startswith("/latin1/"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode("latin-1")]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found: " + path.encode("latin-1")]
