#!/usr/bin/python3
"""corral soak and chaos: mixed HTTP/1.1 and HTTP/2 load against four apps of every kind while
a chaos loop reloads, kills workers and the proxy and rescales; then checks that every failed
request is accounted for by a death record, that no answer came from the wrong app or
generation, and that every daemon's fds, threads and RSS stayed flat. See README.md.

usage: soak.py --build BUILD_DIR [--minutes N] [--seed N] [--keep]
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import Chaos, Model, Monitor, fd_breakdown  # noqa: E402
from clients import h1_client, hostile_client  # noqa: E402
from corral_run import Corral, make_cert  # noqa: E402
from h2client import h2_client  # noqa: E402
from model import Live  # noqa: E402
from results import Results  # noqa: E402

# Flatness bounds, baseline (minute 2) to end, on the figures taken while the load pauses
# (every client connection closed): the supervisor's and the proxy's fixed fds (fd_accounting:
# all but the slot sockets, worker pipes and idle upstream connections, which come and go with
# workers and are checked on their own) may grow by at most 2 (a control connection being
# served); threads not at all; RSS by at most 10 % + 2 MiB. A worker's fds and
# threads by at most 2 + 2 x concurrency (the proxy's two threads may each keep up to
# `concurrency` idle connections to it, and a thread-per-connection app has a thread for
# each), its RSS as the proxy's, judged only for a process that lived through both points
# and was up for WARM_S at the first (a young Python worker grows while it warms up). A
# worker replaced in between is judged on fds and threads against its predecessor: a new
# process that starts with more fds inherited something it should not have.
FD_SLACK = {"supervisor": 2, "proxy": 2}
PROXY_THREADS = 2
THREAD_SLACK = {"supervisor": 0, "proxy": 0}
RSS_GROWTH = 0.10
RSS_SLACK_KIB = 2048
WARM_S = 60
# A death explains a failed request up to this long after the client saw the failure (the
# supervisor reaps and logs a death just after the proxy saw the connection break).
DEATH_LAG = 2.0


class Gate:
    """What the clients look at: stop for good, or pause (close connections, wait)."""

    def __init__(self):
        self._stop = threading.Event()
        self._pause = threading.Event()

    def is_set(self):
        return self._stop.is_set()

    def set(self):
        self._stop.set()

    def paused(self):
        return self._pause.is_set()

    def pause(self, on):
        (self._pause.set if on else self._pause.clear)()


def start_load(ports, live, results, gate, seed):
    h1, tls = ports
    spec = [
        # (function, kind, port, tls, extra args)
        (h1_client, ("h1-keepalive", h1, False, True, False, False), 0.02),
        (h1_client, ("h1-keepalive", h1, False, True, False, False), 0.02),
        (h1_client, ("h1-fresh", h1, False, False, False, False), 0.03),
        (h1_client, ("h1-tls", tls, True, True, False, False), 0.03),
        (h1_client, ("h1-upload", h1, False, True, True, False), 0.05),
        (h1_client, ("h1-slow-reader", h1, False, True, False, True), 0.2),
        (h2_client, ("h2c", h1, False, 4, False), 0.02),
        (h2_client, ("h2-tls", tls, True, 4, False), 0.02),
        (h2_client, ("h2-slow-reader", tls, True, 2, True), 0.2),
    ]
    threads = []
    for i, (fn, args, pause) in enumerate(spec):
        t = threading.Thread(target=fn, args=args + (live, results, gate, seed * 100 + i, pause), daemon=True)
        t.start()
        threads.append(t)
    t = threading.Thread(target=hostile_client, args=(h1, results, gate, seed * 100 + 99, 0.5), daemon=True)
    t.start()
    threads.append(t)
    return threads


def idle_figures(monitor, gate, corral):
    """Pauses the load, waits for the connections to close, samples every daemon, resumes.
    Returns the samples and what the supervisor's and the proxy's fds are."""
    gate.pause(True)
    time.sleep(3)
    st = monitor.poll()
    taken = []
    kinds = {"supervisor": [], "proxy": []}
    # Three looks 0.5 s apart: what is there every time is what the daemon keeps (a control
    # connection being answered, or /proc files read for it, come and go).
    for _ in range(3):
        if st:
            monitor.sample(st)
            taken.append(monitor.samples[-1][1])
            for name in ("supervisor", "proxy"):
                if name in taken[-1]:
                    kinds[name].append(fd_breakdown(taken[-1][name][0], corral.run_dir))
        time.sleep(0.5)
    kinds["slots"] = {}
    for a in (st or {}).get("apps", []):
        for w in a["workers"]:
            if w.get("pid", 0) > 0:
                kinds["slots"][os.path.basename(w["socket"])] = a["name"]
    gate.pause(False)
    return taken, kinds


def fd_accounting(kinds, max_concurrency):
    """From an fd breakdown at an idle point: the supervisor's and the proxy's fixed fds (all
    but what comes and goes with workers: the supervisor's slot sockets and the two output
    pipes per worker; the proxy's idle upstream connections), and what is wrong with the
    proxy's upstream connections (more to a worker than its pools may keep, any to a socket no
    live worker has)."""
    slots = kinds.get("slots", {})

    def sup_fixed(sup):
        slot_sockets = sum(n for k, n in sup.items() if k.startswith("unix ~/r/") and k != "unix ~/r/control.sock")
        return sum(sup.values()) - slot_sockets - 2 * len(slots)

    def pooled_of(prx):
        return {k[len("unix -> "):]: n for k, n in prx.items() if k.startswith("unix -> ")}

    fixed = {}
    if kinds.get("supervisor"):
        fixed["supervisor"] = min(sup_fixed(b) for b in kinds["supervisor"])
    if kinds.get("proxy"):
        fixed["proxy"] = min(sum(b.values()) - sum(pooled_of(b).values()) for b in kinds["proxy"])
    pooled = pooled_of(kinds["proxy"][-1]) if kinds.get("proxy") else {}
    wrong = []
    for sock, n in sorted(pooled.items()):
        app = slots.get(sock)
        if app is None:
            wrong.append("%d upstream connection(s) to %s, which no live worker has" % (n, sock))
        elif n > PROXY_THREADS * max_concurrency.get(app, 1):
            wrong.append("%d upstream connections to %s (%s), more than %d threads x concurrency %d" % (
                n, sock, app, PROXY_THREADS, max_concurrency.get(app, 1)))
    return fixed, wrong


def median_figures(samples):
    """{daemon: (pid, fds, threads, rss, uptime)}: the median of each figure over the samples
    (the pid and uptime of the last one)."""
    out = {}
    for name in set().union(*[s.keys() for s in samples]) if samples else []:
        rows = [s[name] for s in samples if name in s]
        out[name] = ((rows[-1][0],) + tuple(int(statistics.median(r[i] for r in rows)) for i in (1, 2, 3)) +
                     (rows[-1][4],))
    return out


def account(results, live, deaths, proxy_deaths):
    """Matches each failed request with a death. Returns ({rule: n}, [unaccounted Req])."""
    by_trace = {}
    for d in deaths:
        for q in d.get("in_flight_requests") or []:
            if q.get("trace_id"):
                by_trace.setdefault(q["trace_id"], []).append(d)
    counts = {"worker death naming its trace-id": 0, "proxy death while its connection was open": 0,
              "worker death of its app during it (record without its requests)": 0}
    unaccounted = []
    for r in results.failed:
        with live.mu:
            apps = {a for a in live.routes[r.prefix].possible(r.start, r.end) if a}
        if any(d["app"] in apps for d in by_trace.get(r.trace, [])):
            counts["worker death naming its trace-id"] += 1
            continue
        if any(r.conn_opened <= t <= r.end + DEATH_LAG for t, _, _ in proxy_deaths):
            counts["proxy death while its connection was open"] += 1
            continue
        if any(d["app"] in apps and (d.get("in_flight_requests") is None or d.get("in_flight_requests_omitted"))
               and r.start <= d["time_ms"] / 1000.0 <= r.end + DEATH_LAG for d in deaths):
            counts["worker death of its app during it (record without its requests)"] += 1
            continue
        unaccounted.append(r)
    return counts, unaccounted


def flatness(base, end, concurrency, fixed_base, fixed_end):
    """[(daemon, base, end, verdict)] and the number of violations. The supervisor's and the
    proxy's fds are judged on their fixed part."""
    rows, bad = [], 0
    for name in sorted(set(base) | set(end), key=lambda n: (n not in ("supervisor", "proxy"), n)):
        b, e = base.get(name), end.get(name)
        if not b or not e:
            rows.append((name, b, e, "only at %s" % ("minute 2" if b else "the end")))
            continue
        why = []
        notes = []
        if name in FD_SLACK:
            fd_slack, thread_slack, judge_rss = FD_SLACK[name], THREAD_SLACK[name], True
        else:
            fd_slack = thread_slack = 2 + 2 * concurrency.get(name.split("[")[0], 1)
            judge_rss = b[0] == e[0] and b[4] >= WARM_S
            if b[0] != e[0]:
                notes.append("new process")
            elif not judge_rss:
                notes.append("up %.0f s at minute 2: RSS not judged" % b[4])
        if name in fixed_base and name in fixed_end:
            fb, fe = fixed_base[name], fixed_end[name]
            notes.append("fixed fds %d -> %d" % (fb, fe))
            if fe > fb + fd_slack:
                why.append("fixed fds +%d > +%d" % (fe - fb, fd_slack))
        elif e[1] > b[1] + fd_slack:
            why.append("fds +%d > +%d" % (e[1] - b[1], fd_slack))
        if e[2] > b[2] + thread_slack:
            why.append("threads +%d > +%d" % (e[2] - b[2], thread_slack))
        if judge_rss and e[3] > b[3] * (1 + RSS_GROWTH) + RSS_SLACK_KIB:
            why.append("RSS +%.1f%% > %d%% + %d KiB" % (100.0 * (e[3] - b[3]) / b[3], RSS_GROWTH * 100, RSS_SLACK_KIB))
        bad += bool(why)
        verdict = "; ".join(why) if why else "flat"
        rows.append((name, b, e, verdict + (" (%s)" % ", ".join(notes) if notes else "")))
    return rows, bad


