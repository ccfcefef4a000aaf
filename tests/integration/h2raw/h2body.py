#!/usr/bin/python3
"""Request bodies over HTTP/2, frame by frame (h2raw's Conn): what the server answers to a
request head whose body has not been sent yet. Prints one JSON line: the :status values of
stream 1 in the order they arrived ("statuses"), whether the answer came before any body byte
was sent ("answered_before_body"), the response body, RST_STREAM codes and GOAWAY.

usage: h2body.py HOST PORT SCENARIO PATH [BODY_BYTES]
  expect      content-length + expect: 100-continue; waits for an answer, then (only after a
              100) sends the body in 16 KiB DATA frames
  expect_bad  expect: 200-ok (an expectation the server cannot meet)
  big         content-length BODY_BYTES, no expect; waits for an answer before sending
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2raw import DATA, END_STREAM, HEADERS, Conn, frame  # noqa: E402


class BodyConn(Conn):
    def __init__(self, host, port):
        super().__init__(host, port, False)
        self.result["statuses"] = []

    def on_frame(self, ftype, flags, sid, payload):
        if ftype == HEADERS and sid == 1:
            for k, v in self.dec.decode(payload):
                if k == ":status":
                    self.result["statuses"].append(int(v))
            if flags & END_STREAM:
                self.ended.add(sid)
            return
        super().on_frame(ftype, flags, sid, payload)


def main():
    host, port, scenario, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 100000
    body = bytes((i * 7 + 3) % 251 for i in range(size))
    c = BodyConn(host, port)
    extra = [("content-length", str(size))]
    if scenario == "expect":
        extra.append(("expect", "100-continue"))
    elif scenario == "expect_bad":
        extra.append(("expect", "200-ok"))
    c.send(c.headers(1, extra, method="POST", path=path, end_stream=False))
    c.read(5, lambda r: r["statuses"] or r["rst"] or r["goaway"] is not None)
    r = c.result
    r["answered_before_body"] = bool(r["statuses"])
    if r["statuses"] and r["statuses"][0] == 100:
        # Asked for the body: send it (within the initial 64 KiB window, then as the
        # server's WINDOW_UPDATEs allow; h2raw does not track windows, so stay small).
        for off in range(0, size, 16384):
            chunk = body[off:off + 16384]
            c.send(frame(DATA, END_STREAM if off + 16384 >= size else 0, 1, chunk))
        c.read(10, lambda r: 1 in c.ended or r["rst"])
    else:
        c.read(1, lambda r: 1 in c.ended or r["rst"])
    r["body_1"] = r["body"].get("1", "")
    del r["body"]
    print(json.dumps(r))


if __name__ == "__main__":
    main()
