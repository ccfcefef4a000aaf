#!/usr/bin/python3
"""Hostile HTTP/2 clients for the tests/hostile suite (RFC 9113 rules).

Each case writes frames by hand (Debian's python3-hpack for header blocks, nothing that
validates) and records what corral answered: RST_STREAM codes per stream, the GOAWAY code
and last stream id, response statuses, and whether the connection was closed. When the
connection is still open after the answer, a well-formed GET is sent on the next stream of
the same connection ("followup"): a stream error must not hurt the other streams.

usage: h2_hostile.py HOST PORT CASE [CASE...]   prints one JSON object: {case: result}
       h2_hostile.py HOST PORT --serve          reads case names from stdin, one JSON line each
       h2_hostile.py list                       the case names
"""
import json
import os
import struct
import sys

# The frame writer and reader are shared with the integration tests' HTTP/2 scripts.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "h2raw"))

from h2raw import (ACK, CONTINUATION, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, PADDED,  # noqa: E402
                   PING, PREFACE, PRIORITY, PUSH, RST, SETTINGS, WINDOW_UPDATE, FrameConn, frame)

# SETTINGS identifiers
ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 2, 4, 5


def b(s):
    return s if isinstance(s, bytes) else s.encode("latin-1")


class Conn(FrameConn):
    def __init__(self, host, port, ack_settings=True):
        super().__init__(host, port, nodelay=True)
        self.result.update({"rst": [], "goaway": None, "goaway_last": None, "status": {}, "body": {}})
        self.ended = set()
        self.server_settings = False
        self.settings_acked = False
        self.ack_settings = ack_settings
        self.send(PREFACE + frame(SETTINGS, 0, 0))

    def block(self, fields):
        """An HPACK block for `fields` ((name, value) pairs, str or bytes), no validation."""
        return self.enc.encode([(b(n), b(v)) for n, v in fields])

    def request_fields(self, method="GET", path="/", scheme="http", authority=None, extra=()):
        hs = [(":method", method), (":scheme", scheme), (":path", path),
              (":authority", self.authority if authority is None else authority)]
        return hs + list(extra)

    def headers(self, sid, fields, end_stream=True, flags=END_HEADERS):
        return frame(HEADERS, flags | (END_STREAM if end_stream else 0), sid, self.block(fields))

    def get(self, sid, path, extra=()):
        return self.headers(sid, self.request_fields(path=path, extra=extra))

    def read(self, seconds, until=None):
        """Reads frames for up to `seconds`, or until `until(self)` is true."""
        self.pump(seconds, until and (lambda: until(self)))

    def on_frame(self, ftype, flags, sid, payload):
        r = self.result
        if ftype == HEADERS:
            for k, v in self.dec.decode(payload):
                if k == ":status" and not str(v).startswith("1"):
                    r["status"][str(sid)] = int(v)
        elif ftype == DATA:
            r["body"][str(sid)] = r["body"].get(str(sid), "") + payload.decode("latin-1")
            if payload:  # keep the windows open: responses may be larger than 64 KiB
                self.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(payload)))
                          + frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", len(payload))))
        if ftype in (HEADERS, DATA) and flags & END_STREAM:
            self.ended.add(sid)
        elif ftype == RST:
            r["rst"].append([sid, struct.unpack(">I", payload)[0]])
        elif ftype == GOAWAY:
            r["goaway_last"] = struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
            r["goaway"] = struct.unpack(">I", payload[4:8])[0]
        elif ftype == SETTINGS:
            if flags & ACK:
                self.settings_acked = True
            else:
                self.server_settings = True
                if self.ack_settings:
                    self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))

    def handshake(self):
        """Waits for the server's SETTINGS and its ACK of ours."""
        self.read(3, lambda c: c.server_settings and c.settings_acked)

    def answered(self, sid):
        return lambda c: (c.result["goaway"] is not None or any(x[0] == sid for x in c.result["rst"])
                          or sid in c.ended)

    def followup(self, sid):
        """A well-formed GET on stream `sid` of this connection, if it is still open."""
        r = self.result
        if r["closed"] or r["goaway"] is not None:
            return
        if not self.send(self.get(sid, "/?followup=%d" % sid)):
            return
        self.read(3, lambda c: sid in c.ended or c.result["goaway"] is not None
                  or any(x[0] == sid for x in c.result["rst"]))
        r["followup"] = r["status"].get(str(sid))


