#pragma once
// The immutable snapshot every loop thread works from: settings, the router, and one entry
// per app with its shared dispatcher. Built on the control thread for each SetConfig and
// posted to every loop as shared_ptr<const Runtime>; a request keeps the snapshot it started
// with. Read-only after construction, so sharing between threads is safe.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http1/parser.h"
#include "common/net/cidr.h"
#include "conf/config.h"
#include "proxy/connection_limiter.h"
#include "proxy/dispatch/app_dispatcher.h"
#include "proxy/metrics/metrics.h"
#include "proxy/router.h"
#include "proxy/upstream/upstream_client.h"

namespace corral::proxy {

struct AppRuntime {
  std::string name;
  conf::AppKind kind = conf::AppKind::Http;
  std::chrono::milliseconds timeout{30'000};
  std::chrono::milliseconds queue_timeout{10'000};
  std::chrono::milliseconds tunnel_idle_timeout{60'000};
  bool request_buffering = true;  ///< false: the body streams to the worker as it arrives
  std::shared_ptr<AppDispatcher> dispatcher;  ///< shared with earlier snapshots while the app persists
  std::shared_ptr<const ScriptApp> script_app;  ///< kind "fastcgi": what the FastCGI client needs; else null
};

class TlsContext;

/// Per-listener settings, in the order of the config's [[listener]] tables (the order in
/// which the supervisor binds and hands over the sockets).
struct ListenerRuntime {
  std::string address;
  std::shared_ptr<const TlsContext> tls;  ///< null: plaintext
  bool tls_failed = false;                ///< TLS configured but its context failed: connections are closed
  bool h2 = true;                         ///< TLS: offer h2 in ALPN; plaintext: accept h2c prior knowledge
  bool h2c = true;                        ///< plaintext and h2
  bool redirect_https = false;            ///< plaintext: answer 308 to the https URL
  std::string hsts;                       ///< Strict-Transport-Security value ("" = none)
  bool admin = false;                     ///< the admin listener: answered by AdminService, never routed
  uint32_t max_connections = 0;             ///< 0 = no limit of its own
  uint32_t max_connections_per_client = 0;  ///< 0 = no limit
  /// A PROXY protocol header first, from a peer in proxy_protocol_trusted (others are reset
  /// at accept); the per-client limit then counts the header's client, not the balancer.
  bool proxy_protocol = false;
  net::CidrSet proxy_protocol_trusted;
  /// The listener's open-connection counts, shared by every loop and kept across reloads;
  /// null for the admin listener (never limited).
  std::shared_ptr<ConnectionLimiter> limiter;
  std::shared_ptr<metrics::ListenerMetrics> metrics;  ///< may be null (tests)
};

struct Runtime {
  uint64_t generation = 0;
  conf::ProxySettings proxy;  ///< as configured, but temp_dir is the effective folder (never "")
  std::chrono::milliseconds graceful_timeout{30'000};
  Router router;  ///< route → index into apps
  std::vector<AppRuntime> apps;
  http1::Limits limits;
  /// [proxy] trusted_proxies: peers whose X-Forwarded-For is extended and believed.
  net::CidrSet trusted_proxies;
  std::vector<std::shared_ptr<const ListenerRuntime>> listeners;
  /// The admin listener ([proxy] admin), null when off.
  std::shared_ptr<const ListenerRuntime> admin_listener;
  /// The index LoopThread::adopt() uses for the admin listener's connections.
  static constexpr size_t kAdminListener = SIZE_MAX - 1;
  /// The listener settings for the listener socket at `index` (plaintext defaults when unknown).
  std::shared_ptr<const ListenerRuntime> listener(size_t index) const;
};

/// What make_runtime keeps across snapshots by name: dispatchers, the metrics blocks of
/// routes and listeners (so counters keep counting across reloads), and the listeners'
/// connection counts. Control-thread only.
struct RuntimeState {
  /// A listener's (or the admin listener's) metrics, and its connection limiter: connections
  /// accepted before a reload still count against its limits.
  struct Listener {
    std::shared_ptr<metrics::ListenerMetrics> metrics;
    std::shared_ptr<ConnectionLimiter> limiter;  ///< null for the admin listener
  };
  std::map<std::string, std::shared_ptr<AppDispatcher>> dispatchers;
  std::map<std::string, std::shared_ptr<metrics::RouteMetrics>> routes;  ///< by app + "\n" + route label
  std::map<std::string, Listener> listeners;                             ///< by address
  size_t threads = 1;  ///< per-thread copies in each new metrics block
};

/// Builds a snapshot from a validated config. Dispatchers of apps already in `dispatchers`
/// (by name) are kept, with their queue size updated; new apps get a new one; the map is
/// updated to hold exactly the config's apps. Control-thread only (it owns the map).
/// `threads`: the loop threads (per-thread counters of new dispatchers).
std::shared_ptr<const Runtime> make_runtime(const conf::Config& config, uint64_t generation,
                                            std::map<std::string, std::shared_ptr<AppDispatcher>>& dispatchers,
                                            size_t threads = 1);
/// The same, also attaching (and keeping in `state`) metrics blocks for routes and listeners;
/// `state.dispatchers` plays the part of `dispatchers` above.
std::shared_ptr<const Runtime> make_runtime(const conf::Config& config, uint64_t generation, RuntimeState& state);

}  // namespace corral::proxy
