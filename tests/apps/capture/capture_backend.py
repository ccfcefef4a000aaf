#!/usr/bin/python3
"""A capturing HTTP/1.1 worker for corral's tests: every request head it receives is written,
byte for byte, to DIR/<pid>-<n>.head (and its body to .body) before it answers 200 "ok" with the file's
name in an X-Capture field.
It parses only what it needs to find the end of a message (the end of the head, then
Content-Length or chunked framing), so that it accepts whatever corral sends: judging the
heads is the test's job (with corral's own strict parser).

The listening socket comes from the supervisor as fd 3 (LISTEN_FDS=1).
usage: capture_backend.py DIR
"""
import os
import socket
import sys
import threading

OUT = sys.argv[1]
counter = [0]
lock = threading.Lock()


def next_name():
    with lock:
        counter[0] += 1
        return os.path.join(OUT, "%d-%06d" % (os.getpid(), counter[0]))


def write_file(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[:i + len(sep)], self.buf[i + len(sep):]
                return out
            self.fill()

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def serve(sock):
    r = Reader(sock)
    try:
        while True:
            head = r.until(b"\r\n\r\n")
            name = next_name()
            length, chunked, close = 0, False, False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k, v = k.strip().lower(), v.strip().lower()
                if k == b"content-length" and v.isdigit():
                    length = int(v)
                elif k == b"transfer-encoding" and v.endswith(b"chunked"):
                    chunked = True
                elif k == b"connection" and v == b"close":
                    close = True
            body = b""
            if chunked:
                while True:
                    size = int(r.until(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        r.until(b"\r\n\r\n") if not r.buf.startswith(b"\r\n") else r.exactly(2)
                        break
                    body += r.exactly(size)
                    r.exactly(2)
            elif length:
                body = r.exactly(length)
            # The body first: the test takes a .head file as a complete request.
            write_file(name + ".body", body)
            write_file(name + ".head", head)
            resp = b"" if head.startswith(b"HEAD ") else b"ok\n"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Capture: %s\r\n"
                         b"Content-Length: 3\r\n\r\n%s" % (os.path.basename(name).encode(), resp))
            if close:
                return
    except (EOFError, OSError, ValueError):
        pass
    finally:
        sock.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    lsock = socket.socket(fileno=3)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
