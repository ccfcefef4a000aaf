"""The soak's HTTP/2 client (python3-h2): one connection at a time, several streams in flight,
GETs and uploads, h2c (prior knowledge) or TLS with ALPN; slow mode reads the socket slowly so
flow control pushes back. Every answer is checked (results.judge)."""
import random
import select
import socket
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from clients import TIMEOUT, soak_query, tls_wrap
from results import Req, judge, fail, make_body, EMPTY_SHA


class Stream:
    def __init__(self, req, body, sha, pad):
        self.req = req
        self.body = body
        self.sent = 0
        self.sha = sha
        self.pad = pad
        self.status = None
        self.data = bytearray()


def h2_client(kind, port, tls, streams, slow, live, results, stop, seed, pause):
    rng = random.Random(seed)
    while not stop.is_set():
        if stop.paused():
            time.sleep(0.1)
            continue
        try:
            session(kind, port, tls, streams, slow, live, results, stop, rng, pause)
        except Exception as e:  # a client bug must not end the thread silently
            print("[soak] %s client: %r" % (kind, e), flush=True)
            time.sleep(0.5)


def session(kind, port, tls, streams, slow, live, results, stop, rng, pause):
    opened = time.time()
    active = {}
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = tls_wrap(s, "h2") if tls else s
    except OSError as e:
        req = Req(kind, "/web/", "(connect)")
        fail(req, "connect: %s" % e)
        results.record(req)
        time.sleep(0.5)
        return
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    used = 0
    going_away = False
    next_open = 0.0

    def finish_all(error):
        for st in active.values():
            fail(st.req, error)
            results.record(st.req)
        active.clear()

    try:
        sock.sendall(conn.data_to_send())
        while True:
            now = time.time()
            # New streams, paced.
            while not going_away and not stop.is_set() and not stop.paused() and len(active) < streams and now >= next_open:
                prefix, app, path = rng.choice(live.targets())
                ms, pad = soak_query(rng, slow)
                body, sha = (b"", EMPTY_SHA)
                upload = not slow and rng.random() < 0.3
                if upload:
                    body, sha = make_body(rng, big=False)
                req = Req(kind, prefix, "%s?ms=%d&pad=%d" % (path, ms, pad), "POST" if upload else "GET", len(body))
                req.conn_opened = opened
                req.reused = used > 0
                used += 1
                sid = conn.get_next_available_stream_id()
                hdrs = [(":method", req.method), (":scheme", "https" if tls else "http"), (":path", req.path),
                        (":authority", "soak.test"), ("traceparent", req.traceparent())]
                if upload:
                    hdrs.append(("content-length", str(len(body))))
                conn.send_headers(sid, hdrs, end_stream=not upload)
                active[sid] = Stream(req, body if upload else None, sha, pad)
                next_open = now + pause * rng.uniform(0.5, 1.5)
            # Request bodies, as flow control allows.
            for sid, st in list(active.items()):
                if st.body is None:
                    continue
                while st.sent < len(st.body):
                    n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(st.body) - st.sent)
                    if n <= 0:
                        break
                    conn.send_data(sid, st.body[st.sent:st.sent + n])
                    st.sent += n
                if st.sent == len(st.body):
                    conn.end_stream(sid)
                    st.body = None
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
            if not active and (going_away or stop.is_set() or stop.paused()):
                return
            # Streams that take too long.
            for sid, st in list(active.items()):
                if now - st.req.start > TIMEOUT:
                    fail(st.req, "timed out after %.0f s" % TIMEOUT)
                    results.record(st.req)
                    del active[sid]
                    conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            wait = 0.05 if (active and not slow) else 0.2
            if not (tls and sock.pending()):
                r, _, _ = select.select([sock], [], [], wait)
                if not r:
                    continue
            data = sock.recv(16384 if slow else 65536)
            if slow:
                time.sleep(0.05)
            if not data:
                finish_all("connection closed by the server")
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    st = active.get(ev.stream_id)
                    if st:
                        st.status = int(dict(ev.headers).get(":status", "0"))
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    st = active.get(ev.stream_id)
                    if st:
                        st.data += ev.data
                elif isinstance(ev, h2.events.StreamEnded):
                    st = active.pop(ev.stream_id, None)
                    if st:
                        judge(live, st.req, st.status, bytes(st.data), st.sha, st.pad)
                        results.record(st.req)
                elif isinstance(ev, h2.events.StreamReset):
                    st = active.pop(ev.stream_id, None)
                    if st:
                        if ev.error_code == h2.errors.ErrorCodes.REFUSED_STREAM:
                            st.req.end = time.time()
                            st.req.outcome, st.req.error = "refused", "RST_STREAM REFUSED_STREAM (safe to retry)"
                        else:
                            fail(st.req, "RST_STREAM %s" % ev.error_code)
                        results.record(st.req)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    going_away = True
                    last = ev.last_stream_id if ev.last_stream_id is not None else 0
                    for sid in [sid for sid in active if sid > last]:
                        st = active.pop(sid)
                        st.req.end = time.time()
                        st.req.outcome, st.req.error = "refused", "above GOAWAY's last stream (not processed)"
                        results.record(st.req)
                    if ev.error_code != h2.errors.ErrorCodes.NO_ERROR:
                        finish_all("GOAWAY %s" % ev.error_code)
                        return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    except (OSError, h2.exceptions.ProtocolError) as e:
        finish_all("%s: %s" % (type(e).__name__, e))
    finally:
        try:
            sock.close()
        except OSError:
            pass
