#include "supervisor/reload_plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/base/strings.h"
#include "common/base/units.h"

namespace corral::supervisor {
namespace {

template <typename T>
void note(std::vector<std::string>& out, const char* name, const T& a, const T& b) {
  if (!(a == b)) out.push_back(std::string(name) + " changed");
}

// "timeout 30s -> 1m": durations say their values (they are no secrets).
void note(std::vector<std::string>& out, const char* name, Millis a, Millis b) {
  if (a != b) out.push_back(std::string(name) + " " + format_duration(a) + " -> " + format_duration(b));
}

// "workers 2 -> 3" for counts, where the numbers say more than "changed".
void note_count(std::vector<std::string>& out, const char* name, uint64_t a, uint64_t b) {
  if (a != b) out.push_back(std::string(name) + " " + std::to_string(a) + " -> " + std::to_string(b));
}

// The names of the variables that differ ("env changed (A, B)"), values left out: they
// may be secrets.
std::string env_change(const conf::App& a, const conf::App& b) {
  return "env changed (" + join(env_keys_changed(a, b), ", ") + ")";
}

// The settings of an app that running workers pick up without a restart (applied by the
// supervisor or the proxy). Everything else is process-level.
bool kind_takes_hosted_settings(const conf::App& a) { return a.kind == conf::AppKind::Cgi || a.kind == conf::AppKind::Wsgi; }

conf::App with_soft_fields_of(const conf::App& from, conf::App x) {
  x.workers = from.workers;
  x.workers_auto = from.workers_auto;
  x.queue_size = from.queue_size;
  x.queue_timeout = from.queue_timeout;
  x.max_tunnels = from.max_tunnels;
  x.tunnel_idle_timeout = from.tunnel_idle_timeout;
  x.graceful_timeout = from.graceful_timeout;
  x.kill_timeout = from.kill_timeout;
  x.max_requests = from.max_requests;
  x.max_requests_jitter = from.max_requests_jitter;
  x.max_rss = from.max_rss;
  x.health_path = from.health_path;
  x.boot_timeout = from.boot_timeout;
  x.request_buffering = from.request_buffering;
  x.upgrade = from.upgrade;
  if (from.kind == x.kind && !kind_takes_hosted_settings(from)) {
    // corral-worker gets these on its command line; other apps never see them.
    x.concurrency = from.concurrency;
    x.timeout = from.timeout;
  }
  // A FastCGI app's index script is picked by the proxy (it names SCRIPT_FILENAME); a cgi
  // app's by corral-worker (process-level).
  if (from.kind == x.kind && from.kind == conf::AppKind::Fastcgi) x.index = from.index;
  return x;
}

std::vector<std::string> soft_changes(const conf::App& a, const conf::App& b) {
  std::vector<std::string> out;
  note_count(out, "workers", static_cast<uint64_t>(a.workers), static_cast<uint64_t>(b.workers));
  if (a.workers == b.workers) note(out, "workers (auto)", a.workers_auto, b.workers_auto);
  if (a.kind != b.kind || !kind_takes_hosted_settings(a)) {  // else process-level: process_changes()
    note_count(out, "concurrency", static_cast<uint64_t>(a.concurrency), static_cast<uint64_t>(b.concurrency));
    note(out, "timeout", a.timeout, b.timeout);
  }
  note_count(out, "queue_size", a.queue_size, b.queue_size);
  note(out, "queue_timeout", a.queue_timeout, b.queue_timeout);
  note_count(out, "max_tunnels", a.max_tunnels, b.max_tunnels);
  note(out, "tunnel_idle_timeout", a.tunnel_idle_timeout, b.tunnel_idle_timeout);
  note(out, "graceful_timeout", a.graceful_timeout, b.graceful_timeout);
  note(out, "kill_timeout", a.kill_timeout, b.kill_timeout);
  note_count(out, "max_requests", a.max_requests, b.max_requests);
  note_count(out, "max_requests_jitter", a.max_requests_jitter, b.max_requests_jitter);
  note(out, "max_rss", a.max_rss, b.max_rss);
  note(out, "health_path", a.health_path, b.health_path);
  note(out, "boot_timeout", a.boot_timeout, b.boot_timeout);
  note(out, "request_buffering", a.request_buffering, b.request_buffering);
  note(out, "upgrade", a.upgrade, b.upgrade);
  if (a.kind == b.kind && a.kind == conf::AppKind::Fastcgi) note(out, "index", a.index, b.index);
  return out;
}

std::string route_text(const conf::Route& r) {
  std::string out;
  if (!r.host.empty()) out += "host " + r.host + " ";
  if (!r.static_root.empty()) {
    out += "path " + r.path + " -> static " + r.static_root;
    if (!r.fallback.empty()) out += " (fallback app " + r.fallback + ")";
    return out;
  }
  out += "path " + r.path + " -> app " + r.app;
  // Compression is the proxy's (applied with the new snapshot, workers kept).
  if (!r.compress.empty()) {
    out += " (compress";
    for (auto& e : r.compress) out += " " + e;
    out += ")";
  }
  return out;
}

// What differs between two routes that differ only in their compression settings.
std::string compress_change(const conf::Route& a, const conf::Route& b) {
  std::vector<std::string> out;
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& e : v) s += (s.empty() ? "" : ",") + e;
    return s.empty() ? std::string("off") : s;
  };
  if (a.compress != b.compress) out.push_back("compress " + list(a.compress) + " -> " + list(b.compress));
  note(out, "compress_min_size", a.compress_min_size, b.compress_min_size);
  note(out, "compress_types", a.compress_types, b.compress_types);
  note_count(out, "gzip_level", static_cast<uint64_t>(a.gzip_level), static_cast<uint64_t>(b.gzip_level));
  note_count(out, "brotli_level", static_cast<uint64_t>(a.brotli_level), static_cast<uint64_t>(b.brotli_level));
  std::string s;
  for (auto& x : out) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The route's compression settings (the ones compress_change() names) taken from `from`.
conf::Route with_compress_of(const conf::Route& from, conf::Route x) {
  x.compress = from.compress;
  x.compress_min_size = from.compress_min_size;
  x.compress_types = from.compress_types;
  x.gzip_level = from.gzip_level;
  x.brotli_level = from.brotli_level;
  return x;
}

// Everything but compression is equal, so a route field added later counts as a change of
// target unless it is listed in with_compress_of().
bool same_route_target(const conf::Route& a, const conf::Route& b) { return with_compress_of(b, a) == b; }

// Which certificate or key changed, and how: another file, or the same file with other
// contents (a renewed certificate). Certificates are matched by position: the first is the
// default, the others are chosen by SNI.
void tls_changes(std::vector<std::string>& out, const std::vector<conf::TlsCert>& a, const std::vector<conf::TlsCert>& b) {
  if (a.empty() != b.empty()) {
    out.push_back(b.empty() ? "tls removed (plaintext now)" : "tls added");
    return;
  }
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (i >= a.size()) {
      out.push_back("tls certificate added (" + b[i].cert + ")");
    } else if (i >= b.size()) {
      out.push_back("tls certificate removed (" + a[i].cert + ")");
    } else {
      if (a[i].cert != b[i].cert) out.push_back("tls certificate " + a[i].cert + " -> " + b[i].cert);
      else if (a[i].cert_pem != b[i].cert_pem) out.push_back("tls certificate " + b[i].cert + " contents changed");
      if (a[i].key != b[i].key) out.push_back("tls key " + a[i].key + " -> " + b[i].key);
      else if (a[i].key_pem != b[i].key_pem) out.push_back("tls key " + b[i].key + " contents changed");
    }
  }
}

