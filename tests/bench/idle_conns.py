#!/usr/bin/python3
"""Opens N keep-alive connections to HOST:PORT from source address SRC, sends one small
request on each and reads its response, then holds them all idle. Prints "ready OK FAILED"
once every connection has its response (or failed), then waits until stdin closes or
--hold seconds pass. Used by run.sh for scenario 5 (proxy RSS per idle connection)."""
import argparse
import selectors
import socket
import struct
import sys
import time


IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src", default="127.0.0.1")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--path", default="/big?bytes=100")
    ap.add_argument("--deadline", type=float, default=60.0, help="seconds to get every response")
    ap.add_argument("--hold", type=float, default=120.0, help="longest idle hold")
    a = ap.parse_args()

    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % a.path).encode()
    sel = selectors.DefaultSelector()
    socks = []
    pending = {}
    early = 0
    failed = 0
    end = time.monotonic() + a.deadline
    for _ in range(a.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # The port is chosen at connect() for the whole 4-tuple: a bind() that picks it
            # would take it from every other client on the machine (wrk, the next run).
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            # Closed with a reset at the end: 10,000 client-side TIME_WAITs per run would
            # exhaust the ephemeral ports of the runs and scenarios that follow.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.bind((a.src, 0))
            s.setblocking(False)
            s.connect_ex((a.host, a.port))
        except OSError:
            early += 1
            s.close()
            continue
        socks.append(s)
        pending[s] = [b"", False]
        sel.register(s, selectors.EVENT_WRITE)
        # Keep the connect backlog shallow so a proxy's accept queue never overflows.
        while len(pending) > 256 and time.monotonic() < end:
            failed += step(sel, pending, req)
    while pending and time.monotonic() < end:
        failed += step(sel, pending, req)
    failed += len(pending)
    print("ready %d %d" % (len(socks) - failed, failed + early), flush=True)
    sel.close()
    hold_end = time.monotonic() + a.hold
    while time.monotonic() < hold_end:
        if sys.stdin.read(1) == "":
            break
    for s in socks:
        s.close()


def step(sel, pending, req):
    failed = 0
    for key, ev in sel.select(timeout=0.5):
        s = key.fileobj
        st = pending.get(s)
        if st is None:
            continue
        try:
            if ev & selectors.EVENT_WRITE and not st[1]:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    raise OSError("connect failed")
                s.send(req)
                st[1] = True
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(65536)
            if not data:
                raise OSError("closed")
            st[0] += data
            head, sep, body = st[0].partition(b"\r\n\r\n")
            if sep:
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v.strip())
                if len(body) >= length:
                    sel.unregister(s)
                    del pending[s]
        except OSError:
            sel.unregister(s)
            del pending[s]
            failed += 1
    return failed


if __name__ == "__main__":
    main()
