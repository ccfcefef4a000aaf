"""What the clients saw: every request's outcome by kind, and the failed and wrong ones in full
(the accounting needs their trace-ids and times)."""
import collections
import hashlib
import os
import random
import threading
import time


class Req:
    """One request as the client saw it. Times are epoch seconds."""

    __slots__ = ("kind", "prefix", "path", "trace", "start", "end", "conn_opened", "reused", "status", "error",
                 "outcome", "method", "body_len")

    def __init__(self, kind, prefix, path, method="GET", body_len=0):
        self.kind = kind
        self.prefix = prefix
        self.path = path
        self.method = method
        self.body_len = body_len
        self.trace = "%032x" % random.getrandbits(128)
        self.start = time.time()
        self.end = None
        self.conn_opened = self.start
        self.reused = False
        self.status = None
        self.error = None
        self.outcome = None  # ok | failed | wrong | refused

    def traceparent(self):
        return "00-%s-%016x-01" % (self.trace, random.getrandbits(64) | 1)

    def describe(self):
        return "%s %s %s trace=%s start=%.3f end=%.3f conn_opened=%.3f%s status=%s: %s" % (
            self.kind, self.method, self.path, self.trace, self.start, self.end or 0, self.conn_opened,
            " reused" if self.reused else "", self.status, self.error)


class Results:
    def __init__(self):
        self.mu = threading.Lock()
        self.counts = collections.defaultdict(collections.Counter)  # kind -> outcome -> n
        self.failed = []
        self.wrong = []
        self.hostile = collections.Counter()  # case -> n answered as expected
        self.hostile_bad = []                 # (case, what it got)

    def record(self, req):
        with self.mu:
            self.counts[req.kind][req.outcome] += 1
            if req.outcome == "failed":
                self.failed.append(req)
            elif req.outcome == "wrong":
                self.wrong.append(req)

    def record_hostile(self, case, ok, got):
        with self.mu:
            self.counts["hostile"]["ok" if ok else "wrong"] += 1
            if ok:
                self.hostile[case] += 1
            else:
                self.hostile_bad.append((case, got))

    def total(self, outcome=None):
        with self.mu:
            return sum(c[outcome] if outcome else sum(c.values()) for c in self.counts.values())


def judge(live, req, status, body, sent_sha, pad):
    """Sets req.outcome/error from the answer. 200 must carry "$WHOAMI HEX BYTES\\n" + pad
    bytes, with the body's hash and a $WHOAMI possible for the route during the request;
    404 only while the route was absent; 502/503/504 are failures (to be accounted for);
    anything else is wrong."""
    req.end = time.time()
    req.status = status
    if status in (502, 503, 504):
        req.outcome, req.error = "failed", "status %d: %r" % (status, body[:120])
        return
    if status not in (200, 404):
        req.outcome, req.error = "wrong", "status %d: %r" % (status, body[:120])
        return
    whoami = None
    if status == 200:
        nl = body.find(b"\n")
        parts = body[:nl].decode("latin-1").split(" ") if nl >= 0 else []
        if len(parts) != 3:
            req.outcome, req.error = "wrong", "malformed answer %r" % body[:120]
            return
        whoami, digest, n = parts
        if digest != sent_sha or n != str(req.body_len):
            req.outcome, req.error = "wrong", "body arrived as %s %s, sent %s %d" % (digest, n, sent_sha, req.body_len)
            return
        if len(body) - nl - 1 != pad or body[nl + 1:].strip(b"p"):
            req.outcome, req.error = "wrong", "padding of %d bytes, asked %d" % (len(body) - nl - 1, pad)
            return
    why = live.check(req.prefix, req.start, req.end, status, whoami)
    if why:
        req.outcome, req.error = "wrong", why
    else:
        req.outcome = "ok"


def fail(req, error):
    req.end = time.time()
    req.outcome, req.error = "failed", error


EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def make_body(rng, big):
    """A random upload body and its SHA-256: up to 1 MiB (big) or 64 KiB."""
    n = rng.choice([0, 1, 100, 4096, 65535, 65537, 300000, 1 << 20] if big else [0, 10, 1000, 16384, 65536])
    data = os.urandom(n)
    return data, hashlib.sha256(data).hexdigest()