# ---- the cases ------------------------------------------------------------------------------
# Each takes a handshaken Conn and returns the next free stream id for the follow-up (or None
# when the case expects the connection to end). A case names its bad request with an
# "x-case" field or a "/bad/<case>" path where it can, so the test can see it never reached
# a worker.

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def bad_request(c, name, fields, sid=1, end_stream=True, body=None):
    c.send(c.headers(sid, fields, end_stream=end_stream and body is None))
    if body is not None:
        c.send(frame(DATA, END_STREAM, sid, body))
    c.read(2, c.answered(sid))
    return sid + 2


def rf(c, name, **kw):
    """Request fields with the case name in x-case (unless the case replaces them)."""
    extra = list(kw.pop("extra", ())) + [("x-case", name)]
    kw.setdefault("path", "/bad/" + name)
    return c.request_fields(extra=extra, **kw)


def goaway_seen(c):
    return c.result["goaway"] is not None


def conn_error(name, wire):
    """A case that sends `wire(c)` and expects a connection error (GOAWAY, connection closed)."""
    def run(c):
        c.send(wire(c))
        c.read(2, goaway_seen)
    CASES[name] = run


def stream_after_first(name, first, bad, before=lambda c: b""):
    """Stream `first` (after the frames `before(c)`) is served, then a request on stream `bad`
    breaks the stream id rules: a connection error."""
    def run(c):
        c.send(before(c) + c.get(first, "/?first=%d" % first))
        c.read(3, lambda c: first in c.ended)
        c.send(c.headers(bad, rf(c, name)))
        c.read(2, goaway_seen)
    CASES[name] = run


# -- §5.1.1 stream identifiers, §5.1 stream states, §5.1.2 concurrency -----------------------

conn_error("even_stream_id", lambda c: c.headers(2, rf(c, "even_stream_id")))
conn_error("stream_id_zero", lambda c: c.headers(0, rf(c, "stream_id_zero")))

stream_after_first("lower_stream_id", 5, 3)


# Stream 1 is skipped (implicitly closed by stream 3) and then used.
stream_after_first("skipped_stream_id", 3, 1)


@case
def reused_closed_stream(c):
    c.send(c.get(1, "/?first=1"))
    c.read(3, lambda c: 1 in c.ended)
    # Closed (both sides ended) a while ago: enough streams since (at most 4 at once, the
    # test's SETTINGS_MAX_CONCURRENT_STREAMS) for the server to have forgotten it.
    for first in range(3, 3 + 2 * 40, 8):
        batch = range(first, first + 8, 2)
        c.send(b"".join(c.get(sid, "/?filler=%d" % sid) for sid in batch))
        c.read(3, lambda c: all(s in c.ended for s in batch))
    c.send(c.headers(1, rf(c, "reused_closed_stream")))
    c.read(2, goaway_seen)


# Stream 3 is named by PRIORITY (idle), stream 5 opens and implicitly closes it.
stream_after_first("idle_stream_skipped", 5, 3, before=lambda c: frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)))

stream_after_first("reused_stream_just_closed", 1, 1)


@case
def headers_after_end_stream(c):
    # HEADERS again on a stream whose request ended (half-closed remote, response pending).
    c.send(c.get(1, "/sleep?ms=1000"))
    c.read(0.3)
    c.send(c.headers(1, [("x-case", "headers_after_end_stream")], end_stream=True))
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])


@case
def trailers_after_reset_are_ignored(c):
    # A client may send trailers for a stream before it sees the server's RST_STREAM: they are
    # ignored, the connection stays (RFC 9113 §5.1, "closed": frames after RST_STREAM).
    c.send(c.headers(1, rf(c, "trailers_after_reset_are_ignored", extra=[("X-Upper", "1")]), end_stream=False))
    c.read(2, c.answered(1))
    c.send(c.headers(1, [("x-trailer", "1")], end_stream=True))
    return 3


