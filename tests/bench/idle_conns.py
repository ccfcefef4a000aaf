#!/usr/bin/python3
"""Opens N keep-alive connections to HOST:PORT from source address SRC, sends one small
request on each and reads its response, then holds them all idle. Prints "ready OK FAILED"
once every connection has its response (or failed), then waits until stdin closes or
--hold seconds pass. With --tls every connection first does a TLS 1.3 handshake (HTTP/1.1 by
ALPN, certificate not checked). Used by run.sh for scenario 5 (proxy RSS per idle connection,
plaintext and TLS)."""
import argparse
import selectors
import socket
import ssl
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
    ap.add_argument("--tls", action="store_true")
    a = ap.parse_args()
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.set_alpn_protocols(["http/1.1"])

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
        # state: buffer, phase (0 connecting, 1 TLS handshake, 2 request sent), TLS socket
        pending[s] = [b"", 0, None]
        sel.register(s, selectors.EVENT_WRITE)
        # Keep the connect backlog shallow so a proxy's accept queue never overflows.
        while len(pending) > 256 and time.monotonic() < end:
            failed += step(sel, pending, req, ctx)
    while pending and time.monotonic() < end:
        failed += step(sel, pending, req, ctx)
    failed += len(pending)
    print("ready %d %d" % (len(socks) - failed, failed + early), flush=True)
    sel.close()
    hold_end = time.monotonic() + a.hold
    while time.monotonic() < hold_end:
        if sys.stdin.read(1) == "":
            break
    for s in socks:
        s.close()
    for s in tls_socks:
        s.close()


tls_socks = []  # the TLS wrappers, kept open with their sockets


def step(sel, pending, req, ctx):
    failed = 0
    for key, ev in sel.select(timeout=0.5):
        s = key.fileobj
        st = pending.get(s)
        if st is None:
            continue
        try:
            if st[1] == 0:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    raise OSError("connect failed")
                if ctx is not None:
                    st[2] = ctx.wrap_socket(s, server_hostname="localhost", do_handshake_on_connect=False)
                    tls_socks.append(st[2])
                    st[1] = 1
                else:
                    s.send(req)
                    st[1] = 2
                    sel.modify(s, selectors.EVENT_READ)
                    continue
            if st[1] == 1:
                try:
                    st[2].do_handshake()
                except ssl.SSLWantReadError:
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                except ssl.SSLWantWriteError:
                    sel.modify(s, selectors.EVENT_WRITE)
                    continue
                st[2].send(req)
                st[1] = 2
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = (st[2] or s).recv(65536)
            except ssl.SSLWantReadError:
                continue
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
        except (OSError, ssl.SSLError):
            sel.unregister(s)
            del pending[s]
            failed += 1
    return failed


if __name__ == "__main__":
    main()
