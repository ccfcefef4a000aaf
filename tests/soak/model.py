"""What is live: the history of every app's generation ($WHOAMI) and of every route's target,
with the time each value became possible and the time it stopped being possible. The
clients check every answer against it."""
import threading

# The path that answers the soak endpoint under an app's route, by kind.
ENDPOINT = {"http": "soak", "wsgi": "soak", "cgi": "soak.pl", "fastcgi": "soak.php"}


class History:
    """Values over time. A value is possible from when the change that brought it was issued
    (the config file written) until the change that replaced it had fully settled (every
    worker of the old value gone from the status), or forever if it is the newest."""

    def __init__(self, value, t):
        self.entries = [[value, t, None]]  # value, possible from, possible until

    def change(self, value, t_issued):
        self.entries.append([value, t_issued, None])

    def settle(self, t_settled):
        """Every value but the newest stops being possible at t_settled."""
        for e in self.entries[:-1]:
            if e[2] is None:
                e[2] = t_settled

    def possible(self, s, e):
        """The values possible at some moment of [s, e]."""
        return {v for v, frm, until in self.entries if frm <= e and (until is None or until >= s)}

    def current(self):
        return self.entries[-1][0]


class Live:
    """Thread-safe: the chaos loop changes it, every client reads it."""

    def __init__(self):
        self.mu = threading.Lock()
        self.apps = {}    # name -> History of $WHOAMI ("name:version"), None while the app is absent
        self.routes = {}  # path prefix "/name/" -> History of the app name, None while no route
        self.kinds = {}   # name -> kind

    def add_app(self, name, kind, whoami, t):
        with self.mu:
            self.kinds[name] = kind
            if name in self.apps:
                self.apps[name].change(whoami, t)
            else:
                self.apps[name] = History(whoami, t)

    def set_app(self, name, whoami, t):
        with self.mu:
            self.apps[name].change(whoami, t)

    def set_route(self, prefix, app, t):
        with self.mu:
            if prefix in self.routes:
                self.routes[prefix].change(app, t)
            else:
                self.routes[prefix] = History(app, t)

    def settle(self, t):
        with self.mu:
            for h in list(self.apps.values()) + list(self.routes.values()):
                h.settle(t)

    def targets(self):
        """[(prefix, app, path)] of the routes that are live now (what a client may ask)."""
        with self.mu:
            out = []
            for prefix, h in self.routes.items():
                app = h.current()
                if app is not None:
                    out.append((prefix, app, prefix + ENDPOINT[self.kinds[app]]))
            return out

    def check(self, prefix, s, e, status, whoami):
        """None when status/whoami is a possible answer of route prefix during [s, e], else why not."""
        with self.mu:
            apps = self.routes[prefix].possible(s, e)
            if status == 404:
                return None if None in apps else "404 while %s was routed to %s" % (prefix, sorted(apps, key=str))
            answers = set()
            for a in apps:
                if a is not None:
                    answers |= {w for w in self.apps[a].possible(s, e) if w is not None}
            if whoami in answers:
                return None
            return "answered by %r, possible: %s" % (whoami, sorted(answers))
