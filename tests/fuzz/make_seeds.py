#!/usr/bin/python3
"""Writes the hand-made seeds of the binary fuzz targets into tests/fuzz/corpus/<target>/:
HTTP/2 frame sequences for fuzz_h2 (what a client sends after the preface), FastCGI
records for fuzz_fastcgi and PROXY protocol headers for fuzz_proxy_protocol. Run once when a seed is added; libFuzzer grows the corpus from
these (see README.md). Needs python3-hpack."""
import os
import struct
import sys

import hpack

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- HTTP/2 -------------------------------------------------------------------------------

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(type_, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([type_, flags]) + struct.pack(">I", stream) + payload


def settings(*pairs, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def headers(stream, fields, end_stream=True, end_headers=True, enc=None):
    enc = enc or hpack.Encoder()
    block = enc.encode(fields)
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, flags, stream, block)


def req(method, path, extra=(), authority="fuzz.test"):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)] + list(extra)


def h2_seeds():
    start = settings((3, 100), (4, 65535)) + settings(ack=True)
    seeds = {
        "get": start + headers(1, req("GET", "/")),
        "head": start + headers(1, req("HEAD", "/x")),
        "get-big": start + headers(1, req("GET", "/big")) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)),
        "get-chunk": start + headers(1, req("GET", "/chunk")),
        "get-err": start + headers(1, req("GET", "/err")),
        "get-cut": start + headers(1, req("GET", "/cut")),
        "get-204-304": start + headers(1, req("GET", "/204")) + headers(3, req("GET", "/304")),
        "compress": start + headers(1, req("GET", "/z/big", [("accept-encoding", "gzip, br")])),
        "post": start + headers(1, req("POST", "/", [("content-length", "5"), ("content-type", "text/plain")]),
                                end_stream=False) + frame(DATA, END_STREAM, 1, b"hello"),
        "post-nolength": start + headers(1, req("POST", "/"), end_stream=False) + frame(DATA, 0, 1, b"abc")
        + frame(DATA, END_STREAM, 1, b"def"),
        "post-spill": start + headers(1, req("PUT", "/", [("content-length", "12000")]), end_stream=False)
        + frame(DATA, 0, 1, b"x" * 6000) + frame(DATA, END_STREAM, 1, b"y" * 6000),
        "post-expect": start + headers(1, req("POST", "/", [("expect", "100-continue"), ("content-length", "3")]),
                                       end_stream=False) + frame(DATA, END_STREAM, 1, b"abc"),
        "post-too-large": start + headers(1, req("POST", "/", [("content-length", "999999")]), end_stream=False),
        "stream": start + headers(1, req("POST", "/stream", [("content-length", "4")]), end_stream=False)
        + frame(DATA, END_STREAM, 1, b"abcd"),
        "stream-chunked": start + headers(1, req("POST", "/stream"), end_stream=False) + frame(DATA, 0, 1, b"ab")
        + frame(DATA, END_STREAM, 1, b"cd"),
        "cgi-fcgi": start + headers(1, req("GET", "/cgi/x?q=1")) + headers(3, req("POST", "/fcgi/y", [("content-length", "1")]),
                                                                          end_stream=False) + frame(DATA, END_STREAM, 3, b"z"),
        "cookies-trace": start + headers(1, req("GET", "/", [("cookie", "a=1"), ("cookie", "b=2"), ("user-agent", "fz\x7f"),
                                                            ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")])),
        "host-header": start + headers(1, [(":method", "GET"), (":scheme", "https"), (":path", "/"), ("host", "h.test")]),
        "options-star": start + headers(1, [(":method", "OPTIONS"), (":scheme", "http"), (":path", "*"), (":authority", "a")]),
        "connect": start + headers(1, [(":method", "CONNECT"), (":authority", "a.test:443")], end_stream=False),
        "ext-connect": start + headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                           (":path", "/ws"), (":authority", "a.test")], end_stream=False)
        + frame(DATA, 0, 1, b"\x81\x00"),
        "rst": start + headers(1, req("GET", "/big")) + frame(RST_STREAM, 0, 1, struct.pack(">I", 8)),
        "ping-priority": start + frame(PING, 0, 0, b"12345678") + frame(PRIORITY, 0, 3, struct.pack(">IB", 1, 16)),
        "goaway": start + headers(1, req("GET", "/")) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)),
        "continuation": start + frame(HEADERS, END_STREAM, 1, hpack.Encoder().encode(req("GET", "/c")[:2]))
        + frame(CONTINUATION, END_HEADERS, 1, hpack.Encoder().encode(req("GET", "/c")[2:])),
        "padded-prio": start + frame(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIO, 1,
                                     b"\x02" + struct.pack(">IB", 0, 15) + hpack.Encoder().encode(req("GET", "/p")) + b"\0\0"),
        "trailers": start + headers(1, req("POST", "/", [("te", "trailers")]), end_stream=False)
        + frame(DATA, 0, 1, b"body") + headers(1, [("x-trailer", "1")], end_stream=True),
        "bad-fields": start + headers(1, req("GET", "/", [("connection", "close")])) + headers(3, req("GET", "/", [("Upper", "x")]))
        + headers(5, req("GET", "relative")),
        "unknown-frame": start + frame(0x20, 0, 0, b"xx") + headers(1, req("GET", "/")),
        "window": start + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)) + headers(1, req("GET", "/big"))
        + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 100000)),
    }
    # Several streams on one connection, sharing one HPACK context.
    enc = hpack.Encoder()
    many = start
    for i in range(1, 20, 2):
        many += headers(i, req("GET", "/n%d" % i, [("x-n", str(i))]), enc=enc)
    seeds["many"] = many
    for name, data in seeds.items():
        write("fuzz_h2", name, data)