std::vector<std::string> listener_changes(const conf::Listener& a, const conf::Listener& b) {
  std::vector<std::string> out;
  tls_changes(out, a.tls, b.tls);
  note(out, "tls_profile", a.tls_profile, b.tls_profile);
  note(out, "h2", a.h2, b.h2);
  note(out, "redirect_https", a.redirect_https, b.redirect_https);
  note(out, "hsts", a.hsts, b.hsts);
  note_count(out, "max_connections", a.max_connections, b.max_connections);
  note_count(out, "max_connections_per_client", a.max_connections_per_client, b.max_connections_per_client);
  note(out, "proxy_protocol", a.proxy_protocol, b.proxy_protocol);
  note(out, "proxy_protocol_trusted", a.proxy_protocol_trusted, b.proxy_protocol_trusted);
  return out;
}

std::vector<std::string> proxy_changes(const conf::ProxySettings& a, const conf::ProxySettings& b) {
  std::vector<std::string> out;
  note(out, "proxy.admin", a.admin, b.admin);
  note(out, "proxy.access_log", a.access_log, b.access_log);
  note(out, "proxy.access_log_format", a.access_log_format, b.access_log_format);
  note(out, "proxy.max_body_size", a.max_body_size, b.max_body_size);
  note(out, "proxy.max_header_size", a.max_header_size, b.max_header_size);
  note(out, "proxy.max_header_count", a.max_header_count, b.max_header_count);
  note(out, "proxy.client_header_timeout", a.client_header_timeout, b.client_header_timeout);
  note(out, "proxy.tls_handshake_timeout", a.tls_handshake_timeout, b.tls_handshake_timeout);
  note(out, "proxy.client_body_timeout", a.client_body_timeout, b.client_body_timeout);
  note(out, "proxy.client_body_min_rate", a.client_body_min_rate, b.client_body_min_rate);
  note(out, "proxy.keepalive_timeout", a.keepalive_timeout, b.keepalive_timeout);
  note(out, "proxy.h2_max_concurrent_streams", a.h2_max_concurrent_streams, b.h2_max_concurrent_streams);
  note(out, "proxy.h2_reset_rate", a.h2_reset_rate, b.h2_reset_rate);
  note(out, "proxy.h2_flood_rate", a.h2_flood_rate, b.h2_flood_rate);
  note(out, "proxy.client_body_buffer_size", a.client_body_buffer_size, b.client_body_buffer_size);
  note(out, "proxy.temp_dir", a.temp_dir, b.temp_dir);
  note(out, "proxy.trusted_proxies", a.trusted_proxies, b.trusted_proxies);
  conf::ProxySettings x = b;
  x.threads = a.threads;
  if (out.empty() && !(x == a)) out.push_back("proxy settings changed");
  return out;
}
}  // namespace

