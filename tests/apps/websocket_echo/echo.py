#!/usr/bin/python3
"""A WebSocket echo app for corral (kind = "http"), on python3-websockets.

It serves the listening Unix socket corral passes as fd 3 (LISTEN_FDS=1, the systemd
convention), or the path given as the first argument. Paths:
  /echo          every message comes back as it was sent (text or binary)
  /info          one text message: JSON of the pid and the request headers it got, then echo
  /deny          no switch: 403 with a short body
  /plain         no switch: 200 "plain\n" (an app that ignores Upgrade)
  /close         closes the WebSocket (code 1000) after echoing the first message
  /abort         switches, stops reading and drops the connection half a second later
  /page          an HTML page whose script opens a WebSocket to /echo on the same origin and
                 sets window.wsResult ("ok <protocol>" or "error ...")
  anything else  426 Upgrade Required (websockets' answer to a plain GET; also the health probe)
"""
import asyncio
import http
import json
import os
import socket
import sys

import websockets
import websockets.server


async def handler(ws, path):
    if path == "/abort":
        # A worker that fails mid-tunnel: it stops reading, then drops the connection with
        # the client's bytes unread (the proxy sees a reset).
        ws.transport.pause_reading()
        await asyncio.sleep(0.5)
        ws.transport.abort()
        return
    if path == "/info":
        await ws.send(json.dumps({"pid": os.getpid(),
                                  "headers": {k.lower(): v for k, v in ws.request_headers.raw_items()}}))
    async for message in ws:
        await ws.send(message)
        if path == "/close":
            await ws.close(1000, "bye")
            return


PAGE = b"""<!doctype html><meta charset="utf-8"><title>ws</title>
<script>
window.wsResult = "pending";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/echo");
ws.onopen = () => ws.send("hello from the page");
ws.onmessage = (e) => { window.wsResult = e.data === "hello from the page" ? "ok" : "wrong " + e.data; ws.close(); };
ws.onerror = () => { window.wsResult = "error"; };
</script>
"""


async def process_request(path, headers):
    if path == "/page":
        return http.HTTPStatus.OK, [("Content-Type", "text/html; charset=utf-8")], PAGE
    if path == "/deny":
        return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"denied\n"
    if path == "/plain":
        return http.HTTPStatus.OK, [("Content-Type", "text/plain")], b"plain\n"
    return None


async def main():
    if len(sys.argv) > 1:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(sys.argv[1])
        sock.listen(128)
    else:
        sock = socket.socket(fileno=3)
    sock.setblocking(False)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(15, stop.set_result, None)
    # max_size: large messages are part of the tests (16 MiB); no compression, so the bytes
    # on the wire are the messages' own.
    async with websockets.unix_serve(handler, sock=sock, process_request=process_request, max_size=64 << 20,
                                     compression=None, ping_interval=None):
        await stop


if __name__ == "__main__":
    asyncio.run(main())