# ---- FastCGI ------------------------------------------------------------------------------

STDOUT, STDERR, END_REQUEST = 6, 7, 3


def record(type_, content, request_id=1, padding=0):
    return struct.pack(">BBHHBB", 1, type_, request_id, len(content), padding, 0) + content + b"\0" * padding


def end(app_status=0, protocol_status=0):
    return record(END_REQUEST, struct.pack(">IB3x", app_status, protocol_status))


def pairs(*kv):
    out = b""
    for k, v in kv:
        for s in (k, v):
            n = len(s)
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k + v
    return out


def fastcgi_seeds():
    seeds = {
        "document": record(STDOUT, b"Content-Type: text/html\r\n\r\n<p>hi</p>") + record(STDOUT, b"") + end(),
        "status-length": record(STDOUT, b"Status: 404 Not Found\nContent-Length: 3\n\nabc", padding=5)
        + record(STDOUT, b"") + end(),
        "split-head": record(STDOUT, b"X-A: 1\r\nLoca") + record(STDOUT, b"tion: /next\r\n\r\n") + end(),
        "redirect": record(STDOUT, b"Location: https://x.test/\n\n") + end(),
        "stderr": record(STDERR, b"warning: x\nmore") + record(STDOUT, b"Status: 204\n\n") + end(app_status=3),
        "overloaded": record(STDOUT, b"Content-Type: a/b\n\n") + end(protocol_status=2),
        "after-end": record(STDOUT, b"A: b\n\n") + end() + b"\x01",
        "wrong-id": record(STDOUT, b"A: b\n\n", request_id=2) + end(),
        "params": pairs((b"SCRIPT_NAME", b"/x"), (b"QUERY_STRING", b""), (b"K" * 130, b"v" * 200)),
    }
    for name, data in seeds.items():
        write("fuzz_fastcgi", name, data)


# ---- PROXY protocol -----------------------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd, fam, payload):
    return V2_SIG + bytes([ver_cmd, fam]) + struct.pack(">H", len(payload)) + payload


def tlv(type_, value):
    return bytes([type_]) + struct.pack(">H", len(value)) + value


def proxy_protocol_seeds():
    a4 = bytes([192, 0, 2, 1, 198, 51, 100, 2]) + struct.pack(">HH", 40000, 443)
    a6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack(">HH", 1, 8443)
    ssl = b"\x07" + bytes(4) + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"cn") + tlv(0x23, b"TLS_AES_128_GCM_SHA256")
    req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    seeds = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + req,
        "v1-tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n" + req,
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-bad-port": b"PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
        "v1-no-crlf": b"PROXY UNKNOWN " + b"x" * 120,
        "v2-tcp4": v2(0x21, 0x11, a4) + req,
        "v2-tcp6-tlvs": v2(0x21, 0x21, a6 + tlv(0x01, b"h2") + tlv(0x02, b"shop.example") + tlv(0x20, ssl)
                           + tlv(0x04, b"pad") + tlv(0xE0, b"vendor")),
        "v2-local": v2(0x20, 0x00, b""),
        "v2-unix": v2(0x21, 0x31, bytes(216)),
        "v2-crc": v2(0x21, 0x11, a4 + tlv(0x03, bytes(4))),
        "v2-truncated-tlv": v2(0x21, 0x11, a4 + b"\x01\x00"),
        "v2-udp": v2(0x21, 0x12, a4),
    }
    for name, data in seeds.items():
        write("fuzz_proxy_protocol", name, data)


if __name__ == "__main__":
    h2_seeds()
    fastcgi_seeds()
    proxy_protocol_seeds()
    sys.exit(0)