conn_error("data_on_idle_stream", lambda c: frame(DATA, END_STREAM, 7, b"x"))
conn_error("rst_on_idle_stream", lambda c: frame(RST, 0, 9, struct.pack(">I", 8)))
conn_error("window_update_on_idle_stream", lambda c: frame(WINDOW_UPDATE, 0, 9, struct.pack(">I", 100)))


@case
def data_after_end_stream(c):
    c.send(c.headers(1, c.request_fields(method="POST", path="/sleep?ms=1000", extra=[("content-length", "2")]),
                     end_stream=False) + frame(DATA, END_STREAM, 1, b"ab"))
    c.read(0.3)
    c.send(frame(DATA, 0, 1, b"cd"))
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])


@case
def max_concurrent_streams_exceeded(c):
    # SETTINGS_MAX_CONCURRENT_STREAMS is 4 in the test's config (acknowledged by now): a 5th
    # open stream is refused.
    out = b""
    for sid in (1, 3, 5, 7, 9):
        out += c.headers(sid, rf(c, "max_concurrent_streams_exceeded", path="/?hold=%d" % sid), end_stream=False)
    c.send(out)
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])


def concurrent_streams_before_ack(c):
    # Before the client acknowledges the server's SETTINGS, the limit is not in force yet: a
    # 5th stream is refused (REFUSED_STREAM, safe to retry), the connection stays.
    out = b""
    for sid in (1, 3, 5, 7, 9):
        out += c.headers(sid, rf(c, "concurrent_streams_before_ack", path="/?hold=%d" % sid), end_stream=False)
    c.send(out)
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])
    for sid in (1, 3, 5, 7):
        c.send(frame(RST, 0, sid, struct.pack(">I", 8)))
    c.send(frame(SETTINGS, ACK, 0))
    return 11


CASES["concurrent_streams_before_ack"] = concurrent_streams_before_ack
NO_ACK = {"concurrent_streams_before_ack"}


# -- frame rules (§4, §6) ---------------------------------------------------------------------

conn_error("data_on_stream_zero", lambda c: frame(DATA, 0, 0, b"x"))
conn_error("settings_on_stream", lambda c: frame(SETTINGS, 0, 1, b""))
conn_error("settings_bad_length", lambda c: frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x10"))
conn_error("settings_ack_with_payload", lambda c: frame(SETTINGS, ACK, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 100)))
conn_error("settings_enable_push_2", lambda c: frame(SETTINGS, 0, 0, struct.pack(">HI", ENABLE_PUSH, 2)))
conn_error("settings_window_too_large",
           lambda c: frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 1 << 31)))
conn_error("settings_frame_size_too_small", lambda c: frame(SETTINGS, 0, 0, struct.pack(">HI", MAX_FRAME_SIZE, 16383)))
conn_error("ping_bad_length", lambda c: frame(PING, 0, 0, b"1234567"))
conn_error("ping_on_stream", lambda c: frame(PING, 0, 1, b"12345678"))
conn_error("goaway_on_stream", lambda c: frame(GOAWAY, 0, 1, struct.pack(">II", 0, 0)))
conn_error("push_promise_from_client",
           lambda c: frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2) + c.block(rf(c, "push_promise_from_client"))))
conn_error("continuation_without_headers",
           lambda c: frame(CONTINUATION, END_HEADERS, 1, c.block(rf(c, "continuation_without_headers"))))


@case
def frame_inside_header_block(c):
    block = c.block(rf(c, "frame_inside_header_block"))
    c.send(frame(HEADERS, END_STREAM, 1, block[:5]) + frame(PING, 0, 0, b"12345678")
           + frame(CONTINUATION, END_HEADERS, 1, block[5:]))
    c.read(2, goaway_seen)


conn_error("hpack_garbage", lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff\xff"))
conn_error("frame_too_large", lambda c: c.headers(1, rf(c, "frame_too_large", method="POST"), end_stream=False)
           + frame(DATA, END_STREAM, 1, b"x" * 16385))
@case
def headers_padding_too_long(c):
    block = c.block(rf(c, "headers_padding_too_long"))
    c.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, bytes([len(block) + 10]) + block))
    c.read(2, goaway_seen)


conn_error("window_update_zero_connection", lambda c: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))


@case
def window_update_zero_stream(c):
    c.send(c.headers(1, rf(c, "window_update_zero_stream", method="POST"), end_stream=False)
           + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 0)))
    c.read(2, c.answered(1))


