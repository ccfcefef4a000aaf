#pragma once
// The validated configuration: plain immutable structs. Built only by the loader
// (loader.h) from a TOML file, or by the snapshot decoder (snapshot.h) in the proxy.
// Every field here has one row in schema.cc that documents it.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/log.h"
#include "common/base/units.h"

namespace corral::conf {

struct SupervisorSettings {
  std::string runtime_dir = "/run/corral";  ///< worker sockets and control.sock
  log::Level log_level = log::Level::Info;
  Millis graceful_timeout{30'000};  ///< SIGTERM: how long in-flight requests may run on
  std::string user;                 ///< the proxy's user when started as root; empty = unchanged
  /// The proxy reports on its control channel every second; silent this long (stopped,
  /// stuck), it is killed and restarted. 0 = never.
  Millis proxy_timeout{10'000};
  /// SIGTERM / POST /stop: /readyz fails and connections are told to go away this long
  /// before the graceful stop begins (the listeners keep serving meanwhile). 0 = none.
  Millis drain_delay{0};

  bool operator==(const SupervisorSettings&) const = default;
};

enum class AccessLogFormat { Combined, Json };

struct ProxySettings {
  int threads = 0;                    ///< event-loop threads; 0 = auto (usable cores)
  /// The admin listener (/metrics, /healthz, /readyz, /status): "ip:port", a Unix socket
  /// path (contains '/'; absolute once loaded) or "off".
  std::string admin = "off";
  std::string access_log = "-";       ///< path, "-" = stderr, "off"
  AccessLogFormat access_log_format = AccessLogFormat::Combined;
  uint64_t max_body_size = 16ull << 20;
  uint64_t max_header_size = 16 << 10;  ///< request line + headers → 431 above
  int max_header_count = 100;           ///< → 431 above
  Millis client_header_timeout{10'000};  ///< deadline for the whole request head (slowloris)
  Millis tls_handshake_timeout{10'000};  ///< deadline for a TLS handshake, from accept
  Millis client_body_timeout{30'000};    ///< longest pause between two reads of a body
  uint64_t client_body_min_rate = 1024;  ///< bytes/s a body must average (after the first timeout)
  Millis keepalive_timeout{75'000};      ///< idle time between requests on a connection; 0 = close after each
  uint32_t h2_max_concurrent_streams = 100;  ///< HTTP/2 streams open at once per connection
  uint32_t h2_reset_rate = 100;      ///< HTTP/2 stream resets per second (either side), burst 10×; more → GOAWAY
  uint32_t h2_flood_rate = 1000;     ///< HTTP/2 control/empty frames per second, burst 10×; more → GOAWAY
  uint64_t client_body_buffer_size = 64 << 10;  ///< a request body above this goes to a temp file
  /// Folder for request-body temp files (absolute once loaded); "" = runtime_dir + "/body"
  /// (see body_temp_dir()). Created by the supervisor, writable by the proxy.
  std::string temp_dir;
  /// CIDRs of HTTP proxies in front of corral: their X-Forwarded-For is extended (not
  /// replaced) and the client is its rightmost address outside these ranges.
  std::vector<std::string> trusted_proxies;

  bool operator==(const ProxySettings&) const = default;
};

/// One certificate of a TLS listener. The PEM bytes are read by the loader (so --check
/// reports a bad file and the proxy never opens key files) and travel in the snapshot.
struct TlsCert {
  std::string cert;      ///< certificate (chain) file, absolute
  std::string key;       ///< private key file, absolute
  std::string cert_pem;  ///< contents of cert
  std::string key_pem;   ///< contents of key

  bool operator==(const TlsCert&) const = default;
};

enum class TlsProfile { Intermediate, Modern };

struct Listener {
  std::string address;  ///< as written: "0.0.0.0:8080", "[::]:8443", "127.0.0.1:0"
  std::string host;     ///< "0.0.0.0", "::"
  uint16_t port = 0;
  bool ipv6 = false;
  std::vector<TlsCert> tls;  ///< empty = plaintext; chosen by SNI, the first is the default
  TlsProfile tls_profile = TlsProfile::Intermediate;
  bool h2 = true;               ///< offer h2 (ALPN) / accept h2c prior knowledge
  bool redirect_https = false;  ///< plaintext: 308 to https://host/target
  std::string hsts;             ///< TLS: Strict-Transport-Security value; empty = none
  uint32_t max_connections = 0;             ///< open connections at once; 0 = no limit of its own (the fd limit)
  uint32_t max_connections_per_client = 0;  ///< open connections per IPv4 address / IPv6 /64; 0 = no limit
  /// A PROXY protocol (v1 or v2) header comes first on every connection, from a peer in
  /// proxy_protocol_trusted (CIDRs, non-empty when on); its client address is the client's.
  bool proxy_protocol = false;
  std::vector<std::string> proxy_protocol_trusted;

  bool operator==(const Listener&) const = default;
};

/// The media types a route compresses unless it sets compress_types: "type/subtype",
/// "type/*" (any subtype) or "type/*+suffix" (a structured-syntax suffix).
inline std::vector<std::string> default_compress_types() {
  return {"text/*",          "application/json",  "application/*+json", "application/javascript",
          "application/xml", "application/*+xml", "image/svg+xml",      "application/wasm"};
}
enum class FollowSymlinks { Inside, Off };

struct Route {
  std::string host;  ///< empty = any host; compared case-insensitively, port ignored
  std::string path = "/";  ///< prefix
  std::string app;         ///< the app that serves the route; "" for a static route
  /// Response compression by the proxy: "br" and/or "gzip", preferred first; empty = off.
  std::vector<std::string> compress;
  uint64_t compress_min_size = 1024;  ///< smaller responses (known length) go out as they are
  std::vector<std::string> compress_types = default_compress_types();
  int gzip_level = 5;    ///< zlib level, 1..9
  int brotli_level = 4;  ///< brotli quality, 0..9
  // A static route (static_root set instead of app) is answered by the proxy from files.
  std::string static_root;             ///< folder served (absolute once loaded); "" = an app route
  std::string index = "index.html";    ///< static: the file a folder path serves; "" = none
  std::string cache_control;           ///< static: Cache-Control of file responses; "" = none
  std::string fallback;                ///< static: the app that gets requests no file matches; "" = 404
  FollowSymlinks follow_symlinks = FollowSymlinks::Inside;  ///< static: symlinks followed only inside the root

  bool operator==(const Route&) const = default;
};

enum class AppKind { Http, Fastcgi, Cgi, Wsgi };

struct App {
  std::string name;
  AppKind kind = AppKind::Http;
  std::vector<std::string> command;  ///< argv; command[0] resolved against the config's folder
  std::string root;             ///< cgi/fastcgi: folder of scripts (absolute); "" = one program
  std::string script_filename;  ///< fastcgi/cgi: SCRIPT_FILENAME of every request (absolute); "" = unset
  std::string index = "index.php";  ///< cgi/fastcgi with root: the script a folder path runs; "" = none
  std::string module;                    ///< wsgi: "package.module:callable" (gunicorn's APP_MODULE)
  std::vector<std::string> python_path;  ///< wsgi: folders put first on sys.path (absolute)
  std::string virtualenv;                ///< wsgi: the virtualenv's folder (absolute); "" = none
  std::string worker_class;              ///< wsgi: "sync" | "gthread" | "gevent" (resolved; "" for other kinds)
  int workers = 1;                    ///< resolved count ("auto" already applied)
  bool workers_auto = false;          ///< written as "auto"
  int concurrency = 1;                ///< requests in flight per worker
  Millis timeout{30'000};             ///< no response within → 504, worker reported hung
  uint32_t queue_size = 1024;         ///< 0 = no queue: 503 at once when all workers are busy
  Millis queue_timeout{10'000};
  /// http: open WebSocket/Upgrade tunnels per worker once switched; 0 = a tunnel keeps its
  /// request slot (counts against concurrency) until it closes.
  uint32_t max_tunnels = 0;
  Millis tunnel_idle_timeout{60'000};  ///< a tunnel with no byte either way for this long is closed
  std::string cwd;                    ///< absolute; the loader fills in the config file's folder when unset
  std::vector<std::pair<std::string, std::string>> env;  ///< sorted by name
  Millis graceful_timeout{30'000};    ///< drain time of a worker on reload, recycle, scale-down, stop
  Millis kill_timeout{5'000};         ///< SIGTERM → SIGKILL delay for a worker asked to stop
  uint64_t max_requests = 0;          ///< recycle a worker after this many requests; 0 = never
  uint64_t max_requests_jitter = 0;   ///< + random 0..jitter per worker, so workers do not recycle together
  uint64_t max_rss = 0;               ///< recycle above this proportional set size (with children); 0 = never
  std::string health_path = "/";      ///< readiness probe target; "" = ready when started; unset = the first route's path
  Millis boot_timeout{30'000};        ///< a worker not ready within is killed (and backs off)
  std::string user;                   ///< run as this user when started as root
  std::string group;                  ///< and group (default: the user's primary group)
  std::vector<std::pair<std::string, std::string>> rlimits;  ///< "nofile"/"nproc"/"as" → limit, sorted
  int umask = -1;                     ///< -1 = inherit
  bool request_buffering = true;      ///< false: the body is streamed to the worker as it arrives
  /// cgi/wsgi: "roll" = after a supervisor upgrade that replaced corral-worker, its workers
  /// are replaced make before break; "keep" = they run on until something else replaces them.
  std::string upgrade = "roll";

  bool operator==(const App&) const = default;
};

struct Config {
  std::string file;  ///< the path it was loaded from (for messages)
  SupervisorSettings supervisor;
  ProxySettings proxy;
  std::vector<Listener> listeners;
  std::vector<Route> routes;  ///< in file order: the first match wins
  std::vector<App> apps;      ///< sorted by name

  bool operator==(const Config&) const = default;

  /// Where request bodies spill: [proxy] temp_dir, else runtime_dir/body.
  std::string body_temp_dir() const { return proxy.temp_dir.empty() ? supervisor.runtime_dir + "/body" : proxy.temp_dir; }

  /// The app called `name`, or nullptr. The pointer lives as long as this Config.
  const App* find_app(std::string_view name) const {
    for (auto& a : apps)
      if (a.name == name) return &a;
    return nullptr;
  }
};

}  // namespace corral::conf
