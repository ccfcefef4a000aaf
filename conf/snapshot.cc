// Canonical JSON of a Config. Decoding never throws: every field is type-checked first.
#include "conf/snapshot.h"

#include <nlohmann/json.hpp>

namespace corral::conf {
namespace {

using json = nlohmann::json;

constexpr int kSnapshotVersion = 1;

const char* kind_name(AppKind k) {
  switch (k) {
    case AppKind::Http: return "http";
    case AppKind::Fastcgi: return "fastcgi";
    case AppKind::Cgi: return "cgi";
    case AppKind::Wsgi: return "wsgi";
  }
  return "?";
}

const char* format_name(AccessLogFormat f) {
  switch (f) {
    case AccessLogFormat::Combined: return "combined";
    case AccessLogFormat::Json: return "json";
  }
  return "?";
}

/// Reads typed fields out of one JSON object; remembers the first problem.
class Reader {
 public:
  Reader(const json& obj, std::string where, std::string& err) : obj_(obj), where_(std::move(where)), err_(err) {
    if (!obj_.is_object()) fail("is not an object");
  }

  const json* field(const char* name) {
    if (!err_.empty() || !obj_.is_object()) return nullptr;
    auto it = obj_.find(name);
    if (it == obj_.end()) {
      fail(std::string("has no field '") + name + "'");
      return nullptr;
    }
    return &*it;
  }

  void str(const char* name, std::string& out) {
    if (auto* f = field(name)) {
      if (f->is_string()) out = f->get_ref<const std::string&>();
      else fail(std::string("field '") + name + "' is not a string");
    }
  }

  template <typename Int>
  void integer(const char* name, Int& out) {
    if (auto* f = field(name)) {
      if (f->is_number_integer()) out = static_cast<Int>(f->get<int64_t>());
      else if (f->is_number_unsigned()) out = static_cast<Int>(f->get<uint64_t>());
      else fail(std::string("field '") + name + "' is not an integer");
    }
  }

  void millis(const char* name, Millis& out) {
    int64_t ms = 0;
    integer(name, ms);
    out = Millis(ms);
  }

  void boolean(const char* name, bool& out) {
    if (auto* f = field(name)) {
      if (f->is_boolean()) out = f->get<bool>();
      else fail(std::string("field '") + name + "' is not a boolean");
    }
  }

  const json* array(const char* name) {
    auto* f = field(name);
    if (f && !f->is_array()) {
      fail(std::string("field '") + name + "' is not an array");
      return nullptr;
    }
    return f;
  }

  void strings(const char* name, std::vector<std::string>& out) {
    const json* a = array(name);
    if (!a) return;
    out.clear();
    for (auto& e : *a) {
      if (!e.is_string()) {
        fail(std::string("field '") + name + "' has a non-string element");
        return;
      }
      out.push_back(e.get<std::string>());
    }
  }

  void fail(const std::string& what) {
    if (err_.empty()) err_ = where_ + " " + what;
  }

