#!/usr/bin/python3
"""WebSocket clients for corral's integration tests (tests/integration/71_websocket_test.cc).

HTTP/1.1 scenarios use python3-websockets; the HTTP/2 one (RFC 8441 extended CONNECT) uses
python3-h2 with a minimal WebSocket framing of its own. Every mode prints one JSON object
on stdout; failures are in it ("ok": false, "error": ...) rather than in the exit code.
"""
import argparse
import asyncio
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

import websockets


def tls_context(alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def ws_ssl(url):
    return tls_context(["http/1.1"]) if url.startswith("wss:") else None


def payload(i, size, binary):
    if binary:
        return os.urandom(size)
    return ("m%d-" % i + "x" * size)[:max(size, 1)]


async def echo(args):
    t0 = time.monotonic()
    count = 0

    async def one(c):
        nonlocal count
        async with websockets.connect(args.url, ssl=ws_ssl(args.url), max_size=64 << 20, compression=None,
                                      ping_interval=None, open_timeout=10) as ws:
            for i in range(args.messages):
                m = payload(i + c, args.size, args.binary)
                await ws.send(m)
                r = await asyncio.wait_for(ws.recv(), 30)
                if r != m:
                    raise RuntimeError("message %d came back different (%d vs %d bytes)" % (i, len(r), len(m)))
                count += 1

    await asyncio.gather(*(one(c) for c in range(args.conns)))
    return {"ok": True, "messages": count, "seconds": time.monotonic() - t0}


async def burst(args):
    # Backpressure: many large messages sent before any is read; every one must come back.
    async with websockets.connect(args.url, ssl=ws_ssl(args.url), max_size=64 << 20, compression=None,
                                  ping_interval=None, max_queue=None) as ws:
        msgs = [os.urandom(args.size) for _ in range(args.messages)]
        for m in msgs:
            await ws.send(m)
        await asyncio.sleep(args.pause)
        for i, m in enumerate(msgs):
            r = await asyncio.wait_for(ws.recv(), 60)
            if r != m:
                return {"ok": False, "error": "message %d differs" % i}
    return {"ok": True, "messages": len(msgs)}


async def info(args):
    async with websockets.connect(args.url, ssl=ws_ssl(args.url), ping_interval=None) as ws:
        first = json.loads(await ws.recv())
        await ws.send("after-info")
        back = await ws.recv()
        return {"ok": back == "after-info", "info": first}


async def status(args):
    try:
        async with websockets.connect(args.url, ssl=ws_ssl(args.url), ping_interval=None):
            return {"ok": True, "status": 101}
    except websockets.exceptions.InvalidStatusCode as e:
        return {"ok": True, "status": e.status_code}


def http_get(url, timeout):
    ctx = tls_context(None) if url.startswith("https:") else None
    with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
        return r.status, r.read().decode()


async def concurrency(args):
    # A tunnel is open on a concurrency = 1 worker (no max_tunnels): a plain request must wait
    # until it closes.
    ws = await websockets.connect(args.url, ping_interval=None)
    await ws.send("hold")
    assert await ws.recv() == "hold"
    done = {}

    def get():
        t = time.monotonic()
        try:
            done["status"], _ = http_get(args.get, 20)
        except Exception as e:  # noqa: BLE001
            done["error"] = str(e)
        done["at"] = time.monotonic() - t

    th = threading.Thread(target=get)
    th.start()
    await asyncio.sleep(args.hold)
    waiting = th.is_alive()
    await ws.send("still")
    still = await ws.recv() == "still"
    await ws.close()
    closed_at = args.hold
    await asyncio.get_running_loop().run_in_executor(None, th.join, 20)
    return {"ok": True, "waited_while_open": waiting, "tunnel_worked": still, "get": done, "closed_at": closed_at}


async def max_tunnels(args):
    # max_tunnels = N on one worker with concurrency 1: N tunnels open at once, a plain
    # request still goes, tunnel N+1 waits (and gets 503 after queue_timeout), and one more
    # goes once a tunnel closed.
    out = {"ok": True}
    open_ws = []
    for i in range(args.n):
        ws = await websockets.connect(args.url, ping_interval=None, open_timeout=5)
        await ws.send("t%d" % i)
        assert await ws.recv() == "t%d" % i
        open_ws.append(ws)
    out["opened"] = len(open_ws)
    t = time.monotonic()
    try:
        out["plain_status"], _ = await asyncio.get_running_loop().run_in_executor(None, http_get, args.get, 10)
    except Exception as e:  # noqa: BLE001
        out["plain_error"] = str(e)
    out["plain_seconds"] = time.monotonic() - t
    if args.metrics:
        out["metrics_open"] = await asyncio.get_running_loop().run_in_executor(None, http_get, args.metrics, 5)
    t = time.monotonic()
    try:
        extra = await websockets.connect(args.url, ping_interval=None, open_timeout=10)
        out["extra_status"] = 101
        await extra.close()
    except websockets.exceptions.InvalidStatusCode as e:
        out["extra_status"] = e.status_code
    out["extra_seconds"] = time.monotonic() - t
    await open_ws[0].close()
    await asyncio.sleep(0.2)
    ws = await websockets.connect(args.url, ping_interval=None, open_timeout=5)
    await ws.send("again")
    out["after_close"] = await ws.recv() == "again"
    await ws.close()
    for w in open_ws[1:]:
        await w.close()
    return out


async def idle(args):
    out = {"ok": True}
    # Traffic every half timeout keeps a tunnel open...
    async with websockets.connect(args.url, ping_interval=None) as ws:
        t_end = time.monotonic() + args.idle * 2.5
        n = 0
        while time.monotonic() < t_end:
            await ws.send("p")
            await ws.recv()
            n += 1
            await asyncio.sleep(args.idle / 2)
        out["busy_survived"] = True
    # ...silence closes it.
    ws = await websockets.connect(args.url, ping_interval=None)
    t = time.monotonic()
    try:
        await asyncio.wait_for(ws.recv(), args.idle * 5)
        out["idle_closed"] = False
    except websockets.exceptions.ConnectionClosed:
        out["idle_closed"] = True
    except asyncio.TimeoutError:
        out["idle_closed"] = False
    out["idle_closed_after"] = time.monotonic() - t
    return out


async def reload(args):
    # A tunnel open across a reload stays with its old worker until graceful_timeout passes.
    out = {"ok": True}
    ws = await websockets.connect(args.url, ping_interval=None)
    out["old_pid"] = json.loads(await ws.recv())["pid"]
    proc = await asyncio.create_subprocess_exec(*args.reload_cmd.split("\x1f"), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    so, se = await proc.communicate()
    out["reload_exit"] = proc.returncode
    out["reload_out"] = (so + se).decode()
    t_reloaded = time.monotonic()
    await ws.send("after-reload")
    out["old_works_after_reload"] = await ws.recv() == "after-reload"
    # `corralctl reload` answers once the new workers are ready; the proxy applies their pool
    # from its control channel a moment later (not a barrier), so a tunnel opened at once may
    # still reach the old worker. Within 3 s new tunnels must reach the new one.
    while True:
        async with websockets.connect(args.url, ping_interval=None) as ws2:
            out["new_pid"] = json.loads(await ws2.recv())["pid"]
        if out["new_pid"] != out["old_pid"] or time.monotonic() - t_reloaded > 3:
            break
        await asyncio.sleep(0.05)
    if args.close_after > 0:
        # The client leaves first: the old worker has nothing left to finish.
        await asyncio.sleep(args.close_after)
        await ws.close()
        out["closed_by_client_after"] = time.monotonic() - t_reloaded
        return out
    # Keep talking until the old worker goes away.
    try:
        while time.monotonic() - t_reloaded < 30:
            await ws.send("ping")
            await asyncio.wait_for(ws.recv(), 5)
            await asyncio.sleep(0.2)
        out["closed"] = False
    except websockets.exceptions.ConnectionClosed:
        out["closed"] = True
    out["closed_after"] = time.monotonic() - t_reloaded
    return out


async def hold(args):
    # Opens a tunnel and keeps using it until it is closed: how long it lived.
    t = time.monotonic()
    out = {"ok": True, "echoes": 0}
    try:
        async with websockets.connect(args.url, ping_interval=None) as ws:
            out["opened_after"] = time.monotonic() - t
            while time.monotonic() - t < args.hold:
                await ws.send("h")
                await asyncio.wait_for(ws.recv(), 5)
                out["echoes"] += 1
                await asyncio.sleep(0.1)
    except websockets.exceptions.ConnectionClosed as e:
        out["close_code"] = e.code
    out["lived"] = time.monotonic() - t
    return out


# ---- HTTP/2 extended CONNECT (RFC 8441) ------------------------------------------------------

def ws_frame(opcode, data, fin=True):
    mask = os.urandom(4)
    n = len(data)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def ws_parse(buf):
    """One server frame (unmasked) from buf: (opcode, payload, rest) or None."""
    if len(buf) < 2:
        return None
    op = buf[0] & 0x0F
    n = buf[1] & 0x7F
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack("!H", buf[2:4])[0]
        off = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack("!Q", buf[2:10])[0]
        off = 10
    if len(buf) < off + n:
        return None
    return op, buf[off:off + n], buf[off + n:]


def h2(args):
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    raw = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    sock = tls_context(["h2"]).wrap_socket(raw, server_hostname="localhost") if args.tls else raw
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    out = {"ok": False}
    state = {"settings": None, "status": None, "headers": None, "data": b"", "ended": False, "reset": None}

    def pump():
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                c = ev.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                if c is not None:
                    state["settings"] = c.new_value
                elif state["settings"] is None:
                    state["settings"] = 0
            elif isinstance(ev, h2.events.ResponseReceived):
                state["headers"] = dict(ev.headers)
                state["status"] = int(state["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                state["data"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                state["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                state["reset"] = int(ev.error_code)
        sock.sendall(conn.data_to_send())

    while state["settings"] is None:
        pump()
    out["enable_connect_protocol"] = state["settings"]
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", args.protocol),
                            (":scheme", "https" if args.tls else "http"), (":path", args.path),
                            (":authority", "localhost:%d" % args.port), ("sec-websocket-version", "13")])
    sock.sendall(conn.data_to_send())
    while state["status"] is None and state["reset"] is None:
        pump()
    out["status"] = state["status"]
    out["reset"] = state["reset"]
    out["response_headers"] = state["headers"]
    if state["status"] != 200:
        while not state["ended"] and state["reset"] is None:
            pump()
        out["body"] = state["data"].decode(errors="replace")
        out["ok"] = True
        return out

    def send(data):
        while data:
            while conn.local_flow_control_window(sid) == 0:
                pump()
            n = min(len(data), conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            conn.send_data(sid, data[:n])
            sock.sendall(conn.data_to_send())
            data = data[n:]

    def recv():
        while True:
            f = ws_parse(state["data"])
            if f:
                state["data"] = f[2]
                return f[0], f[1]
            if state["ended"] or state["reset"] is not None:
                return None, None
            pump()

    if args.path == "/abort":
        # Send without reading until the stream ends: how it ended.
        try:
            data = ws_frame(0x2, os.urandom(args.size))[:conn.local_flow_control_window(sid)]
            while data:
                conn.send_data(sid, data[:conn.max_outbound_frame_size])
                data = data[conn.max_outbound_frame_size:]
            sock.sendall(conn.data_to_send())
        except Exception as e:  # noqa: BLE001
            out["send_error"] = str(e)
        deadline = time.monotonic() + 5
        while not state["ended"] and state["reset"] is None and time.monotonic() < deadline:
            pump()
        out["reset"] = state["reset"]
        out["ended"] = state["ended"]
        out["ok"] = True
        return out
    t0 = time.monotonic()
    if args.path == "/info":
        op, first = recv()
        out["info"] = json.loads(first)
    for i in range(args.messages):
        m = (b"h2-%d-" % i) + os.urandom(max(args.size - 8, 0))
        send(ws_frame(0x2, m))
        op, back = recv()
        if back != m:
            out["error"] = "message %d came back different" % i
            return out
    out["messages"] = args.messages
    out["seconds"] = time.monotonic() - t0
    # Closing handshake, then END_STREAM both ways.
    send(ws_frame(0x8, struct.pack("!H", 1000)))
    op, _ = recv()
    out["close_opcode"] = op
    conn.end_stream(sid)
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + 5
    while not state["ended"] and state["reset"] is None and time.monotonic() < deadline:
        pump()
    out["ended"] = state["ended"]
    out["ok"] = True
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode")
    p.add_argument("--url", default="")
    p.add_argument("--get", default="")
    p.add_argument("--metrics", default="")
    p.add_argument("--messages", type=int, default=10)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--binary", action="store_true")
    p.add_argument("--pause", type=float, default=1.0)
    p.add_argument("--hold", type=float, default=1.0)
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--idle", type=float, default=1.0)
    p.add_argument("--reload-cmd", default="")
    p.add_argument("--close-after", type=float, default=0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--path", default="/echo")
    p.add_argument("--protocol", default="websocket")
    p.add_argument("--tls", action="store_true")
    args = p.parse_args()
    try:
        if args.mode == "h2":
            out = h2(args)
        else:
            out = asyncio.run(globals()[args.mode.replace("-", "_")](args))
    except Exception as e:  # noqa: BLE001
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