conn_error("window_overflow_connection", lambda c: frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)))


@case
def priority_self_dependency(c):
    c.send(frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 15)))
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])


@case
def priority_bad_length(c):
    c.send(frame(PRIORITY, 0, 1, struct.pack(">I", 0)))
    c.read(2, lambda c: c.result["goaway"] is not None or c.result["rst"])


# -- malformed requests (§8.1, §8.2, §8.3): RST_STREAM(PROTOCOL_ERROR), never forwarded -------

def malformed(name, fields_fn, **kw):
    def run(c):
        return bad_request(c, name, fields_fn(c), **kw)
    run.__name__ = name
    CASES[name] = run


malformed("uppercase_field_name", lambda c: rf(c, "uppercase_field_name", extra=[("X-Upper", "1")]))
malformed("field_name_with_colon", lambda c: rf(c, "field_name_with_colon", extra=[("x:y", "1")]))
malformed("field_name_with_space", lambda c: rf(c, "field_name_with_space", extra=[("x y", "1")]))
malformed("field_name_non_ascii", lambda c: rf(c, "field_name_non_ascii", extra=[(b"x\xe9", "1")]))
malformed("empty_field_name", lambda c: rf(c, "empty_field_name", extra=[("", "1")]))
malformed("field_value_cr", lambda c: rf(c, "field_value_cr", extra=[("x-v", "a\rb")]))
malformed("field_value_lf", lambda c: rf(c, "field_value_lf", extra=[("x-v", "a\nb")]))
malformed("field_value_nul", lambda c: rf(c, "field_value_nul", extra=[("x-v", "a\0b")]))
malformed("field_value_ctl", lambda c: rf(c, "field_value_ctl", extra=[("x-v", "a\x01b")]))
malformed("field_value_del", lambda c: rf(c, "field_value_del", extra=[("x-v", "a\x7fb")]))
malformed("field_value_leading_space", lambda c: rf(c, "field_value_leading_space", extra=[("x-v", " a")]))
malformed("field_value_trailing_tab", lambda c: rf(c, "field_value_trailing_tab", extra=[("x-v", "a\t")]))
for _n, _f in (("connection", "keep-alive"), ("keep-alive", "5"), ("proxy-connection", "close"),
               ("transfer-encoding", "chunked"), ("upgrade", "websocket")):
    malformed("connection_specific_" + _n.replace("-", "_"),
              lambda c, n=_n, f=_f: rf(c, "connection_specific_" + n.replace("-", "_"), extra=[(n, f)]))
malformed("te_not_trailers", lambda c: rf(c, "te_not_trailers", extra=[("te", "gzip")]))
malformed("pseudo_after_regular", lambda c: [(":method", "GET"), (":scheme", "http"), ("x-case", "pseudo_after_regular"),
                                             (":path", "/bad/pseudo_after_regular"), (":authority", c.authority)])