def fmt_fig(f):
    return "%7d %4d %3d %8d" % f[:4] if f else "%7s %4s %3s %8s" % ("-", "-", "-", "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SOAK_SEED") or time.time() % 100000))
    ap.add_argument("--keep", action="store_true", help="keep the run directory even when the soak passes")
    args = ap.parse_args()
    duration = args.minutes * 60.0
    if duration < 60:
        sys.exit("soak: at least 1 minute")
    run_dir = tempfile.mkdtemp(prefix="crl-soak-", dir="/tmp")
    print("[soak] %.1f min, seed %d, run dir %s (SOAK_SEED=%d repeats the schedule)" % (
        args.minutes, args.seed, run_dir, args.seed), flush=True)
    make_cert(run_dir)
    corral = Corral(args.build, run_dir)
    model = Model()
    live = Live()
    t_boot = time.time()
    for name, a in model.state["apps"].items():
        live.add_app(name, a["kind"], a["whoami"], t_boot)
        live.set_route("/%s/" % name, name, t_boot)
    live.set_route("/alias/", model.state["alias"], t_boot)
    live.set_route("/extra/", None, t_boot)  # the app comes and goes with reloads
    corral.write_config(model.state)
    corral.start()
    ok = False
    try:
        st = corral.wait_ready(model.want())
        ports = [int(l["bound"].rsplit(":", 1)[1]) for l in st["listeners"]]
        t0 = time.time()
        monitor = Monitor(corral, t0)
        monitor.merge(st)
        monitor.start()
        results = Results()
        gate = Gate()
        threads = start_load(ports, live, results, gate, args.seed)
        chaos = Chaos(corral, model, live, monitor, t0, duration, args.seed)
        chaos.start()

        # Baseline: minute 2 (half the run when shorter), under load and idle.
        base_at = min(120.0, duration / 2)
        time.sleep(max(0.0, t0 + base_at - time.time()))
        with monitor.mu:
            base_load = median_figures([s for t, s in monitor.samples if t >= t0 + base_at - 12])
        base_taken, base_fds = idle_figures(monitor, gate, corral)
        base_idle = median_figures(base_taken)
        print("[soak] %6.1fs baseline figures taken" % (time.time() - t0), flush=True)
        while time.time() < t0 + duration:
            time.sleep(min(30.0, t0 + duration - time.time()))
            print("[soak] %6.1fs %d requests, %d failed, %d wrong" % (
                time.time() - t0, results.total(), results.total("failed"), results.total("wrong")), flush=True)
        chaos.stop.set()
        chaos.join(90)
        with monitor.mu:
            end_load = median_figures([s for t, s in monitor.samples if t >= t0 + duration - 12])
        end_taken, end_fds = idle_figures(monitor, gate, corral)
        end_idle = median_figures(end_taken)
        gate.set()
        for t in threads:
            t.join(60)
        time.sleep(DEATH_LAG + 1)  # the last death records get their requests from the proxy
        monitor.stop.set()
        monitor.join(10)
        monitor.poll()
        deaths = list(monitor.deaths.values())
        proxy_deaths = corral.proxy_deaths()
        elapsed = time.time() - t0
        code = corral.stop()

        # ---- the report ----------------------------------------------------------------
        print("\n== requests (%.0f s) ==" % elapsed)
        print("%-16s %8s %8s %7s %6s %8s" % ("kind", "total", "ok", "failed", "wrong", "refused"))
        for kind in sorted(results.counts):
            c = results.counts[kind]
            print("%-16s %8d %8d %7d %6d %8d" % (kind, sum(c.values()), c["ok"], c["failed"], c["wrong"], c["refused"]))
        total = results.total()
        print("%-16s %8d %8d %7d %6d %8d   (%.1f requests/s)" % (
            "all", total, results.total("ok"), results.total("failed"), results.total("wrong"),
            results.total("refused"), total / elapsed))
        print("hostile cases answered as expected: " + ", ".join("%s %d" % kv for kv in sorted(results.hostile.items())))

        print("\n== chaos ==")
        reasons = {}
        for d in deaths:
            reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
        print("reloads %d, worker SIGKILLs %d, proxy SIGKILLs %d, death records %d (%s), proxy deaths logged %d" % (
            chaos.reloads, len(chaos.kills), len(chaos.proxy_kills), len(deaths),
            ", ".join("%s %d" % kv for kv in sorted(reasons.items())), len(proxy_deaths)))
        for start, secs, path in monitor.stalls:
            chaos.problems.append("the supervisor did not answer its control socket for %.0f s from %.1f s on "
                                  "(stacks: %s)" % (secs, start - t0, path))
        for p in chaos.problems:
            print("CHAOS PROBLEM: " + p)

        print("\n== failed requests and their accounting ==")
        counts, unaccounted = account(results, live, deaths, proxy_deaths)
        print("%d failed" % len(results.failed))
        for rule, n in counts.items():
            print("  %5d  by a %s" % (n, rule))
        print("  %5d  UNACCOUNTED" % len(unaccounted))
        for r in unaccounted[:50]:
            print("    " + r.describe())
        if results.wrong:
            print("\n== WRONG ANSWERS: %d ==" % len(results.wrong))
            for r in results.wrong[:50]:
                print("    " + r.describe())
        if results.hostile_bad:
            print("\n== HOSTILE CASES ANSWERED WRONGLY: %d ==" % len(results.hostile_bad))
            for case, got in results.hostile_bad[:30]:
                print("    %s: %s" % (case, got))

        print("\n== figures: pid, fds, threads, RSS KiB at %.0f s and at the end ==" % base_at)
        print("bounds (idle figures): fixed fds +2 supervisor and proxy, +2+2*concurrency a worker; threads +0 supervisor "
              "and proxy, +2+2*concurrency a worker; RSS +%d%% + %d KiB (a worker: the same process, up %d s at "
              "minute 2)" % (RSS_GROWTH * 100, RSS_SLACK_KIB, WARM_S))
        fixed_base, wrong_base = fd_accounting(base_fds, model.max_concurrency)
        fixed_end, wrong_end = fd_accounting(end_fds, model.max_concurrency)
        for title, b, e, judged in (("under load (median of the samples of the last 12 s)", base_load, end_load, False),
                                    ("idle (load paused 3 s, median of 3 samples)", base_idle, end_idle, True)):
            print("-- %s" % title)
            print("%-14s %-27s   %-27s %s" % ("daemon", "   pid  fds thr   rss", "   pid  fds thr   rss", ""))
            rows, bad = flatness(b, e, {n: a["concurrency"] for n, a in model.state["apps"].items()},
                                 fixed_base if judged else {}, fixed_end if judged else {})
            for name, fb, fe, verdict in rows:
                print("%-14s %s -> %s  %s" % (name, fmt_fig(fb), fmt_fig(fe), verdict if judged else ""))
            if judged:
                leaks = bad
        print("-- what the fds are (idle), at %.0f s -> at the end" % base_at)
        for name in ("supervisor", "proxy"):
            b, e = (base_fds.get(name) or [{}])[-1], (end_fds.get(name) or [{}])[-1]
            print("%s: %s" % (name, ", ".join("%s %d->%d" % (k, b.get(k, 0), e.get(k, 0)) for k in sorted(set(b) | set(e)))))
        for w in wrong_base + wrong_end:
            print("UPSTREAM CONNECTIONS: " + w)
        leaks += len(wrong_base) + len(wrong_end)
        print("\nsupervisor exit code on TERM: %s" % code)
        ok = (not unaccounted and not results.wrong and not results.hostile_bad and not chaos.problems
              and leaks == 0 and code == 0 and results.total("ok") > 0)
        print("\nSOAK %s: %d requests, %d failed (%d unaccounted), %d wrong, %d hostile answered wrongly, "
              "%d daemons not flat, %d chaos problems" % (
                  "PASSED" if ok else "FAILED", total, len(results.failed), len(unaccounted), len(results.wrong),
                  len(results.hostile_bad), leaks, len(chaos.problems)))
    finally:
        corral.kill_group()
        if ok and not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            print("[soak] logs kept in %s (corral.log, access.log)" % run_dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
