#!/usr/bin/python3
"""Random HTTP/2 requests for the forwarding property test (47_h2_forward_property_test.cc).

Sends COUNT requests made from SEED over h2c connections (one stream at a time; a new
connection when the server ends one): random methods, :scheme, :path over all byte values,
:authority and Host, field names and values with edge bytes, cookies, te, content-length
(right, wrong, absent), bodies and trailers. Most values are drawn near the valid set so
that many requests are well-formed and many are just not. Frames are written by hand
(hpack for the header blocks, no validation).

Prints one JSON line per request: what was sent (hex strings: bytes of any value survive)
and what came back (status, RST_STREAM code, GOAWAY code, the capture name the worker put
in X-Capture). "valid" marks a request drawn from the valid sets only.

usage: h2_random_requests.py HOST PORT SEED COUNT
"""
import json
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2raw import (ACK, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PING, PREFACE, RST,  # noqa: E402
                   SETTINGS, WINDOW_UPDATE, FrameConn, frame)


class Conn(FrameConn):
    def __init__(self, host, port):
        super().__init__(host, port, nodelay=True)
        self.next_sid = 1
        self.goaway = None
        self.out = None  # the outcome of the stream being exchanged
        self.send(PREFACE + frame(SETTINGS, 0, 0) + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 24)))

    @property
    def dead(self):
        return self.result["closed"] or self.goaway is not None

    def exchange(self, fields, body, trailers, content_chunks):
        """Sends one request on a new stream; returns its outcome."""
        sid = self.next_sid
        self.next_sid += 2
        out = self.out = {"sid": sid, "status": None, "rst": None, "goaway": None, "capture": None}
        block = self.enc.encode(fields)
        end = not body and trailers is None
        wire = frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, block)
        for i, chunk in enumerate(content_chunks):
            last = i == len(content_chunks) - 1 and trailers is None
            wire += frame(DATA, END_STREAM if last else 0, sid, chunk)
        if trailers is not None:
            wire += frame(HEADERS, END_HEADERS | END_STREAM, sid, self.enc.encode(trailers))
        if not self.send(wire):
            out["goaway"] = self.goaway if self.goaway is not None else -1
        else:
            self.pump(5, lambda: out.get("done") or out["rst"] is not None or self.dead)
        for k in ("done", "sid"):
            out.pop(k, None)
        if self.next_sid > 1999:
            self.result["closed"] = True  # a fresh connection now and then (and HPACK tables with it)
        return out

    def on_frame(self, ftype, flags, fsid, payload):
        out, sid = self.out, self.out["sid"]
        if ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = struct.unpack(">I", payload[4:8])[0]
            out["goaway"] = self.goaway
        elif fsid == sid and ftype == HEADERS:
            for k, v in self.dec.decode(payload):
                if k == ":status" and not v.startswith("1"):
                    out["status"] = int(v)
                elif k == "x-capture":
                    out["capture"] = v
            if flags & END_STREAM:
                out["done"] = True
        elif fsid == sid and ftype == DATA:
            if payload:
                self.send(frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
            if flags & END_STREAM:
                out["done"] = True
        elif fsid == sid and ftype == RST:
            out["rst"] = struct.unpack(">I", payload)[0]


# ---- the generator -------------------------------------------------------------------------

NEAR = b"/?%#:@[]!$&'()*+,;=-._~ \"<>\\^`{|}\t\x7f\x80\xff\x00\x01\r\n"
TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"


def rbytes(r, n, valid, p_near=0.25, p_any=0.05):
    out = bytearray()
    for _ in range(n):
        x = r.random()
        if x < p_any:
            out.append(r.randrange(256))
        elif x < p_any + p_near:
            out.append(r.choice(NEAR))
        else:
            out.append(r.choice(valid))
    return bytes(out)


PCHAR = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?"
HOSTCHAR = b"abcdefghijklmnopqrstuvwxyz0123456789-."
VCHAR = bytes(range(0x21, 0x7f)) + b"  \t\x80\xe9\xff"


def gen_request(r, authority):
    # Half of the requests are drawn from the valid sets only (they must all reach the worker
    # intact); the other half mix in edge bytes and broken forms (most are refused).
    edgy = r.random() < 0.5
    k = 1.0 if edgy else 0.0
    fields = []
    method = r.choice([b"GET", b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD"])
    if r.random() < 0.15 * k:
        method = rbytes(r, r.randrange(0, 10), b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" + TCHAR, 0.2, 0.1)
    elif r.random() < 0.03 * k:
        method = bytes(r.choice(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(r.randrange(28, 40)))  # near the bound
    elif r.random() < 0.03 * k:
        method = b"TRACE"
    scheme = r.choice([b"http", b"https"]) if r.random() < 1 - 0.1 * k else r.choice([b"ftp", b"", b"HTTPS", b"h ttp"])
    x = r.random()
    if x < 0.85 or not edgy:
        path = b"/" + rbytes(r, r.randrange(0, 40), PCHAR, 0.08 * k, 0.02 * k)
    elif x < 0.92:
        path = b"*"
    else:
        path = rbytes(r, r.randrange(0, 20), PCHAR, 0.2, 0.1)
    x = r.random()
    host_field = None
    if x < 0.75:
        auth = authority
    elif x < 0.85:
        auth = rbytes(r, r.randrange(1, 16), HOSTCHAR, 0.15 * k, 0.05 * k)
        if r.random() < 0.5:
            auth += b":" + str(r.randrange(0, 100000)).encode()
    elif x < 0.95:
        auth = None
        host_field = authority if r.random() < 1 - 0.2 * k else rbytes(r, r.randrange(0, 12), HOSTCHAR, 0.2, 0.05)
    elif edgy:
        auth = b"user@" + authority if r.random() < 0.5 else b""
    else:
        auth = authority
    if auth is not None and r.random() < 0.05 * k:
        host_field = auth if r.random() < 0.5 else auth.upper() if r.random() < 0.5 else b"other.example"
    fields += [(b":method", method), (b":scheme", scheme), (b":path", path)]
    if auth is not None:
        fields.append((b":authority", auth))
    if r.random() < 0.02 * k:  # a pseudo-header field out of place or unknown
        fields.insert(r.randrange(len(fields) + 1), (b":extra", b"1"))
    if host_field is not None:
        fields.append((b"host", host_field))
    for _ in range(r.randrange(0, 7)):
        x = r.random()
        if x < 0.02 * k:
            name = b"x-" + bytes(r.choice(b"abcdefghij") for _ in range(r.randrange(250, 260)))  # near the bound
        elif x < 0.65 or (not edgy and x >= 0.75):
            name = b"x-" + rbytes(r, r.randrange(1, 12), TCHAR, 0.03 * k, 0.02 * k)
        elif x < 0.75:
            name = r.choice([b"user-agent", b"accept", b"content-type", b"cookie", b"cookie", b"te", b"referer",
                             b"x-forwarded-for", b"forwarded", b"x-request-id", b"trailer", b"via", b"max-forwards"])
        elif x < 0.85:
            name = r.choice([b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection",
                             b"X-Upper", b"x:colon", b""])
        else:
            name = rbytes(r, r.randrange(1, 10), TCHAR, 0.2, 0.2)
        if name == b"max-forwards" and not edgy:
            name = b"x-max-forwards"
        if name == b"max-forwards":
            value = r.choice([b"0", b"1", b"7", b"x"])
        elif name == b"te":
            value = b"trailers" if r.random() < 1 - 0.3 * k else r.choice([b"gzip", b"Trailers", b"trailers, gzip"])
        else:
            value = rbytes(r, r.randrange(0, 30), VCHAR, 0.05 * k, 0.03 * k)
            if not edgy:
                value = value.strip(b" \t")
        fields.append((name, value))
    body = b""
    if method in (b"POST", b"PUT", b"PATCH") or r.random() < 0.1:
        if r.random() < 0.7:
            body = bytes(r.randrange(256) for _ in range(r.choice([0, 1, 10, 100, 3000, 20000])))
    x = r.random()
    if x < 0.5 and (body or r.random() < 0.2):
        fields.append((b"content-length", str(len(body)).encode()))
    elif x < 0.55 and edgy:
        fields.append((b"content-length", str(len(body) + r.choice([-1, 1, 5])).encode()))
    elif x < 0.57 and edgy:
        fields.append((b"content-length", r.choice([b"abc", b"+5", b"", b"1 2"])))
    trailers = None
    if body and r.random() < 0.15:
        trailers = [(b"x-trailer", rbytes(r, 5, VCHAR, 0, 0).strip(b" \t") or b"t")]
        if r.random() < 0.3 * k:
            trailers.append(r.choice([(b":path", b"/t"), (b"connection", b"close"), (b"X-Up", b"1")]))
    chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]
    return fields, body, trailers, chunks, not edgy


def main():
    host, port, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    r = random.Random(seed)
    authority = ("%s:%d" % (host, port)).encode()
    conn = None
    for i in range(count):
        if conn is None or conn.dead:
            conn = Conn(host, port)
        fields, body, trailers, chunks, valid = gen_request(r, authority)
        out = conn.exchange(fields, body, trailers, chunks)
        rec = {"i": i, "valid": valid, "fields": [[n.hex(), v.hex()] for n, v in fields], "body": body.hex(),
               "trailers": None if trailers is None else [[n.hex(), v.hex()] for n, v in trailers]}
        rec.update(out)
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
