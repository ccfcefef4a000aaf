#!/usr/bin/python3
"""A raw HTTP/2 client for corral's integration tests: writes frames by hand (hpack for header
blocks, nothing that validates), so malformed and abusive sequences can be sent. Prints one
JSON line: what the server answered (statuses per stream, RST_STREAM codes, GOAWAY code,
whether the connection was closed).

usage: h2raw.py HOST PORT [--tls] SCENARIO
"""
import json
import socket
import ssl
import struct
import sys
import time

import hpack

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def parse_frames(buf):
    """Splits `buf` into whole frames: ([(type, flags, stream id, payload)], the rest)."""
    frames = []
    while len(buf) >= 9:
        length = struct.unpack(">I", b"\0" + buf[:3])[0]
        if len(buf) < 9 + length:
            break
        sid = struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
        frames.append((buf[3], buf[4], sid, buf[9:9 + length]))
        buf = buf[9 + length:]
    return frames, buf


class FrameConn:
    """A client connection that writes frames as given and hands each frame it reads to
    on_frame(). result["closed"] turns true when the connection fails or ends. The other
    scripts (tests/hostile/h2_hostile.py, h2_random_requests.py, h2body.py) build on it."""

    def __init__(self, host, port, tls=False, nodelay=False):
        raw = socket.create_connection((host, port), timeout=5)
        if nodelay:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
        self.s = raw
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.result = {"closed": False}
        self.authority = "%s:%d" % (host, port)

    def send(self, b):
        try:
            self.s.sendall(b)
            return True
        except OSError:
            self.result["closed"] = True
            return False

    def pump(self, seconds, until=None):
        """Reads frames for up to `seconds`, or until `until()` is true or the connection ends."""
        deadline = time.time() + seconds
        while time.time() < deadline and not self.result["closed"]:
            if until and until():
                return
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.result["closed"] = True
                return
            if not chunk:
                self.result["closed"] = True
                return
            frames, self.buf = parse_frames(self.buf + chunk)
            for f in frames:
                self.on_frame(*f)

    def on_frame(self, ftype, flags, sid, payload):
        pass


class Conn(FrameConn):
    def __init__(self, host, port, tls, window=None):
        super().__init__(host, port, tls)
        self.result.update({"status": {}, "rst": [], "goaway": None, "data": {}, "body": {}})
        self.ended = set()
        settings = b""
        if window is not None:
            settings += struct.pack(">HI", 4, window)
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def headers(self, sid, extra=(), method="GET", path="/", end_stream=True, authority=None, raw_block=None):
        hs = [(":method", method), (":scheme", "https"), (":path", path),
              (":authority", authority or self.authority)] + list(extra)
        block = raw_block if raw_block is not None else self.enc.encode(hs)
        return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block)

    def read(self, seconds, until=None):
        """Reads frames for up to `seconds` (or until `until(result)` is true)."""
        self.pump(seconds, until and (lambda: until(self.result)))

    def on_frame(self, ftype, flags, sid, payload):
        r = self.result
        if ftype == HEADERS:
            for k, v in self.dec.decode(payload):
                if k == ":status":
                    r["status"][str(sid)] = int(v)
        elif ftype == DATA:
            r["data"][str(sid)] = r["data"].get(str(sid), 0) + len(payload)
            r["body"][str(sid)] = r["body"].get(str(sid), "") + payload.decode("latin-1")
        if ftype in (HEADERS, DATA) and flags & END_STREAM:
            self.ended.add(sid)
        elif ftype == RST:
            r["rst"].append([sid, struct.unpack(">I", payload)[0]])
        elif ftype == GOAWAY:
            r["goaway"] = struct.unpack(">I", payload[4:8])[0]
        elif ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            pass  # floods do not answer pings either