 private:
  const json& obj_;
  std::string where_;
  std::string& err_;
};

}  // namespace

std::string to_snapshot(const Config& c) {
  json j;
  j["version"] = kSnapshotVersion;
  j["file"] = c.file;
  j["supervisor"] = {
      {"runtime_dir", c.supervisor.runtime_dir},
      {"log_level", std::string(log::level_name(c.supervisor.log_level))},
      {"graceful_timeout_ms", c.supervisor.graceful_timeout.count()},
      {"proxy_timeout_ms", c.supervisor.proxy_timeout.count()},
      {"drain_delay_ms", c.supervisor.drain_delay.count()},
      {"user", c.supervisor.user},
  };
  auto& p = c.proxy;
  j["proxy"] = {
      {"threads", p.threads},
      {"admin", p.admin},
      {"access_log", p.access_log},
      {"access_log_format", format_name(p.access_log_format)},
      {"max_body_size", p.max_body_size},
      {"max_header_size", p.max_header_size},
      {"max_header_count", p.max_header_count},
      {"client_header_timeout_ms", p.client_header_timeout.count()},
      {"tls_handshake_timeout_ms", p.tls_handshake_timeout.count()},
      {"client_body_timeout_ms", p.client_body_timeout.count()},
      {"client_body_min_rate", p.client_body_min_rate},
      {"keepalive_timeout_ms", p.keepalive_timeout.count()},
      {"h2_max_concurrent_streams", p.h2_max_concurrent_streams},
      {"h2_reset_rate", p.h2_reset_rate},
      {"h2_flood_rate", p.h2_flood_rate},
      {"client_body_buffer_size", p.client_body_buffer_size},
      {"temp_dir", p.temp_dir},
      {"trusted_proxies", p.trusted_proxies},
  };
  j["listeners"] = json::array();
  for (auto& l : c.listeners) {
    json tls = json::array();
    for (auto& t : l.tls)
      tls.push_back({{"cert", t.cert}, {"key", t.key}, {"cert_pem", t.cert_pem}, {"key_pem", t.key_pem}});
    j["listeners"].push_back({{"address", l.address},
                              {"host", l.host},
                              {"port", l.port},
                              {"ipv6", l.ipv6},
                              {"tls", std::move(tls)},
                              {"tls_profile", l.tls_profile == TlsProfile::Modern ? "modern" : "intermediate"},
                              {"h2", l.h2},
                              {"redirect_https", l.redirect_https},
                              {"hsts", l.hsts},
                              {"max_connections", l.max_connections},
                              {"max_connections_per_client", l.max_connections_per_client},
                              {"proxy_protocol", l.proxy_protocol},
                              {"proxy_protocol_trusted", l.proxy_protocol_trusted}});
  }
  j["routes"] = json::array();
  for (auto& r : c.routes)
    j["routes"].push_back({{"host", r.host},
                           {"path", r.path},
                           {"app", r.app},
                           {"compress", r.compress},
                           {"compress_min_size", r.compress_min_size},
                           {"compress_types", r.compress_types},
                           {"gzip_level", r.gzip_level},
                           {"brotli_level", r.brotli_level},
                           {"static", r.static_root},
                           {"index", r.index},
                           {"cache_control", r.cache_control},
                           {"fallback", r.fallback},
                           {"follow_symlinks", r.follow_symlinks == FollowSymlinks::Off ? "off" : "inside"}});
  j["apps"] = json::array();
  for (auto& a : c.apps) {
    json env = json::array();
    for (auto& [k, v] : a.env) env.push_back(json::array({k, v}));
    json rlimits = json::array();
    for (auto& [k, v] : a.rlimits) rlimits.push_back(json::array({k, v}));
    j["apps"].push_back({
        {"name", a.name},
        {"kind", kind_name(a.kind)},
        {"command", a.command},
        {"workers", a.workers},
        {"workers_auto", a.workers_auto},
        {"concurrency", a.concurrency},
        {"timeout_ms", a.timeout.count()},
        {"queue_size", a.queue_size},
        {"queue_timeout_ms", a.queue_timeout.count()},
        {"max_tunnels", a.max_tunnels},
        {"tunnel_idle_timeout_ms", a.tunnel_idle_timeout.count()},
        {"request_buffering", a.request_buffering},
        {"upgrade", a.upgrade},
        {"cwd", a.cwd},
        {"root", a.root},
        {"script_filename", a.script_filename},
        {"index", a.index},
        {"module", a.module},
        {"python_path", a.python_path},
        {"virtualenv", a.virtualenv},
        {"worker_class", a.worker_class},
        {"env", env},
        {"graceful_timeout_ms", a.graceful_timeout.count()},
        {"kill_timeout_ms", a.kill_timeout.count()},
        {"max_requests", a.max_requests},
        {"max_requests_jitter", a.max_requests_jitter},
        {"max_rss", a.max_rss},
        {"health_path", a.health_path},
        {"boot_timeout_ms", a.boot_timeout.count()},
        {"user", a.user},
        {"group", a.group},
        {"rlimits", rlimits},
        {"umask", a.umask},
    });
  }
  return j.dump();
}

Result<Config> from_snapshot(std::string_view bytes) {
  json j = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail(Errc::Protocol, "config snapshot: not valid JSON");
  std::string err;
  Config c;
  Reader top(j, "config snapshot", err);
  int version = 0;
  top.integer("version", version);
  if (err.empty() && version != kSnapshotVersion)
    return fail(Errc::Protocol, "config snapshot: unsupported version " + std::to_string(version));
  top.str("file", c.file);

  if (auto* s = top.field("supervisor")) {
    Reader r(*s, "config snapshot: supervisor", err);
    r.str("runtime_dir", c.supervisor.runtime_dir);
    std::string level;
    r.str("log_level", level);
    if (err.empty() && !log::parse_level(level, c.supervisor.log_level)) r.fail("has an unknown log_level");
    r.millis("graceful_timeout_ms", c.supervisor.graceful_timeout);
    r.millis("proxy_timeout_ms", c.supervisor.proxy_timeout);
    r.millis("drain_delay_ms", c.supervisor.drain_delay);
    r.str("user", c.supervisor.user);
  }
  if (auto* p = top.field("proxy")) {
    Reader r(*p, "config snapshot: proxy", err);
    auto& o = c.proxy;
    r.integer("threads", o.threads);
    r.str("admin", o.admin);
    r.str("access_log", o.access_log);
    std::string format;
    r.str("access_log_format", format);
    if (format == "combined") o.access_log_format = AccessLogFormat::Combined;
    else if (format == "json") o.access_log_format = AccessLogFormat::Json;
    else r.fail("has an unknown access_log_format");
    r.integer("max_body_size", o.max_body_size);
    r.integer("max_header_size", o.max_header_size);
    r.integer("max_header_count", o.max_header_count);
    r.millis("client_header_timeout_ms", o.client_header_timeout);
    r.millis("tls_handshake_timeout_ms", o.tls_handshake_timeout);
    r.millis("client_body_timeout_ms", o.client_body_timeout);
    r.integer("client_body_min_rate", o.client_body_min_rate);
    r.millis("keepalive_timeout_ms", o.keepalive_timeout);
    r.integer("h2_max_concurrent_streams", o.h2_max_concurrent_streams);
    r.integer("h2_reset_rate", o.h2_reset_rate);
    r.integer("h2_flood_rate", o.h2_flood_rate);
    r.integer("client_body_buffer_size", o.client_body_buffer_size);
    r.str("temp_dir", o.temp_dir);
    r.strings("trusted_proxies", o.trusted_proxies);
  }
  if (auto* ls = top.array("listeners")) {
    for (auto& item : *ls) {
      Reader r(item, "config snapshot: listener", err);
      Listener l;
      r.str("address", l.address);
      r.str("host", l.host);
      r.integer("port", l.port);
      r.boolean("ipv6", l.ipv6);
      if (auto* ts = r.array("tls")) {
        for (auto& t : *ts) {
          Reader tr(t, "config snapshot: listener tls", err);
          TlsCert cert;
          tr.str("cert", cert.cert);
          tr.str("key", cert.key);
          tr.str("cert_pem", cert.cert_pem);
          tr.str("key_pem", cert.key_pem);
          l.tls.push_back(std::move(cert));
        }
      }
      std::string profile;
      r.str("tls_profile", profile);
      if (profile == "modern") l.tls_profile = TlsProfile::Modern;
      else if (profile == "intermediate") l.tls_profile = TlsProfile::Intermediate;
      else r.fail("has an unknown tls_profile");
      r.boolean("h2", l.h2);
      r.boolean("redirect_https", l.redirect_https);
      r.str("hsts", l.hsts);
      r.integer("max_connections", l.max_connections);
      r.integer("max_connections_per_client", l.max_connections_per_client);
      r.boolean("proxy_protocol", l.proxy_protocol);
      r.strings("proxy_protocol_trusted", l.proxy_protocol_trusted);
      c.listeners.push_back(std::move(l));
    }
  }
  if (auto* rs = top.array("routes")) {
    for (auto& item : *rs) {
      Reader r(item, "config snapshot: route", err);
      Route route;
      r.str("host", route.host);
      r.str("path", route.path);
      r.str("app", route.app);
      r.strings("compress", route.compress);
      r.integer("compress_min_size", route.compress_min_size);
      r.strings("compress_types", route.compress_types);
      r.integer("gzip_level", route.gzip_level);
      r.integer("brotli_level", route.brotli_level);
      r.str("static", route.static_root);
      r.str("index", route.index);
      r.str("cache_control", route.cache_control);
      r.str("fallback", route.fallback);
      std::string follow;
      r.str("follow_symlinks", follow);
      route.follow_symlinks = follow == "off" ? FollowSymlinks::Off : FollowSymlinks::Inside;
      c.routes.push_back(std::move(route));
    }
  }
  if (auto* as = top.array("apps")) {
    for (auto& item : *as) {
      Reader r(item, "config snapshot: app", err);
      App a;
      r.str("name", a.name);
      std::string kind;
      r.str("kind", kind);
      if (kind == "http") a.kind = AppKind::Http;
      else if (kind == "fastcgi") a.kind = AppKind::Fastcgi;
      else if (kind == "cgi") a.kind = AppKind::Cgi;
      else if (kind == "wsgi") a.kind = AppKind::Wsgi;
      else if (err.empty()) r.fail("has an unknown kind '" + kind + "'");
      if (auto* cmd = r.array("command")) {
        for (auto& arg : *cmd) {
          if (!arg.is_string()) {
            r.fail("has a non-string command argument");
            break;
          }
          a.command.push_back(arg.get<std::string>());
        }
      }
      r.integer("workers", a.workers);
      r.boolean("workers_auto", a.workers_auto);
      r.integer("concurrency", a.concurrency);
      r.millis("timeout_ms", a.timeout);
      r.integer("queue_size", a.queue_size);
      r.millis("queue_timeout_ms", a.queue_timeout);
      r.integer("max_tunnels", a.max_tunnels);
      r.millis("tunnel_idle_timeout_ms", a.tunnel_idle_timeout);
      r.boolean("request_buffering", a.request_buffering);
      r.str("upgrade", a.upgrade);
      r.str("cwd", a.cwd);
      r.str("root", a.root);
      r.str("script_filename", a.script_filename);
      r.str("index", a.index);
      r.str("module", a.module);
      if (auto* pp = r.array("python_path")) {
        for (auto& dir : *pp) {
          if (!dir.is_string()) {
            r.fail("has a non-string python_path entry");
            break;
          }
          a.python_path.push_back(dir.get<std::string>());
        }
      }
      r.str("virtualenv", a.virtualenv);
      r.str("worker_class", a.worker_class);
      if (auto* env = r.array("env")) {
        for (auto& pair : *env) {
          if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
            r.fail("has a malformed env entry");
            break;
          }
          a.env.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
        }
      }
      r.millis("graceful_timeout_ms", a.graceful_timeout);
      r.millis("kill_timeout_ms", a.kill_timeout);
      r.integer("max_requests", a.max_requests);
      r.integer("max_requests_jitter", a.max_requests_jitter);
      r.integer("max_rss", a.max_rss);
      r.str("health_path", a.health_path);
      r.millis("boot_timeout_ms", a.boot_timeout);
      r.str("user", a.user);
      r.str("group", a.group);
      if (auto* rl = r.array("rlimits")) {
        for (auto& pair : *rl) {
          if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) {
            r.fail("has a malformed rlimits entry");
            break;
          }
          a.rlimits.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
        }
      }
      r.integer("umask", a.umask);
      c.apps.push_back(std::move(a));
    }
  }
  if (!err.empty()) return fail(Errc::Protocol, err);
  return c;
}

}  // namespace corral::conf
