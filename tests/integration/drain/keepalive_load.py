#!/usr/bin/python3
"""HTTP/1.1 keep-alive load for corral's drain tests: CONNS threads, each sending GET PATH in a
loop on one persistent connection (http.client, as a balancer or an API client would), opening
a new connection when the server ends one (Connection: close or a close). Creates READY_FILE
after the first answer, runs until STOP_FILE exists (at most a minute), then prints one JSON
object:

  requests, ok (2xx), failures [[t, error]], connections (opened), close_responses [t] (answers
  with Connection: close), keepalive_at [t] (answers without it), statuses {status: count}.

Times are time.monotonic() seconds (CLOCK_MONOTONIC, the clock of the C++ test's steady_clock).

usage: keepalive_load.py PORT STOP_FILE CONNS PATH READY_FILE
"""
import http.client
import json
import os
import sys
import threading
import time


def worker(port, stop_file, deadline, path, ready_file, out, lock):
    conn = None
    while time.monotonic() < deadline and not os.path.exists(stop_file):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.connect()
                with lock:
                    out["connections"] += 1
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            t = time.monotonic()
            close = (resp.getheader("Connection") or "").lower() == "close"
            with lock:
                out["requests"] += 1
                out["statuses"][str(resp.status)] = out["statuses"].get(str(resp.status), 0) + 1
                if 200 <= resp.status < 300:
                    out["ok"] += 1
                if close:
                    out["close_responses"].append(t)
                else:
                    out["keepalive_at"].append(t)
                if out["requests"] == 1:
                    with open(ready_file, "w", encoding="utf-8"):
                        pass
            if close or resp.will_close:
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            with lock:
                out["failures"].append([time.monotonic(), repr(e)])
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def main():
    port, stop_file, conns, path, ready_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    out = {"requests": 0, "ok": 0, "failures": [], "connections": 0, "close_responses": [], "keepalive_at": [],
           "statuses": {}}
    lock = threading.Lock()
    deadline = time.monotonic() + 60
    threads = [threading.Thread(target=worker, args=(port, stop_file, deadline, path, ready_file, out, lock))
               for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
