"""The corral under test: its config (rendered from the soak's model), the supervisor process,
corralctl, and the supervisor's log (death lines of the proxy)."""
import datetime
import json
import os
import re
import signal
import subprocess
import time

SOAK_DIR = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(SOAK_DIR, "apps")


def q(s):
    """A TOML basic string."""
    return json.dumps(s)


class Corral:
    def __init__(self, build, run_dir):
        self.bin = os.path.join(os.path.abspath(build), "bin")
        self.run_dir = run_dir
        self.runtime_dir = os.path.join(run_dir, "r")
        self.config_path = os.path.join(run_dir, "corral.toml")
        self.log_path = os.path.join(run_dir, "corral.log")
        self.access_log = os.path.join(run_dir, "access.log")
        self.proc = None
        self._log = None

    # ---- config --------------------------------------------------------------------------

    def render(self, m):
        """The TOML for model state m (a dict, see chaos.Model.config_state())."""
        t = ["[supervisor]", "runtime_dir = " + q(self.runtime_dir), 'log_level = "info"',
             'graceful_timeout = "10s"', "",
             "[proxy]", "threads = 2", 'admin = "127.0.0.1:0"', "access_log = " + q(self.access_log),
             'max_body_size = "16MiB"', "client_body_buffer_size = " + q(m["body_buffer"]),
             "keepalive_timeout = " + q(m["keepalive_timeout"]), "",
             "[[listener]]", 'address = "127.0.0.1:0"', "",
             "[[listener]]", 'address = "127.0.0.1:0"',
             "tls = { cert = %s, key = %s }" % (q(self.run_dir + "/cert.pem"), q(self.run_dir + "/key.pem")), ""]
        t += ["[[route]]", 'path = "/alias/"', "app = " + q(m["alias"]), ""]
        for name in m["apps"]:
            t += ["[[route]]", "path = " + q("/%s/" % name), "app = " + q(name), ""]
        for name, a in m["apps"].items():
            t += ["[app.%s]" % name, "kind = " + q(a["kind"]), "workers = %d" % a["workers"],
                  "concurrency = %d" % a["concurrency"], "timeout = " + q(a["timeout"]),
                  'boot_timeout = "20s"', 'graceful_timeout = "10s"']
            env = {"WHOAMI": a["whoami"], "CORRAL_ITEST_RUN": self.run_dir}
            if a["kind"] == "http":
                t.append("command = [%s]" % q(os.path.join(self.bin, "corral-testapp")))
            elif a["kind"] == "fastcgi":
                t += ['command = ["/usr/bin/php-cgi"]', "root = " + q(APPS + "/php")]
                env["PHP_FCGI_MAX_REQUESTS"] = "0"  # recycling is max_requests' job
            elif a["kind"] == "cgi":
                t.append("root = " + q(APPS + "/cgi"))
            else:
                env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
                t += ['module = "soak_app:app"', "python_path = [%s]" % q(APPS + "/wsgi"),
                      "worker_class = " + q(a["worker_class"])]
            if a.get("max_requests"):
                t += ["max_requests = %d" % a["max_requests"], "max_requests_jitter = %d" % (a["max_requests"] // 4)]
            t.append("env = { %s }" % ", ".join("%s = %s" % (k, q(v)) for k, v in env.items()))
            t.append("")
        return "\n".join(t)

    def write_config(self, m):
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.render(m))
        os.replace(tmp, self.config_path)

    # ---- process -------------------------------------------------------------------------

    def start(self):
        self._log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen([os.path.join(self.bin, "corral-supervisor"), "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True, env=env)

    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30):
        """TERM, then the exit code (None: still running after timeout; then the group is killed)."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None

    def kill_group(self):
        if self.running():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    # ---- corralctl -----------------------------------------------------------------------

    def ctl(self, *args, timeout=60):
        r = subprocess.run([os.path.join(self.bin, "corralctl"), "--socket", self.runtime_dir + "/control.sock"] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def status(self):
        """The status JSON, or None when the supervisor does not answer."""
        try:
            code, out, _ = self.ctl("status", "--json", timeout=20)
        except subprocess.TimeoutExpired:
            return None
        if code != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def wait_ready(self, want_apps, timeout=60):
        """Waits until the proxy is ready and every app of want_apps {name: workers} has that
        many ready workers; returns the status (raises on timeout)."""
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            if not self.running():
                raise RuntimeError("corral-supervisor exited with %s; see %s" % (self.proc.returncode, self.log_path))
            st = self.status()
            if st and st.get("proxy", {}).get("ready") and settled(st, want_apps):
                return st
            time.sleep(0.2)
        raise RuntimeError("corral not ready within %ds: %s" % (timeout, json.dumps(st)[:2000]))

    # ---- the supervisor's log -------------------------------------------------------------

    def proxy_deaths(self):
        """[(epoch seconds, pid, line)] of every 'PROXY DIED' line of the supervisor's log."""
        out = []
        with open(self.log_path, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace")
                if "PROXY DIED" not in line:
                    continue
                m = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z", line)
                p = re.search(r"PROXY DIED: pid (\d+)", line)
                if not m or not p:
                    continue
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                out.append((t, int(p.group(1)), line.strip()))
        return out

    def log_lines_with(self, needle):
        with open(self.log_path, "rb") as f:
            return [l.decode("utf-8", "replace").rstrip() for l in f if needle.encode() in l]


def settled(st, want_apps):
    """Every app of want_apps {name: workers} has exactly that many workers, all ready, of the
    app's newest generation, none retiring; no other app is listed; not reloading."""
    if st.get("reloading"):
        return False
    apps = {a["name"]: a for a in st.get("apps", [])}
    if set(apps) != set(want_apps):
        return False
    for name, n in want_apps.items():
        a = apps[name]
        if a.get("removed") or len(a["workers"]) != n:
            return False
        for w in a["workers"]:
            if w.get("state") != "ready" or w.get("retiring") or w.get("pid", 0) <= 0:
                return False
            if w.get("generation") != a.get("generation"):
                return False
    return True


def make_cert(run_dir):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", run_dir + "/key.pem", "-out",
                    run_dir + "/cert.pem"], check=True, capture_output=True)