def run(host, port, tls, scenario):
    window = 0 if scenario == "zero_window" else None
    c = Conn(host, port, tls, window)
    marker = "/h2raw-" + scenario
    bad = {
        "uppercase_name": [("X-Bad", "1")],
        "crlf_value": [("x-bad", "a\r\nb")],
        "nul_value": [("x-bad", "a\0b")],
        "lf_name": [("x\nbad", "1")],
        "connection_header": [("connection", "keep-alive")],
        "keep_alive_header": [("keep-alive", "5")],
        "proxy_connection_header": [("proxy-connection", "close")],
        "transfer_encoding_header": [("transfer-encoding", "chunked")],
        "upgrade_header": [("upgrade", "websocket")],
        "te_gzip": [("te", "gzip")],
        "host_mismatch": [("host", "other.example")],
    }
    if scenario in bad:
        c.send(c.headers(1, bad[scenario], path=marker))
        c.read(2, lambda r: r["rst"] or r["status"] or r["goaway"] is not None)
    elif scenario == "bad_path":
        c.send(c.headers(1, path="h2raw-" + scenario))
        c.read(2, lambda r: r["rst"] or r["status"])
    elif scenario in ("cl_longer", "cl_shorter"):
        cl = "10" if scenario == "cl_longer" else "3"
        c.send(c.headers(1, [("content-length", cl)], method="POST", path=marker, end_stream=False)
               + frame(DATA, END_STREAM, 1, b"hello"))
        c.read(2, lambda r: r["rst"] or r["status"])
    elif scenario == "ok":
        c.send(c.headers(1, [("cookie", "a=1"), ("cookie", "b=2")], path="/echo"))
        c.read(3, lambda r: "1" in r["status"] and r["data"].get("1"))
    elif scenario == "recycle":
        # One stream after the other on one connection (each new one may reuse the state of
        # a closed one): a POST with cookies and a custom header, a bare GET, a reset stream,
        # then another GET. Nothing of an earlier stream may leak into a later one.
        c.send(c.headers(1, [("cookie", "a=1"), ("x-one", "1"), ("content-length", "5")], method="POST",
                         path="/echo?s=1", end_stream=False) + frame(DATA, END_STREAM, 1, b"hello"))
        c.read(3, lambda r: 1 in c.ended)
        c.send(c.headers(3, path="/echo?s=3"))
        c.read(3, lambda r: 3 in c.ended)
        c.send(c.headers(5, [("X-Bad", "1")], path="/echo?s=5"))
        c.read(3, lambda r: r["rst"])
        c.send(c.headers(7, [("user-agent", "h2raw")], path="/echo?s=7"))
        c.read(3, lambda r: 7 in c.ended)
    elif scenario == "rapid_reset":
        parts = []
        for i in range(3000):
            sid = 1 + 2 * i
            parts.append(c.headers(sid, path=marker) + frame(RST, 0, sid, struct.pack(">I", 8)))
        c.send(b"".join(parts))
        c.read(5, lambda r: r["goaway"] is not None)
    elif scenario == "continuation_flood":
        block = c.enc.encode([(":method", "GET"), (":scheme", "https"), (":path", marker),
                              (":authority", c.authority)])
        out = frame(HEADERS, END_STREAM, 1, block)
        filler = c.enc.encode([("x-a", "b")])
        for i in range(200):
            out += frame(CONTINUATION, 0, 1, filler)
        c.send(out)
        c.read(3, lambda r: r["goaway"] is not None)
    elif scenario in ("ping_flood", "settings_flood", "priority_flood", "unknown_flood", "window_update_flood",
                      "empty_data_flood"):
        # Built as a list and joined once: 30,000 concatenations of a growing bytes object
        # copy gigabytes and made each flood take tens of seconds.
        parts = []
        if scenario == "empty_data_flood":
            parts.append(c.headers(1, method="POST", path=marker, end_stream=False))
        for i in range(30000):
            if scenario == "ping_flood":
                parts.append(frame(PING, 0, 0, struct.pack(">Q", i)))
            elif scenario == "settings_flood":
                parts.append(frame(SETTINGS, 0, 0, b""))
            elif scenario == "priority_flood":
                parts.append(frame(PRIORITY, 0, 3 + 2 * (i % 1000), struct.pack(">IB", 0, 15)))
            elif scenario == "unknown_flood":
                parts.append(frame(0x42, 0, 0, b"x"))
            elif scenario == "window_update_flood":
                parts.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))
            else:
                parts.append(frame(DATA, 0, 1, b""))
        out = b"".join(parts)
        # Written without reading the answers (as a flood would).
        step = 1 << 16
        for i in range(0, len(out), step):
            if not c.send(out[i:i + step]):
                break
        c.read(5, lambda r: r["goaway"] is not None)
    elif scenario in ("gone_reset", "gone_close"):
        # Three requests, then the client goes away (resets each stream, or closes the
        # connection): one a worker is busy with (no response yet), one whose response is
        # streaming (the 64 KiB windows are full), one queued (two workers, concurrency 1).
        c.send(c.headers(1, path="/sleep?ms=30000&m=" + scenario + "-busy")
               + c.headers(3, path="/big?bytes=67108864&m=" + scenario + "-stream"))
        c.read(10, lambda r: "3" in r["status"] and r["data"].get("3", 0) >= 65535)
        c.send(c.headers(5, path="/pid?m=" + scenario + "-queued"))
        c.read(0.5)
        if scenario == "gone_reset":
            c.send(b"".join(frame(RST, 0, sid, struct.pack(">I", 8)) for sid in (1, 3, 5)))
            c.read(0.5)
        c.s.close()
        c.result["closed"] = True
    elif scenario == "zero_window":
        c.send(c.headers(1, path="/big?bytes=4000000&m=" + marker))
        c.read(8, lambda r: r["rst"])
    else:
        raise SystemExit("unknown scenario " + scenario)
    return c.result


def main():
    args = [a for a in sys.argv[1:] if a != "--tls"]
    tls = "--tls" in sys.argv
    host, port, scenario = args[0], int(args[1]), args[2]
    try:
        result = run(host, port, tls, scenario)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as e:
        result = {"status": {}, "rst": [], "goaway": None, "closed": True, "error": str(e)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
