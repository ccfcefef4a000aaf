#pragma once
// Routing: the first [[route]] whose host and path prefix match a request wins.
// Immutable after construction; safe to share between loop threads (read-only).
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "proxy/metrics/metrics.h"

namespace corral::proxy {
namespace compress {
struct Policy;
}

namespace statics {
class StaticSite;
}

class Router {
 public:
  struct Entry {
    std::string host;  ///< lower-case, no port; empty = any host
    std::string path;  ///< prefix; "/" (or empty) matches every path
    int app = -1;      ///< index into the caller's app table
    /// A static route: its folder and settings (then `app` is -1); set by make_runtime.
    std::shared_ptr<const statics::StaticSite> static_site;
    int fallback = -1;  ///< static: the app for requests no file matches (index), -1 = none
    std::shared_ptr<metrics::RouteMetrics> metrics;  ///< set by make_runtime; may be null
    std::shared_ptr<const compress::Policy> compress;  ///< set by make_runtime; null = off
    /// "HOST/PATH", or "/PATH" without a host: the route's label in metrics.
    std::string label() const { return host + path; }
  };

  Router() = default;
  /// Builds the table from routes in file order. `app_index` maps each route's app name to
  /// an index (the caller's table); routes naming an unknown app get -1 and never match.
  template <typename AppIndexFn>
  Router(const std::vector<conf::Route>& routes, AppIndexFn&& app_index) {
    entries_.reserve(routes.size());
    for (const auto& r : routes) add(r.host, r.path, app_index(r.app));
  }

  /// Appends one route (the table keeps insertion order).
  void add(std::string_view host, std::string_view path, int app);

  /// The app index of the first matching route, or -1 (→ 404). `host` is the Host header
  /// as received (any case, optional ":port"); `target` the request target (origin-form;
  /// the query string is ignored). Loop-agnostic, no allocation.
  int match(std::string_view host, std::string_view target) const;
  /// Like match(); also sets `prefix` to the matched route's path (valid while the Router lives).
  int match(std::string_view host, std::string_view target, std::string_view& prefix) const;
  /// The first matching entry, or null.
  const Entry* find(std::string_view host, std::string_view target) const;
  /// For make_runtime: the entries, to attach their metrics.
  std::vector<Entry>& mutable_entries() { return entries_; }

  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

/// "Example.com:8080" → "Example.com"; "[::1]:80" → "[::1]". Pure.
std::string_view strip_port(std::string_view host);
/// True when `path` starts with `prefix` on a segment boundary ("/api" matches "/api",
/// "/api/x", "/api?q", not "/apix"). Pure.
bool path_prefix_match(std::string_view prefix, std::string_view path);

}  // namespace corral::proxy