const char* action_name(AppDiff::Action a) {
  switch (a) {
    case AppDiff::Action::Keep: return "keep";
    case AppDiff::Action::Update: return "update";
    case AppDiff::Action::Replace: return "replace";
    case AppDiff::Action::Add: return "add";
    case AppDiff::Action::Remove: return "remove";
  }
  return "?";
}

const char* outcome_name(ReloadPlan::Outcome o) {
  switch (o) {
    case ReloadPlan::Outcome::Nothing: return "nothing";
    case ReloadPlan::Outcome::Reload: return "reload";
    case ReloadPlan::Outcome::Restart: return "restart";
    case ReloadPlan::Outcome::Refused: return "refused";
  }
  return "?";
}

std::vector<std::string> env_keys_changed(const conf::App& a, const conf::App& b) {
  std::map<std::string, std::string> x(a.env.begin(), a.env.end()), y(b.env.begin(), b.env.end());
  std::set<std::string> names;
  for (auto& [k, v] : x)
    if (auto it = y.find(k); it == y.end() || it->second != v) names.insert(k);
  for (auto& [k, v] : y)
    if (!x.count(k)) names.insert(k);
  return {names.begin(), names.end()};
}

int AppDiff::stopped() const {
  switch (action) {
    case Action::Keep: return 0;
    case Action::Update: return std::max(0, workers_before - workers_after);
    case Action::Replace:
    case Action::Remove: return workers_before;
    case Action::Add: return 0;
  }
  return 0;
}

