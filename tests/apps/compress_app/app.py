#!/usr/bin/python3
"""An http-kind worker for the compression tests: answers on the listening socket passed as
fd 3 (LISTEN_FDS, the systemd convention corral uses), or on the Unix socket path argv[1].

  /data?bytes=N[&type=T][&status=S][&chunked=1][&h=Name:Value ...]
      N bytes of JSON-like text (the same for the same N), with that Content-Type
      (default application/json), status and extra header fields; Content-Length unless
      chunked=1 (then sent chunked, in pieces of 16 KiB)
  /stream?events=N&delay_ms=M
      text/event-stream, chunked: one event every M ms ("data: event I ...\\n\\n")
  /big?mib=N[&random=1]
      N MiB of text/plain (random=1: base64 of random bytes, poorly compressible), with
      Content-Length, written as fast as the proxy takes it
  /           "ok" (readiness)
"""
import base64
import os
import socket
import socketserver
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler


def body_of(n):
    words = [b"alpha", b"beta", b"gamma", b"order", b"shipped", b"pending", b"price", b"name"]
    out = bytearray(b"[")
    i = 0
    while len(out) < n:
        out += b'{"id": %d, "%s": "%s", "qty": %d},' % (i, words[i % 8], words[(i * 7) % 8], (i * 31) % 97)
        i += 1
    return bytes(out[:n])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        one = lambda k, d: q.get(k, [d])[0]
        if url.path == "/data":
            n = int(one("bytes", "0"))
            status = int(one("status", "200"))
            body = body_of(n) if status not in (204, 304) else b""
            self.send_response(status)
            self.send_header("Content-Type", one("type", "application/json"))
            for h in q.get("h", []):
                name, _, value = h.partition(":")
                self.send_header(name, value)
            chunked = one("chunked", "0") == "1"
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif status not in (204, 304):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if head or status in (204, 304):
                return
            if chunked:
                for i in range(0, len(body), 16384):
                    self.send_chunk(body[i:i + 16384])
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(body)
            return
        if url.path == "/stream":
            events = int(one("events", "5"))
            delay = int(one("delay_ms", "200")) / 1000.0
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(events):
                self.send_chunk(b"data: event %d %s\n\n" % (i, b"x" * 40))
                time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/big":
            mib = int(one("mib", "1"))
            if one("random", "0") == "1":
                # base64 of random bytes: text that gzip shrinks by a quarter only
                text = base64.encodebytes(os.urandom(800000))
            else:
                text = b"".join(b"line %08d of a large text body, compressible but not trivially: %d\n" % (i, i * 7919 % 1000003)
                                for i in range(1024))
            block = (text * (1 + (1 << 20) // len(text)))[:1 << 20]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(mib << 20))
            self.end_headers()
            if not head:
                for _ in range(mib):
                    self.wfile.write(block)
            return
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    if len(sys.argv) > 1:
        try:
            os.unlink(sys.argv[1])
        except FileNotFoundError:
            pass
        server = Server(sys.argv[1], Handler)
    else:
        server = Server(None, Handler, bind_and_activate=False)
        server.socket = socket.socket(fileno=3)
    server.serve_forever()
