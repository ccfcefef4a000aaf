#!/usr/bin/python3
"""WebSocket echo load for tests/bench/websocket.sh: CONNS connections, each sending a SIZE-byte
text message and waiting for its echo, again and again for SECONDS. Prints one line:
BENCH messages=N duration_us=D p50=µs p99=µs errors=E."""
import argparse
import asyncio
import time

import websockets


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--unix", default="")
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--size", type=int, default=32)
    a = p.parse_args()
    msg = "x" * a.size
    lat = []
    errors = 0
    t_end = time.monotonic() + a.seconds

    async def conn():
        nonlocal errors
        try:
            if a.unix:
                connect = websockets.unix_connect(a.unix, a.url, compression=None, ping_interval=None)
            else:
                connect = websockets.connect(a.url, compression=None, ping_interval=None)
            async with connect as ws:
                while time.monotonic() < t_end:
                    t = time.perf_counter_ns()
                    await ws.send(msg)
                    if await ws.recv() != msg:
                        errors += 1
                    lat.append(time.perf_counter_ns() - t)
        except Exception:  # noqa: BLE001
            errors += 1

    t0 = time.monotonic()
    await asyncio.gather(*(conn() for _ in range(a.conns)))
    dur = time.monotonic() - t0
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] // 1000 if lat else 0  # noqa: E731
    print("BENCH messages=%d duration_us=%d p50=%d p99=%d errors=%d" % (len(lat), dur * 1e6, q(0.5), q(0.99), errors))


asyncio.run(main())
