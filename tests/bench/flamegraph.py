#!/usr/bin/python3
"""`perf script` output on stdin -> an SVG flame graph on stdout (Debian 12 has no FlameGraph
package). Each sample's stack is folded root first into one line, equal stacks are counted,
and every frame is drawn as wide as the samples it is on; hovering a frame shows its name, its
samples and their share. Frames are named by symbol (C++ parameter lists and offsets dropped),
or by their library when perf has no symbol.

usage: perf script -i perf.data | flamegraph.py --title TITLE [--folded FILE] > graph.svg
(--folded also writes the folded stacks, "frame;frame;... count" per line, the input format
of Brendan Gregg's flamegraph.pl)."""
import argparse
import collections
import hashlib
import html
import os
import re
import sys

OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def short(sym):
    """Drops the offset and a trailing C++ parameter list: 'ns::f(int, char) const+0x1a' -> 'ns::f'."""
    sym = OFFSET.sub("", sym.strip())
    if sym.endswith(")") or sym.endswith(") const"):
        depth = 0
        for i in range(len(sym) - 1, -1, -1):
            c = sym[i]
            if c == ")":
                depth += 1
            elif c == "(":
                depth -= 1
                if depth == 0:
                    if i > 0 and not sym.startswith("("):
                        sym = sym[:i]
                        if sym.endswith("operator"):  # operator()(args): keep the call operator's name
                            sym += "()"
                    break
    return sym


def frame_name(line):
    # "\t    55d0c3a2b1c4 corral::proxy::Loop::run()+0x54 (/path/corral-proxy)"
    parts = line.strip().split(None, 1)
    if len(parts) < 2:
        return None
    rest = parts[1]
    dso = ""
    if rest.endswith(")") and " (" in rest:
        rest, dso = rest.rsplit(" (", 1)
        dso = os.path.basename(dso[:-1])
    if rest.startswith("[unknown]"):
        return "[%s]" % (dso or "unknown")
    return short(rest)


def fold(lines):
    stacks = collections.Counter()
    comm = None
    frames = []
    for line in lines:
        if not line.strip():
            if comm is not None:
                stacks[";".join([comm] + frames[::-1])] += 1
            comm, frames = None, []
        elif not line[0].isspace():
            comm = line.split(None, 1)[0]
            frames = []
        else:
            name = frame_name(line)
            if name:
                frames.append(name.replace(";", ":"))
    if comm is not None:
        stacks[";".join([comm] + frames[::-1])] += 1
    return stacks


def color(name):
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)
    if name.startswith("["):  # no symbol: grey
        v = 170 + h % 40
        return "rgb(%d,%d,%d)" % (v, v, v)
    if "::" in name or name.startswith("corral"):  # C++ (corral's own, libstdc++): warm
        return "rgb(%d,%d,%d)" % (220 + h % 35, 90 + (h >> 8) % 110, 30 + (h >> 16) % 40)
    if name.startswith(("SSL", "ssl", "tls", "EVP", "ossl", "ecp_", "bn_", "BN_", "aesni", "gcm", "x25519", "EC_", "sha")):
        return "rgb(%d,%d,%d)" % (60 + h % 50, 150 + (h >> 8) % 60, 200 + (h >> 16) % 55)  # crypto: blue
    return "rgb(%d,%d,%d)" % (200 + h % 55, 150 + (h >> 8) % 80, 40 + (h >> 16) % 50)  # C, kernel: orange


def svg(stacks, title, width=1200, frame_h=16):
    root = {"n": 0, "c": {}}
    for stack, n in stacks.items():
        node = root
        node["n"] += n
        for f in stack.split(";"):
            node = node["c"].setdefault(f, {"n": 0, "c": {}})
            node["n"] += n
    total = max(root["n"], 1)
    rects = []
    depth_max = [0]

    def walk(node, name, x, depth):
        depth_max[0] = max(depth_max[0], depth)
        rects.append((name, x, depth, node["n"]))
        cx = x
        for child_name, child in sorted(node["c"].items()):
            walk(child, child_name, cx, depth + 1)
            cx += child["n"]

    walk(root, "all", 0, 0)
    pad_top, pad_x = 40, 10
    scale = (width - 2 * pad_x) / total
    height = pad_top + (depth_max[0] + 1) * frame_h + 30
    out = ['<?xml version="1.0" standalone="no"?>',
           '<svg version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">'
           % (width, height, width, height),
           '<style>text {font-family: Verdana, sans-serif; font-size: 11px; fill: #000} '
           'rect:hover {stroke: #000; stroke-width: 0.5}</style>',
           '<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f0"/>' % (width, height),
           '<text x="%d" y="24" text-anchor="middle" style="font-size: 16px">%s</text>'
           % (width / 2, html.escape(title)),
           '<text x="%d" y="%d">%d samples; width = share of samples, root at the bottom</text>'
           % (pad_x, height - 10, total)]
    for name, x, depth, n in rects:
        w = n * scale
        if w < 0.3:
            continue
        y = height - 30 - (depth + 1) * frame_h
        label = html.escape(name)
        out.append('<g><title>%s (%d samples, %.2f%%)</title><rect x="%.1f" y="%d" width="%.1f" height="%d" '
                   'fill="%s" rx="2"/>' % (label, n, 100.0 * n / total, pad_x + x * scale, y, w, frame_h - 1,
                                           "rgb(230,230,230)" if depth == 0 else color(name)))
        chars = int((w - 6) / 6.5)
        if chars >= 3:
            text = name if len(name) <= chars else name[:chars - 2] + ".."
            out.append('<text x="%.1f" y="%d">%s</text>' % (pad_x + x * scale + 3, y + frame_h - 4, html.escape(text)))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--title", default="flame graph")
    ap.add_argument("--folded", help="also write the folded stacks here")
    a = ap.parse_args()
    stacks = fold(sys.stdin)
    if not stacks:
        sys.exit("flamegraph: no samples on stdin")
    if a.folded:
        with open(a.folded, "w") as f:
            for stack, n in sorted(stacks.items()):
                f.write("%s %d\n" % (stack, n))
    sys.stdout.write(svg(stacks, a.title))


if __name__ == "__main__":
    main()
