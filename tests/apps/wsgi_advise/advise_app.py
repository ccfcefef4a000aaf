"""Two Flask apps for `corralctl advise`'s integration test: one whose route computes and
one whose route waits on a socket.

cpu_app  GET /cpu: a pure-Python loop, about 10 ms of CPU (ADVISE_CPU_LOOPS iterations).
io_app   GET /io:  waits ADVISE_IO_MS (50) ms for a socket that stays silent, as a request
         blocked on a database or another service does; the CPU it uses is Flask's alone.
"""
import os
import select
import socket

from flask import Flask

CPU_LOOPS = int(os.environ.get("ADVISE_CPU_LOOPS", "250000"))
IO_SECONDS = int(os.environ.get("ADVISE_IO_MS", "50")) / 1000.0

cpu_app = Flask("cpu_app")
io_app = Flask("io_app")


@cpu_app.route("/cpu")
def cpu():
    total = 0
    for i in range(CPU_LOOPS):
        total += (i * i) % 7
    return "cpu %d\n" % total


@io_app.route("/io")
def io():
    # A socket nobody writes to: select() waits out the timeout without the GIL (and, under
    # gevent, as a greenlet).
    a, b = socket.socketpair()
    try:
        ready, _, _ = select.select([a], [], [], IO_SECONDS)
    finally:
        a.close()
        b.close()
    return "io %d\n" % len(ready)
