"""The soak driver's endpoint for WSGI (tests/soak): every path reads the body, sleeps
?ms=N, answers "$WHOAMI HEX BYTES\\n" (the body's SHA-256 and length) and ?pad=P bytes of
padding."""
import hashlib
import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    left = int(environ.get("CONTENT_LENGTH") or 0)
    h = hashlib.sha256()
    n = 0
    inp = environ["wsgi.input"]
    while left > 0:
        block = inp.read(min(left, 65536))
        if not block:
            break
        h.update(block)
        n += len(block)
        left -= len(block)
    time.sleep(int(q.get("ms", ["0"])[0]) / 1000)
    body = ("%s %s %d\n" % (os.environ.get("WHOAMI", ""), h.hexdigest(), n)).encode()
    body += b"p" * int(q.get("pad", ["0"])[0])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