malformed("unknown_pseudo", lambda c: rf(c, "unknown_pseudo", extra=[(":foo", "1")]))
malformed("response_pseudo_in_request", lambda c: rf(c, "response_pseudo_in_request", extra=[(":status", "200")]))
malformed("duplicate_path", lambda c: rf(c, "duplicate_path") + [(":path", "/x")])
malformed("missing_method", lambda c: [x for x in rf(c, "missing_method") if x[0] != ":method"])
malformed("missing_scheme", lambda c: [x for x in rf(c, "missing_scheme") if x[0] != ":scheme"])
malformed("missing_path", lambda c: [x for x in rf(c, "missing_path") if x[0] != ":path"])
malformed("empty_path", lambda c: rf(c, "empty_path", path=""))
malformed("path_not_absolute", lambda c: rf(c, "path_not_absolute", path="bad/path_not_absolute"))
malformed("path_absolute_form", lambda c: rf(c, "path_absolute_form", path="http://%s/bad" % c.authority))
malformed("path_asterisk_not_options", lambda c: rf(c, "path_asterisk_not_options", path="*"))
malformed("path_with_space", lambda c: rf(c, "path_with_space", path="/bad/a b"))
malformed("path_with_ctl", lambda c: rf(c, "path_with_ctl", path="/bad/a\x01b"))
malformed("path_with_del", lambda c: rf(c, "path_with_del", path="/bad/a\x7fb"))
malformed("path_non_ascii", lambda c: rf(c, "path_non_ascii", path=b"/bad/\xc3\xa9"))
malformed("path_with_fragment", lambda c: rf(c, "path_with_fragment", path="/bad/a#frag"))
malformed("path_bad_percent", lambda c: rf(c, "path_bad_percent", path="/bad/a%zz"))
malformed("path_with_quote", lambda c: rf(c, "path_with_quote", path='/bad/a"b'))
malformed("path_with_backslash", lambda c: rf(c, "path_with_backslash", path="/bad/a\\b"))
malformed("scheme_not_http", lambda c: rf(c, "scheme_not_http", scheme="ftp"))
malformed("scheme_invalid", lambda c: rf(c, "scheme_invalid", scheme="ht tp"))
malformed("empty_scheme", lambda c: rf(c, "empty_scheme", scheme=""))
malformed("method_not_token", lambda c: rf(c, "method_not_token", method="GE(T"))
malformed("method_with_space", lambda c: rf(c, "method_with_space", method="GET X"))
malformed("empty_method", lambda c: rf(c, "empty_method", method=""))
malformed("authority_userinfo", lambda c: rf(c, "authority_userinfo", authority="user@" + c.authority))
malformed("authority_with_space", lambda c: rf(c, "authority_with_space", authority="a b"))
malformed("authority_non_ascii", lambda c: rf(c, "authority_non_ascii", authority=b"\xc3\xa9.example"))
malformed("authority_bad_port", lambda c: rf(c, "authority_bad_port", authority="example.com:8x"))
malformed("authority_two_colons", lambda c: rf(c, "authority_two_colons", authority="a:1:2"))
malformed("authority_open_bracket", lambda c: rf(c, "authority_open_bracket", authority="[::1"))
malformed("empty_authority", lambda c: rf(c, "empty_authority", authority="", extra=[("host", c.authority)]))
malformed("authority_host_differ", lambda c: rf(c, "authority_host_differ", extra=[("host", "other.example")]))
malformed("two_host_fields", lambda c: [x for x in rf(c, "two_host_fields") if x[0] != ":authority"]
          + [("host", c.authority), ("host", c.authority)])
malformed("host_userinfo", lambda c: [x for x in rf(c, "host_userinfo") if x[0] != ":authority"]
          + [("host", "user@" + c.authority)])
malformed("no_authority_no_host", lambda c: [x for x in rf(c, "no_authority_no_host") if x[0] != ":authority"])
malformed("connect_with_path", lambda c: [(":method", "CONNECT"), (":authority", c.authority), (":path", "/x"),
                                          ("x-case", "connect_with_path")])
malformed("connect_without_authority", lambda c: [(":method", "CONNECT"), ("x-case", "connect_without_authority")])
malformed("protocol_without_connect", lambda c: rf(c, "protocol_without_connect", extra=[(":protocol", "websocket")]))
malformed("content_length_not_number", lambda c: rf(c, "content_length_not_number", method="POST",
                                                    extra=[("content-length", "5x")]), body=b"hello")
malformed("content_length_twice", lambda c: rf(c, "content_length_twice", method="POST",
                                               extra=[("content-length", "5"), ("content-length", "6")]), body=b"hello")
malformed("content_length_longer", lambda c: rf(c, "content_length_longer", method="POST",
                                                extra=[("content-length", "10")]), body=b"hello")
malformed("content_length_shorter", lambda c: rf(c, "content_length_shorter", method="POST",
                                                 extra=[("content-length", "3")]), body=b"hello")


malformed("content_length_without_body", lambda c: rf(c, "content_length_without_body", method="POST",
                                                      extra=[("content-length", "5")]))
malformed("extended_connect_bad_path", lambda c: [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                                  (":path", "/bad/a#b"), (":authority", c.authority),
                                                  ("sec-websocket-version", "13"), ("x-case", "extended_connect_bad_path")])