int AppDiff::started() const {
  switch (action) {
    case Action::Keep: return 0;
    case Action::Update: return std::max(0, workers_after - workers_before);
    case Action::Replace:
    case Action::Add: return workers_after;
    case Action::Remove: return 0;
  }
  return 0;
}

const char* action_name(ListenerDiff::Action a) {
  switch (a) {
    case ListenerDiff::Action::Keep: return "keep";
    case ListenerDiff::Action::Update: return "update";
    case ListenerDiff::Action::Add: return "add";
    case ListenerDiff::Action::Remove: return "remove";
  }
  return "?";
}

std::vector<std::string> process_changes(const conf::App& a, const conf::App& b) {
  const conf::App x = with_soft_fields_of(a, b);
  if (x == a) return {};
  std::vector<std::string> out;
  note(out, "kind", a.kind, b.kind);
  note(out, "command", a.command, b.command);
  if (a.env != b.env) out.push_back(env_change(a, b));
  note(out, "cwd", a.cwd, b.cwd);
  note(out, "user", a.user, b.user);
  note(out, "group", a.group, b.group);
  note(out, "rlimits", a.rlimits, b.rlimits);
  note(out, "umask", a.umask, b.umask);
  note(out, "root", a.root, b.root);
  note(out, "script_filename", a.script_filename, b.script_filename);
  note(out, "module", a.module, b.module);
  note(out, "python_path", a.python_path, b.python_path);
  note(out, "virtualenv", a.virtualenv, b.virtualenv);
  note(out, "worker_class", a.worker_class, b.worker_class);
  if (a.kind != conf::AppKind::Fastcgi || a.kind != b.kind) note(out, "index", a.index, b.index);
  if (a.kind == b.kind && kind_takes_hosted_settings(a)) {
    note(out, "concurrency (corral-worker's threads)", a.concurrency, b.concurrency);
    note(out, "timeout (corral-worker's)", a.timeout, b.timeout);
  }
  // A field this list does not know yet still makes a new generation: the safe side.
  if (out.empty()) out.push_back("settings changed");
  return out;
}

bool ReloadPlan::empty() const {
  for (auto& a : apps)
    if (a.action != AppDiff::Action::Keep) return false;
  for (auto& l : listeners)
    if (l.action != ListenerDiff::Action::Keep) return false;
  return routes.empty() && proxy.empty() && supervisor.empty() && on_restart.empty() && refused.empty();
}

ReloadPlan::Outcome ReloadPlan::outcome() const {
  if (!refused.empty()) return Outcome::Refused;
  if (!on_restart.empty()) return Outcome::Restart;
  return empty() ? Outcome::Nothing : Outcome::Reload;
}

const AppDiff* ReloadPlan::app(const std::string& name) const {
  for (auto& a : apps)
    if (a.name == name) return &a;
  return nullptr;
}

namespace {
// " (2 workers)", " (1 worker)".
std::string workers_text(int n) { return std::to_string(n) + (n == 1 ? " worker" : " workers"); }

// "workers 3 (pid 1201), 4 (pid 1202)" for the running workers a plan names; "" when unknown.
std::string running_text(const std::vector<AppDiff::Worker>& running) {
  if (running.empty()) return "";
  std::string out = running.size() == 1 ? "worker " : "workers ";
  for (size_t i = 0; i < running.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(running[i].id) +
           (running[i].pid > 0 ? " (pid " + std::to_string(running[i].pid) + ")" : std::string(" (not running)"));
  }
  return out;
}
}  // namespace

