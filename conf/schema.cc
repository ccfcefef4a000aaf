#include "conf/schema.h"

#include <limits>

#include "common/base/log.h"
#include "common/base/strings.h"
#include "common/net/address.h"
#include "common/net/cidr.h"
#include "conf/diagnostics.h"

namespace corral::conf {
namespace {

using P = std::optional<Problem>;

P problem(std::string message, std::string hint = {}) { return Problem{std::move(message), std::move(hint)}; }

P at_least(std::string_view key, int64_t v, int64_t min) {
  if (v < min) return problem(std::string(key) + " must be at least " + std::to_string(min));
  return std::nullopt;
}

P in_range(std::string_view key, int64_t v, int64_t min, int64_t max) {
  if (v < min || v > max)
    return problem(std::string(key) + " must be from " + std::to_string(min) + " to " + std::to_string(max));
  return std::nullopt;
}

P positive_duration(std::string_view key, Millis d) {
  if (d.count() <= 0) return problem(std::string(key) + " must be longer than 0s");
  return std::nullopt;
}

P one_of(std::string_view what, const std::string& got, const std::vector<std::string_view>& allowed) {
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (i) list += i + 1 == allowed.size() ? " or " : ", ";
    list += "\"" + std::string(allowed[i]) + "\"";
  }
  std::string hint;
  if (auto guess = did_you_mean(got, allowed); !guess.empty()) hint = "did you mean '" + guess + "'?";
  return problem("unknown " + std::string(what) + " '" + got + "'; expected " + list, hint);
}

// ---- [supervisor] ------------------------------------------------------------------------

P supervisor_runtime_dir(const Value& v, Target& t) {
  if (v.text.empty()) return problem("runtime_dir must not be empty", "for example \"/run/corral\"");
  t.supervisor->runtime_dir = v.text;  // resolved and its length checked by the loader
  return std::nullopt;
}

P supervisor_log_level(const Value& v, Target& t) {
  if (!log::parse_level(v.text, t.supervisor->log_level))
    return one_of("log level", v.text, {"debug", "info", "warn", "error"});
  return std::nullopt;
}

P supervisor_graceful_timeout(const Value& v, Target& t) {
  t.supervisor->graceful_timeout = v.duration;
  return std::nullopt;
}

P supervisor_drain_delay(const Value& v, Target& t) {
  t.supervisor->drain_delay = v.duration;
  return std::nullopt;
}

P supervisor_proxy_timeout(const Value& v, Target& t) {
  if (v.duration.count() != 0 && v.duration < Millis(2'000))
    return problem("proxy_timeout must be \"0\" (never) or at least \"2s\": the proxy reports once a second",
                   "for example \"10s\"");
  t.supervisor->proxy_timeout = v.duration;
  return std::nullopt;
}

P supervisor_user(const Value& v, Target& t) {
  t.supervisor->user = v.text;
  return std::nullopt;
}

// ---- [proxy] -----------------------------------------------------------------------------

P proxy_threads(const Value& v, Target& t) {
  if (v.is_auto) {
    t.proxy->threads = 0;
    return std::nullopt;
  }
  if (auto p = in_range("threads", v.integer, 1, 256)) {
    p->hint = "or \"auto\" for one per usable core";
    return p;
  }
  t.proxy->threads = static_cast<int>(v.integer);
  return std::nullopt;
}

P proxy_admin(const Value& v, Target& t) {
  if (v.text == "off" || v.text.find('/') != std::string::npos) {
    t.proxy->admin = v.text;  // a socket path is resolved against the config's folder by the loader
    return std::nullopt;
  }
  auto a = net::parse_address(v.text);
  if (!a)
    return problem("invalid admin address '" + v.text + "': " + a.error().context,
                   "write \"127.0.0.1:9180\", a Unix socket path such as \"/run/corral/admin.sock\", or \"off\"");
  t.proxy->admin = v.text;
  return std::nullopt;
}

P proxy_access_log(const Value& v, Target& t) {
  if (v.text.empty()) return problem("access_log must not be empty", "use \"-\" for stderr or \"off\"");
  t.proxy->access_log = v.text;  // a path is resolved against the config's folder by the loader
  return std::nullopt;
}

P proxy_access_log_format(const Value& v, Target& t) {
  if (v.text == "combined") t.proxy->access_log_format = AccessLogFormat::Combined;
  else if (v.text == "json") t.proxy->access_log_format = AccessLogFormat::Json;
  else return one_of("access_log_format", v.text, {"combined", "json"});
  return std::nullopt;
}

P proxy_max_body_size(const Value& v, Target& t) {
  t.proxy->max_body_size = v.size;
  return std::nullopt;
}

P proxy_client_body_buffer_size(const Value& v, Target& t) {
  if (v.size < 1024) return problem("client_body_buffer_size must be at least 1KiB");
  if (v.size > (1u << 30)) return problem("client_body_buffer_size must be at most 1GiB",
                                          "larger bodies go to a temp file in temp_dir; memory is not faster for them");
  t.proxy->client_body_buffer_size = v.size;
  return std::nullopt;
}

P proxy_temp_dir(const Value& v, Target& t) {
  if (v.text.empty()) return problem("temp_dir must not be empty", "leave it out for runtime_dir/body");
  t.proxy->temp_dir = v.text;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P proxy_max_header_size(const Value& v, Target& t) {
  if (v.size < 1024) return problem("max_header_size must be at least 1KiB");
  if (v.size > (64u << 20)) return problem("max_header_size must be at most 64MiB");
  t.proxy->max_header_size = v.size;
  return std::nullopt;
}

P proxy_max_header_count(const Value& v, Target& t) {
  if (auto p = in_range("max_header_count", v.integer, 1, 100000)) return p;
  t.proxy->max_header_count = static_cast<int>(v.integer);
  return std::nullopt;
}

P proxy_client_header_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("client_header_timeout", v.duration)) return p;
  t.proxy->client_header_timeout = v.duration;
  return std::nullopt;
}

P proxy_tls_handshake_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("tls_handshake_timeout", v.duration)) return p;
  t.proxy->tls_handshake_timeout = v.duration;
  return std::nullopt;
}