malformed("method_too_long", lambda c: rf(c, "method_too_long", method="M" * 33))
malformed("field_name_too_long", lambda c: rf(c, "field_name_too_long", extra=[("x-" + "n" * 300, "1")]))
malformed("options_max_forwards_zero",
          lambda c: rf(c, "options_max_forwards_zero", method="OPTIONS", extra=[("max-forwards", "0")]))
malformed("trace_max_forwards_zero",
          lambda c: rf(c, "trace_max_forwards_zero", method="TRACE", extra=[("max-forwards", "0")]))
malformed("max_forwards_invalid",
          lambda c: rf(c, "max_forwards_invalid", method="OPTIONS", extra=[("max-forwards", "x")]))
malformed("too_many_fields", lambda c: rf(c, "too_many_fields", extra=[("x-f%d" % i, "v") for i in range(150)]))
# A well-formed CONNECT (RFC 9113 §8.5): corral is no forward proxy.
malformed("connect_plain", lambda c: [(":method", "CONNECT"), (":authority", "example.com:443"),
                                      ("x-case", "connect_plain")], end_stream=False)


def with_trailers(name, trailers, fields_fn=None, trailers_end_stream=True, seconds=2):
    """A POST with a 5-byte body in DATA, then the header section `trailers` on the stream."""
    def run(c):
        fields = fields_fn(c) if fields_fn else rf(c, name, method="POST")
        c.send(c.headers(1, fields, end_stream=False) + frame(DATA, 0, 1, b"hello")
               + c.headers(1, trailers, end_stream=trailers_end_stream))
        c.read(seconds, c.answered(1))
        return 3
    CASES[name] = run


with_trailers("trailers_with_pseudo_header", [(":path", "/x")])
with_trailers("trailers_without_end_stream", [("x-t", "1")], trailers_end_stream=False)
with_trailers("trailers_connection_specific", [("connection", "close")])


# -- requests that are fine (the sanitised form reaches the worker) ---------------------------

def forwarded(name, **kw):
    """A request to /?case=<name> (`kw` as for Conn.request_fields) that reaches the worker."""
    malformed(name, lambda c: c.request_fields(path="/?case=" + name, **kw))


forwarded("max_forwards_decremented", method="OPTIONS", extra=[("max-forwards", "5")])
forwarded("via_names_http2")
malformed("authority_host_case_differs",
          lambda c: c.request_fields(path="/?case=authority_host_case_differs", authority=c.authority.upper(),
                                     extra=[("host", c.authority)]))
forwarded("te_trailers_any_case", extra=[("te", "Trailers")])
forwarded("te_trailers_is_dropped", extra=[("te", "trailers")])
malformed("options_asterisk",
          lambda c: c.request_fields(method="OPTIONS", path="*", extra=[("x-case", "options_asterisk")]))
malformed("host_without_authority",
          lambda c: [x for x in c.request_fields(path="/?case=host_without_authority") if x[0] != ":authority"]
          + [("host", c.authority)])
forwarded("cookie_crumbs_joined", extra=[("cookie", "a=1"), ("cookie", "b=2")])
with_trailers("trailers_are_dropped", [("x-trailer", "1")], seconds=3,
              fields_fn=lambda c: c.request_fields(method="POST", path="/?case=trailers_are_dropped",
                                                   extra=[("content-length", "5")]))


def run(host, port, name):
    c = Conn(host, port, ack_settings=name not in NO_ACK)
    c.handshake()
    nxt = CASES[name](c)
    if nxt is not None:
        c.followup(nxt)  # a late GOAWAY would show here too
    else:
        c.read(1, lambda c: c.result["closed"])  # the connection ends after GOAWAY
    c.result.pop("body", None)
    return c.result


def run_safe(host, port, name):
    try:
        return run(host, port, name)
    except OSError as e:
        return {"error": str(e)}


def main():
    if sys.argv[1:] == ["list"]:
        print("\n".join(CASES))
        return
    host, port = sys.argv[1], int(sys.argv[2])
    if sys.argv[3:] == ["--serve"]:
        # One case per line on stdin, one JSON line per case on stdout (the test drives it).
        for line in sys.stdin:
            name = line.strip()
            if name:
                print(json.dumps(run_safe(host, port, name)), flush=True)
        return
    print(json.dumps({name: run_safe(host, port, name) for name in sys.argv[3:]}))


if __name__ == "__main__":
    main()
