"""The soak's HTTP/1.1 clients (raw sockets: keep-alive or one connection per request,
Content-Length or chunked uploads, slow readers) and the hostile clients (malformed HTTP/1.1
and HTTP/2). Every answer is checked (results.judge)."""
import random
import select
import socket
import ssl
import struct
import time

import hpack

from results import Req, judge, fail, make_body, EMPTY_SHA

TIMEOUT = 30.0


class ConnError(Exception):
    pass


def tls_wrap(sock, alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    return ctx.wrap_socket(sock, server_hostname="localhost")


class H1Conn:
    def __init__(self, port, tls):
        self.opened = time.time()
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = tls_wrap(s, "http/1.1") if tls else s
        self.buf = b""
        self.used = 0
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, slow):
        try:
            data = self.sock.recv(16384 if slow else 65536)
        except socket.timeout:
            raise ConnError("timed out after %.0f s" % TIMEOUT)
        except (OSError, ssl.SSLError) as e:
            raise ConnError("recv: %s" % e)
        if slow:
            time.sleep(0.05)
        return data

    def _fill(self, slow):
        data = self._recv(slow)
        if not data:
            raise ConnError("closed by the server" + (" before any response byte" if not self.got_any else
                                                      " mid-response"))
        self.got_any = True
        self.buf += data

    def _take_line(self, slow):
        while b"\r\n" not in self.buf:
            self._fill(slow)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n, slow):
        while len(self.buf) < n:
            self._fill(slow)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, method, path, headers, body=b"", chunked=False, slow=False):
        """Returns (status, {lower name: value}, body); raises ConnError."""
        self.got_any = False
        self.used += 1
        head = "%s %s HTTP/1.1\r\nHost: soak.test\r\n" % (method, path)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        if method == "POST":
            head += "Transfer-Encoding: chunked\r\n" if chunked else "Content-Length: %d\r\n" % len(body)
        try:
            if not chunked:
                self.sock.sendall(head.encode() + b"\r\n" + body)
            else:
                self.sock.sendall(head.encode() + b"\r\n")
                for i in range(0, len(body), 65536):
                    piece = body[i:i + 65536]
                    self.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
                self.sock.sendall(b"0\r\n\r\n")
        except (OSError, ssl.SSLError) as e:
            raise ConnError("send: %s" % e)
        while True:
            status_line = self._take_line(slow).decode("latin-1")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise ConnError("bad status line %r" % status_line)
            status = int(parts[1])
            hdrs = {}
            while True:
                line = self._take_line(slow).decode("latin-1")
                if not line:
                    break
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if status >= 200:
                break
        if status in (204, 304) or method == "HEAD":
            data = b""
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self._take_line(slow).split(b";")[0], 16)
                if size == 0:
                    while self._take_line(slow):
                        pass
                    break
                data += self._take(size, slow)
                self._take(2, slow)
        elif "content-length" in hdrs:
            data = self._take(int(hdrs["content-length"]), slow)
        else:
            while True:
                try:
                    d = self._recv(slow)
                except ConnError:
                    break
                if not d:
                    break
                self.buf += d
            data, self.buf = self.buf, b""
            self.closed = True
        if hdrs.get("connection", "").lower() == "close":
            self.closed = True
        return status, hdrs, data


def soak_query(rng, slow):
    """?ms=&pad= for one request: mostly quick, some slow enough to be caught by a kill."""
    ms = rng.choice([0, 0, 0, 5, 20, 50, 100, 300])
    pad = 256 * 1024 if slow else rng.choice([0, 0, 100, 2000, 20000])
    return ms, pad


def h1_client(kind, port, tls, keepalive, uploads, slow, live, results, stop, seed, pause):
    """One client thread: requests on one connection (keepalive) or one each, until stop."""
    rng = random.Random(seed)
    conn = None
    while not stop.is_set():
        if stop.paused():
            if conn:
                conn.close()
                conn = None
            time.sleep(0.1)
            continue
        prefix, app, path = rng.choice(live.targets())
        ms, pad = soak_query(rng, slow)
        body, sha = (b"", EMPTY_SHA)
        method = "GET"
        chunked = False
        if uploads:
            method = "POST"
            body, sha = make_body(rng, big=True)
            chunked = rng.random() < 0.5
        req = Req(kind, prefix, "%s?ms=%d&pad=%d" % (path, ms, pad), method, len(body))
        headers = [("traceparent", req.traceparent())]
        if not keepalive:
            headers.append(("Connection", "close"))
        if method == "POST":
            headers.append(("Content-Type", "application/octet-stream"))
        try:
            if conn is None:
                conn = H1Conn(port, tls)
            else:
                req.reused = True
            req.conn_opened = conn.opened
            status, _, data = conn.request(method, req.path, headers, body, chunked, slow)
            judge(live, req, status, data, sha, pad)
            if conn.closed or not keepalive:
                conn.close()
                conn = None
        except (ConnError, OSError) as e:
            fail(req, str(e))
            if conn:
                conn.close()
            conn = None
        results.record(req)
        time.sleep(pause * rng.uniform(0.5, 1.5))
    if conn:
        conn.close()