P proxy_client_body_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("client_body_timeout", v.duration)) return p;
  t.proxy->client_body_timeout = v.duration;
  return std::nullopt;
}

P proxy_client_body_min_rate(const Value& v, Target& t) {
  t.proxy->client_body_min_rate = v.size;
  return std::nullopt;
}

P proxy_h2_max_concurrent_streams(const Value& v, Target& t) {
  if (auto p = in_range("h2_max_concurrent_streams", v.integer, 1, 10000)) return p;
  t.proxy->h2_max_concurrent_streams = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P proxy_h2_reset_rate(const Value& v, Target& t) {
  if (auto p = in_range("h2_reset_rate", v.integer, 1, 1000000)) return p;
  t.proxy->h2_reset_rate = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P proxy_h2_flood_rate(const Value& v, Target& t) {
  if (auto p = in_range("h2_flood_rate", v.integer, 1, 1000000)) return p;
  t.proxy->h2_flood_rate = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P proxy_keepalive_timeout(const Value& v, Target& t) {
  t.proxy->keepalive_timeout = v.duration;
  return std::nullopt;
}

// A list of CIDRs: each must parse; the first bad one is named.
P cidr_list(std::string_view key, const std::vector<std::string>& list) {
  for (const auto& e : list) {
    if (auto c = net::parse_cidr(e); !c)
      return problem("'" + e + "' in " + std::string(key) + " " + c.error().context,
                     "write \"10.0.0.0/8\", \"192.0.2.7\" (one address) or \"2001:db8::/32\"");
  }
  return std::nullopt;
}

P proxy_trusted_proxies(const Value& v, Target& t) {
  if (auto p = cidr_list("trusted_proxies", v.list)) return p;
  t.proxy->trusted_proxies = v.list;
  return std::nullopt;
}

// ---- [[listener]] ------------------------------------------------------------------------

P listener_address(const Value& v, Target& t) {
  auto a = net::parse_address(v.text);
  if (!a)
    return problem("invalid address '" + v.text + "': " + a.error().context,
                   "write \"127.0.0.1:8080\", \"0.0.0.0:80\" or \"[::]:8443\"");
  t.listener->address = v.text;
  t.listener->host = a->ip();
  t.listener->port = a->port();
  t.listener->ipv6 = a->family() == AF_INET6;
  return std::nullopt;
}

P listener_tls(const Value& v, Target& t) {
  // tls = { cert = "...", key = "...", profile = "modern" } or
  // tls = { certs = [{ cert = "...", key = "..." }, ...] } (chosen by SNI, the first is the default).
  std::vector<TlsCert> certs;
  TlsCert single;
  for (const auto& [k, val] : v.table) {
    if (k == "cert") single.cert = val;
    else if (k == "key") single.key = val;
    else if (k == "profile") {
      if (val == "intermediate") t.listener->tls_profile = TlsProfile::Intermediate;
      else if (val == "modern") t.listener->tls_profile = TlsProfile::Modern;
      else return one_of("tls.profile", val, {"intermediate", "modern"});
    } else if (k.rfind("certs[", 0) == 0) {
      size_t close = k.find("].");
      if (close == std::string::npos) return problem("unexpected key 'tls." + k + "'");
      size_t i = std::stoul(k.substr(6, close - 6));
      std::string field = k.substr(close + 2);
      if (certs.size() <= i) certs.resize(i + 1);
      if (field == "cert") certs[i].cert = val;
      else if (field == "key") certs[i].key = val;
      else
        return problem("unknown key '" + field + "' in tls.certs[" + std::to_string(i) + "]",
                       "each entry is { cert = \"...\", key = \"...\" }");
    } else {
      std::string hint;
      if (auto g = did_you_mean(k, {"cert", "key", "certs", "profile"}); !g.empty()) hint = "did you mean '" + g + "'?";
      return problem("unknown key '" + k + "' in tls", hint);
    }
  }
  if (!single.cert.empty() || !single.key.empty()) certs.insert(certs.begin(), single);
  if (certs.empty())
    return problem("tls needs a certificate", "write tls = { cert = \"/etc/corral/tls/cert.pem\", key = \"/etc/corral/tls/key.pem\" }");
  for (size_t i = 0; i < certs.size(); ++i)
    if (certs[i].cert.empty() || certs[i].key.empty())
      return problem("tls certificate " + std::to_string(i + 1) + " needs both cert and key");
  t.listener->tls = std::move(certs);
  return std::nullopt;
}

P listener_h2(const Value& v, Target& t) {
  t.listener->h2 = v.boolean;
  return std::nullopt;
}

P listener_redirect_https(const Value& v, Target& t) {
  t.listener->redirect_https = v.boolean;
  return std::nullopt;
}

P listener_hsts(const Value& v, Target& t) {
  if (v.text.rfind("max-age=", 0) != 0)
    return problem("hsts must start with max-age=", "for example \"max-age=31536000; includeSubDomains\"");
  for (char c : v.text)
    if (c < 0x20 || c == 0x7f) return problem("hsts must not contain control characters");
  t.listener->hsts = v.text;
  return std::nullopt;
}

P listener_max_connections(const Value& v, Target& t) {
  if (auto p = in_range("max_connections", v.integer, 0, 10'000'000)) {
    p->hint = "0 = no limit of the listener's own (the proxy's file descriptor limit still applies)";
    return p;
  }
  t.listener->max_connections = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P listener_max_connections_per_client(const Value& v, Target& t) {
  if (auto p = in_range("max_connections_per_client", v.integer, 0, 10'000'000)) {
    p->hint = "0 = no limit per client";
    return p;
  }
  t.listener->max_connections_per_client = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P listener_proxy_protocol(const Value& v, Target& t) {
  t.listener->proxy_protocol = v.boolean;  // proxy_protocol_trusted is required with it (loader)
  return std::nullopt;
}

P listener_proxy_protocol_trusted(const Value& v, Target& t) {
  if (auto p = cidr_list("proxy_protocol_trusted", v.list)) return p;
  t.listener->proxy_protocol_trusted = v.list;
  return std::nullopt;
}

// ---- [[route]] ---------------------------------------------------------------------------

P route_host(const Value& v, Target& t) {
  if (v.text.empty()) return problem("host must not be empty", "leave host out to match any host");
  for (char c : v.text)
    if (c == '/' || c == ' ' || c == ':')
      return problem("host '" + v.text + "' must be a bare host name (no port, path or spaces)");
  t.route->host = to_lower(v.text);
  return std::nullopt;
}

P route_path(const Value& v, Target& t) {
  if (v.text.empty() || v.text.front() != '/')
    return problem("path '" + v.text + "' must start with '/'", "for example \"/\" or \"/api/\"");
  t.route->path = v.text;
  return std::nullopt;
}

P route_app(const Value& v, Target& t) {
  if (!is_valid_app_name(v.text)) return problem("'" + v.text + "' is not a valid app name");
  t.route->app = v.text;  // existence is checked once every [app.X] is known
  return std::nullopt;
}

P route_compress(const Value& v, Target& t) {
  std::vector<std::string> seen;
  for (const auto& e : v.list) {
    if (e != "br" && e != "gzip") {
      auto p = one_of("compress encoding", e, {"br", "gzip"});
      if (p->hint.empty()) p->hint = "write compress = [\"br\", \"gzip\"], or [] for none";
      return p;
    }
    for (const auto& s : seen)
      if (s == e) return problem("compress lists '" + e + "' twice");
    seen.push_back(e);
  }
  t.route->compress = v.list;
  return std::nullopt;
}

P route_compress_min_size(const Value& v, Target& t) {
  t.route->compress_min_size = v.size;
  return std::nullopt;
}

bool media_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$&-^_.+").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

P route_compress_types(const Value& v, Target& t) {
  std::vector<std::string> out;
  for (const auto& e : v.list) {
    std::string m = to_lower(e);
    size_t slash = m.find('/');
    std::string_view type = std::string_view(m).substr(0, slash);
    std::string_view sub = slash == std::string::npos ? std::string_view() : std::string_view(m).substr(slash + 1);
    bool ok = slash != std::string::npos && media_token(type);
    // "type/subtype", "type/*", "type/*+suffix"
    if (ok && sub != "*") ok = sub.rfind("*+", 0) == 0 ? media_token(sub.substr(2)) : media_token(sub);
    if (!ok)
      return problem("compress_types entry '" + e + "' is not a media type",
                     "write \"application/json\", \"text/*\" or \"application/*+json\" (no parameters)");
    out.push_back(std::move(m));
  }
  t.route->compress_types = std::move(out);
  return std::nullopt;
}

P route_gzip_level(const Value& v, Target& t) {
  if (auto p = in_range("gzip_level", v.integer, 1, 9)) {
    p->hint = "1 is fastest, 9 smallest; to turn gzip off leave it out of compress";
    return p;
  }
  t.route->gzip_level = static_cast<int>(v.integer);
  return std::nullopt;
}

P route_brotli_level(const Value& v, Target& t) {
  if (auto p = in_range("brotli_level", v.integer, 0, 9)) {
    p->hint = "10 and 11 are for compressing files ahead of time: far too slow per response";
    return p;
  }
  t.route->brotli_level = static_cast<int>(v.integer);
  return std::nullopt;
}

P route_static(const Value& v, Target& t) {
  if (v.text.empty()) return problem("static must not be empty", "the folder to serve, for example \"/srv/site/static\"");
  t.route->static_root = v.text;  // resolved against the config's folder and checked by the loader
  return std::nullopt;
}

P route_index(const Value& v, Target& t) {
  if (v.text.find('/') != std::string::npos || v.text == "." || v.text == "..")
    return problem("index '" + v.text + "' must be a file name (no '/')", "for example \"index.html\", or \"\" for none");
  t.route->index = v.text;
  return std::nullopt;
}

P route_cache_control(const Value& v, Target& t) {
  for (char c : v.text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return problem("cache_control must not contain control characters");
  t.route->cache_control = v.text;
  return std::nullopt;
}

P route_fallback(const Value& v, Target& t) {
  if (!is_valid_app_name(v.text)) return problem("'" + v.text + "' is not a valid app name");
  t.route->fallback = v.text;  // existence is checked once every [app.X] is known
  return std::nullopt;
}

P route_follow_symlinks(const Value& v, Target& t) {
  if (v.text == "inside") t.route->follow_symlinks = FollowSymlinks::Inside;
  else if (v.text == "off") t.route->follow_symlinks = FollowSymlinks::Off;
  else return one_of("follow_symlinks", v.text, {"inside", "off"});
  return std::nullopt;
}

// ---- [app.NAME] --------------------------------------------------------------------------

P app_kind(const Value& v, Target& t) {
  if (v.text == "http" || v.text == "fastcgi" || v.text == "cgi" || v.text == "wsgi") {
    t.app->kind = v.text == "http"  ? AppKind::Http
                  : v.text == "cgi" ? AppKind::Cgi
                  : v.text == "wsgi" ? AppKind::Wsgi
                                     : AppKind::Fastcgi;
    return std::nullopt;
  }
  return one_of("kind", v.text, {"http", "fastcgi", "cgi", "wsgi"});
}

P app_command(const Value& v, Target& t) {
  if (v.list.empty())
    return problem("command must not be empty", "for example [\"/opt/app/bin/server\", \"--port\", \"{socket}\"]");
  if (v.list.front().empty()) return problem("command[0] (the program) must not be empty");
  t.app->command = v.list;  // command[0] is resolved against the config's folder by the loader
  return std::nullopt;
}

P app_workers(const Value& v, Target& t) {
  if (v.is_auto) {
    t.app->workers_auto = true;
    return std::nullopt;  // resolved by the loader with usable_cores()
  }
  if (v.integer < 1) return problem("workers must be at least 1", "or \"auto\" for 2 × usable cores + 1");
  if (v.integer > 4096) return problem("workers must be at most 4096");
  t.app->workers_auto = false;
  t.app->workers = static_cast<int>(v.integer);
  return std::nullopt;
}

P app_concurrency(const Value& v, Target& t) {
  if (auto p = at_least("concurrency", v.integer, 1)) return p;
  if (v.integer > 100000) return problem("concurrency must be at most 100000");
  t.app->concurrency = static_cast<int>(v.integer);
  return std::nullopt;
}

P app_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("timeout", v.duration)) return p;
  t.app->timeout = v.duration;
  return std::nullopt;
}

P app_queue_size(const Value& v, Target& t) {
  if (v.integer < 0) return problem("queue_size must not be negative", "0 disables the queue");
  if (v.integer > std::numeric_limits<uint32_t>::max()) return problem("queue_size is too large");
  t.app->queue_size = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P app_queue_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("queue_timeout", v.duration)) return p;
  t.app->queue_timeout = v.duration;
  return std::nullopt;
}

P app_max_tunnels(const Value& v, Target& t) {
  if (v.integer < 0) return problem("max_tunnels must not be negative", "0 = tunnels count against concurrency");
  if (v.integer > 1000000) return problem("max_tunnels must be at most 1000000");
  t.app->max_tunnels = static_cast<uint32_t>(v.integer);
  return std::nullopt;
}

P app_tunnel_idle_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("tunnel_idle_timeout", v.duration)) return p;
  t.app->tunnel_idle_timeout = v.duration;
  return std::nullopt;
}

P app_root(const Value& v, Target& t) {
  if (v.text.empty()) return problem("root must not be empty", "leave it out to run one program (command)");
  t.app->root = v.text;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P app_script_filename(const Value& v, Target& t) {
  if (v.text.empty()) return problem("script_filename must not be empty");
  t.app->script_filename = v.text;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P app_index(const Value& v, Target& t) {
  const std::string& n = v.text;
  if (n.find('/') != std::string::npos || (!n.empty() && n.front() == '.') || n.find('\0') != std::string::npos)
    return problem("index must be a file name in the folder, not a path or a hidden name",
                   "for example index = \"index.php\" (or \"\" for none)");
  t.app->index = n;
  return std::nullopt;
}

P app_module(const Value& v, Target& t) {
  // gunicorn's APP_MODULE: "pkg.mod:callable", "pkg.mod" (callable "application") or
  // "pkg.mod:factory()" (called once, no arguments).
  auto colon = v.text.find(':');
  std::string mod = v.text.substr(0, colon);
  std::string attr = colon == std::string::npos ? "application" : v.text.substr(colon + 1);
  auto ident_path = [](std::string_view s) {
    if (s.empty() || s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos) return false;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
    return true;
  };
  if (attr.size() > 2 && attr.ends_with("()")) attr.resize(attr.size() - 2);
  if (!ident_path(mod) || !ident_path(attr))
    return problem("module '" + v.text + "' is not \"package.module:callable\"", "for example \"myproject.wsgi:app\"");
  t.app->module = v.text;
  return std::nullopt;
}

P app_python_path(const Value& v, Target& t) {
  for (auto& p : v.list)
    if (p.empty()) return problem("python_path entries must not be empty");
  t.app->python_path = v.list;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P app_virtualenv(const Value& v, Target& t) {
  if (v.text.empty()) return problem("virtualenv must not be empty", "leave it out to use the system Python");
  t.app->virtualenv = v.text;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P app_request_buffering(const Value& v, Target& t) {
  t.app->request_buffering = v.boolean;
  return std::nullopt;
}

P app_upgrade(const Value& v, Target& t) {
  if (v.text == "roll" || v.text == "keep") {
    t.app->upgrade = v.text;
    return std::nullopt;
  }
  return one_of("upgrade", v.text, {"roll", "keep"});
}

P app_worker_class(const Value& v, Target& t) {
  if (v.text == "sync" || v.text == "gthread" || v.text == "gevent") {
    t.app->worker_class = v.text;
    return std::nullopt;
  }
  return one_of("worker_class", v.text, {"sync", "gthread", "gevent"});
}

P app_cwd(const Value& v, Target& t) {
  if (v.text.empty()) return problem("cwd must not be empty", "leave it out to use the config file's folder");
  t.app->cwd = v.text;  // resolved against the config's folder by the loader
  return std::nullopt;
}

P app_env(const Value& v, Target& t) {
  for (auto& [name, value] : v.table)
    if (name.empty() || name.find('=') != std::string::npos)
      return problem("environment variable name '" + name + "' must be non-empty and contain no '='");
  t.app->env = v.table;
  return std::nullopt;
}

P app_graceful_timeout(const Value& v, Target& t) {
  t.app->graceful_timeout = v.duration;
  return std::nullopt;
}

P app_kill_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("kill_timeout", v.duration)) return p;
  t.app->kill_timeout = v.duration;
  return std::nullopt;
}

P app_max_requests(const Value& v, Target& t) {
  if (v.integer < 0) return problem("max_requests must not be negative", "0 = never recycle");
  t.app->max_requests = static_cast<uint64_t>(v.integer);
  return std::nullopt;
}

P app_max_requests_jitter(const Value& v, Target& t) {
  if (v.integer < 0) return problem("max_requests_jitter must not be negative");
  t.app->max_requests_jitter = static_cast<uint64_t>(v.integer);
  return std::nullopt;
}

P app_max_rss(const Value& v, Target& t) {
  t.app->max_rss = v.size;
  return std::nullopt;
}

P app_health_path(const Value& v, Target& t) {
  if (!v.text.empty() && v.text.front() != '/')
    return problem("health_path '" + v.text + "' must start with '/'", "or \"\" for ready as soon as started");
  for (char c : v.text)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return problem("health_path must not contain spaces or controls");
  t.app->health_path = v.text;
  return std::nullopt;
}

P app_boot_timeout(const Value& v, Target& t) {
  if (auto p = positive_duration("boot_timeout", v.duration)) return p;
  t.app->boot_timeout = v.duration;
  return std::nullopt;
}

P app_user(const Value& v, Target& t) {
  if (v.text.empty()) return problem("user must not be empty", "leave it out to keep the supervisor's user");
  t.app->user = v.text;
  return std::nullopt;
}

P app_group(const Value& v, Target& t) {
  if (v.text.empty()) return problem("group must not be empty", "leave it out to use the user's primary group");
  t.app->group = v.text;
  return std::nullopt;
}

P app_rlimits(const Value& v, Target& t) {
  for (auto& [name, value] : v.table) {
    if (name != "nofile" && name != "nproc" && name != "as")
      return one_of("rlimit", name, {"nofile", "nproc", "as"});
    if (value != "unlimited" && !parse_size(value))
      return problem("rlimits." + name + " = '" + value + "' is not a number", "write e.g. \"65536\", \"4GiB\" or \"unlimited\"");
  }
  t.app->rlimits = v.table;
  return std::nullopt;
}

P app_umask(const Value& v, Target& t) {
  int mask = 0;
  bool ok = !v.text.empty() && v.text.size() <= 4;
  for (char c : v.text) {
    if (c < '0' || c > '7') ok = false;
    mask = mask * 8 + (c - '0');
  }
  if (!ok || mask > 0777) return problem("umask '" + v.text + "' must be an octal mode", "for example \"0027\"");
  t.app->umask = mask;
  return std::nullopt;
}

using S = Section;
using T = ValueType;

// clang-format off
constexpr KeySpec kSchema[] = {
  {S::Supervisor, "runtime_dir", T::String, "\"/run/corral\"", false, "\"/run/corral\"",
   "folder for worker sockets and control.sock (at most 80 characters once resolved; relative = to the config file's folder)", supervisor_runtime_dir},
  {S::Supervisor, "log_level", T::String, "\"info\"", false, "\"info\"",
   "\"debug\", \"info\", \"warn\" or \"error\"", supervisor_log_level},
  {S::Supervisor, "graceful_timeout", T::Duration, "\"30s\"", false, "\"30s\"",
   "on stop and reload, how long in-flight requests may still run", supervisor_graceful_timeout},
  {S::Supervisor, "drain_delay", T::Duration, "\"0s\"", false, "\"5s\"",
   "on SIGTERM or corralctl stop, how long /readyz fails (503 \"draining\") while the listeners keep serving, with keep-alive ended (Connection: close, HTTP/2 GOAWAY), before the graceful stop; set it above your load balancer's health-check interval × fall count", supervisor_drain_delay},
  {S::Supervisor, "proxy_timeout", T::Duration, "\"10s\"", false, "\"10s\"",
   "the proxy reports on its control channel every second; silent this long (stopped, stuck) it is killed and restarted, workers keep running; \"0\" = never (e.g. while debugging it)", supervisor_proxy_timeout},
  {S::Supervisor, "user", T::String, "", false, "\"corral\"",
   "the proxy's user when started as root (absent = the supervisor's)", supervisor_user},

  {S::Proxy, "threads", T::IntegerOrAuto, "\"auto\"", false, "\"auto\"",
   "event-loop threads: 1 to 256, or \"auto\" for one per usable core", proxy_threads},
  {S::Proxy, "admin", T::String, "\"off\"", false, "\"127.0.0.1:9180\"",
   "admin listener for /metrics, /healthz, /readyz and /status: \"ip:port\", a Unix socket path, or \"off\"", proxy_admin},
  {S::Proxy, "access_log", T::String, "\"-\"", false, "\"-\"",
   "access log file (relative = to the config file's folder; the supervisor opens it and hands it to the proxy, and opens it anew on SIGUSR1 for log rotation); \"-\" = stderr, \"off\" = none", proxy_access_log},
  {S::Proxy, "access_log_format", T::String, "\"combined\"", false, "\"combined\"",
   "\"combined\" (Apache/nginx style) or \"json\" (one object per line)", proxy_access_log_format},
  {S::Proxy, "max_body_size", T::Size, "\"16MiB\"", false, "\"16MiB\"",
   "largest request body; larger → 413", proxy_max_body_size},
  {S::Proxy, "client_body_buffer_size", T::Size, "\"64KiB\"", false, "\"64KiB\"",
   "request bodies above this go to an unlinked temp file in temp_dir instead of memory (1KiB to 1GiB)", proxy_client_body_buffer_size},
  {S::Proxy, "temp_dir", T::String, "", false, "\"/var/lib/corral/body\"",
   "folder for request-body temp files (relative = to the config file's folder); absent = runtime_dir/body; created by the supervisor, writable only by the proxy's user; best on a disk, not tmpfs", proxy_temp_dir},
  {S::Proxy, "max_header_size", T::Size, "\"16KiB\"", false, "\"16KiB\"",
   "largest request line plus headers; larger → 431", proxy_max_header_size},
  {S::Proxy, "max_header_count", T::Integer, "100", false, "100",
   "most request header fields; more → 431", proxy_max_header_count},
  {S::Proxy, "client_header_timeout", T::Duration, "\"10s\"", false, "\"10s\"",
   "time a client has to send the whole request head", proxy_client_header_timeout},
  {S::Proxy, "tls_handshake_timeout", T::Duration, "\"10s\"", false, "\"10s\"",
   "time a client has to finish the TLS handshake, from the moment its connection is accepted; then it is closed", proxy_tls_handshake_timeout},
  {S::Proxy, "client_body_timeout", T::Duration, "\"30s\"", false, "\"30s\"",
   "longest pause between two reads of a request body", proxy_client_body_timeout},
  {S::Proxy, "client_body_min_rate", T::Size, "\"1KiB\"", false, "\"1KiB\"",
   "bytes per second a request body must average; 0 = no minimum", proxy_client_body_min_rate},
  {S::Proxy, "keepalive_timeout", T::Duration, "\"75s\"", false, "\"75s\"",
   "idle time allowed between requests on a connection; 0 = close after each", proxy_keepalive_timeout},
  {S::Proxy, "h2_max_concurrent_streams", T::Integer, "100", false, "100",
   "HTTP/2 streams a client may have open at once on one connection", proxy_h2_max_concurrent_streams},
  {S::Proxy, "h2_reset_rate", T::Integer, "100", false, "100",
   "HTTP/2 stream resets per second per connection (sent or received, burst 10×); more → GOAWAY", proxy_h2_reset_rate},
  {S::Proxy, "h2_flood_rate", T::Integer, "1000", false, "1000",
   "HTTP/2 control and empty frames per second per connection (burst 10×); more → GOAWAY", proxy_h2_flood_rate},
  {S::Proxy, "trusted_proxies", T::StringArray, "[]", false, "[\"10.0.0.0/8\"]",
   "CIDRs of HTTP proxies in front of corral: from a peer in them X-Forwarded-For is extended (the peer appended) and X-Forwarded-Proto kept, and the client (REMOTE_ADDR, access log) is the rightmost address of X-Forwarded-For outside them; from anyone else both are replaced; [] = trust none", proxy_trusted_proxies},

  {S::Listener, "address", T::String, "", true, "\"127.0.0.1:8080\"",
   "numeric \"ip:port\" or \"[ipv6]:port\"; port 0 = any free port", listener_address},
  {S::Listener, "tls", T::Table, "", false, "{ cert = \"/etc/corral/tls/cert.pem\", key = \"/etc/corral/tls/key.pem\" }",
   "TLS: cert + key files (relative = to the config file's folder), or certs = [{cert, key}, ...] chosen by SNI (the first is the default); profile = \"intermediate\" or \"modern\"", listener_tls},
  {S::Listener, "h2", T::Boolean, "true", false, "true",
   "offer HTTP/2 (ALPN h2 over TLS, prior knowledge h2c on plaintext)", listener_h2},
  {S::Listener, "redirect_https", T::Boolean, "false", false, "true",
   "plaintext listener: answer every request with 308 to the https URL", listener_redirect_https},
  {S::Listener, "hsts", T::String, "", false, "\"max-age=31536000\"",
   "TLS listener: Strict-Transport-Security header added to responses", listener_hsts},
  {S::Listener, "max_connections", T::Integer, "0", false, "10000",
   "open client connections at once on this listener; one more is reset as soon as it is accepted (no TLS, no read); 0 = no limit of its own (the proxy's file descriptor limit, with accept back-off)", listener_max_connections},
  {S::Listener, "max_connections_per_client", T::Integer, "0", false, "100",
   "open connections at once from one client address (IPv4 address, IPv6 /64 prefix); one more is reset as soon as it is accepted; 0 = no limit (behind a load balancer every connection has its address)", listener_max_connections_per_client},
  {S::Listener, "proxy_protocol", T::Boolean, "false", false, "true",
   "every connection starts with a PROXY protocol header (v1 or v2, as HAProxy's send-proxy / send-proxy-v2 sends) giving the client's address and port; only from peers in proxy_protocol_trusted, others are reset unread; a missing or malformed header closes the connection", listener_proxy_protocol},
  {S::Listener, "proxy_protocol_trusted", T::StringArray, "[]", false, "[\"10.0.0.0/8\", \"::1/128\"]",
   "CIDRs of the load balancers allowed to connect to a proxy_protocol listener (required with it); a peer outside them is reset before any read, counted (corral_connections_refused_total reason proxy_protocol_untrusted) and logged once a second at most", listener_proxy_protocol_trusted},

  {S::Route, "host", T::String, "", false, "\"shop.example.com\"",
   "Host header to match (case-insensitive, port ignored); absent = any host", route_host},
  {S::Route, "path", T::String, "\"/\"", false, "\"/\"",
   "path prefix to match; the first matching route wins", route_path},
  // A route needs app or static: checked by the loader, so neither is required here.
  {S::Route, "app", T::String, "", false, "\"shop\"",
   "the [app.NAME] that serves matching requests; a route has either app or static", route_app},
  {S::Route, "static", T::String, "", false, "\"/srv/site/static\"",
   "serve files from this folder instead of an app (relative = to the config file's folder); the route's path is stripped: with path = \"/static\", /static/a.css is DIR/a.css", route_static},
  // index and follow_symlinks have defaults, but only on a static route: they are documented
  // in the text (an app route with them is an error, so the reference shows them commented).
  {S::Route, "index", T::String, "", false, "\"index.html\"",
   "static: the file a folder path (/PREFIX/ or /PREFIX/sub/) serves, default \"index.html\"; \"\" = none (404); a folder without its trailing '/' gets a 301 to it", route_index},
  {S::Route, "cache_control", T::String, "", false, "\"public, max-age=3600\"",
   "static: Cache-Control sent with every file response; absent = none", route_cache_control},
  {S::Route, "fallback", T::String, "", false, "\"shop\"",
   "static: the [app.NAME] that gets requests no file matches (nginx's try_files $uri @app); absent = 404", route_fallback},
  {S::Route, "follow_symlinks", T::String, "", false, "\"inside\"",
   "static: \"inside\" (the default) = a symlink is followed only when it stays inside the folder (relative targets); \"off\" = every symlink is 404", route_follow_symlinks},
  {S::Route, "compress", T::StringArray, "[]", false, "[\"br\", \"gzip\"]",
   "compress the app's responses with these encodings, preferred first (\"br\", \"gzip\") when the client accepts one; [] = off", route_compress},
  {S::Route, "compress_min_size", T::Size, "\"1KiB\"", false, "\"1KiB\"",
   "responses whose Content-Length is smaller are not compressed (unknown length: compressed)", route_compress_min_size},
  {S::Route, "compress_types", T::StringArray,
   "[\"text/*\", \"application/json\", \"application/*+json\", \"application/javascript\", \"application/xml\", \"application/*+xml\", \"image/svg+xml\", \"application/wasm\"]",
   false, "[\"text/*\", \"application/json\"]",
   "media types compressed: \"type/subtype\", \"type/*\" or \"type/*+suffix\"", route_compress_types},
  {S::Route, "gzip_level", T::Integer, "5", false, "5",
   "gzip level for compress, 1 (fastest) to 9 (smallest)", route_gzip_level},
  {S::Route, "brotli_level", T::Integer, "4", false, "4",
   "brotli quality for compress, 0 (fastest) to 9", route_brotli_level},

  {S::App, "kind", T::String, "\"http\"", false, "\"http\"",
   "how workers speak: \"http\", \"fastcgi\" (the proxy is the FastCGI client), \"cgi\" (one program run per request) or \"wsgi\" (a Python WSGI app in corral-worker)", app_kind},
  {S::App, "command", T::StringArray, "", true, "[\"/opt/shop/bin/server\", \"--unix\", \"{socket}\"]",
   "argv of a worker; a program with a '/' is a path (relative = to the config file's folder), one without is looked up in PATH", app_command},
  {S::App, "workers", T::IntegerOrAuto, "1", false, "\"auto\"",
   "worker processes: a number, or \"auto\" = 2 × usable cores + 1", app_workers},
  {S::App, "concurrency", T::Integer, "1", false, "1",
   "requests in flight per worker", app_concurrency},
  {S::App, "timeout", T::Duration, "\"30s\"", false, "\"30s\"",
   "no response within → 504 and the worker is reported hung", app_timeout},
  {S::App, "queue_size", T::Integer, "1024", false, "1024",
   "requests that may wait for a free worker; more → 503; 0 = no queue", app_queue_size},
  {S::App, "queue_timeout", T::Duration, "\"10s\"", false, "\"10s\"",
   "longest wait in the queue; longer → 503", app_queue_timeout},
  {S::App, "max_tunnels", T::Integer, "0", false, "100",
   "http: WebSocket (Upgrade) tunnels per worker; once switched a tunnel frees its request slot and counts here instead; 0 = a tunnel holds its slot of concurrency until it closes", app_max_tunnels},
  {S::App, "tunnel_idle_timeout", T::Duration, "\"60s\"", false, "\"60s\"",
   "http: a WebSocket (Upgrade) tunnel with no byte in either direction for this long is closed", app_tunnel_idle_timeout},
  {S::App, "root", T::String, "", false, "\"/usr/lib/cgi-bin\"",
   "cgi/fastcgi: folder of scripts (relative = to the config file's folder); /PREFIX/foo/x runs ROOT/foo with PATH_INFO /x (instead of command for cgi)", app_root},
  {S::App, "script_filename", T::String, "", false, "\"/srv/app/index.php\"",
   "cgi/fastcgi: SCRIPT_FILENAME sent with every request (e.g. the one PHP front controller; relative = to the config file's folder)", app_script_filename},
  {S::App, "index", T::String, "\"index.php\"", false, "\"index.php\"",
   "cgi/fastcgi with root: the script a folder path runs (/PREFIX/ or /PREFIX/sub/ runs ROOT/sub/index.php), as nginx's fastcgi_index; \"\" = none (404)", app_index},
  {S::App, "module", T::String, "", false, "\"myproject.wsgi:app\"",
   "wsgi: the WSGI callable as \"module:callable\" (gunicorn's syntax; \"module:factory()\" calls a factory)", app_module},
  {S::App, "python_path", T::StringArray, "", false, "[\"/srv/site\"]",
   "wsgi: folders put first on sys.path (relative = to the config file's folder)", app_python_path},
  {S::App, "virtualenv", T::String, "", false, "\"/srv/site/.venv\"",
   "wsgi: virtualenv whose bin/python3 runs the app, with its site-packages (relative = to the config file's folder)", app_virtualenv},
  {S::App, "worker_class", T::String, "", false, "\"gthread\"",
   "wsgi: \"sync\" (one request at a time), \"gthread\" (concurrency threads) or \"gevent\" (concurrency greenlets); default sync when concurrency = 1, else gthread", app_worker_class},
  {S::App, "request_buffering", T::Boolean, "true", false, "false",
   "false: the request body is streamed to a worker as it arrives (the worker is held for the whole upload) instead of buffered first", app_request_buffering},
  {S::App, "upgrade", T::String, "\"roll\"", false, "\"keep\"",
   "cgi/wsgi: \"roll\" = after `corralctl upgrade` (SIGUSR2) replaced corral-worker on disk, its workers are replaced make before break, as a reload would; \"keep\" = they run on with the old binary; no effect on http/fastcgi apps, whose programs an upgrade never restarts", app_upgrade},
  {S::App, "cwd", T::String, "", false, "\"/opt/shop\"",
   "working folder of the workers (relative = to the config file's folder); default: the config file's folder", app_cwd},
  {S::App, "env", T::StringTable, "{}", false, "{ SHOP_ENV = \"production\" }",
   "environment variables added to a clean environment", app_env},
  {S::App, "graceful_timeout", T::Duration, "\"30s\"", false, "\"30s\"",
   "how long a worker being replaced or stopped may finish its requests", app_graceful_timeout},
  {S::App, "kill_timeout", T::Duration, "\"5s\"", false, "\"5s\"",
   "SIGTERM to SIGKILL delay for a worker asked to stop", app_kill_timeout},
  {S::App, "max_requests", T::Integer, "0", false, "0",
   "replace a worker after this many requests; 0 = never", app_max_requests},
  {S::App, "max_requests_jitter", T::Integer, "0", false, "0",
   "add a random 0..N to max_requests per worker", app_max_requests_jitter},
  {S::App, "max_rss", T::Size, "\"0\"", false, "\"512MiB\"",
   "replace a worker whose memory (PSS, children included) passes this; 0 = never", app_max_rss},
  {S::App, "health_path", T::String, "", false, "\"/healthz\"",
   "readiness probe; any status below 500 = ready; \"\" = ready when started; default: the path of the first [[route]] to the app (\"/\" without one)", app_health_path},
  {S::App, "boot_timeout", T::Duration, "\"30s\"", false, "\"30s\"",
   "a worker not ready within this is killed and retried with back-off", app_boot_timeout},
  {S::App, "user", T::String, "", false, "\"shop\"",
   "run the workers as this user (when started as root)", app_user},
  {S::App, "group", T::String, "", false, "\"shop\"",
   "run the workers with this group (default: the user's primary group)", app_group},
  {S::App, "rlimits", T::StringTable, "{}", false, "{ nofile = \"65536\", nproc = \"512\", as = \"4GiB\" }",
   "resource limits of the workers: nofile, nproc, as (soft = hard)", app_rlimits},
  {S::App, "umask", T::String, "", false, "\"0027\"",
   "file mode creation mask of the workers (octal)", app_umask},
};
// clang-format on

}  // namespace

std::string_view section_name(Section s) {
  switch (s) {
    case Section::Supervisor: return "supervisor";
    case Section::Proxy: return "proxy";
    case Section::Listener: return "listener";
    case Section::Route: return "route";
    case Section::App: return "app";
  }
  return "?";
}

std::string_view describe_type(ValueType t) {
  switch (t) {
    case ValueType::String: return "a string";
    case ValueType::Integer: return "an integer";
    case ValueType::IntegerOrAuto: return "an integer or \"auto\"";
    case ValueType::Duration: return "a duration like \"30s\" or an integer number of seconds";
    case ValueType::Size: return "a size like \"16MiB\" or an integer number of bytes";
    case ValueType::StringArray: return "an array of strings";
    case ValueType::StringTable: return "a table of strings";
    case ValueType::Boolean: return "true or false";
    case ValueType::Table: return "a table";
  }
  return "?";
}

std::span<const KeySpec> schema() { return kSchema; }

const KeySpec* find_key(Section section, std::string_view name) {
  for (auto& k : kSchema)
    if (k.section == section && k.name == name) return &k;
  return nullptr;
}

std::vector<std::string_view> key_names(Section section) {
  std::vector<std::string_view> out;
  for (auto& k : kSchema)
    if (k.section == section) out.push_back(k.name);
  return out;
}

std::string reference_toml() {
  std::string out;
  const Section order[] = {Section::Supervisor, Section::Proxy, Section::Listener, Section::Route, Section::App};
  for (Section s : order) {
    std::string name(section_name(s));
    if (!out.empty()) out += '\n';
    if (s == Section::Listener || s == Section::Route) out += "[[" + name + "]]\n";
    else if (s == Section::App) out += "[app.NAME]\n";
    else out += "[" + name + "]\n";
    for (auto& k : kSchema) {
      if (k.section != s) continue;
      out += "# " + std::string(k.doc) + (k.required ? " (required)" : "") + "\n";
      if (!k.default_value.empty()) out += std::string(k.name) + " = " + std::string(k.default_value) + "\n";
      else if (k.required) out += std::string(k.name) + " = " + std::string(k.example) + "\n";
      else out += "# " + std::string(k.name) + " = " + std::string(k.example) + "\n";
    }
  }
  return out;
}

bool is_valid_app_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace corral::conf
