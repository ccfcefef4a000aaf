"""The chaos loop (reloads with real config changes, SIGKILLed workers, one killed proxy, a
changed worker count) and the monitor (status every second: death records; /proc figures of
every daemon every 5 s)."""
import copy
import os
import random
import signal
import subprocess
import threading
import time

from corral_run import settled


class Model:
    """The config the soak runs, changed by each reload; and the worker counts set at run time."""

    def __init__(self):
        self.state = {
            "body_buffer": "64KiB",
            "keepalive_timeout": "75s",
            "alias": "web",
            "apps": {
                "web": {"kind": "http", "workers": 2, "concurrency": 4, "timeout": "30s", "whoami": "web:0",
                        "max_requests": 400},
                "fcgi": {"kind": "fastcgi", "workers": 2, "concurrency": 1, "timeout": "30s", "whoami": "fcgi:0"},
                "cgi": {"kind": "cgi", "workers": 2, "concurrency": 4, "timeout": "30s", "whoami": "cgi:0"},
                "py": {"kind": "wsgi", "workers": 2, "concurrency": 2, "timeout": "30s", "whoami": "py:0",
                       "worker_class": "gthread"},
            },
        }
        self.scaled = {}  # app -> workers set with corralctl scale (kept until the file changes workers)
        self.max_concurrency = {n: a["concurrency"] for n, a in self.state["apps"].items()}
        self.max_concurrency["extra"] = 1

    def want(self):
        return {n: self.scaled.get(n, a["workers"]) for n, a in self.state["apps"].items()}


def proc_figures(pid):
    """(fds, threads, rss KiB) of a process, or None when it is gone."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        threads = rss = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return fds, threads, rss
    except (OSError, ValueError):
        return None


STALL_S = 8.0


def capture_stacks(pid, path):
    """What a process is doing: its kernel stack, wchan and syscall, and gdb's backtrace of
    every thread."""
    with open(path, "w") as f:
        for name in ("wchan", "syscall", "stack", "status"):
            try:
                with open("/proc/%d/%s" % (pid, name)) as p:
                    f.write("== /proc/%d/%s\n%s\n" % (pid, name, p.read()))
            except OSError as e:
                f.write("== /proc/%d/%s: %s\n" % (pid, name, e))
        f.flush()
        try:
            r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=60)
            f.write("== gdb\n" + r.stdout + r.stderr)
        except (OSError, subprocess.TimeoutExpired) as e:
            f.write("== gdb: %s\n" % e)


def fd_breakdown(pid, run_dir):
    """What a process's fds are, counted: "tcp", "unix -> web-0.sock" (a connection to a
    worker slot's socket, by the peer's path), "unix", "pipe", "anon_inode:[eventfd]", a file
    path (the run directory abbreviated to ~)."""
    try:
        links = [os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)]
    except OSError:
        return {}
    unix = {}  # inode -> (local path, peer inode)
    try:
        out = subprocess.run(["ss", "-xan"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
            unix[f[5]] = (f[4], f[7])
    tcp = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as t:
                tcp |= {l.split()[9] for l in list(t)[1:]}
        except OSError:
            pass
    counts = {}
    for l in links:
        if l.startswith("socket:["):
            inode = l[8:-1]
            if inode in tcp:
                what = "tcp"
            elif inode in unix:
                local, peer = unix[inode]
                peer_path = unix.get(peer, ("*", ""))[0]
                if local != "*":
                    what = "unix " + local.replace(run_dir, "~")
                elif peer == "0" or peer not in unix:
                    what = "unix (peer closed)"
                elif peer_path != "*":
                    what = "unix -> " + os.path.basename(peer_path)
                else:
                    what = "unix"
            else:
                what = "socket"
        elif l.startswith("pipe:"):
            what = "pipe"
        else:
            what = l.replace(run_dir, "~")
        counts[what] = counts.get(what, 0) + 1
    return counts


class Monitor(threading.Thread):
    """Polls the status every second: keeps every death record seen (recent_deaths holds the
    last 20 per app) and samples every daemon's fds, threads and RSS every 5 s."""

    def __init__(self, corral, t0):
        super().__init__(daemon=True)
        self.corral = corral
        self.t0 = t0
        self.mu = threading.Lock()
        self.deaths = {}    # (app, pid, incarnation, time_ms) -> record (+ "app")
        self.samples = []   # (t, {daemon: (pid, fds, threads, rss)})
        self.last_status = None
        self.status_failures = 0
        self.answered_at = time.time()
        self.stalls = []    # [start, seconds, stacks file]
        self.stop = threading.Event()

    def merge(self, st):
        with self.mu:
            self.last_status = st
            for a in st.get("apps", []):
                for d in a.get("recent_deaths", []):
                    key = (a["name"], d["pid"], d.get("incarnation"), d["time_ms"])
                    old = self.deaths.get(key)
                    if old is None or (old.get("in_flight_requests") is None and d.get("in_flight_requests") is not None):
                        self.deaths[key] = dict(d, app=a["name"])

    def sample(self, st):
        daemons = {"supervisor": (self.corral.pid(), time.time() - self.t0)}
        if st.get("proxy", {}).get("pid"):
            daemons["proxy"] = (st["proxy"]["pid"], 0)
        # Workers by app and rank: a new generation's worker ids differ from the old ones',
        # "web[0]" is the first worker of web whatever its id.
        for a in st.get("apps", []):
            live = sorted((w for w in a["workers"] if w.get("pid", 0) > 0 and not w.get("retiring")),
                          key=lambda w: w["id"])
            for rank, w in enumerate(live):
                daemons["%s[%d]" % (a["name"], rank)] = (w["pid"], w.get("uptime_seconds", 0))
        out = {}
        for name, (pid, uptime) in daemons.items():
            f = proc_figures(pid)
            if f:
                out[name] = (pid,) + f + (uptime,)
        with self.mu:
            self.samples.append((time.time(), out))

    def poll(self):
        st = self.corral.status()
        if st is None:
            self.status_failures += 1
            return None
        with self.mu:
            self.answered_at = time.time()
        self.merge(st)
        return st

    def watch_stalls(self):
        """A supervisor that does not answer its control socket for STALL_S is stalled: its
        stacks (gdb, /proc) go to stall-N.txt in the run directory, once per stall."""
        in_stall = False
        while not self.stop.wait(1.0):
            with self.mu:
                quiet = time.time() - self.answered_at
            if quiet < STALL_S:
                if in_stall:
                    self.stalls[-1][1] = time.time() - self.stalls[-1][0]
                in_stall = False
                continue
            if in_stall:
                self.stalls[-1][1] = quiet
                continue
            in_stall = True
            path = os.path.join(self.corral.run_dir, "stall-%d.txt" % (len(self.stalls) + 1))
            self.stalls.append([time.time() - quiet, quiet, path])
            capture_stacks(self.corral.pid(), path)
            print("[soak] %6.1fs the supervisor has not answered for %.0f s; stacks in %s" % (
                time.time() - self.t0, quiet, path), flush=True)

    def run(self):
        threading.Thread(target=self.watch_stalls, daemon=True).start()
        next_sample = 0
        while not self.stop.is_set():
            st = self.poll()
            if st and time.time() >= next_sample:
                self.sample(st)
                next_sample = time.time() + 5
            self.stop.wait(1.0)

    def status(self):
        with self.mu:
            return self.last_status