std::vector<std::string> ReloadPlan::describe() const {
  std::vector<std::string> out;
  if (!refused.empty()) out.push_back("refused: " + refused);
  for (auto& l : listeners) {
    switch (l.action) {
      case ListenerDiff::Action::Keep: break;
      case ListenerDiff::Action::Add: out.push_back("listener " + l.address + ": added"); break;
      case ListenerDiff::Action::Remove: out.push_back("listener " + l.address + ": removed"); break;
      case ListenerDiff::Action::Update: out.push_back("listener " + l.address + ": " + join(l.reasons, ", ")); break;
    }
  }
  for (auto& a : apps) {
    const std::string who = running_text(a.running);
    switch (a.action) {
      case AppDiff::Action::Keep: break;
      case AppDiff::Action::Add: out.push_back("app " + a.name + ": added (" + workers_text(a.workers_after) + ")"); break;
      case AppDiff::Action::Remove:
        out.push_back("app " + a.name + ": removed (draining; " + (who.empty() ? workers_text(a.workers_before) : who) +
                      " stop)");
        break;
      case AppDiff::Action::Replace:
        out.push_back("app " + a.name + ": new generation (" + join(a.reasons, ", ") + "); replaces " +
                      (who.empty() ? workers_text(a.workers_before) : who) + " with " + workers_text(a.workers_after));
        break;
      case AppDiff::Action::Update: out.push_back("app " + a.name + ": " + join(a.reasons, ", ")); break;
    }
  }
  for (auto& r : routes) out.push_back(r);
  if (!proxy.empty()) out.push_back("proxy settings updated: " + join(proxy, ", "));
  if (!supervisor.empty()) out.push_back("supervisor settings updated: " + join(supervisor, ", "));
  for (auto& r : on_restart) out.push_back(r);
  if (out.empty()) out.push_back("nothing changed");
  return out;
}

nlohmann::json ReloadPlan::to_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (auto& d : apps) {
    nlohmann::json running = nlohmann::json::array();
    for (auto& w : d.running) running.push_back({{"id", w.id}, {"pid", w.pid}});
    a.push_back({{"name", d.name},
                 {"action", action_name(d.action)},
                 {"reasons", d.reasons},
                 {"env_keys", d.env_keys},
                 {"workers_before", d.workers_before},
                 {"workers_after", d.workers_after},
                 {"started", d.started()},
                 {"stopped", d.stopped()},
                 {"running", running}});
  }
  nlohmann::json l = nlohmann::json::array();
  for (auto& d : listeners)
    l.push_back({{"address", d.address}, {"action", action_name(d.action)}, {"reasons", d.reasons}});
  return {{"outcome", outcome_name(outcome())}, {"apps", a}, {"listeners", l}, {"routes", routes}, {"proxy", proxy},
          {"supervisor", supervisor}, {"on_restart", on_restart}, {"refused", refused}};
}

