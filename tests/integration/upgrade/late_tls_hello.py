#!/usr/bin/python3
"""A TLS client that connects first and says hello later: connects to 127.0.0.1:PORT, creates
READY_FILE, waits until GO_FILE exists (at most 30 s), then does the TLS handshake on that same
connection and sends GET PATH. Prints the status line, or the error (exit 1).

usage: late_tls_hello.py PORT PATH READY_FILE GO_FILE
"""
import os
import socket
import ssl
import sys
import time


def main():
    port, path, ready, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    with open(ready, "w", encoding="utf-8"):
        pass
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        print(data.split(b"\r\n", 1)[0].decode(errors="replace"))
        return 0 if data.startswith(b"HTTP/1.1 200") else 1
    except OSError as e:
        print(f"error: {e!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
