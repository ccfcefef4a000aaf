#!/usr/bin/python3
"""New TLS 1.3 connections to HOST:PORT for SECONDS, from PROCS processes: each connection does
its handshake (SNI --sni, certificate not checked), sends one small GET with
"Connection: close", reads the response to the server's close and closes. With --resume every
connection after a process's first offers the session ticket of the connection before it
(TLS 1.3 PSK resumption), so the server does no certificate signature; without it every
handshake is a full one. Prints one line:
  BENCH conns=N resumed=R errors=E duration_us=D p50=µs p99=µs
(conns: completed connections with a 200 answer; resumed: of those, the ones the server
resumed; p50/p99: time from connect() to the server's close, per connection). Used by run.sh for scenario 7 (new TLS connections per second per proxy core)."""
import argparse
import multiprocessing
import socket
import ssl
import struct
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def worker(a, end, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n" % a.path).encode()
    session = None
    conns = resumed = errors = 0
    took = []
    while time.monotonic() < end:
        t0 = time.monotonic()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((a.src, 0))
            s.settimeout(10)
            # Like wrk and h2load: no Nagle delay between the client's Finished and its request.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect((a.host, a.port))
            t = ctx.wrap_socket(s, server_hostname=a.sni, session=session if a.resume else None)
            t.sendall(req)
            data = b""
            while True:
                chunk = t.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise OSError("bad answer")
            conns += 1
            took.append(time.monotonic() - t0)
            resumed += t.session_reused
            # The newest ticket (TLS 1.3 servers may accept each ticket only once).
            session = t.session
            t.close()
        except (OSError, ssl.SSLError):
            errors += 1
            try:  # a reset rather than a TIME_WAIT left behind by a failed connection
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass  # the TLS wrapper took the descriptor and closed it
            s.close()
            if conns == 0 and errors >= 20:
                break  # the server refuses every connection: no figure to take
    out.put((conns, resumed, errors, took))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--src", default="127.0.0.1")
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--path", default="/big?bytes=100")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()
    out = multiprocessing.Queue()
    start = time.monotonic()
    end = start + a.seconds
    ps = [multiprocessing.Process(target=worker, args=(a, end, out)) for _ in range(a.procs)]
    for p in ps:
        p.start()
    totals = [0, 0, 0]
    took = []
    for _ in ps:
        r = out.get()
        for k, v in enumerate(r[:3]):
            totals[k] += v
        took += r[3]
    took.sort()
    pct = lambda q: int(took[min(len(took) - 1, int(len(took) * q))] * 1e6) if took else 0
    for p in ps:
        p.join()
    elapsed = time.monotonic() - start
    print("BENCH conns=%d resumed=%d errors=%d duration_us=%d p50=%d p99=%d"
          % (totals[0], totals[1], totals[2], elapsed * 1e6, pct(0.5), pct(0.99)), flush=True)


if __name__ == "__main__":
    main()
