#pragma once
// Routing: the first [[route]] whose host and path prefix match a request wins.
// Immutable after construction; safe to share between loop threads (read-only).
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace corral::proxy {

class Router {
 public:
  struct Entry {
    std::string host;  ///< lower-case, no port; empty = any host
    std::string path;  ///< prefix; "/" (or empty) matches every path
    int app = -1;      ///< index into the caller's app table
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