ReloadPlan plan_reload(const conf::Config& running, const conf::Config& next) {
  ReloadPlan plan;
  if (next.supervisor.runtime_dir != running.supervisor.runtime_dir)
    plan.refused = "supervisor.runtime_dir cannot change on reload (restart corral for that)";
  // Each with what it needs: the proxy's threads are fixed when a proxy starts, so a new
  // proxy applies them; the proxy's user and the sockets' group are settled when corral starts.
  auto user = [](const std::string& u) { return u.empty() ? std::string("(none)") : u; };
  auto threads = [](int n) { return n > 0 ? std::to_string(n) : std::string("auto"); };
  if (next.supervisor.user != running.supervisor.user)
    plan.on_restart.push_back("supervisor.user " + user(running.supervisor.user) + " -> " + user(next.supervisor.user) +
                              ": applies when corral restarts");
  if (next.proxy.threads != running.proxy.threads)
    plan.on_restart.push_back("proxy.threads " + threads(running.proxy.threads) + " -> " + threads(next.proxy.threads) +
                              ": applies when the proxy restarts (corralctl restart-proxy) or corral restarts");
  note(plan.supervisor, "supervisor.log_level", running.supervisor.log_level, next.supervisor.log_level);
  note(plan.supervisor, "supervisor.graceful_timeout", running.supervisor.graceful_timeout,
       next.supervisor.graceful_timeout);
  note(plan.supervisor, "supervisor.proxy_timeout", running.supervisor.proxy_timeout, next.supervisor.proxy_timeout);
  note(plan.supervisor, "supervisor.drain_delay", running.supervisor.drain_delay, next.supervisor.drain_delay);
  plan.proxy = proxy_changes(running.proxy, next.proxy);

  // Listeners, matched by the address as written (its socket is kept); the same address
  // written twice ("127.0.0.1:0" for two ports) pairs up in order, as apply_reload() does.
  std::vector<bool> used(running.listeners.size(), false);
  for (auto& l : next.listeners) {
    ListenerDiff d;
    d.address = l.address;
    size_t i = 0;
    while (i < running.listeners.size() && (used[i] || running.listeners[i].address != l.address)) ++i;
    if (i == running.listeners.size()) {
      d.action = ListenerDiff::Action::Add;
    } else {
      used[i] = true;
      d.reasons = listener_changes(running.listeners[i], l);
      if (!d.reasons.empty()) d.action = ListenerDiff::Action::Update;
    }
    plan.listeners.push_back(std::move(d));
  }
  for (size_t i = 0; i < running.listeners.size(); ++i)
    if (!used[i]) plan.listeners.push_back({running.listeners[i].address, ListenerDiff::Action::Remove, {}});

  // Apps, by name (both lists are sorted by name; a rename is a removal and an addition).
  std::map<std::string, std::pair<const conf::App*, const conf::App*>> by_name;
  for (auto& a : running.apps) by_name[a.name].first = &a;
  for (auto& a : next.apps) by_name[a.name].second = &a;
  for (auto& [name, pair] : by_name) {
    auto [old_app, new_app] = pair;
    AppDiff d;
    d.name = name;
    if (old_app) d.workers_before = old_app->workers;
    if (new_app) d.workers_after = new_app->workers;
    if (old_app && new_app) d.env_keys = env_keys_changed(*old_app, *new_app);
    if (!old_app) {
      d.action = AppDiff::Action::Add;
    } else if (!new_app) {
      d.action = AppDiff::Action::Remove;
    } else if (!(*old_app == *new_app)) {
      d.reasons = process_changes(*old_app, *new_app);
      d.action = d.reasons.empty() ? AppDiff::Action::Update : AppDiff::Action::Replace;
      for (auto& s : soft_changes(*old_app, *new_app)) d.reasons.push_back(s);
      if (d.reasons.empty()) d.reasons.push_back("settings updated");
    }
    plan.apps.push_back(std::move(d));
  }

  // Routes: position by position (the first match wins, so order is meaning).
  const size_t n = std::max(running.routes.size(), next.routes.size());
  for (size_t i = 0; i < n; ++i) {
    const std::string pos = "route " + std::to_string(i + 1);
    if (i >= running.routes.size()) {
      plan.routes.push_back(pos + " added: " + route_text(next.routes[i]));
    } else if (i >= next.routes.size()) {
      plan.routes.push_back(pos + " removed: " + route_text(running.routes[i]));
    } else if (!(running.routes[i] == next.routes[i]) && same_route_target(running.routes[i], next.routes[i])) {
      plan.routes.push_back(pos + " (" + route_text(next.routes[i]) + "): " +
                            compress_change(running.routes[i], next.routes[i]));
    } else if (!(running.routes[i] == next.routes[i])) {
      std::string a = route_text(running.routes[i]), b = route_text(next.routes[i]);
      // Same route, other static settings (index, cache_control, follow_symlinks).
      plan.routes.push_back(pos + ": " + a + (a == b ? " (static settings changed)" : " => " + b));
    }
  }
  return plan;
}

}  // namespace corral::supervisor
