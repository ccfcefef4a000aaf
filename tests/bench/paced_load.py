#!/usr/bin/env python3
"""Paced HTTP/1.1 load for the transition benchmark: RATE requests/s in total, spread over
THREADS threads (half open a new connection per request, half keep one connection alive and
reconnect only after the server closed it), until the file STOP exists. Each request's start,
status and time are recorded; a request that gets no 200 (refused, reset, timed out, 5xx)
is a failure. A request that starts late because the previous one of its thread was slow is
sent at once (the rate then drops below RATE; the report counts the requests sent).

usage: paced_load.py HOST PORT PATH RATE THREADS STOP OUT.json
OUT.json: {"requests", "failed", "worst_ms", "p99_ms", "failures": [[t, what], ...]}
"""
import http.client
import json
import os
import sys
import threading
import time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate, nthreads, stop, out = float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
t0 = time.monotonic()
lock = threading.Lock()
times, failures = [], []


def record(start, ok, what):
    with lock:
        times.append(time.monotonic() - start)
        if not ok:
            failures.append([round(start - t0, 3), what])


def run(index):
    keep_alive = index % 2 == 1
    interval = nthreads / rate
    due = t0 + index * (1.0 / rate)
    conn = None
    while not os.path.exists(stop):
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        due += interval
        start = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=15)
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
            record(start, ok, "" if ok else "status %d" % resp.status)
            if not keep_alive or resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # refused, reset, timed out, closed without an answer
            record(start, False, "%s: %s" % (type(e).__name__, e))
            if conn is not None:
                conn.close()
            conn = None


threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ordered = sorted(times)
result = {
    "requests": len(times),
    "failed": len(failures),
    "worst_ms": round(ordered[-1] * 1000, 1) if ordered else 0,
    "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 1) if ordered else 0,
    "seconds": round(time.monotonic() - t0, 1),
    "failures": failures[:20],
}
with open(out, "w") as f:
    json.dump(result, f)