# ---- hostile clients ----------------------------------------------------------------------

H1_HOSTILE = [
    ("cl+te", b"POST /web/soak HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two hosts", b"GET /web/soak HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("space in name", b"GET /web/soak HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"),
    ("nul in target", b"GET /web/so\x00ak HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("obs-fold", b"GET /web/soak HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n"),
    ("bad length", b"POST /web/soak HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n"),
    ("bad chunk", b"POST /web/soak HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
    ("huge header", b"GET /web/soak HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n"),
    ("no host", b"GET /web/soak HTTP/1.1\r\n\r\n"),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xff" * 64 + b"\r\n\r\n"),
]


def h1_hostile(port, case, data):
    """(ok, what happened): a 4xx (or 501/505) answer, or the connection closed unanswered."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        return False, "connect: %s" % e
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the proxy may close before reading it all: then only the answer matters
        got = b""
        deadline = time.time() + 10
        while time.time() < deadline and b"\r\n" not in got:
            try:
                d = s.recv(4096)
            except socket.timeout:
                return False, "no answer within 10 s"
            except OSError:
                break
            if not d:
                break
            got += d
        if not got:
            return True, "closed"
        parts = got.split(b"\r\n", 1)[0].split(b" ")
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return (400 <= status < 500 or status in (501, 505)), "status %d" % status
    finally:
        s.close()


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, GOAWAY, DATA = 1, 3, 4, 7, 0


def h2_hostile_bytes(case):
    enc = hpack.Encoder()
    good = [(":method", "GET"), (":scheme", "http"), (":path", "/web/soak"), (":authority", "soak.test")]
    start = PREFACE + frame(SETTINGS, 0, 0)
    if case == "h2 even stream":
        return start + frame(HEADERS, 5, 2, enc.encode(good))
    if case == "h2 uppercase name":
        return start + frame(HEADERS, 5, 1, enc.encode(good + [("X-Upper", "1")]))
    if case == "h2 no :path":
        return start + frame(HEADERS, 5, 1, enc.encode(good[:2] + good[3:]))
    if case == "h2 data on stream 0":
        return start + frame(DATA, 0, 0, b"abc")
    if case == "h2 bad preface":
        return b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(SETTINGS, 0, 0)
    if case == "h2 connection header":
        return start + frame(HEADERS, 5, 1, enc.encode(good + [("connection", "keep-alive")]))
    raise ValueError(case)


H2_HOSTILE = ["h2 even stream", "h2 uppercase name", "h2 no :path", "h2 data on stream 0", "h2 bad preface",
              "h2 connection header"]


def h2_hostile(port, case):
    """(ok, what happened): GOAWAY, RST_STREAM, a 4xx, or a close; never a 2xx."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError as e:
        return False, "connect: %s" % e
    dec = hpack.Decoder()
    try:
        try:
            s.sendall(h2_hostile_bytes(case))
        except OSError:
            pass
        buf = b""
        deadline = time.time() + 10
        while time.time() < deadline:
            r, _, _ = select.select([s], [], [], max(0.0, deadline - time.time()))
            if not r:
                return False, "no answer within 10 s"
            try:
                d = s.recv(65536)
            except OSError:
                return True, "reset"
            if not d:
                return True, "closed"
            buf += d
            while len(buf) >= 9:
                n = struct.unpack(">I", b"\0" + buf[:3])[0]
                if len(buf) < 9 + n:
                    break
                ftype, sid, payload = buf[3], struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF, buf[9:9 + n]
                buf = buf[9 + n:]
                if ftype == GOAWAY:
                    return True, "GOAWAY %d" % struct.unpack(">I", payload[4:8])[0]
                if ftype == RST_STREAM:
                    return True, "RST_STREAM %d" % struct.unpack(">I", payload[:4])[0]
                if ftype == HEADERS:
                    status = dict(dec.decode(payload)).get(":status", "0")
                    return 400 <= int(status) < 500, "status " + status
        return False, "no answer within 10 s"
    finally:
        s.close()


def hostile_client(port, results, stop, seed, pause):
    rng = random.Random(seed)
    cases = [(name, data) for name, data in H1_HOSTILE] + [(name, None) for name in H2_HOSTILE]
    while not stop.is_set():
        if stop.paused():
            time.sleep(0.1)
            continue
        name, data = rng.choice(cases)
        ok, got = h1_hostile(port, name, data) if data is not None else h2_hostile(port, name)
        results.record_hostile(name, ok, got)
        time.sleep(pause * rng.uniform(0.5, 1.5))