class Chaos(threading.Thread):
    """The schedule, relative to t0 over `duration` seconds:
      - a reload every 30 s, each with real changes (a new generation of one app, the /alias/
        route moved, the /extra/ app added or removed, proxy and app settings);
      - two worker SIGKILLs every 30 s, at random moments, of a random ready worker;
      - the proxy SIGKILLed once, at min(45 s, 3/8 of the run) (before the baseline figures);
      - py scaled to 3 workers at 40 % of the run and back to 2 at 70 %;
      - nothing in the last 20 s (the end figures are taken then)."""

    def __init__(self, corral, model, live, monitor, t0, duration, seed):
        super().__init__(daemon=True)
        self.corral, self.model, self.live, self.monitor = corral, model, live, monitor
        self.t0, self.duration = t0, duration
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.events = []    # (t, what)
        self.problems = []  # what went wrong in the chaos itself (a rejected reload, ...)
        self.kills = []     # (t, app, worker id, pid)
        self.proxy_kills = []  # (t, pid)
        self.reloads = 0

    def log(self, what):
        t = time.time()
        self.events.append((t, what))
        print("[soak] %6.1fs %s" % (t - self.t0, what), flush=True)

    def schedule(self):
        d = self.duration
        quiet = d - 20
        ev = []
        t = 30
        while t < quiet:
            ev.append((t, "reload"))
            t += 30
        for start in range(0, int(quiet), 15):
            at = start + self.rng.uniform(2, 13)
            if at < quiet:
                ev.append((at, "kill-worker"))
        ev.append((min(45.0, 0.375 * d), "kill-proxy"))
        ev.append((0.4 * d + 7, "scale-up"))
        ev.append((0.7 * d + 7, "scale-down"))
        return sorted(e for e in ev if e[0] < quiet)

    def run(self):
        for at, what in self.schedule():
            if self.stop.wait(max(0.0, self.t0 + at - time.time())):
                return
            try:
                getattr(self, what.replace("-", "_"))()
            except Exception as e:
                self.problems.append("%s: %r" % (what, e))
                self.log("%s failed: %r" % (what, e))

    # ---- the events ------------------------------------------------------------------------

    def reload(self):
        self.reloads += 1
        k = self.reloads
        st = copy.deepcopy(self.model.state)
        apps = st["apps"]
        changes = []
        t_issue = time.time()
        bumped = ["web", "fcgi", "cgi"][k % 3]
        apps[bumped]["whoami"] = "%s:%d" % (bumped, k)
        changes.append("new generation of " + bumped)
        if k % 2 == 1:
            st["alias"] = "py" if st["alias"] == "web" else "web"
            changes.append("/alias/ -> " + st["alias"])
        if k % 4 == 1:
            apps["extra"] = {"kind": "wsgi", "workers": 1, "concurrency": 1, "timeout": "30s",
                             "whoami": "extra:%d" % k, "worker_class": "sync"}
            changes.append("app extra added")
        elif k % 4 == 3 and "extra" in apps:
            del apps["extra"]
            changes.append("app extra removed")
        if k % 3 == 0:
            st["body_buffer"] = "128KiB" if st["body_buffer"] == "64KiB" else "64KiB"
            st["keepalive_timeout"] = "60s" if st["keepalive_timeout"] == "75s" else "75s"
            apps["web"]["concurrency"] = 3 if apps["web"]["concurrency"] == 4 else 4
            apps["cgi"]["timeout"] = "20s" if apps["cgi"]["timeout"] == "30s" else "30s"
            changes.append("client_body_buffer_size, keepalive_timeout, web concurrency, cgi timeout")
        # The model first: a new answer may come as soon as the file is read.
        self.live.set_app(bumped, apps[bumped]["whoami"], t_issue)
        self.live.set_route("/alias/", st["alias"], t_issue)
        if "extra" in apps and "extra" not in self.model.state["apps"]:
            self.live.add_app("extra", "wsgi", apps["extra"]["whoami"], t_issue)
            self.live.set_route("/extra/", "extra", t_issue)
        if "extra" not in apps and "extra" in self.model.state["apps"]:
            self.live.set_route("/extra/", None, t_issue)
        self.model.state = st
        self.corral.write_config(st)
        code, out, err = self.corral.ctl("reload", timeout=90)
        t_applied = time.time()
        if code == 3:
            self.log("reload %d: applied, but corralctl's wait ended before the new workers were ready" % k)
        elif code != 0:
            self.problems.append("reload %d rejected: %s %s" % (k, out.strip(), err.strip()))
            self.log("reload %d FAILED: %s %s" % (k, out.strip(), err.strip()))
            return
        t_settled = self.wait_settled()
        if t_settled is None:
            self.problems.append("reload %d: never settled within 60 s" % k)
            return
        self.live.settle(t_settled)
        self.log("reload %d (%s): applied in %.1fs, settled in %.1fs" % (
            k, "; ".join(changes), t_applied - t_issue, t_settled - t_issue))

    def wait_settled(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline and not self.stop.is_set():
            st = self.corral.status()
            if st:
                self.monitor.merge(st)
                if settled(st, self.model.want()):
                    return time.time()
            time.sleep(0.2)
        return None

    def kill_worker(self):
        st = self.monitor.status()
        if not st:
            return
        ready = [(a["name"], w["id"], w["pid"]) for a in st["apps"] for w in a["workers"]
                 if w.get("state") == "ready" and w.get("pid", 0) > 0 and not w.get("retiring")]
        if not ready:
            return
        app, wid, pid = self.rng.choice(ready)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills.append((time.time(), app, wid, pid))
        self.log("SIGKILL worker %s#%d pid %d" % (app, wid, pid))

    def kill_proxy(self):
        st = self.monitor.status()
        pid = st.get("proxy", {}).get("pid", 0) if st else 0
        if pid <= 0:
            self.problems.append("no proxy to kill")
            return
        os.kill(pid, signal.SIGKILL)
        t = time.time()
        self.proxy_kills.append((t, pid))
        self.log("SIGKILL proxy pid %d" % pid)
        deadline = t + 30
        while time.time() < deadline:
            s = self.corral.status()
            if s and s.get("proxy", {}).get("pid", 0) not in (0, pid) and s["proxy"].get("ready"):
                self.log("proxy replaced by pid %d in %.1fs" % (s["proxy"]["pid"], time.time() - t))
                return
            time.sleep(0.1)
        self.problems.append("the proxy was not replaced within 30 s")

    def scale(self, n):
        code, out, err = self.corral.ctl("scale", "py", str(n))
        if code != 0:
            self.problems.append("scale py %d: %s %s" % (n, out, err))
            return
        self.model.scaled["py"] = n
        t = time.time()
        ok = self.wait_settled()
        self.log("scale py -> %d: settled in %s" % (n, "%.1fs" % (ok - t) if ok else "never"))
        if ok is None:
            self.problems.append("scale py %d never settled" % n)

    def scale_up(self):
        self.scale(3)

    def scale_down(self):
        self.scale(2)
